r"""The fixed point of a convex margin loss with ridge on a two-class Gaussian mixture,
in spectral form (Loureiro et al. 2021, "Learning Gaussian mixtures with generalised
linear models", arXiv 2106.03791; Mignacco et al. 2020, arXiv 2002.11544), written at
finite :math:`d` in the estimator's own units.

Estimator: :math:`\min_{w,b}\ \sum_{i=1}^n \ell(y_i(w^\top x_i + b)) + \tfrac\lambda2\lVert w\rVert^2`
(scikit-learn's :math:`\lambda = 1/C`, no :math:`1/d` rescaling), on
:math:`n` examples of which a share :math:`\rho_k` has label :math:`y_k`
(:math:`y_0 = +1`, :math:`y_1 = -1`), :math:`x = \mu_y + \Sigma_y^{1/2}z`, class
covariances :math:`\Sigma_k = \sum_i \omega_{k,i} u_i u_i^\top` in one eigenbasis (a
shared covariance: :math:`\omega_0 = \omega_1`; for per-class covariances that do not
commute, the diagonals of :math:`U^\top\Sigma_k U` in the pooled eigenbasis, an
approximation), and :math:`p_{k,i} = u_i^\top\mu_k`.

Order parameters: :math:`m_k = \mu_k^\top w`, :math:`q_k = w^\top\Sigma_k w`, :math:`V_k`
(the susceptibilities), the intercept :math:`b`. The estimator's field on a fresh example
of class :math:`k` is :math:`h = m_k + b + \sqrt{q_k}\,\xi`, :math:`\xi\sim\mathcal N(0, 1)`.
With the proximal terms :math:`f, \partial_\omega f` of the loss (:mod:`._losses`) at
:math:`\omega_k = m_k + b + \sqrt{q_k}\,\xi` and :math:`V = V_k`:

Channel (no teacher integral: the label is the cluster)

.. math::

    \hat m_k = n\rho_k\,\mathbb E_\xi f_k,\quad
    \hat q_k = n\rho_k\,\mathbb E_\xi f_k^2,\quad
    \hat V_k = -n\rho_k\,\mathbb E_\xi\,\partial_\omega f_k,\quad
    0 = \sum_k \rho_k\,\mathbb E_\xi f_k \ \text{(intercept)}.

Prior (ridge), with :math:`a_i = \hat m_0 p_{0,i} + \hat m_1 p_{1,i}` and
:math:`\delta_i = \lambda + \sum_j\hat V_j\omega_{j,i}`:

.. math::

    m_k = \sum_i \frac{p_{k,i}a_i}{\delta_i},\quad
    q_k = \sum_i \frac{\omega_{k,i}(a_i^2 + \sum_j\hat q_j\omega_{j,i})}{\delta_i^2},\quad
    V_k = \sum_i \frac{\omega_{k,i}}{\delta_i}.

These follow from the estimator's law
:math:`w = A^{-1}(a + \sum_k\sqrt{\hat q_k}\,\Sigma_k^{1/2}g_k)`,
:math:`A = \lambda I + \sum_k\hat V_k\Sigma_k`, independent :math:`g_k\sim\mathcal N(0, I_d)`,
which also gives every quadratic observable (:mod:`._mixture_observables`). With a shared
covariance :math:`q_0 = q_1`, :math:`V_0 = V_1`, and only :math:`\hat q_0 + \hat q_1` and
:math:`\hat V_0 + \hat V_1` enter: the shared-covariance equations of the references.
With a flat spectrum :math:`\omega_i = 1/d`, one mean direction and :math:`\alpha = n/d`
the prior is the isotropic one of :mod:`._fixed_point` exactly (the hats there are
:math:`1/d` times these).

Solver: coordinates :math:`x = (m_k/\sqrt{q_k}, \log q_k, \log V_k, b)`, the map
:math:`T` = channel then prior, and for :math:`b` one Newton step on the intercept
equation, :math:`b \leftarrow b + \sum_k\rho_k\mathbb E f_k / \sum_k\rho_k\mathbb E(-\partial_\omega f_k)`;
residual :math:`R(x) = T(x) - x`, solved by the theory's one solver (:mod:`._solver`:
damped sweeps, then trust-region Newton with backtracking), with fewer warm-up sweeps
and iterations than the teacher-student model (``MIXTURE_SOLVER``). Every point returns
a status and never raises; derivatives come from the implicit function theorem,
:math:`dx^* = -(\partial_x R)^{-1}\partial_p R\,dp`.
"""

