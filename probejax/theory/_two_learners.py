r"""Stability of the concept vector between two learners on overlapping samples.

Two ridge-logistic estimators :math:`w_1, w_2` are trained on datasets of
:math:`n = \alpha d` examples each, sharing :math:`cn` of them (the rest independent,
same teacher; RAPTOR's ablation keeps 80% of a pool per run: :math:`c = 0.8`). Each
learner alone has the single-learner fixed point :math:`(m, q, V, \hat m, \hat q,
\hat V)` of :mod:`._fixed_point`. Only the shared examples couple them: on those the
fields :math:`\omega = (\omega_1, \omega_2) \sim \mathcal N(0, Q)`,
:math:`Q = [[q, q_{12}], [q_{12}, q]]`, see the same label, and (no cross
susceptibility, :math:`V_{12} = 0`) each enters through its own proximal term
:math:`f`. Channel and prior updates of the cross overlap (Clarte et al.
2024):

.. math::

    \hat q_{12} = c\,\alpha\,g(q_{12}),\quad
    g = \sum_y \mathbb E_\omega\bigl[Z_0(y, \mathbf m^\top Q^{-1}\omega,
    \rho - \mathbf m^\top Q^{-1}\mathbf m)\, f(y, \omega_1, V)\, f(y, \omega_2, V)\bigr],
    \quad q_{12} = \frac{\rho\hat m^2 + \hat q_{12}}{(\lambda + \hat V)^2},

with :math:`\mathbf m = (m, m)`. With :math:`r = q_{12}/q`, :math:`s = \sqrt{1 - r^2}`,
:math:`\omega_1 = \sqrt q\,\xi_1`, :math:`\omega_2 = \sqrt q(r\xi_1 + s\xi_2)`, the
teacher's conditional mean and variance are
:math:`\omega_0 = (m/\sqrt q)(\xi_1 + t\xi_2)`, :math:`t = \sqrt{(1-r)/(1+r)}`, and
:math:`V_0 = \rho - 2m^2/(q(1+r))`; the :math:`y = -1` term equals the :math:`y = +1`
term (:math:`(y, \xi) \to (-y, -\xi)`). Since :math:`m = \rho\hat m V` and
:math:`q - m^2/\rho = \hat q V^2 = \alpha g(q) V^2` at the single-learner fixed point,
the stability :math:`r` (the limiting :math:`\cos(w_1, w_2)`) solves the scalar equation

.. math::

    r = r_0 + c\,(1 - r_0)\,\frac{g(rq)}{g(q)}, \qquad r_0 = \frac{m^2}{\rho q},

whose exact solutions are :math:`r = r_0` at :math:`c = 0` (independent samples) and
:math:`r = 1` at :math:`c = 1`, whatever the quadrature error; :math:`\alpha` and
:math:`\lambda` enter only through :math:`(m, q, V)`. As :math:`g > 0`
(:math:`f(+1, \cdot) > 0`), the right side minus :math:`r` is :math:`\ge 0` at
:math:`r_0` and :math:`\le 0` at 1, so the root is bracketed by :math:`[r_0, 1]` (the
map is increasing in :math:`r`, numerically); it is found by the Anderson-Bjorck
(regula falsi) method, which needs no derivative (:math:`\partial_r s` is singular at
:math:`r = 1`). :math:`[r_0, 1]` is also where the covariance of
:math:`(h^*, \omega_1, \omega_2)` is valid (it needs :math:`r \ge 2r_0 - 1`).

Quadrature: :math:`\xi_1` on the feature-graded Gauss-Legendre rule of
:mod:`._quadrature` (features: the proximal corners :math:`\omega_1 \in \{0, -V\}`,
width 1 in :math:`\omega`, and the teacher's transition at 0); for each :math:`\xi_1`
node, :math:`\xi_2` on its own graded rule with features where
:math:`\omega_2 \in \{0, -V\}` (width :math:`1/(\sqrt q s)`) and where
:math:`\omega_0 = 0` (at :math:`\xi_2 = -\xi_1/t`).
"""

from __future__ import annotations

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ..solvers._prox import prox_terms
from ._channels import channel_scale, partition
from ._fixed_point import FixedPoint, solve_fixed_point
from ._quadrature import Quadrature, gaussian_rule

ROW_BATCH = 16


class TwoLearners(eqx.Module):
    """Cross overlap of two learners on overlapping samples.

    ``q12`` is :math:`\\langle w_1, w_2\\rangle/d`; ``stability`` the limiting
    :math:`\\cos(w_1, w_2) = q_{12}/q`; ``residual`` :math:`|r - T(r)|` of the scalar
    equation; ``n_iter`` root-finding steps; ``converged`` means the single-learner
    fixed point converged, ``0 <= c <= 1`` and ``residual <= tol`` (or the bracket
    around the root is narrower than ``tol``).
    """

    q12: Float[Array, ""]
    stability: Float[Array, ""]
    residual: Float[Array, ""]
    n_iter: Int[Array, ""]
    converged: Bool[Array, ""]


