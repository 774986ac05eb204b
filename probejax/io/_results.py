"""Results files: JSON with the config and its hash, written atomically.

A result's identity is what it computes, never the text of the code that computed it:

- :func:`config_hash` is the SHA-256 of the canonical JSON (sorted keys, no spaces) of
  ``{"config": config, **identity}``, with the config's output paths (``results_dir``,
  ``figures_dir``) removed, so moving the outputs keeps a result valid and changing any
  computed value invalidates it. ``identity`` names the computation and its explicit
  version, bumped by hand when the computation changes (the reproduction targets pass
  ``target=`` and ``version=``, the sweeps put a version string such as
  ``"probe_sweep/3"`` into their config). Nothing from the source enters it: editing a
  docstring or a comment, or a commit that leaves the numbers alone, keeps every result.
- :func:`code_version` (package version, source digest, git commit) is recorded next to
  a result for provenance only and never compared.

Arrays are stored as nested lists; non-finite numbers as ``null`` (strict JSON), read
back as NaN by ``np.asarray(x, float)``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_write

OUTPUT_KEYS = ("results_dir", "figures_dir")


@functools.cache
def code_version() -> dict:
    """Provenance of the code that computed a result: ``{"probejax": version,
    "source": SHA-256 of the package's ``.py`` files (paths and contents),
    "git": the checkout's commit or None}``.

    Recorded in results files and sweep manifests so a result can be traced to its
    code; never part of a hash and never compared (a result's identity is its config
    and its computation's explicit version, :func:`config_hash`).
    """
    try:
        version = importlib.metadata.version("probejax")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode())
        h.update(path.read_bytes())
    commit = None
    try:
        head = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        commit = head.stdout.strip() if head.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"probejax": version, "source": h.hexdigest(), "git": commit}


def config_hash(config: dict, /, **identity: Any) -> str:
    """The identity of a result (module docstring).

    **Arguments:**

    - ``config``: JSON-able dict of everything the result depends on; its top-level
      output paths (``results_dir``, ``figures_dir``) are left out.
    - ``identity``: JSON-able values naming the computation, e.g. ``target="theory",
      version=1``; hashed next to the config.

    **Returns:** the SHA-256 (hex) of the canonical JSON of ``{"config": config without
    output paths, **identity}``. No source text, package version or commit enters it.
    """
    core = {k: v for k, v in config.items() if k not in OUTPUT_KEYS}
    text = json.dumps(jsonable({"config": core, **identity}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def jsonable(obj: Any) -> Any:
    """Nested dicts/lists of Python scalars; arrays to lists, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "__array__") and not isinstance(obj, str):
        arr = np.asarray(obj)
        return jsonable(arr.tolist()) if arr.ndim else jsonable(arr.item())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj


def write_json_atomic(path: Path, obj: dict) -> None:
    """Write ``obj`` as strict JSON to ``path`` atomically (a reader never sees a
    partial file)."""
    atomic_write(
        path, lambda f: json.dump(jsonable(obj), f, indent=1, allow_nan=False), binary=False
    )


def read_results(path: Path) -> dict | None:
    """The results file at ``path``, or ``None`` if it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
