"""Probe every layer of a language model for a concept: extract (cached), compare, report.

:func:`llm_sweep` runs, for one model and one labelled text dataset:

1. extraction of every requested layer's pooled hidden states into an on-disk cache
   (:func:`probejax.llm.cached_activations`: reused when complete, resumed when
   interrupted, refused when it belongs to another model, pooling or dataset);
2. :func:`probejax.compare`: the chosen estimators (RAPTOR and the baselines by default,
   any registered name or import path) on every layer, on one shared split, with their
   directional stability;
3. optionally the RAPTOR authors' scikit-learn loop on every layer, same data and
   splits, for the training-cost comparison (wall time per layer side by side);
4. optionally (``controls=True``) the validity controls of
   :func:`probejax.protocol.control_layers` for RAPTOR (or the first method) on every
   layer: the held-out-group split beside the random one (when the dataset has
   groups), a permutation test, and a control task's selectivity;
5. ``out/results.json`` (per layer, per method: test accuracy, AUROC, chosen ridge,
   stability, fit seconds; the controls) and ``out/probes.npz`` (every method's
   raw-coordinate ``w``, ``b`` per layer, for steering), both written atomically.

With ``split="grouped"`` every split of the comparison (and its stability resampling)
keeps the dataset's groups whole (:attr:`TextDataset.groups`).

Figures are drawn from the results file by :mod:`probejax.llm._plots`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from ..estimators._registry import resolve_methods
from ..io import cache_root as user_cache_root
from ..io._atomic import write_npz_atomic
from ..io._results import write_json_atomic
from ..protocol._compare import compare as compare_estimators
from ..protocol._controls import chance_z, control_layers
from ..protocol._kdirection import k_direction_curve, random_direction_baseline
from ..protocol._sklearn_reference import sklearn_raptor
from ..protocol._splits import protocol_splits
from ._cache import cached_activations
from ._datasets import TextDataset, load_dataset
from ._model import LoadedModel, load_model

DEFAULT_METHODS = ("raptor", "mass_mean", "lda", "pca", "ridge_ls", "gcs")
# Stability (20 refits per layer and method) dominates a sweep's cost: by default it
# is measured on this many layers spread over the depth (``"all"`` for every layer).
DEFAULT_STABILITY_LAYERS = 8


def spread_layers(layers: list[int], k: int) -> list[int]:
    """``k`` of ``layers`` evenly spread over the list, the first and the last included
    (all of them when there are at most ``k``)."""
    if len(layers) <= k:
        return list(layers)
    picks = np.unique(np.round(np.linspace(0, len(layers) - 1, k)).astype(int))
    return [layers[i] for i in picks]


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s).strip("_")[:80]


def activation_cache_dir(
    root: Path, loaded: LoadedModel, dataset: TextDataset, pooling: str, point: str
) -> Path:
    """One cache folder per (model, revision, dtype, dataset content, pooling, hook
    point); float32, the default, adds no suffix to the folder name."""
    name = f"{_slug(dataset.name)}-{dataset.hash[:12]}-{pooling}-{point}"
    if loaded.dtype != "float32":
        name += f"-{loaded.dtype}"
    return Path(root) / "activations" / _slug(f"{loaded.model_id}@{loaded.revision}") / name


def probe_arrays(layers, probes: dict) -> dict[str, np.ndarray]:
    """The ``probes.npz`` content: ``layers`` and, for each ``method: (w, b)`` of
    ``probes``, ``<method>_w`` ``(L, d)`` and ``<method>_b`` ``(L,)``."""
    out = {"layers": np.asarray(layers)}
    for m, (w, b) in probes.items():
        out[f"{m}_w"], out[f"{m}_b"] = np.asarray(w), np.asarray(b)
    return out


def _cosine(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def sklearn_layers(X, y, splits, layers, which, log) -> dict:
    """The authors' loop on the layers ``which`` (a subset of ``layers``, the layers of
    ``X``'s rows): seconds, chosen C, test accuracy, ``w``."""
    tr, va, te = (np.asarray(a) for a in (splits.train_sub, splits.val, splits.test))
    rows = []
    for layer in which:
        rows.append(sklearn_raptor(np.asarray(X[layers.index(layer)], np.float64), y, tr, va, te))
        log(f"  scikit-learn layer {layer}: {rows[-1]['total_seconds']:.2f} s")
    return {
        "layers": list(which),
        "total_seconds": np.array([r["total_seconds"] for r in rows]),
        "sweep_seconds": np.array([r["sweep_seconds"] for r in rows]),
        "C": np.array([r["C"] for r in rows]),
        "test_accuracy": np.array([r["test_accuracy"] for r in rows]),
        "w": np.stack([r["w"] for r in rows]),
    }


