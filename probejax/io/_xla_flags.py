"""XLA flags probejax needs on the CPU, set before JAX starts its backend.

**A deadlock in batched linear algebra.** jaxlib's CPU LAPACK kernels (``eigh``,
``cholesky``, triangular solves, ...) split a batch of matrices into tasks on XLA's
intra-op thread pool and wait for them (``ParallelBatchMap``). XLA's default
concurrency-optimised scheduler lets several such kernels of one program run at once;
when every pool thread is then waiting for tasks that no free thread can run, the
program hangs, every thread in ``futex_do_wait`` (seen with jaxlib 0.10.2 on 2 cores:
stability resampling and vmapped solves on real layers, ``d = 576``; a program with
six independent batched solves of ``48 x 96 x 96`` hangs within 40 calls). With
``--xla_cpu_enable_concurrency_optimized_scheduler=false`` the same program runs to
completion every time, in the same time. The flag makes the deadlock rarer, not
impossible: a fresh ``probejax reproduce`` on 2 cores still hung once with it, in the
batched triangular solves of GCS's 1000 vmapped fits (both pool threads again in
``ParallelBatchMap``); ``--xla_cpu_multi_thread_eigen=false`` and the legacy runtime
do not help. A complete fix keeps two batched LAPACK kernels from running at once.
:func:`set_xla_flags` adds that flag to
``XLA_FLAGS`` unless the user's ``XLA_FLAGS`` already sets it; it takes effect only if
JAX has not run a computation yet (``import probejax`` first).
"""

from __future__ import annotations

import os

FLAGS = {"--xla_cpu_enable_concurrency_optimized_scheduler": "false"}


def set_xla_flags() -> str:
    """Add :data:`FLAGS` to ``XLA_FLAGS`` (a flag the user set is kept as set);
    returns the resulting value."""
    flags = os.environ.get("XLA_FLAGS", "")
    for name, value in FLAGS.items():
        if name not in flags:
            flags = f"{flags} {name}={value}".strip()
    os.environ["XLA_FLAGS"] = flags
    return flags
