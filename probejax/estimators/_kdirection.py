r"""k-direction probes by iterative nullspace projection, and the random-direction baseline.

**INLP** (Ravfogel et al. 2020, "Null It Out", arXiv 2004.07667). Given a base estimator
with concept vectors (unit :math:`v(X, y)`), the directions are, for :math:`j = 1..k`,

.. math::

    P_{j} = I - \sum_{i<j} u_i u_i^\top, \qquad
    v_j = v\bigl(X P_j,\ y\bigr), \qquad
    u_j = \frac{P_j v_j}{\lVert P_j v_j\rVert},

so :math:`u_1 = v(X, y)` is the base's own concept vector and each later direction is the
base refitted on the data with the earlier directions projected out, re-orthogonalised
against them (Gram-Schmidt: a base that standardises its inputs can return a vector
with components along the removed directions, which the projected data do not see).
The rows :math:`u_1, \dots, u_k` are orthonormal. INLP is greedy and nested: the first
:math:`k` of :math:`k' > k` directions are the :math:`k` directions.

**The k-direction probe** reads the concept out of the projections :math:`z = W x`,
:math:`W = [u_1; \dots; u_k] \in \mathbb R^{k\times d}`, with a ridge-logistic readout on
standardised :math:`z` (scale :math:`s_z`, mean :math:`m_z`),

.. math::

    \min_{a', c}\ \sum_i \log\bigl(1 + e^{-y_i (a'^\top \tilde z_i + c)}\bigr)
    + \tfrac{\lambda_r}{2}\lVert a'\rVert^2, \qquad
    \tilde z = (z - m_z)/s_z,

and is the raw-coordinate linear probe :math:`w = W^\top a`, :math:`a = a'/s_z`,
:math:`b = c - a^\top m_z`.

**The random direction** is the null of "a probe direction": :math:`g \sim N(0, I_d)`
drawn from the key as a direction in standardised coordinates
:math:`\tilde x = (x - \mu)/\sigma` (training mean and standard deviation), i.e. the
raw-coordinate weight :math:`g/\sigma` (a weight vector maps back as every standardised
probe's does), Platt-scaled on the training data
(:func:`probejax.platt_calibrate`). Two independent isotropic directions in
:math:`\mathbb R^d` have

.. math::

    \mathbb E\,\lvert\cos(g, g')\rvert
    = \frac{\Gamma(d/2)}{\sqrt\pi\,\Gamma\bigl((d+1)/2\bigr)}
    \approx \sqrt{\frac{2}{\pi d}},

(:func:`random_abs_cosine`): the stability of random directions, exactly when the
features have equal scales (``standardize=False``, or equal :math:`\sigma`).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray
from scipy.special import gammaln

from ..core._probe import Diagnosed, LinearProbe, diagnostics, unit
from ..core._scaler import Standardizer
from ..solvers._ridge_logistic import solve_ridge_logistic
from ..solvers._solver_specs import Newton
from ._base import Estimator
from ._calibrate import platt_core
from ._logistic_ridge import LogisticRidge
from ._tuned import Standardized

KDIR_BASE_LAM = 10.0
"""The default base's ridge, :math:`\\lambda = 1/C` on standardised features (C = 0.1)."""


def default_base() -> Estimator:
    """The default INLP base: ridge logistic at ``lam = KDIR_BASE_LAM`` on standardised
    features (scikit-learn's ``C = 0.1``)."""
    return Standardized(LogisticRidge(lam=KDIR_BASE_LAM))


def project_out(X: Float[Array, "n d"], W: Float[Array, "k d"]) -> Float[Array, "n d"]:
    r""":math:`X(I - W^\top W)`: the rows of ``X`` with the span of the orthonormal rows of
    ``W`` removed (zero rows of ``W`` remove nothing)."""
    return X - (X @ W.T) @ W


def _orthogonalise(v: Float[Array, " d"], W: Float[Array, "k d"]) -> Float[Array, " d"]:
    # twice is enough (Kahan-Parlett): one pass loses orthogonality when v is nearly
    # in the span of W
    v = v - W.T @ (W @ v)
    return v - W.T @ (W @ v)


