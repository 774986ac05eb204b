r"""Every sequence-probe family next to the RAPTOR linear probe, on a frozen LM's tokens.

For each data set: per-token activations of one block (``block_output``) of the model,
texts truncated to ``max_length`` tokens, the first token of every text masked out (it
is the attention sink, with a residual norm orders of magnitude above the others;
:func:`probejax.llm.extract` leaves it out of mean pooling for the same reason); one
RAPTOR split (64/16/20, stratified) shared by every probe; RAPTOR
(``probejax.evaluate(probejax.estimators.raptor(), ...)``) on the last real token's activation of the same block;
each family by :func:`probejax.seq.fit_seq_probe` on the token sequences.

Command (the default SmolLM2-135M, layer 15 of 30, 600 examples of ``cities`` and
``sentiment``; a few minutes on 2 CPU cores)::

    python -m probejax.seq._llm_table --out results/seq_probes_llm.json

``--quick`` shrinks it to a smoke run (two families, 120 examples, 60 steps).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

from ..estimators._raptor import raptor
from ..protocol._evaluate import evaluate
from ..protocol._splits import protocol_splits
from ._attention import AttentionPoolProbe, MultiHeadAttentionProbe
from ._base import num_params
from ._efficient import EfficientProbe
from ._fit import fit_seq_probe
from ._gemini import (
    MeanLinearProbe,
    MLPAttentionProbe,
    MLPMeanProbe,
    MultiMaxProbe,
    RollingAttentionProbe,
)
from ._losses import TokenLoss
from ._mlp import MLPProbe
from ._moment import MomentProbe
from ._prototype import PrototypeProbe
from ._train import TrainConfig


def default_families(d: int) -> dict[str, Callable]:
    """``name -> make(key)`` for every family at its paper defaults (widths adapted to
    ``d`` where a divisibility constraint needs it), except Moment Probing's projection:
    :math:`p = 256` instead of 512, which quarters its second-order branch (the
    :math:`k \times k` cross-covariances and convolutions of every sequence, the cost
    that dominates on a CPU)."""
    m = math.gcd(d, 32)
    h = max(k for k in (8, 4, 2, 1) if d % k == 0)
    return {
        "mean-linear": lambda k: MeanLinearProbe(d, key=k),
        "mean-linear, EMA-max": lambda k: MeanLinearProbe(d, ema_alpha=0.5, key=k),
        "MLP-mean": lambda k: MLPMeanProbe(d, key=k),
        "attention pool (1 query)": lambda k: AttentionPoolProbe(d, key=k),
        f"EP (M={m})": lambda k: EfficientProbe(d, n_queries=m, key=k),
        f"multi-head attention ({h} heads)": lambda k: MultiHeadAttentionProbe(d, n_heads=h, key=k),
        "MLP attention (H=10)": lambda k: MLPAttentionProbe(d, key=k),
        "MultiMax (H=10)": lambda k: MultiMaxProbe(d, key=k),
        "rolling attention (H=10, w=10)": lambda k: RollingAttentionProbe(d, key=k),
        "MLP (last token)": lambda k: MLPProbe(d, pooling="last", key=k),
        "MLP per token (max)": lambda k: MLPProbe(d, mode="token", key=k),
        "moment (p=256)": lambda k: MomentProbe(d, hidden=256, key=k),
        "prototype (J=20)": lambda k: PrototypeProbe(d, key=k),
    }


def token_activations(
    loaded, data, layer: int, *, max_length: int, batch_size: int = 16, cache_dir=None
):
    """``(X (n, T, d) float32, mask (n, T) bool)`` of one block, cached as ``.npz`` in
    ``cache_dir`` (keyed by model, revision, data, layer and token limit) when given."""
    from ..llm import extract

    tag = hashlib.sha256(
        f"{loaded.model_id}|{loaded.revision}|{data.hash}|{layer}|{max_length}".encode()
    ).hexdigest()[:16]
    path = None if cache_dir is None else Path(cache_dir) / f"{data.name}-L{layer}-{tag}.npz"
    if path is not None and path.is_file():
        with np.load(path) as z:
            return z["X"], z["mask"]
    acts, mask = extract(
        loaded,
        list(data.texts),
        layers=[layer],
        per_token=True,
        max_length=max_length,
        truncate=True,
        batch_size=batch_size,
    )
    X = acts[0]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, X=X, mask=mask)
    return X, mask


def seq_probe_table(
    loaded=None,
    datasets: Sequence[str] = ("cities", "sentiment"),
    *,
    layer: int = 15,
    max_examples: int | None = 600,
    max_length: int = 64,
    seed: int = 0,
    families: dict[str, Callable] | Sequence[str] | None = None,
    learning_rates: Sequence[float] = (2e-3, 1e-2),
    weight_decays: Sequence[float] = (1e-2,),
    n_seeds: int = 2,
    config: TrainConfig = TrainConfig(max_steps=200, eval_every=10, patience=5, batch_size=64),
    drop_first_token: bool = True,
    cache_dir=None,
    log: Callable[[str], None] | None = print,
) -> list[dict]:
    """Test accuracy and AUROC of every family and of RAPTOR, per data set.

    **Arguments:**

    - ``loaded``: a :class:`probejax.llm.LoadedModel`; None loads ``"default"``.
    - ``datasets``: bundled names or :class:`probejax.llm.TextDataset` objects.
    - ``layer``: the block; ``max_examples``, ``max_length``: data and token limits.
    - ``seed``: the PRNG seed of the shared split and of every fit.
    - ``families``: ``name -> make(key)``, or names picked from
      :func:`default_families` (None: all of them).
    - ``learning_rates``, ``weight_decays``, ``n_seeds``, ``config``: as for
      :func:`probejax.seq.fit_seq_probe` (the per-token MLP uses the span-max loss).
    - ``drop_first_token``: mask out each text's first token (kept for one-token texts).
    - ``cache_dir``: where to keep the extracted activations (None: no cache).
    - ``log``: called with one line per fit (None: silent).

    **Returns:** one dict per (data set, probe): ``dataset``, ``probe``, ``params``,
    ``test_accuracy``, ``test_auroc``, ``val_accuracy``, ``learning_rate``,
    ``weight_decay``, ``steps``, ``score_stability``, ``seconds``; RAPTOR's row has
    ``C`` in place of the optimiser values.
    """
    from ..llm import load_dataset, load_model

    if loaded is None:
        loaded = load_model("default")
    rows = []
    key = jax.random.key(seed)
    for spec in datasets:
        data = (
            load_dataset(spec, max_examples=max_examples, seed=seed)
            if isinstance(spec, str)
            else spec
        )
        t0 = time.perf_counter()
        X, mask = token_activations(loaded, data, layer, max_length=max_length, cache_dir=cache_dir)
        lengths = mask.sum(1)
        if log:
            log(
                f"[{data.name}] activations {X.shape} (layer {layer}) in {time.perf_counter() - t0:.1f}s"
            )
        last = X[np.arange(len(X)), lengths - 1]
        if drop_first_token:
            mask = mask.copy()
            mask[lengths > 1, 0] = False
        y = np.asarray(data.labels)
        splits = protocol_splits(key, y)
        t0 = time.perf_counter()
        ev = evaluate(raptor(), last, y, split=splits)
        rows.append(
            dict(
                dataset=data.name,
                probe="RAPTOR (last token, linear)",
                params=X.shape[-1] + 1,
                test_accuracy=float(ev.test_accuracy),
                test_auroc=float(ev.test_auroc),
                val_accuracy=float(ev.info["val_accuracy"][ev.info["index"]]),
                C=float(ev.info["C"]),
                seconds=time.perf_counter() - t0,
            )
        )
        if log:
            log(_line(rows[-1]))
        fams = default_families(X.shape[-1])
        if isinstance(families, dict):
            fams = families
        elif families is not None:
            unknown = [f for f in families if f not in fams]
            if unknown:
                raise ValueError(f"unknown families {unknown}; the defaults are {list(fams)}.")
            fams = {f: fams[f] for f in families}
        for name, make in fams.items():
            cfg = config
            if "per token" in name:
                cfg = dataclasses.replace(config, loss=TokenLoss())
            t0 = time.perf_counter()
            r = fit_seq_probe(
                make,
                X,
                mask,
                y,
                key,
                learning_rates=learning_rates,
                weight_decays=weight_decays,
                n_seeds=n_seeds,
                config=cfg,
                splits=splits,
            )
            i = int(r.index)
            rows.append(
                dict(
                    dataset=data.name,
                    probe=name,
                    params=num_params(r.probe.probe),
                    test_accuracy=float(r.accuracy),
                    test_auroc=float(r.auroc),
                    val_accuracy=float(r.val_accuracy[i]),
                    learning_rate=float(r.learning_rate[i]),
                    weight_decay=float(r.weight_decay[i]),
                    steps=int(r.steps[i]),
                    score_stability=float(r.score_stability),
                    seconds=time.perf_counter() - t0,
                )
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
            learning_rates=(3e-3,),
            n_seeds=1,
        )
    rows = seq_probe_table(
        datasets=a.datasets,
        layer=a.layer,
        max_examples=a.max_examples,
        max_length=a.max_length,
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
