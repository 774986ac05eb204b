"""The results hash: config and explicit identity in; output paths and code out."""

import probejax.io._results as results
from probejax.io import code_version, config_hash


def test_hash_is_the_config_and_identity_not_the_code_nor_output_paths(monkeypatch):
    cfg = {"target": "t", "lams": [0.1, 1.0], "results_dir": "a"}
    h = config_hash(cfg)
    assert config_hash({**cfg, "results_dir": "elsewhere", "figures_dir": "f"}) == h
    assert config_hash({**cfg, "lams": [0.1, 2.0]}) != h
    # the explicit version of the computation is part of the identity
    assert config_hash(cfg, version=1) != h
    assert config_hash(cfg, version=2) != config_hash(cfg, version=1)
    assert config_hash(cfg, version=1) == config_hash(dict(reversed(cfg.items())), version=1)
    real = code_version()
    assert len(real["source"]) == 64 and real["probejax"]
    # the source digest, release and commit are provenance only: never hashed
    for fake in ({"source": "0" * 64}, {"git": "another commit"}, {"probejax": "9.9"}):
        monkeypatch.setattr(results, "code_version", lambda fake=fake: {**real, **fake})
        assert config_hash(cfg) == h


def test_progress_bar_lines_and_terminal(capsys, monkeypatch):
    from probejax.io._progress import progress_bar

    with progress_bar("raptor stability", 4, unit="layers") as update:
        update(1, "layer 0")
        update(4, "layer 3")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("  raptor stability: 1/4 layers (layer 0)") and "left" in err[0]
    assert err[1].startswith("  raptor stability: 4/4 layers (layer 3)")
    with progress_bar("silent", 3, enabled=False) as update:
        update(3)
    assert capsys.readouterr().err == ""
    # on a terminal: a rich bar, which must accept the same calls
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    with progress_bar("raptor fit", 2) as update:
        update(1, "layer 0")
        update(2, "layer 1")