@dataclasses.dataclass(frozen=True)
class SweepOutputs:
    """``results`` (as written to ``results.json``); ``probes``: per method ``(w, b)``,
    raw coordinates, shapes ``(layers, d)`` and ``(layers,)``; the paths written."""

    results: dict
    probes: dict
    results_path: Path | None
    probes_path: Path | None


def llm_sweep(
    model: str | LoadedModel = "default",
    data: str | Path | TextDataset = "cities",
    out: str | Path | None = None,
    *,
    dtype: str = "float32",
    pooling: str = "last",
    point: str = "block_output",
    layers: list[int] | None = None,
    batch_size: int = 16,
    max_examples: int | None = None,
    max_length: int | None = None,
    truncate: bool = False,
    seed: int = 0,
    methods=DEFAULT_METHODS,
    stability_runs: int = 20,
    drop: float = 0.2,
    stability_of: list[str] | None = None,
    sklearn_reference: bool | list[int] = False,
    stability_layers: list[int] | str | None = None,
    cache_root: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    split: str = "random",
    groups: list[str] | None = None,
    controls: bool = False,
    permutations: int = 50,
    k_max: int = 8,
) -> SweepOutputs:
    """Run the whole sweep (module docstring) and write ``out/results.json``.

    **Arguments:** ``model`` ("default", a local folder, a hub id, or a loaded model);
    ``dtype`` of the forward pass when ``model`` is loaded here (``"bfloat16"`` extracted
    2.6x faster than float32 on a 2-core CPU with bf16 matrix units, activations within
    1.4% of float32: ``benchmarks/llm_extraction.py``); ``data`` (a bundled dataset
    name, a CSV/JSONL path, or a :class:`TextDataset`);
    ``out`` folder (``None``: nothing written); ``pooling`` last/mean/max; hook
    ``point``; ``layers`` (``None``: all); extraction ``batch_size``, ``max_length``,
    ``truncate``; ``max_examples`` (stratified subsample of the dataset); ``seed`` for
    the subsample and the splits; ``methods``: registered names or import paths (a
    comma-separated string, a list, or ``{name: factory kwargs | Estimator}``; see
    :func:`probejax.estimators.resolve_methods`); ``stability_runs``, ``drop``: the
    stability runs; ``stability_of``: names whose stability is measured (default: every
    method but those registered as costly, e.g. GCS);
    ``sklearn_reference``: time the authors' loop on every layer (``True``), on the
    listed layers (a list: it takes 10-100 s per layer on a 2-core CPU), or not at all
    (``False``, the default); ``cache_root`` for activations (default
    ``$PROBEJAX_CACHE`` or ``~/.cache/probejax``); ``stability_layers``: layers whose
    stability is measured (a list, ``"all"``, or ``None``: ``DEFAULT_STABILITY_LAYERS``
    of the swept layers spread over the depth, :func:`spread_layers`); ``split``:
    ``"random"`` (stratified, as the RAPTOR authors split) or ``"grouped"`` (whole
    groups, none shared between train, validation and test); ``groups``: which of the
    dataset's group kinds to use (default all, the held-out unit first); ``controls``:
    run the validity controls with ``permutations`` label shuffles per layer, and at
    the best (held-out-group) layer the k-direction curve up to ``k_max`` directions
    and the random-direction baseline (:func:`direction_controls`).

    With ``out``, every (method, layer) result is kept in resumable stores under
    ``out/store`` (:func:`probejax.compare`): an interrupted sweep resumes, and a changed
    method, split or code version is recomputed.

    **Returns:** :class:`SweepOutputs` with the results dict (as written).
    """
    estimators, labels, stable = resolve_methods(methods)
    stability_of = stable if stability_of is None else list(stability_of)
    dataset = (
        data
        if isinstance(data, TextDataset)
        else load_dataset(data, max_examples=max_examples, seed=seed)
    )
    loaded = model if isinstance(model, LoadedModel) else load_model(model, dtype=dtype)
    layers = list(range(loaded.n_layers)) if layers is None else [int(i) for i in layers]
    cache = activation_cache_dir(
        Path(cache_root) if cache_root else user_cache_root(), loaded, dataset, pooling, point
    )
    log(f"{dataset.name}: {len(dataset)} texts {dataset.counts()}; model {loaded.model_id}")
    t0 = time.perf_counter()
    X = cached_activations(
        loaded,
        dataset.texts,
        dataset.hash,
        cache,
        layers=layers,
        pooling=pooling,
        point=point,
        batch_size=batch_size,
        max_length=max_length,
        truncate=truncate,
        progress=progress,
    )
    t_extract = time.perf_counter() - t0
    log(f"activations {tuple(X.shape)} from {cache} ({t_extract:.1f} s)")
    y = np.asarray(dataset.labels)
    group_array = dataset.group_array(groups)
    if split not in ("random", "grouped"):
        raise ValueError(f"split must be 'random' or 'grouped', got {split!r}.")
    if split == "grouped" and group_array is None:
        raise ValueError(
            f"split='grouped' needs groups, and dataset {dataset.name!r} has none "
            "(a CSV/JSONL file gives them in a 'group' column)."
        )
    if stability_layers is None:
        stability_layers = spread_layers(layers, DEFAULT_STABILITY_LAYERS)
    if isinstance(stability_layers, str):
        if stability_layers != "all":
            raise ValueError(f"stability_layers must be a list or 'all', got {stability_layers!r}.")
        stab_rows = None
    else:
        missing = [i for i in stability_layers if i not in layers]
        if missing:
            raise ValueError(f"stability_layers {missing} are not among the swept {layers}.")
        stab_rows = [layers.index(i) for i in stability_layers]
    # where the layer engine keeps its resumable results: one root for the comparison
    # and the controls (which write their own subfolder of it)
    store = dict(
        layer_ids=layers,
        fingerprint=f"{cache}:{dataset.hash}",
        directory=None if out is None else Path(out) / "store",
        progress=progress,
    )
    comp = compare_estimators(
        estimators,
        X,
        y,
        jax.random.key(seed),
        stability_runs=stability_runs,
        drop=drop,
        stability_of=stability_of,
        stability_rows=stab_rows,
        **store,
        log=lambda s: log("  " + s),
        groups=group_array if split == "grouped" else None,
    )
    splits = comp["splits"]
    methods = comp["methods"]
    if sklearn_reference is True:
        sk_which = layers
    elif sklearn_reference:
        sk_which = [int(i) for i in sklearn_reference]
        missing = [i for i in sk_which if i not in layers]
        if missing:
            raise ValueError(
                f"sklearn_reference layers {missing} are not among the swept {layers}."
            )
    else:
        sk_which = []
    sk = sklearn_layers(X, y, splits, layers, sk_which, log) if sk_which else None

    per_method = {
        name: {
            k: v
            for k, v in res.items()
            if k
            in (
                "test_accuracy",
                "test_auroc",
                "lam",
                "stability",
                "stability_signed",
                "fit_seconds",
                "stability_seconds",
            )
        }
        for name, res in methods.items()
    }
    raptor = methods.get("raptor")
    results = {
        "model": {
            "id": loaded.model_id,
            "revision": loaded.revision,
            "dtype": loaded.dtype,
            "n_layers": loaded.n_layers,
            "d": loaded.d_model,
        },
        "dataset": {
            "name": dataset.name,
            "n": len(dataset),
            "hash": dataset.hash,
            "source": dataset.source,
            "licence": dataset.licence,
            "label_names": list(dataset.label_names),
        },
        "pooling": pooling,
        "point": point,
        "layers": layers,
        "splits": {k: len(np.asarray(getattr(splits, k))) for k in ("train_sub", "val", "test")},
        "stability": {
            "runs": stability_runs,
            "drop": drop,
            "layers": layers if stab_rows is None else [layers[r] for r in stab_rows],
        },
        "labels": labels,
        "extract_seconds": t_extract,
        "cache": str(cache),
        "methods": per_method,
    }
    if sk is not None:
        results["sklearn"] = {
            "layers": sk["layers"],
            "total_seconds": sk["total_seconds"],
            "sweep_seconds": sk["sweep_seconds"],
            "C": sk["C"],
            "test_accuracy": sk["test_accuracy"],
        }
        if raptor is not None:
            results["sklearn"]["cos_to_raptor"] = [
                _cosine(a, raptor["w"][layers.index(i)])
                for a, i in zip(sk["w"], sk["layers"], strict=True)
            ]
    if raptor is not None:
        best = int(np.argmax(raptor["test_accuracy"]))
        results["best"] = {
            "layer": layers[best],
            "raptor_test_accuracy": float(raptor["test_accuracy"][best]),
            "by_method": {
                m: {
                    "layer": layers[int(np.argmax(r["test_accuracy"]))],
                    "test_accuracy": float(np.max(r["test_accuracy"])),
                }
                for m, r in methods.items()
            },
        }
    results["split"] = {"kind": split, "groups": list(dataset.groups) if groups is None else groups}
    if controls:
        name = "raptor" if "raptor" in estimators else next(iter(estimators))
        results["controls"] = layer_controls_summary(
            control_layers(
                estimators[name],
                X,
                y,
                jax.random.key(seed),
                groups=group_array,
                n_permutations=permutations,
                **store,
            ),
            name,
            layers,
            results["split"]["groups"] if group_array is not None else [],
            permutations,
        )
        ctrl = results["controls"]
        at = ctrl["best_grouped" if group_array is not None else "best"]["layer"]
        log(f"  k-direction probe and random directions at layer {at}")
        ctrl["directions"] = direction_controls(
            np.asarray(X[layers.index(at)]), y, group_array, seed, k_max, permutations
        )
        ctrl["directions"]["layer"] = at
        for line in controls_headline(results["controls"]):
            log("  " + line)
    probes = {m: (np.asarray(r["w"]), np.asarray(r["b"])) for m, r in methods.items()}
    results_path = probes_path = None
    if out is not None:
        out = Path(out)
        results_path, probes_path = out / "results.json", out / "probes.npz"
        write_npz_atomic(probes_path, probe_arrays(layers, probes))
        write_json_atomic(results_path, results)
        log(f"wrote {results_path} and {probes_path}")
    return SweepOutputs(results, probes, results_path, probes_path)


