r"""Simulations of the teacher-student model through the core solver.

One call samples a teacher and data with an explicit PRNG key from the same
:class:`probejax.GaussianTeacherStudent` the theory reads, fits the ridge-logistic
estimator with the core solver users call (:func:`probejax.solve_ridge_logistic`, no
intercept, :math:`\lambda` on the :math:`x\sim\mathcal N(0, I/d)` scale), and measures the
theory's quantities: :math:`m = \langle w, w^*\rangle/d`, :math:`q = \lVert w\rVert^2/d`, the
cosine, the test accuracy from the empirical :math:`(m, q)` with the exact Gaussian
formula (no test-set noise), training loss and accuracy, and the cosine between this
learner and a second one whose :math:`n` examples share a fraction ``overlap`` with the
first (:math:`0`: independent samples; RAPTOR's ablation: 0.8). ``vmap`` it over keys.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..solvers._ridge_logistic import solve_ridge_logistic
from ..solvers._solver_specs import LBFGS, Newton
from ._observables import generalization_accuracy
from ._quadrature import Quadrature


class Measured(eqx.Module):
    m: Float[Array, ""]
    q: Float[Array, ""]
    cos: Float[Array, ""]
    acc: Float[Array, ""]
    train_loss: Float[Array, ""]
    train_acc: Float[Array, ""]
    stability: Float[Array, ""]
    converged: Array


def simulate(
    model,
    alpha: float,
    lam,
    d: int,
    key: PRNGKeyArray,
    *,
    overlap: float = 0.0,
    solver: Newton | LBFGS = Newton(),
    quad: Quadrature = Quadrature(),
) -> Measured:
    """One simulated run (static ``alpha``, ``d``, ``overlap`` and ``solver``, a
    :class:`~probejax.solvers.Newton` or :class:`~probejax.solvers.LBFGS`; ``lam`` may
    be traced).

    **Returns:** :class:`Measured` for the first learner, with ``stability`` the cosine
    between the two learners' weights.
    """
    n = round(alpha * d)
    shared = round(overlap * n)
    k_data, k_fresh = jax.random.split(key)
    X, y, w_star = model.sample(k_data, n, d)
    X2, y2, _ = model.sample(k_fresh, n - shared, d, w_star=w_star)
    X2, y2 = jnp.concatenate([X[:shared], X2]), jnp.concatenate([y[:shared], y2])
    fit = lambda A, b: solve_ridge_logistic(A, b, lam, fit_intercept=False, solver=solver)
    s1, s2 = fit(X, y), fit(X2, y2)
    m = jnp.dot(s1.w, w_star) / d
    q = jnp.dot(s1.w, s1.w) / d
    z = X @ s1.w
    return Measured(
        m=m,
        q=q,
        cos=m / jnp.sqrt(model.rho * q),
        acc=generalization_accuracy(model, m, q, quad),
        train_loss=jnp.mean(jax.nn.softplus(-y * z)),
        train_acc=jnp.mean(y * z > 0),
        stability=jnp.dot(s1.w, s2.w) / jnp.sqrt(jnp.dot(s1.w, s1.w) * jnp.dot(s2.w, s2.w)),
        converged=s1.converged & s2.converged,
    )
