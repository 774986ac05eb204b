r"""Multi-class probes on the estimator protocol: RAPTOR with a multinomial loss, and
one-vs-rest for any binary estimator.

A multi-class estimator has ``fit_with_validation(X, y, train, val, key) -> probe``
for integer labels ``y`` in ``0..K-1`` and index arrays ``train``, ``val``; the probe
scores ``(n, K)`` and predicts the argmax.

- :class:`MultinomialRaptor` is RAPTOR's protocol (arXiv 2602.00158) with the
  multinomial loss: standardise with the train part's statistics, fit the grid
  :math:`C \in \mathrm{logspace}(-4, 2, 100)` (:func:`multinomial_ridge_path`), take the
  best validation accuracy with ties to the smallest :math:`C` (the authors' ascending
  loop keeps the first best), refit at that :math:`C` on train + validation, and map
  back to raw coordinates (:math:`W = W_s/\sigma`, :math:`b = b_s - W\mu`). It is the
  loop over scikit-learn's multinomial ``LogisticRegression(C)``, as one program.
- :class:`OneVsRest` fits any binary estimator once per class (class :math:`k`
  against the rest, labels :math:`\pm1`, the fits vmapped over the classes) and
  scores each class by its probe's decision function.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ..estimators._base import Estimator
from ..estimators._raptor import RAPTOR_C_GRID, _lams
from ..estimators._tuned import _scaler, select_index
from ._multinomial import multinomial_ridge_path


class MulticlassProbe(eqx.Module):
    r"""A linear multi-class probe :math:`s(x) = Wx + b` in raw coordinates, ``W``
    ``(K, d)``, ``b`` ``(K,)``; ``info``: the fit's diagnostics."""

    W: Float[Array, "K d"]
    b: Float[Array, " K"]
    info: dict = eqx.field(default_factory=dict)

    def decision_function(self, X: Float[Array, "n d"]) -> Float[Array, "n K"]:
        """Class scores ``(n, K)``."""
        return X @ self.W.T + self.b

    def predict_proba(self, X) -> Float[Array, "n K"]:
        """The softmax of the scores."""
        return jax.nn.softmax(self.decision_function(X), axis=1)

    def predict(self, X) -> Int[Array, " n"]:
        """The class with the largest score."""
        return jnp.argmax(self.decision_function(X), axis=1)

    def concept_vectors(self) -> Float[Array, "K d"]:
        """Each class's unit direction (a row of ``W``, normalised)."""
        return self.W / jnp.linalg.norm(self.W, axis=1, keepdims=True)


class OneVsRestProbe(eqx.Module):
    """``K`` binary probes stacked on a leading axis; class ``k``'s score is probe
    ``k``'s decision function."""

    probes: eqx.Module
    info: dict = eqx.field(default_factory=dict)

    def decision_function(self, X) -> Float[Array, "n K"]:
        return jax.vmap(lambda p: p.decision_function(X), out_axes=1)(self.probes)

    def predict_proba(self, X) -> Float[Array, "n K"]:
        """The softmax of the scores (a ranking, not a calibrated probability)."""
        return jax.nn.softmax(self.decision_function(X), axis=1)

    def predict(self, X) -> Int[Array, " n"]:
        return jnp.argmax(self.decision_function(X), axis=1)


class MultinomialRaptor(eqx.Module):
    """RAPTOR's protocol with the multinomial loss (module docstring).

    ``n_classes``: ``K`` (static); ``lams``: the ridge grid, ``1/C``;
    ``standardize``, ``refit``: as RAPTOR's; ``tol``, ``max_iter``: of each solve."""

    n_classes: int = eqx.field(static=True)
    lams: Float[Array, " L"] = eqx.field(converter=jnp.asarray)
    standardize: bool = eqx.field(default=True, static=True)
    refit: bool = eqx.field(default=True, static=True)
    tol: float | None = eqx.field(default=None, static=True)
    max_iter: int = eqx.field(default=2000, static=True)

    def fit_with_validation(self, X, y, train, val, key=None) -> MulticlassProbe:
        pool = jnp.concatenate([train, val])
        n_tr = train.shape[0]
        X_pool, y_pool = X[pool], y[pool]
        scaler = _scaler(self.standardize, X_pool[:n_tr])
        Xs = scaler.transform(X_pool)
        lams = jnp.asarray(self.lams, X.dtype)
        opts = {"tol": self.tol, "max_iter": self.max_iter}
        path = multinomial_ridge_path(Xs[:n_tr], y_pool[:n_tr], lams, self.n_classes, **opts)
        scores = jnp.einsum("md,lkd->lmk", Xs[n_tr:], path.W) + path.b[:, None, :]
        val_acc = jnp.mean(jnp.argmax(scores, axis=2) == y_pool[n_tr:], axis=1)
        index = select_index(val_acc, lams)
        if self.refit:
            final = multinomial_ridge_path(Xs, y_pool, lams[index][None], self.n_classes, **opts)
            final = jax.tree.map(lambda a: a[0], final)
        else:
            final = jax.tree.map(lambda a: a[index], path)
        W = final.W / scaler.scale
        info = {
            "lam": lams[index],
            "C": 1.0 / lams[index],
            "index": index,
            "val_accuracy": val_acc,
            "path_converged": path.converged,
            "path_iterations": path.iterations,
            "refit_converged": final.converged,
        }
        return MulticlassProbe(W, final.b - W @ scaler.mean, info)


def multinomial_raptor(n_classes: int, Cs=RAPTOR_C_GRID, **kwargs) -> MultinomialRaptor:
    """:class:`MultinomialRaptor` over scikit-learn's ``C`` grid ``Cs`` (RAPTOR's by
    default)."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}.")
    return MultinomialRaptor(n_classes, _lams(Cs), **kwargs)


class OneVsRest(eqx.Module):
    """Any binary estimator fitted once per class, class ``k`` (+1) against the rest
    (-1); the ``K`` fits are one vmapped program (module docstring)."""

    binary: Estimator
    n_classes: int = eqx.field(static=True)

    def fit_with_validation(self, X, y, train, val, key=None) -> OneVsRestProbe:
        key = jax.random.key(0) if key is None else key
        signs = jnp.where(y[None, :] == jnp.arange(self.n_classes)[:, None], 1.0, -1.0)
        signs = signs.astype(X.dtype)
        probes = jax.vmap(lambda yk: self.binary.fit_with_validation(X, yk, train, val, key))(signs)
        return OneVsRestProbe(probes)


def check_classes(y, where: str = "labels") -> tuple[np.ndarray, int]:
    """Integer labels ``0..K-1`` (every class present, ``K >= 2``) and ``K``; a
    ``ValueError`` names ``where`` otherwise."""
    y = np.asarray(y)
    if y.ndim != 1 or (
        y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0))
    ):
        raise ValueError(
            f"{where}: labels must be a vector of integers 0..K-1, got {y.dtype} {y.shape}."
        )
    y = y.astype(np.int32)
    K = int(y.max()) + 1 if y.size else 0
    present = np.bincount(y, minlength=K) if y.size and y.min() >= 0 else None
    if present is None or K < 2 or (present == 0).any():
        raise ValueError(
            f"{where}: labels must cover every class 0..K-1 with K >= 2, got the values "
            f"{sorted(set(y.tolist()))[:10]}."
        )
    return y, K
