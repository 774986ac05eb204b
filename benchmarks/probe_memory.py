"""Peak resident memory of ``probejax probe`` does not grow with the number of layers.

Writes activation files of ``--layers`` counts (default 4 and 32 layers of
``n x d`` float32, so the largest file is 8x the smallest), probes each one in a fresh
process (``probejax.llm.probe_activations`` on the file, one estimator, no stability),
and reports each process's peak resident set size (``ru_maxrss``) beside the file size,
side by side in one run. If the layers were loaded together, the peak would grow by
about the file-size difference; read a layer at a time, it stays flat.

    python benchmarks/probe_memory.py --out results/benchmarks/probe_memory.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys
from probejax.llm import probe_activations
path, labels, fmt = sys.argv[1], sys.argv[2], sys.argv[3]
res = probe_activations(path, labels, None, estimators=["mass_mean"], stability=None, log=None)
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mib": peak_kib / 1024, "best_layer": res.results["best"]["layer"]}))
"""


def _write(directory: Path, layers: int, n: int, d: int, fmt: str) -> Path:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    if fmt == "npy":
        path = directory / f"acts-{layers}.npy"
        X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(layers, n, d))
        for i in range(layers):
            X[i] = rng.normal(size=(n, d)).astype(np.float32)
            X[i, :, 0] += (i == layers // 2) * 2.0 * (2 * y - 1)
        X.flush()
        del X
    else:
        from probejax.io import write_activations

        path = directory / f"acts-{layers}.safetensors"
        acts = {}
        for i in range(layers):
            a = rng.normal(size=(n, d)).astype(np.float32)
            a[:, 0] += (i == layers // 2) * 2.0 * (2 * y - 1)
            acts[i] = a
        write_activations(path, acts, labels=y)
    np.save(directory / "labels.npy", y)
    return path


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default="4,32", help="comma-separated layer counts")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--format", default="npy", choices=["npy", "safetensors"])
    ap.add_argument("--out", default="results/benchmarks/probe_memory.json")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for L in (int(v) for v in args.layers.split(",")):
            path = _write(Path(tmp), L, args.n, args.d, args.format)
            run = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    str(path),
                    str(Path(tmp) / "labels.npy"),
                    args.format,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            got = json.loads(run.stdout.strip().splitlines()[-1])
            row = {"layers": L, "file_mib": path.stat().st_size / 2**20, **got}
            print(json.dumps(row), flush=True)
            rows.append(row)
            path.unlink()
    out = {
        "benchmark": "probe_memory",
        "command": "python benchmarks/probe_memory.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "n": args.n,
        "d": args.d,
        "format": args.format,
        "rows": rows,
        "peak_growth_mib": rows[-1]["peak_mib"] - rows[0]["peak_mib"],
        "file_growth_mib": rows[-1]["file_mib"] - rows[0]["file_mib"],
    }
    print(
        f"{rows[0]['layers']} -> {rows[-1]['layers']} layers: file +{out['file_growth_mib']:.0f} MiB, "
        f"peak RSS +{out['peak_growth_mib']:.0f} MiB"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
