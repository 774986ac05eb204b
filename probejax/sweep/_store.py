"""The results store of a sweep: one directory per config, one file per finished chunk.

Layout of ``directory``:

- ``manifest.json``: ``{"format", "config_hash", "description", "n_cells",
  "cell_shape", "leaves", "code"}``, written atomically when the store is created. The
  description (grid, data, user config with the computation's explicit version,
  precision) is what was hashed; ``code`` (:func:`probejax.io.code_version`: package
  version, source digest, git commit) is provenance only and never compared.
- ``chunk-<first cell>.npz``: the cells one chunk finished, written atomically
  (temporary file, fsync, ``os.replace``): ``cells`` (flat cell indices),
  ``config_hash``, and ``leaf_<i>`` of shape ``(len(cells),) + leaf shape`` for every
  output leaf ``i`` of the manifest.

One directory holds the results of one config only. The store's identity is its
config hash alone (:func:`probejax.io.config_hash` of the description: no source text
enters it), so a store resumes after any edit that leaves the description alone (a
docstring, a comment, a refactoring), and a computation whose output changed must say
so by bumping the version in its config. Opening the directory with another config hash
raises :class:`StoreMismatchError` naming both hashes and the differing parts of the
description (choose another directory, or delete this one to recompute). A chunk file counts only if it opens, carries this
store's hash, and its cells and leaves have the manifest's shapes and dtypes; others
(e.g. cut short by a crash outside the atomic rename) are ignored and their cells
recomputed. Cells are tracked one by one, so a resumed sweep may use a different
chunk size (other memory budget or device count) than the interrupted one.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..io._atomic import write_npz_atomic
from ..io._results import code_version, jsonable, read_results, write_json_atomic

FORMAT = "probejax-sweep/1"
MANIFEST = "manifest.json"


class StoreMismatchError(ValueError):
    """The directory holds results of another config (or another output structure)."""


def _npy_header(zf: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    with zf.open(name) as f:
        major, _ = np.lib.format.read_magic(f)
        read = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read(f)
    return tuple(shape), np.dtype(dtype)


class SweepStore:
    """A results directory bound to one config hash (see module docstring).

    **Arguments:**

    - ``directory``: the folder (created if missing).
    - ``config_hash``: hex digest of ``description``.
    - ``description``: JSON-able record of what was hashed.
    - ``cell_shape``: shape of the cell array (lengths of the shard axes).
    - ``leaves``: per output leaf ``{"path", "shape", "dtype"}`` (shape of one cell).
    - ``create``: write the manifest when missing (one process of a multi-process
      sweep creates it; the others open after it).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        config_hash: str,
        description: dict,
        cell_shape: tuple[int, ...],
        leaves: list[dict],
        *,
        create: bool = True,
    ):
        self.directory = Path(directory)
        self.config_hash = config_hash
        self.cell_shape = tuple(int(s) for s in cell_shape)
        self.n_cells = int(np.prod(self.cell_shape, dtype=np.int64))
        self.leaves = [dict(leaf, shape=list(leaf["shape"])) for leaf in leaves]
        path = self.directory / MANIFEST
        found = read_results(path) if path.exists() else None
        if path.exists() and found is None:
            raise StoreMismatchError(
                f"{path} exists but is not a readable sweep manifest; use another "
                "directory or remove this one."
            )
        if found is None:
            if not create:
                raise FileNotFoundError(f"no sweep manifest at {path} (not created yet).")
            self.directory.mkdir(parents=True, exist_ok=True)
            write_json_atomic(
                path,
                {
                    "format": FORMAT,
                    "config_hash": config_hash,
                    "description": description,
                    "n_cells": self.n_cells,
                    "cell_shape": list(self.cell_shape),
                    "leaves": self.leaves,
                    "code": code_version(),
                },
            )
            return
        if found.get("format") != FORMAT or found.get("config_hash") != config_hash:
            raise StoreMismatchError(
                f"{self.directory} holds sweep results of config {found.get('config_hash')} "
                f"(format {found.get('format')}), but this sweep has config {config_hash} "
                f"({FORMAT}); {_differences(found.get('description'), description)}. "
                "Results of different configs are never mixed: give another directory, "
                "or delete this one to recompute."
            )
        if found.get("leaves") != self.leaves:
            raise StoreMismatchError(
                f"{self.directory} (config {config_hash}) holds outputs "
                f"{_leaf_summary(found.get('leaves'))}, but the function now returns "
                f"{_leaf_summary(self.leaves)}. The config hash does not see inside the "
                "function: put what changed it into config=, or give another directory."
            )

    def chunk_path(self, first_cell: int) -> Path:
        return self.directory / f"chunk-{int(first_cell):09d}.npz"

    def chunk_files(self) -> list[Path]:
        return sorted(self.directory.glob("chunk-*.npz"))

    def read_cells(self, path: Path) -> np.ndarray | None:
        """The cells held by a valid chunk file, or ``None`` if it is not valid."""
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                want = {"cells.npy", "config_hash.npy"} | {
                    f"leaf_{i}.npy" for i in range(len(self.leaves))
                }
                if names != want:
                    return None
                with np.load(path, allow_pickle=False) as z:
                    cells = np.asarray(z["cells"])
                    if str(z["config_hash"]) != self.config_hash:
                        return None
                if cells.ndim != 1 or cells.dtype.kind not in "iu" or cells.size == 0:
                    return None
                if cells.min() < 0 or cells.max() >= self.n_cells:
                    return None
                for i, leaf in enumerate(self.leaves):
                    shape, dtype = _npy_header(zf, f"leaf_{i}.npy")
                    if shape != (cells.size, *leaf["shape"]) or dtype.str != leaf["dtype"]:
                        return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            return None
        return cells

    def done_mask(self) -> np.ndarray:
        """Boolean ``(n_cells,)``: cells held by a valid chunk file."""
        done = np.zeros(self.n_cells, bool)
        for path in self.chunk_files():
            cells = self.read_cells(path)
            if cells is not None:
                done[cells] = True
        return done

    def write_chunk(self, cells: np.ndarray, leaves: list[np.ndarray]) -> Path:
        """Atomically write the finished ``cells`` (flat indices) and their leaves."""
        cells = np.asarray(cells, np.int64)
        arrays = {"cells": cells, "config_hash": np.asarray(self.config_hash)}
        for i, (leaf, spec) in enumerate(zip(leaves, self.leaves, strict=True)):
            leaf = np.asarray(leaf)
            if leaf.shape != (cells.size, *spec["shape"]) or leaf.dtype.str != spec["dtype"]:
                raise ValueError(
                    f"output leaf {spec['path']} has shape {leaf.shape} / dtype {leaf.dtype} "
                    f"for {cells.size} cells; expected {(cells.size, *spec['shape'])} / "
                    f"{spec['dtype']}."
                )
            arrays[f"leaf_{i}"] = leaf
        path = self.chunk_path(cells.min())
        write_npz_atomic(path, arrays)
        return path

    def load(self) -> list[np.ndarray]:
        """Every leaf assembled over all cells, shape ``cell_shape + leaf shape``.

        Raises ``ValueError`` naming the missing cells when the sweep is unfinished.
        """
        out = [np.empty((self.n_cells, *s["shape"]), np.dtype(s["dtype"])) for s in self.leaves]
        done = np.zeros(self.n_cells, bool)
        for path in self.chunk_files():
            cells = self.read_cells(path)
            if cells is None:
                continue
            with np.load(path, allow_pickle=False) as z:
                for i, arr in enumerate(out):
                    arr[cells] = z[f"leaf_{i}"]
            done[cells] = True
        if not done.all():
            missing = np.flatnonzero(~done)
            raise ValueError(
                f"sweep {self.config_hash[:12]} in {self.directory} is unfinished: "
                f"{missing.size} of {self.n_cells} cells missing (first: "
                f"{missing[:8].tolist()}). Run the sweep again to compute them."
            )
        return [a.reshape(*self.cell_shape, *a.shape[1:]) for a in out]


