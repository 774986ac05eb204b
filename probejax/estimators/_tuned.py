r"""Composable protocol pieces: standardise, tune on validation, refit.

:class:`Standardized` fits ``inner`` on :math:`\tilde x = (x - \mu)/\sigma` with the
statistics of the data it is given and maps the probe back to raw coordinates.

:class:`Tuned` is the validation protocol of RAPTOR (arXiv 2602.00158) for any
:class:`~probejax.estimators.PathEstimator`: on the train part of a split,
(optionally) standardise with the train statistics, fit the whole ``lams`` path, score
every probe on the validation part with ``criterion`` (larger is better), take the best
with exact ties going to the largest ``lam`` (the strongest regularisation), refit at
that ``lam`` on train + validation with the same standardisation (started from the
selected path probe where the estimator can use it:
:meth:`~probejax.estimators.PathEstimator.warm_refit`), and map back to raw
coordinates. The probe carries ``lam``, ``C = 1/lam``, ``index``, ``val_criterion``
and ``val_accuracy`` (per grid point), ``path_converged`` and ``refit_converged``.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ..core._metrics import accuracy, log_loss
from ..core._probe import Diagnosed, bare, diagnostics
from ..core._scaler import Standardizer
from ._base import Estimator, PathEstimator, ValidatedEstimator


def neg_log_loss(y, scores):
    """Minus the mean log-loss: a validation criterion where larger is better."""
    return -log_loss(y, scores)


def select_index(criterion: Float[Array, " L"], lams: Float[Array, " L"]) -> Int[Array, ""]:
    """Grid index of the best (largest) criterion; exact ties go to the largest ridge."""
    best = jnp.max(criterion)
    return jnp.argmax(jnp.where(criterion == best, lams, -jnp.inf))


def _path_scores(path, X: Float[Array, "m d"]) -> Float[Array, "m L"]:
    """Scores of every probe of a path on ``X``, one column per probe (one matrix
    product for a linear path)."""
    lin = path.linear()
    if lin is not None:
        return X @ lin.w.T + lin.b
    return jax.vmap(lambda p: p.decision_function(X), out_axes=1)(path)


def _scaler(standardize: bool, X):
    return Standardizer.fit(X) if standardize else Standardizer.identity(X.shape[1], X.dtype)


class Standardized(Estimator):
    """``inner`` fitted on features standardised with the training data's mean and
    (population) standard deviation, returned in raw coordinates."""

    inner: Estimator

    def fit(self, X, y, key=None):
        scaler = Standardizer.fit(X)
        Xs = jax.lax.optimization_barrier(scaler.transform(X))
        return self.inner.fit(Xs, y, key).unstandardize(scaler)


class Tuned(ValidatedEstimator):
    """``inner`` tuned over ``lams`` on a validation split (module docstring).

    ``criterion(y, scores) -> scalar`` (larger is better; default accuracy),
    ``standardize`` on the train part's statistics, ``refit`` on train + validation,
    ``val_fraction`` of the data held out when ``fit`` makes the split itself.
    """

    inner: PathEstimator
    lams: Float[Array, " L"] = eqx.field(converter=jnp.asarray)
    criterion: Callable = eqx.field(default=accuracy, static=True)
    standardize: bool = eqx.field(default=True, static=True)
    refit: bool = eqx.field(default=True, static=True)
    val_fraction: float = eqx.field(default=0.2, static=True)

    def fit_with_validation(self, X, y, train, val, key):
        n_tr = train.shape[0]
        pool = jnp.concatenate([train, val])
        X_pool, y_pool = X[pool], y[pool]
        scaler = _scaler(self.standardize, X_pool[:n_tr])
        # Materialise the standardised pool before the products: fused into the matmul,
        # the gather and scaling would slow the one large GEMM of the protocol several-fold.
        Xs = jax.lax.optimization_barrier(scaler.transform(X_pool))
        y_tr, y_val = y_pool[:n_tr], y_pool[n_tr:]
        lams = jnp.asarray(self.lams, X.dtype)
        shared = self.inner.shared(Xs, n_tr)
        # a user's path may not take ``shared``: pass it only when there is one
        extra = () if shared is None else (shared,)
        path = self.inner.path(Xs[:n_tr], y_tr, lams, key, *extra)
        val_scores = _path_scores(path, Xs[n_tr:])
        crit = jax.vmap(self.criterion, in_axes=(None, 1))(y_val, val_scores)
        val_acc = jax.vmap(accuracy, in_axes=(None, 1))(y_val, val_scores)
        index = select_index(crit, lams)
        lam = lams[index]
        path_info = diagnostics(path)
        selected = jax.tree.map(lambda a: a[index], path)
        if self.refit:
            chosen = self.inner.with_lam(lam).warm_refit(Xs, y_pool, key, selected, shared)
        else:
            chosen = selected
        refit_ok = diagnostics(chosen).get("converged", jnp.asarray(True))
        info = {
            "lam": lam,
            "C": 1.0 / lam,
            "index": index,
            "val_criterion": crit,
            "val_accuracy": val_acc,
            "path_converged": path_info.get("converged", jnp.ones(lams.shape, bool)),
            "refit_converged": refit_ok,
        }
        return Diagnosed(bare(chosen).unstandardize(scaler), info)
