r"""Fitted probes: the interface every estimator returns.

A probe scores an activation :math:`x` by :math:`s(x)`; ``predict_proba`` is
:math:`\sigma(s(x))` and the concept vector is the unit direction that raises the score.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


class Probe(eqx.Module):
    """Abstract fitted probe: ``decision_function``, ``predict_proba``, ``predict``,
    ``concept_vector``. Positive scores mean the positive (larger-label) class."""

    @abc.abstractmethod
    def decision_function(self, X: Float[Array, "n d"]) -> Float[Array, " n"]:
        """Real-valued scores, shape ``(n,)``."""

    @abc.abstractmethod
    def concept_vector(self) -> Float[Array, " d"]:
        """Unit-norm direction in activation space."""

    def predict_proba(self, X: Float[Array, "n d"]) -> Float[Array, " n"]:
        """Probability of the positive class, :math:`\\sigma(s(x))`, shape ``(n,)``."""
        return jax.nn.sigmoid(self.decision_function(X))

    def predict(self, X: Float[Array, "n d"]) -> Int[Array, " n"]:
        """1 for the positive class, 0 for the negative class."""
        return (self.decision_function(X) > 0).astype(jnp.int32)


class LinearProbe(Probe):
    r"""A linear probe :math:`s(x) = w^\top x + b` in raw activation coordinates."""

    w: Float[Array, " d"]
    b: Float[Array, ""]

    def decision_function(self, X):
        return X @ self.w + self.b

    def concept_vector(self):
        return unit(self.w)


def unit(v: Float[Array, "... d"]) -> Float[Array, "... d"]:
    """``v / |v|`` along the last axis; zero vectors stay zero."""
    norm = jnp.linalg.norm(v, axis=-1, keepdims=True)
    return v / jnp.where(norm > 0, norm, 1.0)
