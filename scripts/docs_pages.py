"""Write the API reference pages from the modules' public names, never by hand.

Command: ``python scripts/docs_pages.py`` writes ``docs/api/<module>.md``, one page per
public module, listing every public name (the module's ``__all__``, else its explicit
re-exports ``from ._x import name as name`` and the public names it defines), read from
the source without importing it; ``--names`` prints those names.
"""

from __future__ import annotations

import ast
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


if __name__ == "__main__":
    if "--names" in sys.argv:
        for _, m in API_MODULES:
            print(m, public_names(m))
    else:
        for path, text in api_pages().items():
            path.write_text(text)
