"""The results hash: config and code version in, output paths out."""

import probejax.io._results as results
from probejax.io import code_version, config_hash


def test_hash_changes_with_the_code_and_not_with_output_paths(monkeypatch):
    cfg = {"target": "t", "lams": [0.1, 1.0], "results_dir": "a"}
    h = config_hash(cfg)
    assert config_hash({**cfg, "results_dir": "elsewhere", "figures_dir": "f"}) == h
    assert config_hash({**cfg, "lams": [0.1, 2.0]}) != h
    real = code_version()
    assert len(real["source"]) == 64 and real["probejax"]
    monkeypatch.setattr(results, "code_version", lambda: {**real, "source": "0" * 64})
    assert config_hash(cfg) != h
    # the commit is provenance only: a commit that leaves the code alone keeps results
    monkeypatch.setattr(results, "code_version", lambda: {**real, "git": "another commit"})
    assert config_hash(cfg) == h
