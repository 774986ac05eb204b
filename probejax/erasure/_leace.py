r"""LEACE: the closed-form least-squares concept eraser.

LEACE (Belrose et al. 2023, "LEACE: Perfect linear concept erasure in closed form",
arXiv 2306.03819). For features :math:`X \in \mathbb R^d` with mean :math:`\mu`,
covariance :math:`\Sigma_{XX}` and a concept :math:`Z` (a class label, encoded as the
indicators :math:`z \in \{0, 1\}^{K-1}` of classes :math:`1..K-1`) with cross-covariance
:math:`\Sigma_{XZ} \in \mathbb R^{d\times(K-1)}`, let

.. math::

    W = \bigl(\Sigma_{XX}^{1/2}\bigr)^{+}, \qquad
    P = Q Q^\top \text{ the orthogonal projection onto } \operatorname{col}(W\Sigma_{XZ}),

with :math:`Q` the left singular vectors of :math:`W\Sigma_{XZ}`. The eraser is

.. math::

    r(x) = x - W^{+} P W (x - \mu) = x - U V^\top (x - \mu),
    \qquad U = W^{+} Q,\ V = W Q \in \mathbb R^{d\times k},

of rank :math:`k \le K - 1`. Guarantees (population, and exactly in-sample for the
moments it was fitted on):

- :math:`\operatorname{Cov}(r(X), Z) = 0`, equivalently the class-conditional means
  of :math:`r(X)` are all equal; hence no linear predictor of :math:`Z` from
  :math:`r(X)` has a lower convex loss (squared, logistic, ...) than the best constant;
- :math:`r` is idempotent (:math:`V^\top U = I_k`);
- among affine erasers with that property, :math:`r` moves the data least,
  minimising :math:`\mathbb E\lVert r(X) - X\rVert_M^2` (the paper's theorem).

Numerics: :math:`\Sigma_{XX} = E\Lambda E^\top` by ``eigh``; eigenvalues at or below
``rtol`` times the largest are treated as zero (a rank-deficient covariance, e.g.
:math:`d > n`: :math:`W` and :math:`W^+` act on its range only, where
:math:`\Sigma_{XZ}` lies); singular values of :math:`W\Sigma_{XZ}` at or below ``rtol``
times the largest are dropped (their columns of :math:`U, V` are zero).

:class:`LeaceMoments` accumulates the moments over chunks (pairwise merging of centred
sums, Chan et al. 1979, which does not lose the precision that
:math:`X^\top X - n\mu\mu^\top` does), so a layer larger than memory is erased exactly
as the one-shot :func:`fit_leace`, which is one chunk of it.
"""

from __future__ import annotations

from collections.abc import Iterable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class Eraser(eqx.Module):
    r"""An affine eraser :math:`r(x) = x - U V^\top (x - \mu)` (module docstring).

    - ``mean``: :math:`\mu`, ``(d,)``.
    - ``U``, ``V``: ``(d, k)``; zero columns erase nothing.

    Call it on ``(..., d)`` arrays.
    """

    mean: Float[Array, " d"]
    U: Float[Array, "d k"]
    V: Float[Array, "d k"]

    def __call__(self, X: Float[Array, "... d"]) -> Float[Array, "... d"]:
        if X.shape[-1] != self.mean.shape[0]:
            raise ValueError(
                f"the eraser is for d = {self.mean.shape[0]} features, got X of shape {X.shape}."
            )
        return X - ((X - self.mean) @ self.V) @ self.U.T

    @property
    def rank(self) -> Array:
        """The number of erased directions :math:`k` (nonzero columns)."""
        return jnp.sum(jnp.any(self.U != 0, axis=0) & jnp.any(self.V != 0, axis=0))

    def projection(self) -> Float[Array, "d d"]:
        r"""The oblique projection :math:`U V^\top` that :math:`r` removes from
        :math:`x - \mu` (``(d, d)``; formed on demand)."""
        return self.U @ self.V.T

    def pullback(self, w: Float[Array, "... d"]) -> Float[Array, "... d"]:
        r""":math:`(I - V U^\top) w`: a weight vector (or gradient) ``w`` read on erased
        inputs, as the weight on raw inputs (:math:`w^\top r(x)` is linear in
        :math:`x` with that gradient)."""
        return w - (w @ self.U) @ self.V.T


def _leace(n, mean_x, S_xx, S_xz, rtol):
    dtype = S_xx.dtype
    sigma = S_xx / n
    sigma = (sigma + sigma.T) / 2
    lam, E = jnp.linalg.eigh(sigma)
    keep = lam > rtol * jnp.max(lam)
    safe = jnp.where(keep, lam, 1.0)
    root = jnp.where(keep, jnp.sqrt(safe), 0.0)
    inv_root = jnp.where(keep, 1.0 / jnp.sqrt(safe), 0.0)
    W = (E * inv_root) @ E.T
    W_pinv = (E * root) @ E.T
    M = W @ (S_xz / n)
    Q, s, _ = jnp.linalg.svd(M, full_matrices=False)
    Q = Q * (s > rtol * jnp.max(s, initial=0.0)).astype(dtype)
    return Eraser(mean_x, W_pinv @ Q, W @ Q)


