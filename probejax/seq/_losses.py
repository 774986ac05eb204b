r"""Training data and objectives for sequence probes.

Sequence labels :math:`y_i \in \{0, 1\}`, logits :math:`f_i`:

- :class:`SequenceLoss`: :math:`\frac1n\sum_i \mathrm{BCE}(f_i, y_i)`,
  :math:`\mathrm{BCE}(z, y) = \log(1 + e^{-(2y-1)z})`.
- :class:`TokenLoss` (token-level probes, per-token logits :math:`z_{it}` from
  ``token_scores``): on labelled tokens (real, label not ``ignore_index``) the
  class-weighted mean :math:`\sum w_{it}\,\mathrm{BCE}(\mathrm{clip}(z_{it}), y_{it}) /
  \sum w_{it}`, :math:`w = ` ``pos_weight`` on positive tokens and 1 otherwise, plus
  ``span_weight`` times the mean over spans :math:`S` of
  :math:`\mathrm{BCE}(\max_{t\in S} z_t, y_S)`. Spans are given by ``spans`` (``(n, T)``
  ints, -1 outside any span, ids ``0..n_spans-1`` per sequence) with
  :math:`y_S = \max_{t\in S} y_t` over labelled tokens; without ``spans`` each
  sequence's labelled tokens form one span; without token labels each sequence's real
  tokens form one span labelled :math:`y_i` and the token term is absent.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ._masked import masked_max

IGNORE_INDEX = -100


class SeqData(eqx.Module):
    """Token sequences and labels: ``X`` ``(n, T, d)``, ``mask`` ``(n, T)`` bool, ``y``
    ``(n,)`` in {0, 1}; optional ``token_labels`` ``(n, T)`` ints (0, 1 or -100) and
    ``spans`` ``(n, T)`` ints (-1 or a span id)."""

    X: Float[Array, "n T d"]
    mask: Bool[Array, "n T"]
    y: Float[Array, " n"]
    token_labels: Int[Array, "n T"] | None = None
    spans: Int[Array, "n T"] | None = None

    def take(self, idx) -> SeqData:
        """The examples at ``idx``."""
        return jax.tree.map(lambda a: a[idx], self)


def bce(z, y):
    """:math:`\\log(1 + e^{-(2y-1)z})`, elementwise."""
    return jax.nn.softplus(-(2.0 * y - 1.0) * z)


@dataclasses.dataclass(frozen=True)
class SequenceLoss:
    """Mean BCE of the sequence logits (see module docstring)."""

    def __call__(self, probe, data: SeqData, training: bool) -> Float[Array, ""]:
        f = probe.training_logit if training else probe
        z = jax.vmap(f)(data.X, data.mask)
        return jnp.mean(bce(z, data.y))


@dataclasses.dataclass(frozen=True)
class TokenLoss:
    """Token BCE plus span-max BCE (see module docstring).

    - ``span_weight`` (1.0), ``pos_weight`` (1.0), ``clip`` (100.0),
      ``ignore_index`` (-100), ``n_spans``: spans per sequence when ``spans`` are given (1).
    """

    span_weight: float = 1.0
    pos_weight: float = 1.0
    clip: float = 100.0
    ignore_index: int = IGNORE_INDEX
    n_spans: int = 1

    def __call__(self, probe, data: SeqData, training: bool) -> Float[Array, ""]:
        z = jax.vmap(probe.token_scores)(data.X, data.mask)
        z = jnp.clip(z, -self.clip, self.clip)
        if data.token_labels is None:
            return self.span_weight * jnp.mean(bce(jax.vmap(masked_max)(z, data.mask), data.y))
        labelled = data.mask & (data.token_labels != self.ignore_index)
        yt = jnp.where(labelled, data.token_labels, 0).astype(z.dtype)
        w = jnp.where(labelled, jnp.where(yt > 0, self.pos_weight, 1.0), 0.0)
        token = jnp.sum(w * bce(z, yt)) / jnp.maximum(jnp.sum(w), 1e-12)
        if data.spans is None:
            member = labelled[:, None, :]
        else:
            ids = jnp.arange(self.n_spans)[None, :, None]
            member = (data.spans[:, None, :] == ids) & data.mask[:, None, :]
        present = jnp.any(member, axis=-1)
        zs = jnp.max(jnp.where(member, z[:, None, :], -jnp.inf), axis=-1)
        zs = jnp.where(present, zs, 0.0)
        ys = jnp.max(jnp.where(member & labelled[:, None, :], yt[:, None, :], 0.0), axis=-1)
        span = jnp.sum(jnp.where(present, bce(zs, ys), 0.0)) / jnp.maximum(jnp.sum(present), 1)
        return token + self.span_weight * span
