r"""Bagging: an ensemble of one estimator fitted on random stratified subsamples.

:class:`Bagged` fits ``inner`` on ``n_estimators`` stratified subsamples holding a
``fraction`` of the examples (drawn without replacement, one PRNG key each, inside the
trace) and summarises the raw-coordinate linear probes
:math:`\theta_k = [w_k \mid b_k]` per coordinate by their mean and population
standard deviation: a :class:`probejax.GCSProbe`, carrying the inner fits' diagnostics averaged (flags:
all true). With
``inner = Standardized(LogisticRidge(lam=1))``, ``n_estimators = 1000`` and
``fraction = 0.1`` this is GCS, the Gaussian Concept Subspace of Zhao et al. (2024,
arXiv 2410.00153) as RAPTOR runs it as a baseline (:func:`gcs`).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from ..core._probe import Diagnosed, diagnostics
from ..core._splits import traced_stratified_sample
from ..solvers._solver_specs import Newton
from ._base import Estimator
from ._gcs import GCSProbe
from ._logistic_ridge import LogisticRidge
from ._tuned import Standardized


class Bagged(Estimator):
    """``inner`` fitted on ``n_estimators`` stratified ``fraction`` subsamples,
    ``batch_size`` fits at a time; the mean and spread of their linear probes."""

    inner: Estimator
    n_estimators: int = eqx.field(default=1000, static=True)
    fraction: float = eqx.field(default=0.1, static=True)
    batch_size: int = eqx.field(default=64, static=True)

    def fit(self, X, y, key):
        n = X.shape[0]
        m = max(2, math.ceil(self.fraction * n))

        def one(k):
            rows = traced_stratified_sample(k, y, m)
            fitted = self.inner.fit(X[rows], y[rows], k)
            probe = fitted.linear()
            if probe is None:
                raise TypeError(f"Bagged needs a linear inner estimator; {self.inner!r} is not.")
            return jnp.append(probe.w, probe.b), diagnostics(fitted)

        keys = jax.random.split(key, self.n_estimators)
        theta, info = jax.lax.map(one, keys, batch_size=min(self.batch_size, self.n_estimators))
        mean, std = jnp.mean(theta, axis=0), jnp.std(theta, axis=0)
        summary = {k: jnp.all(v) if v.dtype == bool else jnp.mean(v) for k, v in info.items()}
        return Diagnosed(GCSProbe(mean[:-1], mean[-1], std[:-1], std[-1]), summary)


def gcs(n_estimators: int = 1000, fraction: float = 0.1, C: float = 1.0) -> Bagged:
    """GCS as RAPTOR's baseline: standardised ridge-logistic probes at ``C`` (Newton),
    bagged over stratified subsamples."""
    inner = Standardized(LogisticRidge(lam=1.0 / C, solver=Newton()))
    return Bagged(inner, n_estimators, fraction)
