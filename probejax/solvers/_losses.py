r"""Margin losses :math:`\ell(u)`, :math:`u = y h`, and their proximal maps: what the
mixture fixed point needs from an estimator.

For a loss :math:`\ell` and :math:`V > 0` the proximal point
:math:`P = \arg\min_z (z - \omega)^2/(2V) + \ell(yz)` has margin :math:`u = yP`
solving :math:`u = y\omega - V\ell'(u)`; the fixed point uses

.. math::

    f = \frac{P - \omega}{V} = -y\,\ell'(u), \qquad
    \partial_\omega f = -\frac{\ell''(u)}{1 + V\ell''(u)},

and a training example is classified correctly (:math:`u > 0`) exactly when
:math:`y\omega > V\ell'(0)`.

They live with the solvers (below the estimators, which name their own loss) and are
re-exported by :mod:`probejax.theory`. An estimator minimising
:math:`\sum_i \ell(y_i(w^\top x_i + b)) + \tfrac{\lambda}{2}\lVert w\rVert^2`
gets theory by returning its loss and :math:`\lambda` from ``theory_loss()``
(:class:`~probejax.estimators.LogisticRidge`: :class:`Logistic`, :math:`\lambda` = its
``lam`` = 1/C; :class:`~probejax.estimators.RidgeLS`, which minimises
:math:`\sum_i (y_i - h_i)^2 + \lambda\lVert w\rVert^2`, i.e. twice
:math:`\sum_i \tfrac12(1 - u_i)^2 + \tfrac\lambda2\lVert w\rVert^2`: :class:`Square` at
the same ``lam``).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._prox import prox_terms


class Loss(eqx.Module):
    """A convex margin loss: ``value(u)``, ``prox(y, omega, V) -> (u, f, df)``,
    ``corners(V)``: the values of :math:`y\\omega` where the proximal map bends (for
    quadrature grading), ``dloss0``: :math:`\\ell'(0)`."""

    def value(self, u):
        raise NotImplementedError

    def prox(self, y, omega, V):
        raise NotImplementedError

    def corners(self, V):
        return ()

    dloss0: float = eqx.field(static=True, default=-0.5)


class Logistic(Loss):
    r""":math:`\ell(u) = \log(1 + e^{-u})` (proximal map: :func:`prox_terms`)."""

    dloss0: float = eqx.field(static=True, default=-0.5)

    def value(self, u):
        return jax.nn.softplus(-u)

    def prox(self, y, omega, V):
        return prox_terms(y, omega, V)

    def corners(self, V):
        return (0.0, -V)


class Square(Loss):
    r""":math:`\ell(u) = \tfrac12(1 - u)^2`: :math:`u = (y\omega + V)/(1 + V)`,
    :math:`f = (y - \omega)/(1 + V)`, :math:`\partial_\omega f = -1/(1 + V)`."""

    dloss0: float = eqx.field(static=True, default=-1.0)

    def value(self, u):
        return 0.5 * (1.0 - u) ** 2

    def prox(self, y, omega, V):
        u = (y * omega + V) / (1.0 + V)
        return u, (y - omega) / (1.0 + V), jnp.broadcast_to(-1.0 / (1.0 + V), jnp.shape(u))


class Hinge(Loss):
    r""":math:`\ell(u) = \max(0, 1 - u)`: with :math:`a = y\omega`, :math:`u = a` for
    :math:`a \ge 1`, :math:`u = 1` for :math:`1 - V \le a < 1`, :math:`u = a + V` below;
    :math:`f = y(u - a)/V`, :math:`\partial_\omega f = -1/V` on the middle piece, else 0."""

    dloss0: float = eqx.field(static=True, default=-1.0)

    def value(self, u):
        return jnp.maximum(0.0, 1.0 - u)

    def prox(self, y, omega, V):
        a = y * omega
        u = jnp.where(a >= 1.0, a, jnp.where(a >= 1.0 - V, 1.0, a + V))
        mid = (a < 1.0) & (a >= 1.0 - V)
        return u, y * (u - a) / V, jnp.where(mid, -1.0 / V, 0.0)

    def corners(self, V):
        return (1.0, 1.0 - V)
