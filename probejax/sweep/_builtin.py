r"""Ready sweeps on :func:`probejax.sweep.run_sweep`: the ridge-logistic path on every
layer, RAPTOR probes over layers and seeds, and replica-theory fixed points over
teacher parameters and sample ratios.

All hand the ridge grid to each cell whole (a ``"vmap"`` axis): the probe cells fit
the whole path on one eigendecomposition, the theory cell walks it by continuation.
Their settings enter the config hash through ``config``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from ..core._checks import as_pm1_labels, check_finite, check_lams, float_dtype
from ..core._scaler import Standardizer
from ..datamodels._teacher_student import CHANNELS, GaussianTeacherStudent
from ..protocol._raptor import RAPTOR_C_GRID, RaptorConfig, raptor_fit_split, raptor_splits
from ..solvers._ridge_logistic import resolve_solver, solve_ridge_logistic
from ..theory._grid import _continuation
from ..theory._quadrature import Quadrature
from ._grid import Axis, Grid, take
from ._runner import ChunkDone, SweepResult, run_sweep

PROBE_SWEEP_VERSION = "probe_sweep/1"
THEORY_SWEEP_VERSION = "theory_sweep/1"
PATH_SWEEP_VERSION = "path_sweep/1"


def _batching(cell_batching: str) -> str:
    """``"auto"``: cells of a device one after another on CPU (``"map"``: each stops at
    its own iteration count, plain GEMMs), vectorised elsewhere (``"vmap"``)."""
    if cell_batching == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return cell_batching


def _check_layers(X_layers) -> tuple[int, int, int]:
    if isinstance(X_layers, list | tuple):
        if len(X_layers) == 0:
            raise ValueError("X_layers holds no layers.")
        shape = np.shape(X_layers[0])
        for i, M in enumerate(X_layers):
            if np.shape(M) != shape or len(shape) != 2:
                raise ValueError(
                    f"X_layers[{i}] has shape {np.shape(M)} but X_layers[0] has {shape}; "
                    "every layer must be an (n, d) array of the same shape."
                )
        return (len(X_layers), *shape)
    if getattr(X_layers, "ndim", None) != 3:
        raise ValueError(
            "X_layers must be an array of shape (layers, n, d) or a list of (n, d) "
            f"arrays, got shape {getattr(X_layers, 'shape', type(X_layers).__name__)}."
        )
    return tuple(int(s) for s in X_layers.shape)


def _layer_axis(X_layers, L: int, fingerprint, layer_labels) -> Axis:
    """The ``layer`` shard axis, after checking every layer is finite (errors name it)."""
    for i in range(L):
        check_finite(take(X_layers, np.array([i]))[0], f"X_layers[{i}]")
    labels = list(range(L)) if layer_labels is None else list(layer_labels)
    return Axis("layer", X_layers, fingerprint=fingerprint, labels=labels)


def probe_sweep(
    X_layers,
    y,
    directory: str | os.PathLike,
    *,
    seeds=(0,),
    Cs=RAPTOR_C_GRID,
    config: RaptorConfig = RaptorConfig(),
    layer_labels=None,
    fingerprint: str | None = None,
    cell_batching: str = "auto",
    memory_budget_bytes: int | None = None,
    cells_per_device: int | None = None,
    mesh: Mesh | None = None,
    progress: bool | Callable[[ChunkDone], None] = True,
) -> SweepResult:
    """The RAPTOR protocol (:func:`probejax.raptor_fit_split`) on every (layer, seed):
    the seed's stratified split (``raptor_splits(jax.random.key(seed), y)``), the ridge
    path over ``Cs`` on train_sub, selection on val, refit, test metrics.

    **Arguments:**

    - ``X_layers``: activations ``(layers, n, d)`` (a memmap works: a chunk's layers
      are read when it runs) or a list of ``(n, d)`` arrays; finite.
    - ``y``: two-class labels ``(n,)``.
    - ``directory``: the results store.
    - ``seeds``: integer split seeds (a shard axis).
    - ``Cs``: scikit-learn ``C`` grid (``lam = 1/C``; the vmap axis ``lam``).
    - ``config``: :class:`probejax.RaptorConfig`.
    - ``layer_labels``: names of the layers for the manifest (default ``0..L-1``).
    - ``fingerprint``: a string standing for the activations in the config hash
      (default: their SHA-256, read once).
    - ``cell_batching``: how a device runs its cells: ``"map"`` one after another
      (each stops at its own iteration count; plain matrix products), ``"vmap"``
      vectorised (more work per kernel, in lockstep); ``"auto"``: ``"map"`` on CPU,
      ``"vmap"`` on accelerators.
    - ``memory_budget_bytes``, ``cells_per_device``, ``mesh``, ``progress``: as
      :func:`probejax.sweep.run_sweep`.

    **Returns:** a :class:`SweepResult` whose ``values`` is a
    :class:`probejax.RaptorResult` with leaves of shape ``(layers, seeds, ...)``.
    """
    L, n, _ = _check_layers(X_layers)
    y_pm1, _ = as_pm1_labels(y, n)
    y_np = np.asarray(y)
    lams = np.asarray(1.0 / np.asarray(check_lams(np.asarray(Cs, float), "Cs"), float))
    seeds = np.asarray(seeds)
    if seeds.ndim != 1 or seeds.size == 0 or seeds.dtype.kind not in "iu":
        raise ValueError(f"seeds must be a non-empty 1-D array of integers, got {seeds!r}.")
    grid = Grid(
        [
            _layer_axis(X_layers, L, fingerprint, layer_labels),
            Axis("seed", seeds),
            Axis("lam", lams, "vmap"),
        ]
    )

    def fn(cell, data):
        splits = raptor_splits(
            jax.random.key(cell["seed"]),
            y_np,
            test_fraction=config.test_fraction,
            val_fraction=config.val_fraction,
        )
        X = cell["layer"].astype(data["y"].dtype)
        return raptor_fit_split(X, data["y"], splits, cell["lam"].astype(X.dtype), config)

    return run_sweep(
        fn,
        grid,
        directory,
        data={"y": np.asarray(y_pm1)},
        config={"sweep": PROBE_SWEEP_VERSION, "raptor": dataclasses.asdict(config)},
        memory_budget_bytes=memory_budget_bytes,
        cells_per_device=cells_per_device,
        mesh=mesh,
        cell_batching=_batching(cell_batching),
        progress=progress,
    )


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
    as :func:`probejax.ridge_logistic_path`; the rest (``layer_labels``,
    ``fingerprint``, ``cell_batching``, ...) as :func:`probe_sweep`.

    **Returns:** a :class:`SweepResult` whose ``values`` is a
    :class:`probejax.RidgeLogisticSolution` with leaves of shape ``(layers, len(lams),
    ...)``; ``w`` and ``b`` in raw coordinates, ``objective`` and the gradient norms of
    the (standardised) problem solved.
    """
    L, n, d = _check_layers(X_layers)
    y_pm1, _ = as_pm1_labels(y, n)
    lams = np.asarray(check_lams(np.asarray(lams, float), "lams"), float)
    solver = resolve_solver(solver, n, d, lams.size)
    grid = Grid(
        [
            _layer_axis(X_layers, L, fingerprint, layer_labels),
            Axis("lam", lams, "vmap"),
        ]
    )

    def fn(cell, data):
        X = cell["layer"].astype(data["y"].dtype)
        if standardize:
            scaler = Standardizer.fit(X)
            # materialised before the products (as in raptor_fit_split): fused into the
            # GEMM, the scaling slows it several-fold
            X = jax.lax.optimization_barrier(scaler.transform(X))
        solve = lambda lam: solve_ridge_logistic(
            X, data["y"], lam, solver=solver, tol=tol, max_iter=max_iter
        )
        path = jax.vmap(solve)(cell["lam"].astype(X.dtype))
        if not standardize:
            return path
        w = path.w / scaler.scale
        return eqx.tree_at(lambda p: (p.w, p.b), path, (w, path.b - w @ scaler.mean))

    return run_sweep(
        fn,
        grid,
        directory,
        data={"y": np.asarray(y_pm1)},
        config={
            "sweep": PATH_SWEEP_VERSION,
            "standardize": bool(standardize),
            "solver": solver,
            "tol": tol,
            "max_iter": max_iter,
        },
        memory_budget_bytes=memory_budget_bytes,
        cells_per_device=cells_per_device,
        mesh=mesh,
        cell_batching=_batching(cell_batching),
        progress=progress,
    )