def _differences(stored, wanted) -> str:
    """The parts of two sweep descriptions that differ, for the mismatch error."""
    if not isinstance(stored, dict) or not isinstance(wanted, dict):
        return "the stored description is missing"
    wanted = json.loads(json.dumps(jsonable(wanted)))  # as it would be stored

    def short(v) -> str:
        r = json.dumps(v, sort_keys=True)
        return r if len(r) <= 60 else r[:57] + "..."

    parts = []
    for k in sorted(stored.keys() | wanted.keys()):
        a, b = stored.get(k), wanted.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            sub = [j for j in sorted(a.keys() | b.keys()) if a.get(j) != b.get(j)]
            parts += [f"{k}.{j}: stored {short(a.get(j))}, now {short(b.get(j))}" for j in sub]
        else:
            parts.append(f"{k}: stored {short(a)}, now {short(b)}")
    if not parts:
        return "the descriptions agree, so the store was hashed by another probejax release"
    return "differing: " + "; ".join(parts[:6]) + ("; ..." if len(parts) > 6 else "")


def _leaf_summary(leaves) -> str:
    if not leaves:
        return "[]"
    parts = [f"{leaf['path']}{tuple(leaf['shape'])}:{leaf['dtype']}" for leaf in leaves[:6]]
    return "[" + ", ".join(parts) + (", ..." if len(leaves) > 6 else "") + "]"


def open_existing(directory: str | os.PathLike) -> SweepStore:
    """Open a finished or partial store from its manifest alone (no function or grid
    needed), e.g. to plot from it: ``open_existing(d).load()``."""
    path = Path(directory) / MANIFEST
    found = read_results(path)
    if found is None or found.get("format") != FORMAT:
        raise FileNotFoundError(f"no sweep manifest of format {FORMAT} at {path}.")
    return SweepStore(
        directory,
        found["config_hash"],
        found["description"],
        tuple(found["cell_shape"]),
        found["leaves"],
        create=False,
    )
