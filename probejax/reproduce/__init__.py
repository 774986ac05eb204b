"""Reproduction targets: config (``experiments/<name>.py``) -> results file -> figures.

Each target has a Python config under ``experiments/`` at the repository root (the
parent of the ``probejax`` package directory) exposing ``get_config(quick) -> dict``,
and a runner module exposing ``VERSION`` (an int), ``compute(config, log) -> dict`` and
``plot(results_path, figures_dir) -> list[Path]``. :func:`run_target` writes
``<results_dir>/results.json`` (the config, its hash and the computed numbers) and then
the figures.

A results file is reused exactly when its ``config_hash`` equals :func:`target_hash`:
the SHA-256 of ``{config (output paths excluded), target name, runner VERSION}``
(:func:`probejax.io.config_hash`). The runner's ``VERSION`` is bumped by hand whenever
its computation changes what it writes; nothing from the source text enters the hash,
so editing a docstring or a comment reuses the results, and ``force`` recomputes
regardless. The sweep stores a runner fills carry their own versions
(``PROBE_SWEEP_VERSION``, ``COMPARE_VERSION``, ...), bumped with the library
computation they store. The package version, source digest and git commit are written
under ``versions.code`` for provenance, never compared.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ..io._results import code_version, config_hash, read_results, write_json_atomic
from ._sweeps import (
    optimal_curve as optimal_curve,
    overlap_stability as overlap_stability,
    phase_grid as phase_grid,
    simulation_sweep as simulation_sweep,
    theory_curves as theory_curves,
)


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    runner: str  # module with compute(config, log) and plot(results_path, figures_dir)
    config: str  # path of the config module, relative to the repository root
    description: str
    x64: bool = False  # run in float64 (the theory is written for it)


TARGETS: dict[str, Target] = {
    "theory": Target(
        "theory",
        "probejax.reproduce._theory",
        "experiments/theory.py",
        "replica theory vs simulations: accuracy, cosine, stability, optimal lambda, phase",
        x64=True,
    ),
    "llm": Target(
        "llm",
        "probejax.reproduce._llm",
        "experiments/llm.py",
        "SmolLM2-135M: RAPTOR and baselines on every layer (cities, sentiment), steering",
    ),
    "theory-llm": Target(
        "theory-llm",
        "probejax.reproduce._theory_llm",
        "experiments/theory_llm.py",
        "Gaussian-mixture theory vs probes on SmolLM2 layers (cities, sentiment), with a control",
        x64=True,
    ),
    "steer": Target(
        "steer",
        "probejax.reproduce._steer",
        "experiments/steer.py",
        "steering SmolLM2: directions x layers x strengths scored by VADER and A/B probability",
    ),
    "controls": Target(
        "controls",
        "probejax.reproduce._controls",
        "experiments/controls.py",
        "validity of SmolLM2 probes: held-out groups, permutation nulls, control tasks, "
        "k-direction probes, cross-dataset transfer",
    ),
    "headline-theory": Target(
        "headline-theory",
        "probejax.reproduce._theory",
        "experiments/headline_theory.py",
        "the theory target on smaller simulations: theory curves against simulation",
        x64=True,
    ),
    "headline-llm": Target(
        "headline-llm",
        "probejax.reproduce._llm",
        "experiments/headline_llm.py",
        "SmolLM2-135M on true/false city statements: RAPTOR's layer profile and baselines",
    ),
}
# What `probejax reproduce` runs without arguments: the headline in minutes. `--all`
# runs every other target (the full reproduction).
HEADLINE = ("headline-llm", "headline-theory")


@dataclasses.dataclass(frozen=True)
class Outputs:
    results: Path
    figures: list[Path]
    reused: bool
    seconds: float


def repo_root() -> Path:
    """The repository root: the parent of the ``probejax`` package directory."""
    return Path(__file__).resolve().parent.parent.parent


def load_config(name: str, quick: bool = False) -> dict:
    """``get_config(quick)`` of target ``name``'s config module."""
    if name not in TARGETS:
        raise ValueError(f"unknown reproduction target {name!r}; registered: {sorted(TARGETS)}.")
    path = repo_root() / TARGETS[name].config
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"{path.parent} does not exist: `probejax reproduce` needs the source checkout "
            "(configs live in experiments/ next to the probejax package; install with "
            "`pip install -e .` from the repository)."
        )
    if not path.is_file():
        raise FileNotFoundError(f"config of target {name!r} not found: {path}.")
    spec = importlib.util.spec_from_file_location(f"_probejax_experiment_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(quick=quick)


def _resolve(p: str | Path) -> Path:
    p = Path(p)
    return p if p.is_absolute() else repo_root() / p


def runner_version(name: str) -> int:
    """The explicit ``VERSION`` of target ``name``'s runner module (module docstring)."""
    module = importlib.import_module(TARGETS[name].runner)
    version = getattr(module, "VERSION", None)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise TypeError(
            f"runner {TARGETS[name].runner} of target {name!r} must define VERSION, a "
            f"positive int bumped when its computation changes; got {version!r}."
        )
    return version


def target_hash(name: str, config: dict) -> str:
    """What identifies target ``name``'s results for ``config``: the SHA-256 of
    ``{"config": config without output paths, "target": name, "version": the runner's
    VERSION}`` (:func:`probejax.io.config_hash`; no source text enters it)."""
    return config_hash(config, target=name, version=runner_version(name))


def run_target(
    name: str,
    *,
    quick: bool = False,
    force: bool = False,
    results_dir: str | Path | None = None,
    figures_dir: str | Path | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> Outputs:
    """Compute (or reuse) target ``name``'s results file, then draw its figures.

    **Arguments:** ``quick`` (the config's smoke-test variant), ``force`` (recompute
    even when a results file with the same :func:`target_hash` exists), ``results_dir`` and
    ``figures_dir`` overriding the config's (relative paths are from the repository
    root), ``log`` for progress lines.

    **Returns:** :class:`Outputs` (results path, figure paths, whether reused, seconds).
    """
    t0 = time.perf_counter()
    config = load_config(name, quick)
    if results_dir is not None:
        config["results_dir"] = str(results_dir)
    if figures_dir is not None:
        config["figures_dir"] = str(figures_dir)
    path = _resolve(config["results_dir"]) / "results.json"
    version = runner_version(name)
    digest = target_hash(name, config)
    old = None if force else read_results(path)
    reused = old is not None and old.get("config_hash") == digest
    runner = importlib.import_module(TARGETS[name].runner)
    if reused:
        log(f"reusing {path} (same config, version {version}: {digest[:12]}; --force recomputes)")
    else:
        import jax

        log(
            f"computing target {name!r}{' (quick)' if quick else ''}, version {version}, "
            f"hash {digest[:12]}"
        )
        results = runner.compute(config, log=log)
        write_json_atomic(
            path,
            {
                "target": name,
                "config": config,
                "config_hash": digest,
                "version": version,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "compute_seconds": round(time.perf_counter() - t0, 1),
                "versions": {
                    "jax": jax.__version__,
                    "python": platform.python_version(),
                    "code": code_version(),
                },
                **results,
            },
        )
        log(f"wrote {path}")
    figures = runner.plot(path, _resolve(config["figures_dir"]))
    for f in figures:
        log(f"wrote {f}")
    return Outputs(path, figures, reused, time.perf_counter() - t0)
