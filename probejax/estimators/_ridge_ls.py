r"""Ridge least squares on +-1 targets as an estimator.

.. math::

    \min_{w, b}\ \sum_i (y_i - w^\top x_i - b)^2 + \lambda\lVert w\rVert^2

(scikit-learn's ``RidgeClassifier(alpha=lam)``); ``path`` computes the whole grid from
one eigendecomposition (:func:`probejax.ridge_ls_path`).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..solvers._losses import Square
from ..solvers._ridge_ls import ridge_ls_core, ridge_ls_path_core
from ._base import PathEstimator


class RidgeLS(PathEstimator):
    """Ridge least-squares classifier at ``lam``."""

    lam: Float[Array, ""] = eqx.field(default=1.0, converter=jnp.asarray)

    def fit(self, X, y, key=None):
        return ridge_ls_core(X, y, jnp.asarray(self.lam, X.dtype))

    def theory_loss(self):
        """``(Square(), lam)``: the objective is twice
        :math:`\\sum_i \\tfrac12(1 - y_i h_i)^2 + \\tfrac\\lambda2\\lVert w\\rVert^2`."""
        return Square(), self.lam

    def path(self, X, y, lams, key=None, shared=None):
        return ridge_ls_path_core(X, y, jnp.asarray(lams, X.dtype))
