r"""Teacher channels: the partition :math:`Z_0` and its derivative in :math:`\omega_0`.

:math:`Z_0(y, \omega_0, V_0) = \mathbb E_{z}\,P(y \mid \omega_0 + \sqrt{V_0}\,z)`, the
probability of label :math:`y` given the student's information about the teacher field
(mean :math:`\omega_0`, variance :math:`V_0`):

- sign: :math:`\Phi(y\omega_0/\sqrt{V_0})`;
- probit (noise variance :math:`\Delta`): :math:`\Phi(y\omega_0/\sqrt{V_0 + \Delta})`;
- logistic: :math:`\mathbb E_z\,\sigma(y\beta(\omega_0 + \sqrt{V_0} z))`, by Gauss-Hermite
  in :math:`z` (no closed form; the probit approximation
  :math:`\sigma(x)\approx\Phi(x\sqrt{\pi/8})` biases the fixed point, so it is never used);
- label flips: :math:`\varepsilon + (1 - 2\varepsilon) Z_0`.

All are symmetric, :math:`Z_0(-y, -\omega_0) = Z_0(y, \omega_0)`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.scipy.stats import norm

from ._quadrature import Quadrature, hermite_rule


def channel_scale(model, V0):
    """Width of the teacher's transition in :math:`\\omega_0` (for quadrature grading)."""
    if model.channel == "sign":
        return jnp.sqrt(V0)
    if model.channel == "probit":
        return jnp.sqrt(V0 + model.delta)
    return jnp.sqrt(V0 + 1.0 / jnp.maximum(model.beta, 1e-12) ** 2)


def partition(model, y, omega0, V0, quad: Quadrature):
    """:math:`(Z_0, \\partial_{\\omega_0} Z_0)` elementwise in ``omega0`` for label ``y``."""
    if model.channel in ("sign", "probit"):
        var = V0 if model.channel == "sign" else V0 + model.delta
        s = jnp.sqrt(jnp.maximum(var, jnp.finfo(jnp.result_type(omega0)).tiny))
        Z = norm.cdf(y * omega0 / s)
        dZ = y * norm.pdf(omega0 / s) / s
    else:
        Z, dZ = _logistic_partition(y, quad.inner_nodes, model.beta, omega0, V0)
    eps = model.eps
    return eps + (1 - 2 * eps) * Z, (1 - 2 * eps) * dZ


def _logistic_moments(y, nodes, beta, omega0, V0):
    z, w = hermite_rule(nodes)
    h = omega0[..., None] + jnp.sqrt(V0) * z
    s = jax.nn.sigmoid(y * beta * h)
    d1 = s * (1 - s)
    d2 = d1 * (1 - 2 * s)
    d3 = d1 * (1 - 6 * s + 6 * s * s)
    return s @ w, d1 @ w, d2 @ w, d3 @ w, (d1 * h) @ w, (d2 * h) @ w


@partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _logistic_partition(y, nodes, beta, omega0, V0):
    z, w = hermite_rule(nodes)
    s = jax.nn.sigmoid(y * beta * (omega0[..., None] + jnp.sqrt(V0) * z))
    return s @ w, y * beta * ((s * (1 - s)) @ w)


@_logistic_partition.defjvp
def _logistic_partition_jvp(y, nodes, primals, tangents):
    r"""Tangents from one pass over the inner nodes. With :math:`t = y\beta h`,
    :math:`h = \omega_0 + \sqrt{V_0}z` and :math:`S_k = \mathbb E\,\sigma^{(k)}(t)`,
    :math:`H_k = \mathbb E\,\sigma^{(k)}(t)h`: the heat equation
    :math:`\partial_{V_0} = \tfrac12\partial^2_{\omega_0}` gives the :math:`V_0` derivatives
    without differentiating :math:`\sqrt{V_0}` (finite at :math:`V_0 = 0`)."""
    beta, omega0, V0 = primals
    db, dw, dV = tangents
    S0, S1, S2, S3, H1, H2 = _logistic_moments(y, nodes, beta, omega0, V0)
    Z, dZ = S0, y * beta * S1
    tZ = y * beta * S1 * dw + 0.5 * beta**2 * S2 * dV + y * H1 * db
    tdZ = beta**2 * S2 * dw + 0.5 * y * beta**3 * S3 * dV + (y * S1 + beta * H2) * db
    return (Z, dZ), (tZ, tdZ)
