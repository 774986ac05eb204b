r"""Layer sweeps through the one engine (:func:`sweep_layers`), resumable and shardable
over devices and hosts.

- :func:`probe_sweep`: an estimator on every (layer, seed), the seed's splits
  (``protocol_splits(jax.random.key(seed), y, split)``), fitted with validation and
  scored on test.
- :func:`path_sweep`: the plain ridge-logistic path over a grid on every layer.
"""

from __future__ import annotations

import os

import equinox as eqx
import jax
import numpy as np

from ..core._checks import as_pm1_labels, check_lams
from ..core._scaler import Standardizer
from ..estimators._base import Estimator
from ..solvers._ridge_logistic import solve_ridge_logistic
from ..solvers._solver_specs import Auto, Solver, check_solver, resolve_solver
from ..sweep._execution import Execution
from ..sweep._grid import Axis
from ..sweep._runner import SweepResult
from ._engine import check_layers, check_mask, describe_estimator, layer_inputs, sweep_layers
from ._evaluate import evaluate_on, fit_key
from ._specs import SplitSpec
from ._splits import PARTS, Splits, protocol_splits, stack_trimmed

PROBE_SWEEP_VERSION = "probe_sweep/3"
PATH_SWEEP_VERSION = "path_sweep/2"


def probe_sweep(
    estimator: Estimator,
    X_layers,
    y,
    directory: str | os.PathLike,
    *,
    seeds=(0,),
    split: SplitSpec = SplitSpec(),
    groups=None,
    mask=None,
    layers=None,
    fingerprint: str | None = None,
    execution: Execution = Execution(),
) -> SweepResult:
    """``estimator`` on every (layer, seed): the seed's stratified split
    (``protocol_splits(jax.random.key(seed), y, split)``), ``fit_with_validation``
    with ``fold_in(key(seed), 1)``, test metrics.

    **Arguments:**

    - ``estimator``: any :class:`~probejax.Estimator` (RAPTOR:
      ``probejax.estimators.raptor()``).
    - ``X_layers``: activations ``(layers, n, d)`` (a memmap works: a chunk's layers
      are read when it runs) or a list of ``(n, d)`` arrays; finite.
    - ``y``: two-class labels ``(n,)``; ``directory``: the results store.
    - ``seeds``: integer split seeds (a shard axis); ``split``: the split shares.
    - ``groups``: ``(n,)`` or ``(n, m)`` group labels: each seed's split is grouped
      (made on the host, parts trimmed to the seeds' common sizes; no group shared
      across parts).
    - ``mask``: for token activations ``X_layers`` ``(layers, n, T, d)``, the mask of
      real tokens ``(n, T)``; the estimator then gets :class:`probejax.core.Tokens`.
    - ``layers``: names of the layers for the manifest (default ``0..L-1``);
      ``fingerprint``: a string standing for the activations in the config hash
      (default: their SHA-256, read once).
    - ``execution``: :class:`~probejax.sweep.Execution` (cells per device or a memory
      budget, mesh, map/vmap, progress).

    **Returns:** a :class:`~probejax.sweep.SweepResult` whose ``values`` is an
    :class:`~probejax.Evaluation` with leaves of shape ``(layers, seeds, ...)``
    (``values.info`` holds a tuned estimator's chosen ridge per cell).
    """
    if not isinstance(estimator, Estimator):
        raise TypeError(f"estimator must be an Estimator, got {type(estimator).__name__}.")
    shape = check_layers(X_layers)
    n = shape[1]
    y_pm1, _ = as_pm1_labels(y, n)
    y_np = np.asarray(y)
    data = {"y": np.asarray(y_pm1)}
    if mask is not None:
        data["mask"] = check_mask(mask, shape)
    seeds = np.asarray(seeds)
    if seeds.ndim != 1 or seeds.size == 0 or seeds.dtype.kind not in "iu":
        raise ValueError(f"seeds must be a non-empty 1-D array of integers, got {seeds!r}.")

    seed_axis = Axis("seed", seeds)
    if groups is not None:
        # grouped splits are made on the host; the seed axis carries each seed's parts
        # (trimmed to common sizes) and the seed itself as its last entry
        per_seed = stack_trimmed(
            [protocol_splits(jax.random.key(int(s)), y_np, split, groups=groups) for s in seeds]
        )
        parts = [np.asarray(getattr(per_seed, p)) for p in PARTS]
        rows = np.concatenate([*parts, seeds[:, None]], axis=1)
        seed_axis = Axis("seed", rows, labels=seeds.tolist())
        cuts = np.cumsum([a.shape[1] for a in parts])

    def fn(X, cell, data):
        if groups is None:
            seed = cell["seed"]
            splits = protocol_splits(jax.random.key(seed), y_np, split)
        else:
            row = cell["seed"]
            seed = row[-1]
            splits = Splits(row[: cuts[0]], row[cuts[0] : cuts[1]], row[cuts[1] : cuts[2]])
        inputs = layer_inputs(X, data)
        key = jax.random.key(seed)
        return evaluate_on(estimator, inputs, data["y"], splits, fit_key(key))

    out = sweep_layers(
        fn,
        X_layers,
        directory,
        data=data,
        config={
            "sweep": PROBE_SWEEP_VERSION,
            "estimator": describe_estimator(estimator),
            "fractions": [split.test_fraction, split.val_fraction],
        },
        extra_axes=[seed_axis],
        layer_labels=layers,
        fingerprint=fingerprint,
        execution=execution,
        desc="probe sweep",
    )
    return out.result


