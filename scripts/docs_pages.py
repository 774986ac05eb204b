"""Write the API reference pages from the modules' public names, never by hand.

Command: ``python scripts/docs_pages.py`` writes ``docs/api/<module>.md``, one page per
public module, listing every public name (the module's ``__all__``, else its explicit
re-exports ``from ._x import name as name`` and the public names it defines), read from
the source without importing it; ``--names`` prints those names.

It also writes the results, benchmark and models pages (``docs/results/``) and the
README's headline block from the small JSON files committed under ``docs/data/``, never
typed by hand. ``python scripts/docs_pages.py --data`` refreshes those files from a
run's outputs (``results/headline/*/results.json``, ``results/benchmarks/*.json``, and
``results/llm-*/`` for the models table: each the ``--out`` folder of a ``probejax llm
sweep`` run under ``/usr/bin/time -v -o <folder>/time.txt``), recording the machine that
produced them.
"""

from __future__ import annotations

import ast
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# (page name, module) in the order of the site's navigation
API_MODULES = [
    ("probejax", "probejax"),
    ("estimators", "probejax.estimators"),
    ("protocol", "probejax.protocol"),
    ("metrics", "probejax.metrics"),
    ("solvers", "probejax.solvers"),
    ("sweep", "probejax.sweep"),
    ("theory", "probejax.theory"),
    ("datamodels", "probejax.datamodels"),
    ("llm", "probejax.llm"),
    ("seq", "probejax.seq"),
    ("erasure", "probejax.erasure"),
    ("multiclass", "probejax.multiclass"),
    ("abstain", "probejax.abstain"),
    ("sklearn", "probejax.sklearn"),
    ("core", "probejax.core"),
    ("io", "probejax.io"),
    ("reproduce", "probejax.reproduce"),
]


# --------------------------------------------------------------------------- API pages


def module_source(module: str) -> Path:
    """The file of ``module`` (a package's ``__init__.py``) under the repository root."""
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _is_submodule(package: Path, node: ast.ImportFrom, name: str) -> bool:
    if node.level == 0 or not package.name == "__init__.py":
        return False
    base = package.parent
    for _ in range(node.level - 1):
        base = base.parent
    if node.module:
        base = base.joinpath(*node.module.split("."))
    return (base / name).is_dir() or (base / f"{name}.py").is_file()


