r"""The one engine over layers: a per-layer function run by :func:`probejax.sweep.run_sweep`.

Activations come as one array ``(layers, n, d)`` (a NumPy memmap works: a chunk's
layers are read when it runs) or a list of per-layer ``(n, d)`` arrays. Each layer is
a cell of a ``layer`` shard axis (more shard axes, e.g. seeds, may follow); the
function of one cell is compiled once and run chunk by chunk, each chunk written to a
results store keyed by the config hash, so an interrupted sweep resumes and a changed
estimator, split or computation version (the caller's ``config``, e.g.
``PROBE_SWEEP_VERSION``, bumped by hand; no source text enters the hash) never reuses
old results. With ``directory=None`` the store is a temporary folder removed
afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import numpy as np

from ..core._checks import check_finite, float_dtype
from ..core._rows import Tokens
from ..io._progress import progress_bar
from ..sweep._execution import Execution
from ..sweep._grid import Axis, Grid, take
from ..sweep._runner import ChunkDone, SweepResult, run_sweep


def check_layers(X_layers) -> tuple[int, ...]:
    """``(L, n, d)`` of a ``(layers, n, d)`` array or a list of equal ``(n, d)`` arrays
    (``(L, n, T, d)`` for token activations)."""
    if isinstance(X_layers, list | tuple):
        if len(X_layers) == 0:
            raise ValueError("X_layers holds no layers.")
        shape = np.shape(X_layers[0])
        for i, M in enumerate(X_layers):
            if np.shape(M) != shape or len(shape) < 2:
                raise ValueError(
                    f"X_layers[{i}] has shape {np.shape(M)} but X_layers[0] has {shape}; "
                    "every layer must be an (n, d) array of the same shape."
                )
        return (len(X_layers), *shape)
    if getattr(X_layers, "ndim", 0) < 3:
        raise ValueError(
            "X_layers must be an array of shape (layers, n, d) or a list of (n, d) "
            f"arrays, got shape {getattr(X_layers, 'shape', type(X_layers).__name__)}."
        )
    if X_layers.shape[0] == 0:
        raise ValueError("X_layers holds no layers.")
    return tuple(int(s) for s in X_layers.shape)


def check_mask(mask, shape: tuple[int, ...]) -> np.ndarray:
    """The mask of real tokens ``(n, T)`` for token activations of ``shape``
    ``(L, n, T, d)`` (errors name both shapes)."""
    mask = np.asarray(mask, bool)
    if mask.shape != tuple(shape[1:3]):
        raise ValueError(
            f"mask has shape {mask.shape}; X_layers' examples need (n, T) = {tuple(shape[1:3])}."
        )
    return mask


def layer_inputs(X, data: dict):
    """What an estimator gets for one layer: the activations, or
    :class:`~probejax.core.Tokens` with ``data["mask"]`` when the sweep has one."""
    return Tokens(X, data["mask"]) if "mask" in data else X


def describe_estimator(estimator) -> dict:
    """What identifies an estimator in a results hash: its class, its printed form
    (fields that differ from the defaults) and the SHA-256 of its array leaves."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(eqx.filter(estimator, eqx.is_array)):
        a = np.asarray(leaf)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    cls = type(estimator)
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "repr": eqx.tree_pformat(estimator, short_arrays=True),
        "leaves": h.hexdigest(),
    }


def array_digests(data: dict) -> dict[str, str]:
    """SHA-256 (hex) of each array of ``data`` (C-order bytes), for results hashes."""
    return {k: hashlib.sha256(np.ascontiguousarray(v)).hexdigest() for k, v in data.items()}


def layer_axis(X_layers, L: int, fingerprint=None, layer_labels=None) -> Axis:
    """The ``layer`` shard axis, after checking every layer is finite (errors name it)."""
    for i in range(L):
        check_finite(take(X_layers, np.array([i]))[0], f"X_layers[{i}]")
    labels = list(range(L)) if layer_labels is None else list(layer_labels)
    return Axis("layer", X_layers, fingerprint=fingerprint, labels=labels)


class LayerSweep(NamedTuple):
    """``values``: the per-cell pytree (leading axes: layers, then any extra axes);
    ``seconds``: compute wall time per layer (its chunk's time shared among the chunk's
    cells; 0 for cells reused from the store; compilation is in
    ``result.seconds_compile``); ``result``: the run's
    :class:`~probejax.sweep.SweepResult`."""

    values: Any
    seconds: np.ndarray
    result: SweepResult


def sweep_layers(
    fn: Callable[[Any, Any], Any],
    X_layers,
    directory: str | os.PathLike | None = None,
    *,
    data: Any = None,
    config: dict | None = None,
    extra_axes: Sequence[Axis] = (),
    layer_labels=None,
    fingerprint: str | None = None,
    execution: Execution = Execution(),
    desc: str = "layers",
) -> LayerSweep:
    """Run ``fn(X_layer, cell, data) -> pytree`` on every layer (module docstring).

    **Arguments:** ``fn`` (traceable; ``X_layer`` ``(n, d)`` in the default float
    dtype, ``cell`` the dict of the extra axes' values); ``X_layers`` (or the
    :func:`layer_axis` built from them, to check and hash them once for many sweeps,
    which then ignore ``layer_labels`` and ``fingerprint``); ``directory`` of
    the results store (``None``: a temporary one); ``data`` shared by every cell;
    ``config``: everything else ``fn``'s output depends on (it enters the hash);
    ``extra_axes`` after the layer axis; ``layer_labels``, ``fingerprint`` of the
    activations (default their SHA-256); ``execution``: a
    :class:`~probejax.sweep.Execution` (its ``progress=True`` draws a bar per chunk
    naming ``desc``).
    """
    progress = execution.progress
    if isinstance(X_layers, Axis):  # built (and checked) once by a caller running many sweeps
        axis = X_layers
    else:
        axis = layer_axis(X_layers, check_layers(X_layers)[0], fingerprint, layer_labels)
    L = len(axis)
    grid = Grid([axis, *extra_axes])
    dtype = float_dtype()
    per_layer = int(np.prod([len(a) for a in extra_axes if a.kind == "shard"], dtype=int))
    cell_seconds = np.zeros(grid.n_cells)

    labels = np.asarray(axis.labels if axis.labels is not None else range(L))

    def on_chunk(event: ChunkDone):
        cell_seconds[event.cell_ids] = event.seconds / event.cells
        if callable(progress):
            progress(event)
        elif progress:
            rows = sorted({int(i) // per_layer for i in np.asarray(event.cell_ids)})
            layers = [str(labels[r]) for r in rows]
            update(event.done_cells, f"layer {','.join(layers)}")

    def cell_fn(cell, data):
        return fn(cell["layer"].astype(dtype), cell, data)

    with contextlib.ExitStack() as stack:
        update = stack.enter_context(progress_bar(desc, grid.n_cells, enabled=progress is True))
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="probejax-"))
        t0 = time.perf_counter()
        res = run_sweep(
            cell_fn,
            grid,
            directory,
            data=data,
            config=config,
            execution=execution.replace(progress=on_chunk),
        )
        if progress is True:
            print(
                f"  {desc}: {res.cells_computed} of {grid.n_cells} cells computed, "
                f"{res.cells_reused} reused, in {time.perf_counter() - t0:.1f} s "
                f"({res.seconds_compile:.1f} s compiling)",
                file=sys.stderr,
                flush=True,
            )
    return LayerSweep(res.values, cell_seconds.reshape(L, per_layer).sum(axis=1), res)
