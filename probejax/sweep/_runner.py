r"""Run a function over a grid in memory-bounded chunks sharded over devices, writing
each finished chunk to a results store so that an interrupted sweep resumes.

The user writes ``fn(cell, data) -> pytree`` for **one cell**: ``cell`` maps every
``"shard"`` axis name to its value at that cell and every ``"vmap"`` axis name to the
whole axis; ``data`` is a pytree of arrays shared by all cells (labels, a fixed design).
The runner

1. hashes the grid (values by content), the data, the user ``config`` and the
   precision into the config hash (:func:`probejax.io.config_hash` of
   :func:`sweep_description`; nothing from the source), and opens the results store
   with it (:class:`probejax.sweep.SweepStore`: another config in the directory is an
   error);
2. picks the cells per device from the memory budget (:mod:`._memory`) and compiles
   one program: ``jax.shard_map`` over a 1-D mesh of the local devices, each device
   running ``vmap`` (or ``lax.map``) of ``fn`` over its block of cells;
3. cuts the cells into fixed chunks of (cells per device) x (devices) cells, skips the
   cells the store already holds, pads each chunk by repeating its last cell, runs it,
   and writes the real cells' outputs to the store, reporting progress per chunk;
4. reads the whole result back from the store: leaves of shape
   ``grid.shape + (leaf shape of one cell)``.

Cells are independent, so the results do not depend on the number of devices or the
chunk size (up to floating-point reassociation inside batched kernels). With several
processes (:mod:`._distributed`), chunk ``i`` belongs to process ``i mod P``.

The config hash cannot see inside ``fn``, and it does not read the source either:
settings that change its output and are not array values of the grid or the data belong
in ``config``, together with an explicit version of the computation, bumped by hand
whenever ``fn`` changes what it returns (the built-in sweeps put e.g.
``{"sweep": "probe_sweep/3", ...}`` there). Editing a docstring or a comment therefore
resumes a store; a bumped version is another config (:class:`StoreMismatchError` in
the same directory).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ..io._results import config_hash, jsonable
from ._distributed import agree, barrier
from ._execution import Execution
from ._grid import Grid, content_sha256, row_spec
from ._memory import ChunkPlan, default_budget, plan_chunk
from ._store import MANIFEST, SweepStore

_CELL = "_cell"  # the flat cell index travels with every chunk (batch axis with no shard axis)


class ChunkDone(NamedTuple):
    """A progress event: chunk ``chunk`` (0-based) of the ``n_chunks`` this process
    computes in this run finished ``cells`` cells (flat grid indices ``cell_ids``) in
    ``seconds`` and wrote ``path``; ``done_cells`` of ``n_cells`` are now finished (as
    far as this process knows)."""

    chunk: int
    n_chunks: int
    cells: int
    done_cells: int
    n_cells: int
    seconds: float
    path: Path
    cell_ids: np.ndarray | None = None


class SweepResult(NamedTuple):
    """What :func:`run_sweep` returns.

    - ``values``: ``fn``'s output pytree, NumPy leaves of shape
      ``grid.shape + (leaf shape of one cell)``.
    - ``grid``, ``config_hash``, ``directory``.
    - ``cells_computed``: cells this call computed; ``cells_reused``: cells found
      finished in the store at the start.
    - ``plan``: the :class:`ChunkPlan` (cells per device, program bytes per device;
      ``None`` when every cell was already done and nothing was compiled);
      ``devices``: devices of the mesh; ``chunk_cells``: cells per chunk.
    - ``seconds_compile``, ``seconds_compute``: wall time compiling (including the
      memory estimate) and running chunks (including transfers and writes).
    """

    values: Any
    grid: Grid
    config_hash: str
    directory: Path
    cells_computed: int
    cells_reused: int
    plan: ChunkPlan | None
    devices: int
    chunk_cells: int
    seconds_compile: float
    seconds_compute: float


def _sds(shape, dtype, sharding=None):
    return jax.ShapeDtypeStruct(
        tuple(shape), jax.dtypes.canonicalize_dtype(dtype), sharding=sharding
    )


def _nbytes(shape, dtype) -> int:
    return int(np.prod(shape, dtype=np.int64)) * jax.dtypes.canonicalize_dtype(dtype).itemsize


def _local_mesh(mesh: Mesh | None) -> Mesh:
    if mesh is None:
        return Mesh(np.array(jax.local_devices()), ("cells",))
    if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
        raise ValueError(
            f"mesh must be a 1-D jax.sharding.Mesh, got {mesh!r}; e.g. "
            "Mesh(np.array(jax.local_devices()), ('cells',))."
        )
    here = jax.process_index()
    foreign = [d for d in mesh.devices.flat if d.process_index != here]
    if foreign:
        raise ValueError(
            f"mesh holds devices of other processes ({foreign[:3]}...); a sweep shards over "
            "this process's devices only (processes split the chunks between them)."
        )
    return mesh


def describe_data(data) -> list[dict]:
    """Path, shape, dtype and content hash of every leaf of ``data``."""
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(data)[0]:
        arr = np.asarray(leaf)
        out.append(
            {
                "path": jax.tree_util.keystr(path),
                "shape": list(arr.shape),
                "dtype": arr.dtype.str,
                "sha256": content_sha256(arr.reshape(1, *arr.shape)),
            }
        )
    return out


def sweep_description(grid: Grid, data, config: dict | None) -> dict:
    """Everything the config hash covers: grid, data, user config, precision."""
    try:
        config_json = json.loads(json.dumps(jsonable(config or {}), allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"config must be JSON-able (dicts, lists, numbers, strings): {e}"
        ) from None
    return {
        "grid": grid.describe(),
        "data": describe_data(data),
        "config": config_json,
        "x64": bool(jax.config.jax_enable_x64),
    }


def _output_spec(fn, grid: Grid, data) -> tuple[list[dict], Any]:
    cell = {a.name: _sds(*row_spec(a.values)) for a in grid.shard_axes}
    cell |= {
        a.name: _sds((len(a), *row_spec(a.values)[0]), row_spec(a.values)[1])
        for a in grid.vmap_axes
    }
    data_abs = jax.tree.map(lambda x: _sds(np.shape(x), np.asarray(x).dtype), data)
    out = jax.eval_shape(fn, cell, data_abs)
    flat, treedef = jax.tree_util.tree_flatten_with_path(out)
    if not flat:
        raise ValueError("fn returned no arrays; a sweep needs at least one output leaf.")
    leaves = []
    for path, leaf in flat:
        name = jax.tree_util.keystr(path) or "<output>"
        try:
            dtype = np.dtype(leaf.dtype)
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in "biufc":
            raise ValueError(
                f"fn's output leaf {name} has dtype {leaf.dtype}; results are stored as "
                "NumPy arrays of bool, integer, float or complex dtype (return "
                "jax.random.key_data(key) instead of a typed key)."
            )
        leaves.append({"path": name, "shape": list(leaf.shape), "dtype": dtype.str})
    return leaves, treedef


def _open_store(directory, h, description, grid, leaves) -> tuple[SweepStore, np.ndarray]:
    """Open (process 0: create) the store and read which cells are finished.

    Every process reads the finished cells before the barrier, when no process of this
    run has written yet, so all of them see the same state.
    """
    make = lambda create: SweepStore(directory, h, description, grid.shape, leaves, create=create)
    store, done = None, np.zeros(grid.n_cells, bool)
    if (Path(directory) / MANIFEST).exists():
        store = make(False)  # a mismatch raises in every process, before any wait
        done = store.done_mask()
    elif jax.process_index() == 0:
        store = make(True)
    barrier(f"probejax-sweep-open-{h[:16]}")
    return (store if store is not None else make(False)), done


def _program(fn, grid: Grid, mesh: Mesh, cell_batching: str):
    axis = mesh.axis_names[0]
    shard_names = [a.name for a in grid.shard_axes]

    def one(c, vmapped, data):
        return fn({k: c[k] for k in shard_names} | vmapped, data)

    def block(cells, vmapped, data):
        if cell_batching == "vmap":
            return jax.vmap(one, in_axes=(0, None, None))(cells, vmapped, data)
        return jax.lax.map(lambda c: one(c, vmapped, data), cells)

    sharded = jax.shard_map(
        block, mesh=mesh, in_specs=(P(axis), P(), P()), out_specs=P(axis), check_vma=False
    )
    return jax.jit(sharded)


def _print_progress(event: ChunkDone, started: float, first_done: int) -> None:
    elapsed = time.perf_counter() - started
    rate = (event.done_cells - first_done) / max(elapsed, 1e-9)
    left = event.n_cells - event.done_cells
    eta = f", eta {left / rate:.0f} s" if rate > 0 and left > 0 else ""
    print(
        f"  chunk {event.chunk + 1}/{event.n_chunks}: {event.cells} cells in "
        f"{event.seconds:.2f} s; {event.done_cells}/{event.n_cells} done{eta}",
        file=sys.stderr,
        flush=True,
    )


def batching(cell_batching: str) -> str:
    """``"auto"``: cells of a device one after another on CPU (``"map"``: each stops at
    its own iteration count, plain GEMMs), vectorised elsewhere (``"vmap"``)."""
    if cell_batching == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return cell_batching


def run_sweep(
    fn: Callable[[dict, Any], Any],
    grid: Grid,
    directory: str | os.PathLike,
    *,
    data: Any = None,
    config: dict | None = None,
    execution: Execution = Execution(),
) -> SweepResult:
    """Run ``fn`` on every cell of ``grid``, resumably (module docstring).

    **Arguments:**

    - ``fn``: ``fn(cell, data) -> pytree of arrays`` for one cell, jit-able; ``cell``
      is a dict of the shard axes' values at the cell and the vmap axes' arrays.
    - ``grid``: a :class:`Grid`.
    - ``directory``: the results store (created if missing; see
      :class:`SweepStore`). Every process of a multi-process sweep gives the same one.
    - ``data``: pytree of arrays shared by every cell (replicated on every device).
    - ``config``: JSON-able dict of everything else that determines ``fn``'s output
      (solver settings, and the computation's explicit version, e.g. ``{"sweep":
      "my_sweep/1"}``, bumped by hand when ``fn`` changes); it enters the config hash,
      the source text does not.
    - ``execution``: how the cells are laid out on the devices and reported
      (:class:`~probejax.sweep.Execution`: cells per device or a memory budget, the
      mesh, ``"map"`` or ``"vmap"`` of a device's cells, progress); it never enters
      the hash.

    **Returns:** a :class:`SweepResult`.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}.")
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be a probejax.sweep.Grid, got {type(grid).__name__}.")
    if not isinstance(execution, Execution):
        raise TypeError(
            f"execution must be a probejax.sweep.Execution, got {type(execution).__name__}."
        )
    cell_batching = batching(execution.cell_batching)
    memory_budget_bytes = execution.memory_budget_bytes
    cells_per_device = execution.cells_per_device
    progress = execution.progress
    data = {} if data is None else data
    mesh = _local_mesh(execution.mesh)
    n_dev = mesh.size
    pid, n_proc = jax.process_index(), jax.process_count()
    report = _print_progress if progress is True else None
    callback = progress if callable(progress) else None

    description = sweep_description(grid, data, config)
    h = config_hash(description)
    leaves, treedef = _output_spec(fn, grid, data)
    store, done = _open_store(directory, h, description, grid, leaves)
    reused = int(done.sum())
    n_cells = grid.n_cells
    if reused == n_cells:  # nothing to compute: no compilation (same decision everywhere)
        if progress is True:
            print(f"sweep {h[:12]} in {store.directory}: all {n_cells} cells done", file=sys.stderr)
        barrier(f"probejax-sweep-done-{h[:16]}")
        values = jax.tree_util.tree_unflatten(treedef, store.load())
        return SweepResult(
            values, grid, h, store.directory, 0, reused, None, mesh.size, 0, 0.0, 0.0
        )

    t0 = time.perf_counter()
    program = _program(fn, grid, mesh, cell_batching)
    axis = mesh.axis_names[0]
    split = NamedSharding(mesh, P(axis))
    whole = NamedSharding(mesh, P())
    row = {a.name: row_spec(a.values) for a in grid.shard_axes}
    vmapped = {a.name: np.asarray(a.values) for a in grid.vmap_axes}
    data_host = jax.tree.map(np.asarray, data)
    vmapped_abs = {k: _sds(v.shape, v.dtype, whole) for k, v in vmapped.items()}
    data_abs = jax.tree.map(lambda x: _sds(x.shape, x.dtype, whole), data_host)

    def compile_at(k):
        cells = {k_: _sds((k * n_dev, *s), dt, split) for k_, (s, dt) in row.items()}
        cells[_CELL] = _sds((k * n_dev,), np.int32, split)
        return program.lower(cells, vmapped_abs, data_abs).compile()

    budget = memory_budget_bytes or default_budget(mesh.devices.flat[0])
    io_cell = sum(_nbytes(s, dt) for s, dt in row.values())
    io_cell += sum(_nbytes(leaf["shape"], np.dtype(leaf["dtype"])) for leaf in leaves)
    data_bytes = sum(_nbytes(v.shape, v.dtype) for v in jax.tree.leaves((vmapped, data_host)))
    plan, compiled = plan_chunk(
        compile_at,
        budget=int(budget),
        max_per_device=math.ceil(n_cells / n_dev),
        data_bytes=data_bytes,
        io_bytes_per_cell=io_cell,
        given=cells_per_device,
    )
    k = agree(plan.cells_per_device)
    if k != plan.cells_per_device:
        compiled, plan = compile_at(k), plan._replace(cells_per_device=k)
    seconds_compile = time.perf_counter() - t0

    chunk_cells = k * n_dev
    starts = range(0, n_cells, chunk_cells)
    todo = []
    for i, s in enumerate(starts):
        if i % n_proc != pid:
            continue
        cells = np.arange(s, min(s + chunk_cells, n_cells))
        cells = cells[~done[cells]]
        if cells.size:
            todo.append(cells)

    def host_inputs(cells):
        padded = np.concatenate([cells, np.full(chunk_cells - cells.size, cells[-1])])
        vals = grid.cell_values(padded)
        vals = {n: np.asarray(v, jax.dtypes.canonicalize_dtype(row[n][1])) for n, v in vals.items()}
        vals[_CELL] = padded.astype(np.int32)
        return vals

    if report is not None:
        print(
            f"sweep {h[:12]} in {store.directory}: {n_cells} cells, {reused} already done, "
            f"{sum(c.size for c in todo)} to compute here in {len(todo)} chunks of "
            f"{chunk_cells} ({k} per device x {n_dev} devices"
            + (f", process {pid}/{n_proc}" if n_proc > 1 else "")
            + f"); compiled in {seconds_compile:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    t1 = time.perf_counter()
    vm_dev = jax.device_put(vmapped, whole)
    data_dev = jax.device_put(data_host, whole)
    known = reused
    nxt = host_inputs(todo[0]) if todo else None
    for i, cells in enumerate(todo):
        tc = time.perf_counter()
        out = compiled(jax.device_put(nxt, split), vm_dev, data_dev)
        nxt = host_inputs(todo[i + 1]) if i + 1 < len(todo) else None  # overlaps the device
        host = [np.asarray(x)[: cells.size] for x in jax.tree.leaves(out)]
        del out
        path = store.write_chunk(cells, host)
        known += cells.size
        event = ChunkDone(
            i, len(todo), cells.size, known, n_cells, time.perf_counter() - tc, path, cells
        )
        if report is not None:
            report(event, t1, reused)
        if callback is not None:
            callback(event)
    seconds_compute = time.perf_counter() - t1
    barrier(f"probejax-sweep-done-{h[:16]}")
    values = jax.tree_util.tree_unflatten(treedef, store.load())
    return SweepResult(
        values=values,
        grid=grid,
        config_hash=h,
        directory=store.directory,
        cells_computed=known - reused,
        cells_reused=reused,
        plan=plan,
        devices=n_dev,
        chunk_cells=chunk_cells,
        seconds_compile=seconds_compile,
        seconds_compute=seconds_compute,
    )


def load_sweep(directory: str | os.PathLike) -> dict[str, np.ndarray]:
    """The results in a store as ``{leaf path: array}`` without the function (for
    plotting from files). Raises if the sweep is unfinished."""
    from ._store import open_existing

    store = open_existing(directory)
    return {leaf["path"]: arr for leaf, arr in zip(store.leaves, store.load(), strict=True)}
