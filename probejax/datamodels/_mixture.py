r"""A two-class Gaussian mixture (shared or per-class covariance in one eigenbasis): one data model for simulations
and for the mixture theory (:mod:`probejax.theory`).

Labels :math:`y \in \{+1, -1\}` with priors :math:`(\pi_+, \pi_-)`; given :math:`y`,

.. math::

    x = \mu_y + \Sigma^{1/2} z, \qquad z \sim \mathcal N(0, I_d), \qquad
    \Sigma = U \operatorname{diag}(\omega) U^\top .

The theory needs the spectrum :math:`\omega` and the means' projections
:math:`U^\top\mu_\pm` only (through their products, :class:`probejax.theory.Spectrum`); ``U`` is kept for sampling and for observables in other
coordinates (e.g. a probe's raw, unstandardised coordinates :math:`w/\sigma`, with the
per-feature ``scale`` :math:`\sigma` of the standardisation that produced ``x``).

:meth:`GaussianMixture.from_activations` estimates the model from a pool of activations
as a probe sees them: features standardised by the pool's mean and standard deviation
(``scale`` keeps the standard deviations), class priors and class means of the pool,
and the pooled within-class covariance
:math:`\hat\Sigma = \tfrac1{n}\sum_i (x_i - \hat\mu_{y_i})(x_i - \hat\mu_{y_i})^\top`
(divisor :math:`n`: these are the exact moments of the pool itself, the distribution a
probe trained on examples drawn from the pool sees), optionally shrunk towards
:math:`(\operatorname{tr}\hat\Sigma/d) I` with the Ledoit-Wolf (2004) intensity, and
optionally reduced to its top ``rank`` eigenpairs (the discarded variance is dropped;
use it when the pool is smaller than :math:`d`). The pool's class means carry sampling
noise of covariance :math:`\Sigma/N_k`, whose contribution to every squared projection
(:math:`\omega_i/N_k` on average) would read as signal at a weakly separable layer;
``debias`` removes it from the theory's quadratic forms.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..core._checks import float_dtype

SHRINKAGE = ("none", "ledoit_wolf", "nonlinear")


class GaussianMixture(eqx.Module):
    r"""Two Gaussian clusters with shared covariance :math:`U\operatorname{diag}(\omega)U^\top`.

    Fields (array leaves): ``priors`` ``(2,)`` for labels ``(+1, -1)``; ``means`` ``(2, d)``
    (row 0 the :math:`y = +1` mean); ``eigvals`` ``(d,)`` (:math:`\omega \ge 0`);
    ``eigvecs`` ``(d, d)`` (columns :math:`u_i`); ``scale`` ``(d,)`` the standard deviations
    the features were divided by (ones for data that were never standardised);
    ``mean_noise`` ``(2,)``: :math:`\nu_k` when ``means`` are estimates whose noise has
    covariance :math:`\nu_k\Sigma` (class means of :math:`N_k` examples: :math:`1/N_k`),
    which the theory removes from its quadratic forms in the means (zeros: exact means);
    ``class_eigvals`` ``(2, d)``: each class's variances :math:`(U^\top\Sigma_k U)_{ii}`
    (both rows equal to ``eigvals`` for a shared covariance; per-class rows make the
    class covariances :math:`U\operatorname{diag}(\omega_k)U^\top`, which share the
    eigenbasis)."""

    priors: Float[Array, " classes"]
    means: Float[Array, "2 d"]
    eigvals: Float[Array, " d"]
    eigvecs: Float[Array, "d d"]
    scale: Float[Array, " d"]
    mean_noise: Float[Array, " classes"]
    class_eigvals: Float[Array, "2 d"]

    @property
    def d(self) -> int:
        return self.means.shape[-1]

    @property
    def projections(self) -> Float[Array, "2 d"]:
        """:math:`(U^\\top\\mu_+, U^\\top\\mu_-)`, the means in the eigenbasis."""
        return self.means @ self.eigvecs

    @property
    def raw_weights(self) -> Float[Array, " d"]:
        """:math:`e_i = \\sum_j U_{ji}^2/\\sigma_j^2`, the diagonal of
        :math:`U^\\top D^{-2} U` (:math:`D = \\operatorname{diag}(\\sigma)`)."""
        return (self.eigvecs**2).T @ (1.0 / self.scale**2)

    def bayes_direction(self) -> Float[Array, " d"]:
        """:math:`\\Sigma^{+}(\\mu_+ - \\mu_-)` (pseudo-inverse on a singular spectrum)."""
        dp = self.projections[0] - self.projections[1]
        inv = jnp.where(self.eigvals > 0, 1.0 / jnp.where(self.eigvals > 0, self.eigvals, 1), 0)
        return self.eigvecs @ (inv * dp)

    def sample(
        self, key: PRNGKeyArray, n: int, *, balanced: bool = False
    ) -> tuple[Float[Array, "n d"], Float[Array, " n"]]:
        """Draw ``n`` examples: labels from the priors (``balanced``: exactly
        ``ceil(n/2)`` positives first, then negatives). **Returns** ``(X, y)``, ``y`` in +-1."""
        k_y, k_z = jax.random.split(key)
        dtype = float_dtype()
        if balanced:
            y = jnp.where(jnp.arange(n) < (n + 1) // 2, 1.0, -1.0).astype(dtype)
        else:
            y = jnp.where(jax.random.uniform(k_y, (n,)) < self.priors[0], 1.0, -1.0).astype(dtype)
        z = jax.random.normal(k_z, (n, self.d), dtype)
        pos = y[:, None] > 0
        sd = jnp.sqrt(jnp.maximum(jnp.where(pos, self.class_eigvals[0], self.class_eigvals[1]), 0))
        noise = (z * sd) @ self.eigvecs.T
        mean = jnp.where(pos, self.means[0], self.means[1])
        return mean + noise, y

    @classmethod
    def isotropic(cls, mu: Float[Array, " d"], sigma2: float = 1.0, prior: float = 0.5):
        """Means :math:`\\pm\\mu`, covariance :math:`\\sigma^2 I`."""
        mu = jnp.asarray(mu, float_dtype())
        d = mu.shape[0]
        return cls(
            priors=jnp.asarray([prior, 1.0 - prior], mu.dtype),
            means=jnp.stack([mu, -mu]),
            eigvals=jnp.full((d,), sigma2, mu.dtype),
            eigvecs=jnp.eye(d, dtype=mu.dtype),
            scale=jnp.ones((d,), mu.dtype),
            mean_noise=jnp.zeros((2,), mu.dtype),
            class_eigvals=jnp.full((2, d), sigma2, mu.dtype),
        )

    @classmethod
    def from_spectrum(cls, eigvals, means, priors=(0.5, 0.5), eigvecs=None, class_eigvals=None):
        """Model with the given spectrum, means ``(2, d)`` and priors (eigenbasis
        ``eigvecs``, default the identity; ``class_eigvals`` ``(2, d)`` per-class variances,
        default both ``eigvals``, in which case ``eigvals`` is their prior-weighted mean)."""
        dtype = float_dtype()
        eigvals = jnp.asarray(eigvals, dtype)
        d = eigvals.shape[0]
        if class_eigvals is None:
            class_eigvals = jnp.stack([eigvals, eigvals])
        else:
            class_eigvals = jnp.asarray(class_eigvals, dtype)
            eigvals = jnp.asarray(priors, dtype) @ class_eigvals
        return cls(
            priors=jnp.asarray(priors, dtype),
            means=jnp.asarray(means, dtype),
            eigvals=eigvals,
            eigvecs=jnp.eye(d, dtype=dtype) if eigvecs is None else jnp.asarray(eigvecs, dtype),
            scale=jnp.ones((d,), dtype),
            mean_noise=jnp.zeros((2,), dtype),
            class_eigvals=class_eigvals,
        )

    @classmethod
    def from_activations(
        cls,
        X,
        y,
        *,
        standardize: bool = True,
        shrinkage: str = "none",
        rank: int | None = None,
        debias: bool = True,
        per_class: bool = False,
    ) -> GaussianMixture:
        """Estimate the mixture from a pool (module docstring).

        **Arguments:** ``X`` ``(n_pool, d)`` activations; ``y`` ``(n_pool,)`` labels in
        ``{0, 1}`` or ``{-1, +1}`` (1 / +1 is the positive class); ``standardize`` by the
        pool's mean and standard deviation (a constant feature keeps scale 1);
        ``shrinkage`` ``"none"`` or ``"ledoit_wolf"``; ``rank`` keep the top ``rank``
        eigenpairs (``None``: all); ``debias``: record ``mean_noise`` :math:`= 1/N_k` so
        that the theory predicts for the population the pool was drawn from (unbiased
        quadratic forms of the class means) rather than for the pool's own means;
        ``per_class``: keep each class's variances in the pooled eigenbasis,
        :math:`(U^\\top\\hat\\Sigma_k U)_{ii}` (``class_eigvals``), instead of the pooled ones.

        **Returns:** a :class:`GaussianMixture` in the (standardised) coordinates.
        """
        X = np.asarray(X, np.float64)
        y = np.asarray(y)
        if X.ndim != 2:
            raise ValueError(f"X must be an (n_pool, d) matrix, got shape {X.shape}.")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}.")
        if shrinkage not in SHRINKAGE:
            raise ValueError(f"shrinkage must be one of {SHRINKAGE}, got {shrinkage!r}.")
        pos = y > 0
        if pos.all() or not pos.any():
            raise ValueError("y must contain both classes (1/+1 and 0/-1).")
        if not np.all(np.isfinite(X)):
            raise ValueError("X must be finite.")
        n, d = X.shape
        if standardize:
            sd = X.std(axis=0)
            sd = np.where(sd > 0, sd, 1.0)
            X = (X - X.mean(axis=0)) / sd
        else:
            sd = np.ones(d)
        means = np.stack([X[pos].mean(axis=0), X[~pos].mean(axis=0)])
        R = X - np.where(pos[:, None], means[0], means[1])
        S = R.T @ R / n
        if shrinkage == "ledoit_wolf":
            S = _ledoit_wolf(R, S)
        w, U = np.linalg.eigh(S)
        if shrinkage == "nonlinear":
            w = _nonlinear_shrinkage(w, n - 2)
        w, U = np.maximum(w[::-1], 0.0), U[:, ::-1]
        if per_class:
            cls_w = np.stack(
                [np.einsum("ni,ni->i", R[m] @ U, R[m] @ U) / m.sum() for m in (pos, ~pos)]
            )
            pooled = np.einsum("ni,ni->i", R @ U, R @ U) / n
            cls_w = cls_w * np.where(pooled > 0, w / np.where(pooled > 0, pooled, 1), 0)
        else:
            cls_w = np.stack([w, w])
        if rank is not None:
            if not 1 <= int(rank) <= d:
                raise ValueError(f"rank must lie in [1, {d}], got {rank!r}.")
            w = np.where(np.arange(d) < int(rank), w, 0.0)
            cls_w = np.where(np.arange(d) < int(rank), cls_w, 0.0)
        dtype = float_dtype()
        return cls(
            priors=jnp.asarray([pos.mean(), 1.0 - pos.mean()], dtype),
            means=jnp.asarray(means, dtype),
            eigvals=jnp.asarray(w, dtype),
            eigvecs=jnp.asarray(U, dtype),
            scale=jnp.asarray(sd, dtype),
            mean_noise=jnp.asarray(
                [1.0 / pos.sum(), 1.0 / (~pos).sum()] if debias else [0.0, 0.0], dtype
            ),
            class_eigvals=jnp.asarray(cls_w, dtype),
        )


def _nonlinear_shrinkage(lam: np.ndarray, n: int) -> np.ndarray:
    r"""Ledoit and Wolf's (2020) analytical nonlinear shrinkage of sample eigenvalues
    ``lam`` (ascending, from ``n`` effective samples, :math:`p \le n`): the estimates of
    :math:`u_i^\top\Sigma u_i` for the sample eigenvectors :math:`u_i`,
    :math:`\lambda_i / ((\pi c\lambda_i\tilde f_i)^2 + (1 - c - \pi c\lambda_i
    \mathcal H\tilde f_i)^2)`, :math:`c = p/n`, with the Epanechnikov kernel density
    :math:`\tilde f` of the spectrum and its Hilbert transform (bandwidth
    :math:`n^{-1/3}\lambda_j`)."""
    p = lam.shape[0]
    if p > n:
        raise ValueError(f"nonlinear shrinkage needs d <= n - 2, got d = {p}, n - 2 = {n}.")
    lam = np.maximum(lam, 1e-12 * lam.max())
    L = np.tile(lam, (p, 1)).T
    H = n ** (-1 / 3) * L.T
    x = (L - L.T) / H
    r5 = np.sqrt(5.0)
    f = (3 / 4 / r5) * np.mean(np.maximum(1 - x**2 / 5, 0) / H, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        hf = (-3 / 10 / np.pi) * x + (3 / 4 / r5 / np.pi) * (1 - x**2 / 5) * np.log(
            np.abs((r5 - x) / (r5 + x))
        )
    edge = np.isclose(np.abs(x), r5)
    hf[edge] = (-3 / 10 / np.pi) * x[edge]
    Hf = np.mean(hf / H, axis=1)
    c = p / n
    return lam / ((np.pi * c * lam * f) ** 2 + (1 - c - np.pi * c * lam * Hf) ** 2)


def _ledoit_wolf(R: np.ndarray, S: np.ndarray) -> np.ndarray:
    r"""Ledoit-Wolf (2004) shrinkage of ``S = R^T R / n`` towards :math:`(\operatorname{tr}S/d) I`:
    intensity :math:`\min(1, \beta^2/\delta^2)` with
    :math:`\delta^2 = \lVert S - \nu I\rVert_F^2/d`,
    :math:`\beta^2 = \tfrac{1}{n^2 d}\sum_i \lVert r_i r_i^\top - S\rVert_F^2`."""
    n, d = R.shape
    nu = np.trace(S) / d
    delta2 = np.sum((S - nu * np.eye(d)) ** 2) / d
    sq = np.sum(R**2, axis=1)
    beta2 = (np.sum(sq**2) - n * np.sum(S**2)) / (n**2 * d)
    t = 0.0 if delta2 <= 0 else min(1.0, max(beta2, 0.0) / delta2)
    return (1 - t) * S + t * nu * np.eye(d)
