r"""Reproduction target ``controls``: validity controls of probes on SmolLM2 layers
(config: ``experiments/controls.py``).

:func:`compute` loads the model once and, per dataset,

1. runs :func:`probejax.llm.llm_sweep` with RAPTOR only and ``controls=True``: on
   every layer the random-split accuracy, the held-out-group accuracy (the dataset's
   groups: countries and cities, or contrast pairs), a permutation test (``P`` label
   shuffles, the whole protocol rerun; on the held-out-group split when there is one)
   and a control task's selectivity (:func:`probejax.protocol.control_layers`);
2. at the best held-out-group layer (best random-split layer without groups), the
   k-direction probe's curve with k* from permutation nulls
   (:func:`probejax.protocol.k_direction_curve`) and the random-direction baseline
   (:func:`probejax.protocol.random_direction_baseline`), on the same split;

then the transfer matrix at ``transfer_layer``: RAPTOR fitted on dataset :math:`A`'s
training part (train_sub + val, C chosen on val), scored on dataset :math:`B`'s test
part (the diagonal: :math:`A`'s own test part). AUROC is reported (threshold-free:
different prompt formats shift the activations, which moves a fixed threshold), with
accuracy beside it.

:func:`plot` draws ``controls_layers.png`` (per dataset: random vs held-out-group
accuracy, control task, permutation null band, chance band), ``controls_kdir.png``
(accuracy against k, k* marked, the random-direction 95th percentile) and
``controls_transfer.png`` (the AUROC matrix).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

# The computation's version, bumped by hand whenever what compute() writes changes (its
# own code or the library code it calls); the results file is keyed by it and the config
# (probejax.reproduce.target_hash), never by the source text.
VERSION = 2

__all__ = ["compute", "headline", "plot"]


def _layer_data(loaded, dataset, config, layer: int):
    """``(X, y)`` of ``dataset`` at ``layer`` from the activation cache the sweep filled."""
    from ..io import cache_root
    from ..llm._cache import cached_activations
    from ..llm._extract import ExtractionSpec
    from ..llm._sweep import activation_cache_dir

    layers = list(range(loaded.n_layers)) if config["layers"] is None else config["layers"]
    spec = ExtractionSpec(
        layers=layers,
        pooling=config["pooling"],
        site=config["site"],
        batch_size=config["batch_size"],
    )
    cache = activation_cache_dir(cache_root(), loaded, dataset, spec)
    A = cached_activations(loaded, dataset.texts, dataset.hash, cache, spec, progress=False)
    return np.asarray(A[layers.index(layer)]), np.asarray(dataset.labels)


def _transfer(loaded, datasets: dict, config, log) -> dict:
    """The config's estimator (RAPTOR) fitted on each dataset's training part, scored on
    every dataset's test part."""
    from ..core._metrics import accuracy, auroc
    from ..estimators import get_estimator
    from ..protocol import protocol_splits

    layer = config["transfer_layer"]
    est = get_estimator(config["estimator"])
    data = {}
    for name, ds in datasets.items():
        X, y = _layer_data(loaded, ds, config, layer)
        y = np.where(y > 0, 1.0, -1.0)
        splits = protocol_splits(jax.random.key(config["seed"]), y)
        data[name] = (X, y, splits)
    names = list(data)
    acc = np.zeros((len(names), len(names)))
    auc = np.zeros_like(acc)
    fit = jax.jit(lambda X, y, tr, va: est.fit_with_validation(X, y, tr, va, None))
    for i, a in enumerate(names):
        Xa, ya, sa = data[a]
        probe = fit(Xa, ya, sa.train_sub, sa.val)
        for j, b in enumerate(names):
            Xb, yb, sb = data[b]
            te = np.asarray(sb.test)
            s = probe.decision_function(Xb[te])
            acc[i, j], auc[i, j] = float(accuracy(yb[te], s)), float(auroc(yb[te], s))
        log(
            f"  transfer from {a}: AUROC "
            + ", ".join(f"{b} {v:.2f}" for b, v in zip(names, auc[i], strict=True))
        )
    return {"layer": layer, "datasets": names, "accuracy": acc, "auroc": auc}


def compute(config: dict, log: Callable[[str], None] = print) -> dict:
    """Run the controls of ``config`` (module docstring); **returns** the results dict."""
    from ..llm._datasets import load_dataset
    from ..llm._model import load_model
    from ..llm._sweep import ExtractionSpec, llm_sweep
    from ..protocol import ControlsSpec, SplitSpec
    from . import _resolve

    loaded = load_model(config["model"])
    stores = _resolve(config["results_dir"]) / "sweeps"  # resumable per-layer results
    out, datasets = {}, {}
    for name, max_examples in config["datasets"].items():
        log(f"controls on {name}")
        ds = load_dataset(name, max_examples=max_examples, seed=config["seed"])
        name = ds.name
        datasets[name] = ds
        sweep = llm_sweep(
            loaded,
            ds,
            stores / ds.name,
            extraction=ExtractionSpec(
                layers=config["layers"],
                pooling=config["pooling"],
                site=config["site"],
                batch_size=config["batch_size"],
            ),
            estimators=[config["estimator"]],
            split=SplitSpec(),  # the random split; the controls add the grouped one
            stability=None,
            controls=ControlsSpec(permutations=config["permutations"], k_max=config["k_max"]),
            seed=config["seed"],
            log=lambda s: log("  " + s),
        )
        res = sweep.results
        ctrl = res["controls"]
        out[name] = {
            "n": len(ds),
            "groups": list(ds.groups),
            "layers": res["layers"],
            "controls": ctrl,
            "directions_layer": ctrl["directions"]["layer"],
            "directions": ctrl.pop("directions"),
        }
    transfer = _transfer(loaded, datasets, config, log)
    return {"model": loaded.model_id, "datasets": out, "transfer": transfer}


