r"""The interface of a sequence probe: one token sequence in, one logit out.

A sequence probe maps ``x`` of shape ``(T, d)`` and a boolean ``mask`` of shape ``(T,)``
(True on real tokens) to a logit :math:`f(x)`, positive for the positive class. Every
probe is written for one sequence; batches, seeds and hyperparameter grids are
``jax.vmap`` of it. Padded tokens never change the output (see :mod:`._masked`).

Interpretable outputs, where a family defines them:

- ``token_scores(x, mask)``, shape ``(T,)``, zero on padding, related to the logit by
  the class attribute ``aggregate``: ``"sum"`` (:math:`f = \sum_t c_t`, an exact
  decomposition), ``"mean"`` (:math:`f = \mathrm{mean}_t c_t`), ``"max"``
  (:math:`f = \max_t c_t`), ``"ema-max"`` (:math:`f = \max_t \mathrm{EMA}_t(c)`), or
  ``None`` (indicative per-token evidence, no exact identity).
- ``attention(x, mask)``, shape ``(heads, T)``: the weights each head puts on each token.
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


class SeqProbe(eqx.Module):
    """Abstract sequence probe (see module docstring)."""

    aggregate: ClassVar[str | None] = None

    @abc.abstractmethod
    def __call__(self, x: Float[Array, "T d"], mask: Bool[Array, " T"]) -> Float[Array, ""]:
        """The logit of one sequence at inference."""

    def training_logit(self, x: Float[Array, "T d"], mask: Bool[Array, " T"]) -> Float[Array, ""]:
        """The logit the training loss sees (a relaxation of ``__call__`` for some families)."""
        return self(x, mask)

    def token_scores(self, x: Float[Array, "T d"], mask: Bool[Array, " T"]) -> Float[Array, " T"]:
        """Per-token scores, zero on padding (see ``aggregate``)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no per-token decomposition of its logit."
        )

    def attention(self, x: Float[Array, "T d"], mask: Bool[Array, " T"]) -> Float[Array, "H T"]:
        """Per-head weights over tokens, zero on padding."""
        raise NotImplementedError(f"{type(self).__name__} has no attention weights.")

    def penalty(self) -> Float[Array, ""]:
        """Regulariser added to the training loss (zero unless a family defines one)."""
        return jnp.zeros(())

    def concept_vector(self) -> Float[Array, " d"]:
        """A direction in (standardised) activation space, where the family has one."""
        raise NotImplementedError(
            f"{type(self).__name__} is not a linear read-out and has no concept vector."
        )


def num_params(probe: eqx.Module) -> int:
    """Number of trainable scalars: the sizes of every floating-point array leaf (also
    works on the output of ``eqx.filter_eval_shape``, which allocates nothing)."""
    leaves = jax.tree.leaves(probe)
    return int(
        sum(
            math.prod(leaf.shape)
            for leaf in leaves
            if hasattr(leaf, "shape")
            and hasattr(leaf, "dtype")
            and jnp.issubdtype(leaf.dtype, jnp.inexact)
        )
    )


def check_width(d: int, name: str = "d") -> int:
    """A positive int width, or a ``ValueError`` naming the argument."""
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"{name} must be a positive int, got {d!r}.")
    return d


def uniform_init(key, shape, fan_in: int) -> Array:
    """PyTorch's default Linear init, :math:`U(-1/\\sqrt{\\text{fan-in}}, 1/\\sqrt{\\text{fan-in}})`."""
    bound = 1.0 / jnp.sqrt(fan_in)
    return jax.random.uniform(key, shape, minval=-bound, maxval=bound)


def unit_rows(v: Float[Array, "... d"]) -> Float[Array, "... d"]:
    """``v / max(|v|, 1e-12)`` along the last axis (zero rows stay zero, gradients finite)."""
    return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