from __future__ import annotations

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ..solvers._losses import Logistic, Loss
from ._quadrature import Quadrature, gaussian_rule
from ._solver import FixedPointSolver, continuation, default_tol

MIXTURE_QUAD = Quadrature(base_panels=8, levels=6, order=6)
# Coordinates (m_k / sqrt(q_k), log q_k, log V_k, b): the q_k and V_k are bounded.
MIXTURE_SOLVER = FixedPointSolver(log_bounded=(2, 3, 4, 5), picard_steps=6, max_iter=100)
LABELS = (1.0, -1.0)


class Spectrum(eqx.Module):
    """What the fixed point needs from a :class:`probejax.GaussianMixture`: ``eigvals``
    :math:`\\omega_{k,i}` ``(2, d)`` (each class's variances in the eigenbasis) and ``gram`` :math:`G_{kj,i} = p_{k,i}p_{j,i}` ``(2, 2, d)``,
    :math:`p_{k,i} = u_i^\\top\\mu_k`, less :math:`\\delta_{kj}\\omega_{k,i}\\nu_k` when the
    model's means are estimates with noise covariance :math:`\\nu_k\\Sigma_k`
    (``mean_noise``): the unbiased estimate of the population's quadratic forms, which is
    all the theory uses (every prediction is quadratic in the means)."""

    eigvals: Float[Array, "2 d"]
    gram: Float[Array, "2 2 d"]

    @classmethod
    def of(cls, model) -> Spectrum:
        p = model.projections
        om = model.class_eigvals
        gram = p[:, None, :] * p[None, :, :]
        noise = jnp.eye(2, dtype=p.dtype)[:, :, None] * (model.mean_noise[:, None] * om)[:, None]
        return cls(om, gram - noise)


class MixtureParams(eqx.Module):
    """One point: ``n`` training examples, ridge ``lam`` (= 1/C), training class shares
    ``rho`` ``(2,)`` (labels +1, -1) and the :class:`Spectrum`."""

    n: Float[Array, ""]
    lam: Float[Array, ""]
    rho: Float[Array, " classes"]
    spec: Spectrum


class MixtureFixedPoint(eqx.Module):
    """Order parameters ``m``, ``q``, ``V`` (each ``(2,)``, per class), ``b``, conjugates
    ``mh``, ``qh``, ``Vh`` (each ``(2,)``), and the status: ``residual`` :math:`\\lVert R\\rVert_\\infty`,
    ``n_iter``, ``converged``, ``status`` (a :class:`probejax.theory.Status`)."""

    m: Float[Array, " classes"]
    q: Float[Array, " classes"]
    V: Float[Array, " classes"]
    b: Float[Array, ""]
    mh: Float[Array, " classes"]
    qh: Float[Array, " classes"]
    Vh: Float[Array, " classes"]
    residual: Float[Array, ""]
    n_iter: Int[Array, ""]
    converged: Bool[Array, ""]
    status: Int[Array, ""]


def class_rule(loss: Loss, y, c, q, V, quad: Quadrature):
    """:math:`\\xi` nodes and weights for class ``y`` whose field is :math:`c + \\sqrt q\\xi`,
    graded at the proximal map's corners (width :math:`1/\\sqrt q`)."""
    sq = jnp.sqrt(q)
    feats = [((y * z - c) / sq, 1.0 / sq) for z in loss.corners(V)]
    L = quad.half_width
    return gaussian_rule(-L, L, feats, quad)


