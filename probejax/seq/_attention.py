r"""Attention-pooling probes: standard multi-head cross-attention, and one query.

**Multi-head cross-attention** (the baseline Efficient Probing is compared with; CAE /
AIM-style attentive pooling). :math:`M` learned queries :math:`q_m \in \mathbb{R}^d`,
:math:`H` heads of width :math:`e = d/H`, projections with biases:

.. math::

    Q = q W_Q^\top + b_Q,\quad K = X W_K^\top + b_K,\quad V = X W_V^\top + b_V,\qquad
    a_{hmt} = \mathrm{softmax}_t\big(Q_{m,h}^\top K_{t,h}/\sqrt e\big),

.. math::

    o_m = W_O\,[\textstyle\sum_t a_{1mt} V_{t,1};\dots;\sum_t a_{Hmt} V_{t,H}] + b_O,\qquad
    f = w^\top \tfrac1M \textstyle\sum_m o_m + b.

Parameters: :math:`Md + 4d^2 + 4d + d + 1`. (CAE's block drops the Q/K/V biases and
adds three LayerNorms, :math:`\pm O(d)`; the :math:`4d^2` that matters is the same.) The
key and value projections of every token make it :math:`O(T d^2)` per sequence.

**Single-query attention pooling**: :math:`a_t = \mathrm{softmax}_t(q^\top x_t)`,
:math:`f = w^\top \sum_t a_t x_t + b`; parameters :math:`2d + 1`.

Both are linear in the values, so per-token scores decompose the logit exactly,
:math:`f = \sum_t c_t` (the constant terms spread over tokens by the attention weights,
which sum to one).
"""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import SeqProbe, check_width, uniform_init
from ._masked import masked_softmax, zero_padding


class MultiHeadAttentionProbe(SeqProbe):
    """Multi-head cross-attention pooling with learned queries (see module docstring).

    **Arguments:**

    - ``d``: token width (divisible by ``n_heads``).
    - ``n_heads``: :math:`H` (8, as CAE).
    - ``n_queries``: :math:`M` (1).
    - ``key``: PRNG key; queries :math:`\\sim N(0, 0.02^2)`, projections PyTorch's
      Linear init, biases zero.
    """

    aggregate: ClassVar[str | None] = "sum"

    queries: Float[Array, "M d"]
    wq: Float[Array, "d d"]
    bq: Float[Array, " d"]
    wk: Float[Array, "d d"]
    bk: Float[Array, " d"]
    wv: Float[Array, "d d"]
    bv: Float[Array, " d"]
    wo: Float[Array, "d d"]
    bo: Float[Array, " d"]
    w: Float[Array, " d"]
    b: Float[Array, ""]
    n_heads: int = eqx.field(static=True)

    def __init__(self, d: int, *, n_heads: int = 8, n_queries: int = 1, key: PRNGKeyArray):
        check_width(d, "d")
        check_width(n_heads, "n_heads")
        check_width(n_queries, "n_queries")
        if d % n_heads:
            raise ValueError(
                f"MultiHeadAttentionProbe: d={d} must be divisible by n_heads={n_heads}."
            )
        ks = jax.random.split(key, 6)
        self.queries = 0.02 * jax.random.normal(ks[0], (n_queries, d))
        self.wq, self.wk, self.wv, self.wo = (uniform_init(k, (d, d), d) for k in ks[1:5])
        self.bq, self.bk, self.bv, self.bo = (jnp.zeros(d) for _ in range(4))
        self.w = uniform_init(ks[5], (d,), d)
        self.b = jnp.zeros(())
        self.n_heads = n_heads

    @staticmethod
    def param_count(d: int, n_heads: int = 8, n_queries: int = 1) -> int:
        """:math:`Md + 4d^2 + 4d + d + 1` (independent of ``n_heads``)."""
        return n_queries * d + 4 * d * d + 4 * d + d + 1

    def _heads(self, a):
        return a.reshape(*a.shape[:-1], self.n_heads, -1)

    def _attend(self, x, mask):
        x = zero_padding(x, mask)
        e = x.shape[-1] // self.n_heads
        q = self._heads(self.queries @ self.wq.T + self.bq)  # (M, H, e)
        k = self._heads(x @ self.wk.T + self.bk)  # (T, H, e)
        v = self._heads(x @ self.wv.T + self.bv)
        A = masked_softmax(jnp.einsum("mhe,the->mht", q, k) / math.sqrt(e), mask)
        return A, v

    def attention(self, x, mask):
        """Weights of every (query, head), flattened to ``(M * H, T)``, query-major."""
        A, _ = self._attend(x, mask)
        return A.reshape(-1, A.shape[-1])

    def __call__(self, x, mask):
        A, v = self._attend(x, mask)
        o = jnp.einsum("mht,the->mhe", A, v).reshape(A.shape[0], -1) @ self.wo.T + self.bo
        return jnp.mean(o, axis=0) @ self.w + self.b

    def token_scores(self, x, mask):
        A, v = self._attend(x, mask)
        M, H, _ = A.shape
        r = self._heads(self.wo.T @ self.w)  # (H, e): the read-out seen by each head
        const = (self.w @ self.bo + self.b) / H
        per = jnp.einsum("the,he->ht", v, r) + const
        return jnp.sum(A * per[None], axis=(0, 1)) / M


class AttentionPoolProbe(SeqProbe):
    """Single-query attention pooling, :math:`f = w^\\top\\sum_t \\mathrm{softmax}_t(q^\\top
    x_t) x_t + b` (see module docstring). Init: ``q = 0`` (uniform weights, i.e. the
    mean-pooled linear probe), ``w`` PyTorch's Linear init, ``b = 0``."""

    aggregate: ClassVar[str | None] = "sum"

    q: Float[Array, " d"]
    w: Float[Array, " d"]
    b: Float[Array, ""]

    def __init__(self, d: int, *, key: PRNGKeyArray):
        check_width(d, "d")
        self.q = jnp.zeros(d)
        self.w = uniform_init(key, (d,), d)
        self.b = jnp.zeros(())

    @staticmethod
    def param_count(d: int) -> int:
        """:math:`2d + 1`."""
        return 2 * d + 1

    def attention(self, x, mask):
        return masked_softmax(zero_padding(x, mask) @ self.q, mask)[None]

    def __call__(self, x, mask):
        return jnp.sum(self.token_scores(x, mask))

    def token_scores(self, x, mask):
        a = self.attention(x, mask)[0]
        return a * (zero_padding(x, mask) @ self.w + self.b)

    def concept_vector(self):
        return self.w
