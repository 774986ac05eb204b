r"""Existence of the unregularised estimator: the Candes-Sur separability threshold.

With :math:`\lambda = 0` the logistic MLE exists (the data are not linearly separable)
iff :math:`\kappa = 1/\alpha < h` (Candes and Sur, Ann. Stat. 2020, Theorem 1), with

.. math::

    h = \min_{t\in\mathbb R} F(t), \qquad F(t) = \mathbb E\big[(tV - Z)_+^2\big],

:math:`Z \sim \mathcal N(0,1)` independent of :math:`V = YX`, where :math:`X` is the
normalised teacher field :math:`h^*/\sqrt\rho \sim \mathcal N(0,1)` and :math:`Y` its
label. For a symmetric channel (:math:`P(y\mid h) = P(-y\mid -h)`, all channels of
:class:`probejax.GaussianTeacherStudent`) :math:`V` has density

.. math::

    p_V(v) = \varphi(v)P(+1\mid\sqrt\rho v) + \varphi(-v)P(-1\mid-\sqrt\rho v)
           = 2\varphi(v)\,P(y = +1 \mid h^* = \sqrt\rho\, v).

For the logistic teacher this is :math:`2\varphi(v)\sigma(\gamma v)` with
:math:`\gamma = \beta\sqrt\rho` (Candes-Sur's signal strength, :math:`\gamma^2 =
\operatorname{Var}(\beta h^*)`). The threshold is :math:`\alpha_c = 1/h`: the MLE exists
iff :math:`\alpha > \alpha_c`. Pure noise (:math:`\gamma = 0`) gives :math:`V\sim\mathcal
N(0,1)`, :math:`F(t) = (1+t^2)/2`, :math:`h = 1/2`, :math:`\alpha_c = 2` (Cover). The
noiseless sign teacher has :math:`V = |X| > 0`, so :math:`F(t)\to 0` as :math:`t\to-\infty`:
:math:`h = 0`, the data are always separable, :math:`\alpha_c = \infty`.

Inner expectation in closed form, with :math:`g(a) = \mathbb E(a - Z)_+^2`:

.. math::

    g(a) = (a^2 + 1)\Phi(a) + a\varphi(a),\quad g'(a) = 2(a\Phi(a) + \varphi(a)),\quad
    g''(a) = 2\Phi(a),

so :math:`F(t) = \int p_V(v) g(tv)\,dv` is strictly convex
(:math:`F'' = 2\mathbb E[V^2\Phi(tV)] > 0`); the outer integral is composite
Gauss-Legendre on panels graded at the channel's transition :math:`v = 0`
(:mod:`._quadrature`), and the minimiser is found by Newton's method safeguarded by a
bisection bracket :math:`|t| \le 100(1 + 1/w)`, :math:`w` the transition width
(:math:`t^* \approx -0.38\gamma` at large :math:`\gamma` for the logistic teacher). The minimiser carries no derivative: by the envelope theorem
:math:`dh = \partial F(t^*)`, so :math:`h` is differentiable in the channel parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.stats import norm
from jaxtyping import Array, Float

from ..datamodels._teacher_student import GaussianTeacherStudent
from ._quadrature import Quadrature, gaussian_rule

T_SCALE = 100.0
NEWTON_STEPS = 80


def bracketed_newton(fun, lo, hi, x0, steps: int = NEWTON_STEPS):
    """Root of an increasing function on ``[lo, hi]`` by Newton's method, falling back
    to bisection whenever a step leaves the current bracket.

    **Arguments:** ``fun(x) -> (f, f')`` with ``f(lo) < 0 < f(hi)`` (otherwise the
    iterate runs to the end where the root would lie), bracket ends, start ``x0``,
    a static number of ``steps`` (a ``fori_loop``, so it vmaps).

    **Returns:** the root.
    """

    def body(_, c):
        x, lo, hi = c
        f, df = fun(x)
        lo = jnp.where(f < 0, x, lo)
        hi = jnp.where(f < 0, hi, x)
        x_new = x - f / df
        inside = jnp.isfinite(x_new) & (x_new > lo) & (x_new < hi)
        x_new = jnp.where(inside, x_new, 0.5 * (lo + hi))
        return jnp.where(f == 0, x, x_new), lo, hi

    x, _, _ = jax.lax.fori_loop(0, steps, body, (x0, lo, hi))
    return x


def _transition_width(model: GaussianTeacherStudent):
    """Width in :math:`v` of :math:`v\\mapsto P(+1\\mid\\sqrt\\rho v)` around 0."""
    sq_rho = jnp.sqrt(model.rho)
    if model.channel == "logistic":
        return 1.0 / jnp.maximum(model.beta * sq_rho, 1e-12)
    if model.channel == "probit":
        return jnp.sqrt(model.delta) / sq_rho
    return jnp.zeros_like(sq_rho)


def _label_weights(model: GaussianTeacherStudent, quad: Quadrature):
    """Nodes ``v`` and weights ``w`` with :math:`\\sum w\\,g(v) = \\mathbb E\\, g(V)`."""
    L = quad.half_width
    width = jnp.minimum(_transition_width(model), 0.1)
    v, w = gaussian_rule(-L, L, [(0.0, width)], quad)
    return v, 2.0 * w * model.p_positive(jnp.sqrt(model.rho) * v)


def _positive_part_moment(t, v, w):
    """:math:`F(t) = \\mathbb E\\,g(tV)`."""
    a = t * v
    return jnp.sum(w * ((a**2 + 1) * norm.cdf(a) + a * norm.pdf(a)))


def _existence_h(model: GaussianTeacherStudent, quad: Quadrature):
    v, w = _label_weights(model, quad)

    def stationarity(t):
        a = t * v
        return (
            jnp.sum(w * v * 2 * (a * norm.cdf(a) + norm.pdf(a))),
            jnp.sum(w * v**2 * 2 * norm.cdf(a)),
        )

    # The minimiser scales like the inverse transition width (t* ~ -0.38 gamma, logistic).
    T = T_SCALE * (1 + 1 / jnp.clip(_transition_width(model), 1e-3, 1.0)).astype(v.dtype)
    t = bracketed_newton(stationarity, -T, T, jnp.zeros_like(T))
    h = _positive_part_moment(jax.lax.stop_gradient(t), v, w)
    always_positive = jnp.sum(jnp.where(v < 0, w, 0.0)) == 0
    return jnp.where(always_positive, 0.0, h)


def mle_existence_h(
    gamma: Float[Array, ""] | float, *, quad: Quadrature = Quadrature()
) -> Float[Array, ""]:
    """Candes-Sur :math:`h(\\gamma) = \\min_t\\mathbb E[(tV - Z)_+^2]`, :math:`p_V(v) =
    2\\varphi(v)\\sigma(\\gamma v)` (module docstring). The logistic MLE exists iff
    :math:`\\kappa = d/n < h(\\gamma)`.

    **Arguments:** signal strength ``gamma >= 0`` (vmappable, differentiable),
    ``quad`` (the :math:`v` rule).

    **Returns:** :math:`h(\\gamma)`; :math:`h(0) = 1/2`, decreasing to 0 as
    :math:`\\gamma\\to\\infty`.
    """
    model = GaussianTeacherStudent("logistic", rho=1.0, beta=jnp.asarray(gamma, float))
    return _existence_h(model, quad)


def separability_threshold(
    model: GaussianTeacherStudent, *, quad: Quadrature = Quadrature()
) -> Float[Array, ""]:
    """Sample ratio :math:`\\alpha_c = 1/h` below which the data of ``model`` are
    linearly separable (so the :math:`\\lambda = 0` fixed point does not exist) and above
    which the logistic MLE exists.

    **Arguments:** ``model`` (any channel; logistic maps to :math:`\\gamma =
    \\beta\\sqrt\\rho`), ``quad``.

    **Returns:** :math:`\\alpha_c`: 2 for pure noise (:math:`\\beta = 0`), 2.278 for the
    logistic teacher at :math:`\\beta = \\rho = 1`, ``inf`` for the noiseless sign teacher.
    """
    model = jax.tree.map(lambda a: jnp.asarray(a, float), model)
    h = _existence_h(model, quad)
    return jnp.where(h > 0, 1.0 / jnp.where(h > 0, h, 1.0), jnp.inf)
