r"""Teacher channels: the partition :math:`Z_0` and its derivative in :math:`\omega_0`.

:math:`Z_0(y, \omega_0, V_0) = \mathbb E_{z}\,P(y \mid \omega_0 + \sqrt{V_0}\,z)`, the
probability of label :math:`y` given the student's information about the teacher field
(mean :math:`\omega_0`, variance :math:`V_0`):

- sign: :math:`\Phi(y\omega_0/\sqrt{V_0})`;
- probit (noise variance :math:`\Delta`): :math:`\Phi(y\omega_0/\sqrt{V_0 + \Delta})`;
- logistic: :math:`\mathbb E_z\,\sigma(y\beta(\omega_0 + \sqrt{V_0} z))`, by Gauss-Hermite
  in :math:`z` (no closed form; THEORY.md pitfall 6: never the probit approximation);
- label flips: :math:`\varepsilon + (1 - 2\varepsilon) Z_0`.

All are symmetric, :math:`Z_0(-y, -\omega_0) = Z_0(y, \omega_0)`.
"""

from __future__ import annotations

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
        z, w = hermite_rule(quad.inner_nodes)
        t = y * model.beta * (omega0[..., None] + jnp.sqrt(V0) * z)
        sig = jax.nn.sigmoid(t)
        Z = sig @ w
        dZ = y * model.beta * ((sig * (1 - sig)) @ w)
    eps = model.eps
    return eps + (1 - 2 * eps) * Z, (1 - 2 * eps) * dZ