_leace_jit = jax.jit(_leace)


def _indicators(z: np.ndarray, classes: int, dtype) -> np.ndarray:
    return (z[:, None] == np.arange(1, classes)).astype(dtype)


def _encode(z, n: int, classes: int, where: str) -> np.ndarray:
    """``z`` as integer classes ``0..classes-1`` (two classes: also -1/+1 and bool)."""
    z = np.asarray(z)
    if z.ndim != 1 or z.shape[0] != n:
        raise ValueError(f"{where}: z must have shape ({n},) to match X, got {z.shape}.")
    if z.dtype.kind == "f" and not np.all(np.isfinite(z)):
        raise ValueError(f"{where}: z contains NaN or infinite values.")
    if z.dtype == bool:
        z = z.astype(np.int64)
    if classes == 2 and np.all(np.isin(z, (-1, 1))):
        z = (z > 0).astype(np.int64)
    if not np.all(np.isin(z, np.arange(classes))):
        bad = np.setdiff1d(np.unique(z), np.arange(classes))[:5]
        raise ValueError(
            f"{where}: z has values {bad.tolist()} outside the classes 0..{classes - 1}"
            + (" (or -1/+1)" if classes == 2 else "")
            + "."
        )
    return z.astype(np.int64)


def _check_X(X, where: str, d: int | None = None):
    X = jnp.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{where}: X must be (n, d), got shape {X.shape}.")
    if d is not None and X.shape[1] != d:
        raise ValueError(f"{where}: X has d = {X.shape[1]} features, the moments have {d}.")
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(jnp.result_type(float))
    if not bool(jnp.all(jnp.isfinite(X))):
        raise ValueError(f"{where}: X contains NaN or infinite values.")
    return X


@jax.jit
def _merge(n_a, mean_a, mz_a, Sxx_a, Sxz_a, X, Z):
    n_b = jnp.asarray(X.shape[0], X.dtype)
    mean_b, mz_b = X.mean(0), Z.mean(0)
    Xc, Zc = X - mean_b, Z - mz_b
    n = n_a + n_b
    dx, dz = mean_b - mean_a, mz_b - mz_a
    f = n_a * n_b / n
    return (
        n,
        mean_a + dx * (n_b / n),
        mz_a + dz * (n_b / n),
        Sxx_a + Xc.T @ Xc + f * jnp.outer(dx, dx),
        Sxz_a + Xc.T @ Zc + f * jnp.outer(dx, dz),
    )


