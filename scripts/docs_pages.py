"""Write the API reference pages from the modules' public names, never by hand.

Command: ``python scripts/docs_pages.py`` writes ``docs/api/<module>.md``, one page per
public module, listing every public name (the module's ``__all__``, else its explicit
re-exports ``from ._x import name as name`` and the public names it defines), read from
the source without importing it; ``--names`` prints those names.

It also writes the results and benchmark pages (``docs/results/``) and the README's
headline block from the small JSON files committed under ``docs/data/``, never typed by
hand. ``python scripts/docs_pages.py --data`` refreshes those files from a run's
outputs (``results/headline/*/results.json``, ``results/benchmarks/*.json``), recording
the machine that produced them.
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
    for dataset, res in llm["datasets"].items():
        for name, r in res["estimators"].items():
            acc = [a for a in r["test_accuracy"] if a is not None]
            best = max(range(len(acc)), key=acc.__getitem__)
            rows.append(
                {
                    "dataset": dataset,
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
        "best layer and averaged over layers:",
        "",
        "| dataset | method | best layer | best accuracy | mean over layers |",
        "|---|---|---:|---:|---:|",
    ]
    for r in sorted(data["rows"], key=lambda r: (r["dataset"], -r["best_accuracy"])):
        lines.append(
            f"| {r['dataset']} | {r['estimator']} | {r['best_layer']} | "
            f"{r['best_accuracy']:.3f} | {r['mean_accuracy']:.3f} |"
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
                    + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in r.values())
                    + " |"
                )
            lines.append("")
    return "\n".join(lines) + "\n"


def results_page() -> str:
    return (
        "# Headline results\n\n<!-- written by scripts/docs_pages.py from docs/data/headline.json -->\n\n"
        + headline_table(_read(DATA / "headline.json"))
    )


def generated_pages() -> dict[Path, str]:
    """Every page this script writes, by path."""
    pages = api_pages()
    pages[DOCS / "results" / "index.md"] = results_page()
    pages[DOCS / "results" / "benchmarks.md"] = benchmark_page()
    pages[ROOT / "README.md"] = readme_with_headline((ROOT / "README.md").read_text())
    return pages


def refresh_data(results_dir: Path) -> None:
    DATA.mkdir(exist_ok=True)
    if (results_dir / "headline" / "llm" / "results.json").exists():
        (DATA / "headline.json").write_text(json.dumps(trim_headline(results_dir), indent=1) + "\n")
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
