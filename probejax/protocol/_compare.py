r"""Any estimators on every layer, on the same splits: accuracy and stability.

For each named estimator and layer :math:`\ell` (activations :math:`X_\ell`, labels
:math:`y`, one train_sub / val / test split shared by all estimators and layers), the
estimator is fitted with :meth:`~probejax.estimators.Estimator.fit_with_validation`
(tuned estimators select on val and refit on train_sub + val; the others fit on
train_sub + val) and scored on test. Its directional stability (K runs each dropping a
stratified ``drop`` fraction of train_sub + val, re-splitting and refitting; mean
pairwise :math:`|\cos|` and signed cosine of the concept vectors) is measured on the
chosen layers. Every (estimator, layer) runs through the one layer engine
(:func:`probejax.protocol.sweep_layers`), so with a ``directory`` an interrupted
comparison resumes (also after edits of docstrings or comments: no source text enters
the store's hash) and a changed estimator, split or ``COMPARE_VERSION`` is recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ..core._checks import as_pm1_labels
from ..core._probe import diagnostics
from ..core._rows import rows
from ..estimators._base import Estimator
from ..io._results import config_hash
from ..sweep._execution import Execution
from ..sweep._grid import Axis, content_sha256
from ..sweep._runner import batching
from ._engine import (
    array_digests,
    check_layers,
    check_mask,
    describe_estimator,
    layer_axis,
    layer_inputs,
    sweep_layers,
)
from ._evaluate import (
    base_splits,
    evaluate_on,
    fit_key,
    run_splits_and_keys,
    stability_runs,
    val_share,
)
from ._specs import SplitSpec, StabilitySpec
from ._splits import Splits

# The computation's version in every store's hash: bump it by hand when what a fit or
# stability cell returns changes.
COMPARE_VERSION = "compare/2"  # 2: the test scores are kept (detection metrics)


def _scores(estimator):
    def fn(X, cell, data):
        key = jax.random.wrap_key_data(data["key"])
        inputs, splits = layer_inputs(X, data), Splits.from_arrays(data)
        ev = evaluate_on(estimator, inputs, data["y"], splits, key)
        lin = ev.probe.linear()
        v = ev.probe.concept_vector()
        nan = jnp.asarray(jnp.nan, X.dtype)
        info = diagnostics(ev.probe)
        return {
            "w": v if lin is None else lin.w,
            "b": nan if lin is None else lin.b,
            "concept": v,
            "lam": jnp.asarray(info.get("lam", nan), X.dtype),
            "test_accuracy": ev.test_accuracy,
            "test_auroc": ev.test_auroc,
            "test_scores": ev.probe.decision_function(rows(inputs, splits.test)),
        }

    return fn


def _stability(estimator, batch_size):
    def fn(X, cell, data):
        runs = Splits.from_arrays(data, "run_")
        keys = jax.random.wrap_key_data(data["run_keys"])
        st = stability_runs(estimator, layer_inputs(X, data), data["y"], runs, keys, batch_size)
        return {"stability": st.mean_abs_cos, "stability_signed": st.mean_signed_cos}

    return fn


class Comparison(NamedTuple):
    """What :func:`compare` returns: the shared ``splits``, and per estimator name a
    dict of NumPy arrays with a leading ``layers`` axis: ``w (L, d)`` and ``b`` (the
    raw-coordinate linear probe; for a nonlinear probe ``w`` is its concept vector and
    ``b`` NaN), ``concept (L, d)``, ``lam`` (the chosen ridge, NaN when nothing is
    tuned), ``test_accuracy``, ``test_auroc``, ``test_scores (L, n_test)`` (decision
    values on ``splits.test``, for :func:`probejax.metrics.detection_metrics`),
    ``fit_seconds`` (compute time per layer,
    compilation excluded) and ``stability``, ``stability_signed``,
    ``stability_seconds`` (NaN where not measured)."""

    splits: Splits
    estimators: dict[str, dict[str, np.ndarray]]

    def best_layer(self, name: str, layers=None):
        """The layer (its name from ``layers``, else its row) where estimator ``name``
        has its best test accuracy."""
        i = int(np.argmax(self.estimators[name]["test_accuracy"]))
        return i if layers is None else list(layers)[i]


def compare(
    estimators: Mapping[str, Estimator],
    X_layers,
    y,
    key: PRNGKeyArray,
    *,
    split: SplitSpec | Splits = SplitSpec(),
    groups=None,
    mask=None,
    stability: StabilitySpec | None = StabilitySpec(),
    layers=None,
    fingerprint: str | None = None,
    directory=None,
    execution: Execution = Execution(cells_per_device=4),
) -> Comparison:
    """Run every estimator on every layer (module docstring).

    **Arguments:**

    - ``estimators``: ``{name: Estimator}``, any estimators (a user's own included).
    - ``X_layers``: ``(layers, n, d)`` (a memmap is read chunk by chunk) or a list of
      ``(n, d)`` arrays; ``y``: two-class labels.
    - ``key``: PRNG key; ``jax.random.split(key)`` gives the base split's key and the
      stability runs' (as :func:`probejax.stability` splits it, so the runs agree);
      estimators get ``fold_in(key, 1)``.
    - ``split``: how the base split is drawn (:class:`~probejax.SplitSpec`) or fixed
      :class:`~probejax.Splits`; ``groups``: ``(n,)`` or ``(n, m)`` group labels:
      grouped base split and stability resampling (no group shared across parts).
    - ``mask``: for token activations ``X_layers`` ``(layers, n, T, d)``, the mask of
      real tokens ``(n, T)``; estimators then get :class:`probejax.core.Tokens`
      (sequence probes).
    - ``stability``: a :class:`~probejax.StabilitySpec` (runs, drop, and which
      ``estimators`` on which ``layers``), or ``None`` to measure none.
    - ``layers``: names of the layers (default ``0..L-1``).
    - ``fingerprint``: a string standing for the activations in the stores' hashes
      (default: their SHA-256, read once); ``directory``: a folder for the resumable
      stores (one per estimator, measure and settings, so a rerun with the same ones
      resumes and changed ones get their own; ``None``: temporary).
    - ``execution``: :class:`~probejax.sweep.Execution` (layers per compiled chunk,
      progress).

    **Returns:** :class:`Comparison`.
    """
    for name, est in estimators.items():
        if not isinstance(est, Estimator):
            raise TypeError(f"estimators[{name!r}] is {type(est).__name__}, not an Estimator.")
    if stability is not None and not isinstance(stability, StabilitySpec):
        raise TypeError(
            f"stability must be a probejax.StabilitySpec or None, got {type(stability).__name__}."
        )
    shape = check_layers(X_layers)
    L, n = shape[:2]
    y_pm1, _ = as_pm1_labels(y, n)
    y_np = np.asarray(y_pm1)
    splits = base_splits(key, y_np, split, groups, n)
    layers = list(range(L)) if layers is None else list(layers)
    if len(layers) != L:
        raise ValueError(f"layers names {len(layers)} layers but X_layers holds {L}.")
    measured, rows = [], []
    if stability is not None:
        measured = list(estimators) if stability.estimators is None else list(stability.estimators)
        unknown = [m for m in measured if m not in estimators]
        if unknown:
            raise ValueError(
                f"StabilitySpec.estimators names {unknown}, which are not among {list(estimators)}."
            )
        rows = sorted(layers.index(i) for i in stability.layers_of(layers))
    data = {"y": y_np, "key": np.asarray(jax.random.key_data(fit_key(key))), **splits.arrays()}
    if mask is not None:
        data["mask"] = check_mask(mask, shape)
    if measured and rows:
        run_splits, run_keys = run_splits_and_keys(
            key, y_np, splits, stability, val_share(split, splits), groups
        )
        run_data = {
            **({"mask": data["mask"]} if "mask" in data else {}),
            "y": y_np,
            "run_keys": np.asarray(jax.random.key_data(run_keys)),
            **run_splits.arrays("run_"),
        }
    # the layers are checked and hashed once, not once per estimator and measure
    fingerprint = fingerprint or content_sha256(X_layers)
    fit_axis = layer_axis(X_layers, L, fingerprint, layers)
    stability_axis = (
        fit_axis
        if len(rows) in (0, L)  # no rows: unused
        else Axis(
            "layer",
            [X_layers[r] for r in rows],
            fingerprint=f"{fingerprint}:rows={rows}",
            labels=[layers[r] for r in rows],
        )
    )

    digests = {
        "fit": array_digests(data),
        "stability": array_digests(run_data) if measured and rows else None,
    }

    def store(name, what, config, rows):
        """One store per (estimator, measure, settings): a changed setting gets a new
        store instead of a mismatch, an unchanged one resumes."""
        if directory is None:
            return None
        key = {"config": config, "data": digests[what], "fingerprint": fingerprint, "rows": rows}
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
        return f"{directory}/{slug}-{what}-{config_hash(key)[:12]}"

    # on CPU the cells of a chunk run one after another anyway: one layer per chunk
    # costs nothing and reports progress per layer
    per_layer = execution.replace(cells_per_device=1)
    stability_execution = per_layer if batching(execution.cell_batching) == "map" else execution
    out_all = {}
    for name, est in estimators.items():
        desc = describe_estimator(est)
        fit_config = {"compare": COMPARE_VERSION, "measure": "fit", "estimator": desc}
        fit = sweep_layers(
            _scores(est),
            fit_axis,
            store(name, "fit", fit_config, layers),
            data=data,
            config=fit_config,
            execution=execution,
            desc=f"{name} fit",
        )
        out = {k: np.asarray(v) for k, v in fit.values.items()}
        out["fit_seconds"] = fit.seconds
        nan = np.full(L, np.nan)
        out["stability"], out["stability_signed"], out["stability_seconds"] = nan, nan, nan
        if name in measured and rows:
            st_config = {
                "compare": COMPARE_VERSION,
                "measure": "stability",
                "estimator": desc,
                "drop": stability.drop,
                "runs": stability.runs,
            }
            st = sweep_layers(
                _stability(est, stability.batch_size),
                stability_axis,
                store(name, "stability", st_config, [layers[r] for r in rows]),
                data=run_data,
                config=st_config,
                execution=stability_execution,
                desc=f"{name} stability",
            )
            for k in ("stability", "stability_signed"):
                out[k] = nan.copy()
                out[k][rows] = np.asarray(st.values[k])
            out["stability_seconds"] = nan.copy()
            out["stability_seconds"][rows] = st.seconds
        out_all[name] = out
    return Comparison(splits, out_all)
