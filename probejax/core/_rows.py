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

    def check(self) -> Tokens:
        """These tokens with their shapes checked (errors name what is wrong)."""
        X, mask = self.X, self.mask
        if getattr(X, "ndim", None) != 3:
            raise ValueError(f"Tokens.X must be (n, T, d), got shape {getattr(X, 'shape', None)}.")
        if tuple(mask.shape) != tuple(X.shape[:2]):
            raise ValueError(
                f"Tokens.mask has shape {tuple(mask.shape)} but Tokens.X has (n, T) = "
                f"{tuple(X.shape[:2])}."
            )
        return Tokens(jax.numpy.asarray(X), jax.numpy.asarray(mask, bool))


def rows(X, idx: Int[Array, " m"]):
    """The examples ``idx`` of ``X`` (an array or a pytree of arrays with a leading
    example axis)."""
    return jax.tree.map(lambda a: a[idx], X)


def n_rows(X) -> int:
    """The number of examples of ``X`` (the leading axis of its leaves)."""
    return jax.tree.leaves(X)[0].shape[0]
