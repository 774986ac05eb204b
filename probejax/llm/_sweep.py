"""Probe every layer of a language model for a concept: extract (cached), compare, report.

:func:`llm_sweep` runs, for one model and one labelled text dataset:

1. extraction of every requested layer's pooled hidden states into an on-disk cache
   (:func:`probejax.llm.cached_activations`: reused when complete, resumed when
   interrupted, refused when it belongs to another model, pooling or dataset);
2. :func:`probejax.compare`: the chosen estimators (RAPTOR and the baselines by default,
   any registered name or import path) on every layer, on one shared split, with their
   directional stability;
3. optionally the RAPTOR authors' scikit-learn loop on the chosen layers, same data and
   splits, for the training-cost comparison (wall time per layer side by side) with
   the estimator the loop reproduces (found by its structure, whatever its name);
4. optionally (``controls=ControlsSpec(...)``) the validity controls of
   :func:`probejax.protocol.control_layers` for the first estimator on every layer: the
   held-out-group split beside the random one (when the dataset has groups), a
   permutation test, a control task's selectivity, and at the best layer the
   k-direction curve and the random-direction baseline;
5. ``out/results.json`` (per layer, per estimator: test accuracy, AUROC, chosen ridge,
   stability, fit seconds; the controls) and ``out/probes.npz`` (every estimator's
   raw-coordinate ``w``, ``b`` per layer, for steering), both written atomically.

Every option is a spec object checked before the model is loaded: the estimators
resolve, the dataset loads and has the groups a :class:`GroupedSplit` asks for, the
extraction options are known, and the layers of the stability, scikit-learn and
extraction options agree (against the model's depth before any text is extracted).

Figures are drawn from the results file by :mod:`probejax.llm._plots`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

from ..estimators import DEFAULT_ESTIMATORS
from ..estimators._raptor import raptor
from ..estimators._registry import registered, resolve_methods
from ..io import cache_root as user_cache_root
from ..io._atomic import write_npz_atomic
from ..io._results import write_json_atomic
from ..protocol._compare import compare
from ..protocol._controls import chance_z, control_layers
from ..protocol._engine import describe_estimator
from ..protocol._kdirection import k_direction_curve, random_direction_baseline
from ..protocol._sklearn_reference import sklearn_raptor
from ..protocol._specs import ControlsSpec, SplitSpec, Spread, StabilitySpec
from ..protocol._splits import protocol_splits
from ..sweep._execution import Execution
from ._cache import cached_activations
from ._datasets import TextDataset, load_dataset
from ._extract import check_options
from ._model import LoadedModel, load_model

# Stability (20 refits per layer and estimator) dominates a sweep's cost: by default it
# is measured on 8 layers spread over the depth.
DEFAULT_STABILITY = StabilitySpec(layers=Spread(8))
DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class ExtractionSpec:
    """What is extracted from the model, validated when built.

    - ``layers``: block indices (``None``: every block).
    - ``pooling``: ``"last"``, ``"mean"`` or ``"max"`` over each text's tokens.
    - ``point``: hook point, ``"block_output"`` or ``"block_input"``.
    - ``batch_size``: texts per forward pass; ``max_length``: tokens allowed per text
      (``None``: the model's context); ``truncate``: keep the first ``max_length``
      tokens of longer texts instead of raising.
    - ``dtype``: the forward pass's dtype when the sweep loads the model
      (``"float32"``, ``"bfloat16"``, ``"float16"``; ``benchmarks/llm_extraction.py``
      measures speed and the activations' agreement with float32).
    """

    layers: Sequence[int] | None = None
    pooling: str = "last"
    point: str = "block_output"
    batch_size: int = 16
    max_length: int | None = None
    truncate: bool = False
    dtype: str = "float32"

    def __post_init__(self):
        check_options(self.pooling, self.point, self.batch_size)
        if self.dtype not in DTYPES:
            raise ValueError(f"ExtractionSpec.dtype must be one of {DTYPES}, got {self.dtype!r}.")
        if self.layers is not None:
            layers = tuple(self.layers)
            if not layers or any(isinstance(i, bool) or not isinstance(i, int) for i in layers):
                raise ValueError(
                    f"ExtractionSpec.layers must be a non-empty list of integers or None, "
                    f"got {self.layers!r}."
                )
            object.__setattr__(self, "layers", layers)
        if self.max_length is not None and (
            isinstance(self.max_length, bool)
            or not isinstance(self.max_length, int)
            or self.max_length < 1
        ):
            raise ValueError(
                f"ExtractionSpec.max_length must be a positive integer or None, "
                f"got {self.max_length!r}."
            )

    def options(self) -> dict:
        """The keywords of :func:`probejax.llm.extract` and
        :func:`probejax.llm.cached_activations` (all but ``dtype``)."""
        return {
            k: getattr(self, k)
            for k in ("pooling", "point", "batch_size", "max_length", "truncate")
        }


@dataclasses.dataclass(frozen=True)
class GroupedSplit(SplitSpec):
    """A split keeping the dataset's groups whole (none shared between train,
    validation and test; :attr:`TextDataset.groups`), in every split of the sweep and
    its stability resampling. ``groups``: which of the dataset's group kinds, the
    held-out unit first (``None``: all of them)."""

    groups: Sequence[str] | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.groups is not None:
            if isinstance(self.groups, str) or not all(isinstance(g, str) for g in self.groups):
                raise ValueError(
                    f"GroupedSplit.groups must be a list of group kinds or None, got {self.groups!r}."
                )
            object.__setattr__(self, "groups", tuple(self.groups))


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
    """The ``probes.npz`` content: ``layers`` and, for each ``estimator: (w, b)`` of
    ``probes``, ``<estimator>_w`` ``(L, d)`` and ``<estimator>_b`` ``(L,)``."""
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


def style_of(name: str) -> dict:
    """How figures draw estimator ``name``: its registry entry's ``color`` and
    ``linestyle`` (``None``: matplotlib's defaults; an import path has none)."""
    entry = registered().get(name)
    return {
        "color": None if entry is None else entry.color,
        "linestyle": None if entry is None else entry.linestyle,
    }


def reproduced_by_sklearn(estimators: dict) -> str | None:
    """The name of the estimator the authors' scikit-learn loop reproduces (RAPTOR
    with its defaults, recognised by its structure: class, fields and grid), or
    ``None`` when none of ``estimators`` is it."""
    target = describe_estimator(raptor())
    return next((n for n, e in estimators.items() if describe_estimator(e) == target), None)


@dataclasses.dataclass(frozen=True)
class SweepOutputs:
    """``results`` (as written to ``results.json``); ``probes``: per estimator ``(w,
    b)``, raw coordinates, shapes ``(layers, d)`` and ``(layers,)``; the paths written."""

    results: dict
    probes: dict
    results_path: Path | None
    probes_path: Path | None


def _subset(what: str, wanted, layers: list[int]) -> list[int]:
    missing = [i for i in wanted if i not in layers]
    if missing:
        raise ValueError(f"{what} {missing} are not among the swept layers {layers}.")
    return list(wanted)


def _resolve_layers(extraction: ExtractionSpec, n_layers: int | None) -> list[int] | None:
    """The swept layers (non-negative), or ``None`` while the model's depth is unknown."""
    if extraction.layers is None:
        return None if n_layers is None else list(range(n_layers))
    if n_layers is None:
        return None if any(i < 0 for i in extraction.layers) else list(extraction.layers)
    bad = [i for i in extraction.layers if not -n_layers <= i < n_layers]
    if bad:
        raise ValueError(
            f"ExtractionSpec.layers {bad} do not exist: the model has {n_layers} blocks "
            f"(0..{n_layers - 1}, or negative from the end)."
        )
    return [i % n_layers for i in extraction.layers]


def _check_layer_options(layers, stability, sklearn) -> None:
    if layers is None:
        return
    if stability is not None:
        stability.layers_of(layers)
    if sklearn is not None and sklearn != "all":
        _subset("sklearn layers", sklearn, layers)


def llm_sweep(
    model: str | LoadedModel = "default",
    data: str | Path | TextDataset = "cities",
    out: str | Path | None = None,
    *,
    extraction: ExtractionSpec = ExtractionSpec(),
    estimators=DEFAULT_ESTIMATORS,
    split: SplitSpec = SplitSpec(),
    stability: StabilitySpec | None = DEFAULT_STABILITY,
    controls: ControlsSpec | None = None,
    sklearn: Sequence[int] | str | None = None,
    seed: int = 0,
    cache_root: str | Path | None = None,
    log: Callable[[str], None] | None = print,
) -> SweepOutputs:
    """Run the whole sweep (module docstring) and write ``out/results.json``.

    **Arguments:**

    - ``model``: ``"default"`` (the embedded SmolLM2-135M-Instruct), a local folder, a
      hub id, or a :class:`LoadedModel`.
    - ``data``: a registered dataset name, a CSV/JSONL path (loaded whole; subsample
      with :func:`probejax.llm.load_dataset`'s ``max_examples``), or a
      :class:`TextDataset`.
    - ``out``: output folder (``None``: nothing written).
    - ``extraction``: an :class:`ExtractionSpec` (layers, pooling, hook point, batch
      size, length limits, forward-pass dtype).
    - ``estimators``: registered names or import paths (a comma-separated string, a
      list, or ``{name: factory kwargs | Estimator}``; see
      :func:`probejax.estimators.resolve_methods`); the first one is the sweep's
      primary estimator (its best layer is ``results["best"]``; the controls run on
      it).
    - ``split``: a :class:`~probejax.SplitSpec` (stratified, as the RAPTOR authors
      split) or a :class:`GroupedSplit` (the dataset's groups kept whole).
    - ``stability``: a :class:`~probejax.StabilitySpec`, or ``None`` for none (default:
      8 layers spread over the depth, ``StabilitySpec(layers=Spread(8))``); its
      ``estimators=None`` means, here, every estimator but those registered as costly
      (GCS, RFM), whose refits take minutes.
    - ``controls``: a :class:`~probejax.protocol.ControlsSpec` to run the validity
      controls (``None``: none).
    - ``sklearn``: time the authors' loop on these layers (a list, or ``"all"``; each
      costs seconds to minutes), or ``None``.
    - ``seed``: seed of the splits, stability runs and controls.
    - ``cache_root``: the activation cache root (default ``$PROBEJAX_CACHE`` or
      ``~/.cache/probejax``).
    - ``log``: receives progress lines (``None``: silent, progress bars off too).

    With ``out``, every (estimator, layer) result is kept in resumable stores under
    ``out/store`` (:func:`probejax.compare`): an interrupted sweep resumes, and a
    changed estimator, split or computation version is recomputed.

    **Returns:** :class:`SweepOutputs` with the results dict (as written).
    """
    # everything that can be checked without the model, before it is loaded
    for name, spec, kind in (
        ("extraction", extraction, ExtractionSpec),
        ("split", split, SplitSpec),
        ("stability", stability, (StabilitySpec, type(None))),
        ("controls", controls, (ControlsSpec, type(None))),
    ):
        if not isinstance(spec, kind):
            raise TypeError(f"{name} must be a {kind}, got {type(spec).__name__}.")
    if sklearn is not None and sklearn != "all":
        if isinstance(sklearn, str) or not all(isinstance(i, int) for i in sklearn):
            raise ValueError(f"sklearn must be a list of layers, 'all' or None, got {sklearn!r}.")
        sklearn = list(sklearn)
    progress = log is not None
    log = log or (lambda s: None)
    ests, labels, stable = resolve_methods(estimators)
    primary = next(iter(ests))
    if stability is not None and stability.estimators is not None:
        unknown = [m for m in stability.estimators if m not in ests]
        if unknown:
            raise ValueError(
                f"StabilitySpec.estimators names {unknown}, which are not among {list(ests)}."
            )
    dataset = data if isinstance(data, TextDataset) else load_dataset(data)
    grouped = isinstance(split, GroupedSplit)
    group_kinds = (
        list(dataset.groups) if not grouped or split.groups is None else list(split.groups)
    )
    group_array = dataset.group_array(group_kinds)
    if grouped and group_array is None:
        raise ValueError(
            f"a GroupedSplit needs groups, and dataset {dataset.name!r} has none "
            "(a CSV/JSONL file gives them in a 'group' column)."
        )
    layers = _resolve_layers(extraction, None)
    _check_layer_options(layers, stability, sklearn)

    loaded = model if isinstance(model, LoadedModel) else load_model(model, dtype=extraction.dtype)
    layers = _resolve_layers(extraction, loaded.n_layers)
    _check_layer_options(layers, stability, sklearn)
    if stability is not None:
        stability = stability.replace(
            estimators=stable if stability.estimators is None else stability.estimators,
            layers=stability.layers_of(layers),
        )
    sk_which = [] if sklearn is None else (layers if sklearn == "all" else sklearn)
    cache = activation_cache_dir(
        Path(cache_root) if cache_root else user_cache_root(),
        loaded,
        dataset,
        extraction.pooling,
        extraction.point,
    )

    log(f"{dataset.name}: {len(dataset)} texts {dataset.counts()}; model {loaded.model_id}")
    t0 = time.perf_counter()
    X = cached_activations(
        loaded,
        dataset.texts,
        dataset.hash,
        cache,
        layers=layers,
        progress=progress,
        **extraction.options(),
    )
    t_extract = time.perf_counter() - t0
    log(f"activations {tuple(X.shape)} from {cache} ({t_extract:.1f} s)")
    y = np.asarray(dataset.labels)
    # where the layer engine keeps its resumable results: one root for the comparison
    # and the controls (which write their own subfolder of it)
    store = dict(
        layers=layers,
        fingerprint=f"{cache}:{dataset.hash}",
        directory=None if out is None else Path(out) / "store",
    )
    comp = compare(
        ests,
        X,
        y,
        jax.random.key(seed),
        split=SplitSpec(split.test_fraction, split.val_fraction),
        groups=group_array if grouped else None,
        stability=stability,
        execution=Execution(cells_per_device=4, progress=progress),
        **store,
    )
    splits, per = comp.splits, comp.estimators
    for name, r in per.items():
        best = int(np.argmax(r["test_accuracy"]))
        log(
            f"  {name}: best layer {layers[best]} test accuracy {r['test_accuracy'][best]:.3f} "
            f"({np.sum(r['fit_seconds']) + np.nansum(r['stability_seconds']):.1f} s)"
        )
    sk = sklearn_layers(X, y, splits, layers, sk_which, log) if sk_which else None

    kept = (
        "test_accuracy",
        "test_auroc",
        "lam",
        "stability",
        "stability_signed",
        "fit_seconds",
        "stability_seconds",
    )
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
        "pooling": extraction.pooling,
        "point": extraction.point,
        "layers": layers,
        "splits": {k: len(np.asarray(getattr(splits, k))) for k in ("train_sub", "val", "test")},
        "split": {
            "kind": "grouped" if grouped else "random",
            "groups": group_kinds if group_array is not None else [],
        },
        "stability": None
        if stability is None
        else {
            "runs": stability.runs,
            "drop": stability.drop,
            "layers": list(stability.layers),
            "estimators": list(stability.estimators),
        },
        "labels": labels,
        "styles": {n: style_of(n) for n in ests},
        "extract_seconds": t_extract,
        "cache": str(cache),
        "estimators": {name: {k: r[k] for k in kept} for name, r in per.items()},
    }
    if sk is not None:
        results["sklearn"] = {
            k: sk[k] for k in ("layers", "total_seconds", "sweep_seconds", "C", "test_accuracy")
        }
        same = reproduced_by_sklearn(ests)
        if same is not None:
            results["sklearn"]["estimator"] = same
            results["sklearn"]["cosine"] = [
                _cosine(a, per[same]["w"][layers.index(i)])
                for a, i in zip(sk["w"], sk["layers"], strict=True)
            ]
    best = int(np.argmax(per[primary]["test_accuracy"]))
    results["best"] = {
        "estimator": primary,
        "layer": layers[best],
        "test_accuracy": float(per[primary]["test_accuracy"][best]),
        "by_estimator": {
            m: {
                "layer": layers[int(np.argmax(r["test_accuracy"]))],
                "test_accuracy": float(np.max(r["test_accuracy"])),
            }
            for m, r in per.items()
        },
    }
    if controls is not None:
        results["controls"] = layer_controls_summary(
            control_layers(
                ests[primary],
                X,
                y,
                jax.random.key(seed),
                spec=controls,
                split=SplitSpec(split.test_fraction, split.val_fraction),
                groups=group_array,
                execution=Execution(cells_per_device=1, progress=progress),
                **store,
            ),
            primary,
            layers,
            group_kinds if group_array is not None else [],
            controls.permutations,
        )
        ctrl = results["controls"]
        at = ctrl["best_grouped" if group_array is not None else "best"]["layer"]
        log(f"  k-direction probe and random directions at layer {at}")
        ctrl["directions"] = direction_controls(
            np.asarray(X[layers.index(at)]), y, group_array, seed, controls
        )
        ctrl["directions"]["layer"] = at
        for line in controls_headline(results["controls"]):
            log("  " + line)
    probes = {m: (np.asarray(r["w"]), np.asarray(r["b"])) for m, r in per.items()}
    results_path = probes_path = None
    if out is not None:
        out = Path(out)
        results_path, probes_path = out / "results.json", out / "probes.npz"
        write_npz_atomic(probes_path, probe_arrays(layers, probes))
        write_json_atomic(results_path, results)
        log(f"wrote {results_path} and {probes_path}")
    return SweepOutputs(results, probes, results_path, probes_path)


def layer_controls_summary(ctrl, estimator: str, layers, group_kinds, permutations) -> dict:
    """The ``results.json`` entry of :func:`probejax.protocol.control_layers`' output
    ``(Controls, ControlSplits)``: per-layer arrays and the best layer's summary."""
    c, cs = ctrl
    perm = c.permutation
    n_test = int(np.size(cs.random.test))
    out = {
        "estimator": estimator,
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


def direction_controls(X, y, groups, seed: int, spec: ControlsSpec = ControlsSpec()) -> dict:
    """At one layer, on the validity split (grouped when ``groups`` is given, else the
    random one; from ``jax.random.key(seed)``): the k-direction probe's test accuracy
    and AUROC for k = 1..``spec.k_max`` with k* from ``spec.permutations`` label
    shuffles per step (:func:`probejax.protocol.k_direction_curve`), and
    ``spec.random_directions`` random directions' test metrics
    (:func:`probejax.protocol.random_direction_baseline`)."""
    key = jax.random.key(seed)
    splits = protocol_splits(key, y, groups=groups)
    kd = k_direction_curve(X, y, splits, key, k_max=spec.k_max, permutations=spec.permutations)
    rd = random_direction_baseline(X, y, splits, key, n_directions=spec.random_directions)
    return {
        "split": "grouped" if groups is not None else "random",
        "k": list(range(1, spec.k_max + 1)),
        "accuracy": np.asarray(kd.accuracy),
        "auroc": np.asarray(kd.auroc),
        "step_auroc": np.asarray(kd.step_auroc),
        "step_p_value": np.asarray(kd.p_values),
        "k_star": int(kd.k_star),
        "random_directions": {
            f: float(getattr(rd, f))
            for f in ("mean_accuracy", "mean_auroc", "q95_accuracy", "q95_auroc")
        },
    }


def controls_headline(ctrl: dict) -> list[str]:
    """Lines summarising a sweep's controls (printed by the CLI)."""
    b = ctrl["best"]
    lines = [
        f"controls ({ctrl['estimator']}, {ctrl['permutations']} permutations): best layer "
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
            f"k* = {d['k_star']}; random directions AUROC {d['random_directions']['mean_auroc']:.3f} "
            f"(95th pct. {d['random_directions']['q95_auroc']:.3f})"
        )
    return lines


def layer_table(
    results: dict, field: str = "test_accuracy", suffix: str = "acc"
) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)``: per layer where any estimator has a finite ``field``, each
    estimator's value as a string (headers ``"<estimator> <suffix>"``)."""
    methods = results["estimators"]
    values = {m: np.asarray(r[field], float) for m, r in methods.items()}
    header = ["layer", *(f"{m} {suffix}" for m in methods)]
    rows = []
    for i, layer in enumerate(results["layers"]):
        if any(np.isfinite(v[i]) for v in values.values()):
            rows.append([str(layer)] + [f"{v[i]:.3f}" for v in values.values()])
    return header, rows
