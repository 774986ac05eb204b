r"""Per-feature standardisation (scikit-learn's ``StandardScaler``), fitted on one split
and reused on the others, with the map of a linear probe back to raw coordinates.

:math:`\tilde x = (x - \mu)/\sigma` with population standard deviations; features with
:math:`\sigma \le 10\,\varepsilon\,\max(1, |\mu|)` (constant up to rounding) get
:math:`\sigma = 1`. A probe :math:`(w_s, b_s)` on standardised inputs equals the raw probe
:math:`w = w_s/\sigma`, :math:`b = b_s - w^\top\mu`.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._probe import LinearProbe


class Standardizer(eqx.Module):
    mean: Float[Array, " d"]
    scale: Float[Array, " d"]

    @classmethod
    def fit(cls, X: Float[Array, "n d"]) -> Standardizer:
        mean = jnp.mean(X, axis=0)
        std = jnp.sqrt(jnp.mean((X - mean) ** 2, axis=0))
        tiny = 10 * jnp.finfo(X.dtype).eps * jnp.maximum(1.0, jnp.abs(mean))
        return cls(mean, jnp.where(std > tiny, std, 1.0))

    @classmethod
    def identity(cls, d: int, dtype) -> Standardizer:
        return cls(jnp.zeros(d, dtype), jnp.ones(d, dtype))

    def transform(self, X: Float[Array, "n d"]) -> Float[Array, "n d"]:
        return (X - self.mean) / self.scale

    def to_raw(self, w_std: Float[Array, " d"], b_std: Float[Array, ""]) -> LinearProbe:
        """The raw-coordinate probe equal to ``(w_std, b_std)`` on standardised inputs."""
        w = w_std / self.scale
        return LinearProbe(w, b_std - jnp.dot(w, self.mean))
