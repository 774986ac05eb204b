r"""Fitted probes: the interface every estimator returns.

A probe scores an activation :math:`x` by :math:`s(x)`; ``predict_proba`` is
:math:`\sigma(s(x))` and the concept vector is the unit direction that raises the score.
Positive scores mean the positive (larger-label) class.

Three generic operations let the protocol treat every probe alike:

- :meth:`Probe.linear` gives the raw-coordinate :class:`LinearProbe` a probe is, or
  ``None`` for a nonlinear one (kernel machines, sequence probes);
- :meth:`Probe.unstandardize` maps a probe fitted on standardised inputs
  :math:`\tilde x = (x - \mu)/\sigma` back to raw inputs (exactly, for linear probes:
  :math:`w = w_s/\sigma`, :math:`b = b_s - w^\top\mu`);
- :class:`Diagnosed` carries an estimator's diagnostics (chosen ridge, convergence
  flags, validation curves) beside the probe it wraps; :func:`diagnostics` reads them.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._scaler import Standardizer


class Probe(eqx.Module):
    """Abstract fitted probe: ``decision_function``, ``predict_proba``, ``predict``,
    ``concept_vector``, ``linear``, ``unstandardize``."""

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

    def linear(self) -> LinearProbe | None:
        """The equal raw-coordinate linear probe, or ``None`` if the probe is not linear."""
        return None

    def unstandardize(self, scaler: Standardizer) -> Probe:
        """This probe, fitted on ``scaler.transform(X)``, as a probe on raw ``X``."""
        return OnStandardized(scaler, self)


class LinearProbe(Probe):
    r"""A linear probe :math:`s(x) = w^\top x + b` in raw activation coordinates."""

    w: Float[Array, " d"]
    b: Float[Array, ""]

    def decision_function(self, X):
        return X @ self.w + self.b

    def concept_vector(self):
        return unit(self.w)

    def linear(self):
        return self

    def unstandardize(self, scaler: Standardizer) -> LinearProbe:
        r"""The raw-coordinate probe equal to this one on standardised inputs:
        :math:`w = w_s/\sigma`, :math:`b = b_s - w^\top\mu`."""
        w = self.w / scaler.scale
        return LinearProbe(w, self.b - jnp.dot(w, scaler.mean))


class OnStandardized(Probe):
    """A probe fitted on standardised inputs, applied to raw inputs. Its concept vector
    is the inner one divided by the scales and renormalised: a direction of score
    gradients, mapped as a linear probe's weights are (:math:`w = w_s/\\sigma`, by the
    chain rule through :math:`\\tilde x = (x - \\mu)/\\sigma`)."""

    scaler: Standardizer
    probe: Probe

    def decision_function(self, X):
        return self.probe.decision_function(self.scaler.transform(X))

    def concept_vector(self):
        return unit(self.probe.concept_vector() / self.scaler.scale)

    def linear(self):
        inner = self.probe.linear()
        return None if inner is None else inner.unstandardize(self.scaler)


class Diagnosed(Probe):
    """A probe with the diagnostics of the fit that made it (``info``: a dict of arrays,
    e.g. ``lam``, ``converged``, ``val_accuracy``); it scores as ``probe`` does."""

    probe: Probe
    info: dict[str, Array]

    def decision_function(self, X):
        return self.probe.decision_function(X)

    def concept_vector(self):
        return self.probe.concept_vector()

    def linear(self):
        return self.probe.linear()

    def unstandardize(self, scaler):
        return Diagnosed(self.probe.unstandardize(scaler), self.info)


def diagnostics(probe: Probe) -> dict[str, Array]:
    """The diagnostics a probe carries (``{}`` for a plain probe)."""
    return dict(probe.info) if isinstance(probe, Diagnosed) else {}


def bare(probe: Probe) -> Probe:
    """The probe without its diagnostics."""
    return probe.probe if isinstance(probe, Diagnosed) else probe


def unit(v: Float[Array, "... d"]) -> Float[Array, "... d"]:
    """``v / |v|`` along the last axis; zero vectors stay zero. The norm is taken of
    ``v / max|v|``, so it neither overflows nor underflows at any scale of ``v``."""
    m = jnp.max(jnp.abs(v), axis=-1, keepdims=True)
    v = v / jnp.where(m > 0, m, 1.0)
    norm = jnp.linalg.norm(v, axis=-1, keepdims=True)
    return v / jnp.where(norm > 0, norm, 1.0)
