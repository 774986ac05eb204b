r"""Theory curves and simulation sweeps as NumPy arrays, for the figures and notebooks.

Each function is one library call per quantity of :mod:`probejax.theory`, vmapped over
a grid, returned as ``dict[str, np.ndarray]``; grids are indexed ``[lam, alpha]`` like
:func:`probejax.theory.solve_grid`. Call them with float64 enabled
(``jax.config.update("jax_enable_x64", True)``). Simulation summaries are the mean and
standard error over seeds, :math:`\bar x \pm s/\sqrt k` with :math:`k` the seeds whose
fits converged (others are dropped and counted).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..datamodels._teacher_student import GaussianTeacherStudent
from ..solvers import LBFGS, Newton
from ..theory import (
    FixedPoint,
    Params,
    mle_existence_h,
    observables,
    optimal_lam,
    simulate,
    solve_fixed_point,
    solve_grid,
    two_learner_overlap,
)

SIM_FIELDS = ("acc", "cos", "stability", "train_acc", "m", "q")

_per_point = Params(0, 0, None)
_observables_grid = jax.vmap(
    jax.vmap(observables, in_axes=(_per_point, 0)), in_axes=(_per_point, 0)
)


def _mesh(alphas, lams):
    A, L = jnp.meshgrid(jnp.asarray(alphas, float), jnp.asarray(lams, float))
    return A, L


def theory_curves(
    model: GaussianTeacherStudent, alphas, lams, fp: FixedPoint | None = None
) -> dict[str, np.ndarray]:
    """Fixed points (continuation in ``lams``; or ``fp``, already solved on this grid)
    and their observables on the grid.

    **Returns:** ``acc``, ``cos``, ``stability`` (independent samples, :math:`m^2/\\rho q`),
    ``train_acc``, ``m``, ``q``, ``converged``, each of shape ``(len(lams), len(alphas))``.
    """
    fp = solve_grid(model, alphas, lams) if fp is None else fp
    A, L = _mesh(alphas, lams)
    obs = _observables_grid(Params(A, L, jax.tree.map(jnp.asarray, model)), fp)
    out = {k: np.asarray(getattr(obs, k)) for k in ("acc", "cos", "stability", "train_acc")}
    return out | {
        "m": np.asarray(fp.m),
        "q": np.asarray(fp.q),
        "converged": np.asarray(fp.converged),
    }


def overlap_stability(
    model: GaussianTeacherStudent, alphas, lams, c: float, fp: FixedPoint | None = None
) -> dict:
    """Limiting :math:`\\cos(w_1, w_2)` of two learners sharing a fraction ``c`` of their
    samples, on the grid (``fp``: the single-learner fixed points there, if solved).

    **Returns:** ``stability``, ``converged``, shape ``(len(lams), len(alphas))``.
    """
    fp = solve_grid(model, alphas, lams) if fp is None else fp
    A, L = _mesh(alphas, lams)
    f = lambda a, lam, fp_: two_learner_overlap(model, a, lam, c, fp_)
    tl = jax.vmap(jax.vmap(f))(A, L, fp)
    return {"stability": np.asarray(tl.stability), "converged": np.asarray(tl.converged)}


def optimal_curve(model: GaussianTeacherStudent, alphas, bracket=(1e-4, 1e2)) -> dict:
    """:math:`\\lambda^*(\\alpha)` maximising the test accuracy, and the accuracy there.

    **Returns:** ``lam``, ``acc``, ``status`` (:class:`probejax.theory.LamStatus`),
    ``at_end``, shape ``(len(alphas),)``.
    """
    f = jax.vmap(lambda a: optimal_lam(model, a, metric="acc", bracket=tuple(bracket)))
    o = f(jnp.asarray(alphas, float))
    return {
        "lam": np.asarray(o.lam),
        "acc": np.asarray(o.value),
        "status": np.asarray(o.status),
        "at_end": np.asarray(o.at_end),
    }


@partial(jax.jit, static_argnames=("max_iter",))
def _phase(gammas, alphas, max_iter):
    def one(g, a):
        model = GaussianTeacherStudent("logistic", rho=1.0, beta=g)
        return solve_fixed_point(model, a, 0.0, max_iter=max_iter)

    return jax.vmap(one)(gammas, alphas)


def phase_grid(gammas, alphas, *, max_iter: int = 40) -> dict:
    """The unregularised (:math:`\\lambda = 0`) fixed point of the logistic teacher with
    :math:`\\rho = 1`, :math:`\\beta = \\gamma` on the ``(gammas, alphas)`` grid, and the
    Candes-Sur threshold :math:`\\alpha_c = 1/h(\\gamma)` at ``gammas``.

    **Returns:** ``converged``, ``status`` of shape ``(len(gammas), len(alphas))``;
    ``alpha_c`` of shape ``(len(gammas),)``.
    """
    G, A = np.meshgrid(np.asarray(gammas, float), np.asarray(alphas, float), indexing="ij")
    fp = _phase(jnp.asarray(G.ravel()), jnp.asarray(A.ravel()), max_iter)
    return {
        "converged": np.asarray(fp.converged).reshape(G.shape),
        "status": np.asarray(fp.status).reshape(G.shape),
        "alpha_c": alpha_c(gammas),
    }


def alpha_c(gammas) -> np.ndarray:
    """Separability threshold :math:`1/h(\\gamma)` of the logistic teacher."""
    return 1.0 / np.asarray(jax.vmap(mle_existence_h)(jnp.asarray(gammas, float)))


@partial(jax.jit, static_argnames=("alpha", "d", "overlap", "solver"))
def _simulate_grid(model, lams, keys, *, alpha, d, overlap, solver):
    def per_key(key):
        run = lambda lam: simulate(model, alpha, lam, d, key, overlap=overlap, solver=solver)
        return jax.vmap(run)(lams)  # one design per key: lbfgs shares its eigenbasis

    # Keys in sequence, not vmapped: a batched eigh inside this program can deadlock
    # jaxlib's CPU thread pool when it has few threads (see probejax/core/_linalg.py).
    return jax.lax.map(per_key, keys)


def mean_se(x: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over axis 0 of ``x`` where ``ok`` (NaN with < 1 / < 2 kept)."""
    k = ok.sum(0)
    xs = np.where(ok, x, 0.0)
    mean = np.where(k > 0, xs.sum(0) / np.maximum(k, 1), np.nan)
    var = np.where(ok, (x - mean) ** 2, 0.0).sum(0) / np.maximum(k - 1, 1)
    return mean, np.where(k > 1, np.sqrt(var / np.maximum(k, 1)), np.nan)