def cross_moment(model, m, q, V, r, quad: Quadrature):
    """:math:`g = \\sum_y \\mathbb E[Z_0 f(y,\\omega_1) f(y,\\omega_2)]` at
    :math:`q_{12} = rq` (module docstring), so that :math:`\\hat q_{12} = c\\alpha g`."""
    sq = jnp.sqrt(q)
    s = jnp.sqrt(jnp.maximum(1.0 - r**2, 0.0))
    s_ = jnp.maximum(s, 1e-30)
    t = s / (1.0 + r)
    t_ = jnp.maximum(t, 1e-30)
    V0 = jnp.maximum(model.rho - 2.0 * m**2 / (q * (1.0 + r)), 0.0)
    teacher = channel_scale(model, V0) * sq / jnp.maximum(jnp.abs(m), 1e-300)
    L = quad.half_width
    outer = [(0.0, jnp.minimum(1.0 / sq, teacher)), (-V / sq, 1.0 / sq)]
    xi1, w1 = gaussian_rule(-L, L, outer, quad)
    _, f1, _ = prox_terms(1.0, sq * xi1, V)

    def row(x1):
        inner = [
            (-r * x1 / s_, 1.0 / (sq * s_)),
            ((-V / sq - r * x1) / s_, 1.0 / (sq * s_)),
            (-x1 / t_, teacher / t_),
        ]
        xi2, w2 = gaussian_rule(-L, L, inner, quad)
        Z, _ = partition(model, 1.0, (m / sq) * (x1 + t * xi2), V0, quad)
        _, f2, _ = prox_terms(1.0, sq * (r * x1 + s * xi2), V)
        return jnp.sum(w2 * Z * f2)

    return 2.0 * jnp.sum(w1 * f1 * jax.lax.map(row, xi1, batch_size=ROW_BATCH))


def _solve_r(model, fp: FixedPoint, c, quad: Quadrature, tol, max_iter):
    r0 = jnp.clip(fp.m**2 / (model.rho * fp.q), 0.0, 1.0)
    g = lambda r: cross_moment(model, fp.m, fp.q, fp.V, r, quad)
    g1, g0 = jax.vmap(g)(jnp.stack([jnp.ones_like(r0), r0]))
    h = lambda r: r0 + c * (1.0 - r0) * g(r) / g1 - r
    # h(r0) >= 0 >= h(1) = (1 - r0)(c - 1): the root is bracketed by [r0, 1].
    a, fa, wa = r0, c * (1.0 - r0) * g0 / g1, jnp.ones_like(r0)
    b, fb = jnp.ones_like(r0), (1.0 - r0) * (c - 1.0)

    def done(a, fa, b, fb):
        return (jnp.abs(b - a) <= tol) | (jnp.minimum(jnp.abs(fa), jnp.abs(fb)) <= tol)

    def cond(st):
        a, fa, _, b, fb, k = st
        return (k < max_iter) & ~done(a, fa, b, fb) & jnp.isfinite(fa + fb)

    def body(st):
        a, fa, wa, b, fb, k = st
        x = b - fb * (b - a) / (fb - wa * fa)
        x = jnp.where((x - a) * (x - b) < 0, x, 0.5 * (a + b))
        fx = h(x)
        flip = fx * fb < 0
        # Anderson-Bjorck: on a repeated side, down-weight the retained end's value.
        scale = jnp.where(1.0 - fx / fb > 0, 1.0 - fx / fb, 0.5)
        a, fa, wa = (
            jnp.where(flip, new, old) for new, old in ((b, a), (fb, fa), (1.0, wa * scale))
        )
        return a, fa, wa, x, fx, k + 1

    a, fa, _, b, fb, k = jax.lax.while_loop(cond, body, (a, fa, wa, b, fb, jnp.array(0)))
    r = jnp.where(jnp.abs(fb) <= jnp.abs(fa), b, a)
    return r, jnp.minimum(jnp.abs(fa), jnp.abs(fb)), k, done(a, fa, b, fb)


@partial(jax.jit, static_argnames=("quad", "tol", "max_iter"))
def _overlap(model, alpha, lam, c, fp, quad, tol, max_iter):
    if fp is None:
        fp = solve_fixed_point(model, alpha, lam, quad=quad)
    r, res, k, done = _solve_r(model, fp, c, quad, tol, max_iter)
    converged = fp.converged & done & (c >= 0) & (c <= 1)
    nan = jnp.asarray(jnp.nan, r.dtype)
    r = jnp.where(converged, r, nan)
    return TwoLearners(q12=r * fp.q, stability=r, residual=res, n_iter=k, converged=converged)


def two_learner_overlap(
    model,
    alpha,
    lam,
    c,
    fp: FixedPoint | None = None,
    *,
    quad: Quadrature = Quadrature(),
    tol: float | None = None,
    max_iter: int = 60,
) -> TwoLearners:
    """Cross overlap and stability of two learners sharing a fraction ``c`` of samples.

    **Arguments:** ``model`` (:class:`probejax.GaussianTeacherStudent`), ``alpha = n/d``
    (examples per learner), ``lam``, ``c`` in ``[0, 1]`` (shared fraction; RAPTOR's
    ablation: 0.8), ``fp`` the single-learner :class:`FixedPoint` at
    ``(model, alpha, lam)`` (solved with ``quad`` when ``None``), ``quad`` (the same
    settings grade the 2-D rule), ``tol`` on :math:`|r - T(r)|` (default 1e-12 in
    float64, 1e-6 in float32), ``max_iter`` root-finding steps. Given ``fp``, the
    answer depends on ``alpha`` and ``lam`` only through it. Vmap over any array
    argument; changing a value never recompiles. No derivatives are provided.

    **Returns:** :class:`TwoLearners` (``q12`` and ``stability`` NaN when not converged).
    """
    dtype = jnp.zeros(()).dtype
    tol = (1e-12 if dtype == jnp.float64 else 1e-6) if tol is None else float(tol)
    model = jax.tree.map(lambda a: jnp.asarray(a, dtype), model)
    if not isinstance(c, jax.core.Tracer) and not np.all(
        (np.asarray(c) >= 0) & (np.asarray(c) <= 1)
    ):
        raise ValueError(f"c (the shared fraction) must lie in [0, 1], got {c!r}.")
    alpha, lam, c = (jnp.asarray(v, dtype) for v in (alpha, lam, c))
    return _overlap(model, alpha, lam, c, fp, quad, tol, max_iter)