def layer_controls_summary(ctrl, method: str, layers, group_kinds, permutations) -> dict:
    """The ``results.json`` entry of :func:`probejax.protocol.control_layers`' output
    ``(Controls, ControlSplits)``: per-layer arrays and the best layer's summary."""
    c, cs = ctrl
    perm = c.permutation
    n_test = int(np.size(cs.random.test))
    out = {
        "method": method,
        "groups": list(group_kinds),
        "permutations": int(permutations),
        "permutation_split": "grouped" if cs.grouped is not None else "random",
        "n_test": n_test,
        "accuracy": np.asarray(c.accuracy),
        "auroc": np.asarray(c.auroc),
        "control_accuracy": np.asarray(c.control_accuracy),
        "selectivity": np.asarray(c.selectivity),
        "p_value": np.asarray(perm.p_accuracy),
        "p_value_auroc": np.asarray(perm.p_auroc),
        "null_mean": np.asarray(perm.null_accuracy).mean(axis=-1),
        "null_q95": np.quantile(np.asarray(perm.null_accuracy), 0.95, axis=-1),
        "chance_z": chance_z(c.accuracy, n_test),
    }
    if cs.grouped is not None:
        n_grouped = int(np.size(cs.grouped.test))
        out.update(
            n_test_grouped=n_grouped,
            n_train_grouped=int(np.size(cs.grouped.train_sub) + np.size(cs.grouped.val)),
            grouped_accuracy=np.asarray(c.grouped_accuracy),
            grouped_auroc=np.asarray(c.grouped_auroc),
            grouped_chance_z=chance_z(c.grouped_accuracy, n_grouped),
        )
    best = int(np.argmax(out["accuracy"]))
    out["best"] = {
        "layer": layers[best],
        **{
            k: float(out[k][best])
            for k in (
                "accuracy",
                "grouped_accuracy",
                "control_accuracy",
                "selectivity",
                "p_value",
            )
            if k in out
        },
    }
    if cs.grouped is not None:
        g = int(np.argmax(out["grouped_accuracy"]))
        out["best_grouped"] = {"layer": layers[g], "accuracy": float(out["grouped_accuracy"][g])}
    return out


