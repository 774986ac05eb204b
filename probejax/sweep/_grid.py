r"""The declaration of a sweep: named axes, each either sharded over devices or handed
whole to the per-cell function.

A :class:`Grid` is the Cartesian product of its ``"shard"`` axes (the *cells*, run in
chunks spread over devices) times its ``"vmap"`` axes (given whole to every cell: the
function vmaps or scans over them inside one program, e.g. a ridge grid sharing one
eigendecomposition, or a continuation in :math:`\lambda`). Cells are numbered in
row-major (C) order over the shard axes, in the order the axes are declared.

An axis's values are any array-like with a leading axis of the axis's length: scalars
per cell (seeds, :math:`\alpha`), or whole inputs per cell (the activations of each
layer, shape ``(layers, n, d)``; a NumPy memmap works, only a chunk's rows are read).
The values enter the config hash by content (SHA-256 of their bytes), unless the axis
carries a ``fingerprint`` string, which is hashed instead (for inputs too large to read
twice: the fingerprint must change whenever the values do).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

KINDS = ("shard", "vmap")
_LISTED = 64  # axes with at most this many scalar values list them in the description


def _length(values: Any) -> int:
    if isinstance(values, list | tuple):
        return len(values)
    shape = getattr(values, "shape", None)
    if shape is None or len(shape) == 0:
        raise ValueError(f"got {type(values).__name__} with shape {shape}")
    return int(shape[0])


def take(values: Any, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` of ``values`` as one NumPy array (reads only those rows of a
    memmap; a list of per-row arrays is stacked)."""
    if isinstance(values, list | tuple):
        return np.stack([np.asarray(values[int(i)]) for i in index])
    return np.asarray(values[np.asarray(index)])


def row_spec(values: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one row of ``values``."""
    if isinstance(values, list | tuple):
        first = np.asarray(values[0])
        return first.shape, first.dtype
    return tuple(values.shape[1:]), np.dtype(values.dtype)


def content_sha256(values: Any, rows_per_read: int = 64) -> str:
    """SHA-256 of shape, dtype and bytes of ``values``, read ``rows_per_read`` rows at a
    time (bounded memory for memmaps)."""
    n = _length(values)
    shape, dtype = row_spec(values)
    h = hashlib.sha256(f"{n}x{shape}:{dtype.str}".encode())
    for start in range(0, n, rows_per_read):
        block = take(values, np.arange(start, min(start + rows_per_read, n)))
        if block.shape[1:] != shape or block.dtype != dtype:
            raise ValueError(
                f"rows {start}.. have shape {block.shape[1:]} / dtype {block.dtype}, "
                f"but row 0 has {shape} / {dtype}; every row must match."
            )
        h.update(np.ascontiguousarray(block).tobytes())
    return h.hexdigest()


@dataclasses.dataclass(frozen=True, eq=False)
class Axis:
    """One named axis of a sweep.

    **Arguments:**

    - ``name``: the key under which the function receives this axis's value(s).
    - ``values``: array-like with a leading axis of the axis's length (see module
      docstring); numeric or boolean.
    - ``kind``: ``"shard"`` (default): one value per cell, cells chunked and sharded
      over devices; ``"vmap"``: the whole array is given to every cell, inside the
      program.
    - ``fingerprint``: optional string standing for the values in the config hash.
    - ``labels``: optional JSON-able list describing the values in the manifest (e.g.
      layer indices when the values are the activations themselves).
    """

    name: str
    values: Any
    kind: str = "shard"
    fingerprint: str | None = None
    labels: Sequence | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"Axis name must be a Python identifier, got {self.name!r}.")
        if self.name.startswith("_"):
            raise ValueError(f"Axis name {self.name!r}: names starting with '_' are reserved.")
        if self.kind not in KINDS:
            raise ValueError(f"Axis {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}.")
        values = self.values
        if not isinstance(values, list | tuple) and not hasattr(values, "shape"):
            values = np.asarray(values)
        elif isinstance(values, list | tuple) and not all(hasattr(v, "shape") for v in values):
            values = np.asarray(values)
        object.__setattr__(self, "values", values)
        try:
            n = _length(values)
        except ValueError as e:
            raise ValueError(
                f"Axis {self.name!r}: values must have a leading axis (one entry per point); {e}."
            ) from None
        if n == 0:
            raise ValueError(f"Axis {self.name!r} has no values; give at least one.")
        _, dtype = row_spec(values)
        if dtype.kind not in "biuf":
            raise ValueError(
                f"Axis {self.name!r}: values must be boolean, integer or float, got dtype "
                f"{dtype}. Pass PRNG keys as integer seeds (or jax.random.key_data)."
            )
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(
                f"Axis {self.name!r}: {len(self.labels)} labels for {n} values; give one "
                "label per value."
            )

    def __len__(self) -> int:
        return _length(self.values)

    def describe(self) -> dict:
        """JSON-able description, entering the config hash (values by content)."""
        shape, dtype = row_spec(self.values)
        out = {
            "name": self.name,
            "kind": self.kind,
            "length": len(self),
            "row_shape": list(shape),
            "dtype": dtype.str,
        }
        if self.fingerprint is not None:
            out["fingerprint"] = str(self.fingerprint)
        else:
            out["sha256"] = content_sha256(self.values)
        if self.labels is not None:
            out["labels"] = list(self.labels)
        elif shape == () and len(self) <= _LISTED:
            out["values"] = take(self.values, np.arange(len(self))).tolist()
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class Grid:
    """A sweep's axes, in order. ``Grid([Axis("layer", X), Axis("lam", lams, "vmap")])``.

    Cells are the row-major product of the ``"shard"`` axes (:attr:`shape`); the
    ``"vmap"`` axes go whole into every cell. With no shard axis there is one cell.
    """

    axes: tuple[Axis, ...]

    def __init__(self, axes: Sequence[Axis]):
        axes = tuple(axes)
        for i, a in enumerate(axes):
            if not isinstance(a, Axis):
                raise TypeError(f"Grid axes[{i}] must be an Axis, got {type(a).__name__}.")
        names = [a.name for a in axes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"Grid axis names must be unique; repeated: {dup}.")
        object.__setattr__(self, "axes", axes)

    @property
    def shard_axes(self) -> tuple[Axis, ...]:
        return tuple(a for a in self.axes if a.kind == "shard")

    @property
    def vmap_axes(self) -> tuple[Axis, ...]:
        return tuple(a for a in self.axes if a.kind == "vmap")

    @property
    def shape(self) -> tuple[int, ...]:
        """Lengths of the shard axes: the shape of the cell array."""
        return tuple(len(a) for a in self.shard_axes)

    @property
    def n_cells(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def cell_values(self, cells: np.ndarray) -> dict[str, np.ndarray]:
        """Host values of the shard axes at flat cell indices ``cells`` (leading axis
        ``len(cells)``)."""
        idx = np.unravel_index(np.asarray(cells, np.int64), self.shape) if self.shape else ()
        return {a.name: take(a.values, i) for a, i in zip(self.shard_axes, idx, strict=True)}

    def describe(self) -> list[dict]:
        return [a.describe() for a in self.axes]
