r"""Moment Probing (Gao et al., ICCV 2023), code ``models/representation/MP.py``, adapted
to language-model tokens.

Two branches, logits averaged, :math:`f = (f_1 + f_2)/2`:

- First order: :math:`f_1 = w_1^\top x_\star + b_1`. In a ViT :math:`x_\star` is the CLS
  token; in a causal LM the token that has seen the whole text is the last real one, so
  :math:`x_\star = x_{\text{last}}` (``first_order="last"``; ``"mean"`` uses the mean
  of the real tokens).
- Second order (MHC\ :sup:`3`): project every real token, :math:`z_t = W_P x_t + b_P \in
  \mathbb{R}^p` (:math:`p = 512`), split into :math:`g = 4` heads of width :math:`k = p/g`,
  apply one shared LayerNorm (affine) to each head, and form the mean-centred
  cross-covariances of adjacent heads over the real tokens,

  .. math::

      C_i = \frac1T \sum_t (\tilde z^{(i)}_t - \bar z^{(i)})(\tilde z^{(i+1)}_t -
      \bar z^{(i+1)})^\top \in \mathbb{R}^{k\times k},\qquad i = 1..g-1,

  each column L2-normalised. The :math:`g-1` matrices are channels of an image that two
  3x3 stride-2 convolutions without padding or bias (:math:`g-1` channels, GELU between)
  reduce to :math:`s_2 \times s_2`, :math:`s_1 = \lfloor (k-3)/2\rfloor + 1`,
  :math:`s_2 = \lfloor (s_1-3)/2\rfloor + 1`; then :math:`f_2 = w_2^\top
  \mathrm{vec}(\cdot) + b_2`. All tokens, including the last, feed the second branch
  (the ViT code leaves out the CLS token).

Parameters: :math:`(d+1) + (dp + p) + 2k + 2\cdot 9(g-1)^2 + ((g-1)s_2^2 + 1)`; with
:math:`p = 512`, :math:`g = 4` (:math:`k = 128`, :math:`s_2 = 31`) that is :math:`513d + 3815`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import SeqProbe, check_width, uniform_init
from ._masked import last_index, masked_token_mean, zero_padding

FIRST_ORDER = ("last", "mean")


def _side(k: int) -> int:
    return (k - 3) // 2 + 1


class MomentProbe(SeqProbe):
    """Moment Probing (see module docstring).

    **Arguments:** ``d``; ``hidden`` :math:`p` (512); ``n_heads`` :math:`g` (4); ``hidden``
    must be divisible by ``n_heads`` with :math:`k = p/g \\ge 7`; ``first_order``:
    ``"last"`` or ``"mean"``; ``key``. Init: PyTorch's Linear and Conv2d inits,
    LayerNorm weight 1 and bias 0.
    """

    w1: Float[Array, " d"]
    b1: Float[Array, ""]
    proj: Float[Array, "p d"]
    proj_b: Float[Array, " p"]
    ln_w: Float[Array, " k"]
    ln_b: Float[Array, " k"]
    conv1: Float[Array, "c c 3 3"]
    conv2: Float[Array, "c c 3 3"]
    w2: Float[Array, " f"]
    b2: Float[Array, ""]
    n_heads: int = eqx.field(static=True)
    first_order: str = eqx.field(static=True)

    def __init__(
        self,
        d: int,
        *,
        hidden: int = 512,
        n_heads: int = 4,
        first_order: str = "last",
        key: PRNGKeyArray,
    ):
        check_width(d, "d")
        check_width(hidden, "hidden")
        check_width(n_heads, "n_heads")
        if n_heads < 2 or hidden % n_heads or hidden // n_heads < 7:
            raise ValueError(
                f"MomentProbe: need n_heads >= 2 and hidden divisible by n_heads with "
                f"hidden / n_heads >= 7 (two valid 3x3 stride-2 convolutions); got "
                f"hidden={hidden}, n_heads={n_heads}."
            )
        if first_order not in FIRST_ORDER:
            raise ValueError(
                f"MomentProbe: first_order must be one of {FIRST_ORDER}, got {first_order!r}."
            )
        k, c = hidden // n_heads, n_heads - 1
        s2 = _side(_side(k))
        ks = jax.random.split(key, 7)
        self.w1 = uniform_init(ks[0], (d,), d)
        self.b1 = uniform_init(ks[1], (), d)
        self.proj = uniform_init(ks[2], (hidden, d), d)
        self.proj_b = uniform_init(ks[3], (hidden,), d)
        self.ln_w = jnp.ones(k)
        self.ln_b = jnp.zeros(k)
        self.conv1 = uniform_init(ks[4], (c, c, 3, 3), 9 * c)
        self.conv2 = uniform_init(ks[5], (c, c, 3, 3), 9 * c)
        self.w2 = uniform_init(ks[6], (c * s2 * s2,), c * s2 * s2)
        self.b2 = jnp.zeros(())
        self.n_heads = n_heads
        self.first_order = first_order

    @staticmethod
    def param_count(d: int, hidden: int = 512, n_heads: int = 4) -> int:
        """:math:`(d+1) + (dp+p) + 2k + 18(g-1)^2 + (g-1)s_2^2 + 1`."""
        k, c = hidden // n_heads, n_heads - 1
        s2 = _side(_side(k))
        return (d + 1) + (d * hidden + hidden) + 2 * k + 18 * c * c + c * s2 * s2 + 1

    def _layer_norm(self, z):
        mu = jnp.mean(z, axis=-1, keepdims=True)
        var = jnp.var(z, axis=-1, keepdims=True)
        return (z - mu) / jnp.sqrt(var + 1e-5) * self.ln_w + self.ln_b

    def cross_covariances(self, x, mask) -> Float[Array, "c k k"]:
        """The :math:`g-1` column-normalised cross-covariance matrices."""
        x = zero_padding(x, mask)
        z = x @ self.proj.T + self.proj_b
        z = self._layer_norm(z.reshape(z.shape[0], self.n_heads, -1))  # (T, g, k)
        z = z - masked_token_mean(z.reshape(z.shape[0], -1), mask).reshape(z.shape[1:])
        z = jnp.where(mask[:, None, None], z, 0.0)
        n = jnp.maximum(jnp.sum(mask), 1)
        C = jnp.einsum("tgi,tgj->gij", z[:, :-1], z[:, 1:]) / n
        norm = jnp.linalg.norm(C, axis=1, keepdims=True)
        return C / jnp.maximum(norm, 1e-12)

    @staticmethod
    def _conv(img: Float[Array, "c h h"], kernel: Float[Array, "o c 3 3"]) -> Float[Array, "o s s"]:
        """3x3 convolution, stride 2, no padding, no bias (PyTorch's ``Conv2d``)."""
        return jax.lax.conv_general_dilated(img[None], kernel, (2, 2), "VALID")[0]

    def second_order(self, x, mask) -> Float[Array, ""]:
        h = self._conv(self.cross_covariances(x, mask), self.conv1)
        h = self._conv(jax.nn.gelu(h, approximate=False), self.conv2)
        return h.reshape(-1) @ self.w2 + self.b2

    def first(self, x, mask) -> Float[Array, ""]:
        if self.first_order == "last":
            xs = zero_padding(x, mask)[last_index(mask)]
        else:
            xs = masked_token_mean(x, mask)
        return xs @ self.w1 + self.b1

    def __call__(self, x, mask):
        return 0.5 * (self.first(x, mask) + self.second_order(x, mask))
