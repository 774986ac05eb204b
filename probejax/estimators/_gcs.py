r"""GCS, the Gaussian Concept Subspace (Zhao et al., 2024, arXiv 2410.00153), as the
RAPTOR paper (arXiv 2602.00158) runs it as a baseline.

Fit :math:`K` ridge-logistic probes at :math:`\lambda = 1/C`, probe :math:`k` on its own
stratified subsample :math:`I_k` holding a fraction ``subsample`` of the examples, each on
features standardised with the subsample's own mean :math:`m_k` and standard deviation
:math:`\sigma_k` and mapped back to raw coordinates,

.. math::

    (\tilde w_k, \tilde b_k) = \arg\min \sum_{i\in I_k}
    \log\bigl(1 + e^{-y_i(\tilde w^\top \tilde x_i + \tilde b)}\bigr)
    + \tfrac{\lambda}{2}\lVert\tilde w\rVert^2, \qquad
    w_k = \tilde w_k/\sigma_k, \quad b_k = \tilde b_k - w_k^\top m_k,

then summarise :math:`\theta_k = [w_k \mid b_k] \in \mathbb R^{d+1}` per coordinate by
the mean :math:`\mu_j` and the population standard deviation :math:`s_j` over the
:math:`K` probes. The fitted probe scores with the mean, :math:`x\mapsto \mu_w^\top x +
\mu_b`, its concept vector is :math:`\mu_w/\lVert\mu_w\rVert`, and
:meth:`GCSProbe.sample` draws :math:`\theta_j \sim \mathrm{U}[\mu_j - s_j, \mu_j + s_j]`
independently per coordinate.

**Following the authors' code** (``Ziqi-Gao/RAPTOR``, ``src/raptor/probes/gcs_sampler.py``
and ``src/raptor/experiments/run_gcs.py``): subsample fraction 0.1 stratified by class,
``StandardScaler`` statistics of the subsample, ``LogisticRegression(C=1)``, the raw map
above, ``np.std`` (population) over 1000 probes, and ``_sample_ring(mu, sigma, n,
band=1)``, which draws uniformly in :math:`[\mu - s, \mu + s]` and rejects only the
inner box of half-width :math:`(\text{band}-1)s = 0`, a null set: uniform in the box.
Sampled accuracy is the mean over samples of the accuracy of :math:`\theta^\top[x|1]
\ge 0`. **Differences:** the authors split each subsample 70/30 and fit on the 70% part
(the 30% only feeds an early-stopping loop that refits the same data), so each of their
probes sees 7% of the pool: pass ``subsample=0.07`` to match that size. They stop
L-BFGS after 100 iterations; here each fit runs damped Newton to convergence. They
take :math:`\operatorname{round}(0.1\,n_c)` of each class; here the class counts follow
:func:`probejax.core._splits.stratified_split` (:math:`\lceil 0.1\,n\rceil` in all). Their
concept vector is the mean of the samples, a Monte Carlo estimate of :math:`\mu`; here it
is :math:`\mu` itself.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..core._checks import as_float_matrix, as_pm1_labels, check_lams
from ..core._probe import LinearProbe, Probe, unit
from ..core._scaler import Standardizer
from ..core._splits import stratified_split
from ..solvers._ridge_logistic import solve_ridge_logistic
from ..solvers._solver_specs import LBFGS, Newton, Solver, resolve_solver


class GCSProbe(Probe):
    """Mean and spread of a GCS ensemble of raw-coordinate probes ``[w | b]``."""

    w_mean: Float[Array, " d"]
    b_mean: Float[Array, ""]
    w_std: Float[Array, " d"]
    b_std: Float[Array, ""]

    def decision_function(self, X):
        return X @ self.w_mean + self.b_mean

    def concept_vector(self):
        return unit(self.w_mean)

    def linear(self):
        return LinearProbe(self.w_mean, self.b_mean)

    def sample(self, key: PRNGKeyArray, k: int) -> tuple[Float[Array, "k d"], Float[Array, " k"]]:
        r"""Draw ``k`` probes, each coordinate uniform in :math:`[\mu_j - s_j, \mu_j + s_j]`.

        **Returns:** ``(w, b)`` of shapes ``(k, d)`` and ``(k,)``: the ``k`` vectors
        ``[w | b]``.
        """
        return _sample(self, key, _check_count(k, "k"))

    def sampled_accuracy(self, key: PRNGKeyArray, X, y, k: int) -> Float[Array, ""]:
        """Mean accuracy on ``(X, y)`` over ``k`` sampled probes (a score >= 0 means positive).

        **Arguments:** ``key``; activations ``X`` of shape ``(n, d)``; two-class labels
        ``y`` of shape ``(n,)`` (the larger value is positive); the number of samples ``k``.
        """
        X = as_float_matrix(X)
        if X.shape[1] != self.w_mean.shape[-1]:
            raise ValueError(
                f"X has {X.shape[1]} columns but the probe was fitted on "
                f"{self.w_mean.shape[-1]} features."
            )
        y, _ = as_pm1_labels(y, X.shape[0])
        return _sampled_accuracy(self, key, X, y, _check_count(k, "k"))


@partial(jax.jit, static_argnames=("k",))
def _sample(probe: GCSProbe, key, k):
    mean = jnp.append(probe.w_mean, probe.b_mean)
    std = jnp.append(probe.w_std, probe.b_std)
    u = jax.random.uniform(key, (k, mean.shape[0]), mean.dtype, minval=-1.0, maxval=1.0)
    theta = mean + u * std
    return theta[:, :-1], theta[:, -1]


@partial(jax.jit, static_argnames=("k",))
def _sampled_accuracy(probe, key, X, y, k):
    w, b = _sample(probe, key, k)
    pred = (X @ w.T + b) >= 0
    return jnp.mean((pred == (y > 0)[:, None]).astype(X.dtype))


@partial(jax.jit, static_argnames=("standardize", "batch_size", "solver"))
def gcs_core(
    X: Float[Array, "n d"],
    y: Float[Array, " n"],
    idx: Int[Array, "K m"],
    lam: Float[Array, ""],
    *,
    standardize: bool,
    batch_size: int,
    solver: Newton | LBFGS = Newton(),
) -> GCSProbe:
    """The traceable core of :func:`fit_gcs`: one probe per row of subsample indices
    ``idx``, fitted ``batch_size`` at a time (``y`` in +-1)."""

    def one(rows):
        Xs, ys = X[rows], y[rows]
        if standardize:
            scaler = Standardizer.fit(Xs)
        else:
            scaler = Standardizer.identity(Xs.shape[1], Xs.dtype)
        sol = solve_ridge_logistic(scaler.transform(Xs), ys, lam, solver=solver)
        probe = LinearProbe(sol.w, sol.b).unstandardize(scaler)
        return jnp.append(probe.w, probe.b)

    theta = jax.lax.map(one, idx, batch_size=batch_size)
    mean, std = jnp.mean(theta, axis=0), jnp.std(theta, axis=0)
    return GCSProbe(mean[:-1], mean[-1], std[:-1], std[-1])


def _check_count(k, name: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k!r}.")
    return int(k)


def fit_gcs(
    X,
    y,
    key: PRNGKeyArray,
    *,
    n_probes: int = 1000,
    C: float = 1.0,
    subsample: float = 0.1,
    standardize: bool = True,
    batch_size: int = 64,
    solver: Solver = Newton(),
) -> GCSProbe:
    """Fit a Gaussian Concept Subspace (module docstring).

    **Arguments:**

    - ``X``: activations, shape ``(n, d)``, finite.
    - ``y``: two-class labels, shape ``(n,)``; the larger value is the positive class.
    - ``key``: PRNG key. Probe ``j`` is fitted on the held-out side of
      ``stratified_split(jax.random.split(key, n_probes)[j], y, subsample)``.
    - ``n_probes``: number of probes :math:`K`.
    - ``C``: inverse ridge strength of every probe (:math:`\\lambda = 1/C`), > 0.
    - ``subsample``: fraction of the examples per probe, in (0, 1); each class must
      keep at least one example on both sides of the split.
    - ``standardize``: standardise each subsample before its fit (the authors' default).
    - ``batch_size``: probes fitted at once (``jax.lax.map`` batch); memory grows with
      ``batch_size * subsample * n * d``.
    - ``solver``: each probe's solver, :class:`~probejax.solvers.Newton` (with its
      ``tol`` and ``max_iter``) by default; an :class:`~probejax.solvers.Auto` is
      resolved for one fit (Newton).

    **Returns:** a :class:`GCSProbe`.
    """
    X = as_float_matrix(X)
    y, _ = as_pm1_labels(y, X.shape[0])
    n_probes = _check_count(n_probes, "n_probes")
    batch_size = _check_count(batch_size, "batch_size")
    solver = resolve_solver(solver, *X.shape, grid_size=1)
    lam = 1.0 / check_lams(C, "C", scalar=True)
    y_np = np.asarray(y)
    keys = jax.random.split(key, n_probes)
    idx = jax.vmap(lambda k: stratified_split(k, y_np, subsample, where="the GCS subsample")[1])(
        keys
    )
    return gcs_core(
        X,
        y,
        idx,
        lam,
        standardize=standardize,
        batch_size=min(batch_size, n_probes),
        solver=solver,
    )
