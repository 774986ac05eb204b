"""Result identities users can trust: a results file or a sweep store is keyed by what
it computes (the config and an explicit, hand-bumped version), never by the source
text. A copy of the package with edited docstrings and comments, run in a subprocess,
must find the same hashes, reuse the results file and resume the sweep store that this
process wrote; a bumped version must recompute."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import probejax.reproduce as rp
import probejax.reproduce._theory as theory_runner
from probejax.io import code_version, config_hash
from probejax.sweep import Execution, StoreMismatchError, run_sweep
from probejax.sweep._runner import sweep_description

ROOT = Path(__file__).parents[1]
CFG = {"target": "t", "lams": [0.1, 1.0], "results_dir": "r"}

# The tiny sweep, defined once for this process and the subprocess.
TINY = """
import numpy as np
from probejax.sweep import Axis, Grid

def tiny_fn(cell, data):
    return {"y": cell["x"] * data["scale"] + 1.0}

def tiny_grid():
    return Grid([Axis("x", np.arange(6, dtype=np.float32))])

TINY_DATA = {"scale": np.float32(2.0)}
TINY_CONFIG = {"sweep": "tiny/1"}
"""
tiny = {}
exec(TINY, tiny)

# What the subprocess does in the edited copy: the hashes, run_target with a fake
# computation that counts its calls, and the interrupted sweep resumed.
SCRIPT = (
    TINY
    + """
import json, sys
import jax

args = json.loads(sys.argv[1])
jax.config.update("jax_enable_x64", args["x64"])
import probejax
import probejax.reproduce as rp
import probejax.reproduce._theory as runner
from probejax.io import code_version, config_hash
from probejax.sweep import Execution, run_sweep
from probejax.sweep._runner import sweep_description

calls = []
runner.compute = lambda config, log: calls.append(1) or {"answer": 42}
runner.plot = lambda results_path, figures_dir: []
out = {
    "file": probejax.__file__,
    "source": code_version()["source"],
    "config_hash": config_hash(args["cfg"]),
    "target_hash": rp.target_hash("theory", rp.load_config("theory", quick=True)),
    "sweep_hash": config_hash(sweep_description(tiny_grid(), TINY_DATA, TINY_CONFIG)),
}
o = rp.run_target("theory", quick=True, results_dir=args["res"], figures_dir=args["fig"])
out["reused"], out["computed"] = o.reused, len(calls)
try:
    r = run_sweep(tiny_fn, tiny_grid(), args["store"], data=TINY_DATA, config=TINY_CONFIG,
                  execution=Execution(progress=False))
    out["sweep"] = {"reused": r.cells_reused, "computed": r.cells_computed,
                    "y": r.values["y"].tolist(), "hash": r.config_hash}
except Exception as e:  # reported to the test that checks it
    out["sweep"] = {"error": repr(e)}
