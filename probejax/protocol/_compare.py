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
comparison resumes and a changed estimator, split or code version is recomputed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ..core._checks import as_pm1_labels
from ..core._probe import diagnostics
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
from ._evaluate import evaluate, fit_key, stability_runs
from ._splits import Splits, check_splits, protocol_splits
from ._stability import run_splits_and_keys

COMPARE_VERSION = "compare/1"


def _scores(estimator):
    def fn(X, cell, data):
        key = jax.random.wrap_key_data(data["key"])
        ev = evaluate(estimator, layer_inputs(X, data), data["y"], Splits.from_arrays(data), key)
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
        }

    return fn


def _stability(estimator, run_chunk):
    def fn(X, cell, data):
        runs = Splits.from_arrays(data, "run_")
        keys = jax.random.wrap_key_data(data["run_keys"])
        st = stability_runs(estimator, layer_inputs(X, data), data["y"], runs, keys, run_chunk)
        return {"stability": st.mean_abs_cos, "stability_signed": st.mean_signed_cos}

    return fn


def compare(
    estimators: Mapping[str, Estimator],
    X_layers,
    y,
    key: PRNGKeyArray,
    *,
    splits: Splits | None = None,
    mask=None,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    stability_runs: int = 20,
    drop: float = 0.2,
    stability_of: Sequence[str] | None = None,
    stability_rows: Sequence[int] | None = None,
    layer_ids=None,
    fingerprint: str | None = None,
    directory=None,
    chunk_size: int = 4,
    run_chunk: int = 4,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    groups=None,
) -> dict:
    """Run every estimator on every layer (module docstring).

    **Arguments:**

    - ``estimators``: ``{name: Estimator}``, any estimators (a user's own included).
    - ``X_layers``: ``(layers, n, d)`` (a memmap is read chunk by chunk) or a list of
      ``(n, d)`` arrays; ``y``: two-class labels.
    - ``mask``: for token activations ``X_layers`` ``(layers, n, T, d)``, the mask of
      real tokens ``(n, T)``; estimators then get :class:`probejax.core.Tokens`
      (sequence probes).
    - ``key``: PRNG key; ``jax.random.split(key)`` gives the base split's key and the
      stability runs' (as :func:`probejax.stability` splits it, so the runs agree);
      estimators get ``fold_in(key, 1)``.
    - ``splits``: a fixed :class:`~probejax.protocol.Splits` (else drawn with
      ``test_fraction``, ``val_fraction``).
    - ``stability_runs`` K, ``drop``; ``stability_of``: the names whose stability is
      measured (default all); ``stability_rows``: the rows of ``X_layers`` where it is
      (default all; each costs K refits).
    - ``fingerprint``: a string standing for the activations in the stores' hashes
      (default: their SHA-256, read once).
    - ``layer_ids``: names of the layers (default ``0..L-1``); ``directory``: a folder
      for the resumable stores (one per estimator, measure and settings, so a rerun
      with the same ones resumes and changed ones get their own; ``None``: temporary);
      ``chunk_size`` layers per compiled chunk; ``run_chunk`` stability runs at once;
      ``progress``: a line per chunk; ``log(str)``: a summary line per estimator.
    - ``groups``: ``(n,)`` or ``(n, m)`` group labels: grouped base split and
      stability resampling (no group shared across parts; :mod:`probejax.protocol`).

    **Returns:** ``dict(splits, methods={name: {...}})``; each holds NumPy arrays with a
    leading ``layers`` axis: ``w (L, d)`` and ``b`` (raw-coordinate linear probe; for a
    nonlinear probe ``w`` is its concept vector and ``b`` NaN), ``concept (L, d)``,
    ``lam`` (the chosen ridge, NaN when nothing is tuned), ``test_accuracy``,
    ``test_auroc``, ``fit_seconds`` (compute time per layer) and ``stability``,
    ``stability_signed``, ``stability_seconds`` (NaN where not measured).
    """
    log = log or (lambda s: None)
    for name, est in estimators.items():
        if not isinstance(est, Estimator):
            raise TypeError(f"estimators[{name!r}] is {type(est).__name__}, not an Estimator.")
    shape = check_layers(X_layers)
    L, n = shape[:2]
    y_pm1, _ = as_pm1_labels(y, n)
    y_np = np.asarray(y_pm1)
    k_split, k_runs = jax.random.split(key)
    if splits is None:
        splits = protocol_splits(
            k_split, y_np, test_fraction=test_fraction, val_fraction=val_fraction, groups=groups
        )
    splits = check_splits(splits, y_np, n)
    layer_ids = list(range(L)) if layer_ids is None else list(layer_ids)
    rows = list(range(L)) if stability_rows is None else sorted(int(r) for r in stability_rows)
    if any(not 0 <= r < L for r in rows):
        raise ValueError(f"stability_rows {rows} must index the {L} layers of X_layers.")
    measured = list(estimators) if stability_of is None else list(stability_of)
    unknown = [m for m in measured if m not in estimators]
    if unknown:
        raise ValueError(f"stability_of names {unknown}, which are not among {list(estimators)}.")
    data = {"y": y_np, "key": np.asarray(jax.random.key_data(fit_key(key))), **splits.arrays()}
    if mask is not None:
        data["mask"] = check_mask(mask, shape)
    if measured and rows:
        run_splits, run_keys = run_splits_and_keys(
            k_runs, y_np, splits, stability_runs, drop, val_fraction, groups
        )
        run_data = {
            **({"mask": data["mask"]} if "mask" in data else {}),
            "y": y_np,
            "run_keys": np.asarray(jax.random.key_data(run_keys)),
            **run_splits.arrays("run_"),
        }
    # the layers are checked and hashed once, not once per estimator and measure
    fingerprint = fingerprint or content_sha256(X_layers)
    fit_axis = layer_axis(X_layers, L, fingerprint, layer_ids)
    stability_axis = (
        fit_axis
        if len(rows) in (0, L)  # no rows: unused
        else Axis(
            "layer",
            [X_layers[r] for r in rows],
            fingerprint=f"{fingerprint}:rows={rows}",
            labels=[layer_ids[r] for r in rows],
        )
    )
    common = dict(execution=Execution(cells_per_device=chunk_size, progress=progress))

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

    methods = {}
    for name, est in estimators.items():
        t0 = time.perf_counter()
        desc = describe_estimator(est)
        fit_config = {"compare": COMPARE_VERSION, "measure": "fit", "estimator": desc}
        fit = sweep_layers(
            _scores(est),
            fit_axis,
            store(name, "fit", fit_config, layer_ids),
            data=data,
            config=fit_config,
            desc=f"{name} fit",
            **common,
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
                "drop": drop,
                "runs": stability_runs,
            }
            st = sweep_layers(
                _stability(est, run_chunk),
                stability_axis,
                store(name, "stability", st_config, [layer_ids[r] for r in rows]),
                data=run_data,
                config=st_config,
                desc=f"{name} stability",
                # on CPU the cells of a chunk run one after another anyway: one layer
                # per chunk costs nothing and reports progress per layer
                execution=Execution(
                    cells_per_device=1 if batching("auto") == "map" else chunk_size,
                    progress=progress,
                ),
            )
            for k in ("stability", "stability_signed"):
                out[k] = nan.copy()
                out[k][rows] = np.asarray(st.values[k])
            out["stability_seconds"] = nan.copy()
            out["stability_seconds"][rows] = st.seconds
        methods[name] = out
        best = int(np.argmax(out["test_accuracy"]))
        log(
            f"{name}: best layer {layer_ids[best]} test accuracy "
            f"{out['test_accuracy'][best]:.3f} ({time.perf_counter() - t0:.1f} s)"
        )
    return dict(splits=splits, methods=methods)
