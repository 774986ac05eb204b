"""Pooled activations cached on disk, written batch by batch and resumable.

Layout of a cache folder::

    cache_dir/manifest.json     what the array holds and how much of it is done
    cache_dir/activations.npy   float32 (L, n, d), a .npy file read back as a memmap

Texts are extracted in the order the manifest's ``order`` names: ``"length"``, by token
count (:func:`probejax.llm.length_order`, so batches carry few pads), or ``"input"``, as
given (caches begun before length order existed). Each batch's rows are written
straight to their places in the ``.npy`` file (plain positioned writes, so memory stays
at one batch whatever ``n``), synced to disk, and only then is the manifest's ``n_done``
(texts done, counted along that order) advanced by an atomic rewrite (temporary file,
then ``os.replace``). An interrupted run therefore leaves a manifest that under-counts at
worst, and the next call resumes at ``n_done``; ``complete`` is set only once every text
is in. A complete cache loads without a forward pass over the texts (a named submodule
site's width is read from one one-token pass), and the rows are always in
the order of the texts.

The manifest records the model (id, revision, dtype), the extraction settings
(pooling, site, layers, token limit, truncation), the caller's ``dataset_hash``,
a hash of the texts themselves, the shape (``d`` is the site's width), and ``format``: the explicit version of the
layout and of the extraction, bumped by hand when either changes what is stored; a cache
of another format is refused before its other fields are read. No
source text enters this identity, so editing a docstring or a comment keeps every
cache. A cache made with anything different is never reused:
:class:`CacheMismatchError` lists the differing fields.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..io._atomic import atomic_write
from ._extract import (
    check_options,
    context_limit,
    length_order,
    pooled_batches,
    resolve_layers,
    site_width,
    tokenize,
)
from ._model import LoadedModel

# bumped by hand when the file layout or the extracted numbers change (module docstring);
# 2: the manifest names the extraction site "site" and ``d`` is the site's width
FORMAT = 2
ORDERS = ("length", "input")
MANIFEST = "manifest.json"
DATA = "activations.npy"
_IDENTITY = (
    "format",
    "model_id",
    "revision",
    "dtype",
    "pooling",
    "site",
    "layers",
    "dataset_hash",
    "texts_sha256",
    "n",
    "d",
    "max_length",
    "truncate",
)


class CacheMismatchError(ValueError):
    """The cache folder holds activations made with other settings, model or data."""


class CacheCorruptError(ValueError):
    """The cache folder's manifest or data file is unreadable or inconsistent."""


