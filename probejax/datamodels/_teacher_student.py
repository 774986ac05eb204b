r"""The Gaussian teacher-student model: one data model for simulations and theory.

Inputs :math:`x \sim \mathcal N(0, I_d/d)`; a teacher :math:`w^*` with
:math:`\lVert w^*\rVert^2/d = \rho`; the teacher field :math:`h^* = \langle w^*, x\rangle
\sim \mathcal N(0, \rho)`; labels :math:`y \in \{-1, +1\}` from a channel

- ``"logistic"``: :math:`P(y = 1 \mid h^*) = \sigma(\beta h^*)`;
- ``"sign"``: :math:`y = \mathrm{sign}(h^*)`;
- ``"probit"``: :math:`P(y = 1\mid h^*) = \Phi(h^*/\sqrt{\Delta})`;

then flipped with probability :math:`\varepsilon`. :math:`n = \alpha d` samples.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr
from jaxtyping import Array, Float, PRNGKeyArray

from ..core._checks import float_dtype

CHANNELS = ("logistic", "sign", "probit")


class GaussianTeacherStudent(eqx.Module):
    r"""Data model with a static ``channel`` and array parameters ``rho``, ``beta``
    (logistic inverse temperature), ``delta`` (probit noise variance) and ``eps``
    (label-flip probability). The same object samples data (any dimension ``d``) and
    hands its parameters to the theory (:mod:`probejax.theory`), which is the
    :math:`d \to \infty` limit at fixed :math:`\alpha = n/d`."""

    channel: str = eqx.field(static=True, default="logistic")
    rho: Float[Array, ""] | float = 1.0
    beta: Float[Array, ""] | float = 1.0
    delta: Float[Array, ""] | float = 1.0
    eps: Float[Array, ""] | float = 0.0

    def __check_init__(self):
        if self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}, got {self.channel!r}.")

    def teacher(self, key: PRNGKeyArray, d: int) -> Float[Array, " d"]:
        """A teacher with :math:`\\lVert w^*\\rVert^2 = \\rho d` exactly, uniform direction."""
        g = jax.random.normal(key, (d,), float_dtype())
        return g * jnp.sqrt(self.rho * d) / jnp.linalg.norm(g)

    def p_positive(self, h: Float[Array, " ..."]) -> Float[Array, " ..."]:
        """:math:`P(y = +1 \\mid h^*)` including label flips."""
        if self.channel == "logistic":
            p = jax.nn.sigmoid(self.beta * h)
        elif self.channel == "probit":
            p = ndtr(h / jnp.sqrt(self.delta))
        else:
            p = (h > 0).astype(h.dtype)
        return self.eps + (1.0 - 2.0 * self.eps) * p

    def sample(
        self, key: PRNGKeyArray, n: int, d: int, w_star: Float[Array, " d"] | None = None
    ) -> tuple[Float[Array, "n d"], Float[Array, " n"], Float[Array, " d"]]:
        """Draw ``n`` examples in dimension ``d`` (a fresh teacher unless ``w_star`` is
        given). **Returns** ``(X, y, w_star)`` with ``y`` in +-1."""
        k_t, k_x, k_y = jax.random.split(key, 3)
        w_star = self.teacher(k_t, d) if w_star is None else w_star
        X = jax.random.normal(k_x, (n, d), float_dtype()) / jnp.sqrt(d)
        h = X @ w_star
        u = jax.random.uniform(k_y, (n,), float_dtype())
        y = jnp.where(u < self.p_positive(h), 1.0, -1.0)
        return X, y, w_star
