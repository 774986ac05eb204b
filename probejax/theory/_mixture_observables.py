r"""Predictions of the mixture fixed point (:mod:`._mixture`).

At the fixed point the estimator is, in law,
:math:`w = A^{-1}(a + \sum_k\sqrt{\hat q_k}\,\Sigma_k^{1/2}g_k)`,
:math:`A = \lambda I + \sum_k\hat V_k\Sigma_k` (diagonal in the eigenbasis,
:math:`\delta_i = \lambda + \sum_k\hat V_k\omega_{k,i}`), and a fresh example of class
:math:`k` has field :math:`m_k + b + \sqrt{q_k}\,\xi`:

- test accuracy per class :math:`\Phi(y_k(m_k + b)/\sqrt{q_k})`, overall
  :math:`\sum_k \pi_k\Phi(\cdot)` with the model's priors :math:`\pi`;
- training loss :math:`\sum_k\rho_k\mathbb E\,\ell(u_k)` per example at the proximal margin,
  training accuracy :math:`\sum_k\rho_k\Phi((y_k(m_k + b) - V_k\ell'(0))/\sqrt{q_k})`
  (:math:`u > 0 \iff y\omega > V\ell'(0)`);
- :math:`\lVert w\rVert^2 = \sum_i (a_i^2 + \sum_k\hat q_k\omega_{k,i})/\delta_i^2`; cosine to
  the Bayes direction :math:`\Sigma^{+}(\mu_+ - \mu_-)` of the pooled covariance;
- two estimators on independent samples share :math:`a` and have independent
  :math:`g_k`: :math:`\cos(w_1, w_2) = \sum_i a_i^2/\delta_i^2 \big/ \lVert w\rVert^2`;
- in the raw coordinates :math:`D^{-1}w` of a probe on features standardised by
  :math:`D = \operatorname{diag}(\sigma)` (RAPTOR's concept vector), the same with
  :math:`\lVert D^{-1}UA^{-1}a\rVert^2` and :math:`\sum_k\hat q_k\sum_i e_i\omega_{k,i}/\delta_i^2`,
  :math:`e_i = (U^\top D^{-2}U)_{ii}`;
- two estimators whose :math:`n` examples share a fraction :math:`c_k` of class :math:`k`
  (RAPTOR's 80% ablation: :math:`c = 0.8`): the noises are correlated,
  :math:`\mathbb E\,g_{1k}g_{2k}^\top = (\hat q_{12,k}/\hat q_k) I` with
  :math:`\hat q_{12,k} = c_k n\rho_k\mathbb E[f_k(\omega_1)f_k(\omega_2)]` over class-:math:`k`
  fields with correlation :math:`r_k = q_{12,k}/q_k`, and
  :math:`r_k q_k = \sum_i\omega_{k,i}(a_i^2 + \sum_j\hat q_{12,j}(r_j)\omega_{j,i})/\delta_i^2`.
  The right side is increasing in :math:`r`, at least :math:`r_0` (the independent-sample
  value) at :math:`r_0` and at most 1 at 1, so sweeps from :math:`r_0` rise to the root
  (:math:`r = 1` at :math:`c = 1`). Two draws of :math:`n\rho_k` examples of class
  :math:`k` from a finite pool of :math:`N_k` share on average a fraction
  :math:`c_k = n\rho_k/N_k` of them: "independent" draws from one pool are two such
  learners.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr
from jaxtyping import Array, Float

from ..solvers._losses import Logistic, Loss
from ._mixture import LABELS, MIXTURE_QUAD, MixtureFixedPoint, Spectrum, class_rule, spectral_prior
from ._quadrature import Quadrature, gaussian_rule

SWEEPS = 60


class MixtureObservables(eqx.Module):
    acc: Float[Array, ""]
    acc_class: Float[Array, " classes"]
    train_loss: Float[Array, ""]
    train_acc: Float[Array, ""]
    norm2: Float[Array, ""]
    cos_bayes: Float[Array, ""]
    stability: Float[Array, ""]
    stability_raw: Float[Array, ""]
    b: Float[Array, ""]


def _forms(model, spec: Spectrum, lam, fp: MixtureFixedPoint):
    """The quadratic forms of the law of :math:`w`: ``det`` :math:`\\sum_i a_i^2/\\delta_i^2`,
    ``nz`` :math:`\\sum_i\\omega_{k,i}/\\delta_i^2` (per class), their raw-coordinate
    versions (weights :math:`e_i`), ``s_det`` :math:`\\sum_i\\omega_{k,i}a_i^2/\\delta_i^2`,
    ``s_nz`` :math:`\\sum_i\\omega_{k,i}\\omega_{j,i}/\\delta_i^2` ``(2, 2)`` and the cosine
    to the Bayes direction :math:`\\Sigma^{+}(\\mu_+ - \\mu_-)` of the pooled covariance
    (all with the debiased :math:`G` of :class:`Spectrum`; the raw ``det`` from the
    estimated means less their noise, which is diagonal in the eigenbasis)."""
    _, _, _, a2, den = spectral_prior(spec, lam, fp.mh, fp.qh, fp.Vh)
    om = spec.eigvals
    pooled = model.eigvals
    inv_om = jnp.where(pooled > 0, 1.0 / jnp.where(pooled > 0, pooled, 1.0), 0.0)
    G = spec.gram
    det = jnp.sum(a2 / den**2)
    nz = om @ (1.0 / den**2)
    a = fp.mh @ model.projections
    e = model.raw_weights
    noise_a2 = (fp.mh**2 * model.mean_noise) @ om
    det_raw = jnp.sum((model.eigvecs @ (a / den) / model.scale) ** 2) - jnp.sum(
        e * noise_a2 / den**2
    )
    nz_raw = om @ (e / den**2)
    dG = jnp.einsum("jd,j->d", G[0] - G[1], fp.mh)
    bayes2 = jnp.maximum(jnp.sum((G[0, 0] - 2 * G[0, 1] + G[1, 1]) * inv_om**2), 0.0)
    cos_b = jnp.sum(dG * inv_om / den) / jnp.sqrt((det + fp.qh @ nz) * bayes2)
    return dict(
        det=det,
        nz=nz,
        det_raw=det_raw,
        nz_raw=nz_raw,
        s_det=om @ (a2 / den**2),
        s_nz=(om / den**2) @ om.T,
        cos_bayes=cos_b,
    )


def mixture_observables(
    model,
    fp: MixtureFixedPoint,
    lam,
    *,
    loss: Loss = Logistic(),
    rho=(0.5, 0.5),
    quad: Quadrature = MIXTURE_QUAD,
) -> MixtureObservables:
    """Every prediction of :class:`MixtureObservables` at the fixed point ``fp`` solved at
    ``lam`` for ``model`` (a :class:`probejax.GaussianMixture`; vmap over ``fp`` and
    ``lam`` together)."""
    dtype = fp.q.dtype
    spec = Spectrum.of(model)
    rho = jnp.asarray(rho, dtype)
    lam = jnp.asarray(lam, dtype)
    F = _forms(model, spec, lam, fp)
    y = jnp.asarray(LABELS, dtype)
    sq = jnp.sqrt(fp.q)
    c = fp.m + fp.b
    acc_class = ndtr(y * c / sq)
    train_acc_class = ndtr((y * c - fp.V * loss.dloss0) / sq)
    tl = []
    for k, yk in enumerate(LABELS):
        xi, w = class_rule(loss, yk, c[k], fp.q[k], fp.V[k], quad)
        u, _, _ = loss.prox(yk, c[k] + sq[k] * xi, fp.V[k])
        tl.append(w @ loss.value(u))
    norm2 = F["det"] + fp.qh @ F["nz"]
    return MixtureObservables(
        acc=jnp.asarray(model.priors, dtype) @ acc_class,
        acc_class=acc_class,
        train_loss=rho @ jnp.stack(tl),
        train_acc=rho @ train_acc_class,
        norm2=norm2,
        cos_bayes=F["cos_bayes"],
        stability=F["det"] / norm2,
        stability_raw=F["det_raw"] / (F["det_raw"] + fp.qh @ F["nz_raw"]),
        b=fp.b,
    )


def cross_moment(loss: Loss, rho, m, q, V, b, r, quad: Quadrature):
    """The terms :math:`\\rho_k\\mathbb E[f_k(\\omega_1)f_k(\\omega_2)]` ``(2,)`` of :math:`G(r)`, fields
    :math:`\\omega_1 = c_k + \\sqrt q\\xi_1`, :math:`\\omega_2 = c_k + \\sqrt q(r\\xi_1 + s\\xi_2)`,
    :math:`s = \\sqrt{1 - r^2}`; :math:`\\xi_2` on a rule graded at the corners of
    :math:`\\omega_2` for each :math:`\\xi_1` node."""
    L = quad.half_width
    total = []
    for k, y in enumerate(LABELS):
        sq, Vk, rk = jnp.sqrt(q[k]), V[k], r[k]
        s = jnp.sqrt(jnp.maximum(1.0 - rk * rk, 0.0))
        s_ = jnp.maximum(s, 1e-12)
        ck = m[k] + b
        xi1, w1 = class_rule(loss, y, ck, q[k], Vk, quad)
        _, f1, _ = loss.prox(y, ck + sq * xi1, Vk)

        def row(x1, y=y, ck=ck, sq=sq, Vk=Vk, rk=rk, s=s, s_=s_):
            feats = [
                (((y * z - ck) / sq - rk * x1) / s_, 1.0 / (sq * s_)) for z in loss.corners(Vk)
            ]
            xi2, w2 = gaussian_rule(-L, L, feats, quad)
            _, f2, _ = loss.prox(y, ck + sq * (rk * x1 + s * xi2), Vk)
            return w2 @ f2

        total.append(rho[k] * (w1 @ (f1 * jax.lax.map(row, xi1))))
    return jnp.stack(total)


def mixture_overlap(
    model,
    fp: MixtureFixedPoint,
    n,
    lam,
    c,
    *,
    loss: Loss = Logistic(),
    rho=(0.5, 0.5),
    quad: Quadrature = MIXTURE_QUAD,
) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
    """Two estimators on ``n`` examples each sharing a fraction ``c`` (module docstring;
    ``c`` a scalar or one fraction per class, labels +1, -1: :math:`\\hat q_{12} =
    n\\sum_k c_k\\rho_k\\mathbb E[f_kf_k]`).

    **Returns:** ``(r, stability, stability_raw)``: the field correlations
    :math:`q_{12,k}/q_k` ``(2,)`` (``SWEEPS`` sweeps), and :math:`\\cos(w_1, w_2)` in the model's and in raw coordinates.
    """
    dtype = fp.q.dtype
    spec = Spectrum.of(model)
    rho = jnp.asarray(rho, dtype)
    n, lam = (jnp.asarray(v, dtype) for v in (n, lam))
    c = jnp.broadcast_to(jnp.asarray(c, dtype), (2,))
    F = _forms(model, spec, lam, fp)
    G = lambda r: cross_moment(loss, rho, fp.m, fp.q, fp.V, fp.b, r, quad)
    T = lambda r: jnp.clip((F["s_det"] + F["s_nz"] @ (n * c * G(r))) / fp.q, 0.0, 1.0)
    r0 = jnp.clip(F["s_det"] / fp.q, 0.0, 1.0)
    # T is increasing with T(r0) >= r0 and T(1) <= 1: the sweeps rise monotonically to
    # the root; the last two iterates give the residual.
    r = jax.lax.fori_loop(0, SWEEPS, lambda _, r: T(r), r0)
    r = jnp.where(jnp.all(c >= 1), jnp.ones_like(r), r)
    qh12 = n * c * G(r)
    det, nz, det_raw, nz_raw = F["det"], F["nz"], F["det_raw"], F["nz_raw"]
    stab = (det + qh12 @ nz) / (det + fp.qh @ nz)
    stab_raw = (det_raw + qh12 @ nz_raw) / (det_raw + fp.qh @ nz_raw)
    return r, stab, stab_raw
