r"""How many cells one device takes per chunk, from a memory budget.

The budget is in bytes **per device** and bounds the compiled program of one chunk:
its arguments (the chunk's inputs and the replicated data), outputs and temporaries,
as XLA reports them (``jax.jit(...).lower(...).compile().memory_analysis()``). With
:math:`b(k)` those bytes at :math:`k` cells per device, :math:`D` the replicated bytes
and :math:`K` the cells per device that would hold the whole sweep in one chunk:

1. compile at :math:`k = K`; if :math:`b(K) \le B` that is the plan (one compilation,
   the usual case for small sweeps);
2. else take :math:`c = (b(K) - D)/K` per cell, :math:`k = \lfloor (B - D)/c\rfloor`,
   compile at :math:`k` and check :math:`b(k) \le B`, shrinking :math:`k` in proportion
   to the excess until it fits (a fixed part of the program makes :math:`c` an
   under-estimate at first; the check corrects it).

When XLA gives no memory analysis, a cell's bytes are taken as ``IO_FACTOR`` times the
size of its inputs and outputs (the solvers here hold a few copies of their inputs).
With the analysis, a budget too small for one cell per device is an error naming both
numbers (without it, such a budget runs one cell per device). The chosen
chunk is one compiled program reused for every chunk (the last is padded).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

IO_FACTOR = 4
CPU_DEFAULT_BUDGET = 2 * 1024**3
DEVICE_FRACTION = 0.5


class ChunkPlan(NamedTuple):
    """``cells_per_device``; ``program_bytes``: the compiled chunk's bytes per device
    (``None`` when XLA does not say); ``source``: ``"memory_analysis"``, ``"io_sizes"``
    or ``"given"``; ``compiles``: programs compiled to decide."""

    cells_per_device: int
    program_bytes: int | None
    source: str
    compiles: int


def compiled_bytes(compiled: Any) -> int | None:
    """Arguments + outputs + temporaries - aliased bytes of a compiled program (per
    device), or ``None`` when the backend gives no memory analysis."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # backends without the analysis raise various errors
        return None
    if m is None:
        return None
    total = (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    )
    return int(total) if total > 0 else None


def default_budget(device: jax.Device) -> int:
    """Half of the device's memory limit when it reports one (GPU, TPU), else 2 GiB."""
    try:
        stats = device.memory_stats()
    except Exception:
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(DEVICE_FRACTION * stats["bytes_limit"])
    return CPU_DEFAULT_BUDGET


def plan_chunk(
    compile_at: Callable[[int], Any],
    *,
    budget: int,
    max_per_device: int,
    data_bytes: int,
    io_bytes_per_cell: int,
    given: int | None = None,
) -> tuple[ChunkPlan, Any]:
    """Choose the cells per device (module docstring) and compile that program.

    **Arguments:**

    - ``compile_at``: ``k -> compiled program`` for ``k`` cells per device.
    - ``budget``: bytes per device.
    - ``max_per_device``: no more cells per device than this (the whole sweep).
    - ``data_bytes``: bytes of the replicated data (counted once, not per cell).
    - ``io_bytes_per_cell``: input plus output bytes of one cell (fallback estimate).
    - ``given``: a fixed number of cells per device (no estimate; still compiled).

    **Returns:** ``(ChunkPlan, compiled program)``.
    """
    if given is not None:
        k = max(1, min(int(given), max_per_device))
        compiled = compile_at(k)
        return ChunkPlan(k, compiled_bytes(compiled), "given", 1), compiled
    budget = int(budget)
    k, compiles = max_per_device, 0
    while True:
        compiled = compile_at(k)
        compiles += 1
        bk = compiled_bytes(compiled)
        if bk is None:  # no analysis: inputs and outputs times a safety factor
            fits = max(1, (budget - data_bytes) // max(IO_FACTOR * io_bytes_per_cell, 1))
            if fits >= k or k == 1:
                return ChunkPlan(k, None, "io_sizes", compiles), compiled
            k = int(fits)
            continue
        if bk <= budget:
            return ChunkPlan(k, bk, "memory_analysis", compiles), compiled
        if k == 1:
            raise ValueError(
                f"memory_budget_bytes={budget} is below the bytes of one cell per device: "
                f"{bk} (XLA memory analysis; of which replicated data {data_bytes}). Raise "
                "the budget, or make a cell smaller (move an axis from 'vmap' to 'shard')."
            )
        per_cell = max((bk - data_bytes) / k, 1.0)
        guess = int((budget - data_bytes) // per_cell)
        k = max(1, min(k - 1, guess, int(k * budget / bk)))
