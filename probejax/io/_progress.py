"""Progress display for stages that take more than a few seconds.

:func:`progress_bar` is a context manager yielding ``update(done, note="")``: on an
interactive terminal a rich progress bar (description, bar, count, elapsed, remaining,
and a note such as the layers just finished); elsewhere (logs, CI, a pipe) one plain
line per update on stderr, so a redirected run still shows where it is.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_bar(
    desc: str, total: int, *, unit: str = "cells", enabled: bool = True
) -> Iterator[Callable[[int, str], None]]:
    """Show the progress of ``total`` units of work named ``desc`` (module docstring).

    **Arguments:** ``desc`` (what is being done, e.g. ``"raptor stability"``),
    ``total`` units, the ``unit`` name, ``enabled`` (``False``: a silent no-op).

    **Yields:** ``update(done, note="")`` with the units done so far.
    """
    if not enabled:
        yield lambda done, note="": None
        return
    if sys.stderr.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
        )
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task(desc, total=total, note="")
            yield lambda done, note="": bar.update(task, completed=done, note=note)
        return
    t0 = time.perf_counter()

    def line(done: int, note: str = "") -> None:
        elapsed = time.perf_counter() - t0
        eta = elapsed / done * (total - done) if 0 < done < total else None
        tail = f", about {eta:.0f} s left" if eta is not None else ""
        extra = f" ({note})" if note else ""
        print(
            f"  {desc}: {done}/{total} {unit}{extra}, {elapsed:.1f} s{tail}",
            file=sys.stderr,
            flush=True,
        )

    yield line
