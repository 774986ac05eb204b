r"""Multinomial ridge-logistic regression, fitted for a whole ridge grid at once.

For labels :math:`y_i \in \{0, \dots, K-1\}` (one-hot rows :math:`Y`), weights
:math:`W \in \mathbb R^{K\times d}` and intercepts :math:`b \in \mathbb R^K`, the
problem is scikit-learn's multinomial ``LogisticRegression(C=1/lam)``:

.. math::

    \min_{W, b}\; \sum_i \Bigl[\log\sum_k e^{z_{ik}} - z_{i y_i}\Bigr]
    + \tfrac{\lambda}{2}\lVert W\rVert_F^2, \qquad z_i = W x_i + b.

Only the differences between the classes' scores matter, so :math:`b` is determined up
to a common constant (returned with :math:`\sum_k b_k = 0`); the penalty makes
:math:`W` unique, and its rows then sum to zero.

It is solved in the reduced design of :math:`X`
(:func:`probejax.solvers._design.reduce_design`: :math:`XW^\top = FB^\top`,
:math:`\lVert W\rVert = \lVert B\rVert`, :math:`F^\top F = \mathrm{diag}(s)`), so every
ridge of a grid shares one eigendecomposition. Böhning's bound on the Hessian of the
softmax loss, :math:`\tfrac12(I_K - \tfrac1K\mathbf 1\mathbf 1^\top)`, makes the
Hessian of the objective at most
:math:`\tfrac12(I_K - \tfrac1K\mathbf 1\mathbf 1^\top)\otimes\mathrm{diag}(s) +
\lambda I` in these coordinates: column :math:`j` of :math:`B` is rescaled by
:math:`(s_j/2 + \lambda)^{-1/2}` (the intercepts by :math:`(n/2)^{-1/2}`), which
conditions the problem uniformly in :math:`\lambda` and the spectrum of :math:`X`, and
L-BFGS (``optax.lbfgs`` with its zoom line search) runs on the rescaled variables
until the gradient's norm, relative to the one at zero, is below ``tol``. The solver
returns its status: ``converged`` and ``iterations`` per ridge.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu
from jaxtyping import Array, Float, Int

from ..solvers._design import ReducedDesign, reduce_design


class MultinomialSolution(eqx.Module):
    """``W`` ``(K, d)``, ``b`` ``(K,)`` (summing to zero), ``converged``,
    ``iterations``, ``grad_norm`` (relative to the gradient at zero)."""

    W: Float[Array, "K d"]
    b: Float[Array, " K"]
    converged: Array
    iterations: Array
    grad_norm: Array


def one_hot(y: Int[Array, " n"], n_classes: int, dtype) -> Float[Array, "n K"]:
    """Rows of the identity for integer labels ``y``."""
    return jax.nn.one_hot(y, n_classes, dtype=dtype)


def _solve_one(design: ReducedDesign, Y, lam, tol, max_iter: int) -> MultinomialSolution:
    F, s = design.F, design.s
    n, K = Y.shape
    scale = jnp.concatenate([jnp.sqrt(2.0 / n)[None], 1.0 / jnp.sqrt(s / 2.0 + lam)])

    def objective(theta):
        coef = theta * scale  # (K, r + 1): intercept first, then B
        z = F @ coef[:, 1:].T + coef[:, 0]
        loss = jnp.sum(jax.nn.logsumexp(z, axis=1) - jnp.sum(z * Y, axis=1))
        return loss + 0.5 * lam * jnp.sum(coef[:, 1:] ** 2)

    theta0 = jnp.zeros((K, F.shape[1] + 1), F.dtype)
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)
    g0 = otu.tree_norm(jax.grad(objective)(theta0))
    g0 = jnp.where(g0 > 0, g0, 1.0)

    def step(carry):
        theta, state = carry
        value, grad = value_and_grad(theta, state=state)
        updates, state = opt.update(grad, state, theta, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(theta, updates), state

    def going(carry):
        _, state = carry
        k = otu.tree_get(state, "count")
        g = otu.tree_norm(otu.tree_get(state, "grad"))
        return (k == 0) | ((k < max_iter) & (g > tol * g0) & jnp.isfinite(g))

    theta, state = jax.lax.while_loop(going, step, (theta0, opt.init(theta0)))
    coef = theta * scale
    rel = otu.tree_norm(jax.grad(objective)(theta)) / g0
    W = jax.vmap(design.lift)(coef[:, 1:])
    b = coef[:, 0] - jnp.mean(coef[:, 0])
    return MultinomialSolution(W, b, rel <= tol, otu.tree_get(state, "count"), rel)


def multinomial_ridge_path(
    X: Float[Array, "n d"],
    y: Int[Array, " n"],
    lams: Float[Array, " L"],
    n_classes: int,
    *,
    tol: float | None = None,
    max_iter: int = 2000,
) -> MultinomialSolution:
    """Solve the module's problem for every ``lam`` of a grid (traceable; one
    eigendecomposition shared by the grid, the solves vmapped).

    **Arguments:**

    - ``X``: ``(n, d)`` features (standardise them first for RAPTOR's protocol).
    - ``y``: ``(n,)`` integer labels in ``0..n_classes-1``.
    - ``lams``: ``(L,)`` ridge strengths, ``lam = 1/C``.
    - ``n_classes``: ``K``, a Python int.
    - ``tol``: the relative gradient norm at which a solve stops (default ``1e-5`` in
      float32, ``1e-9`` in float64); ``max_iter``: the most L-BFGS iterations.

    **Returns:** a :class:`MultinomialSolution` with a leading ``L`` axis.
    """
    X = jnp.asarray(X)
    tol = (1e-9 if X.dtype == jnp.float64 else 1e-5) if tol is None else float(tol)
    return _path(X, jnp.asarray(y), jnp.asarray(lams, X.dtype), n_classes, tol, int(max_iter))


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _path(X, y, lams, n_classes, tol, max_iter):
    design = reduce_design(X)
    Y = one_hot(y, n_classes, X.dtype)
    return jax.vmap(lambda lam: _solve_one(design, Y, lam, tol, max_iter))(lams)


def fit_multinomial_ridge(X, y, lam, n_classes: int, **kwargs) -> MultinomialSolution:
    """:func:`multinomial_ridge_path` at one ``lam`` (no leading axis)."""
    path = multinomial_ridge_path(X, y, jnp.reshape(jnp.asarray(lam), (1,)), n_classes, **kwargs)
    return jax.tree.map(lambda a: a[0], path)
