r"""Multinomial logistic regression on a few scores: the combiner that turns the
one-vs-rest MIL scores into class probabilities.

For features :math:`s_i \in \mathbb R^p` (the :math:`K` one-vs-rest scores of a bag)
and classes :math:`y_i \in \{0, \dots, K-1\}`,

.. math::

    \min_{W, b}\; \sum_{i=1}^n \Bigl(\log \sum_k e^{z_{ik}} - z_{i y_i}\Bigr)
    + \tfrac{\lambda}{2}\lVert W\rVert_F^2, \qquad z_i = W^\top s_i + b,

with :math:`W \in \mathbb R^{p\times K}` and the intercepts unpenalised: scikit-learn's
``LogisticRegression(C=1/lam)`` (multinomial). The softmax does not change when every
intercept moves by the same amount, so :math:`b_{K-1} = 0` is fixed (the probabilities
are those of any other choice); the objective is then strictly convex in the remaining
:math:`pK + K - 1` parameters, minimised by Newton steps with a backtracking
(Armijo) line search. It stops when the gradient norm falls to ``tol`` times its value
at zero (at least 1), or to its rounding floor :math:`10\,\varepsilon \sum_i
(\lVert s_i\rVert_1 + 1)` when that is larger (float32 cannot resolve a smaller
gradient), or when a step no longer lowers the objective.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ..solvers._logistic import Result


class Multinomial(eqx.Module):
    """A fitted multinomial logistic regression (module docstring).

    **Fields:** ``W`` ``(p, K)``, ``b`` ``(K,)``, ``lam``, ``objective``,
    ``grad_norm`` (at the returned point), ``n_iter`` (Newton steps), ``converged``,
    ``result`` (a :class:`probejax.solvers.Result` code).
    """

    W: Float[Array, "p K"]
    b: Float[Array, " K"]
    lam: Float[Array, ""]
    objective: Float[Array, ""]
    grad_norm: Float[Array, ""]
    n_iter: Int[Array, ""]
    converged: Bool[Array, ""]
    result: Int[Array, ""]

    def logits(self, S: Float[Array, "n p"]) -> Float[Array, "n K"]:
        return S @ self.W + self.b

    def predict_proba(self, S: Float[Array, "n p"]) -> Float[Array, "n K"]:
        """Class probabilities :math:`\\operatorname{softmax}(W^\\top s + b)`."""
        return jax.nn.softmax(self.logits(S), axis=-1)


def _unpack(theta, p, K):
    return theta[: p * K].reshape(p, K), jnp.append(theta[p * K :], jnp.zeros((), theta.dtype))


def _objective(theta, S, onehot, lam):
    W, b = _unpack(theta, S.shape[1], onehot.shape[1])
    z = S @ W + b
    ce = jnp.sum(jax.nn.logsumexp(z, axis=1) - jnp.sum(z * onehot, axis=1))
    return ce + 0.5 * lam * jnp.sum(W * W)


@functools.partial(jax.jit, static_argnames=("n_classes", "max_iter"))
def _newton(S, y, lam, tol, n_classes, max_iter):
    p, K = S.shape[1], n_classes
    onehot = (y[:, None] == jnp.arange(K)).astype(S.dtype)
    f = functools.partial(_objective, S=S, onehot=onehot, lam=lam)
    grad, hess = jax.grad(f), jax.hessian(f)
    theta0 = jnp.zeros(p * K + K - 1, S.dtype)
    g0 = jnp.linalg.norm(grad(theta0))
    # the gradient sums n terms of size |s_i| + 1: its rounding floor in this precision
    floor = 10 * jnp.finfo(S.dtype).eps * jnp.sum(jnp.sum(jnp.abs(S), axis=1) + 1.0)
    goal = jnp.maximum(tol * jnp.maximum(g0, 1.0), floor)

    def cond(carry):
        _, g, _, it, stalled = carry
        return (jnp.linalg.norm(g) > goal) & ~stalled & (it < max_iter)

    def body(carry):
        theta, g, _, it, _ = carry
        step = -jnp.linalg.solve(hess(theta), g)
        step = jnp.where(jnp.all(jnp.isfinite(step)), step, -g)
        f0, slope = f(theta), jnp.dot(g, step)

        def shrink(t):
            return (f(theta + t * step) > f0 + 1e-4 * t * slope) & (t > 1e-10)

        t = jax.lax.while_loop(shrink, lambda t: 0.5 * t, jnp.asarray(1.0, S.dtype))
        better = f(theta + t * step) <= f0
        theta = jnp.where(better, theta + t * step, theta)
        return theta, grad(theta), -slope, it + 1, ~better | (t <= 1e-10)

    carry = (theta0, grad(theta0), jnp.asarray(jnp.inf, S.dtype), jnp.asarray(0, jnp.int32), False)
    theta, g, _, it, _ = jax.lax.while_loop(cond, body, carry)
    gn = jnp.linalg.norm(g)
    value = f(theta)
    finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(theta))
    converged = (gn <= goal) & finite
    result = jnp.where(
        ~finite, Result.NONFINITE, jnp.where(converged, Result.SUCCESS, Result.MAX_ITER)
    )
    W, b = _unpack(theta, p, K)
    return Multinomial(W, b, lam, value, gn, it, converged, result.astype(jnp.int32))


def fit_multinomial(
    S: Float[Array, "n p"],
    y: Int[Array, " n"],
    n_classes: int,
    *,
    lam: float | Float[Array, ""] = 1.0,
    tol: float = 1e-5,
    max_iter: int = 50,
) -> Multinomial:
    r"""Fit the multinomial logistic regression of the module docstring; traceable in
    ``S``, ``y`` and ``lam``.

    **Arguments:**

    - ``S``: ``(n, p)`` features (e.g. the one-vs-rest scores).
    - ``y``: ``(n,)`` classes ``0..n_classes-1``.
    - ``n_classes``: :math:`K` (static).
    - ``lam``: ridge :math:`\lambda > 0` on :math:`W` (scikit-learn ``C = 1/lam``).
    - ``tol``: stop when :math:`\lVert\nabla\rVert \le` ``tol`` times
      :math:`\max(1, \lVert\nabla\rVert \text{ at } 0)` (or at the rounding
      floor of the module docstring).
    - ``max_iter``: Newton steps allowed (static).

    **Returns:** a :class:`Multinomial` (read ``converged``).
    """
    S = jnp.asarray(S)
    if S.ndim != 2:
        raise ValueError(f"fit_multinomial: S must be (n, p), got shape {S.shape}.")
    if jnp.shape(y) != S.shape[:1]:
        raise ValueError(f"fit_multinomial: y must have shape ({S.shape[0]},), got {jnp.shape(y)}.")
    if int(n_classes) < 2:
        raise ValueError(f"fit_multinomial: n_classes must be >= 2, got {n_classes!r}.")
    if not isinstance(lam, jax.core.Tracer) and not float(lam) > 0:
        raise ValueError(f"fit_multinomial: lam must be > 0, got {lam!r}.")
    dt = jnp.result_type(S.dtype, jnp.float32)
    return _newton(
        S.astype(dt),
        jnp.asarray(y, jnp.int32),
        jnp.asarray(lam, dt),
        jnp.asarray(tol, dt),
        int(n_classes),
        int(max_iter),
    )
