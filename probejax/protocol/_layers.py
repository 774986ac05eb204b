r"""Layer sweeps of any estimator through the one engine (:func:`sweep_layers`).

- :func:`probe_sweep`: an estimator on every (layer, seed), the seed's splits
  (``protocol_splits(jax.random.key(seed), y)``), fitted with validation and scored on
  test; resumable, shardable over devices and hosts.
- :func:`raptor_layers`: the RAPTOR protocol on every layer with one shared split (as
  the authors run it), reported as :class:`~probejax.RaptorResult`.
- :func:`path_sweep`: the plain ridge-logistic path over a grid on every layer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh
from jaxtyping import PRNGKeyArray

from ..core._checks import as_pm1_labels, check_lams
from ..core._scaler import Standardizer
from ..estimators._base import Estimator
from ..estimators._raptor import RAPTOR_C_GRID
from ..solvers._ridge_logistic import resolve_solver, solve_ridge_logistic
from ..sweep._execution import Execution
from ..sweep._grid import Axis
from ..sweep._runner import ChunkDone, SweepResult
from ._engine import check_layers, check_mask, describe_estimator, layer_inputs, sweep_layers
from ._evaluate import evaluate, fit_key
from ._raptor import RaptorConfig, RaptorResult, check_raptor_inputs, raptor_result
from ._splits import PARTS, Splits, protocol_splits, stack_trimmed

PROBE_SWEEP_VERSION = "probe_sweep/2"
PATH_SWEEP_VERSION = "path_sweep/1"
RAPTOR_LAYERS_VERSION = "raptor_layers/1"


class RaptorLayers(NamedTuple):
    results: RaptorResult
    splits: Splits
    seconds: np.ndarray


def raptor_layers(
    X_layers,
    y,
    key: PRNGKeyArray | None = None,
    *,
    Cs=RAPTOR_C_GRID,
    config: RaptorConfig = RaptorConfig(),
    splits: Splits | None = None,
    chunk_size: int = 8,
    directory: str | os.PathLike | None = None,
    progress: bool = False,
) -> RaptorLayers:
    """The RAPTOR protocol on every layer, with one split shared by all layers (as the
    authors do). Arguments as :func:`probejax.fit_raptor`, plus ``chunk_size`` layers
    per compiled chunk and an optional resumable ``directory``.

    **Returns:** ``RaptorLayers(results, splits, seconds)``; ``results`` leaves have a
    leading ``layers`` axis.
    """
    L, _, _ = check_layers(X_layers)
    X0 = np.asarray(X_layers[0])
    _, y_pm1, lams, splits = check_raptor_inputs(X0, y, Cs, splits, key, config)
    est = config.estimator_at(lams)

    def fn(X, cell, data):
        return raptor_result(evaluate(est, X, data["y"], Splits.from_arrays(data), None))

    out = sweep_layers(
        fn,
        X_layers,
        directory,
        data={"y": np.asarray(y_pm1), **splits.arrays()},
        config={"sweep": RAPTOR_LAYERS_VERSION, "estimator": describe_estimator(est)},
        execution=Execution(cells_per_device=min(int(chunk_size), L), progress=progress),
        desc="raptor",
    )
    return RaptorLayers(out.values, splits, out.seconds)


def probe_sweep(
    X_layers,
    y,
    directory: str | os.PathLike,
    *,
    estimator: Estimator | None = None,
    seeds=(0,),
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    Cs=RAPTOR_C_GRID,
    config: RaptorConfig = RaptorConfig(),
    layer_labels=None,
    fingerprint: str | None = None,
    cell_batching: str = "auto",
    memory_budget_bytes: int | None = None,
    cells_per_device: int | None = None,
    mesh: Mesh | None = None,
    progress: bool | Callable[[ChunkDone], None] = True,
    mask=None,
    groups=None,
) -> SweepResult:
    """An estimator on every (layer, seed): the seed's stratified split
    (``protocol_splits(jax.random.key(seed), y)``), ``fit_with_validation``, test metrics.

    **Arguments:**

    - ``X_layers``: activations ``(layers, n, d)`` (a memmap works: a chunk's layers
      are read when it runs) or a list of ``(n, d)`` arrays; finite.
    - ``y``: two-class labels ``(n,)``; ``directory``: the results store.
    - ``estimator``: any :class:`~probejax.estimators.Estimator`; ``None`` is RAPTOR
      (``config.estimator(Cs)``), whose cells are then reported as
      :class:`probejax.RaptorResult`; other estimators' cells as
      :class:`~probejax.protocol.Evaluation`.
    - ``seeds``: integer split seeds (a shard axis); ``test_fraction``,
      ``val_fraction`` of the splits (``config``'s for RAPTOR).
    - ``layer_labels``: names of the layers for the manifest (default ``0..L-1``);
      ``fingerprint``: a string standing for the activations in the config hash
      (default: their SHA-256, read once).
    - ``cell_batching``: ``"map"`` (cells one after another; each stops at its own
      iteration count), ``"vmap"``, or ``"auto"`` (``"map"`` on CPU).
    - ``memory_budget_bytes``, ``cells_per_device``, ``mesh``, ``progress``: as
      :func:`probejax.sweep.run_sweep`.
    - ``mask``: for token activations ``X_layers`` ``(layers, n, T, d)``, the mask of
      real tokens ``(n, T)``; the estimator then gets :class:`probejax.core.Tokens`
      (sequence probes).
    - ``groups``: ``(n,)`` or ``(n, m)`` group labels: each seed's split is grouped
      (made on the host, parts trimmed to the seeds' common sizes; no group shared
      across parts; :mod:`probejax.protocol`).

    **Returns:** a :class:`~probejax.sweep.SweepResult` with leaves of shape
    ``(layers, seeds, ...)``.
    """
    shape = check_layers(X_layers)
    n = shape[1]
    y_pm1, _ = as_pm1_labels(y, n)
    y_np = np.asarray(y)
    data = {"y": np.asarray(y_pm1)}
    if mask is not None:
        data["mask"] = check_mask(mask, shape)
    if estimator is None:
        lams = np.asarray(1.0 / np.asarray(check_lams(np.asarray(Cs, float), "Cs"), float))
        estimator = config.estimator_at(lams)
        report = raptor_result
        test_fraction, val_fraction = config.test_fraction, config.val_fraction
    else:
        report = lambda ev: ev
    seeds = np.asarray(seeds)
    if seeds.ndim != 1 or seeds.size == 0 or seeds.dtype.kind not in "iu":
        raise ValueError(f"seeds must be a non-empty 1-D array of integers, got {seeds!r}.")

    fractions = dict(test_fraction=test_fraction, val_fraction=val_fraction)
    seed_axis = Axis("seed", seeds)
    if groups is not None:
        # grouped splits are made on the host; the seed axis carries each seed's parts
        # (trimmed to common sizes) and the seed itself as its last entry
        per_seed = stack_trimmed(
            [
                protocol_splits(jax.random.key(int(s)), y_np, **fractions, groups=groups)
                for s in seeds
            ]
        )
        parts = [np.asarray(getattr(per_seed, p)) for p in PARTS]
        rows = np.concatenate([*parts, seeds[:, None]], axis=1)
        seed_axis = Axis("seed", rows, labels=seeds.tolist())
        cuts = np.cumsum([a.shape[1] for a in parts])

    def fn(X, cell, data):
        if groups is None:
            seed = cell["seed"]
            splits = protocol_splits(jax.random.key(seed), y_np, **fractions)
        else:
            row = cell["seed"]
            seed = row[-1]
            splits = Splits(row[: cuts[0]], row[cuts[0] : cuts[1]], row[cuts[1] : cuts[2]])
        inputs = layer_inputs(X, data)
        key = jax.random.key(seed)
        return report(evaluate(estimator, inputs, data["y"], splits, fit_key(key)))

    out = sweep_layers(
        fn,
        X_layers,
        directory,
        data=data,
        config={
            "sweep": PROBE_SWEEP_VERSION,
            "estimator": describe_estimator(estimator),
            "fractions": [test_fraction, val_fraction],
        },
        extra_axes=[seed_axis],
        layer_labels=layer_labels,
        fingerprint=fingerprint,
        execution=Execution(
            cells_per_device=cells_per_device,
            memory_budget_bytes=memory_budget_bytes,
            mesh=mesh,
            cell_batching=cell_batching,
            progress=progress,
        ),
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
    solver: str = "auto",
    tol: float | None = None,
    max_iter: int | None = None,
    layer_labels=None,
    fingerprint: str | None = None,
    cell_batching: str = "auto",
    memory_budget_bytes: int | None = None,
    cells_per_device: int | None = None,
    mesh: Mesh | None = None,
    progress: bool | Callable[[ChunkDone], None] = True,
) -> SweepResult:
    """The ridge-logistic path over ``lams`` on every layer, all examples (no split):
    the plain lambda sweep (:func:`probejax.solve_ridge_logistic` vmapped over the grid,
    one eigendecomposition per layer with the L-BFGS solver).

    **Arguments:** ``X_layers`` (``(layers, n, d)``, a memmap, or a list of ``(n, d)``),
    ``y`` (two-class labels), ``directory``; ``lams``: 1-D ridge grid (> 0);
    ``standardize``: fit on per-layer standardised features (statistics of all
    examples) and return raw-coordinate weights; ``solver``, ``tol``, ``max_iter``:
    as :func:`probejax.ridge_logistic_path`; the rest as :func:`probe_sweep`.

    **Returns:** a :class:`SweepResult` whose ``values`` is a
    :class:`probejax.RidgeLogisticSolution` with leaves of shape ``(layers, len(lams),
    ...)``; ``w`` and ``b`` in raw coordinates, ``objective`` and the gradient norms of
    the (standardised) problem solved.
    """
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
        solve = lambda lam: solve_ridge_logistic(
            X, data["y"], lam, solver=solver, tol=tol, max_iter=max_iter
        )
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
            "solver": solver,
            "tol": tol,
            "max_iter": max_iter,
        },
        extra_axes=[Axis("lam", lams, "vmap")],
        layer_labels=layer_labels,
        fingerprint=fingerprint,
        execution=Execution(
            cells_per_device=cells_per_device,
            memory_budget_bytes=memory_budget_bytes,
            mesh=mesh,
            cell_batching=cell_batching,
            progress=progress,
        ),
        desc="path sweep",
    )
    return out.result