print(json.dumps(out))
"""
)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, (path, old)
    path.write_text(text.replace(old, new))


def _fake_theory(monkeypatch, calls: list) -> None:
    monkeypatch.setattr(
        theory_runner, "compute", lambda config, log: calls.append(config) or {"answer": 42}
    )
    monkeypatch.setattr(theory_runner, "plot", lambda results_path, figures_dir: [])


class Stop(Exception):
    pass


def _stop_after_first_chunk(event):
    raise Stop


@pytest.fixture(scope="module")
def edited(tmp_path_factory):
    """This process writes a results file (fake theory computation) and an interrupted
    sweep store; then a copy of the package whose docstrings and a comment were edited
    runs :data:`SCRIPT` on them. Returns (paths, stored results, done cells, output)."""
    base = tmp_path_factory.mktemp("identity")
    tree = base / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "probejax", tree / "probejax", ignore=ignore)
    shutil.copytree(ROOT / "experiments", tree / "experiments", ignore=ignore)
    doc = theory_runner.__doc__.splitlines()[0]
    _edit(tree / "probejax/reproduce/_theory.py", doc, doc + " Edited.")
    _edit(tree / "probejax/io/_results.py", "Results files:", "Results files (edited):")
    runner = tree / "probejax/sweep/_runner.py"
    _edit(runner, "def run_sweep(", "# an edited comment\ndef run_sweep(")

    paths = {"res": str(base / "results"), "fig": str(base / "figures")}
    paths["store"] = str(base / "store")
    with pytest.MonkeyPatch.context() as mp:
        calls = []
        _fake_theory(mp, calls)
        out = rp.run_target(
            "theory", quick=True, results_dir=paths["res"], figures_dir=paths["fig"]
        )
        assert not out.reused and len(calls) == 1
    stored = json.loads(out.results.read_text())
    with pytest.raises(Stop):
        run_sweep(
            tiny["tiny_fn"],
            tiny["tiny_grid"](),
            paths["store"],
            data=tiny["TINY_DATA"],
            config=tiny["TINY_CONFIG"],
            execution=Execution(cells_per_device=1, progress=_stop_after_first_chunk),
        )
    done = len(list(Path(paths["store"]).glob("chunk-*.npz")))
    assert done >= 1
    args = {**paths, "cfg": CFG, "x64": bool(jax.config.jax_enable_x64)}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(tree)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(args)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).resolve().is_relative_to(tree.resolve()), result["file"]
    return paths, stored, done, result


def test_docstring_edit_keeps_every_hash(edited):
    _, _, _, other = edited
    # the edit is seen (and would be recorded as provenance) ...
    assert other["source"] != code_version()["source"]
    # ... but no identity reads it
    assert other["config_hash"] == config_hash(CFG)
    assert other["target_hash"] == rp.target_hash("theory", rp.load_config("theory", quick=True))
    grid, data = tiny["tiny_grid"](), tiny["TINY_DATA"]
    assert other["sweep_hash"] == config_hash(sweep_description(grid, data, tiny["TINY_CONFIG"]))


def test_results_reused_after_docstring_edit_recomputed_after_version_bump(edited, monkeypatch):
    paths, stored, _, other = edited
    assert other["reused"] and other["computed"] == 0
    assert stored["version"] == theory_runner.VERSION == 1
    assert stored["versions"]["code"] == code_version()  # provenance of this process
    kw = dict(quick=True, results_dir=paths["res"], figures_dir=paths["fig"])
    calls = []
    _fake_theory(monkeypatch, calls)
    assert rp.run_target("theory", **kw).reused and not calls
    monkeypatch.setattr(theory_runner, "VERSION", 2)
    out = rp.run_target("theory", **kw)
    assert not out.reused and len(calls) == 1
    bumped = json.loads(out.results.read_text())
    assert bumped["version"] == 2 and bumped["config_hash"] != stored["config_hash"]
    assert rp.run_target("theory", **kw).reused and len(calls) == 1


def test_sweep_resumes_after_docstring_edit_and_refuses_a_bumped_version(edited, tmp_path):
    paths, _, done, other = edited
    n = tiny["tiny_grid"]().n_cells
    assert "error" not in other["sweep"], other["sweep"]
    assert other["sweep"]["reused"] == done and other["sweep"]["computed"] == n - done
    expected = (np.arange(n, dtype=np.float32) * 2.0 + 1.0).tolist()
    assert other["sweep"]["y"] == expected
    store = Path(paths["store"])
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["config_hash"] == other["sweep"]["hash"]
    assert manifest["code"] == code_version()  # provenance, never compared
    args = (tiny["tiny_fn"], tiny["tiny_grid"]())
    kw = dict(data=tiny["TINY_DATA"], execution=Execution(progress=False))
    r = run_sweep(*args, store, config=tiny["TINY_CONFIG"], **kw)
    assert r.cells_computed == 0 and r.cells_reused == n
    # a bumped version is another config: never mixed into this store ...
    with pytest.raises(StoreMismatchError, match='config.sweep: stored "tiny/1", now "tiny/2"'):
        run_sweep(*args, store, config={"sweep": "tiny/2"}, **kw)
    # ... and computed afresh in a directory of its own
    r = run_sweep(*args, tmp_path / "v2", config={"sweep": "tiny/2"}, **kw)
    assert r.cells_computed == n and r.config_hash != other["sweep"]["hash"]


def test_every_target_runner_and_library_sweep_has_an_explicit_version():
    import importlib

    for name, target in rp.TARGETS.items():
        version = rp.runner_version(name)
        assert version == importlib.import_module(target.runner).VERSION >= 1, name
    assert {rp.runner_version(n) for n in ("llm", "theory-llm", "controls", "steer")} == {2}
    from probejax.protocol import _compare, _controls, _layers
    from probejax.theory import _sweep

    versions = [
        _compare.COMPARE_VERSION,
        _controls.CONTROLS_VERSION,
        _layers.PROBE_SWEEP_VERSION,
        _layers.PATH_SWEEP_VERSION,
        _sweep.THEORY_SWEEP_VERSION,
    ]
    assert all(isinstance(v, str) and "/" in v for v in versions)
    assert len({v.split("/")[0] for v in versions}) == len(versions)


def test_a_runner_without_version_is_refused(monkeypatch):
    monkeypatch.delattr(theory_runner, "VERSION")
    with pytest.raises(TypeError, match="must define VERSION"):
        rp.target_hash("theory", {})
