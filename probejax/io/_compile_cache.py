"""The user cache folder, and a persistent cache of compiled programs inside it.

Every probejax sweep builds its programs afresh (a RAPTOR grid fit per layer chunk, a
stability run, a baseline), so JAX compiles them again on every call, in a new process
and in the same one alike: a small sweep's time is mostly compilation.
JAX's persistent compilation cache keeps each compiled executable on disk, keyed by a
hash of the program, the jaxlib version, the backend, the devices and the XLA flags,
and loads it instead of compiling when the same program comes again. A program is the same whenever the
shapes and settings are, so reruns, resumed sweeps, a second dataset of the same size
and the test suite all hit it. ``benchmarks/compile_cache.py`` measures it.

:func:`enable_compile_cache` points JAX at ``<cache root>/xla/jax-<version>-<machine>``:
the machine tag hashes the CPU model and instruction-set flags, because a CPU
executable is compiled for the host's instruction set and must not be loaded on
another kind of machine sharing the home folder. The command line enables it for
every command; library users call it once (a notebook's first cell). Entries are
written and read under a file lock, so processes sharing the folder never read a
half-written entry, and the least recently used entries are evicted past
``max_bytes``. JAX writes an entry in place, not through a temporary file: a process
killed in the middle of that write leaves a truncated entry, which later runs report
in a warning ("Error reading persistent compilation cache entry") and compile afresh;
deleting the folder clears it. Nothing else depends on the cache: a missing or
unreadable entry only costs the compilation.

Opt-outs: ``PROBEJAX_COMPILE_CACHE=off`` (or ``0``/``false``/``no``); a folder of the
user's own via ``PROBEJAX_COMPILE_CACHE=/some/dir``; a cache the user configured in
JAX itself (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is left as it is.
"""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
from pathlib import Path

ENV = "PROBEJAX_COMPILE_CACHE"
_OFF = ("off", "0", "false", "no")


def cache_root() -> Path:
    """The probejax user cache: ``$PROBEJAX_CACHE`` or ``~/.cache/probejax``."""
    env = os.environ.get("PROBEJAX_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "probejax"


def machine_tag() -> str:
    """16 hex digits naming this kind of machine: the architecture, the CPU model and
    its instruction-set flags (from ``/proc/cpuinfo`` where there is one)."""
    parts = [platform.system(), platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key in ("model name", "flags", "Features", "CPU implementer", "CPU part"):
                    parts.append(line.strip())
                elif not line.strip() and len(parts) > 3:
                    break  # the first processor describes them all
    except OSError:
        pass
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def default_compile_cache_dir() -> Path:
    """``<cache root>/xla/jax-<version>-<machine tag>``."""
    import jax

    return cache_root() / "xla" / f"jax-{jax.__version__}-{machine_tag()}"


def enable_compile_cache(
    directory: str | os.PathLike | None = None,
    *,
    min_compile_seconds: float = 0.2,
    max_bytes: int = 2**30,
) -> Path | None:
    """Keep compiled programs on disk and reuse them (module docstring).

    **Arguments:**

    - `directory`: the cache folder (default ``$PROBEJAX_COMPILE_CACHE`` when it names
      a folder, else :func:`default_compile_cache_dir`).
    - `min_compile_seconds`: programs that compile faster are not written. JAX's own
      default is 1 s, but most of a sweep's programs compile faster than that. Writing
      every program (0) saves a little more on a warm run
      (``benchmarks/compile_cache.py --min-compile-seconds S`` compares), but JAX scans
      the whole folder on every write, to enforce `max_bytes`, and the many small
      entries that 0 writes slow a long run such as the test suite.
    - `max_bytes`: the least recently used entries are evicted beyond this size
      (kept moderate for the same per-write scan).

    **Returns:** the folder in use, or ``None`` when the cache stays off: turned off by
    ``PROBEJAX_COMPILE_CACHE=off``, or the folder cannot be created (a warning names
    it and the reason). A folder the user gave JAX directly is kept and returned.

    Takes effect at once, also after programs were compiled in this process.
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    env = os.environ.get(ENV, "").strip()
    if directory is None and env.lower() in _OFF:
        return None
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}.")
    if min_compile_seconds < 0:
        raise ValueError(f"min_compile_seconds must be >= 0, got {min_compile_seconds}.")
    configured = jax.config.jax_compilation_cache_dir
    if directory is None and configured:
        return Path(configured)
    folder = Path(directory or env or default_compile_cache_dir()).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        warnings.warn(
            f"the compilation cache stays off: cannot create {folder} ({e}); set "
            f"{ENV} to a writable folder, or to 'off'.",
            stacklevel=2,
        )
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
    # a size limit makes JAX lock the folder for every read and write
    jax.config.update("jax_compilation_cache_max_size", int(max_bytes))
    compilation_cache.reset_cache()  # JAX decides once per process, at the first compile
    return folder