def path_sweep(
    X_layers,
    y,
    directory: str | os.PathLike,
    *,
    lams,
    standardize: bool = True,
    solver: Solver = Auto(),
    layers=None,
    fingerprint: str | None = None,
    execution: Execution = Execution(),
) -> SweepResult:
    """The ridge-logistic path over ``lams`` on every layer, all examples (no split):
    the plain lambda sweep (:func:`probejax.solvers.solve_ridge_logistic` vmapped over
    the grid, one eigendecomposition per layer with the L-BFGS solver).

    **Arguments:** ``X_layers`` (``(layers, n, d)``, a memmap, or a list of ``(n, d)``),
    ``y`` (two-class labels), ``directory``; ``lams``: 1-D ridge grid (> 0);
    ``standardize``: fit on per-layer standardised features (statistics of all
    examples) and return raw-coordinate weights; ``solver``: a
    :class:`~probejax.solvers.Newton`, :class:`~probejax.solvers.LBFGS` or
    :class:`~probejax.solvers.Auto` (resolved for the grid, as
    :func:`probejax.solvers.ridge_logistic_path` does; the config hash records the
    resolved solver); the rest as :func:`probe_sweep`.

    **Returns:** a :class:`SweepResult` whose ``values`` is a
    :class:`probejax.solvers.RidgeLogisticSolution` with leaves of shape ``(layers,
    len(lams), ...)``; ``w`` and ``b`` in raw coordinates, ``objective`` and the
    gradient norms of the (standardised) problem solved.
    """
    check_solver(solver)
    L, n, d = check_layers(X_layers)
    y_pm1, _ = as_pm1_labels(y, n)
    lams = np.asarray(check_lams(np.asarray(lams, float), "lams"), float)
    solver = resolve_solver(solver, n, d, lams.size)

    def fn(X, cell, data):
        if standardize:
            scaler = Standardizer.fit(X)
            # materialised before the products: fused into the GEMM, the scaling
            # slows it several-fold
            X = jax.lax.optimization_barrier(scaler.transform(X))
        solve = lambda lam: solve_ridge_logistic(X, data["y"], lam, solver=solver)
        path = jax.vmap(solve)(cell["lam"].astype(X.dtype))
        if not standardize:
            return path
        w = path.w / scaler.scale
        return eqx.tree_at(lambda p: (p.w, p.b), path, (w, path.b - w @ scaler.mean))

    out = sweep_layers(
        fn,
        X_layers,
        directory,
        data={"y": np.asarray(y_pm1)},
        config={
            "sweep": PATH_SWEEP_VERSION,
            "standardize": bool(standardize),
            "solver": solver.describe(),
        },
        extra_axes=[Axis("lam", lams, "vmap")],
        layer_labels=layers,
        fingerprint=fingerprint,
        execution=execution,
        desc="path sweep",
    )
    return out.result