def direction_controls(
    X, y, groups, seed: int, k_max: int = 8, permutations: int = 50, n_random: int = 200
) -> dict:
    """At one layer, on the validity split (grouped when ``groups`` is given, else the
    random one; from ``jax.random.key(seed)``): the k-direction probe's test accuracy
    and AUROC for k = 1..``k_max`` with k* from ``permutations`` label shuffles per step
    (:func:`probejax.protocol.k_direction_curve`), and ``n_random`` random directions'
    test metrics (:func:`probejax.protocol.random_direction_baseline`)."""
    key = jax.random.key(seed)
    splits = protocol_splits(key, y, groups=groups)
    kd = k_direction_curve(X, y, splits, key, k_max=k_max, n_permutations=permutations)
    rd = random_direction_baseline(X, y, splits, key, n_directions=n_random)
    return {
        "split": "grouped" if groups is not None else "random",
        "k": list(range(1, k_max + 1)),
        "accuracy": np.asarray(kd.accuracy),
        "auroc": np.asarray(kd.auroc),
        "step_auroc": np.asarray(kd.step_auroc),
        "step_p_value": np.asarray(kd.p_values),
        "k_star": int(kd.k_star),
        "random_direction": {
            f: float(getattr(rd, f))
            for f in ("mean_accuracy", "mean_auroc", "q95_accuracy", "q95_auroc")
        },
    }


