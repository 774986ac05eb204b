"""The tree shows the architecture: imports point down the layers, no module imports
itself back through another, and the public surface keeps its size limits."""

import ast
import collections
from pathlib import Path

import pytest

import probejax

PACKAGE = Path(probejax.__file__).parent

# bottom to top; a module may import from its own layer or any layer below
LAYERS = {
    "io": 0,
    "core": 1,
    "metrics": 2,
    "solvers": 2,
    "datamodels": 2,
    "estimators": 3,
    "erasure": 3,
    "sweep": 3,
    "protocol": 4,
    "multiclass": 4,
    "theory": 4,
    "llm": 5,
    "abstain": 5,
    "sklearn": 5,
    "seq": 6,
    "reproduce": 7,
    "": 8,  # the top-level namespace re-exports the common path
    "cli": 9,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Every probejax module ``name`` imports, at module level or inside functions
    (an import inside a function still depends on what it imports)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [f"{target}.{a.name}" for a in node.names]
            else:
                target, names = node.module or "", []
            if target.startswith("probejax"):
                found.add(target)
                found.update(n for n in names if n in MODULES)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("probejax"))
    return {m for m in found if m in MODULES and m != name}


MODULES = _modules()
GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_subpackage_has_a_layer():
    assert {_layer(m) for m in MODULES} <= set(LAYERS)


def test_imports_point_down_the_layers():
    upward = [
        f"{a} imports {b}"
        for a, targets in GRAPH.items()
        for b in targets
        if LAYERS[_layer(b)] > LAYERS[_layer(a)]
    ]
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles():
    """No module reaches itself through the modules it imports (package ``__init__``
    files that only re-export their own children are part of the graph too)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = iter(range(10**9))

    def visit(v):
        index[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def _functions():
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield name, node


@pytest.mark.parametrize("limit", [12])
def test_no_library_function_takes_more_than_twelve_parameters(limit):
    """Options travel as spec objects; the command line's functions mirror flags and are
    exempt."""
    wide = []
    for name, fn in _functions():
        if _layer(name) == "cli":
            continue
        a = fn.args
        params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]
        if params and params[0].arg in ("self", "cls"):
            params = params[1:]
        if len(params) > limit:
            wide.append(f"{name}.{fn.name}: {len(params)}")
    assert not wide, wide


def test_no_estimator_name_outside_the_registry():
    """A registered estimator's name is never compared, looked up or styled outside
    ``probejax/estimators/`` and the command line."""
    names = set(probejax.estimators.registered())
    hits = collections.defaultdict(list)
    for name, path in MODULES.items():
        if _layer(name) in ("estimators", "cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                hits[name].append(node.value)
    assert not hits, dict(hits)


def test_the_top_level_namespace_is_the_common_path():
    public = [n for n in dir(probejax) if not n.startswith("_")]
    modules = [n for n in public if n in {m.split(".")[1] for m in MODULES if "." in m}]
    assert len(public) - len(modules) <= 25, public