def channel_moments(loss: Loss, m, q, V, b, quad: Quadrature):
    """Per class :math:`(\\mathbb E f_k, \\mathbb E f_k^2, \\mathbb E\\,\\partial_\\omega f_k)`,
    each ``(2,)``."""
    out = []
    for k, y in enumerate(LABELS):
        c = m[k] + b
        xi, w = class_rule(loss, y, c, q[k], V[k], quad)
        _, f, df = loss.prox(y, c + jnp.sqrt(q[k]) * xi, V[k])
        out.append(jnp.stack([w @ f, w @ (f * f), w @ df]))
    return jnp.stack(out, axis=1)


def spectral_prior(spec: Spectrum, lam, mh, qh, Vh):
    """:math:`(m, q, V)` from the conjugates (module docstring), in terms of
    :math:`G` (:class:`Spectrum`): :math:`m_k = \\sum_i\\sum_j \\hat m_j G_{kj,i}/\\delta_i`,
    :math:`a_i^2 = \\sum_{jk}\\hat m_j\\hat m_k G_{jk,i}`; also returns :math:`a_i^2` and
    :math:`\\delta_i`."""
    om = spec.eigvals
    den = lam + Vh @ om
    Ga = jnp.einsum("kjd,j->kd", spec.gram, mh)
    a2 = mh @ Ga
    m = Ga @ (1.0 / den)
    q = om @ ((a2 + qh @ om) / den**2)
    V = om @ (1.0 / den)
    return m, q, V, a2, den


def _unpack(x):
    q = jnp.exp(x[2:4])
    return x[0:2] * jnp.sqrt(q), q, jnp.exp(x[4:6]), x[6]


def _pack(m, q, V, b):
    return jnp.concatenate([m / jnp.sqrt(q), jnp.log(q), jnp.log(V), jnp.reshape(b, (1,))])


def hats(loss, p: MixtureParams, m, q, V, b, quad):
    """:math:`(\\hat m, \\hat q, \\hat V)` and the intercept equation's residual and slope."""
    Ef, Ef2, Edf = channel_moments(loss, m, q, V, b, quad)
    w = p.n * p.rho
    return w * Ef, w * Ef2, -w * Edf, p.rho @ Ef, -(p.rho @ Edf)


def residual(x, p: MixtureParams, loss: Loss, quad: Quadrature):
    """:math:`R(x) = T(x) - x` in the solver's coordinates."""
    m, q, V, b = _unpack(x)
    mh, qh, Vh, g, slope = hats(loss, p, m, q, V, b, quad)
    m2, q2, V2, _, _ = spectral_prior(p.spec, p.lam, mh, qh, Vh)
    x2 = _pack(m2, q2, V2, b + g / slope)
    return x2 - x


def _initial(p: MixtureParams):
    om = p.spec.eigvals
    scale = 0.2 * p.n / (1.0 + jnp.sum(om, axis=1) / p.lam)
    V = om @ (1.0 / (p.lam + (scale @ om) / 2))
    q = jnp.asarray(1e-2, om.dtype) * jnp.sum(om, axis=1) / (1.0 + p.lam)
    m = 0.1 * jnp.sqrt(q) * jnp.asarray([1.0, -1.0], om.dtype)
    return _pack(m, q, V, jnp.zeros((), om.dtype))


def _solve(p: MixtureParams, init, loss, quad, tol, solver) -> MixtureFixedPoint:
    warm = None if init is None else _pack(init.m, init.q, init.V, init.b)
    sol = solver.solve(residual, _initial(p), p, (loss, quad), tol=tol, warm=warm)
    m, q, V, b = _unpack(sol.x)
    mh, qh, Vh, _, _ = hats(loss, p, m, q, V, b, quad)
    keep = sol.keep
    return MixtureFixedPoint(
        m=keep(m),
        q=keep(q),
        V=keep(V),
        b=keep(b),
        mh=keep(mh),
        qh=keep(qh),
        Vh=keep(Vh),
        residual=sol.residual,
        n_iter=sol.n_iter,
        converged=sol.converged,
        status=sol.status,
    )


def _params(spec, n, lam, rho) -> MixtureParams:
    dtype = jnp.zeros(()).dtype
    cast = lambda a: jnp.asarray(a, dtype)
    return MixtureParams(cast(n), cast(lam), cast(rho), jax.tree.map(cast, spec))


