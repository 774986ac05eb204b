r"""Fisher's linear discriminant (the whitened mass-mean probe) with covariance shrinkage.

With :math:`Z` the within-class-centred data (each row minus its own class mean), the
pooled within-class covariance and its shrunk version are

.. math::

    \Sigma = \tfrac1n Z^\top Z = \sum_c \tfrac{n_c}{n} S_c, \qquad
    \Sigma_\gamma = (1-\gamma)\,\Sigma + \gamma\, m I, \quad m = \operatorname{tr}\Sigma / d,

(:math:`S_c` the class covariances with denominator :math:`n_c`, as scikit-learn's
``LinearDiscriminantAnalysis(solver="lsqr")``), and the direction is
:math:`v = \Sigma_\gamma^{-1}(\mu_+ - \mu_-)`. Scale and offset come from Platt scaling on
the training data (:func:`probejax.platt_calibrate`), not from the Gaussian model.

**No** :math:`d\times d` **matrix when** :math:`d > n`: with the reduced design of
:math:`Z` (:func:`probejax.solvers._design.reduce_design`, :math:`\Sigma = V\operatorname{diag}(s/n)V^\top`,
:math:`V` orthonormal :math:`d\times r`), Woodbury gives

.. math::

    \Sigma_\gamma^{-1}\delta = V\,\frac{V^\top\delta}{(1-\gamma)s/n + \gamma m}
    + \frac{\delta - VV^\top\delta}{\gamma m},

an :math:`n\times n` eigendecomposition and :math:`O(n^2 d)` work. At :math:`\gamma = 0`
the second term is dropped: :math:`\Sigma^{+}\delta`, the minimum-norm least-squares
solution (directions with eigenvalue below :math:`n\varepsilon s_{\max}` count as null).
scikit-learn's ``lstsq`` agrees when :math:`\Sigma` has full rank; when :math:`d \ge n-1`
it is singular and ``lstsq`` inverts rounding noise in the null space instead.

**Ledoit-Wolf** (``shrinkage="ledoit_wolf"``): :math:`\gamma` is the Ledoit-Wolf (2004)
coefficient of :math:`Z` towards :math:`mI`, exactly
``sklearn.covariance.ledoit_wolf_shrinkage(Z, assume_centered=True)``, computed from the
smaller Gram matrix of :math:`Z`. This differs from scikit-learn's
``shrinkage="auto"``, which shrinks each class's *correlation* matrix separately (a
diagonal, not isotropic, target, and one coefficient per class); with the coefficient
passed as a float the two estimators coincide.
"""

from __future__ import annotations

import math
from functools import partial

import equinox as eqx
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


def within_class_centred(X: Float[Array, "n d"], y: Float[Array, " n"]):
    r"""``(Z, delta)``: rows minus their class mean, and :math:`\mu_+ - \mu_-`."""
    mu_pos, mu_neg = class_means(X, y)
    return X - jnp.where((y > 0)[:, None], mu_pos, mu_neg), mu_pos - mu_neg


def ledoit_wolf_coefficient(Z: Float[Array, "n d"]) -> Float[Array, ""]:
    r"""Ledoit-Wolf shrinkage of :math:`\frac1n Z^\top Z` towards :math:`mI` (``Z`` centred).

    With :math:`T = \lVert Z\rVert_F^2/n`,
    :math:`\hat\delta = (\lVert Z^\top Z\rVert_F^2/n^2 - T^2/d)/d` and
    :math:`\hat\beta = (\sum_i \lVert z_i\rVert^4/n - \lVert Z^\top Z\rVert_F^2/n^2)/(nd)`,
    the coefficient is :math:`\min(\hat\beta, \hat\delta)/\hat\delta` (0 when
    :math:`\hat\delta = 0`). :math:`\lVert Z^\top Z\rVert_F = \lVert ZZ^\top\rVert_F`, so
    only the smaller Gram matrix is formed.
    """
    n, d = Z.shape
    G = Z @ Z.T if n < d else Z.T @ Z
    row_sq = jnp.sum(Z * Z, axis=1)
    T = jnp.sum(row_sq) / n
    gram_sq = jnp.sum(G * G) / n**2
    beta = (jnp.sum(row_sq**2) / n - gram_sq) / (n * d)
    delta = (gram_sq - T**2 / d) / d
    safe = jnp.where(delta > 0, delta, 1.0)
    return jnp.where(delta > 0, jnp.clip(jnp.minimum(beta, delta) / safe, 0.0, 1.0), 0.0)


