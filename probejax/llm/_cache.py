"""Pooled activations cached on disk, written batch by batch, resumable, and served
by layers and by texts.

Layout of a cache folder::

    cache_dir/manifest.json       what the files hold and how much of each is done
    cache_dir/activations.npy     float32 (L, n, d), a .npy file read back as a memmap
    cache_dir/activations-K.npy   further layers asked for later (manifest "parts")
    cache_dir/texts.sha256        the SHA-256 of each text, one per line, in row order

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

The cache serves what it holds:

- **Layers.** The manifest's top level describes ``activations.npy`` (its ``layers``,
  ``order``, ``n_done``, ``complete``); ``parts`` lists further files, each with the
  same four fields. A request is served from the complete files that hold its layers;
  only the layers none holds are extracted, into a new part (or by resuming an
  interrupted part that holds them). When one file holds the requested layers as a
  contiguous run in order the result is a memmap slice of it, otherwise a lazy
  :class:`probejax.io.LayerStack` reading one layer at a time.
- **Texts.** A request for a cache folder that does not exist yet, whose texts all
  occur in a complete sibling cache (same parent folder, same model, revision, dtype,
  pooling, site, token selection, token limit and truncation) that holds the requested
  layers, is served from that sibling's rows, read lazily, without extraction. A
  text's activations do not depend on the other texts of its batch (right padding),
  up to float rounding of differently shaped matmuls.

The manifest records the model (id, revision, dtype), the extraction settings
(pooling, site, token selection, token limit, truncation), the caller's
``dataset_hash``, a hash of the texts themselves, the shape (``d`` is the site's width),
and ``format``: the explicit version of the layout and of the extraction, bumped by hand
when either changes what is stored; a cache of another format is refused before its
other fields are read. No source text enters this identity, so editing a docstring or a
comment keeps every cache. A cache made with a different model, settings or texts is
never reused: :class:`CacheMismatchError` lists the differing fields.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..io._activations import LayerStack
from ..io._atomic import atomic_write
from ._extract import (
    Encoded,
    ExtractionSpec,
    check_texts,
    context_limit,
    encode,
    length_order,
    pooled_batches,
    resolve_layers,
    site_width,
)
from ._model import LoadedModel

# bumped by hand when the file layout or the extracted numbers change (module docstring);
# 2: the manifest names the extraction site "site" and ``d`` is the site's width
FORMAT = 2
ORDERS = ("length", "input")
MANIFEST = "manifest.json"
DATA = "activations.npy"
DIGESTS = "texts.sha256"
# what must be equal for a cache to serve a request (manifests without "selection",
# written before token masks and chat existed, hold the default selection, None)
_IDENTITY = (
    "format",
    "model_id",
    "revision",
    "dtype",
    "pooling",
    "site",
    "selection",
    "dataset_hash",
    "texts_sha256",
    "n",
    "d",
    "max_length",
    "truncate",
)
# what a sibling cache must share to serve some of its texts: all but which texts
_SIBLING = tuple(k for k in _IDENTITY if k not in ("dataset_hash", "texts_sha256", "n"))
_PART = ("layers", "order", "n_done", "complete")


class CacheMismatchError(ValueError):
    """The cache folder holds activations made with other settings, model or data."""


class CacheCorruptError(ValueError):
    """The cache folder's manifest or data file is unreadable or inconsistent."""


