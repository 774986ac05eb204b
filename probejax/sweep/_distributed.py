"""Several processes (hosts) sharing one sweep.

Each process runs :func:`probejax.sweep.run_sweep` with the same arguments and the same
results directory, on a filesystem every process sees. Chunk ``i`` of the sweep's
fixed chunk plan belongs to process ``i mod P``; a process computes its own chunks on
its local devices (a 1-D mesh over ``jax.local_devices()``), so no data crosses hosts
while computing. The processes meet three times: process 0 creates the store and the
others open it after; they agree on process 0's chunk size; and all wait until every
chunk is written, after which each returns the full results, read from the store.

Launch, one command per host (or per process on one host, as the tests do)::

    PROBEJAX_COORDINATOR_ADDRESS=host0:12345 PROBEJAX_NUM_PROCESSES=2 \\
    PROBEJAX_PROCESS_ID=0 python my_sweep.py      # on host 0; PROBEJAX_PROCESS_ID=1 on host 1

where ``my_sweep.py`` calls :func:`initialize_multihost` before anything touches a
device, then ``run_sweep``. Without these variables, :func:`initialize_multihost`
leaves the choice to ``jax.distributed.initialize()`` (SLURM, Open MPI and cloud TPU
set-ups are detected by JAX), and on a plain single machine it does nothing: the
sweep runs as one process. CPU processes synchronise through JAX's gloo collectives.
If a process dies, the others wait at the final barrier until JAX's timeout; the
chunks already written stay valid, and a new launch resumes from them.
"""

from __future__ import annotations

import os

import jax
import numpy as np

ENV_ADDRESS = "PROBEJAX_COORDINATOR_ADDRESS"
ENV_NUM = "PROBEJAX_NUM_PROCESSES"
ENV_ID = "PROBEJAX_PROCESS_ID"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"environment variable {name} must be an integer, got {value!r}."
        ) from None


def initialize_multihost(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    initialization_timeout: int = 300,
) -> tuple[int, int]:
    """Join a multi-process JAX run, reading the environment when arguments are missing.

    **Arguments:** ``coordinator_address`` (``host:port`` of process 0; else
    ``$PROBEJAX_COORDINATOR_ADDRESS``, else ``$JAX_COORDINATOR_ADDRESS``),
    ``num_processes`` (else ``$PROBEJAX_NUM_PROCESSES``), ``process_id`` (else
    ``$PROBEJAX_PROCESS_ID``), ``initialization_timeout`` in seconds. With none of
    them set, JAX's cluster auto-detection is tried; if it finds no cluster, nothing
    is initialised. Call it before any other JAX call that touches a device.

    **Returns:** ``(process_index, process_count)``.
    """
    address = (
        coordinator_address
        or os.environ.get(ENV_ADDRESS)
        or os.environ.get("JAX_COORDINATOR_ADDRESS")
    )
    num = num_processes if num_processes is not None else _env_int(ENV_NUM)
    pid = process_id if process_id is not None else _env_int(ENV_ID)
    if address is None and num is None and pid is None:
        try:
            jax.distributed.initialize(initialization_timeout=initialization_timeout)
        except (ValueError, RuntimeError):
            return jax.process_index(), jax.process_count()  # no cluster: one process
        return jax.process_index(), jax.process_count()
    if address is None or num is None or pid is None:
        raise ValueError(
            "a multi-process sweep needs all of the coordinator address, the number of "
            f"processes and this process's id; got address={address!r}, "
            f"num_processes={num!r}, process_id={pid!r} (arguments or ${ENV_ADDRESS}, "
            f"${ENV_NUM}, ${ENV_ID})."
        )
    if not 0 <= pid < num:
        raise ValueError(f"process_id must be in [0, {num}), got {pid}.")
    jax.distributed.initialize(
        address, num_processes=num, process_id=pid, initialization_timeout=initialization_timeout
    )
    return jax.process_index(), jax.process_count()


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier ``name`` (no-op for one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def agree(value: int) -> int:
    """Process 0's ``value`` on every process (identity for one process)."""
    if jax.process_count() == 1:
        return int(value)
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int32(value)))