def inlp_scan(
    base: Estimator, X: Float[Array, "n d"], y: Float[Array, " n"], k: int, key: PRNGKeyArray
) -> tuple[Float[Array, "k d"], Float[Array, " k"], Bool[Array, " k"]]:
    r"""INLP with the status of every step (module docstring; traceable, ``k`` static).

    **Returns:** ``(W, retained, converged)``: the orthonormal directions ``(k, d)``;
    ``retained[j]`` :math:`= \lVert P_j v_j\rVert`, the part of the base's unit
    vector outside the earlier directions (near 0: the step found nothing new, and its
    row is zero when exactly 0); ``converged[j]``: the base's ``converged`` flag (True
    for bases without one).
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1 INLP directions, got {k}.")
    n, d = X.shape

    def step(W, inputs):
        j, key_j = inputs
        probe = base.fit(project_out(X, W), y, key_j)
        v = _orthogonalise(probe.concept_vector(), W)
        ok = diagnostics(probe).get("converged", jnp.asarray(True))
        return W.at[j].set(unit(v)), (jnp.linalg.norm(v), jnp.all(ok))

    W0 = jnp.zeros((k, d), X.dtype)
    W, (retained, converged) = jax.lax.scan(step, W0, (jnp.arange(k), jax.random.split(key, k)))
    return W, retained, converged


def inlp_directions(
    base: Estimator, X: Float[Array, "n d"], y: Float[Array, " n"], k: int, key: PRNGKeyArray
) -> Float[Array, "k d"]:
    r"""The first ``k`` INLP directions of ``base`` on ``(X, y)`` (module docstring).

    **Arguments:**

    - ``base``: any estimator whose probes have concept vectors.
    - ``X``: ``(n, d)``; ``y``: +-1 floats ``(n,)``; ``key``: split into one key per step.
    - ``k``: the number of directions (static, ``>= 1``).

    **Returns:** ``W``, ``(k, d)`` with orthonormal rows, :math:`u_1` the base's concept
    vector on ``(X, y)``. Traceable: one ``lax.scan`` over a fixed ``(k, d)`` buffer
    (see :func:`inlp_scan` for the per-step status).
    """
    return inlp_scan(base, X, y, k, key)[0]


def readout(
    W: Float[Array, "k d"], X: Float[Array, "n d"], y: Float[Array, " n"], lam: Float[Array, ""]
) -> tuple[LinearProbe, Float[Array, " k"], Bool[Array, ""]]:
    r"""The ridge-logistic readout of the projections :math:`z = XW^\top` (module
    docstring) as a raw-coordinate probe :math:`(W^\top a, b)`. Zero rows of ``W`` give
    constant zero features, which get zero weight: a masked ``W`` is the readout of its
    nonzero rows.

    **Returns:** ``(probe, a, converged)``.
    """
    Z = X @ W.T
    scaler = Standardizer.fit(Z)
    sol = solve_ridge_logistic(
        scaler.transform(Z), y, jnp.asarray(lam, X.dtype), fit_intercept=True, solver=Newton()
    )
    on_z = LinearProbe(sol.w, sol.b).unstandardize(scaler)
    return LinearProbe(W.T @ on_z.w, on_z.b), on_z.w, sol.converged


class KDirection(Estimator):
    r"""The k-direction probe: ``k`` INLP directions of ``base`` (default
    :func:`default_base`), read out by ridge logistic at ``readout_lam`` on the
    standardised projections (module docstring).

    The probe carries ``directions`` ``(k, d)``, ``readout_weights`` ``(k,)`` (the
    weights :math:`a` of :math:`z`), ``retained`` ``(k,)`` (:func:`inlp_scan`) and
    ``converged`` (every base fit and the readout).
    """

    k: int = eqx.field(default=3, static=True)
    base: Estimator = eqx.field(default_factory=default_base)
    readout_lam: Float[Array, ""] = eqx.field(default=1.0, converter=jnp.asarray)

    def __check_init__(self):
        if not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"KDirection.k must be an int >= 1, got {self.k!r}.")

    def fit(self, X, y, key=None):
        key = jax.random.key(0) if key is None else key
        W, retained, converged = inlp_scan(self.base, X, y, self.k, key)
        probe, a, readout_ok = readout(W, X, y, self.readout_lam)
        info = {
            "directions": W,
            "readout_weights": a,
            "retained": retained,
            "converged": jnp.all(converged) & readout_ok,
        }
        return Diagnosed(probe, info)


def random_abs_cosine(d) -> np.ndarray:
    r""":math:`\mathbb E\lvert\cos(g, g')\rvert` for independent :math:`g, g' \sim N(0, I_d)`:
    :math:`\Gamma(d/2)/(\sqrt\pi\,\Gamma((d+1)/2)) = \sqrt{2/(\pi d)}\,(1 + 1/(4d) +
    O(d^{-2}))` (``2/pi`` at ``d = 2``, ``1/2`` at ``d = 3``). The cosine is distributed
    as the first coordinate of a uniform point on the sphere, with density proportional
    to :math:`(1 - t^2)^{(d-3)/2}` on :math:`[-1, 1]`. A closed form for reports, in
    float64 on the host (``d`` an int or an array of them, ``>= 2``)."""
    d = np.asarray(d, np.float64)
    if np.any(d < 2):
        raise ValueError(f"d must be >= 2 dimensions, got {d}.")
    return np.exp(gammaln(d / 2) - gammaln((d + 1) / 2)) / math.sqrt(math.pi)


class RandomDirection(Estimator):
    r"""A random unit direction drawn from the key, Platt-scaled on the training data
    (module docstring): the null for a probe's accuracy and, through
    :func:`random_abs_cosine`, for its stability. ``standardize``: draw the direction
    isotropically in the training data's standardised coordinates (raw weight
    :math:`g/\sigma`; the default) rather than in raw coordinates. The key is required."""

    standardize: bool = eqx.field(default=True, static=True)

    def fit(self, X, y, key=None):
        if key is None:
            raise ValueError("RandomDirection.fit needs a PRNG key (its direction is random).")
        n, d = X.shape
        scaler = Standardizer.fit(X) if self.standardize else Standardizer.binary(X)
        g = jax.random.normal(key, (d,), X.dtype)
        return platt_core(g, scaler.transform(X), y).unstandardize(scaler)
