r"""The estimator protocol: one traceable ``fit`` for one problem.

An :class:`Estimator` is an Equinox module whose fields are its hyperparameters
(array-valued ones are pytree leaves, so a grid of them is a ``vmap``; structural ones
are static fields) with

- ``fit(X, y, key) -> Probe``: ``X`` ``(n, d)`` (or a pytree of arrays with a leading
  example axis, e.g. :class:`probejax.core.Tokens` for sequence probes), ``y`` in
  :math:`\{-1, +1\}` floats,
  ``key`` a PRNG key (used or not); traceable, so it ``jit``-s and ``vmap``-s over keys,
  layers and hyperparameters;
- ``fit_with_validation(X, y, train, val, key)``: the same fit when the caller has
  already set a validation split aside (index arrays into ``X``); estimators that
  tune on validation data (:class:`probejax.estimators.Tuned`) use it, the others fit
  on ``train`` and ``val`` together (the default).

A :class:`PathEstimator` has one regularisation strength ``lam``; its ``path`` fits a
whole grid at once (sharing factorisations where it can), which is what tuning uses;
its ``warm_refit`` may start the final refit from the selected path probe.

Everything else in the library (comparison, stability, layer sweeps, the command line,
figures) takes any estimator; a new one needs nothing but this file's protocol.
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..core._probe import Probe
from ..core._rows import n_rows, rows
from ..core._splits import traced_stratified_split


class Estimator(eqx.Module):
    """Abstract estimator: hyperparameters as fields, one traceable ``fit``."""

    @abc.abstractmethod
    def fit(self, X: Float[Array, "n d"], y: Float[Array, " n"], key: PRNGKeyArray) -> Probe:
        """Fit one probe on ``(X, y)`` (``y`` in +-1 floats)."""

    def fit_with_validation(
        self,
        X: Float[Array, "n d"],
        y: Float[Array, " n"],
        train: Int[Array, " n_tr"],
        val: Int[Array, " n_val"],
        key: PRNGKeyArray,
    ) -> Probe:
        """Fit with a validation split set aside; by default on ``train`` and ``val``
        together (nothing is tuned)."""
        pool = jnp.concatenate([train, val])
        return self.fit(rows(X, pool), y[pool], key)


class PathEstimator(Estimator):
    """An estimator with one regularisation strength ``lam`` (an array leaf) whose grid
    ``path`` can be fitted at once."""

    lam: eqx.AbstractVar[Float[Array, ""]]

    def with_lam(self, lam: Float[Array, ""]) -> PathEstimator:
        """The same estimator at another ``lam``."""
        return eqx.tree_at(lambda e: e.lam, self, jnp.asarray(lam))

    def path(
        self,
        X: Float[Array, "n d"],
        y: Float[Array, " n"],
        lams: Float[Array, " L"],
        key: PRNGKeyArray,
        shared=None,
    ) -> Probe:
        """Probes for every ``lam`` of the grid, stacked on a leading axis (default: a
        ``vmap`` of ``fit``; computations that do not depend on ``lam`` run once).
        ``shared``: :meth:`shared` of a pool whose first rows are ``X``."""
        return jax.vmap(lambda lam: self.with_lam(lam).fit(X, y, key))(lams)

    def shared(self, X: Float[Array, "n d"], n_train: int):
        """Work on a pool ``X`` that the path on its first ``n_train`` rows and the refit
        on all of them can share (e.g. a Gram matrix); default ``None``."""
        return None

    def refit(self, X: Float[Array, "n d"], y: Float[Array, " n"], key, shared=None) -> Probe:
        """``fit`` on the pool ``X`` that ``shared`` was computed on (default: ``fit``)."""
        return self.fit(X, y, key)

    def warm_refit(self, X, y, key, start: Probe, shared=None) -> Probe:
        """:meth:`refit`, which may start from ``start``: this estimator's probe from the
        path at the same ``lam`` on a subset of ``X`` (the tuning's train part), in the
        same coordinates. The result must not depend on the start beyond the solver's
        tolerance. Default: ignore ``start``."""
        return self.refit(X, y, key, *(() if shared is None else (shared,)))


class ValidatedEstimator(Estimator):
    """An estimator that selects on a validation split (tuning, early stopping): it
    implements ``fit_with_validation``; ``fit`` holds out a stratified ``val_fraction``
    of the examples inside the trace
    (:func:`probejax.core._splits.traced_stratified_split`) and calls it. Subclasses
    have a static ``val_fraction`` field (declared there, so that it can follow their
    own fields without defaults)."""

    def fit(self, X, y, key):
        n_val = math.ceil(self.val_fraction * n_rows(X))
        train, val = traced_stratified_split(key, y, n_val)
        return self.fit_with_validation(X, y, train, val, key)

    @abc.abstractmethod
    def fit_with_validation(self, X, y, train, val, key) -> Probe:
        """Fit on ``train``, selecting on ``val`` (index arrays into ``X``)."""
