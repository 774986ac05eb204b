r"""Replica-theory fixed points over teacher parameters and sample ratios as a resumable,
shardable sweep (:func:`probejax.sweep.run_sweep`): each cell solves the whole ridge
grid by continuation, strongest ridge first.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from ..core._checks import float_dtype
from ..datamodels._teacher_student import CHANNELS, GaussianTeacherStudent
from ..sweep._execution import Execution
from ..sweep._grid import Axis, Grid
from ..sweep._runner import SweepResult, run_sweep
from ._grid import _continuation
from ._quadrature import Quadrature
from ._solver import default_tol

# The computation's version in the store's hash: bump it by hand when the fixed points a
# cell returns change (solver, continuation, observables).
THEORY_SWEEP_VERSION = "theory_sweep/1"


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
    execution: Execution = Execution(),
) -> SweepResult:
    r"""Replica fixed points over ``betas x rhos x alphas`` (shard axes) and ``lams``
    (each cell solves the whole ridge grid by continuation, strongest ridge first, as
    :func:`probejax.theory.solve_grid` does for one :math:`\alpha`). Run it in float64
    (``jax.config.update("jax_enable_x64", True)``), as the theory is written for it.

    **Arguments:** ``directory`` (the results store); ``alphas`` (> 0), ``lams``
    (>= 0, any order), ``betas`` (logistic inverse temperatures, >= 0), ``rhos``
    (teacher powers, > 0): 1-D grids; ``channel``, ``delta``, ``eps``: the rest of the
    :class:`probejax.GaussianTeacherStudent`; ``quad``, ``tol``, ``max_iter``: solver
    options of :func:`probejax.theory.solve_fixed_point`; ``execution``: a
    :class:`~probejax.sweep.Execution` (with ``cell_batching="map"`` the continuation's
    cold-start retry stays a branch taken only where needed, best on CPU; ``"vmap"``
    computes it for every cell, but an accelerator runs the cells in parallel).

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
    tol = default_tol(tol)
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
        execution=execution,
    )