def shrunk_whiten(
    Z: Float[Array, "n d"], delta: Float[Array, " d"], gamma: Float[Array, ""]
) -> Float[Array, " d"]:
    r""":math:`\Sigma_\gamma^{-1}\delta` by Woodbury on the reduced design of ``Z``."""
    n, d = Z.shape
    design = reduce_design(Z)
    m = jnp.sum(Z * Z) / (n * d)
    ridge = gamma * m
    coef = design.project(delta)
    eig = (1.0 - gamma) * design.s / n + ridge
    inside = design.lift(jnp.where(eig > 0, coef / jnp.where(eig > 0, eig, 1.0), 0.0))
    outside = delta - design.lift(coef)
    return inside + jnp.where(ridge > 0, outside / jnp.where(ridge > 0, ridge, 1.0), 0.0)


@partial(jax.jit, static_argnames=("ledoit_wolf",))
def lda_core(
    X: Float[Array, "n d"], y: Float[Array, " n"], gamma: Float[Array, ""], *, ledoit_wolf: bool
) -> LinearProbe:
    """The traceable core of :func:`fit_lda`; ``gamma`` is ignored when ``ledoit_wolf``.
    Computed on ``X`` divided by a power of two (exact; any input scale works)."""
    scaler = Standardizer.binary(X)
    X = scaler.transform(X)
    Z, delta = within_class_centred(X, y)
    gamma = ledoit_wolf_coefficient(Z) if ledoit_wolf else gamma
    return platt_core(shrunk_whiten(Z, delta, gamma), X, y).unstandardize(scaler)


@jax.jit
def _lw_jit(X, y):
    return ledoit_wolf_coefficient(within_class_centred(X, y)[0])


def _check_shrinkage(shrinkage) -> float | None:
    if isinstance(shrinkage, str):
        if shrinkage != "ledoit_wolf":
            raise ValueError(
                f"shrinkage must be 'ledoit_wolf' or a number in [0, 1], got {shrinkage!r}."
            )
        return None
    try:
        g = float(shrinkage)
    except (TypeError, ValueError):
        raise ValueError(
            f"shrinkage must be 'ledoit_wolf' or a number in [0, 1], got {shrinkage!r}."
        ) from None
    if isinstance(shrinkage, bool) or not (math.isfinite(g) and 0.0 <= g <= 1.0):
        raise ValueError(f"shrinkage must be 'ledoit_wolf' or a number in [0, 1], got {g!r}.")
    return g


def lda_shrinkage(X, y) -> Float[Array, ""]:
    """The Ledoit-Wolf coefficient :func:`fit_lda` uses for ``(X, y)`` (module docstring).

    **Arguments:** ``X`` of shape ``(n, d)``; two-class labels ``y`` of shape ``(n,)``.

    **Returns:** the shrinkage :math:`\\gamma \\in [0, 1]`, a scalar array.
    """
    X = as_float_matrix(X)
    y, _ = as_pm1_labels(y, X.shape[0])
    return _lw_jit(X, y)


def fit_lda(X, y, shrinkage: str | float = "ledoit_wolf") -> LinearProbe:
    r"""Fit the shrunk Fisher-LDA probe :math:`v = \Sigma_\gamma^{-1}(\mu_+ - \mu_-)`.

    **Arguments:**

    - ``X``: activations, shape ``(n, d)``, finite. Cost :math:`O(nd\min(n, d))`.
    - ``y``: two-class labels, shape ``(n,)``; the larger value is the positive class.
    - ``shrinkage``: ``"ledoit_wolf"`` (the coefficient of :func:`lda_shrinkage`) or a
      fixed :math:`\gamma \in [0, 1]` (0: plain Fisher LDA with a pseudo-inverse; 1: the
      mass-mean direction). A new float value does not recompile.

    **Returns:** a :class:`LinearProbe` :math:`(a v, c)` with :math:`(a, c)` from Platt
    scaling on ``(X, y)``.
    """
    g = _check_shrinkage(shrinkage)
    X = as_float_matrix(X)
    y, _ = as_pm1_labels(y, X.shape[0])
    gamma = jnp.asarray(0.0 if g is None else g, X.dtype)
    return lda_core(X, y, gamma, ledoit_wolf=g is None)


class LDA(Estimator):
    """Fisher LDA as an estimator: ``shrinkage`` a number in [0, 1], or ``None`` for the
    Ledoit-Wolf coefficient estimated from the data (see :func:`fit_lda`)."""

    shrinkage: float | None = eqx.field(default=None, static=True)

    def fit(self, X, y, key=None):
        gamma = jnp.asarray(jnp.nan if self.shrinkage is None else self.shrinkage, X.dtype)
        return lda_core(X, y, gamma, ledoit_wolf=self.shrinkage is None)
