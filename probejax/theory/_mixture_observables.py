r"""Predictions of the mixture fixed point (:mod:`._mixture`).

At the fixed point the estimator is, in law,
:math:`w = A^{-1}(a + \sqrt{\hat q}\,\Sigma^{1/2}g)`, :math:`A = \lambda I + \hat V\Sigma`
(diagonal in :math:`\Sigma`'s eigenbasis, :math:`\delta_i = \lambda + \hat V\omega_i`),
and a fresh example of class :math:`k` has field :math:`m_k + b + \sqrt q\,\xi`:

- test accuracy per class :math:`\Phi(y_k(m_k + b)/\sqrt q)`, overall
  :math:`\sum_k \pi_k\Phi(\cdot)` with the model's priors :math:`\pi`;
- training loss :math:`\sum_k\rho_k\mathbb E\,\ell(u_k)` per example at the proximal margin,
  training accuracy :math:`\sum_k\rho_k\Phi((y_k(m_k + b) - V\ell'(0))/\sqrt q)`
  (:math:`u > 0 \iff y\omega > V\ell'(0)`);
- :math:`\lVert w\rVert^2 = \sum_i (a_i^2 + \hat q\omega_i)/\delta_i^2`; cosine to the Bayes
  direction :math:`\Sigma^{+}(\mu_+ - \mu_-)`;
- two estimators on independent samples share :math:`a` and have independent
  :math:`g`: :math:`\cos(w_1, w_2) = \sum_i a_i^2/\delta_i^2 \big/ \lVert w\rVert^2`;
- in the raw coordinates :math:`D^{-1}w` of a probe on features standardised by
  :math:`D = \operatorname{diag}(\sigma)` (RAPTOR's concept vector), the same with
  :math:`\lVert D^{-1}UA^{-1}a\rVert^2` and :math:`\hat q\sum_i e_i\omega_i/\delta_i^2`,
  :math:`e_i = (U^\top D^{-2}U)_{ii}`;
- two estimators whose :math:`n` examples share :math:`cn` (RAPTOR's 80% ablation:
  :math:`c = 0.8`): the noises are correlated, :math:`\mathbb E\,g_1g_2^\top =
  (\hat q_{12}/\hat q) I` with :math:`\hat q_{12} = c\,n\,G(r)`,
  :math:`G(r) = \sum_k\rho_k\mathbb E[f_k(\omega_1)f_k(\omega_2)]` over fields with
  correlation :math:`r = q_{12}/q`, and :math:`r` solves
  :math:`r q = \sum_i\omega_i a_i^2/\delta_i^2 + \hat q_{12}(r)\sum_i\omega_i^2/\delta_i^2`
  (a root bracketed by :math:`[r_0, 1]`, :math:`r_0` the independent-sample value;
  :math:`r = 1` at :math:`c = 1`), found by bisection.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr
from jaxtyping import Array, Float

from ._losses import Logistic, Loss
from ._mixture import LABELS, MIXTURE_QUAD, MixtureFixedPoint, Spectrum, class_rule, spectral_prior
from ._quadrature import Quadrature, gaussian_rule

BISECTIONS = 40


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


def _parts(spec: Spectrum, lam, fp: MixtureFixedPoint):
    _, _, _, a, den = spectral_prior(spec, lam, fp.mh, fp.qh, fp.Vh)
    return a, den


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
    a, den = _parts(spec, lam, fp)
    om = spec.eigvals
    y = jnp.asarray(LABELS, dtype)
    sq = jnp.sqrt(fp.q)
    c = fp.m + fp.b
    acc_class = ndtr(y * c / sq)
    train_acc_class = ndtr((y * c - fp.V * loss.dloss0) / sq)
    tl = []
    for k, yk in enumerate(LABELS):
        xi, w = class_rule(loss, yk, c[k], fp.q, fp.V, quad)
        u, _, _ = loss.prox(yk, c[k] + sq * xi, fp.V)
        tl.append(w @ loss.value(u))
    det = jnp.sum(a * a / den**2)
    noise = fp.qh * jnp.sum(om / den**2)
    norm2 = det + noise
    beta = (spec.proj[0] - spec.proj[1]) * jnp.where(om > 0, 1.0 / jnp.where(om > 0, om, 1.0), 0)
    cos_b = jnp.sum(beta * a / den) / jnp.sqrt(norm2 * jnp.sum(beta * beta))
    det_raw = jnp.sum((model.eigvecs @ (a / den) / model.scale) ** 2)
    noise_raw = fp.qh * jnp.sum(model.raw_weights * om / den**2)
    return MixtureObservables(
        acc=jnp.asarray(model.priors, dtype) @ acc_class,
        acc_class=acc_class,
        train_loss=rho @ jnp.stack(tl),
        train_acc=rho @ train_acc_class,
        norm2=norm2,
        cos_bayes=cos_b,
        stability=det / norm2,
        stability_raw=det_raw / (det_raw + noise_raw),
        b=fp.b,
    )


def cross_moment(loss: Loss, rho, m, q, V, b, r, quad: Quadrature):
    """:math:`G(r) = \\sum_k\\rho_k\\mathbb E[f_k(\\omega_1)f_k(\\omega_2)]`, fields
    :math:`\\omega_1 = c_k + \\sqrt q\\xi_1`, :math:`\\omega_2 = c_k + \\sqrt q(r\\xi_1 + s\\xi_2)`,
    :math:`s = \\sqrt{1 - r^2}`; :math:`\\xi_2` on a rule graded at the corners of
    :math:`\\omega_2` for each :math:`\\xi_1` node."""
    sq = jnp.sqrt(q)
    s = jnp.sqrt(jnp.maximum(1.0 - r * r, 0.0))
    s_ = jnp.maximum(s, 1e-12)
    L = quad.half_width
    total = 0.0
    for k, y in enumerate(LABELS):
        ck = m[k] + b
        xi1, w1 = class_rule(loss, y, ck, q, V, quad)
        _, f1, _ = loss.prox(y, ck + sq * xi1, V)

        def row(x1, y=y, ck=ck):
            feats = [(((y * z - ck) / sq - r * x1) / s_, 1.0 / (sq * s_)) for z in loss.corners(V)]
            xi2, w2 = gaussian_rule(-L, L, feats, quad)
            _, f2, _ = loss.prox(y, ck + sq * (r * x1 + s * xi2), V)
            return w2 @ f2

        total = total + rho[k] * (w1 @ (f1 * jax.lax.map(row, xi1)))
    return total


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
    """Two estimators on ``n`` examples each sharing a fraction ``c`` (module docstring).

    **Returns:** ``(r, stability, stability_raw)``: the field correlation
    :math:`q_{12}/q`, and :math:`\\cos(w_1, w_2)` in the model's and in raw coordinates.
    """
    dtype = fp.q.dtype
    spec = Spectrum.of(model)
    rho = jnp.asarray(rho, dtype)
    n, lam, c = (jnp.asarray(v, dtype) for v in (n, lam, c))
    a, den = _parts(spec, lam, fp)
    om = spec.eigvals
    S_det = jnp.sum(om * a * a / den**2)
    S_noise = jnp.sum(om * om / den**2)
    G = lambda r: cross_moment(loss, rho, fp.m, fp.q, fp.V, fp.b, r, quad)
    h = lambda r: (S_det + c * n * G(r) * S_noise) / fp.q - r
    r0 = jnp.clip(S_det / fp.q, 0.0, 1.0)

    def bisect(_, ab):
        lo, hi = ab
        mid = 0.5 * (lo + hi)
        pos = h(mid) > 0
        return jnp.where(pos, mid, lo), jnp.where(pos, hi, mid)

    lo, hi = jax.lax.fori_loop(0, BISECTIONS, bisect, (r0, jnp.ones_like(r0)))
    r = jnp.where(c >= 1, 1.0, 0.5 * (lo + hi))
    qh12 = c * n * G(r)
    det = jnp.sum(a * a / den**2)
    nz = jnp.sum(om / den**2)
    det_raw = jnp.sum((model.eigvecs @ (a / den) / model.scale) ** 2)
    nz_raw = jnp.sum(model.raw_weights * om / den**2)
    stab = (det + qh12 * nz) / (det + fp.qh * nz)
    stab_raw = (det_raw + qh12 * nz_raw) / (det_raw + fp.qh * nz_raw)
    return r, stab, stab_raw
