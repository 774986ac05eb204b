r"""The probe family of the Gemini production-probes paper (arXiv 2601.11516).

The equations follow a transcription that could not be checked against the PDF
(UNCONFIRMED); where it is ambiguous the choice made is stated. Every family but the
mean-pooled linear one first maps each token through a shared MLP,
:math:`y_t = \mathrm{MLP}(x_t) \in \mathbb{R}^{d'}` (:class:`TokenMLP`: ``n_layers``
Linear layers of width :math:`d'`, ReLU after each), with heads :math:`h = 1..H` on top:

- :class:`MeanLinearProbe`: :math:`f = \frac1T\sum_t (w^\top x_t + b)`. Optional
  inference by an exponential moving average of the per-token scores
  :math:`c_t = w^\top x_t + b`, :math:`E_t = \alpha c_t + (1-\alpha)E_{t-1}`,
  :math:`E_{-1} = 0`, :math:`f = \max_t E_t` (:math:`\alpha = 0.5`); training always uses
  the mean.
- :class:`MLPMeanProbe`: :math:`f = \frac1T\sum_t v^\top y_t + b`.
- :class:`MLPAttentionProbe`: :math:`f = \sum_h \frac{\sum_t e^{q_h^\top y_t}\, v_h^\top
  y_t}{\sum_t e^{q_h^\top y_t}} + b` (a streamable per-head softmax average).
- :class:`MultiMaxProbe`: :math:`f = \sum_h \max_t v_h^\top y_t + b`. Read as in the
  transcription (no query: the head's value itself is maximised). Training may use the
  softmax relaxation :math:`\max_t s_t \approx \sum_t \mathrm{softmax}_t(s/\tau)_t s_t`
  (``temperature=tau``); inference is always the hard max.
- :class:`RollingAttentionProbe` (max of rolling means attention, the paper's selected
  architecture): per head, a softmax-weighted mean of values over the causal window of
  the last :math:`w` real tokens,
  :math:`\bar v_{h,t} = \sum_{j\in W_t} e^{q_h^\top y_j} v_h^\top y_j / \sum_{j\in W_t}
  e^{q_h^\top y_j}`, :math:`W_t = \{t-w+1..t\}`; then :math:`f = \max_t \sum_h \bar v_{h,t}
  + b` (the sum over heads is taken inside the max, so the logit is the score of one
  position). :math:`H = 10`, :math:`w = 10`.

Parameter counts, with :math:`P_\text{MLP} = d d' + d' + (n_\text{layers}-1)(d'^2 + d')`:
mean-linear :math:`d + 1`; MLP-mean :math:`P_\text{MLP} + d' + 1`; attention and rolling
:math:`P_\text{MLP} + 2Hd' + 1`; MultiMax :math:`P_\text{MLP} + Hd' + 1`.

Queries start at zero (uniform attention); values and the MLP use PyTorch's Linear init.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._base import SeqProbe, check_width, uniform_init
from ._masked import (
    masked_argmax,
    masked_max,
    masked_mean,
    masked_softmax,
    zero_padding,
)


class TokenMLP(eqx.Module):
    """:math:`y = \\mathrm{ReLU}(W_L \\cdots \\mathrm{ReLU}(W_1 x + b_1) \\cdots + b_L)`,
    ``n_layers`` Linear layers of width ``width``; applied to each token."""

    weights: list[Float[Array, "o i"]]
    biases: list[Float[Array, " o"]]

    def __init__(self, d: int, width: int, n_layers: int, *, key: PRNGKeyArray):
        check_width(d, "d")
        check_width(width, "mlp_width")
        check_width(n_layers, "mlp_layers")
        keys = jax.random.split(key, 2 * n_layers)
        sizes = [d] + [width] * n_layers
        self.weights = [
            uniform_init(keys[2 * i], (sizes[i + 1], sizes[i]), sizes[i]) for i in range(n_layers)
        ]
        self.biases = [
            uniform_init(keys[2 * i + 1], (sizes[i + 1],), sizes[i]) for i in range(n_layers)
        ]

    @staticmethod
    def param_count(d: int, width: int, n_layers: int) -> int:
        """:math:`d d' + d' + (n_\\text{layers}-1)(d'^2 + d')`."""
        return d * width + width + (n_layers - 1) * (width * width + width)

    def __call__(self, x: Float[Array, "T d"]) -> Float[Array, "T w"]:
        for W, c in zip(self.weights, self.biases, strict=True):
            x = jax.nn.relu(x @ W.T + c)
        return x


def _ema(c: Float[Array, " T"], mask: Bool[Array, " T"], alpha: float) -> Float[Array, " T"]:
    def step(e, inp):
        ct, mt = inp
        e = jnp.where(mt, alpha * ct + (1 - alpha) * e, e)
        return e, e

    _, out = jax.lax.scan(step, jnp.zeros((), c.dtype), (c, mask))
    return out


class MeanLinearProbe(SeqProbe):
    """Mean-pooled linear probe, optionally read out by an EMA of token scores at inference.

    **Arguments:** ``d``; ``ema_alpha``: None (mean at inference) or :math:`\\alpha \\in
    (0, 1]` (max of the EMA at inference, 0.5 in the paper); ``key``.
    """

    w: Float[Array, " d"]
    b: Float[Array, ""]
    ema_alpha: float | None = eqx.field(static=True)

    def __init__(self, d: int, *, ema_alpha: float | None = None, key: PRNGKeyArray):
        check_width(d, "d")
        if ema_alpha is not None and not 0.0 < float(ema_alpha) <= 1.0:
            raise ValueError(f"MeanLinearProbe: ema_alpha must lie in (0, 1], got {ema_alpha!r}.")
        self.w = uniform_init(key, (d,), d)
        self.b = jnp.zeros(())
        self.ema_alpha = None if ema_alpha is None else float(ema_alpha)

    @property
    def aggregate(self) -> str:
        return "mean" if self.ema_alpha is None else "ema-max"

    @staticmethod
    def param_count(d: int) -> int:
        """:math:`d + 1`."""
        return d + 1

    def token_scores(self, x, mask):
        return jnp.where(mask, zero_padding(x, mask) @ self.w + self.b, 0.0)

    def training_logit(self, x, mask):
        return masked_mean(self.token_scores(x, mask), mask)

    def __call__(self, x, mask):
        if self.ema_alpha is None:
            return self.training_logit(x, mask)
        return masked_max(_ema(self.token_scores(x, mask), mask, self.ema_alpha), mask)

    def concept_vector(self):
        return self.w


class MLPMeanProbe(SeqProbe):
    """:math:`f = \\frac1T\\sum_t v^\\top \\mathrm{MLP}(x_t) + b`.

    **Arguments:** ``d``; ``mlp_width`` :math:`d'` (100); ``mlp_layers`` (2); ``key``.
    """

    aggregate: ClassVar[str | None] = "mean"

    mlp: TokenMLP
    v: Float[Array, " w"]
    b: Float[Array, ""]

    def __init__(self, d: int, *, mlp_width: int = 100, mlp_layers: int = 2, key: PRNGKeyArray):
        k1, k2 = jax.random.split(key)
        self.mlp = TokenMLP(d, mlp_width, mlp_layers, key=k1)
        self.v = uniform_init(k2, (mlp_width,), mlp_width)
        self.b = jnp.zeros(())

    @staticmethod
    def param_count(d: int, mlp_width: int = 100, mlp_layers: int = 2) -> int:
        """:math:`P_\\text{MLP} + d' + 1`."""
        return TokenMLP.param_count(d, mlp_width, mlp_layers) + mlp_width + 1

    def token_scores(self, x, mask):
        return jnp.where(mask, self.mlp(zero_padding(x, mask)) @ self.v + self.b, 0.0)

    def __call__(self, x, mask):
        return masked_mean(self.token_scores(x, mask), mask)


class _HeadsOverMLP(SeqProbe):
    mlp: TokenMLP
    q: Float[Array, "H w"]
    v: Float[Array, "H w"]
    b: Float[Array, ""]

    def __init__(
        self,
        d: int,
        *,
        n_heads: int = 10,
        mlp_width: int = 100,
        mlp_layers: int = 2,
        key: PRNGKeyArray,
    ):
        check_width(n_heads, "n_heads")
        k1, k2 = jax.random.split(key)
        self.mlp = TokenMLP(d, mlp_width, mlp_layers, key=k1)
        self.q = jnp.zeros((n_heads, mlp_width))
        self.v = uniform_init(k2, (n_heads, mlp_width), mlp_width)
        self.b = jnp.zeros(())

    @staticmethod
    def param_count(d: int, n_heads: int = 10, mlp_width: int = 100, mlp_layers: int = 2) -> int:
        """:math:`P_\\text{MLP} + 2Hd' + 1`."""
        return TokenMLP.param_count(d, mlp_width, mlp_layers) + 2 * n_heads * mlp_width + 1

    def _scores(self, x, mask):
        y = self.mlp(zero_padding(x, mask))
        return y @ self.q.T, y @ self.v.T  # (T, H) each


class MLPAttentionProbe(_HeadsOverMLP):
    """Per-head softmax attention over MLP features (see module docstring).

    **Arguments:** ``d``; ``n_heads`` :math:`H` (10); ``mlp_width`` :math:`d'` (100);
    ``mlp_layers`` (2); ``key``.
    """

    aggregate: ClassVar[str | None] = "sum"

    def attention(self, x, mask):
        s, _ = self._scores(x, mask)
        return masked_softmax(s.T, mask)

    def token_scores(self, x, mask):
        s, val = self._scores(x, mask)
        A = masked_softmax(s.T, mask)
        return jnp.sum(A * (val.T + self.b / A.shape[0]), axis=0)

    def __call__(self, x, mask):
        return jnp.sum(self.token_scores(x, mask))


class MultiMaxProbe(SeqProbe):
    """:math:`f = \\sum_h \\max_t v_h^\\top \\mathrm{MLP}(x_t) + b` (see module docstring).

    **Arguments:** ``d``; ``n_heads`` :math:`H` (10); ``mlp_width`` :math:`d'` (100);
    ``mlp_layers`` (2); ``temperature``: None (hard max in training too) or
    :math:`\\tau > 0` for the softmax relaxation in training; ``key``.
    """

    aggregate: ClassVar[str | None] = "sum"

    mlp: TokenMLP
    v: Float[Array, "H w"]
    b: Float[Array, ""]
    temperature: float | None = eqx.field(static=True)

    def __init__(
        self,
        d: int,
        *,
        n_heads: int = 10,
        mlp_width: int = 100,
        mlp_layers: int = 2,
        temperature: float | None = None,
        key: PRNGKeyArray,
    ):
        check_width(n_heads, "n_heads")
        if temperature is not None and not float(temperature) > 0:
            raise ValueError(
                f"MultiMaxProbe: temperature must be > 0 or None, got {temperature!r}."
            )
        k1, k2 = jax.random.split(key)
        self.mlp = TokenMLP(d, mlp_width, mlp_layers, key=k1)
        self.v = uniform_init(k2, (n_heads, mlp_width), mlp_width)
        self.b = jnp.zeros(())
        self.temperature = None if temperature is None else float(temperature)

    @staticmethod
    def param_count(d: int, n_heads: int = 10, mlp_width: int = 100, mlp_layers: int = 2) -> int:
        """:math:`P_\\text{MLP} + Hd' + 1`."""
        return TokenMLP.param_count(d, mlp_width, mlp_layers) + n_heads * mlp_width + 1

    def _values(self, x, mask) -> Float[Array, "H T"]:
        return (self.mlp(zero_padding(x, mask)) @ self.v.T).T

    def attention(self, x, mask):
        """One-hot weights on each head's arg-max token."""
        s = self._values(x, mask)
        return jax.nn.one_hot(masked_argmax(s, mask), s.shape[-1]) * jnp.any(mask)

    def token_scores(self, x, mask):
        s = self._values(x, mask)
        A = self.attention(x, mask)
        return jnp.sum(A * (s + self.b / s.shape[0]), axis=0)

    def __call__(self, x, mask):
        return jnp.sum(masked_max(self._values(x, mask), mask)) + self.b

    def training_logit(self, x, mask):
        if self.temperature is None:
            return self(x, mask)
        s = self._values(x, mask)
        a = masked_softmax(s / self.temperature, mask)
        return jnp.sum(a * s) + self.b


