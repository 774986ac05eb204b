"""How a sweep runs on the hardware: one frozen spec shared by every sweep.

Nothing in :class:`Execution` changes what a sweep computes, only how it is laid out
on the devices, so it never enters a results hash: a sweep interrupted on one machine
resumes on another with other settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

CELL_BATCHING = ("auto", "map", "vmap")


@dataclasses.dataclass(frozen=True)
class Execution:
    """Layout of a sweep's cells on the devices, validated when built.

    - ``cells_per_device``: cells per device in one compiled chunk (``None``: as many
      as ``memory_budget_bytes`` allows, from the compiled program's memory estimate).
    - ``memory_budget_bytes``: bytes per device for one chunk's program (``None``:
      half the device's memory where it reports it, else 2 GiB).
    - ``mesh``: a 1-D :class:`jax.sharding.Mesh` of this process's devices (``None``:
      every local device).
    - ``cell_batching``: ``"map"`` runs a device's cells one after another inside the
      program (each stops at its own iteration count; ``lax.cond`` stays a branch),
      ``"vmap"`` vectorises them, ``"auto"`` is ``"map"`` on CPU and ``"vmap"``
      elsewhere.
    - ``progress``: ``True`` prints a line per chunk to stderr; a callable receives a
      :class:`~probejax.sweep.ChunkDone` per chunk (raising from it stops the sweep;
      the chunk is already written); ``False`` is silent.
    """

    cells_per_device: int | None = None
    memory_budget_bytes: int | None = None
    mesh: Any = None
    cell_batching: str = "auto"
    progress: bool | Callable = True

    def __post_init__(self):
        if self.cell_batching not in CELL_BATCHING:
            raise ValueError(
                f"Execution.cell_batching must be one of {CELL_BATCHING}, "
                f"got {self.cell_batching!r}."
            )
        for name in ("cells_per_device", "memory_budget_bytes"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"Execution.{name} must be a positive integer or None, got {v!r}.")
        if not (isinstance(self.progress, bool) or callable(self.progress)):
            raise ValueError(
                f"Execution.progress must be True, False or a callable, got {self.progress!r}."
            )

    def replace(self, **changes) -> Execution:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)