def text_digest(text: str) -> str:
    """SHA-256 of one text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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


def _check_part(path: Path, part: dict, n: int) -> None:
    n_done = part["n_done"]
    if not (isinstance(n_done, int) and 0 <= n_done <= n):
        raise CacheCorruptError(f"cache manifest {path}: n_done={n_done!r} is not in 0..{n}.")
    if part.setdefault("order", "input") not in ORDERS:
        raise CacheCorruptError(
            f"cache manifest {path}: order={part['order']!r} is not one of {ORDERS}."
        )
    if part["complete"] is not (n_done == n):
        raise CacheCorruptError(
            f"cache manifest {path}: complete={part['complete']!r} with n_done={n_done} of {n}."
        )
    layers = part.get("layers")
    if not (isinstance(layers, list) and layers and all(isinstance(i, int) for i in layers)):
        raise CacheCorruptError(f"cache manifest {path}: layers={layers!r} is not a list of ints.")


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
    manifest.setdefault("selection", None)
    manifest.setdefault("parts", [])
    manifest.setdefault("order", "input")  # caches begun before length order existed
    lacking = [k for k in (*_IDENTITY, *_PART) if k not in manifest]
    if lacking:
        raise CacheCorruptError(
            f"cache manifest {path} lacks the fields {lacking}; delete the folder "
            f"{path.parent} to recompute it."
        )
    _check_part(path, manifest, manifest["n"])
    for part in manifest["parts"]:
        if not (isinstance(part, dict) and all(k in part for k in ("file", *_PART))):
            raise CacheCorruptError(f"cache manifest {path}: part {part!r} lacks file or {_PART}.")
        _check_part(path, part, manifest["n"])
    return manifest


def _parts(manifest: dict) -> list[dict]:
    """Every data file of a cache, ``activations.npy`` first, as ``{file, layers, order,
    n_done, complete}``."""
    first = {"file": DATA, **{k: manifest[k] for k in _PART}}
    return [first, *manifest["parts"]]


def _store_part(manifest: dict, index: int, part: dict) -> None:
    if index == 0:
        manifest.update({k: part[k] for k in _PART})
    else:
        manifest["parts"][index - 1] = part


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
    extraction: ExtractionSpec = ExtractionSpec(),
    *,
    progress: bool = True,
):
    """:func:`probejax.llm.extract` through a resumable on-disk cache that serves the
    layers and texts it holds (module docstring).

    **Arguments:**

    - `loaded`, `texts`: as for :func:`probejax.llm.extract`.
    - `dataset_hash`: the caller's identifier of the data set version (recorded and
      compared; a hash of the texts is recorded and compared as well).
    - `cache_dir`: the cache folder (created if missing), one per (model, settings, data).
    - `extraction`: an :class:`probejax.llm.ExtractionSpec`: its layers (None: every
      block), pooling, site, token mask, chat wrapping, batch size, token limit and
      truncation (its ``dtype`` is the loaded model's business).
    - `progress`: show a tqdm progress bar while extracting.

    **Returns:** float32 ``(L, n, d)``, read-only: a memmap when one file of the cache
    holds the layers in order, else a lazy :class:`probejax.io.LayerStack`.

    Raises :class:`CacheMismatchError` when ``cache_dir`` holds a cache made with another
    model, revision, dtype, settings or data (each differing field with its stored and
    requested value), and :class:`CacheCorruptError` when its manifest or data file is
    unreadable or inconsistent. Invalid arguments raise ``ValueError`` as in ``extract``.
    """
    if not isinstance(extraction, ExtractionSpec):
        raise TypeError(f"extraction must be an ExtractionSpec, got {type(extraction).__name__}.")
    layer_list = resolve_layers(loaded, extraction.layers)
    texts = check_texts(texts)
    # tokenized on first use: a cache that holds everything asked for never tokenizes
    encoded = functools.cache(
        lambda: encode(
            loaded,
            texts,
            pooling=extraction.pooling,
            tokens=extraction.tokens,
            chat=extraction.chat,
            max_length=extraction.max_length,
            truncate=extraction.truncate,
        )
    )
    d = site_width(loaded, extraction.site)
    want = {
        "format": FORMAT,
        "model_id": loaded.model_id,
        "revision": loaded.revision,
        "dtype": loaded.dtype,
        "pooling": extraction.pooling,
        "site": extraction.site,
        "selection": extraction.selection(loaded.tokenizer),
        "dataset_hash": str(dataset_hash),
        "texts_sha256": texts_sha256(texts),
        "n": len(texts),
        "d": d,
        "max_length": context_limit(loaded, extraction.max_length),
        "truncate": bool(extraction.truncate),
    }
    folder = Path(cache_dir)
    mpath = folder / MANIFEST

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
    else:
        served = _from_sibling(folder, want, texts, layer_list)
        if served is not None:
            return served
        encoded()  # a bad text is reported before anything is written
        folder.mkdir(parents=True, exist_ok=True)
        _write_digests(folder, texts)
        manifest = {
            **want,
            "layers": layer_list,
            "order": "length",
            "n_done": 0,
            "complete": False,
            "parts": [],
        }
        np.lib.format.open_memmap(
            folder / DATA, mode="w+", dtype=np.float32, shape=(len(layer_list), len(texts), d)
        ).flush()
        _write_manifest(mpath, manifest)
    if not (folder / DIGESTS).is_file():
        _write_digests(folder, texts)  # a cache written before texts were served

    parts = _parts(manifest)
    held = {i for p in parts if p["complete"] for i in p["layers"]}
    missing = [i for i in layer_list if i not in held]
    if missing:
        index = next(
            (
                k
                for k, p in enumerate(parts)
                if not p["complete"] and set(missing) <= set(p["layers"])
            ),
            None,
        )
        if index is None:
            index = len(parts)
            name = _free_name(folder, parts)
            part = {
                "file": name,
                "layers": missing,
                "order": "length",
                "n_done": 0,
                "complete": False,
            }
            np.lib.format.open_memmap(
                folder / name, mode="w+", dtype=np.float32, shape=(len(missing), len(texts), d)
            ).flush()
            manifest["parts"].append({k: part[k] for k in ("file", *_PART)})
            _write_manifest(mpath, manifest)
            parts.append(part)
        _fill(loaded, encoded(), extraction, folder, manifest, index, parts[index], d, progress)
    return _serve(folder, _parts(manifest), layer_list, len(texts), d)


def _write_digests(folder: Path, texts: Sequence[str]) -> None:
    lines = "".join(text_digest(t) + "\n" for t in texts)
    atomic_write(folder / DIGESTS, lambda f: f.write(lines), binary=False)


def _read_digests(folder: Path, n: int) -> list[str] | None:
    try:
        lines = (folder / DIGESTS).read_text().split()
    except OSError:
        return None
    return lines if len(lines) == n else None


def _free_name(folder: Path, parts: list[dict]) -> str:
    used = {p["file"] for p in parts}
    k = len(parts)
    while f"activations-{k}.npy" in used:
        k += 1
    return f"activations-{k}.npy"


def _fill(loaded, encoded: Encoded, extraction, folder, manifest, index, part, d, progress):
    """Extract the texts ``part`` still lacks into its file, advancing the manifest after
    each synced batch."""
    from tqdm import tqdm

    n, L = len(encoded.ids), len(part["layers"])
    path = folder / part["file"]
    order = length_order(encoded.ids) if part["order"] == "length" else np.arange(n)
    offset = _open_data(path, (L, n, d), "r").offset
    bar = tqdm(
        total=n,
        initial=part["n_done"],
        disable=not progress,
        desc=f"activations -> {folder.name}",
        unit="text",
    )
    try:
        with open(path, "r+b") as f:
            for rows, acts in pooled_batches(
                loaded,
                encoded,
                part["layers"],
                pooling=extraction.pooling,
                site=extraction.site,
                batch_size=extraction.batch_size,
                order=order[part["n_done"] :],
            ):
                for k in range(L):
                    for j, i in enumerate(rows):
                        f.seek(offset + 4 * d * (k * n + int(i)))
                        f.write(np.ascontiguousarray(acts[k, j], np.float32).tobytes())
                f.flush()
                os.fsync(f.fileno())
                part["n_done"] += len(rows)
                part["complete"] = part["n_done"] == n
                _store_part(manifest, index, part)
                _write_manifest(folder / MANIFEST, manifest)
                bar.update(len(rows))
    finally:
        bar.close()


def _serve(folder: Path, parts: list[dict], layers: list[int], n: int, d: int, rows=None):
    """The requested layers from the complete parts: a memmap slice when one file holds
    them contiguously in order (and every row is asked for), else a lazy stack."""
    where = {}
    for p in parts:
        if p["complete"]:
            for k, i in enumerate(p["layers"]):
                where.setdefault(i, (p["file"], k))
    files = {f for f, _ in (where[i] for i in layers)}
    data = {
        f: _open_data(folder / f, (len(p["layers"]), n, d), "r")
        for p in parts
        if (f := p["file"]) in files
    }
    if rows is None and len(files) == 1:
        (f,) = files
        ks = [where[i][1] for i in layers]
        if ks == list(range(ks[0], ks[0] + len(ks))):
            return data[f][ks[0] : ks[-1] + 1]

    def read(j: int):
        f, k = where[layers[j]]
        return data[f][k] if rows is None else data[f][k][rows]

    return LayerStack(
        path=folder,
        format="cache",
        key=None,
        layers=tuple(layers),
        shape=(len(layers), n if rows is None else len(rows), d),
        dtype=np.dtype(np.float32),
        read=read,
    )


def _from_sibling(folder: Path, want: dict, texts: list[str], layers: list[int]):
    """The requested rows served lazily from a complete cache next to ``folder`` that
    holds every text and layer asked for with the same extraction, else ``None``."""
    parent = folder.parent
    if not parent.is_dir():
        return None
    digests = [text_digest(t) for t in texts]
    for other in sorted(parent.iterdir()):
        mpath = other / MANIFEST
        if other == folder or not mpath.is_file():
            continue
        try:
            manifest = _read_manifest(mpath)
        except (CacheCorruptError, CacheMismatchError):
            continue
        if any(manifest[k] != want[k] for k in _SIBLING):
            continue
        parts = _parts(manifest)
        held = {i for p in parts if p["complete"] for i in p["layers"]}
        if not set(layers) <= held:
            continue
        stored = _read_digests(other, manifest["n"])
        if stored is None:
            continue
        index = {}
        for r, h in enumerate(stored):
            index.setdefault(h, r)
        if not all(h in index for h in digests):
            continue
        rows = np.array([index[h] for h in digests], np.int64)
        return _serve(other, parts, layers, manifest["n"], manifest["d"], rows=rows)
    return None