def _positive_1d(values, name: str, *, allow_zero: bool = False) -> np.ndarray:
    arr = np.asarray(values, float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}.")
    bad = ~np.isfinite(arr) | ((arr < 0) if allow_zero else (arr <= 0))
    if bad.any():
        i = int(np.argmax(bad))
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}; entry {i} is {arr[i]!r}.")
    return arr


def theory_sweep(
    directory: str | os.PathLike,
    *,
    alphas,
    lams,
    betas=(1.0,),
    rhos=(1.0,),
    channel: str = "logistic",
    delta: float = 1.0,
    eps: float = 0.0,
    quad: Quadrature = Quadrature(),
    tol: float | None = None,
    max_iter: int = 200,
    cell_batching: str = "auto",
    memory_budget_bytes: int | None = None,
    cells_per_device: int | None = None,
    mesh: Mesh | None = None,
    progress: bool | Callable[[ChunkDone], None] = True,
) -> SweepResult:
    r"""Replica fixed points over ``betas x rhos x alphas`` (shard axes) and ``lams``
    (each cell solves the whole ridge grid by continuation, strongest ridge first, as
    :func:`probejax.theory.solve_grid` does for one :math:`\alpha`). Run it in float64
    (``jax.config.update("jax_enable_x64", True)``), as the theory is written for it.

    **Arguments:** ``directory`` (the results store); ``alphas`` (> 0), ``lams``
    (>= 0, any order), ``betas`` (logistic inverse temperatures, >= 0), ``rhos``
    (teacher powers, > 0): 1-D grids; ``channel``, ``delta``, ``eps``: the rest of the
    :class:`probejax.GaussianTeacherStudent`; ``quad``, ``tol``, ``max_iter``: solver
    options of :func:`probejax.theory.solve_fixed_point`; ``memory_budget_bytes``,
    ``cells_per_device``, ``mesh``, ``progress``: as :func:`probejax.sweep.run_sweep`.
    ``cell_batching``: ``"map"`` runs a device's cells one after another, so the
    continuation's cold-start retry stays a branch taken only where needed (best on
    CPU); ``"vmap"`` vectorises them (the retry is then computed for every cell, but
    an accelerator runs the cells in parallel); ``"auto"``: ``"map"`` on CPU, else
    ``"vmap"``.

    **Returns:** a :class:`SweepResult` whose ``values`` is a
    :class:`probejax.theory.FixedPoint` with leaves of shape
    ``(len(betas), len(rhos), len(alphas), len(lams))``.
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}.")
    grid = Grid(
        [
            Axis("beta", _positive_1d(betas, "betas", allow_zero=True)),
            Axis("rho", _positive_1d(rhos, "rhos")),
            Axis("alpha", _positive_1d(alphas, "alphas")),
            Axis("lam", _positive_1d(lams, "lams", allow_zero=True), "vmap"),
        ]
    )
    dtype = float_dtype()
    tol = (1e-10 if dtype == jnp.float64 else 1e-5) if tol is None else float(tol)
    max_iter = int(max_iter)

    def fn(cell, data):
        model = GaussianTeacherStudent(
            channel,
            rho=cell["rho"],
            beta=cell["beta"],
            delta=jnp.asarray(delta, dtype),
            eps=jnp.asarray(eps, dtype),
        )
        lam = cell["lam"]
        order = jnp.argsort(-lam, stable=True)
        fp = _continuation(model, cell["alpha"][None], lam[order], quad, tol, max_iter)
        inverse = jnp.argsort(order)
        return jax.tree.map(lambda a: a[:, 0][inverse], fp)

    return run_sweep(
        fn,
        grid,
        directory,
        config={
            "sweep": THEORY_SWEEP_VERSION,
            "channel": channel,
            "delta": float(delta),
            "eps": float(eps),
            "quad": dataclasses.asdict(quad),
            "tol": tol,
            "max_iter": max_iter,
        },
        memory_budget_bytes=memory_budget_bytes,
        cells_per_device=cells_per_device,
        mesh=mesh,
        cell_batching=_batching(cell_batching),
        progress=progress,
    )
