"""Input validation shared by the public entry points.

Every check raises ``ValueError`` whose message names the argument, what is wrong
and where (shape, count, first offending index), and what would be valid. Checks on
values are skipped for JAX tracers (inside ``jit``/``vmap`` the values are unknown);
shape checks always run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def float_dtype():
    """The working float dtype: float64 when ``jax_enable_x64`` is on, else float32."""
    return jnp.zeros(()).dtype


def _is_tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def as_float_matrix(X, name: str = "X", *, ndim: int = 2) -> jax.Array:
    """Cast ``X`` to the working float dtype after checking its rank and finiteness."""
    if not hasattr(X, "shape"):
        X = np.asarray(X)
    if X.ndim != ndim:
        raise ValueError(
            f"{name} must be a {ndim}-D array, got shape {tuple(X.shape)} ({X.ndim}-D)."
        )
    if not _is_tracer(X):
        Xn = np.asarray(X)
        if not np.issubdtype(Xn.dtype, np.number) or np.issubdtype(Xn.dtype, np.complexfloating):
            raise ValueError(f"{name} must hold real numbers, got dtype {Xn.dtype}.")
        check_finite(Xn, name)
    return jnp.asarray(X, dtype=float_dtype())


def check_finite(X, name: str = "X") -> None:
    """Raise if ``X`` holds NaN or Inf, giving their count and the first index."""
    if _is_tracer(X):
        return
    Xn = np.asarray(X)
    bad = ~np.isfinite(Xn)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or Inf); "
            f"the first is at index {first} (value {Xn[first]!r}). "
            "Remove or impute them before fitting; nothing is dropped silently."
        )


def as_pm1_labels(y, n: int | None = None, name: str = "y") -> tuple[jax.Array, np.ndarray]:
    """Map binary labels to a float array of +-1.

    The larger of the two distinct values becomes +1 (scikit-learn's ``classes_[1]``).

    **Returns:** ``(y_pm1, classes)`` with ``classes`` the two original values in order.
    """
    if not hasattr(y, "shape"):
        y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per example), got shape {tuple(y.shape)}.")
    if n is not None and y.shape[0] != n:
        raise ValueError(
            f"{name} has {y.shape[0]} labels but X has {n} rows; they must match one to one."
        )
    if _is_tracer(y):
        return jnp.asarray(y, float_dtype()), np.array([-1.0, 1.0])
    yn = np.asarray(y)
    classes = np.unique(yn)
    if classes.size != 2:
        shown = classes[:10].tolist()
        raise ValueError(
            f"{name} must hold exactly two classes for a binary probe, got {classes.size}: "
            f"{shown}{' ...' if classes.size > 10 else ''}."
        )
    return jnp.asarray(np.where(yn == classes[1], 1.0, -1.0), float_dtype()), classes


def check_lams(lams, name: str = "lams", *, scalar: bool = False) -> jax.Array:
    """Check a ridge strength (``scalar=True``) or a 1-D grid of them: finite and > 0."""
    if not hasattr(lams, "shape"):
        lams = np.asarray(lams, dtype=float)
    if scalar and lams.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {tuple(lams.shape)}.")
    if not scalar and lams.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D grid of ridge strengths, got shape {tuple(lams.shape)}."
        )
    if not scalar and lams.shape[0] == 0:
        raise ValueError(f"{name} is empty; give at least one ridge strength.")
    if not _is_tracer(lams):
        ln = np.atleast_1d(np.asarray(lams, dtype=float))
        bad = ~(np.isfinite(ln) & (ln > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name} must be finite and > 0; entry {i} is {float(ln[i])!r}.")
    return jnp.asarray(lams, float_dtype())


def check_fraction(value: float, name: str) -> float:
    if not (0.0 < float(value) < 1.0):
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}.")
    return float(value)


def check_two_classes(y_pm1: np.ndarray, where: str) -> None:
    """Raise if a split of the data holds fewer than two classes."""
    y_pm1 = np.asarray(y_pm1)
    npos = int((y_pm1 > 0).sum())
    nneg = int(y_pm1.size - npos)
    if npos == 0 or nneg == 0:
        raise ValueError(
            f"the {where} split has {npos} positive and {nneg} negative examples; "
            "both classes are needed. Use more data or change the split fractions."
        )
