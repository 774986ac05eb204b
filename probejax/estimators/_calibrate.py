r"""Platt scaling: turn a direction into a probe with calibrated probabilities.

The non-logistic baselines (mass-mean, LDA, PCA) only give a direction :math:`v`. Their
scale :math:`a` and offset :math:`c` come from a one-dimensional logistic regression of
the labels on the training scores :math:`s_i = v^\top x_i` (Platt, 1999),

.. math::

    \min_{a', c}\; \sum_{i=1}^n \log\bigl(1 + e^{-y_i (a' t_i + c')}\bigr)
    + \tfrac{\lambda}{2} a'^2, \qquad t_i = \frac{s_i - \bar s}{\operatorname{sd}(s)},
    \qquad \lambda = 10^{-6}\, n,

fitted on the standardised score :math:`t` so that the tiny ridge (which only keeps the
slope finite on separable data) means the same thing whatever the norm of :math:`v`.
Mapped back, :math:`a = a'/\operatorname{sd}(s)` and :math:`c = c' - a\bar s`, and the
probe is :math:`x \mapsto a\, v^\top x + c`. Its ``predict_proba`` is therefore
:math:`\sigma(a\,v^\top x + c)`: probabilities calibrated **on the training data**, so
they are optimistic on held-out data when the direction itself overfits.

The concept vector is :math:`\operatorname{sign}(a)\, v/\lVert v\rVert`; :math:`a > 0`
whenever the positive class scores higher along :math:`v`, which every baseline here
arranges.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..core._checks import as_float_matrix, as_pm1_labels
from ..core._probe import LinearProbe
from ..solvers._ridge_logistic import solve_ridge_logistic
from ..solvers._solver_specs import Newton

PLATT_RIDGE = 1e-6


def platt_core(
    direction: Float[Array, " d"], X: Float[Array, "n d"], y: Float[Array, " n"]
) -> LinearProbe:
    """The traceable core of :func:`platt_calibrate`: no input checks, ``y`` in +-1."""
    n = X.shape[0]
    s = X @ direction
    mean = jnp.mean(s)
    sd = jnp.sqrt(jnp.mean((s - mean) ** 2))
    sd = jnp.where(sd > 0, sd, 1.0)
    t = (s - mean) / sd
    sol = solve_ridge_logistic(
        t[:, None], y, jnp.asarray(PLATT_RIDGE * n, X.dtype), fit_intercept=True, solver=Newton()
    )
    a = sol.w[0] / sd
    return LinearProbe(a * direction, sol.b - a * mean)


_platt_jit = jax.jit(platt_core)


def platt_calibrate(direction, X, y) -> LinearProbe:
    r"""Scale and offset a fixed direction by a 1-D logistic fit (see module docstring).

    **Arguments:**

    - ``direction``: the estimator's direction :math:`v`, shape ``(d,)``, finite. Its norm
      and sign do not matter: the fitted :math:`a` absorbs both.
    - ``X``: training activations, shape ``(n, d)``, finite.
    - ``y``: two-class labels, shape ``(n,)`` (e.g. +-1); the larger value is positive.

    **Returns:** a :class:`LinearProbe` :math:`(a v, c)`.
    """
    X = as_float_matrix(X)
    direction = as_float_matrix(direction, "direction", ndim=1)
    if direction.shape[0] != X.shape[1]:
        raise ValueError(
            f"direction has {direction.shape[0]} entries but X has {X.shape[1]} columns "
            f"(shape {tuple(X.shape)}); they must match."
        )
    y, _ = as_pm1_labels(y, X.shape[0])
    return _platt_jit(direction, X, y)
