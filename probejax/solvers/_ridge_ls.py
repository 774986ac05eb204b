r"""Ridge least-squares classifier, for one ridge strength or a whole grid at once.

With labels :math:`y_i \in \{-1, +1\}` and the intercept unpenalised,

.. math::

    \min_{w, b}\; \sum_{i=1}^n (y_i - w^\top x_i - b)^2 + \lambda\lVert w\rVert^2
    \quad\Longrightarrow\quad
    w = (X_c^\top X_c + \lambda I)^{-1} X_c^\top y_c, \qquad b = \bar y - \bar x^\top w,

with :math:`X_c, y_c` centred: scikit-learn's ``Ridge(alpha=lam)`` on +-1 targets, and
``RidgeClassifier(alpha=lam)``. The score :math:`w^\top x + b` is a regression onto
+-1, so ``predict_proba`` (:math:`\sigma` of that score) is **not** calibrated; use
the scores or ``predict``.

**The whole path from one eigendecomposition.** With the reduced design of :math:`X_c`
(:func:`probejax.solvers._design.reduce_design`: :math:`X_c w = F\beta`,
:math:`\lVert w\rVert = \lVert\beta\rVert`, :math:`F^\top F = \operatorname{diag}(s)`),
the solution is :math:`\beta_j(\lambda) = (F^\top y_c)_j / (s_j + \lambda)`: one
:math:`O(nd\min(n,d))` decomposition, then :math:`O(d\min(n, d))` per grid point.
:func:`fit_ridge_ls` solves a single :math:`\lambda` by Cholesky instead (the kernel
form :math:`w = X_c^\top(X_cX_c^\top + \lambda I)^{-1}y_c` when :math:`n < d`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jaxtyping import Array, Float

from ..core._checks import as_float_matrix, as_pm1_labels, check_lams
from ..core._probe import LinearProbe
from ._design import reduce_design


def ridge_ls_core(
    X: Float[Array, "n d"], y: Float[Array, " n"], lam: Float[Array, ""]
) -> LinearProbe:
    """One ridge least-squares fit by Cholesky (traceable; ``y`` in +-1, ``lam > 0``)."""
    n, d = X.shape
    x_bar, y_bar = jnp.mean(X, axis=0), jnp.mean(y)
    Xc, yc = X - x_bar, y - y_bar
    if n < d:
        K = Xc @ Xc.T + lam * jnp.eye(n, dtype=X.dtype)
        w = Xc.T @ jsl.cho_solve(jsl.cho_factor(K, lower=True), yc)
    else:
        A = Xc.T @ Xc + lam * jnp.eye(d, dtype=X.dtype)
        w = jsl.cho_solve(jsl.cho_factor(A, lower=True), Xc.T @ yc)
    return LinearProbe(w, y_bar - jnp.dot(x_bar, w))


def ridge_ls_path_core(
    X: Float[Array, "n d"], y: Float[Array, " n"], lams: Float[Array, " L"]
) -> LinearProbe:
    """The whole grid from one eigendecomposition (traceable); leaves ``(L, d)``, ``(L,)``."""
    x_bar, y_bar = jnp.mean(X, axis=0), jnp.mean(y)
    design = reduce_design(X - x_bar)
    q = design.F.T @ (y - y_bar)

    def one(lam):
        w = design.lift(q / (design.s + lam))
        return LinearProbe(w, y_bar - jnp.dot(x_bar, w))

    return jax.vmap(one)(lams)


_fit_jit = jax.jit(ridge_ls_core)
_path_jit = jax.jit(ridge_ls_path_core)


def fit_ridge_ls(X, y, lam) -> LinearProbe:
    """Fit the ridge least-squares classifier at one ridge strength.

    **Arguments:**

    - ``X``: activations, shape ``(n, d)``, finite.
    - ``y``: two-class labels, shape ``(n,)``, mapped to +-1 (the larger value is +1).
    - ``lam``: ridge strength > 0 (scikit-learn ``alpha``).

    **Returns:** a :class:`LinearProbe` ``(w, b)``.
    """
    X = as_float_matrix(X)
    y, _ = as_pm1_labels(y, X.shape[0])
    lam = check_lams(lam, "lam", scalar=True)
    return _fit_jit(X, y, lam)


def ridge_ls_path(X, y, lams) -> LinearProbe:
    """Fit the ridge least-squares classifier for every ridge strength in ``lams``.

    **Arguments:**

    - ``X``: activations, shape ``(n, d)``, finite.
    - ``y``: two-class labels, shape ``(n,)``, mapped to +-1 (the larger value is +1).
    - ``lams``: 1-D grid of ridge strengths, each > 0. A new grid of the same length
      reuses the compiled program.

    **Returns:** a :class:`LinearProbe` with batched leaves ``w`` of shape ``(L, d)`` and
    ``b`` of shape ``(L,)``. Entry ``i`` is ``jax.tree.map(lambda a: a[i], path)``; all
    scores at once are ``jax.vmap(lambda p: p.decision_function(X))(path)``, shape
    ``(L, n)``.
    """
    X = as_float_matrix(X)
    y, _ = as_pm1_labels(y, X.shape[0])
    lams = check_lams(lams)
    return _path_jit(X, y, lams)
