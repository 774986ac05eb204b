r"""Activation files from any source, read one layer at a time, and the file probejax
writes.

:func:`open_activations` returns a :class:`LayerStack`: a lazy ``(layers, n, d)`` array
whose ``stack[i]`` reads layer ``i`` only (memory-mapped where the format allows), so a
sweep over all layers holds one layer in memory, not all of them. Formats, by suffix:

- ``.npy``: one array ``(layers, n, d)`` or ``(n, d)`` (memory-mapped).
- ``.npz``: one array ``(layers, n, d)`` / ``(n, d)``, or one ``(n, d)`` array per layer.
- ``.safetensors``: one ``(n, d)`` tensor per layer, or one 3-D tensor.
- ``.h5`` / ``.hdf5``: one dataset per layer, or one 3-D dataset (needs ``h5py``).
- ``.pt`` / ``.pth``: a tensor, a list of tensors, or a dict of tensors (loaded with
  ``weights_only=True`` and memory-mapped; needs ``torch``).

Per-layer entries are recognised by a name ending in the layer's index
(``model.layers.7``, ``layer_7``, ``7``) and ordered by it; ``key`` names the entry (a
3-D one or a 2-D one) or the prefix of the per-layer entries when a file holds several
kinds. Entries named ``labels`` or ``groups`` are never layers: a file written by
:func:`write_activations` (``probejax llm extract``) carries its labels with it.

:func:`read_labels` reads the labels that go with a file: a CSV with a ``label`` column
(and optionally ``group``) or a ``.npy`` vector.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_write

SUFFIXES = (".npy", ".npz", ".safetensors", ".h5", ".hdf5", ".pt", ".pth")
RESERVED = ("labels", "groups")
_INDEX = re.compile(r"^(.*?)(\d+)$")
METADATA_KEY = "probejax"


@dataclasses.dataclass(frozen=True, eq=False)
class LayerStack:
    """A lazy ``(layers, n, d)`` stack of activations: ``stack[i]`` reads layer ``i``
    (an integer array of indices reads those layers, stacked).

    - ``layers``: the layer indices the file names (``0..L-1`` when it names none).
    - ``shape``, ``dtype``: of the whole stack (float16 and bfloat16 are read as
      float32).
    - ``path``, ``format``, ``key``: where it came from.
    - ``labels``, ``groups``: carried by the file (``None`` when it has none).
    - ``metadata``: the file's probejax metadata (model, site, pooling, texts' digest),
      ``{}`` when it has none.
    """

    path: Path
    format: str
    key: str | None
    layers: tuple[int, ...]
    shape: tuple[int, int, int]
    dtype: np.dtype
    read: Callable[[int], Any] = dataclasses.field(repr=False)
    labels: np.ndarray | None = None
    groups: np.ndarray | None = None
    metadata: dict = dataclasses.field(default_factory=dict)

    ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, int | np.integer):
            i = int(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f"layer row {i} out of range for {len(self)} layers.")
            return self._layer(i % len(self))
        rows = np.arange(len(self))[index]
        return np.stack([self._layer(int(i)) for i in np.atleast_1d(rows)])

    def _layer(self, i: int) -> np.ndarray:
        a = _as_float(np.asarray(self.read(i)))
        if a.shape != self.shape[1:]:
            raise ValueError(
                f"{self.path}: layer {self.layers[i]} has shape {a.shape}, but the file's "
                f"layers are {self.shape[1:]}; every layer must hold (n, d) for the same n, d."
            )
        return a


def _as_float(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind != "f" and a.dtype.kind not in "iu":
        raise ValueError(f"activations must be numeric, got dtype {a.dtype}.")
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float32)


def _float_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


def _select(path: Path, shapes: dict[str, tuple], key: str | None) -> tuple[list[str], bool]:
    """The entries holding the layers, in layer order, and whether it is one 3-D entry."""
    if key is not None and key in shapes:
        if len(shapes[key]) not in (2, 3):
            raise ValueError(
                f"{path}: entry {key!r} has shape {shapes[key]}; expected (layers, n, d) or (n, d)."
            )
        return [key], len(shapes[key]) == 3
    names = [k for k in shapes if k not in RESERVED]
    if key is not None:
        names = [k for k in names if k.startswith(key)]
        if not names:
            raise ValueError(
                f"{path}: no entry named {key!r} or starting with it; entries: {sorted(shapes)}."
            )
    if not names:
        raise ValueError(f"{path} holds no activations (entries: {sorted(shapes)}).")
    three = [k for k in names if len(shapes[k]) == 3]
    if len(names) == 1:
        if len(shapes[names[0]]) not in (2, 3):
            raise ValueError(
                f"{path}: entry {names[0]!r} has shape {shapes[names[0]]}; expected "
                "(layers, n, d) or (n, d)."
            )
        return names, bool(three)
    if three:
        raise ValueError(
            f"{path} holds several entries, some 3-D ({sorted(three)}): name the one to "
            "probe with key= (--key)."
        )
    indexed = {}
    for k in names:
        m = _INDEX.match(k)
        if m is None:
            raise ValueError(
                f"{path}: entry {k!r} does not end in a layer index; per-layer entries are "
                "named like 'model.layers.7' or 'layer_7' (give key= to choose a prefix)."
            )
        indexed.setdefault(m.group(1), []).append((int(m.group(2)), k))
    if len(indexed) > 1:
        raise ValueError(
            f"{path} holds per-layer entries under several prefixes {sorted(indexed)}: "
            "choose one with key= (--key)."
        )
    (entries,) = indexed.values()
    idx = [i for i, _ in entries]
    if len(set(idx)) != len(idx):
        raise ValueError(f"{path}: two entries name the same layer index ({sorted(idx)}).")
    return [k for _, k in sorted(entries)], False


def _layer_index(name: str, fallback: int) -> int:
    m = _INDEX.match(name)
    return int(m.group(2)) if m else fallback


def _build(path, fmt, key, shapes, dtypes, get, extras, metadata) -> LayerStack:
    names, three = _select(path, shapes, key)
    if three:
        (name,) = names
        L, n, d = shapes[name]
        read = lambda i: get(name, i)
        layers = tuple(range(L))
    else:
        first = shapes[names[0]]
        if len(first) != 2:
            raise ValueError(f"{path}: entry {names[0]!r} has shape {first}; expected (n, d).")
        bad = [k for k in names if shapes[k] != first]
        if bad:
            raise ValueError(
                f"{path}: entries {bad} have shapes {[shapes[k] for k in bad]}, but "
                f"{names[0]!r} has {first}; every layer must hold (n, d) for the same n, d."
            )
        L, (n, d) = len(names), first
        read = lambda i: get(names[i], None)
        layers = tuple(_layer_index(k, i) for i, k in enumerate(names))
    if n < 2 or d < 1:
        raise ValueError(f"{path}: activations of shape {(L, n, d)} hold too few examples.")
    labels, groups = (extras(k) for k in RESERVED)
    return LayerStack(
        path=path,
        format=fmt,
        key=key,
        layers=layers,
        shape=(L, n, d),
        dtype=_float_dtype(dtypes[names[0]]),
        read=read,
        labels=labels,
        groups=groups,
        metadata=metadata,
    )


def _part(a, i):
    return a if i is None else a[i]


def _open_npy(path: Path, key):
    if key is not None:
        raise ValueError(f"{path}: a .npy file holds one array; key={key!r} does not apply.")
    fmt = np.lib.format
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if fortran or dtype.hasobject:
        a = np.load(path, mmap_mode="r")  # not laid out by rows: memory-map it
        get = lambda k, i: _part(a, i)
    else:
        row = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) == 3 else 0

        def get(k, i):
            # a plain read of one layer's bytes: unlike a memory map, the pages read do
            # not stay in the process's resident set
            with open(path, "rb") as f:
                if i is None or len(shape) != 3:
                    return np.fromfile(f, dtype=dtype, offset=offset).reshape(shape)[
                        () if i is None else i
                    ]
                f.seek(offset + i * row * dtype.itemsize)
                return np.fromfile(f, dtype=dtype, count=row).reshape(shape[1:])

    return {"activations": tuple(shape)}, {"activations": dtype}, get, lambda k: None, {}


def _open_npz(path: Path, key):
    z = np.load(path)
    shapes, dtypes = {}, {}
    for k in z.files:
        shape, dtype = _npz_header(z, k)
        shapes[k], dtypes[k] = shape, dtype
    extras = lambda k: np.asarray(z[k]) if k in z.files else None
    return shapes, dtypes, lambda k, i: _part(z[k], i), extras, {}


def _npz_header(z, name: str):
    """Shape and dtype of an ``.npz`` member without reading its data."""
    fmt = np.lib.format
    with z.zip.open(name + ".npy") as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:  # a rare header version: read the member
            a = z[name]
            return a.shape, a.dtype
    return tuple(shape), dtype


def _open_safetensors(path: Path, key):
    try:
        from safetensors import safe_open
    except ImportError as e:
        raise ImportError(f"reading {path} needs safetensors: pip install safetensors") from e
    with safe_open(str(path), framework="numpy") as f:
        names = list(f.keys())
        meta = f.metadata() or {}
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in names}
        dtypes = {k: f.get_slice(k).get_dtype() for k in names}
    np_dtypes = {k: _safetensors_dtype(v) for k, v in dtypes.items()}

    def get(k, i):
        if dtypes[k] == "BF16":
            return _bf16(path, k, i)
        with safe_open(str(path), framework="numpy") as f:
            return f.get_tensor(k) if i is None else f.get_slice(k)[i]

    def extras(k):
        return None if k not in names else get(k, None)

    return shapes, np_dtypes, get, extras, _metadata(meta.get(METADATA_KEY), path)


_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.float32}


def _safetensors_dtype(name: str):
    return _ST_DTYPES.get(name, np.float32 if name.startswith(("F", "BF")) else np.int64)


def _bf16(path: Path, k: str, i):
    try:
        import torch
        from safetensors import safe_open
    except ImportError as e:
        raise ImportError(f"{path}: bfloat16 tensor {k!r} needs torch to be read") from e
    with safe_open(str(path), framework="pt") as f:
        t = f.get_tensor(k) if i is None else f.get_slice(k)[i]
    return t.to(torch.float32).numpy()


def _metadata(text: str | None, path: Path) -> dict:
    if text is None:
        return {}
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: its '{METADATA_KEY}' metadata is not JSON ({e}).") from None
    return meta if isinstance(meta, dict) else {}


def _open_h5(path: Path, key):
    try:
        import h5py
    except ImportError as e:
        raise ImportError(f"reading {path} needs h5py: pip install h5py") from e
    shapes, dtypes = {}, {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                shapes[name], dtypes[name] = tuple(obj.shape), obj.dtype

        f.visititems(visit)
        meta = f.attrs.get(METADATA_KEY)

    def get(k, i):
        with h5py.File(path, "r") as f:
            return f[k][()] if i is None else f[k][i]

    extras = lambda k: get(k, None) if k in shapes else None
    text = meta.decode() if isinstance(meta, bytes) else meta
    return shapes, dtypes, get, extras, _metadata(text, path)


def _open_pt(path: Path, key):
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"reading {path} needs torch: pip install torch") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # an old (non-zip) serialisation cannot be memory-mapped
        obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, torch.Tensor):
        obj = {"activations": obj}
    elif isinstance(obj, list | tuple):
        obj = {str(i): t for i, t in enumerate(obj)}
    if not isinstance(obj, dict) or not all(isinstance(t, torch.Tensor) for t in obj.values()):
        raise ValueError(
            f"{path}: a .pt file must hold a tensor, a list of tensors or a dict of tensors."
        )
    obj = {str(k): v for k, v in obj.items()}
    shapes = {k: tuple(t.shape) for k, t in obj.items()}
    dtypes = {k: np.float32 if t.is_floating_point() else np.int64 for k, t in obj.items()}
    dtypes.update({k: np.float64 for k, t in obj.items() if t.dtype == torch.float64})

    def get(k, i):
        t = obj[k] if i is None else obj[k][i]
        return (
            t.float().numpy() if t.is_floating_point() and t.dtype != torch.float64 else t.numpy()
        )

    extras = lambda k: get(k, None) if k in obj else None
    return shapes, dtypes, get, extras, {}


_OPENERS = {
    ".npy": ("npy", _open_npy),
    ".npz": ("npz", _open_npz),
    ".safetensors": ("safetensors", _open_safetensors),
    ".h5": ("hdf5", _open_h5),
    ".hdf5": ("hdf5", _open_h5),
    ".pt": ("torch", _open_pt),
    ".pth": ("torch", _open_pt),
}


def open_activations(path: str | os.PathLike, *, key: str | None = None) -> LayerStack:
    """Open an activation file lazily (module docstring).

    **Arguments:**

    - ``path``: a ``.npy``, ``.npz``, ``.safetensors``, ``.h5``/``.hdf5`` or ``.pt``
      file.
    - ``key``: the entry holding the activations, or the prefix of the per-layer
      entries, when the file holds several kinds (``None``: the only one).

    **Returns:** a :class:`LayerStack` (nothing but shapes read yet).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no activation file at {path}.")
    suffix = path.suffix.lower()
    if suffix not in _OPENERS:
        raise ValueError(
            f"{path}: unknown activation format {suffix!r}; expected one of {', '.join(SUFFIXES)}."
        )
    fmt, opener = _OPENERS[suffix]
    shapes, dtypes, get, extras, metadata = opener(path, key)
    return _build(path, fmt, key, shapes, dtypes, get, extras, metadata)


