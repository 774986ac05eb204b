r"""Efficient Probing (Psomas et al. 2025), as the authors' code ``poolings/ep.py`` runs it.

For one sequence :math:`X \in \mathbb{R}^{T\times d}` (rows :math:`x_t`), :math:`M` learned
queries :math:`q_j \in \mathbb{R}^d` attend over the tokens with identity keys, one head,
scale :math:`d^{-1/2}`:

.. math::

    a_{jt} = \mathrm{softmax}_t\big(q_j^\top x_t / \sqrt d\big).

One value matrix :math:`W_V \in \mathbb{R}^{d_v\times d}`, :math:`d_v = d/d_\text{out}`, no
bias, is split by rows into :math:`M` blocks :math:`W_{V,j} \in \mathbb{R}^{s\times d}`,
:math:`s = d_v/M`; query :math:`j` reads only its block, and the outputs are
concatenated:

.. math::

    y_j = \sum_t a_{jt} W_{V,j} x_t = W_{V,j} (A X)_j, \qquad
    y = [y_1; \dots; y_M] \in \mathbb{R}^{d_v}, \qquad f = w^\top y + b.

``A X`` (``M x d``) is formed first and then projected: exact, and it costs
:math:`O(MTd + d\,d_v)` instead of the :math:`O(T d\,d_v)` of projecting every token.
(The README's prose, with averaging over queries and a key projection, does not match
the code; the code is followed.)

Parameters: :math:`Md + d\,d_v + d_v + 1 = Md + d^2/d_\text{out} + d/d_\text{out} + 1`.

The authors' head is BatchNorm without affine parameters, then Linear. At inference
BatchNorm is a fixed affine map, so ``BN -> Linear`` and ``Linear`` define the same
functions; it is left out here (the inputs are standardised per feature before the
probe instead), which changes the optimisation path, not the function class.

Per-token scores: with :math:`u_j = W_{V,j}^\top w_j` (:math:`w_j` the block of the
head's weights read by query :math:`j`), :math:`c_t = \sum_j a_{jt}(u_j^\top x_t + b/M)`
and :math:`f = \sum_t c_t` exactly.
"""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._base import SeqProbe, check_width, uniform_init
from ._masked import masked_softmax, zero_padding


class EfficientProbe(SeqProbe):
    """Efficient Probing (see module docstring).

    **Arguments:**

    - ``d``: token width.
    - ``n_queries``: :math:`M` (32).
    - ``d_out``: value reduction, :math:`d_v = d/d_\\text{out}` (1); ``d`` must be divisible
      by ``n_queries * d_out``.
    - ``key``: PRNG key; queries :math:`\\sim N(0, 0.02^2)`, ``W_V`` and ``w`` PyTorch's
      Linear init, ``b = 0``.
    """

    aggregate: ClassVar[str | None] = "sum"

    queries: Float[Array, "M d"]
    value: Float[Array, "dv d"]
    w: Float[Array, " dv"]
    b: Float[Array, ""]
    n_queries: int = eqx.field(static=True)

    def __init__(self, d: int, *, n_queries: int = 32, d_out: int = 1, key: PRNGKeyArray):
        check_width(d, "d")
        check_width(n_queries, "n_queries")
        check_width(d_out, "d_out")
        if d % (n_queries * d_out):
            raise ValueError(
                f"EfficientProbe: d={d} must be divisible by n_queries * d_out = "
                f"{n_queries} * {d_out} = {n_queries * d_out} (each query reads a value "
                f"slice of width d / (d_out n_queries))."
            )
        dv = d // d_out
        kq, kv, kw = jax.random.split(key, 3)
        self.queries = 0.02 * jax.random.normal(kq, (n_queries, d))
        self.value = uniform_init(kv, (dv, d), d)
        self.w = uniform_init(kw, (dv,), dv)
        self.b = jnp.zeros(())
        self.n_queries = n_queries

    @staticmethod
    def param_count(d: int, n_queries: int = 32, d_out: int = 1) -> int:
        """:math:`Md + d^2/d_\\text{out} + d/d_\\text{out} + 1`."""
        return n_queries * d + d * d // d_out + d // d_out + 1

    def _blocks(self) -> Float[Array, "M s d"]:
        dv, d = self.value.shape
        return self.value.reshape(self.n_queries, dv // self.n_queries, d)

    def attention(self, x, mask):
        x = zero_padding(x, mask)
        d = x.shape[-1]
        return masked_softmax(self.queries @ x.T / math.sqrt(d), mask)

    def pooled(self, x: Float[Array, "T d"], mask: Bool[Array, " T"]) -> Float[Array, " dv"]:
        """:math:`y = [W_{V,1}(AX)_1; \\dots; W_{V,M}(AX)_M]`."""
        A = self.attention(x, mask)
        Z = A @ zero_padding(x, mask)
        return jnp.einsum("md,msd->ms", Z, self._blocks()).reshape(-1)

    def __call__(self, x, mask):
        return self.pooled(x, mask) @ self.w + self.b

    def token_scores(self, x, mask):
        x = zero_padding(x, mask)
        A = self.attention(x, mask)
        u = jnp.einsum("ms,msd->md", self.w.reshape(self.n_queries, -1), self._blocks())
        return jnp.sum(A * (u @ x.T + self.b / self.n_queries), axis=0)
