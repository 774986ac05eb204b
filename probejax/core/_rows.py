r"""Examples as pytrees: the protocol indexes and counts examples through these, so an
estimator's input may be one ``(n, d)`` matrix or several arrays with a leading
example axis, such as :class:`Tokens` (token activations with their mask) for
sequence probes."""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, Bool, Float, Int


class Tokens(eqx.Module):
    """Per-example token activations ``X`` ``(n, T, d)`` and the mask of real tokens
    ``mask`` ``(n, T)`` (padding ``False``)."""

    X: Float[Array, "n T d"]
    mask: Bool[Array, "n T"]


def rows(X, idx: Int[Array, " m"]):
    """The examples ``idx`` of ``X`` (an array or a pytree of arrays with a leading
    example axis)."""
    return jax.tree.map(lambda a: a[idx], X)


def n_rows(X) -> int:
    """The number of examples of ``X`` (the leading axis of its leaves)."""
    return jax.tree.leaves(X)[0].shape[0]
