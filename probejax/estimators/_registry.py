"""Names for estimators: what the command line's ``--methods`` and the reproduction
configs use, so that no method name is ever an ``if`` inside the library.

A name resolves, in order, to

1. a registered estimator (:func:`register`; the built-ins below), or
2. an import path ``"package.module:attribute"`` or ``"path/to/file.py:attribute"``
   whose attribute is an :class:`Estimator` instance or a callable returning one
   (how a user's own estimator, defined in their own file, reaches the CLI).

Each registered entry has a human label (legends, tables), optionally a colour and a
line style for figures, and whether its stability is measured by default (``False``
for estimators whose refits are costly).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..io._imports import is_import_path, load_object
from ._base import Estimator


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered estimator: ``make()`` builds it; ``label`` names it in figures;
    ``stability`` says whether its stability is measured by default; ``color`` and
    ``linestyle`` (matplotlib's, ``None``: the figure's default) draw it in figures."""

    make: Callable[[], Estimator]
    label: str
    stability: bool = True
    color: str | None = None
    linestyle: str | None = None


_REGISTRY: dict[str, Entry] = {}


def register(
    name: str,
    make: Callable[[], Estimator],
    *,
    label: str | None = None,
    stability: bool = True,
    color: str | None = None,
    linestyle: str | None = None,
) -> None:
    """Register ``make`` (a zero-argument callable returning an estimator) as ``name``
    (the other arguments: the :class:`Entry`'s fields)."""
    if not name or ":" in name or "," in name:
        raise ValueError(f"estimator names must be non-empty without ':' or ',', got {name!r}.")
    _REGISTRY[name] = Entry(make, label or name, stability, color, linestyle)


def registered() -> dict[str, Entry]:
    """The registered estimators by name, in registration order."""
    return dict(_REGISTRY)


def get_entry(spec: str) -> Entry:
    """The :class:`Entry` for a registered name or an import path (module docstring)."""
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    if not is_import_path(spec):
        raise ValueError(
            f"unknown estimator {spec!r}; registered: {list(_REGISTRY)}, or give an import "
            "path 'package.module:name' or 'file.py:name'."
        )
    obj = load_object(spec, what="estimator")
    make = (lambda: obj) if isinstance(obj, Estimator) else obj
    if not callable(make):
        raise ValueError(f"estimator {spec!r} is neither an Estimator nor a callable.")
    label = spec.rpartition(":")[2]
    return Entry(lambda: _checked(make(), spec), label)


def _checked(est, spec: str) -> Estimator:
    if not isinstance(est, Estimator):
        raise ValueError(f"estimator {spec!r} gave {type(est).__name__}, not an Estimator.")
    return est


def get_estimator(spec: str, **kwargs) -> Estimator:
    """Build the estimator a name or import path stands for (``kwargs`` go to its
    factory, e.g. ``get_estimator("gcs", n_estimators=50)``)."""
    try:
        return get_entry(spec).make(**kwargs)
    except TypeError as err:
        if kwargs:
            raise ValueError(f"estimator {spec!r} does not take {kwargs}: {err}") from None
        raise


def resolve_methods(methods) -> tuple[dict[str, Estimator], dict[str, str], list[str]]:
    """Estimators from names: ``methods`` is a comma-separated string, a list of names
    or import paths, or a dict ``{name: kwargs | Estimator}``.

    An import path is named by its attribute (``"my_file.py:MyProbe"`` -> ``MyProbe``).

    **Returns:** ``(estimators, labels, stability_default)``: the estimators by name,
    their labels, and the names whose stability is measured by default.
    """
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not isinstance(methods, dict):
        methods = {m: {} for m in methods}
    names = {}
    for spec in methods:
        name = spec.rpartition(":")[2] if isinstance(spec, str) and ":" in spec else spec
        if name in names:
            raise ValueError(f"methods {names[name]!r} and {spec!r} share the name {name!r}.")
        names[name] = spec
    if not methods:
        raise ValueError("no methods given.")
    estimators, labels, stable = {}, {}, []
    for name, key in names.items():
        spec = methods[key]
        if isinstance(spec, Estimator):
            estimators[name], labels[name] = spec, name
            stable.append(name)
            continue
        entry = get_entry(key)
        estimators[name] = get_estimator(key, **dict(spec or {}))
        labels[name] = entry.label
        if entry.stability:
            stable.append(name)
    return estimators, labels, stable


def estimator_label(spec: str) -> str:
    """The human label of a name (the name itself when unknown)."""
    entry = _REGISTRY.get(spec)
    return entry.label if entry else spec
