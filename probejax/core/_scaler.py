r"""Per-feature standardisation (scikit-learn's ``StandardScaler``), fitted on one split
and reused on the others, with the map of a linear probe back to raw coordinates.

:math:`\tilde x = (x - \mu)/\sigma` with population standard deviations; features with
:math:`\sigma \le 10\,\varepsilon\,|\mu|` (constant up to rounding, zero columns included)
get :math:`\sigma = 1`. A probe :math:`(w_s, b_s)` on standardised inputs equals the raw
probe :math:`w = w_s/\sigma`, :math:`b = b_s - w^\top\mu`
(:meth:`probejax.core.LinearProbe.unstandardize`).

Scale invariance: the moments are computed on each column divided by its largest
absolute value :math:`m_j` (then multiplied back), so squares neither overflow nor
underflow: inputs scaled by any factor from 1e-30 to 1e30 give the same standardised
features, up to rounding, in float32.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float


class Standardizer(eqx.Module):
    mean: Float[Array, " d"]
    scale: Float[Array, " d"]

    @classmethod
    def fit(cls, X: Float[Array, "n d"]) -> Standardizer:
        m = jnp.max(jnp.abs(X), axis=0)
        m = jnp.where(m > 0, m, 1.0)
        Xn = X / m
        mean_n = jnp.mean(Xn, axis=0)
        std_n = jnp.sqrt(jnp.mean((Xn - mean_n) ** 2, axis=0))
        constant = std_n <= 10 * jnp.finfo(X.dtype).eps * jnp.abs(mean_n)
        constant |= std_n == 0
        return cls(mean_n * m, jnp.where(constant, 1.0, std_n * m))

    @classmethod
    def binary(cls, X: Float[Array, "n d"]) -> Standardizer:
        r"""Mean 0 and one scale for every feature: the power of two at or above
        :math:`\max|X|`. Dividing by it is exact in binary floating point, so an
        estimator that does not standardise can work on :math:`|x| \le 1` (no squares
        overflowing or underflowing) and map its probe back without rounding."""
        m = jnp.max(jnp.abs(X))
        exponent = jnp.frexp(jnp.where(m > 0, m, 1.0))[1]
        scale = jnp.ldexp(jnp.ones((), X.dtype), exponent)
        return cls(jnp.zeros(X.shape[1], X.dtype), jnp.full(X.shape[1], scale, X.dtype))

    @classmethod
    def identity(cls, d: int, dtype) -> Standardizer:
        return cls(jnp.zeros(d, dtype), jnp.ones(d, dtype))

    def transform(self, X: Float[Array, "n d"]) -> Float[Array, "n d"]:
        return (X - self.mean) / self.scale
