"""``probejax datasets`` lists the registry and resolves a ``--data`` value exactly as the
commands do; ``--data`` takes a user's loader by import path. No model is run."""

import pytest
from typer.testing import CliRunner

from probejax.cli import app
from probejax.llm import load_dataset, registered_datasets

LOADER = """
import numpy as np

print("loader.py ran")

def make(rng, max_examples):
    texts = [f"{w} day {i}" for i in range(20) for w in ("good", "bad")]
    return texts, np.tile([1, 0], 20)
"""


@pytest.fixture
def loader(tmp_path):
    path = tmp_path / "loader.py"
    path.write_text(LOADER)
    return path


def test_datasets_lists_the_registry_with_sizes():
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0, result.output
    for name in ("cities", "sentiment", "morality", "stereoset-religion"):
        assert name in result.output
    assert registered_datasets()["cities"].description[:40] in result.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in
            result.output.splitlines() if line.count("│") == 4}  # fmt: skip
    assert rows["morality"] == str(len(load_dataset("morality")))
    assert rows["cities"] == "1500"


def test_datasets_resolves_a_user_loader(loader):
    spec = f"{loader}:make"
    result = CliRunner().invoke(app, ["datasets", spec, "--max-examples", "10", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert load_dataset(spec, max_examples=10, seed=2).hash in result.output
    assert "10 (0: 5, 1: 5)" in result.output
    bad = CliRunner().invoke(app, ["datasets", f"{loader}:nope"])
    assert bad.exit_code == 1 and "has no attribute 'nope'" in bad.output


def test_llm_commands_resolve_data_import_paths(loader, tmp_path):
    """``llm sweep --data file.py:name`` runs the user's loader before anything else (an
    invalid --pooling then stops the command before any model is loaded); a bad import
    path stops it with the dataset's error."""
    sweep = ["llm", "sweep", "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "o")]
    ok = CliRunner().invoke(app, [*sweep, "--data", f"{loader}:make", "--pooling", "bogus"])
    assert ok.exit_code == 1 and "loader.py ran" in ok.output and "bogus" in ok.output
    for spec, match in [
        (f"{tmp_path}/missing.py:make", "no file"),
        (f"{loader}:nope", "has no attribute 'nope'"),
        ("loader.py:", "cannot read it as an import path"),
    ]:
        bad = CliRunner().invoke(app, [*sweep, "--data", spec])
        assert bad.exit_code == 1 and f"error: dataset {spec!r}" in bad.output, bad.output
        assert match in bad.output
    steer = ["llm", "steer", "hi", "--layer", "0", "--model", str(tmp_path / "no-model")]
    bad = CliRunner().invoke(app, [*steer, "--data", f"{loader}:nope"])
    assert bad.exit_code == 1 and "has no attribute 'nope'" in bad.output, bad.output
