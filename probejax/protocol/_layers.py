r"""Sweeps over the layers of a model: one fit per layer, memory bounded by chunks.

Activations come as one array ``(layers, n, d)`` (a NumPy memmap works: only one chunk
is read at a time) or as a list of per-layer ``(n, d)`` arrays. Layers are processed
``chunk_size`` at a time by one compiled, vmapped program; the last chunk is padded by
repeating its final layer so that every chunk reuses the same compilation. Results
come back as one pytree whose leaves have a leading ``layers`` axis.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from ..core._checks import as_float_matrix
from ._raptor import (
    RAPTOR_C_GRID,
    RaptorConfig,
    RaptorResult,
    RaptorSplits,
    check_raptor_inputs,
    raptor_fit_split,
)


def _n_layers(X_layers) -> int:
    if isinstance(X_layers, (list, tuple)):
        return len(X_layers)
    if getattr(X_layers, "ndim", None) != 3:
        raise ValueError(
            "X_layers must be an array of shape (layers, n, d) or a list of (n, d) arrays, "
            f"got shape {getattr(X_layers, 'shape', type(X_layers).__name__)}."
        )
    return X_layers.shape[0]


def _layer(X_layers, i: int):
    return as_float_matrix(X_layers[i], f"X_layers[{i}]")


class LayerMap(NamedTuple):
    """``results``: the per-layer pytree; ``seconds``: wall time per layer (its chunk's
    time divided among the chunk's layers; the first chunk includes compilation)."""

    results: object
    seconds: np.ndarray


def map_layers(
    fn: Callable[[Array], object], X_layers: Array | Sequence[Array], chunk_size: int = 8
) -> LayerMap:
    """Apply a jittable per-layer ``fn(X_layer) -> pytree`` to every layer, in chunks.

    Every layer is checked (shape ``(n, d)`` equal across layers, finite values) as its
    chunk is read; errors name the layer.
    """
    L = _n_layers(X_layers)
    if L == 0:
        raise ValueError("X_layers holds no layers.")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    chunk_size = min(int(chunk_size), L)
    shape = None
    batched = eqx.filter_jit(jax.vmap(fn))
    outs, seconds = [], np.zeros(L)
    for start in range(0, L, chunk_size):
        idx = list(range(start, min(start + chunk_size, L)))
        mats = [_layer(X_layers, i) for i in idx]
        for i, M in zip(idx, mats, strict=False):
            if shape is None:
                shape = M.shape
            elif M.shape != shape:
                raise ValueError(
                    f"X_layers[{i}] has shape {M.shape} but X_layers[0] has {shape}; "
                    "every layer must have the same (n, d)."
                )
        mats += [mats[-1]] * (chunk_size - len(mats))
        t0 = time.perf_counter()
        out = jax.block_until_ready(batched(jax.numpy.stack(mats)))
        seconds[idx] = (time.perf_counter() - t0) / len(idx)
        outs.append(jax.tree.map(lambda a, k=len(idx): np.asarray(a)[:k], out))
    results = jax.tree.map(lambda *a: np.concatenate(a), *outs)
    return LayerMap(results, seconds)


class RaptorLayers(NamedTuple):
    results: RaptorResult
    splits: RaptorSplits
    seconds: np.ndarray


def raptor_layers(
    X_layers,
    y,
    key: PRNGKeyArray | None = None,
    *,
    Cs=RAPTOR_C_GRID,
    config: RaptorConfig = RaptorConfig(),
    splits: RaptorSplits | None = None,
    chunk_size: int = 8,
) -> RaptorLayers:
    """The RAPTOR protocol on every layer, with one split shared by all layers (as the
    authors do). Arguments as :func:`probejax.fit_raptor`, plus ``chunk_size`` layers
    per compiled call.

    **Returns:** ``RaptorLayers(results, splits, seconds)``; ``results`` leaves have a
    leading ``layers`` axis.
    """
    X0 = _layer(X_layers, 0) if _n_layers(X_layers) else None
    if X0 is None:
        raise ValueError("X_layers holds no layers.")
    _, y_pm1, lams, splits = check_raptor_inputs(X0, y, Cs, splits, key, config)
    fn = lambda X: raptor_fit_split(X, y_pm1, splits, lams, config)
    out = map_layers(fn, X_layers, chunk_size)
    return RaptorLayers(out.results, splits, out.seconds)