def public_names(module: str) -> list[str]:
    """The public names of ``module``, read from its source: ``__all__`` when it has one,
    else every explicit re-export (``from ._x import name as name``, submodules excluded)
    and every public function, class or assignment it defines. Sorted."""
    path = module_source(module)
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id == "__all__":
                    return sorted(ast.literal_eval(node.value))
                if isinstance(t, ast.Name) and not t.id.startswith("_"):
                    names.add(t.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                if alias.asname == alias.name and not alias.name.startswith("_"):
                    if not _is_submodule(path, node, alias.name):
                        names.add(alias.name)
    return sorted(names)


def api_page(module: str) -> str:
    members = "".join(f"        - {name}\n" for name in public_names(module))
    return (
        f"# `{module}`\n\n"
        "<!-- written by scripts/docs_pages.py from the module's public names -->\n\n"
        f"::: {module}\n"
        "    options:\n"
        "      members:\n"
        f"{members}"
    )


def api_pages() -> dict[Path, str]:
    return {DOCS / "api" / f"{page}.md": api_page(module) for page, module in API_MODULES}


# ------------------------------------------------------------- results and benchmarks

DATA = DOCS / "data"
HEADLINE_START = "<!-- headline:start (written by scripts/docs_pages.py --readme from docs/data/headline.json) -->"
HEADLINE_END = "<!-- headline:end -->"


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def trim_headline(results_dir: Path) -> dict:
    """The headline's numbers from a run's results files: per estimator its best layer,
    best and mean test accuracy (RAPTOR's Table 1 reports both), with the run's
    command, config hash, code provenance and machine."""
    llm = json.loads((results_dir / "headline" / "llm" / "results.json").read_text())
    rows = []
    for res in llm["datasets"].values():
        dataset = res["dataset"]["name"]
        split = res.get("split", {}).get("kind", "random")
        for name, r in res["estimators"].items():
            acc = [a for a in r["test_accuracy"] if a is not None]
            best = max(range(len(acc)), key=acc.__getitem__)
            rows.append(
                {
                    "dataset": dataset,
                    "split": split,
                    "estimator": res.get("labels", {}).get(name, name),
                    "best_layer": res["layers"][best],
                    "best_accuracy": acc[best],
                    "mean_accuracy": sum(acc) / len(acc),
                }
            )
        model = res["model"]["id"]
    return {
        "command": "probejax reproduce",
        "model": model,
        "config_hash": llm.get("config_hash"),
        "code": llm.get("versions", {}).get("code"),
        "machine": machine(),
        "rows": rows,
    }


def headline_table(data: dict | None) -> str:
    if data is None:
        return "Not generated yet: run `probejax reproduce`, then `python scripts/docs_pages.py --data`.\n"
    lines = [
        f"{data['model']}, last-token block outputs, test accuracy of each method at its "
        "best layer and averaged over layers, on the authors' random split and on a split "
        "keeping the dataset's groups whole (no country or city in both train and test):",
        "",
        "| dataset | split | method | best layer | best accuracy | mean over layers |",
        "|---|---|---|---:|---:|---:|",
    ]
    order = {"random": 0, "grouped": 1}
    rows = sorted(
        data["rows"],
        key=lambda r: (r["dataset"], order.get(r.get("split", "random"), 2), -r["best_accuracy"]),
    )
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r.get('split', 'random')} | {r['estimator']} | "
            f"{r['best_layer']} | {r['best_accuracy']:.3f} | {r['mean_accuracy']:.3f} |"
        )
    code = data.get("code") or {}
    m = data["machine"]
    lines += [
        "",
        f"Produced by `{data['command']}` (config {str(data.get('config_hash'))[:12]}, "
        f"probejax {code.get('probejax', '?')}, commit {str(code.get('git'))[:12]}) on "
        f"{m['platform']}, {m['cpus']} CPUs, Python {m['python']}.",
    ]
    return "\n".join(lines) + "\n"


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def readme_with_headline(text: str) -> str:
    """``text`` with its headline block replaced by :func:`headline_table`'s."""
    a = text.index(HEADLINE_START) + len(HEADLINE_START)
    b = text.index(HEADLINE_END)
    return text[:a] + "\n" + headline_table(_read(DATA / "headline.json")) + text[b:]


def benchmark_page() -> str:
    lines = [
        "# Benchmarks",
        "",
        "<!-- written by scripts/docs_pages.py from docs/data/benchmarks/ -->",
        "",
    ]
    files = sorted((DATA / "benchmarks").glob("*.json")) if (DATA / "benchmarks").exists() else []
    if not files:
        lines.append(
            "Not generated yet: run a benchmark in `benchmarks/`, then `python scripts/docs_pages.py --data`."
        )
    for f in files:
        b = json.loads(f.read_text())
        m = b.get("machine", {})
        lines += [
            f"## {b.get('benchmark', f.stem)}",
            "",
            f"`{b.get('command', '?')}` on {m.get('platform', '?')}, {m.get('cpus', '?')} CPUs.",
            "",
        ]
        rows = b.get("rows", [])
        if rows:
            keys = list(rows[0])
            lines += ["| " + " | ".join(keys) + " |", "|" + "---:|" * len(keys)]
            for r in rows:
                lines.append(
                    "| "
                    + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values())
                    + " |"
                )
            lines.append("")
    return "\n".join(lines) + "\n"


def results_page() -> str:
    return (
        "# Headline results\n\n<!-- written by scripts/docs_pages.py from docs/data/headline.json -->\n\n"
        + headline_table(_read(DATA / "headline.json"))
    )


