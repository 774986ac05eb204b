"""A labelled text dataset's activations at one site, written as a shareable file.

:func:`export_activations` extracts through the activation cache
(:func:`probejax.llm.cached_activations`, the folder :func:`llm_sweep
<probejax.llm.llm_sweep>` uses, so a sweep and an export of the same extraction share
it) and writes the ``.safetensors`` form of :func:`probejax.io.write_activations`: one
``(n, width)`` tensor ``layers.<i>`` per block, ``labels``, and a JSON metadata entry
that :func:`probejax.llm.probe_activations` (``probejax probe FILE``) reads back:

- ``model``, ``revision``, ``dtype``, ``n_layers`` (the model's depth), ``d``;
- ``site``, ``pooling``, ``layers``, ``max_length``, ``truncate``;
- ``dataset``, ``dataset_hash``, ``source``, ``licence``, ``label_names``, ``n``;
- ``texts_sha256``: SHA-256 of the texts, each length-prefixed (as the activation
  cache's manifest records it), so a reader can check which texts the rows are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..io._activations import write_activations
from ._cache import texts_sha256
from ._datasets import TextDataset, load_dataset
from ._model import LoadedModel, load_model
from ._sweep import ExtractionSpec, _resolve_layers, cached_layers


@dataclasses.dataclass(frozen=True)
class ExportedActivations:
    """What :func:`export_activations` wrote: ``path``, the ``metadata`` entry, the
    array ``shape`` ``(layers, n, width)`` and the activation ``cache`` folder read."""

    path: Path
    metadata: dict
    shape: tuple[int, int, int]
    cache: Path


def export_activations(
    model: str | LoadedModel,
    data: str | TextDataset,
    out: str | Path,
    *,
    extraction: ExtractionSpec = ExtractionSpec(),
    cache_root: str | Path | None = None,
    log: Callable[[str], None] | None = print,
) -> ExportedActivations:
    """Extract ``data``'s activations (cached) and write them to ``out``.

    **Arguments:**

    - ``model``: ``"default"``, a local folder, a hub id, or a :class:`LoadedModel`.
    - ``data``: a registered dataset name, a CSV/JSONL path, or a :class:`TextDataset`.
    - ``out``: the ``.safetensors`` file to write (atomically).
    - ``extraction``: an :class:`~probejax.llm.ExtractionSpec` (layers, pooling, site,
      batch size, length limits, dtype); the site is checked against the model before
      any text is extracted.
    - ``cache_root``: the activation cache root (default ``$PROBEJAX_CACHE`` or
      ``~/.cache/probejax``).
    - ``log``: receives progress lines (``None``: silent, progress bar off).

    **Returns:** an :class:`ExportedActivations`.

    Raises ``ValueError`` before the model is loaded when ``out`` is not a
    ``.safetensors`` path or the data does not load, and before extraction when the
    model has no such site or layers.
    """
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"out must be a .safetensors file, got {out}.")
    if not isinstance(extraction, ExtractionSpec):
        raise TypeError(f"extraction must be an ExtractionSpec, got {type(extraction).__name__}.")
    progress = log is not None
    log = log or (lambda s: None)
    dataset = data if isinstance(data, TextDataset) else load_dataset(data)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, dtype=extraction.dtype)
    layers = _resolve_layers(extraction, loaded.n_layers)
    X, cache = cached_layers(loaded, dataset, extraction, layers, cache_root, progress)
    metadata = {
        "model": loaded.model_id,
        "revision": loaded.revision,
        "dtype": loaded.dtype,
        "n_layers": loaded.n_layers,
        "d": int(X.shape[2]),
        "site": extraction.site,
        "pooling": extraction.pooling,
        **extraction.record(loaded.tokenizer, dataset.texts),
        "layers": list(layers),
        "max_length": extraction.max_length,
        "truncate": extraction.truncate,
        "dataset": dataset.name,
        "dataset_hash": dataset.hash,
        "source": dataset.source,
        "licence": dataset.licence,
        "label_names": list(dataset.label_names),
        "n": len(dataset),
        "texts_sha256": texts_sha256(dataset.texts),
    }
    write_activations(
        out,
        {i: np.asarray(X[k]) for k, i in enumerate(layers)},
        labels=np.asarray(dataset.labels, np.int8),
        metadata=metadata,
    )
    log(f"{out}: {len(layers)} layers of {X.shape[1]} x {X.shape[2]} at {extraction.site!r}")
    return ExportedActivations(out, metadata, tuple(int(s) for s in X.shape), cache)
