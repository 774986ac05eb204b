r"""Prototypical probing (Bird-MAE 2025, code ``models/ppnet/ppnet.py``), two classes.

:math:`J` prototypes per class, :math:`p_{c,j} \in \mathbb{R}^d`, :math:`c \in \{0, 1\}`.
Each is matched to every real token by cosine similarity, rectified, and max-pooled over
tokens; each class sums only its own prototypes' evidence with non-negative weights:

.. math::

    s_{c,j} = \max_t \mathrm{ReLU}\big(\cos(x_t, p_{c,j})\big),\qquad
    \ell_c = \sum_j \mathrm{ReLU}(w_{c,j})\, s_{c,j} + b_c,\qquad f = \ell_1 - \ell_0,

so :math:`\sigma(f)` is the two-class softmax and the logistic loss on :math:`f` is the
cross-entropy on :math:`(\ell_0, \ell_1)` (the paper's asymmetric multi-label loss
reduces to it for one binary label). The training loss adds the prototype
orthogonality penalty :math:`\lambda \sum_c \lVert \hat P_c \hat P_c^\top - I_J
\rVert_F^2` (:math:`\hat P_c` the unit-normalised prototypes of class :math:`c`).

Parameters: :math:`2Jd + 2J + 2` (:math:`J = 20`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import SeqProbe, check_width, unit_rows
from ._masked import masked_max, zero_padding


class PrototypeProbe(SeqProbe):
    """Prototypical probe (see module docstring).

    **Arguments:** ``d``; ``n_prototypes`` :math:`J` per class (20); ``orthogonality``
    :math:`\\lambda` (0.01); ``key``. Init: prototypes :math:`\\sim N(0, I/d)`, class
    weights 1, biases 0.
    """

    prototypes: Float[Array, "2 J d"]
    w: Float[Array, "2 J"]
    b: Float[Array, " 2"]
    orthogonality: float = eqx.field(static=True)

    def __init__(
        self,
        d: int,
        *,
        n_prototypes: int = 20,
        orthogonality: float = 0.01,
        key: PRNGKeyArray,
    ):
        check_width(d, "d")
        check_width(n_prototypes, "n_prototypes")
        if not float(orthogonality) >= 0:
            raise ValueError(f"PrototypeProbe: orthogonality must be >= 0, got {orthogonality!r}.")
        self.prototypes = jax.random.normal(key, (2, n_prototypes, d)) / jnp.sqrt(d)
        self.w = jnp.ones((2, n_prototypes))
        self.b = jnp.zeros(2)
        self.orthogonality = float(orthogonality)

    @staticmethod
    def param_count(d: int, n_prototypes: int = 20) -> int:
        """:math:`2Jd + 2J + 2`."""
        return 2 * n_prototypes * d + 2 * n_prototypes + 2

    def similarities(self, x, mask) -> Float[Array, "2 J T"]:
        """:math:`\\mathrm{ReLU}(\\cos(x_t, p_{c,j}))`, zero on padding."""
        x = unit_rows(zero_padding(x, mask))
        sim = jnp.einsum("cjd,td->cjt", unit_rows(self.prototypes), x)
        return jnp.where(mask, jax.nn.relu(sim), 0.0)

    def attention(self, x, mask):
        """Similarity maps, ``(2J, T)``: class 0's prototypes first."""
        s = self.similarities(x, mask)
        return s.reshape(-1, s.shape[-1])

    def class_logits(self, x, mask) -> Float[Array, " 2"]:
        """:math:`(\\ell_0, \\ell_1)`."""
        s = masked_max(self.similarities(x, mask), mask)
        return jnp.sum(jax.nn.relu(self.w) * s, axis=1) + self.b

    def __call__(self, x, mask):
        ell = self.class_logits(x, mask)
        return ell[1] - ell[0]

    def token_scores(self, x, mask):
        """Per-token evidence :math:`\\sum_j \\mathrm{ReLU}(w_{1,j})\\, s_{1,j,t} -
        \\sum_j \\mathrm{ReLU}(w_{0,j})\\, s_{0,j,t}` (indicative: the logit takes each
        prototype's max over tokens separately)."""
        s = self.similarities(x, mask)
        e = jnp.sum(jax.nn.relu(self.w)[..., None] * s, axis=1)
        return e[1] - e[0]

    def penalty(self):
        P = unit_rows(self.prototypes)
        G = jnp.einsum("cjd,ckd->cjk", P, P) - jnp.eye(P.shape[1])
        return self.orthogonality * jnp.sum(G**2)
