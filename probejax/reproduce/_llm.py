"""Reproduction target ``llm``: probe-then-steer on a language model (config:
``experiments/llm.py``).

:func:`compute` loads the model once, runs :func:`probejax.llm.llm_sweep` on every
dataset of the config (extraction cached under ``~/.cache/probejax``; RAPTOR, the
baselines, stability and the scikit-learn cost reference on every layer), saves each
dataset's probes next to the results file, then steers generation with the primary
estimator's probe (RAPTOR's) of the ``steer`` dataset at its best layer (target steering towards and away)
and measures the probe on the re-encoded generations. :func:`plot` draws
``llm_<dataset>_{accuracy,stability,cost}.png`` from the results file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

# The computation's version, bumped by hand whenever what compute() writes changes (its
# own code or the library code it calls); the results file is keyed by it and the config
# (probejax.reproduce.target_hash), never by the source text.
VERSION = 2

__all__ = ["compute", "headline", "plot"]


def _steering(loaded, cfg: dict, sweep, log) -> list[dict]:
    """The steering demo at the primary estimator's best layer (plus ``layer_offsets``),
    all layers steered together, along that estimator's probe."""
    from ._steer import steering_grid

    best = sweep.results["best"]["layer"]
    layers_all = sweep.results["layers"]
    layers = [best + o for o in cfg["layer_offsets"] if best + o in layers_all]
    w, b = sweep.probes[sweep.results["best"]["estimator"]]
    rows = [layers_all.index(i) for i in layers]
    items = [(layers, w[rows], b[rows])]
    return steering_grid(loaded, items, cfg["prompts"], cfg["targets"], cfg["max_new_tokens"], log)


def compute(config: dict, log: Callable[[str], None] = print) -> dict:
    """Run the sweeps and the steering demo of ``config``; **returns** the results dict."""
    from ..io._atomic import write_npz_atomic
    from ..llm._datasets import load_dataset
    from ..llm._model import load_model
    from ..llm._sweep import ExtractionSpec, GroupedSplit, llm_sweep, probe_arrays
    from ..protocol import SplitSpec, Spread, StabilitySpec
    from . import _resolve

    loaded = load_model(config["model"])
    results_dir = _resolve(config["results_dir"])
    datasets, sweeps = {}, {}
    runs = [
        (name, kind) for name in config["datasets"] for kind in config.get("splits", ["random"])
    ]
    for name, kind in runs:
        data = load_dataset(name, max_examples=config["max_examples"], seed=config["seed"])
        if kind == "grouped" and not data.groups:
            continue  # no groups to keep whole: the random split is the only one
        key = name if kind == "random" else f"{name}_{kind}"
        log(f"sweep {name} ({kind} split)")
        stability = config["stability"]
        sweep = llm_sweep(
            loaded,
            data,
            None,
            extraction=ExtractionSpec(
                layers=config["layers"],
                pooling=config["pooling"],
                site=config["site"],
                batch_size=config["batch_size"],
            ),
            estimators=config["estimators"],
            # "random": the authors' stratified protocol, as RAPTOR reports it;
            # "grouped": no group (a country, a contrast pair) shared by train and test
            split=SplitSpec() if kind == "random" else GroupedSplit(),
            stability=StabilitySpec(
                runs=stability["runs"],
                drop=stability["drop"],
                layers=Spread(stability["spread"])
                if "spread" in stability
                else stability["layers"],
            ),
            sklearn=config["sklearn"],
            seed=config["seed"],
            log=lambda s: log(f"  {s}"),
        )
        write_npz_atomic(
            results_dir / f"{key}_probes.npz", probe_arrays(sweep.results["layers"], sweep.probes)
        )
        datasets[key], sweeps[key] = sweep.results, sweep
    steer_cfg = config.get("steer")
    if not steer_cfg:  # e.g. the headline run: the layer profile alone
        return {"datasets": datasets}
    steering = _steering(loaded, steer_cfg, sweeps[steer_cfg["dataset"]], log)
    return {"datasets": datasets, "steering": steering}


def plot(results: Path | str | dict, figures_dir: Path | str) -> list[Path]:
    """``llm_<dataset>_{accuracy,stability,cost}.png`` for every dataset of the results."""
    from ..llm._plots import plot_sweep_results

    if not isinstance(results, dict):
        with open(results) as f:
            results = json.load(f)
    paths = []
    for name, res in results["datasets"].items():
        paths += plot_sweep_results(res, figures_dir, prefix=f"llm_{name}")
    return paths


def headline(results: dict) -> list[str]:
    """The lines ``probejax reproduce`` prints at the end: per dataset and method, the
    best layer and its test accuracy, and the stability there when measured."""
    lines = []
    for key, res in results["datasets"].items():
        split = res.get("split", {}).get("kind", "random")
        lines.append(
            f"{res.get('dataset', {}).get('name', key)}, {split} split ({res['model']['id']}, "
            f"{len(res['layers'])} layers):"
        )
        for method, r in res["estimators"].items():
            acc = [float("nan") if v is None else v for v in r["test_accuracy"]]
            best = max(range(len(acc)), key=lambda i: acc[i])
            stab = r["stability"][best]
            tail = "" if stab is None or stab != stab else f", stability {stab:.2f}"
            label = res.get("labels", {}).get(method, method)
            lines.append(
                f"  {label:>24}: best layer {res['layers'][best]:>2}, "
                f"test accuracy {acc[best]:.3f}{tail}"
            )
    return lines