class LeaceMoments(eqx.Module):
    r"""The moments LEACE needs, accumulated chunk by chunk (module docstring).

    - ``n``: examples seen; ``mean_x`` ``(d,)``; ``mean_z`` ``(K-1,)``, the share of
      classes ``1..K-1``;
    - ``S_xx`` ``(d, d)``, ``S_xz`` ``(d, K-1)``: centred sums of products
      :math:`\sum_i (x_i - \bar x)(x_i - \bar x)^\top`, :math:`\sum_i (x_i - \bar
      x)(z_i - \bar z)^\top`;
    - ``classes``: :math:`K \ge 2` (static).

    Immutable: :meth:`update` returns the moments with one more chunk.
    """

    n: Float[Array, ""]
    mean_x: Float[Array, " d"]
    mean_z: Float[Array, " m"]
    S_xx: Float[Array, "d d"]
    S_xz: Float[Array, "d m"]
    classes: int = eqx.field(static=True)

    @classmethod
    def init(cls, d: int, classes: int = 2, dtype=None) -> LeaceMoments:
        """Empty moments for ``d`` features and ``classes`` classes."""
        if int(d) < 1:
            raise ValueError(f"d={d} must be >= 1.")
        if int(classes) < 2:
            raise ValueError(f"classes={classes} must be >= 2: erasure needs two classes.")
        dtype = jnp.result_type(float) if dtype is None else dtype
        d, m = int(d), int(classes) - 1
        z = jnp.zeros
        return cls(
            z((), dtype), z(d, dtype), z(m, dtype), z((d, d), dtype), z((d, m), dtype), int(classes)
        )

    def update(self, X: Float[Array, "b d"], z) -> LeaceMoments:
        """The moments with the chunk ``(X, z)`` added.

        **Arguments:** ``X`` ``(b, d)`` (finite); ``z`` ``(b,)`` classes ``0..K-1``
        (two classes: also -1/+1 or bool).

        **Returns:** new :class:`LeaceMoments`.
        """
        X = _check_X(X, "LeaceMoments.update", self.mean_x.shape[0]).astype(self.S_xx.dtype)
        if X.shape[0] == 0:
            return self
        zi = _encode(z, X.shape[0], self.classes, "LeaceMoments.update")
        Z = jnp.asarray(_indicators(zi, self.classes, np.dtype(self.S_xx.dtype)))
        out = _merge(self.n, self.mean_x, self.mean_z, self.S_xx, self.S_xz, X, Z)
        return LeaceMoments(*out, self.classes)

    @classmethod
    def accumulate(
        cls, source, z=None, *, classes: int = 2, batch_size: int = 4096, dtype=None
    ) -> LeaceMoments:
        """Moments of a whole source, read ``batch_size`` rows at a time.

        **Arguments:**

        - ``source``: an ``(n, d)`` array-like read by row slices (a layer of a
          :class:`probejax.io.LayerStack`, a ``numpy`` memory map) with ``z`` its
          ``(n,)`` classes; or, with ``z=None``, any iterable of ``(X_chunk, z_chunk)``.
        - ``classes``: :math:`K`; ``batch_size``: rows per chunk of an array source.
        - ``dtype``: of the moments (default: JAX's default float).

        **Returns:** :class:`LeaceMoments`.
        """
        if z is None:
            chunks: Iterable = source
        else:
            if int(batch_size) < 1:
                raise ValueError(f"batch_size={batch_size} must be >= 1.")
            n = source.shape[0]
            z = np.asarray(z)
            if z.shape != (n,):
                raise ValueError(f"z must have shape ({n},) to match the source, got {z.shape}.")
            chunks = (
                (source[i : i + batch_size], z[i : i + batch_size])
                for i in range(0, n, int(batch_size))
            )
        moments = None
        for X, zc in chunks:
            X = np.asarray(X)
            if moments is None:
                if X.ndim != 2:
                    raise ValueError(f"chunks must be (b, d) arrays, got shape {X.shape}.")
                moments = cls.init(X.shape[1], classes, dtype)
            moments = moments.update(X, zc)
        if moments is None:
            raise ValueError("the source has no chunks.")
        return moments

    def eraser(self, rtol: float | None = None) -> Eraser:
        """The LEACE :class:`Eraser` of these moments (module docstring).

        **Arguments:** ``rtol``: relative eigenvalue and singular-value tolerance
        (default ``d * eps`` of the moments' dtype).

        **Returns:** :class:`Eraser` of rank :math:`\\le K - 1`.
        """
        n = float(self.n)
        if n < 2:
            raise ValueError(f"the moments hold n = {n:g} examples; LEACE needs at least 2.")
        counts = np.concatenate([[n - float(self.mean_z.sum()) * n], np.asarray(self.mean_z) * n])
        present = int(np.sum(np.round(counts) > 0))
        if present < 2:
            raise ValueError(
                f"z has one class only (counts per class {np.round(counts).astype(int).tolist()}):"
                " there is nothing to erase; give examples of at least two classes."
            )
        d = self.mean_x.shape[0]
        if rtol is None:
            rtol = d * float(jnp.finfo(self.S_xx.dtype).eps)
        if not rtol >= 0:
            raise ValueError(f"rtol={rtol} must be >= 0.")
        return _leace_jit(
            self.n, self.mean_x, self.S_xx, self.S_xz, jnp.asarray(rtol, self.S_xx.dtype)
        )


def _classes(z) -> tuple[np.ndarray, int]:
    z = np.asarray(z)
    values = np.unique(z)
    if z.dtype.kind == "f" and not np.all(np.isfinite(z)):
        raise ValueError("z contains NaN or infinite values.")
    if values.size < 2:
        raise ValueError(
            f"z has one class only ({values.tolist()}): there is nothing to erase; give "
            "examples of at least two classes."
        )
    if values.size == 2:
        return (z == values[1]).astype(np.int64), 2
    if z.dtype.kind not in "iub" and not np.all(values == np.round(values)):
        raise ValueError(
            f"z has {values.size} distinct non-integer values: a multi-class z must hold "
            "integer classes 0..K-1."
        )
    if values.min() < 0:
        raise ValueError(f"z has negative classes {values[values < 0][:5].tolist()}: use 0..K-1.")
    return z.astype(np.int64), int(values.max()) + 1


def fit_leace(X: Float[Array, "n d"], z, *, rtol: float | None = None) -> Eraser:
    r"""The LEACE eraser of concept ``z`` on ``X`` (module docstring).

    **Arguments:**

    - ``X``: ``(n, d)`` finite features (``d > n`` is fine: the covariance may be
      rank-deficient).
    - ``z``: ``(n,)`` concept labels: two values (0/1, -1/+1, any two: the larger is
      class 1) or integer classes ``0..K-1`` (one-hot inside; rank :math:`\le K-1`).
    - ``rtol``: relative tolerance of the eigenvalues of :math:`\Sigma_{XX}` and the
      singular values of :math:`W\Sigma_{XZ}` (default ``d * eps``).

    **Returns:** :class:`Eraser`; on ``X`` its outputs have equal class-conditional
    means and zero cross-covariance with ``z``.
    """
    X = _check_X(X, "fit_leace")
    z = np.asarray(z)
    if z.ndim != 1 or z.shape[0] != X.shape[0]:
        raise ValueError(f"fit_leace: z must have shape ({X.shape[0]},) to match X, got {z.shape}.")
    zi, classes = _classes(z)
    return LeaceMoments.init(X.shape[1], classes, X.dtype).update(X, zi).eraser(rtol)
