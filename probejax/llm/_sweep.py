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
   stability, fit seconds, and under ``detection`` accuracy, AUROC, recall at 1% and 5%
   false-positive rate and Brier score, each with a stratified bootstrap 95% interval;
   the controls) and ``out/probes.npz`` (every estimator's
   raw-coordinate ``w``, ``b`` per layer, for steering), both written atomically.

:func:`probe_activations` runs steps 2-5 on an activation file a user already has
(``.npy``, ``.npz``, ``.safetensors``, HDF5, ``.pt``; :func:`probejax.io.open_activations`),
read one layer at a time, with the same ``results.json`` schema.

Every option is a spec object checked before the model is loaded: the estimators
resolve, the dataset loads and has the groups a :class:`GroupedSplit` asks for, the
extraction options are known, and the layers of the stability, scikit-learn and
extraction options agree (against the model's depth before any text is extracted).

Figures are drawn from the results file by :mod:`probejax.llm._plots`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

from ..core._metrics import detection_metrics
from ..estimators import DEFAULT_ESTIMATORS
from ..estimators._raptor import raptor
from ..estimators._registry import registered, resolve_methods
from ..io import cache_root as user_cache_root
from ..io._activations import Labels, LayerStack, open_activations, read_labels
from ..io._atomic import file_sha256, write_npz_atomic
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
from ._extract import ExtractionSpec
from ._model import LoadedModel, load_model

# Stability (20 refits per layer and estimator) dominates a sweep's cost: by default it
# is measured on 8 layers spread over the depth.
DEFAULT_STABILITY = StabilitySpec(layers=Spread(8))


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
    root: Path, loaded: LoadedModel, dataset: TextDataset, extraction: ExtractionSpec
) -> Path:
    """One cache folder per (model, revision, dtype, dataset content, pooling, site,
    token selection); float32, the default, adds no suffix to the folder name, nor do
    the default tokens without a chat template."""
    name = f"{_slug(dataset.name)}-{dataset.hash[:12]}-{extraction.pooling}-{extraction.site}"
    if loaded.dtype != "float32":
        name += f"-{loaded.dtype}"
    selection = extraction.selection(loaded.tokenizer)
    if selection is not None:
        name += "-" + hashlib.sha256(selection.encode()).hexdigest()[:8]
    return Path(root) / "activations" / _slug(f"{loaded.model_id}@{loaded.revision}") / name