def _time_log(path: Path) -> dict:
    """The command, wall time and peak memory that ``/usr/bin/time -v`` wrote."""
    out: dict = {}
    for line in path.read_text().splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "Command being timed":
            out["argv"] = value.strip().strip('"').split()
        elif key.startswith("Elapsed (wall clock) time"):
            seconds = 0.0
            for part in value.strip().split(":"):
                seconds = 60 * seconds + float(part)
            out["wall_seconds"] = seconds
        elif key in ("User time (seconds)", "System time (seconds)"):
            out["cpu_seconds"] = out.get("cpu_seconds", 0.0) + float(value)
        elif key == "Maximum resident set size (kbytes)":
            out["peak_rss_mib"] = int(value) / 1024
        elif key == "Exit status":
            out["exit_status"] = int(value)
    return out


def _command(argv: list[str]) -> str:
    """``argv`` as typed from the repository root: the executable's bare name, paths
    under the root relative to it."""
    words = [Path(argv[0]).name]
    for a in argv[1:]:
        words.append(os.path.relpath(a, ROOT) if a.startswith(str(ROOT) + os.sep) else a)
    return " ".join(words)


def _safetensors_params(folder: Path) -> int | None:
    """Parameters stored in a model folder's safetensors files (tied weights are stored
    once), read from the files' headers."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        for name, t in header.items():
            if name != "__metadata__":
                n = 1
                for k in t["shape"]:
                    n *= k
                total += n
    return total


def _model_folder(model_id: str) -> Path | None:
    """The folder a sweep's model was loaded from: an embedded model's converted folder,
    or the model id itself when it is a folder."""
    from probejax.llm._model import EMBEDDED_MODELS

    for entry in EMBEDDED_MODELS.values():
        if entry.model_id == model_id:
            return entry.converted_folder()
    return Path(model_id) if Path(model_id).is_dir() else None


def trim_models(results_dir: Path) -> dict:
    """The models table's numbers from ``results/llm-*/``: per sweep the model's blocks,
    width and parameters, the primary estimator's (RAPTOR's) best layer, its test
    accuracy there and averaged over layers, the extraction and whole-command wall
    times, peak memory, the command, code provenance and machine."""
    rows = []
    for folder in sorted(results_dir.glob("llm-*")):
        if not ((folder / "results.json").exists() and (folder / "time.txt").exists()):
            continue
        r = json.loads((folder / "results.json").read_text())
        timed = _time_log(folder / "time.txt")
        if timed.get("exit_status") != 0:
            continue
        primary = r["best"]["estimator"]
        acc = [a for a in r["estimators"][primary]["test_accuracy"] if a is not None]
        model_folder = _model_folder(r["model"]["id"])
        rows.append(
            {
                "model": r["model"]["id"],
                "revision": r["model"]["revision"],
                "dtype": r["model"]["dtype"],
                "n_layers": r["model"]["n_layers"],
                "d": r["model"]["d"],
                "params": _safetensors_params(model_folder) if model_folder else None,
                "dataset": r["dataset"]["name"],
                "n_texts": r["dataset"]["n"],
                "split": r.get("split", {}).get("kind"),
                "stability_layers": len((r.get("stability") or {}).get("layers", [])),
                "estimator": r.get("labels", {}).get(primary, primary),
                "best_layer": r["best"]["layer"],
                "best_accuracy": r["best"]["test_accuracy"],
                "mean_accuracy": sum(acc) / len(acc),
                "extract_seconds": r.get("extract_seconds"),
                "wall_seconds": timed["wall_seconds"],
                "cpu_seconds": timed.get("cpu_seconds"),
                "peak_rss_mib": timed.get("peak_rss_mib"),
                "command": _command(timed["argv"]),
                "code": r.get("versions", {}).get("code") or _store_code(folder / "store"),
            }
        )
    return {"machine": machine(), "rows": rows}


def _store_code(store: Path) -> dict | None:
    """The code provenance a sweep's result stores recorded (``results.json`` of
    ``probejax llm sweep`` has none of its own)."""
    for manifest in sorted(store.glob("*/manifest.json")):
        code = json.loads(manifest.read_text()).get("code")
        if code:
            return code
    return None


def models_page() -> str:
    data = _read(DATA / "models.json")
    lines = [
        "# Models compared",
        "",
        "<!-- written by scripts/docs_pages.py from docs/data/models.json -->",
        "",
    ]
    if not data or not data["rows"]:
        lines.append(
            "Not generated yet: run `/usr/bin/time -v -o results/llm-NAME/time.txt probejax llm "
            "sweep --model NAME --out results/llm-NAME`, then `python scripts/docs_pages.py --data`."
        )
        return "\n".join(lines) + "\n"
    rows = data["rows"]
    first = rows[0]
    lines += [
        f"The default sweep (`probejax llm sweep`: dataset {first['dataset']}, "
        f"{first['n_texts']} texts, {first['split']} split, last-token block outputs, "
        f"RAPTOR and its baselines on every layer, stability on {first['stability_layers']} "
        f"layers) on each embedded model, {first['estimator']}'s test accuracy at its best "
        "layer and averaged over "
        "layers; the extraction's wall time, and the whole command's wall and CPU time (model "
        "load, extraction, every fit) and peak memory:",
        "",
        "| model | layers | d | parameters | dtype | best layer | accuracy there | mean over layers "
        "| extraction | sweep wall time | CPU time | peak memory |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        params = f"{r['params'] / 1e6:.1f}M" if r.get("params") else "?"
        lines.append(
            f"| {r['model']} | {r['n_layers']} | {r['d']} | {params} | {r['dtype']} | "
            f"{r['best_layer']} | {r['best_accuracy']:.3f} | {r['mean_accuracy']:.3f} | "
            f"{r['extract_seconds']:.0f} s | {r['wall_seconds'] / 60:.1f} min | "
            f"{r['cpu_seconds'] / 60:.1f} min | {r['peak_rss_mib'] / 1024:.1f} GiB |"
        )
    m = data["machine"]
    lines += ["", "Produced by, each under `/usr/bin/time -v`:", ""]
    for r in rows:
        code = r.get("code") or {}
        lines.append(
            f"- `{r['command']}` (probejax {code.get('probejax', '?')}, commit "
            f"{str(code.get('git'))[:12]}, revision {r['revision']})"
        )
    lines += [
        "",
        f"on {m['platform']}, {m['cpus']} CPUs, Python {m['python']}, one run at a time.",
    ]
    return "\n".join(lines) + "\n"


def generated_pages() -> dict[Path, str]:
    """Every page this script writes, by path."""
    pages = api_pages()
    pages[DOCS / "results" / "index.md"] = results_page()
    pages[DOCS / "results" / "benchmarks.md"] = benchmark_page()
    pages[DOCS / "results" / "models.md"] = models_page()
    pages[ROOT / "README.md"] = readme_with_headline((ROOT / "README.md").read_text())
    return pages


def refresh_data(results_dir: Path) -> None:
    DATA.mkdir(exist_ok=True)
    if (results_dir / "headline" / "llm" / "results.json").exists():
        (DATA / "headline.json").write_text(json.dumps(trim_headline(results_dir), indent=1) + "\n")
    models = trim_models(results_dir)
    if models["rows"]:
        (DATA / "models.json").write_text(json.dumps(models, indent=1) + "\n")
    bench = results_dir / "benchmarks"
    if bench.exists():
        (DATA / "benchmarks").mkdir(exist_ok=True)
        for f in bench.glob("*.json"):
            b = json.loads(f.read_text())
            b.setdefault("machine", {}).update(
                {k: v for k, v in machine().items() if k not in b["machine"]}
            )
            (DATA / "benchmarks" / f.name).write_text(json.dumps(b, indent=1) + "\n")


if __name__ == "__main__":
    if "--names" in sys.argv:
        for _, m in API_MODULES:
            print(m, public_names(m))
    else:
        if "--data" in sys.argv:
            refresh_data(ROOT / "results")
        for path, text in generated_pages().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