@dataclasses.dataclass(frozen=True)
class Labels:
    """Two-class labels (``y`` in {0, 1}), optional ``groups`` (strings, one per
    example) and the names of the classes (``label_names[k]`` is class ``k``)."""

    y: np.ndarray
    groups: np.ndarray | None
    label_names: tuple[str, str]


def _two_classes(values: Sequence, where: str) -> tuple[np.ndarray, tuple[str, str]]:
    raw = np.asarray(values)
    if raw.ndim != 1:
        raise ValueError(f"{where}: labels must be one value per example, got shape {raw.shape}.")
    try:
        num = raw.astype(np.float64)
    except ValueError:
        num = None
    if num is not None and np.all(np.isfinite(num)) and set(np.unique(num)) <= {0.0, 1.0}:
        return num.astype(np.int32), ("0", "1")
    if num is not None and np.all(np.isfinite(num)) and set(np.unique(num)) <= {-1.0, 1.0}:
        return (num > 0).astype(np.int32), ("-1", "1")
    classes = sorted({str(v) for v in raw})
    if len(classes) != 2:
        raise ValueError(
            f"{where}: labels must take two values, got {len(classes)}: {classes[:10]}."
        )
    return np.asarray([classes.index(str(v)) for v in raw], np.int32), tuple(classes)


