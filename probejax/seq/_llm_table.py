r"""Every sequence-probe family next to a flat linear probe, on a frozen LM's tokens.

For each data set: per-token activations of one block of the model
(:class:`probejax.llm.ExtractionSpec`: its one layer, site, token limit), the
first token of every text masked out (it is the attention sink, with a residual norm
orders of magnitude above the others; :func:`probejax.llm.extract` leaves it out of
mean pooling for the same reason); one RAPTOR split (64/16/20, stratified) shared by
every probe; the baseline estimator (RAPTOR, ``probejax.estimators.raptor()``, by
default) by :func:`probejax.evaluate` on the tokens pooled as the extraction spec's
``pooling`` says (the last real token by default); each family, a
:class:`probejax.seq.SeqEstimator`, by :func:`probejax.evaluate` on the token sequences.

Command (the default SmolLM2-135M, layer 15 of 30, 600 examples of ``cities`` and
``sentiment``)::

    python -m probejax.seq._llm_table --out results/seq_probes_llm.json

``--quick`` shrinks it to a smoke run (two families, 120 examples, 60 steps).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

from ..core._probe import Diagnosed
from ..core._rows import Tokens
from ..estimators._base import Estimator
from ..estimators._raptor import raptor
from ..estimators._registry import registered
from ..llm._extract import ExtractionSpec
from ..protocol._engine import describe_estimator
from ..protocol._evaluate import Evaluation, evaluate
from ..protocol._splits import protocol_splits
from ._base import num_params
from ._estimator import SeqEstimator, SeqTokensProbe
from ._families import default_families
from ._grid import SeqGrid
from ._train import TrainConfig

DEFAULT_EXTRACTION = ExtractionSpec(layers=(15,), max_length=64, truncate=True)
_POOLED = {"last": "last token", "mean": "mean of the tokens", "max": "max over the tokens"}


def token_activations(loaded, data, extraction: ExtractionSpec, cache_dir=None):
    """``(X (n, T, d) float32, mask (n, T) bool)`` of the one block of ``extraction``,
    cached as ``.npz`` in ``cache_dir`` (keyed by model, revision, dtype, data, layer,
    site and token limit) when given."""
    from ..llm import extract

    (layer,) = extraction.layers
    tag = hashlib.sha256(
        f"{loaded.model_id}|{loaded.revision}|{loaded.dtype}|{data.hash}|{layer}|"
        f"{extraction.site}|{extraction.max_length}|{extraction.truncate}".encode()
    ).hexdigest()[:16]
    path = None if cache_dir is None else Path(cache_dir) / f"{data.name}-L{layer}-{tag}.npz"
    if path is not None and path.is_file():
        with np.load(path) as z:
            return z["X"], z["mask"]
    acts, mask = extract(
        loaded,
        list(data.texts),
        layers=[layer],
        site=extraction.site,
        per_token=True,
        max_length=extraction.max_length,
        truncate=extraction.truncate,
        batch_size=extraction.batch_size,
    )
    X = acts[0]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, X=X, mask=mask)
    return X, mask


def pooled(X, mask, pooling: str, last_mask=None) -> np.ndarray:
    """``(n, d)``: each text's tokens ``X`` ``(n, T, d)`` pooled over the real tokens
    of ``mask``: the last one (of ``last_mask`` when given), the mean or the max."""
    if pooling == "last":
        m = np.asarray(mask if last_mask is None else last_mask, bool)
        return X[np.arange(len(X)), m.sum(1) - 1]
    m = np.asarray(mask, bool)
    if pooling == "mean":
        return (X * m[..., None]).sum(1) / m.sum(1)[:, None]
    return np.where(m[..., None], X, -np.inf).max(1)


def registered_label(estimator: Estimator) -> str:
    """The label of the registry entry that builds ``estimator`` (same class, fields
    and arrays), or its class name when none does."""
    target = describe_estimator(estimator)
    for entry in registered().values():
        try:
            built = entry.make()
        except TypeError:
            continue
        if type(built) is type(estimator) and describe_estimator(built) == target:
            return entry.label
    return type(estimator).__name__


def probe_params(probe, d: int) -> int:
    """Trainable scalars of a fitted probe: a sequence probe's module, or ``d + 1`` for
    a linear probe."""
    inner = probe.probe if isinstance(probe, Diagnosed) else probe
    if isinstance(inner, SeqTokensProbe):
        return num_params(inner.fitted.probe)
    return d + 1 if probe.linear() is not None else num_params(inner)


def table_row(dataset: str, name: str, ev: Evaluation, params: int, seconds: float) -> dict:
    """One row of the table: test accuracy and AUROC, the selected configuration's
    ``val_accuracy`` and ``steps`` and every scalar diagnostic of the fit (a sequence
    probe's ``learning_rate``, ``weight_decay``, ``seed``; RAPTOR's ``C``, ``lam``)."""
    row = dict(
        dataset=dataset,
        probe=name,
        params=params,
        test_accuracy=float(ev.test_accuracy),
        test_auroc=float(ev.test_auroc),
    )
    info = {k: np.asarray(v) for k, v in ev.info.items()}
    i = int(info["index"]) if "index" in info else None
    for k, v in info.items():
        if v.ndim == 0 and k != "index":
            row[k] = v.item()
        elif k in ("val_accuracy", "steps") and v.ndim == 1 and i is not None:
            row[k] = v[i].item()
    row["seconds"] = seconds
    return row


def seq_probe_table(
    loaded=None,
    datasets: Sequence = ("cities", "sentiment"),
    *,
    extraction: ExtractionSpec = DEFAULT_EXTRACTION,
    max_examples: int | None = 600,
    seed: int = 0,
    families: dict[str, SeqEstimator] | Sequence[str] | None = None,
    baseline: Estimator | None = None,
    grid: SeqGrid = SeqGrid(learning_rates=(2e-3, 1e-2), weight_decays=(1e-2,), seeds=2),
    config: TrainConfig = TrainConfig(max_steps=200, eval_every=10, patience=5, batch_size=64),
    drop_first_token: bool = True,
    cache_dir=None,
    log: Callable[[str], None] | None = print,
) -> list[dict]:
    """Test accuracy and AUROC of every family and of the baseline, per data set.

    **Arguments:**

    - ``loaded``: a :class:`probejax.llm.LoadedModel`; None loads ``"default"`` (in
      ``extraction.dtype``).
    - ``datasets``: bundled names or :class:`probejax.llm.TextDataset` objects.
    - ``extraction``: :class:`probejax.llm.ExtractionSpec` with exactly one layer (the
      block), the site, ``batch_size``, ``max_length``, ``truncate``; its
      ``pooling`` pools the tokens for the baseline.
    - ``max_examples``: examples per bundled data set.
    - ``seed``: the PRNG seed of the data subsample, the shared split and every fit.
    - ``families``: ``name -> SeqEstimator``, or names picked from
      :func:`probejax.seq.default_families` (None: all of them).
    - ``baseline``: the flat estimator on the pooled tokens (None:
      ``probejax.estimators.raptor()``), labelled by its registry entry.
    - ``grid``, ``config``: :class:`SeqGrid` and :class:`TrainConfig` of the default
      families (the per-token MLP uses the span-max loss).
    - ``drop_first_token``: mask out each text's first token (kept for one-token texts).
    - ``cache_dir``: where to keep the extracted activations (None: no cache).
    - ``log``: called with one line per fit (None: silent).

    Every option is checked before the model is loaded; family names (which depend on
    the model's width) before any text is extracted.

    **Returns:** one dict per (data set, probe) (:func:`table_row`): ``dataset``,
    ``probe``, ``params``, ``test_accuracy``, ``test_auroc``, ``val_accuracy``, the
    fit's scalar diagnostics, ``seconds``.
    """
    from ..llm import load_dataset, load_model

    if not isinstance(extraction, ExtractionSpec):
        raise TypeError(
            f"extraction must be a probejax.llm.ExtractionSpec, got {type(extraction).__name__}."
        )
    if extraction.layers is None or len(extraction.layers) != 1:
        raise ValueError(
            f"extraction.layers must name one block, e.g. ExtractionSpec(layers=(15,)), "
            f"got {extraction.layers!r}."
        )
    if extraction.tokens is not None or extraction.chat is not None:
        raise ValueError(
            "sequence probes read every token of the plain texts: extraction.tokens and "
            "extraction.chat must be None here."
        )
    baseline = raptor() if baseline is None else baseline
    if not isinstance(baseline, Estimator):
        raise TypeError(
            f"baseline must be a probejax Estimator, e.g. probejax.estimators.raptor(), "
            f"got {type(baseline).__name__}."
        )
    if not isinstance(grid, SeqGrid):
        raise TypeError(f"grid must be a probejax.seq.SeqGrid, got {type(grid).__name__}.")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}.")
    if isinstance(families, dict):
        bad = [n for n, e in families.items() if not isinstance(e, SeqEstimator)]
        if bad:
            raise TypeError(f"families {bad} are not probejax.seq.SeqEstimator objects.")
    elif isinstance(families, str):
        raise TypeError(f"families must be a list of names, got the string {families!r}.")
    base_name = f"{registered_label(baseline)} on the {_POOLED[extraction.pooling]}"

    if loaded is None:
        loaded = load_model("default", dtype=extraction.dtype)
    fams = families
    if not isinstance(families, dict):
        fams = default_families(loaded.d_model, grid, config)
        if families is not None:
            unknown = [f for f in families if f not in fams]
            if unknown:
                raise ValueError(f"unknown families {unknown}; the defaults are {list(fams)}.")
            fams = {f: fams[f] for f in families}
    (layer,) = extraction.layers
    rows = []
    key = jax.random.key(seed)
    for spec in datasets:
        data = (
            load_dataset(spec, max_examples=max_examples, seed=seed)
            if isinstance(spec, str)
            else spec
        )
        t0 = time.perf_counter()
        X, full = token_activations(loaded, data, extraction, cache_dir=cache_dir)
        if log:
            log(
                f"[{data.name}] activations {X.shape} (layer {layer}) in {time.perf_counter() - t0:.1f}s"
            )
        mask = full.copy()
        if drop_first_token:
            mask[full.sum(1) > 1, 0] = False
        y = np.asarray(data.labels)
        splits = protocol_splits(key, y)
        d = X.shape[-1]
        t0 = time.perf_counter()
        flat = pooled(X, mask, extraction.pooling, last_mask=full)
        ev = evaluate(baseline, flat, y, key, split=splits)
        rows.append(
            table_row(data.name, base_name, ev, probe_params(ev.probe, d), time.perf_counter() - t0)
        )
        if log:
            log(_line(rows[-1]))
        tokens = Tokens(X, mask)
        for name, est in fams.items():
            t0 = time.perf_counter()
            ev = evaluate(est, tokens, y, key, split=splits)
            rows.append(
                table_row(data.name, name, ev, probe_params(ev.probe, d), time.perf_counter() - t0)
            )
            if log:
                log(_line(rows[-1]))
    return rows


def _line(r: dict) -> str:
    return (
        f"[{r['dataset']}] {r['probe']:<34} acc {r['test_accuracy']:.3f}  "
        f"AUROC {r['test_auroc']:.3f}  params {r['params']:>9,d}  {r['seconds']:.1f}s"
    )


def format_table(rows: list[dict]) -> str:
    """A Markdown table: probe x data set, test accuracy / AUROC, parameters."""
    names = list(dict.fromkeys(r["probe"] for r in rows))
    sets = list(dict.fromkeys(r["dataset"] for r in rows))
    get = {(r["probe"], r["dataset"]): r for r in rows}
    head = "| probe | params | " + " | ".join(f"{s} acc | {s} AUROC" for s in sets) + " |"
    out = [head, "|" + "---|" * (2 + 2 * len(sets))]
    for n in names:
        cells = []
        params = next(get[(n, s)]["params"] for s in sets if (n, s) in get)
        for s in sets:
            r = get.get((n, s))
            cells += (
                ["-", "-"] if r is None else [f"{r['test_accuracy']:.3f}", f"{r['test_auroc']:.3f}"]
            )
        out.append(f"| {n} | {params:,d} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layer", type=int, default=15)
    p.add_argument("--max-examples", type=int, default=600)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--datasets", nargs="+", default=["cities", "sentiment"])
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 families, 120 examples")
    a = p.parse_args(argv)
    kwargs = {}
    if a.quick:
        a.max_examples = min(a.max_examples, 120)
        kwargs = dict(
            families=("mean-linear", "MultiMax (H=10)"),
            config=TrainConfig(max_steps=60, eval_every=10, patience=3, batch_size=32),
            grid=SeqGrid(learning_rates=(3e-3,), seeds=1),
        )
    rows = seq_probe_table(
        datasets=a.datasets,
        extraction=ExtractionSpec(layers=(a.layer,), max_length=a.max_length, truncate=True),
        max_examples=a.max_examples,
        seed=a.seed,
        cache_dir=a.cache_dir,
        **kwargs,
    )
    print(format_table(rows))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
