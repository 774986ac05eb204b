r"""MLP probes, per sequence or per token.

An MLP with ``depth`` hidden layers of width :math:`m` (ReLU) and one output,
:math:`g: \mathbb{R}^d \to \mathbb{R}`; ``depth = 0`` is a linear probe.

- ``mode="sequence"``: :math:`f = g(\mathrm{pool}(x))`, ``pooling`` the mean of the real
  tokens or the last real token.
- ``mode="token"`` (token-level probes for hallucination detection, arXiv 2512.20949,
  details UNCONFIRMED): per-token logits :math:`z_t = g(x_t)`; the sequence logit is
  :math:`f = \max_t z_t`. Trained with :class:`probejax.seq.TokenLoss`: class-weighted
  token BCE on labelled tokens (ignore index -100, logits clipped to :math:`\pm100`) plus
  the span-max loss :math:`\mathrm{BCE}(\max_{t\in S} z_t, y_S)`; with sequence labels
  only, the span is the whole sequence (multiple-instance max pooling).

Parameters: :math:`d + 1` for ``depth = 0``, else
:math:`dm + m + (\text{depth}-1)(m^2 + m) + m + 1`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._base import SeqProbe, check_width
from ._masked import last_index, masked_max, masked_token_mean, zero_padding

MODES = ("sequence", "token")
POOLINGS = ("mean", "last")


class MLPProbe(SeqProbe):
    """MLP probe (see module docstring).

    **Arguments:** ``d``; ``width`` :math:`m` (256); ``depth`` hidden layers (1);
    ``mode``: ``"sequence"`` or ``"token"``; ``pooling`` (sequence mode): ``"mean"`` or
    ``"last"``; ``key``. Init: Equinox's (PyTorch's) Linear init.
    """

    net: eqx.nn.MLP
    mode: str = eqx.field(static=True)
    pooling: str = eqx.field(static=True)

    def __init__(
        self,
        d: int,
        *,
        width: int = 256,
        depth: int = 1,
        mode: str = "sequence",
        pooling: str = "mean",
        key: PRNGKeyArray,
    ):
        check_width(d, "d")
        check_width(width, "width")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"MLPProbe: depth must be an int >= 0, got {depth!r}.")
        if mode not in MODES:
            raise ValueError(f"MLPProbe: mode must be one of {MODES}, got {mode!r}.")
        if pooling not in POOLINGS:
            raise ValueError(f"MLPProbe: pooling must be one of {POOLINGS}, got {pooling!r}.")
        self.net = eqx.nn.MLP(d, "scalar", width, depth, activation=jax.nn.relu, key=key)
        self.mode = mode
        self.pooling = pooling

    @property
    def aggregate(self):
        return "max" if self.mode == "token" else None

    @staticmethod
    def param_count(d: int, width: int = 256, depth: int = 1) -> int:
        """:math:`d + 1` (depth 0), else :math:`dm + m + (\\text{depth}-1)(m^2+m) + m + 1`."""
        if depth == 0:
            return d + 1
        return d * width + width + (depth - 1) * (width * width + width) + width + 1

    def token_scores(self, x, mask):
        """:math:`g(x_t)` on every real token (in sequence mode: the probe applied to
        each token alone, indicative only)."""
        return jnp.where(mask, jax.vmap(self.net)(zero_padding(x, mask)), 0.0)

    def __call__(self, x, mask):
        if self.mode == "token":
            return masked_max(self.token_scores(x, mask), mask)
        if self.pooling == "mean":
            return self.net(masked_token_mean(x, mask))
        return self.net(zero_padding(x, mask)[last_index(mask)])

    def concept_vector(self):
        if len(self.net.layers) == 1:
            return self.net.layers[0].weight[0]
        return super().concept_vector()