def texts_sha256(texts: Sequence[str]) -> str:
    """SHA-256 of the texts, each length-prefixed (so boundaries count)."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _write_manifest(path: Path, manifest: dict) -> None:
    atomic_write(path, lambda f: json.dump(manifest, f, indent=2), binary=False)


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CacheCorruptError(
            f"cache manifest {path} is unreadable ({type(e).__name__}: {e}); delete the "
            f"folder {path.parent} to recompute it."
        ) from e
    if not isinstance(manifest, dict):
        raise CacheCorruptError(f"cache manifest {path} is not a JSON object.")
    if manifest.get("format") != FORMAT:
        raise CacheMismatchError(
            f"the activation cache {path.parent} was made with a different format (stored "
            f"{manifest.get('format')!r}, this version writes {FORMAT}); delete {path.parent} "
            f"to recompute it."
        )
    lacking = [k for k in (*_IDENTITY, "n_done", "complete") if k not in manifest]
    if lacking:
        raise CacheCorruptError(
            f"cache manifest {path} lacks the fields {lacking}; delete the folder "
            f"{path.parent} to recompute it."
        )
    n, n_done = manifest["n"], manifest["n_done"]
    if not (isinstance(n_done, int) and 0 <= n_done <= n):
        raise CacheCorruptError(f"cache manifest {path}: n_done={n_done!r} is not in 0..{n}.")
    if manifest.setdefault("order", "input") not in ORDERS:
        raise CacheCorruptError(
            f"cache manifest {path}: order={manifest['order']!r} is not one of {ORDERS}."
        )
    if manifest["complete"] is not (n_done == n):
        raise CacheCorruptError(
            f"cache manifest {path}: complete={manifest['complete']!r} with n_done={n_done} of {n}."
        )
    return manifest


def _open_data(path: Path, shape: tuple[int, ...], mode: str) -> np.memmap:
    if not path.is_file():
        raise CacheCorruptError(
            f"cache data file {path} is missing (its manifest is there); delete the folder "
            f"{path.parent} to recompute it."
        )
    try:
        data = np.load(path, mmap_mode=mode)
    except (OSError, ValueError) as e:
        raise CacheCorruptError(
            f"cache data file {path} is unreadable or truncated ({type(e).__name__}: {e}); "
            f"delete the folder {path.parent} to recompute it."
        ) from e
    if data.shape != shape or data.dtype != np.float32 or not data.flags.c_contiguous:
        raise CacheCorruptError(
            f"cache data file {path} holds {data.dtype} {data.shape}, expected float32 "
            f"{shape} (C order); delete the folder {path.parent} to recompute it."
        )
    return data


def cached_activations(
    loaded: LoadedModel,
    texts: Sequence[str],
    dataset_hash: str,
    cache_dir,
    *,
    layers: Sequence[int] | None = None,
    pooling: str = "last",
    site: str = "block_output",
    batch_size: int = 16,
    max_length: int | None = None,
    truncate: bool = False,
    progress: bool = True,
) -> np.memmap:
    """:func:`probejax.llm.extract` through a resumable on-disk cache.

    **Arguments:**

    - `loaded`, `texts`, `layers`, `pooling`, `site`, `batch_size`, `max_length`,
      `truncate`: as for :func:`probejax.llm.extract`.
    - `dataset_hash`: the caller's identifier of the data set version (recorded and
      compared; a hash of the texts is recorded and compared as well).
    - `cache_dir`: the cache folder (created if missing), one per (model, settings, data).
    - `progress`: show a tqdm progress bar while extracting.

    **Returns:** a read-only float32 memmap ``(L, n, d)``.

    Raises :class:`CacheMismatchError` when ``cache_dir`` holds a cache made with another
    model, revision, dtype, settings or data (each differing field with its stored and
    requested value), and :class:`CacheCorruptError` when its manifest or data file is
    unreadable or inconsistent. Invalid arguments raise ``ValueError`` as in ``extract``.
    """
    check_options(pooling, site, batch_size)
    layer_list = resolve_layers(loaded, layers)
    texts = list(texts) if not isinstance(texts, str) else texts
    ids = tokenize(loaded, texts, max_length=max_length, truncate=truncate)
    n, d, L = len(ids), site_width(loaded, site), len(layer_list)
    want = {
        "format": FORMAT,
        "model_id": loaded.model_id,
        "revision": loaded.revision,
        "dtype": loaded.dtype,
        "pooling": pooling,
        "site": site,
        "layers": layer_list,
        "dataset_hash": str(dataset_hash),
        "texts_sha256": texts_sha256(texts),
        "n": n,
        "d": d,
        "max_length": context_limit(loaded, max_length),
        "truncate": bool(truncate),
    }
    folder = Path(cache_dir)
    mpath, dpath = folder / MANIFEST, folder / DATA
    shape = (L, n, d)

    if mpath.exists():
        manifest = _read_manifest(mpath)
        diff = [k for k in _IDENTITY if manifest[k] != want[k]]
        if diff:
            lines = "; ".join(f"{k}: stored {manifest[k]!r}, requested {want[k]!r}" for k in diff)
            raise CacheMismatchError(
                f"the activation cache {folder} was made with different {', '.join(diff)} "
                f"({lines}). Pick another cache_dir for these settings, or delete {folder} "
                f"to recompute it."
            )
        data = _open_data(dpath, shape, "r")
        if manifest["complete"]:
            return data
        del data
    else:
        folder.mkdir(parents=True, exist_ok=True)
        np.lib.format.open_memmap(dpath, mode="w+", dtype=np.float32, shape=shape).flush()
        manifest = {**want, "order": "length", "n_done": 0, "complete": False}
        _write_manifest(mpath, manifest)

    n_done = manifest["n_done"]
    order = length_order(ids) if manifest["order"] == "length" else np.arange(n)
    offset = _open_data(dpath, shape, "r").offset
    from tqdm import tqdm

    bar = tqdm(
        total=n,
        initial=n_done,
        disable=not progress,
        desc=f"activations -> {folder.name}",
        unit="text",
    )
    try:
        with open(dpath, "r+b") as f:
            for rows, acts in pooled_batches(
                loaded,
                ids,
                layer_list,
                pooling=pooling,
                site=site,
                batch_size=batch_size,
                order=order[n_done:],
            ):
                for k in range(L):
                    for j, i in enumerate(rows):
                        f.seek(offset + 4 * d * (k * n + int(i)))
                        f.write(np.ascontiguousarray(acts[k, j], np.float32).tobytes())
                f.flush()
                os.fsync(f.fileno())
                manifest["n_done"] += len(rows)
                manifest["complete"] = manifest["n_done"] == n
                _write_manifest(mpath, manifest)
                bar.update(len(rows))
    finally:
        bar.close()
    return _open_data(dpath, shape, "r")
