r"""The reduced design: an orthonormal basis of the row space of :math:`X` in which
the ridge penalty is isotropic and the quadratic part of the loss is diagonal.

With the thin eigendecomposition of the smaller Gram matrix,

- :math:`n < d`: :math:`XX^\top = U S U^\top`, :math:`F = U S^{1/2}`,
  :math:`w = X^\top U S^{-1/2}\beta` (the representer form, rotated);
- :math:`n \ge d`: :math:`X^\top X = V S V^\top`, :math:`F = XV`, :math:`w = V\beta`;

so that :math:`Xw = F\beta`, :math:`\lVert w\rVert = \lVert\beta\rVert` and
:math:`F^\top F = S`. Every ridge strength then sees the same :math:`F` and :math:`S`:
the decomposition is paid once per design, not once per grid point.

Which directions are kept:

- :math:`n \ge d`: all of them. :math:`F = XV` is a product with the orthonormal
  :math:`V`, so an eigenvalue's rounding error never enters the problem (only the
  preconditioner reads :math:`s`, clipped at 0); a direction outside the row space has a
  zero column and stays at the ridge's :math:`\beta_j = 0`.
- :math:`n < d`: :math:`F = US^{1/2}` is built from the eigenvalues themselves, whose
  rounding error in a floating-point Gram matrix is about
  :math:`\sqrt{n}\,\varepsilon\,s_{\max}`; directions below that are dropped (their
  column of :math:`F` is zero).

Dropping more is not harmless: on real layers, whose spectra span five or more decades
after standardisation, a cut at :math:`n\varepsilon s_{\max}` in float32 removed a third
of the directions and moved the validation accuracy at small ridges by up to 14 of 240
examples, and with it the selected ridge.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..core._linalg import eigh


class ReducedDesign(eqx.Module):
    """``F`` (n x r), the eigenvalues ``s`` (r,), and the lift from beta to w."""

    F: Float[Array, "n r"]
    s: Float[Array, " r"]
    X: Float[Array, "n d"] | None
    lift_matrix: Float[Array, "n_or_d r"]
    representer: bool = eqx.field(static=True)

    def lift(self, beta: Float[Array, " r"]) -> Float[Array, " d"]:
        """Weights in input coordinates, :math:`w` for a coefficient vector :math:`\\beta`."""
        if self.representer:
            return self.X.T @ (self.lift_matrix @ beta)
        return self.lift_matrix @ beta

    def project(self, w: Float[Array, " d"]) -> Float[Array, " r"]:
        """Coordinates of the row-space component of ``w``: :math:`\\beta = V^\\top w`."""
        if self.representer:
            return self.lift_matrix.T @ (self.X @ w)
        return self.lift_matrix.T @ w


def reduce_design(X: Float[Array, "n d"], gram: Float[Array, "n n"] | None = None) -> ReducedDesign:
    """Eigendecompose the smaller Gram matrix of ``X`` (see module docstring).

    ``gram``, when given, is :math:`XX^\top` computed by the caller (used when
    :math:`n < d`, e.g. a block of a larger Gram matrix shared between fits).
    """
    n, d = X.shape
    eps = jnp.finfo(X.dtype).eps
    if n < d:
        s, U = eigh(X @ X.T if gram is None else gram)
        keep = s > s[-1] * jnp.sqrt(n) * eps
        root = jnp.sqrt(jnp.where(keep, s, 1.0))
        F = U * jnp.where(keep, root, 0.0)
        A = U * jnp.where(keep, 1.0 / root, 0.0)
        return ReducedDesign(F, jnp.where(keep, s, 0.0), X, A, True)
    s, V = eigh(X.T @ X)
    return ReducedDesign(X @ V, jnp.maximum(s, 0.0), None, V, False)