def _label_column(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The raw label values and the groups (or None) of a labels file."""
    if not path.is_file():
        raise FileNotFoundError(f"no labels file at {path}.")
    if path.suffix.lower() == ".npy":
        return np.load(path), None
    if path.suffix.lower() in (".csv", ".tsv"):
        with open(path, newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            fields = reader.fieldnames or []
            if "label" not in fields:
                raise ValueError(f"{path}: needs a 'label' column; its columns are {fields}.")
            rows = list(reader)
        groups = np.asarray([r["group"] for r in rows]) if "group" in fields else None
        return np.asarray([r["label"] for r in rows]), groups
    raise ValueError(f"{path}: labels must be a .csv/.tsv file or a .npy vector.")


def _checked_n(path: Path, y: np.ndarray, n: int | None) -> None:
    if n is not None and len(y) != n:
        raise ValueError(f"{path} holds {len(y)} labels, but the activations hold {n} examples.")


def read_labels(path: str | os.PathLike, n: int | None = None) -> Labels:
    """Labels from a CSV (a ``label`` column, optionally ``group``) or a ``.npy``
    vector; ``n``: the number of examples they must describe (checked).

    Labels are 0/1, -1/+1, or any two distinct strings (class 0 is the first in sorted
    order); more classes are refused (:func:`read_class_labels` reads them)."""
    path = Path(path)
    raw, groups = _label_column(path)
    try:
        y, names = _two_classes(raw, str(path))
    except ValueError as err:
        raise ValueError(f"{err} For more than two classes, use 'probejax multiclass'.") from None
    _checked_n(path, y, n)
    return Labels(y, groups, names)


@dataclasses.dataclass(frozen=True)
class ClassLabels:
    """Labels of ``K >= 2`` classes: ``y`` in ``0..K-1``, ``groups`` (or None) and
    ``label_names[k]``, the value class ``k`` stands for."""

    y: np.ndarray
    groups: np.ndarray | None
    label_names: tuple[str, ...]


def read_class_labels(path: str | os.PathLike, n: int | None = None) -> ClassLabels:
    """Labels of any number of classes from the files :func:`read_labels` reads: the
    classes in sorted order (numerically when every value is a number); ``n`` checked.

    Raises ``ValueError`` naming the file when it holds fewer than two classes."""
    path = Path(path)
    raw, groups = _label_column(path)
    if raw.ndim != 1:
        raise ValueError(f"{path}: labels must be one value per example, got shape {raw.shape}.")
    try:
        num = raw.astype(np.float64)
        classes = sorted(set(num.tolist()))
        names = tuple(f"{c:g}" for c in classes)
        y = np.searchsorted(np.asarray(classes), num).astype(np.int32)
    except ValueError:
        classes = sorted({str(v) for v in raw})
        names = tuple(classes)
        y = np.asarray([classes.index(str(v)) for v in raw], np.int32)
    if len(names) < 2:
        raise ValueError(f"{path}: labels must take at least two values, got {list(names)}.")
    _checked_n(path, y, n)
    return ClassLabels(y, groups, names)


def write_activations(
    path: str | os.PathLike,
    layers: dict[int, np.ndarray],
    labels: np.ndarray | None = None,
    metadata: dict | None = None,
) -> None:
    """Write ``layers`` (``{layer index: (n, d)}``) as ``layers.<i>`` tensors of a
    ``.safetensors`` file, with ``labels`` and the JSON ``metadata`` (model, site,
    pooling, texts' digest), atomically; :func:`open_activations` reads it back."""
    from safetensors.numpy import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"write_activations writes .safetensors files, got {path}.")
    tensors = {f"layers.{int(i)}": np.ascontiguousarray(a) for i, a in layers.items()}
    if labels is not None:
        tensors["labels"] = np.ascontiguousarray(np.asarray(labels))
    meta = {METADATA_KEY: json.dumps(metadata or {}, sort_keys=True)}
    blob = save(tensors, metadata=meta)
    atomic_write(path, lambda f: f.write(blob), binary=True)