def simulation_sweep(
    model: GaussianTeacherStudent,
    alpha: float,
    lams,
    *,
    d: int,
    seeds: int,
    key,
    overlap: float = 0.0,
    solver: LBFGS | Newton = LBFGS(),
) -> dict[str, np.ndarray]:
    """:func:`probejax.theory.simulate` at every ``lam`` for ``seeds`` keys split from
    ``key`` (one teacher and dataset per key, shared by the ``lams``; the ``lams`` are
    vmapped, the keys run in sequence). ``alpha``, ``d`` and ``overlap`` are static:
    each new value compiles once.

    **Returns:** ``{field}`` and ``{field}_se`` for ``field`` in :data:`SIM_FIELDS`
    (``stability``: cosine to a second learner sharing a fraction ``overlap`` of the
    samples), and ``converged`` (fraction of seeds), each of shape ``(len(lams),)``.
    """
    keys = jax.random.split(key, seeds)
    lams = jnp.asarray(lams, float)
    meas = _simulate_grid(
        model, lams, keys, alpha=float(alpha), d=int(d), overlap=float(overlap), solver=solver
    )
    ok = np.asarray(meas.converged)
    out = {"converged": ok.mean(0)}
    for name in SIM_FIELDS:
        out[name], out[f"{name}_se"] = mean_se(np.asarray(getattr(meas, name)), ok)
    return out