def cached_layers(loaded, dataset, extraction, layers, cache_root, progress):
    """``(X, cache folder)``: the ``(layers, n, d)`` activations of ``dataset`` at
    ``extraction``'s site, pooling and tokens, from (or into) the activation cache under
    ``cache_root`` (default ``$PROBEJAX_CACHE`` or ``~/.cache/probejax``); the folder is
    the one the rows were read from."""
    cache = activation_cache_dir(
        Path(cache_root) if cache_root else user_cache_root(), loaded, dataset, extraction
    )
    X = cached_activations(
        loaded,
        dataset.texts,
        dataset.hash,
        cache,
        dataclasses.replace(extraction, layers=tuple(layers)),
        progress=progress,
    )
    return X, (X.path if isinstance(X, LayerStack) else cache)


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


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A sweep's options, checked before any activation is read: the resolved
    estimators (``labels``: their display names; ``stable``: those whose stability is
    measured by default), the split, the stability and controls specs, the layers of
    the scikit-learn loop, the seed."""

    estimators: dict
    labels: dict
    stable: list
    split: SplitSpec
    stability: StabilitySpec | None
    controls: ControlsSpec | None
    sklearn: list[int] | str | None
    seed: int

    @property
    def primary(self) -> str:
        return next(iter(self.estimators))

    def with_split_for(self, groups: dict) -> _Plan:
        """The plan with a default split (``None``) made concrete: grouped when the
        data have groups, else stratified."""
        if self.split is not None:
            return self
        return dataclasses.replace(self, split=GroupedSplit() if groups else SplitSpec())

    def grouping(self, groups: dict, name: str) -> tuple[bool, list[str], np.ndarray | None]:
        """``(grouped, group kinds, (n, m) group array or None)`` for data whose groups
        are ``{kind: (n,) array}``; a :class:`GroupedSplit` on data without them is an
        error naming the data."""
        grouped = isinstance(self.split, GroupedSplit)
        kinds = (
            list(groups) if not grouped or self.split.groups is None else list(self.split.groups)
        )
        unknown = [k for k in kinds if k not in groups]
        if unknown:
            raise ValueError(f"{name} has no groups {unknown}; it has {list(groups)}.")
        array = np.stack([np.asarray(groups[k]).astype(str) for k in kinds], 1) if kinds else None
        if grouped and array is None:
            raise ValueError(
                f"a GroupedSplit needs groups, and {name} has none "
                "(a CSV/JSONL file gives them in a 'group' column)."
            )
        return grouped, kinds if array is not None else [], array

    def for_layers(self, layers: list[int]) -> _Plan:
        """The plan with its stability layers and estimators resolved on ``layers``."""
        _check_layer_options(layers, self.stability, self.sklearn)
        stability = self.stability
        if stability is not None:
            stability = stability.replace(
                estimators=self.stable if stability.estimators is None else stability.estimators,
                layers=stability.layers_of(layers),
            )
        sk = [] if self.sklearn is None else (layers if self.sklearn == "all" else self.sklearn)
        return dataclasses.replace(self, stability=stability, sklearn=list(sk))


def _plan(estimators, split, stability, controls, sklearn, seed) -> _Plan:
    """Check every option that needs no data (types, estimator names, layer lists)."""
    for name, spec, kind in (
        ("split", split, (SplitSpec, type(None))),
        ("stability", stability, (StabilitySpec, type(None))),
        ("controls", controls, (ControlsSpec, type(None))),
    ):
        if not isinstance(spec, kind):
            raise TypeError(f"{name} must be a {kind}, got {type(spec).__name__}.")
    if sklearn is not None and sklearn != "all":
        if isinstance(sklearn, str) or not all(isinstance(i, int) for i in sklearn):
            raise ValueError(f"sklearn must be a list of layers, 'all' or None, got {sklearn!r}.")
        sklearn = list(sklearn)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    ests, labels, stable = resolve_methods(estimators)
    if stability is not None and stability.estimators is not None:
        unknown = [m for m in stability.estimators if m not in ests]
        if unknown:
            raise ValueError(
                f"StabilitySpec.estimators names {unknown}, which are not among {list(ests)}."
            )
    return _Plan(ests, labels, stable, split, stability, controls, sklearn, int(seed))


_KEPT = (
    "test_accuracy",
    "test_auroc",
    "lam",
    "stability",
    "stability_signed",
    "fit_seconds",
    "stability_seconds",
    "detection",
)


def _report(plan: _Plan, X, y, layers, grouping, about: dict, fingerprint, out, log, progress):
    """Compare, time the loop, run the controls, write ``out``: every step after the
    activations exist, shared by :func:`llm_sweep` and :func:`probe_activations`.
    ``X``: ``(layers, n, d)``, read a layer at a time; ``about``: the results' leading
    entries (model, dataset, site)."""
    grouped, group_kinds, group_array = grouping
    ests, primary = plan.estimators, plan.primary
    base_split = SplitSpec(plan.split.test_fraction, plan.split.val_fraction)
    # where the layer engine keeps its resumable results: one root for the comparison
    # and the controls (which write their own subfolder of it)
    store = dict(
        layers=layers,
        fingerprint=fingerprint,
        directory=None if out is None else Path(out) / "store",
    )
    comp = compare(
        ests,
        X,
        y,
        jax.random.key(plan.seed),
        split=base_split,
        groups=group_array if grouped else None,
        stability=plan.stability,
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
    y_test = np.asarray(y)[np.asarray(splits.test)]
    for r in per.values():
        r["detection"] = detection_metrics(
            y_test, r["test_scores"], jax.random.fold_in(jax.random.key(plan.seed), 7)
        )
    sk = sklearn_layers(X, y, splits, layers, plan.sklearn, log) if plan.sklearn else None
    stability = plan.stability
    results = {
        **about,
        "layers": layers,
        "splits": {k: len(np.asarray(getattr(splits, k))) for k in ("train_sub", "val", "test")},
        "split": {"kind": "grouped" if grouped else "random", "groups": group_kinds},
        "stability": None
        if stability is None
        else {
            "runs": stability.runs,
            "drop": stability.drop,
            "layers": list(stability.layers),
            "estimators": list(stability.estimators),
        },
        "labels": plan.labels,
        "styles": {n: style_of(n) for n in ests},
        "estimators": {name: {k: r[k] for k in _KEPT} for name, r in per.items()},
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
    if plan.controls is not None:
        results["controls"] = layer_controls_summary(
            control_layers(
                ests[primary],
                X,
                y,
                jax.random.key(plan.seed),
                spec=plan.controls,
                split=base_split,
                groups=group_array,
                execution=Execution(cells_per_device=1, progress=progress),
                **store,
            ),
            primary,
            layers,
            group_kinds,
            plan.controls.permutations,
        )
        ctrl = results["controls"]
        at = ctrl["best_grouped" if group_array is not None else "best"]["layer"]
        log(f"  k-direction probe and random directions at layer {at}")
        ctrl["directions"] = direction_controls(
            np.asarray(X[layers.index(at)]), y, group_array, plan.seed, plan.controls
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


def llm_sweep(
    model: str | LoadedModel = "default",
    data: str | Path | TextDataset = "cities",
    out: str | Path | None = None,
    *,
    extraction: ExtractionSpec = ExtractionSpec(),
    estimators=DEFAULT_ESTIMATORS,
    split: SplitSpec | None = None,
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
    - ``extraction``: an :class:`ExtractionSpec` (layers, pooling, site, batch
      size, length limits, forward-pass dtype).
    - ``estimators``: registered names or import paths (a comma-separated string, a
      list, or ``{name: factory kwargs | Estimator}``; see
      :func:`probejax.estimators.resolve_methods`); the first one is the sweep's
      primary estimator (its best layer is ``results["best"]``; the controls run on
      it).
    - ``split``: a :class:`~probejax.SplitSpec` (stratified, as the RAPTOR authors
      split) or a :class:`GroupedSplit` (the dataset's groups kept whole); ``None``
      (default): grouped when the dataset has groups (no city, country or contrast
      pair shared between train and test), else stratified. ``results["split"]`` says
      which ran.
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
    if not isinstance(extraction, ExtractionSpec):
        raise TypeError(f"extraction must be an ExtractionSpec, got {type(extraction).__name__}.")
    plan = _plan(estimators, split, stability, controls, sklearn, seed)
    progress = log is not None
    log = log or (lambda s: None)
    dataset = data if isinstance(data, TextDataset) else load_dataset(data)
    plan = plan.with_split_for(dataset.groups)
    grouping = plan.grouping(dataset.groups, f"dataset {dataset.name!r}")
    layers = _resolve_layers(extraction, None)
    _check_layer_options(layers, plan.stability, plan.sklearn)

    loaded = model if isinstance(model, LoadedModel) else load_model(model, dtype=extraction.dtype)
    layers = _resolve_layers(extraction, loaded.n_layers)
    plan = plan.for_layers(layers)
    log(f"{dataset.name}: {len(dataset)} texts {dataset.counts()}; model {loaded.model_id}")
    t0 = time.perf_counter()
    X, cache = cached_layers(loaded, dataset, extraction, layers, cache_root, progress)
    t_extract = time.perf_counter() - t0
    log(f"activations {tuple(X.shape)} from {cache} ({t_extract:.1f} s)")
    about = {
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
        "site": extraction.site,
        **extraction.record(loaded.tokenizer, dataset.texts),
        "extract_seconds": t_extract,
        "cache": str(cache),
    }
    y = np.asarray(dataset.labels)
    fingerprint = f"{cache}:{dataset.hash}"
    return _report(plan, X, y, layers, grouping, about, fingerprint, out, log, progress)


def probe_activations(
    activations: str | Path | LayerStack,
    labels: str | Path | Labels | None = None,
    out: str | Path | None = None,
    *,
    key: str | None = None,
    estimators=DEFAULT_ESTIMATORS,
    split: SplitSpec | None = None,
    stability: StabilitySpec | None = DEFAULT_STABILITY,
    controls: ControlsSpec | None = None,
    sklearn: Sequence[int] | str | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
) -> SweepOutputs:
    """The sweep of :func:`llm_sweep` on activations a user already has: every layer
    of an activation file, read one layer at a time, with the same estimators,
    stability, controls and ``results.json`` schema (``probejax probe`` on the command
    line).

    **Arguments:**

    - ``activations``: a file (``.npy``, ``.npz``, ``.safetensors``, ``.h5``, ``.pt``;
      see :func:`probejax.io.open_activations`) or an opened
      :class:`~probejax.io.LayerStack`.
    - ``labels``: a CSV with a ``label`` column (and optionally ``group``), a ``.npy``
      vector, or :class:`~probejax.io.Labels`; ``None``: the labels (and groups) the
      activation file carries (a file written by ``probejax llm extract`` does).
    - ``out``: output folder for ``results.json``, ``probes.npz`` and the resumable
      stores (``None``: nothing written).
    - ``key``: the file's entry (or per-layer prefix) holding the activations, when it
      holds several.
    - ``estimators``, ``split``, ``stability``, ``controls``, ``sklearn``, ``seed``,
      ``log``: as in :func:`llm_sweep`; a :class:`GroupedSplit` uses the labels' ``group``
      column (kind ``"group"``).

    The layers are named as the file names them (``model.layers.7`` is layer 7; a 3-D
    array's rows are layers ``0..L-1``); ``stability`` and ``sklearn`` layers refer to
    those names. Results are keyed by the file's SHA-256, so an interrupted run resumes
    and a changed file is recomputed.

    **Returns:** :class:`SweepOutputs`.
    """
    plan = _plan(estimators, split, stability, controls, sklearn, seed)
    progress = log is not None
    log = log or (lambda s: None)
    stack = (
        activations
        if isinstance(activations, LayerStack)
        else open_activations(activations, key=key)
    )
    L, n, d = stack.shape
    if labels is None:
        if stack.labels is None:
            raise ValueError(
                f"{stack.path} carries no labels: give a labels file (--labels), a CSV with "
                "a 'label' column or a .npy vector."
            )
        groups = None if stack.groups is None else np.asarray(stack.groups).astype(str)
        y, label_names = np.asarray(stack.labels), ("0", "1")
        names = stack.metadata.get("label_names")
        label_names = tuple(names) if names else label_names
        labels_source = str(stack.path)
        if len(y) != n:
            raise ValueError(f"{stack.path} holds {len(y)} labels for {n} examples.")
        y = read_label_values(y, labels_source)
    else:
        if not isinstance(labels, Labels):
            labels_source = str(labels)
            labels = read_labels(labels, n)
        else:
            labels_source = "Labels"
            if len(labels.y) != n:
                raise ValueError(f"the labels hold {len(labels.y)} values for {n} examples.")
        y, groups, label_names = labels.y, labels.groups, labels.label_names
    data_name = f"activations {stack.path.name}"
    group_dict = {} if groups is None else {"group": groups}
    plan = plan.with_split_for(group_dict)
    grouping = plan.grouping(group_dict, data_name)
    layers = list(stack.layers)
    plan = plan.for_layers(layers)
    meta = stack.metadata
    log(
        f"{stack.path}: {L} layers of {n} x {d} ({stack.format}); "
        f"classes {dict(zip(label_names, np.bincount(y, minlength=2).tolist(), strict=True))}"
    )
    digest = file_sha256(stack.path)
    about = {
        "model": {
            "id": meta.get("model", stack.path.name),
            "revision": meta.get("revision"),
            "dtype": meta.get("dtype", str(stack.dtype)),
            "n_layers": meta.get("n_layers"),
            "d": d,
        },
        "dataset": {
            "name": meta.get("dataset", Path(labels_source).stem),
            "n": n,
            "hash": meta.get("texts_sha256", digest),
            "source": labels_source,
            "licence": meta.get("licence", "unknown"),
            "label_names": list(label_names),
        },
        "activations": {
            "path": str(stack.path),
            "format": stack.format,
            "key": stack.key,
            "sha256": digest,
        },
        "pooling": meta.get("pooling"),
        "site": meta.get("site"),
        "tokens": meta.get("tokens"),
        "chat": meta.get("chat"),
        "extract_seconds": None,
        "cache": None,
    }
    fingerprint = f"file:{digest}:{stack.key}"
    return _report(plan, stack, y, layers, grouping, about, fingerprint, out, log, progress)


def read_label_values(values, where: str) -> np.ndarray:
    """Labels carried by an activation file as 0/1 ``int32`` (0/1 or -1/+1 values)."""
    v = np.asarray(values)
    if v.ndim != 1 or not set(np.unique(v).tolist()) <= {0, 1, -1}:
        raise ValueError(f"{where}: its labels must be 0/1 (or -1/+1) per example.")
    return (v > 0).astype(np.int32)


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
    rd = random_direction_baseline(X, y, splits, key, random_directions=spec.random_directions)
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


def detection_table(results: dict) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)``: per estimator, at its best layer (by test accuracy), the
    detection metrics with their bootstrap intervals (``value [low, high]``)."""
    names = ("accuracy", "auroc", "recall_at_1pct_fpr", "recall_at_5pct_fpr", "brier")
    header = ["estimator", "layer", "accuracy", "AUROC", "recall@1%FPR", "recall@5%FPR", "Brier"]
    rows = []
    for m, r in results["estimators"].items():
        det = r.get("detection")
        if not det:
            continue
        i = int(np.nanargmax(np.asarray(r["test_accuracy"], float)))
        cells = []
        for k in names:
            v, lo, hi = (float(np.asarray(det[k][f], float)[i]) for f in ("value", "low", "high"))
            cells.append(f"{v:.3f} [{lo:.2f}, {hi:.2f}]")
        rows.append([m, str(results["layers"][i]), *cells])
    return header, rows
