"""Import paths: how a user's own object (an estimator, a dataset loader), defined in
their own file or package, reaches the library and the command line by name.

An import path is ``"package.module:name"`` (the module is imported) or
``"path/to/file.py:name"`` (the file is executed once as a module of its own, cached by
its resolved path); ``name`` may be dotted (``"module:Class.attribute"``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

_FORMS = "'package.module:name' or 'path/to/file.py:name'"


def is_import_path(spec) -> bool:
    """Whether ``spec`` has the form of an import path (a string with a ``:``); whether it
    names anything is for :func:`load_object` to say."""
    return isinstance(spec, str) and ":" in spec


def load_object(spec: str, *, what: str = "object"):
    """The object an import path names.

    **Arguments:**

    - ``spec``: ``"package.module:name"`` or ``"path/to/file.py:name"`` (module docstring).
    - ``what``: what the object is for (``"estimator"``, ``"dataset"``), named in errors.

    **Returns:** the attribute ``name`` of the module.

    **Raises:** ``ValueError`` naming ``what`` and ``spec`` for a string that is not an
    import path, a missing file, a module that cannot be imported, a syntax error in the
    file, or a missing attribute. An exception raised while the user's file runs
    propagates unchanged (its traceback points into that file).
    """
    if not is_import_path(spec):
        raise ValueError(f"{what} {spec!r}: not an import path; give {_FORMS}.")
    target, _, attr = spec.rpartition(":")
    parts = attr.split(".")
    if not target or not all(p.isidentifier() for p in parts):
        raise ValueError(
            f"{what} {spec!r}: cannot read it as an import path; give {_FORMS}, where name "
            f"is a Python name (got module {target!r} and name {attr!r})."
        )
    if target.endswith(".py"):
        module = _module_from_file(Path(target), spec, what)
    elif all(p.isidentifier() for p in target.split(".")):
        try:
            module = importlib.import_module(target)
        except ImportError as err:
            raise ValueError(f"{what} {spec!r}: cannot import {target!r} ({err}).") from None
        except SyntaxError as err:
            raise ValueError(f"{what} {spec!r}: {_syntax(err)}") from None
    else:
        raise ValueError(
            f"{what} {spec!r}: {target!r} is neither a module name nor a .py file; give {_FORMS}."
        )
    obj = module
    for i, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            owner = ".".join([target, *parts[:i]]) if i else target
            raise ValueError(f"{what} {spec!r}: {owner!r} has no attribute {part!r}.") from None
    return obj


def _module_from_file(path: Path, spec: str, what: str):
    if not path.is_file():
        raise ValueError(f"{what} {spec!r}: no file {path}.")
    resolved = str(path.resolve())
    name = f"probejax_user_{hashlib.sha256(resolved.encode()).hexdigest()[:16]}"
    module = sys.modules.get(name)
    if module is not None:
        return module
    loader_spec = importlib.util.spec_from_file_location(name, resolved)
    module = importlib.util.module_from_spec(loader_spec)
    # registered before it runs, as import does (dataclasses and pickle look it up)
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except SyntaxError as err:
        del sys.modules[name]
        raise ValueError(f"{what} {spec!r}: {_syntax(err)}") from None
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _syntax(err: SyntaxError) -> str:
    return f"syntax error in {err.filename}, line {err.lineno}: {err.msg}."
