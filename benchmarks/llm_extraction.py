"""Activation extraction on the default SmolLM2-135M-Instruct: probejax against a bare
transformers forward pass, batches by token count against input order and float32
against bfloat16 on tweets, and the memory of the on-disk cache as n grows.

Command:  python benchmarks/llm_extraction.py                    (n = 320, cache n = 128, 512)
          python benchmarks/llm_extraction.py --only-batching       (the tweets table alone)
          python benchmarks/llm_extraction.py --n 64 --sizes 32 64 --tweets 96   (quick)
Expected runtime: about 2.5 minutes on 2 CPU cores (one torch thread), after the
one-off GGUF conversion of the default model (about 30 s, cached in ~/.cache/probejax).
Expected result: extract within ~0.8-1.0x of model(**batch) (it skips the LM head), and
a peak RSS growth of about 100 MiB for every n (the .npy file grows, memory does not).

Texts: "The city of X is in Y." statements from a small list of cities (true and
false countries, a few templates), batch size 16, in the same order on both sides.

Speed: `probejax.llm.extract` (all 30 blocks, "last" pooling: hooks read and pool every
block, the pass stops after the last block) against the same right-padded batches fed
to `model(**batch)` (transformers causal LM, logits over the whole vocabulary, no
hidden states kept) and to `model.model(**batch)` (the bare decoder stack, no LM head).
One warm-up batch each, then the median of --repeats timed passes.

Batching and dtype (--tweets texts of the bundled `sentiment` dataset, seed 0: tweets of
6 to 298 tokens): all 30 blocks, "last" pooling, batch 16, in float32 with the batches
cut from the texts in input order (what `extract` did before length order) and in order
of token count (`extract` now), and in bfloat16 in order of token count. Reported: the
padded tokens the batches carry, the seconds of one pass after a warm-up batch, and per
block the relative error ||A_bf16 - A_f32|| / ||A_f32|| of the pooled activations.
Measured 2026-11-26 (400 tweets, 2 torch threads, `--only-batching`): the batches carry
2.03x the real tokens in input order and 1.30x by token count; 27.1 s in input order,
17.6 s by token count, 6.8 s by token count in bfloat16; bfloat16's relative error
0.48% at block 0, growing to 1.37% at block 29.

Memory: `cached_activations` for each size in --sizes, each in a fresh subprocess after
loading the model and one warm-up batch; reported are the growth of the resident set's
peak (VmHWM, reset just before the call) and the tracemalloc peak of Python-side
allocations (numpy included) during the call. Batches are written to the .npy file as
they come, so both should stay flat while the file grows with n.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

CITIES = [
    ("Paris", "France"),
    ("Lyon", "France"),
    ("Berlin", "Germany"),
    ("Munich", "Germany"),
    ("Madrid", "Spain"),
    ("Seville", "Spain"),
    ("Rome", "Italy"),
    ("Milan", "Italy"),
    ("Tokyo", "Japan"),
    ("Osaka", "Japan"),
    ("Lima", "Peru"),
    ("Cairo", "Egypt"),
    ("Nairobi", "Kenya"),
    ("Toronto", "Canada"),
    ("Sydney", "Australia"),
    ("Mumbai", "India"),
    ("Oslo", "Norway"),
    ("Lisbon", "Portugal"),
    ("Dublin", "Ireland"),
    ("Seoul", "South Korea"),
]
TEMPLATES = [
    "The city of {} is in {}.",
    "{} is a city in {}.",
    "It is true that {} lies in {}.",
    "The city of {} is located in the country of {}.",
]


def make_texts(n: int) -> list[str]:
    """``n`` city statements, cycling through (template, city, country) with true and
    false countries."""
    out = []
    countries = [c for _, c in CITIES]
    k = 0
    while len(out) < n:
        t = TEMPLATES[k % len(TEMPLATES)]
        city, country = CITIES[(k // len(TEMPLATES)) % len(CITIES)]
        if (k // (len(TEMPLATES) * len(CITIES))) % 2:
            country = countries[(countries.index(country) + 3) % len(countries)]
        out.append(t.format(city, country))
        k += 1
    return out


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed(n: int, batch_size: int, repeats: int) -> dict:
    import torch

    from probejax.llm import extract, load_model
    from probejax.llm._extract import _batch_tensors, encode

    lm = load_model("default")
    texts = make_texts(n)
    ids = encode(lm, texts).ids
    batches = [_batch_tensors(lm, ids[i : i + batch_size]) for i in range(0, n, batch_size)]

    def bare(module):
        def run():
            with torch.inference_mode():
                for input_ids, mask, _ in batches:
                    module(input_ids=input_ids, attention_mask=mask, use_cache=False)

        return run

    extract(lm, texts[:batch_size], batch_size=batch_size)
    bare(lm.model)()  # warm-up over all shapes
    out = {
        "probejax extract (30 blocks, last)": _median_time(
            lambda: extract(lm, texts, batch_size=batch_size), repeats
        ),
        "transformers model(**batch)": _median_time(bare(lm.model), repeats),
        "transformers model.model(**batch) (no LM head)": _median_time(
            bare(lm.model.model), repeats
        ),
    }
    tokens = sum(len(r) for r in ids)
    return {"times": out, "tokens": tokens, "threads": torch.get_num_threads()}


def batching_and_dtype(n: int, batch_size: int) -> list[dict]:
    """One pass over ``n`` tweets per (dtype, order); see the module docstring."""
    from probejax.llm import load_dataset, load_model
    from probejax.llm._extract import encode, length_order, pooled_batches

    texts = load_dataset("sentiment", max_examples=n, seed=0).texts
    rows, ref = [], None
    for dtype, by_length in (("float32", False), ("float32", True), ("bfloat16", True)):
        lm = load_model("default", dtype=dtype)
        encoded = encode(lm, texts)
        ids = encoded.ids
        order = length_order(ids) if by_length else np.arange(len(ids))
        layers = list(range(lm.n_layers))
        kw = dict(pooling="last", site="block_output", batch_size=batch_size)
        for _ in pooled_batches(lm, encoded, layers, order=order[:batch_size], **kw):
            pass  # warm-up
        acts = np.zeros((lm.n_layers, len(ids), lm.d_model), np.float32)
        t0 = time.perf_counter()
        for idx, a in pooled_batches(lm, encoded, layers, order=order, **kw):
            acts[:, idx] = a
        seconds = time.perf_counter() - t0
        lengths = np.array([len(ids[i]) for i in order])
        padded = sum(
            lengths[i : i + batch_size].max() * len(lengths[i : i + batch_size])
            for i in range(0, len(lengths), batch_size)
        )
        row = {"dtype": dtype, "order": "token count" if by_length else "input",
               "seconds": seconds, "padded_over_real": padded / lengths.sum()}  # fmt: skip
        if ref is None:
            ref = acts
        elif dtype != "float32":
            err = np.linalg.norm(acts - ref, axis=(1, 2)) / np.linalg.norm(ref, axis=(1, 2))
            row["rel_error_first_last"] = (float(err[0]), float(err[-1]))
        rows.append(row)
    return rows


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(n: int, batch_size: int, cache_dir: str) -> None:
    """Run in a fresh process: measure one ``cached_activations`` call, print JSON."""
    from probejax.llm import ExtractionSpec, cached_activations, extract, load_model

    lm = load_model("default")
    texts = make_texts(n)
    extract(lm, texts[:batch_size], batch_size=batch_size)
    rss0 = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    tracemalloc.start()
    t0 = time.perf_counter()
    acts = cached_activations(
        lm, texts, f"bench-{n}", cache_dir, ExtractionSpec(batch_size=batch_size), progress=False
    )
    seconds = time.perf_counter() - t0
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    hwm = _status_kib("VmHWM")
    assert acts.shape == (lm.n_layers, n, lm.d_model) and np.isfinite(acts[:, -1]).all()
    result = {
        "n": n,
        "file_mib": os.path.getsize(Path(cache_dir) / "activations.npy") / 2**20,
        "rss_peak_growth_mib": (hwm - rss0) / 1024,
        "tracemalloc_peak_mib": py_peak / 2**20,
        "seconds": seconds,
    }
    print("RESULT " + json.dumps(result))


def memory(sizes: list[int], batch_size: int) -> list[dict]:
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, __file__, "--memory-child", str(n), "--batch-size",
                   str(batch_size), "--cache-dir", str(Path(tmp) / "cache")]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            line = next(x for x in out.splitlines() if x.startswith("RESULT "))
            rows.append(json.loads(line.removeprefix("RESULT ")))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=320, help="texts for the speed comparison")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 512])
    p.add_argument("--tweets", type=int, default=400, help="tweets for the batching table")
    p.add_argument("--only-batching", action="store_true", help="only the batching table")
    p.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.batch_size, args.cache_dir)
        return

    from probejax.llm._model import default_model_folder

    default_model_folder()  # convert the GGUF file once, outside the timings
    print(f"\n### {args.tweets} tweets, 30 blocks, batch {args.batch_size}\n")
    print("| dtype | batches in | padded / real tokens | seconds | rel. error block 0, 29 |")
    print("|---|---|---:|---:|---|")
    for r in batching_and_dtype(args.tweets, args.batch_size):
        err = r.get("rel_error_first_last")
        err = "" if err is None else f"{err[0]:.2%}, {err[1]:.2%}"
        print(
            f"| {r['dtype']} | {r['order']} order | {r['padded_over_real']:.2f} | "
            f"{r['seconds']:.1f} | {err} |"
        )
    if args.only_batching:
        return
    s = speed(args.n, args.batch_size, args.repeats)
    times = s["times"]
    base = times["transformers model(**batch)"]
    print(
        f"\n### Speed: n = {args.n} texts ({s['tokens']} tokens), batch {args.batch_size}, "
        f"{s['threads']} torch thread(s), median of {args.repeats}\n"
    )
    print("| pass | seconds | texts/s | time / model(**batch) |")
    print("|---|---:|---:|---:|")
    for name, t in times.items():
        print(f"| {name} | {t:.2f} | {args.n / t:.0f} | {t / base:.2f} |")

    rows = memory(args.sizes, args.batch_size)
    print(
        f"\n### Memory of cached_activations (30 blocks, last pooling, batch {args.batch_size})\n"
    )
    print("| n | .npy file (MiB) | peak RSS growth (MiB) | tracemalloc peak (MiB) | seconds |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']} | {r['file_mib']:.1f} | {r['rss_peak_growth_mib']:.1f} | "
            f"{r['tracemalloc_peak_mib']:.2f} | {r['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