class RollingAttentionProbe(_HeadsOverMLP):
    """Max over positions of rolling (windowed) softmax attention (see module docstring).

    **Arguments:** ``d``; ``n_heads`` :math:`H` (10); ``window`` :math:`w` (10);
    ``mlp_width`` :math:`d'` (100); ``mlp_layers`` (2); ``key``.
    """

    aggregate: ClassVar[str | None] = "max"

    window: int = eqx.field(static=True)

    def __init__(
        self,
        d: int,
        *,
        n_heads: int = 10,
        window: int = 10,
        mlp_width: int = 100,
        mlp_layers: int = 2,
        key: PRNGKeyArray,
    ):
        check_width(window, "window")
        super().__init__(d, n_heads=n_heads, mlp_width=mlp_width, mlp_layers=mlp_layers, key=key)
        self.window = window

    def _windows(self, x, mask):
        """Window weights and values ``(H, T, w)``: slot ``o`` of position ``t`` is token
        ``t - o`` (built from shifted copies, which differentiate faster than a gather)."""
        s, val = self._scores(x, mask)
        shift = lambda a, o: jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(o, 0)])[..., : a.shape[-1]]
        window = lambda a: jnp.stack([shift(a, o) for o in range(self.window)], axis=-1)
        A = masked_softmax(window(s.T), window(mask))
        return A, window(val.T)

    def token_scores(self, x, mask):
        """Per-position rolling score :math:`\\sum_h \\bar v_{h,t} + b` (zero on padding);
        the logit is their max over real positions."""
        A, val = self._windows(x, mask)
        r = jnp.sum(A * val, axis=(0, 2)) + self.b
        return jnp.where(mask, r, 0.0)

    def __call__(self, x, mask):
        return masked_max(self.token_scores(x, mask), mask)

    def attention(self, x, mask):
        """Each head's window weights at the arg-max position, placed on their tokens."""
        A, _ = self._windows(x, mask)
        t = masked_argmax(self.token_scores(x, mask), mask)
        pos = jnp.clip(t - jnp.arange(self.window), 0)
        out = jnp.zeros((A.shape[0], mask.shape[0]), A.dtype)
        return out.at[:, pos].add(A[:, t, :])
