r"""Optimal performance: the Bayes-optimal error of the sign teacher, and the ridge
:math:`\lambda^*` that optimises an observable of ridge-logistic regression.

**Bayes-optimal state evolution** (sign teacher, Gaussian prior, :math:`\rho = 1`; Aubin,
Krzakala, Lu, Zdeborova, NeurIPS 2020, Sec. 2). The posterior overlap :math:`q` solves

.. math::

    q = \frac{\hat q}{1 + \hat q},\qquad
    \hat q = \alpha\sum_{y=\pm1}\mathbb E_\xi\Big[Z_0(y,\sqrt q\,\xi, 1-q)
        \big(\partial_\omega \log Z_0(y, \sqrt q\,\xi, 1-q)\big)^2\Big],\qquad
    Z_0(y,\omega,V) = \Phi(y\omega/\sqrt V),

and the Bayes-optimal test error is :math:`\varepsilon = \arccos(\sqrt q)/\pi`. With
:math:`c = \sqrt{q/(1-q)}` both labels give the same term and
:math:`(1-q)\hat q = 2\alpha I(c)`, :math:`I(c) = \mathbb E_\xi[\varphi(c\xi)^2/\Phi(c\xi)]`,
so the root in :math:`u = \operatorname{logit} q` of the increasing function
:math:`r(u) = q - 2\alpha I(c)` (from :math:`-2\alpha/\pi` at :math:`q = 0` to 1 at
:math:`q = 1`) is found by bracketed Newton, with :math:`\varphi^2/\Phi` evaluated in
logs (no underflow in the left tail). Substituting :math:`\xi = t\sqrt{1-q}` gives
Engel and Van den Broeck's form (Statistical Mechanics of Learning, Ch. 3)
:math:`q/\sqrt{1-q} = (\alpha/\pi)\int Dt\, e^{-qt^2/2}/H(-\sqrt q\, t)`; at large
:math:`\alpha`, :math:`\alpha\varepsilon \to 0.4417`.

**Optimal ridge.** With :math:`s = \log\lambda`, the optimum of an observable
:math:`M(\lambda)` of :func:`observables` is a root of :math:`g(s) = \pm\, dM/ds`
(sign chosen so that :math:`g > 0` left of a maximum of the accuracy, or of a minimum
of a loss). :math:`g` comes from ``jax.grad`` through :func:`solve_fixed_point`, i.e.
the implicit function theorem. The root is bracketed by the ends of the search
interval and refined by secant steps, replaced by bisection when a step leaves the
bracket or the bracket has not halved in two steps. When :math:`g` has the same sign
at both ends, the metric is still improving at one end (the sign teacher at large
:math:`\alpha`, whose accuracy can increase all the way to :math:`\lambda\to 0`, the
max-margin limit): that end is returned with status ``LOWER_END`` / ``UPPER_END``.
"""

from __future__ import annotations

import enum
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr
from jax.scipy.stats import norm
from jaxtyping import Array, Bool, Float, Int

from ._fixed_point import Params, solve_fixed_point
from ._limits import bracketed_newton
from ._observables import Observables, observables
from ._quadrature import Quadrature, gaussian_rule

LOGIT_BRACKET = 50.0
MAXIMIZED = ("acc", "acc_teacher", "cos", "train_acc", "stability")


def _bayes_residual(u, alpha, quad: Quadrature):
    """:math:`r(u) = q - 2\\alpha I(c)` with :math:`q = \\sigma(u)`, :math:`c = e^{u/2}`."""
    c = jnp.exp(u / 2)
    L = quad.half_width
    xi, w = gaussian_rule(-L, L, [(0.0, 1.0 / c)], quad)
    t = c * xi
    integrand = jnp.exp(2 * norm.logpdf(t) - log_ndtr(t))
    return jax.nn.sigmoid(u) - 2 * alpha * jnp.sum(w * integrand)


