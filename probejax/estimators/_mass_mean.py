r"""The mass-mean (difference-of-means) probe.

The direction is the difference of the class means,

.. math::

    v = \mu_+ - \mu_-, \qquad
    \mu_\pm = \frac{1}{n_\pm}\sum_{i:\, y_i = \pm 1} x_i,

the probe of Marks & Tegmark (2023, "The Geometry of Truth"), with scale and offset by
Platt scaling on the training data (:func:`probejax.platt_calibrate`). Its concept vector
is :math:`v/\lVert v\rVert`; no covariance enters, so it is the LDA direction of
:func:`probejax.fit_lda` at shrinkage 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..core._checks import as_float_matrix, as_pm1_labels
from ..core._probe import LinearProbe
from ..core._scaler import Standardizer
from ._base import Estimator
from ._calibrate import platt_core


def class_means(
    X: Float[Array, "n d"], y: Float[Array, " n"]
) -> tuple[Float[Array, " d"], Float[Array, " d"]]:
    r"""Class means :math:`(\mu_+, \mu_-)` for +-1 labels (traceable)."""
    pos = (y > 0).astype(X.dtype)
    neg = 1.0 - pos
    return (pos @ X) / jnp.sum(pos), (neg @ X) / jnp.sum(neg)


def mass_mean_core(X: Float[Array, "n d"], y: Float[Array, " n"]) -> LinearProbe:
    """The traceable core of :func:`fit_mass_mean`: no input checks, ``y`` in +-1.
    Computed on ``X`` divided by a power of two (exact; any input scale works)."""
    scaler = Standardizer.binary(X)
    X = scaler.transform(X)
    mu_pos, mu_neg = class_means(X, y)
    return platt_core(mu_pos - mu_neg, X, y).unstandardize(scaler)


_mass_mean_jit = jax.jit(mass_mean_core)


def fit_mass_mean(X, y) -> LinearProbe:
    r"""Fit the mass-mean probe :math:`v = \mu_+ - \mu_-`, Platt-calibrated.

    **Arguments:**

    - ``X``: activations, shape ``(n, d)``, finite.
    - ``y``: two-class labels, shape ``(n,)``; the larger value is the positive class.

    **Returns:** a :class:`LinearProbe` :math:`(a v, c)` with :math:`(a, c)` from Platt
    scaling on ``(X, y)``.
    """
    X = as_float_matrix(X)
    y, _ = as_pm1_labels(y, X.shape[0])
    return _mass_mean_jit(X, y)


class MassMean(Estimator):
    """The mass-mean probe as an estimator (nothing to tune; see :func:`fit_mass_mean`)."""

    def fit(self, X, y, key=None):
        return mass_mean_core(X, y)