def _read(results) -> dict:
    if isinstance(results, dict):
        return results
    return json.loads(Path(results).read_text())


def plot(results: Path | str | dict, figures_dir: Path | str) -> list[Path]:
    """The three figures of the module docstring, from the results file."""
    from matplotlib.figure import Figure

    res = _read(results)
    res = res.get("results", res)
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(res["datasets"])
    paths = []

    fig = Figure(figsize=(4.2 * len(names), 3.8), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        d = res["datasets"][name]
        c, x = d["controls"], np.asarray(d["layers"])
        ax.plot(x, c["accuracy"], marker="o", ms=3, label="random split")
        if "grouped_accuracy" in c:
            ax.plot(x, c["grouped_accuracy"], marker="s", ms=3, label="held-out groups")
        ax.plot(x, c["control_accuracy"], ls="--", label="control task")
        ax.fill_between(x, c["null_mean"], c["null_q95"], color="grey", alpha=0.3,
                        label="permutation null (mean-95%)")  # fmt: skip
        se = 1.96 * np.sqrt(0.25 / c["n_test"])
        ax.axhspan(0.5 - se, 0.5 + se, color="k", alpha=0.06)
        ax.axhline(0.5, color="k", lw=0.8)
        groups = ", ".join(d["groups"]) or "none"
        ax.set(title=f"{name} (n = {d['n']}; groups: {groups})", xlabel="layer",
               ylabel="RAPTOR test accuracy", ylim=(0.2, 1.02))  # fmt: skip
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{res['model'].split('/')[-1]}: validity controls per layer", fontsize=10)
    paths.append(out / "controls_layers.png")
    fig.savefig(paths[-1], dpi=110)

    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for name in names:
        dd = res["datasets"][name]["directions"]
        line = ax.plot(dd["k"], dd["auroc"], marker="o", ms=3,
                       label=f"{name} (layer {res['datasets'][name]['directions_layer']}, "
                       f"k* = {dd['k_star']})")[0]  # fmt: skip
        if dd["k_star"] > 0:
            ax.plot(dd["k_star"], dd["auroc"][dd["k_star"] - 1], marker="*", ms=12,
                    color=line.get_color())  # fmt: skip
        ax.axhline(dd["random_directions"]["q95_auroc"], color=line.get_color(), ls=":", lw=1)
    ax.set(xlabel="k (INLP directions)", ylabel="test AUROC of the k-direction probe",
           title="k-direction probes (dotted: random directions, 95th pct.)")  # fmt: skip
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    paths.append(out / "controls_kdir.png")
    fig.savefig(paths[-1], dpi=110)

    t = res["transfer"]
    M = np.asarray(t["auroc"])
    fig = Figure(figsize=(1.3 * len(t["datasets"]) + 2.5, 1.1 * len(t["datasets"]) + 1.5),
                 layout="constrained")  # fmt: skip
    ax = fig.add_subplot()
    im = ax.imshow(M, vmin=0, vmax=1, cmap="RdBu_r")
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(t["datasets"])), t["datasets"], rotation=30, ha="right")
    ax.set_yticks(range(len(t["datasets"])), t["datasets"])
    ax.set(xlabel="tested on", ylabel="trained on",
           title=f"RAPTOR transfer at layer {t['layer']} (test AUROC)")  # fmt: skip
    ax.title.set_fontsize(9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    paths.append(out / "controls_transfer.png")
    fig.savefig(paths[-1], dpi=110)
    return paths


def headline(results: dict) -> list[str]:
    """One line per dataset: best-layer accuracy, random vs held-out groups, selectivity,
    p-value, k*."""
    res = results.get("results", results)
    lines = []
    for name, d in res["datasets"].items():
        c = d["controls"]
        b = c["best"]
        line = (
            f"{name}: best layer {b['layer']} random split {b['accuracy']:.3f}, selectivity "
            f"{b['selectivity']:+.3f}"
        )
        if "best_grouped" in c:
            g = c["best_grouped"]
            zmin = float(np.min(c["grouped_chance_z"]))
            line += (
                f"; held-out groups best layer {g['layer']} {g['accuracy']:.3f} "
                f"(min z vs chance {zmin:+.1f}, random split min z "
                f"{float(np.min(c['chance_z'])):+.1f})"
            )
        line += f"; permutation p {b['p_value']:.3f}; k* = {d['directions']['k_star']}"
        lines.append(line)
    return lines