def bayes_optimal_overlap_sign(
    alpha: Float[Array, ""] | float, *, quad: Quadrature = Quadrature()
) -> Float[Array, ""]:
    """Overlap :math:`q` of the Bayes-optimal estimator of the sign teacher (module
    docstring); vmappable, differentiable in ``alpha`` (implicit function theorem).

    **Arguments:** ``alpha = n/d >= 0``, ``quad``.

    **Returns:** :math:`q \\in [0, 1)`.
    """
    alpha = jnp.asarray(alpha, float)
    r = partial(_bayes_residual, quad=quad)
    lo = jnp.asarray(-LOGIT_BRACKET, alpha.dtype)
    fun = lambda u: jax.jvp(
        lambda u_: r(u_, jax.lax.stop_gradient(alpha)), (u,), (jnp.ones_like(u),)
    )
    u = jax.lax.stop_gradient(bracketed_newton(fun, lo, -lo, jnp.zeros_like(alpha)))
    # One Newton step from the (stopped) root carries du/dalpha = -r_alpha / r_u.
    u = u - r(u, alpha) / jax.lax.stop_gradient(fun(u)[1])
    return jnp.where(alpha > 0, jax.nn.sigmoid(u), 0.0)


def bayes_optimal_error_sign(
    alpha: Float[Array, ""] | float, *, quad: Quadrature = Quadrature()
) -> Float[Array, ""]:
    """Bayes-optimal test error :math:`\\arccos(\\sqrt q)/\\pi` of the sign teacher
    (:math:`\\rho = 1`, Gaussian prior) at sample ratio ``alpha``; 1/2 at ``alpha = 0``,
    :math:`\\approx 0.4417/\\alpha` at large ``alpha``."""
    return jnp.arccos(jnp.sqrt(bayes_optimal_overlap_sign(alpha, quad=quad))) / jnp.pi


class LamStatus(enum.IntEnum):
    INTERIOR = 0  # a stationary point strictly inside the bracket, to tolerance
    LOWER_END = 1  # the metric still improves as lam decreases at the lower end
    UPPER_END = 2  # the metric still improves as lam increases at the upper end
    MAX_ITER = 3  # bracket not resolved within max_iter
    FAILED = 4  # a fixed point did not converge (values NaN)


class OptimalLam(eqx.Module):
    """``lam`` (the optimum, or a bracket end), ``value`` of the metric there,
    ``slope`` :math:`dM/d\\log\\lambda` there, ``converged`` (a stationary point found
    inside the bracket), ``at_end`` (the optimum lies at or beyond a bracket end),
    ``status`` (:class:`LamStatus`) and ``n_iter`` (fixed-point solves)."""

    lam: Float[Array, ""]
    value: Float[Array, ""]
    slope: Float[Array, ""]
    converged: Bool[Array, ""]
    at_end: Bool[Array, ""]
    status: Int[Array, ""]
    n_iter: Int[Array, ""]


def metric_at(
    model, alpha, log_lam, *, metric: str = "acc", quad=Quadrature(), tol=None, max_iter=200
):
    """The observable ``metric`` at :math:`\\lambda = e^{s}` and whether its fixed
    point converged; differentiate in ``log_lam`` for :math:`dM/ds`."""
    lam = jnp.exp(log_lam)
    fp = solve_fixed_point(model, alpha, lam, quad=quad, tol=tol, max_iter=max_iter)
    obs = observables(Params(alpha, lam, model), fp, quad)
    return getattr(obs, metric), fp.converged


