r"""Reductions over the real tokens of one sequence.

A sequence is ``x`` of shape ``(T, d)`` with a boolean ``mask`` of shape ``(T,)``, True
on real tokens. Padded positions take no part: they are replaced by zeros before any
arithmetic (so NaN or Inf in padding cannot leak), softmax weights on them are set to
exactly zero by ``where`` (never by adding a large negative number), and maxima skip
them. A sequence with no real token gets zero weights, a zero mean and a zero max.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


def zero_padding(x: Float[Array, "T d"], mask: Bool[Array, " T"]) -> Float[Array, "T d"]:
    """``x`` with every padded row replaced by zeros."""
    return jnp.where(mask[:, None], x, 0.0)


def masked_softmax(
    logits: Float[Array, "... T"], mask: Bool[Array, "... T"]
) -> Float[Array, "... T"]:
    r"""Softmax over the last axis restricted to real tokens.

    :math:`a_t = m_t e^{s_t - c} / \sum_u m_u e^{s_u - c}` with :math:`c` the largest real
    logit (held constant for gradients; the softmax does not depend on it). ``mask``
    broadcasts against ``logits``. Padded weights are exactly zero; an empty mask gives
    all zeros.
    """
    real = jnp.broadcast_to(mask, logits.shape)
    top = jnp.max(jnp.where(real, logits, -jnp.inf), axis=-1, keepdims=True)
    top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
    e = jnp.where(real, jnp.exp(jnp.where(real, logits - top, 0.0)), 0.0)
    z = jnp.sum(e, axis=-1, keepdims=True)
    return e / jnp.where(z > 0, z, 1.0)


def masked_max(s: Float[Array, "... T"], mask: Bool[Array, " T"]) -> Float[Array, ...]:
    """Largest value over real tokens along the last axis (0 for an empty mask)."""
    real = jnp.broadcast_to(mask, s.shape)
    top = jnp.max(jnp.where(real, s, -jnp.inf), axis=-1)
    return jnp.where(jnp.any(real, axis=-1), top, 0.0)


def masked_argmax(s: Float[Array, "... T"], mask: Bool[Array, " T"]) -> Int[Array, ...]:
    """Index of the largest value over real tokens (first one on ties; 0 if empty)."""
    return jnp.argmax(jnp.where(jnp.broadcast_to(mask, s.shape), s, -jnp.inf), axis=-1)


def masked_mean(s: Float[Array, "... T"], mask: Bool[Array, " T"]) -> Float[Array, ...]:
    """Mean over real tokens along the last axis (0 for an empty mask)."""
    real = jnp.broadcast_to(mask, s.shape)
    n = jnp.sum(real, axis=-1)
    return jnp.sum(jnp.where(real, s, 0.0), axis=-1) / jnp.maximum(n, 1)


def masked_token_mean(x: Float[Array, "T d"], mask: Bool[Array, " T"]) -> Float[Array, " d"]:
    """Mean of the real rows of ``x`` (zeros for an empty mask)."""
    n = jnp.maximum(jnp.sum(mask), 1)
    return jnp.sum(zero_padding(x, mask), axis=0) / n


def last_index(mask: Bool[Array, " T"]) -> Int[Array, ""]:
    """Position of the last real token (0 for an empty mask)."""
    T = mask.shape[0]
    return jnp.where(jnp.any(mask), T - 1 - jnp.argmax(mask[::-1]), 0)