def controls_headline(ctrl: dict) -> list[str]:
    """Lines summarising a sweep's controls (printed by the CLI)."""
    b = ctrl["best"]
    lines = [
        f"controls ({ctrl['method']}, {ctrl['permutations']} permutations): best layer "
        f"{b['layer']} accuracy {b['accuracy']:.3f}, control task {b['control_accuracy']:.3f} "
        f"(selectivity {b['selectivity']:+.3f}), permutation p = {b['p_value']:.3f} "
        f"({ctrl['permutation_split']} split)"
    ]
    z = np.asarray(ctrl["chance_z"])
    lines.append(
        f"random split: {int((z < -1.96).sum())} layer(s) significantly below chance "
        f"(min z {z.min():+.1f})"
    )
    if "grouped_accuracy" in ctrl:
        zg = np.asarray(ctrl["grouped_chance_z"])
        bg = ctrl["best_grouped"]
        lines.append(
            f"held-out groups ({', '.join(ctrl['groups'])}): best layer {bg['layer']} accuracy "
            f"{bg['accuracy']:.3f}; {int((zg < -1.96).sum())} layer(s) significantly below "
            f"chance (min z {zg.min():+.1f})"
        )
    if "directions" in ctrl:
        d = ctrl["directions"]
        lines.append(
            f"layer {d['layer']} ({d['split']} split): k-direction probe AUROC "
            f"{d['auroc'][0]:.3f} (k = 1) to {d['auroc'][-1]:.3f} (k = {d['k'][-1]}), "
            f"k* = {d['k_star']}; random directions AUROC {d['random_direction']['mean_auroc']:.3f} "
            f"(95th pct. {d['random_direction']['q95_auroc']:.3f})"
        )
    return lines


def layer_table(
    results: dict, field: str = "test_accuracy", suffix: str = "acc"
) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)``: per layer where any method has a finite ``field``, each
    method's value as a string (headers ``"<method> <suffix>"``)."""
    methods = results["methods"]
    values = {m: np.asarray(r[field], float) for m, r in methods.items()}
    header = ["layer", *(f"{m} {suffix}" for m in methods)]
    rows = []
    for i, layer in enumerate(results["layers"]):
        if any(np.isfinite(v[i]) for v in values.values()):
            rows.append([str(layer)] + [f"{v[i]:.3f}" for v in values.values()])
    return header, rows