def solve_mixture(
    model,
    n,
    lam,
    *,
    loss: Loss = Logistic(),
    rho=(0.5, 0.5),
    quad: Quadrature = MIXTURE_QUAD,
    tol: float | None = None,
    max_iter: int | None = None,
    init: MixtureFixedPoint | None = None,
) -> MixtureFixedPoint:
    """Solve the mixture fixed point at one ``(n, lam)`` (vmap over ``n``, ``lam``,
    ``rho`` or the model's arrays; differentiable in all of them by the implicit
    function theorem).

    **Arguments:** ``model`` a :class:`probejax.GaussianMixture` (or a :class:`Spectrum`),
    ``n > 0`` training examples, ``lam > 0`` (= 1/C), ``loss`` (:mod:`._losses`),
    ``rho`` the training class shares (labels +1, -1; class-balanced draws: 0.5, 0.5),
    ``quad``, ``tol`` on :math:`\\lVert R\\rVert_\\infty` (default 1e-10 in float64),
    ``max_iter`` (default ``MIXTURE_SOLVER.max_iter``, 100), ``init`` a nearby solution
    (continuation: no damped warm-up).

    **Returns:** :class:`MixtureFixedPoint`.
    """
    spec = model if isinstance(model, Spectrum) else Spectrum.of(model)
    p = _params(spec, n, lam, rho)
    solver = MIXTURE_SOLVER.with_max_iter(max_iter)
    return _solve_jit(p, init, loss, quad, default_tol(tol), solver)


@partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _solve_jit(p, init, loss, quad, tol, solver):
    return _solve(p, init, loss, quad, tol, solver)


@partial(jax.jit, static_argnums=(4, 5, 6, 7))
def _grid(spec, ns, lams_desc, rho, loss, quad, tol, solver):
    def solve(lam, init):
        one = lambda n, init: _solve(
            MixtureParams(n, lam, rho, spec), init, loss, quad, tol, solver
        )
        return jax.vmap(one)(ns, init)

    # Each warm start is the lane's last converged solution.
    out = continuation(solve, lams_desc, lambda last, *_: last, hold_failed=True)
    return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), out)


def solve_mixture_grid(
    model,
    ns,
    lams,
    *,
    loss: Loss = Logistic(),
    rho=(0.5, 0.5),
    quad: Quadrature = MIXTURE_QUAD,
    tol: float | None = None,
    max_iter: int | None = None,
) -> MixtureFixedPoint:
    """Fixed points on the grid ``ns x lams``: a ``vmap`` over ``ns`` of a ``scan`` over
    ``lams`` from the strongest ridge down, each point warm-started from the previous
    one (a cold start where the warm start fails); the options of :func:`solve_mixture`.

    **Returns:** :class:`MixtureFixedPoint` with leaves ``(len(ns), len(lams), ...)``.
    """
    spec = model if isinstance(model, Spectrum) else Spectrum.of(model)
    lams_np = np.asarray(lams, float)
    ns_np = np.asarray(ns, float)
    if lams_np.ndim != 1 or ns_np.ndim != 1 or lams_np.size == 0 or ns_np.size == 0:
        raise ValueError(
            f"ns and lams must be non-empty 1-D arrays, got {ns_np.shape}, {lams_np.shape}."
        )
    if not np.all(lams_np > 0) or not np.all(ns_np > 0):
        raise ValueError("ns and lams must be > 0.")
    order = np.argsort(-lams_np, kind="stable")
    p = _params(spec, 1.0, 1.0, rho)
    dtype = p.lam.dtype
    out = _grid(
        p.spec,
        jnp.asarray(ns_np, dtype),
        jnp.asarray(lams_np[order], dtype),
        p.rho,
        loss,
        quad,
        default_tol(tol),
        MIXTURE_SOLVER.with_max_iter(max_iter),
    )
    inverse = np.argsort(order)
    return jax.tree.map(lambda a: a[:, inverse], out)
