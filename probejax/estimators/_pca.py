r"""The PCA probe: the top principal direction of the activations, labels only for sign.

With :math:`X_c = X - \mathbf 1\bar x^\top` (all examples, both classes), the direction
is the top right singular vector of :math:`X_c`,

.. math::

    v = \arg\max_{\lVert u\rVert = 1} \lVert X_c u\rVert^2,

scikit-learn's ``PCA().components_[0]`` up to sign. The sign is chosen so that the
positive class has the higher mean projection,
:math:`\operatorname{sign}\bigl((\mu_+ - \mu_-)^\top v\bigr)`; scale and offset come from
Platt scaling on the training data (:func:`probejax.platt_calibrate`). It is computed from
the smaller Gram matrix (:func:`probejax.solvers._design.reduce_design`), so :math:`d \gg n`
costs :math:`O(n^2 d)`. Unsupervised apart from the sign: it finds the concept only when
the concept is the dominant direction of variance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..core._checks import as_float_matrix, as_pm1_labels
from ..core._probe import LinearProbe
from ..core._scaler import Standardizer
from ..solvers._design import reduce_design
from ._base import Estimator
from ._calibrate import platt_core
from ._mass_mean import class_means


def top_principal_direction(X: Float[Array, "n d"]) -> Float[Array, " d"]:
    """Unit top principal direction of ``X`` after centring (sign arbitrary)."""
    design = reduce_design(X - jnp.mean(X, axis=0))
    e_top = jnp.zeros_like(design.s).at[jnp.argmax(design.s)].set(1.0)
    return design.lift(e_top)


def pca_core(X: Float[Array, "n d"], y: Float[Array, " n"]) -> LinearProbe:
    """The traceable core of :func:`fit_pca_probe`: no input checks, ``y`` in +-1.
    Computed on ``X`` divided by a power of two (exact; any input scale works)."""
    scaler = Standardizer.binary(X)
    X = scaler.transform(X)
    v = top_principal_direction(X)
    mu_pos, mu_neg = class_means(X, y)
    v = jnp.where(jnp.dot(mu_pos - mu_neg, v) < 0, -v, v)
    return platt_core(v, X, y).unstandardize(scaler)


_pca_jit = jax.jit(pca_core)


def fit_pca_probe(X, y) -> LinearProbe:
    """Fit the PCA probe: top principal direction, sign-aligned, Platt-calibrated.

    **Arguments:**

    - ``X``: activations, shape ``(n, d)``, finite; ``n >= 2``.
    - ``y``: two-class labels, shape ``(n,)``; the larger value is the positive class.

    **Returns:** a :class:`LinearProbe` :math:`(a v, c)`, :math:`v` the unit principal
    direction oriented towards the positive class.
    """
    X = as_float_matrix(X)
    y, _ = as_pm1_labels(y, X.shape[0])
    return _pca_jit(X, y)


class PCA(Estimator):
    """The top-PCA-direction probe as an estimator (see :func:`fit_pca_probe`)."""

    def fit(self, X, y, key=None):
        return pca_core(X, y)
