r"""Erase, then probe: any estimator fitted on erased inputs, as a probe on raw inputs.

:class:`ErasedInputs` holds an :class:`~probejax.erasure.Eraser` fitted beforehand (for
a concept A, e.g. on the training data) and an estimator (for a concept B). Its fit
erases the inputs and fits the estimator on them; the probe it returns scores raw
inputs, :math:`s(x) = s_B(r(x))`. A linear :math:`s_B(u) = w^\top u + b` after
:math:`r(x) = x - UV^\top(x - \mu)` is linear,

.. math::

    s(x) = w'^\top x + b', \qquad w' = (I - VU^\top) w, \qquad
    b' = b + \mu^\top V U^\top w,

and a concept vector (a direction of score gradients) maps as a weight does,
:math:`v' \propto (I - VU^\top) v` (the chain rule through :math:`r`).
"""

from __future__ import annotations

import jax.numpy as jnp

from ..core._probe import Diagnosed, LinearProbe, Probe, bare, unit
from ..estimators._base import Estimator
from ._leace import Eraser


class ErasedProbe(Probe):
    """``probe`` applied to ``eraser``-ed inputs (module docstring)."""

    eraser: Eraser
    probe: Probe

    def decision_function(self, X):
        return self.probe.decision_function(self.eraser(X))

    def concept_vector(self):
        return unit(self.eraser.pullback(self.probe.concept_vector()))

    def linear(self):
        inner = self.probe.linear()
        if inner is None:
            return None
        e = self.eraser
        removed = e.V @ (e.U.T @ inner.w)
        return LinearProbe(inner.w - removed, inner.b + jnp.dot(e.mean, removed))


def _wrap(eraser: Eraser, probe: Probe) -> Probe:
    out = ErasedProbe(eraser, bare(probe))
    return Diagnosed(out, probe.info) if isinstance(probe, Diagnosed) else out


class ErasedInputs(Estimator):
    """``estimator`` fitted on ``eraser(X)``; its probes score raw inputs.

    **Arguments:**

    - ``eraser``: a fitted :class:`~probejax.erasure.Eraser` (for the erased concept).
    - ``estimator``: any :class:`~probejax.Estimator` (for the probed concept).
    """

    eraser: Eraser
    estimator: Estimator

    def fit(self, X, y, key=None):
        return _wrap(self.eraser, self.estimator.fit(self.eraser(X), y, key))

    def fit_with_validation(self, X, y, train, val, key):
        probe = self.estimator.fit_with_validation(self.eraser(X), y, train, val, key)
        return _wrap(self.eraser, probe)