@partial(jax.jit, static_argnames=("metric", "maximize", "quad", "tol", "max_iter", "fp_max_iter"))
def _search(model, alpha, lo, hi, gtol, xtol, metric, maximize, quad, tol, max_iter, fp_max_iter):
    f = partial(metric_at, model, alpha, metric=metric, quad=quad, tol=tol, max_iter=fp_max_iter)
    sign = 1.0 if maximize else -1.0
    nan = jnp.full_like(lo, jnp.nan)

    def cond(c):
        return c["status"] < 0

    def body(c):
        k, s = c["k"], c["s"]
        (v, ok), g = jax.value_and_grad(f, has_aux=True)(s)
        g = sign * g
        left = (k == 0) | ((k >= 2) & (g > 0))
        right = (k == 1) | ((k >= 2) & (g <= 0))
        a, ga = jnp.where(left, s, c["a"]), jnp.where(left, g, c["ga"])
        b, gb = jnp.where(right, s, c["b"]), jnp.where(right, g, c["gb"])
        secant = s - g * (s - c["s_prev"]) / (g - c["g_prev"])
        stalled = (b - a) > 0.5 * c["width2"]
        inside = jnp.isfinite(secant) & (secant > a) & (secant < b)
        s_next = jnp.where(k == 0, hi, jnp.where(inside & ~stalled, secant, 0.5 * (a + b)))
        status = jnp.where(
            ~ok | ~jnp.isfinite(g),
            LamStatus.FAILED,
            jnp.where(
                k == 1,
                jnp.where(
                    ga <= 0, LamStatus.LOWER_END, jnp.where(gb >= 0, LamStatus.UPPER_END, -1)
                ),
                jnp.where(
                    (k >= 2) & ((jnp.abs(g) <= gtol) | (b - a <= xtol)),
                    LamStatus.INTERIOR,
                    jnp.where(k + 1 >= max_iter, LamStatus.MAX_ITER, -1),
                ),
            ),
        )
        end = jnp.where(status == LamStatus.LOWER_END, lo, hi)
        at_end = (status == LamStatus.LOWER_END) | (status == LamStatus.UPPER_END)
        return dict(
            k=k + 1, s=jnp.where(status < 0, s_next, jnp.where(at_end, end, s)),
            s_prev=s, g_prev=g, a=a, ga=ga, b=b, gb=gb, width2=c["width1"], width1=b - a,
            v=jnp.where(at_end & (status == LamStatus.LOWER_END), c["v"], v),
            g=jnp.where(at_end & (status == LamStatus.LOWER_END), ga, g),
            status=status,
        )  # fmt: skip

    init = dict(
        k=jnp.array(0), s=lo, s_prev=nan, g_prev=nan, a=lo, ga=nan, b=hi, gb=nan,
        width2=jnp.full_like(lo, jnp.inf), width1=jnp.full_like(lo, jnp.inf), v=nan, g=nan,
        status=jnp.array(-1),
    )  # fmt: skip
    c = jax.lax.while_loop(cond, body, init)
    failed = c["status"] == LamStatus.FAILED
    return OptimalLam(
        lam=jnp.where(failed, jnp.nan, jnp.exp(c["s"])),
        value=c["v"],
        slope=jnp.where(failed, jnp.nan, sign * c["g"]),
        converged=jnp.asarray(c["status"] == LamStatus.INTERIOR, bool),
        at_end=(c["status"] == LamStatus.LOWER_END) | (c["status"] == LamStatus.UPPER_END),
        status=c["status"].astype(jnp.int32),
        n_iter=c["k"].astype(jnp.int32),
    )


def optimal_lam(
    model,
    alpha: Float[Array, ""] | float,
    *,
    metric: str = "acc",
    maximize: bool | None = None,
    bracket: tuple[float, float] = (1e-4, 1e2),
    gtol: float = 1e-9,
    xtol: float = 1e-10,
    max_iter: int = 60,
    quad: Quadrature = Quadrature(),
    tol: float | None = None,
    fp_max_iter: int = 1000,
) -> OptimalLam:
    """The ridge :math:`\\lambda^*` that optimises an observable of the ridge-logistic
    fixed point (module docstring), by safeguarded secant on :math:`dM/d\\log\\lambda`.

    **Arguments:** ``model``, ``alpha`` (vmappable, as are the ``bracket`` ends);
    ``metric``, a field of :class:`Observables`; ``maximize`` (default: True for
    accuracies, cosine and stability, False for losses); ``bracket`` ``(lo, hi)``,
    ``0 < lo < hi``; stopping tolerances ``gtol`` on :math:`|dM/d\\log\\lambda|` and
    ``xtol`` on the bracket width in :math:`\\log\\lambda`; ``max_iter`` fixed-point
    solves; ``quad``, ``tol``, ``fp_max_iter`` passed to :func:`solve_fixed_point`.

    **Returns:** :class:`OptimalLam`; when the metric still improves at a bracket end,
    that end with ``at_end`` set and status ``LOWER_END`` or ``UPPER_END``.
    """
    if metric not in Observables.__annotations__:
        raise ValueError(
            f"metric must be a field of Observables {tuple(Observables.__annotations__)}, got {metric!r}."
        )
    if all(isinstance(b, int | float) for b in bracket) and not 0 < bracket[0] < bracket[1]:
        raise ValueError(f"bracket must be (lo, hi) with 0 < lo < hi, got {bracket}.")
    maximize = metric in MAXIMIZED if maximize is None else maximize
    dtype = jnp.zeros(()).dtype
    lo, hi = (jnp.log(jnp.asarray(b, dtype)) for b in bracket)
    model = jax.tree.map(lambda a: jnp.asarray(a, dtype), model)
    return _search(
        model, jnp.asarray(alpha, dtype), lo, hi, jnp.asarray(gtol, dtype), jnp.asarray(xtol, dtype),
        metric, maximize, quad, tol, max_iter, fp_max_iter,
    )  # fmt: skip
