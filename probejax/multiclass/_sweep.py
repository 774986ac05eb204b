"""A multi-class sweep over the layers of an activation file (``probejax multiclass``):
each estimator on each layer, one shared stratified split, ``results.json`` and a
figure.

Estimators are named on the command line as ``multinomial`` (:class:`MultinomialRaptor`,
RAPTOR's protocol with the multinomial loss)
or ``ovr:NAME`` (:class:`OneVsRest` of the registered binary estimator ``NAME``, e.g.
``ovr:raptor``, ``ovr:mass_mean``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

from ..estimators._registry import get_estimator
from ..io._activations import ClassLabels, LayerStack, open_activations, read_class_labels
from ..io._atomic import file_sha256
from ..io._results import code_version, write_json_atomic
from ..protocol._specs import SplitSpec
from ._estimators import OneVsRest, multinomial_raptor
from ._evaluate import compare_multiclass

DEFAULT = ("multinomial", "ovr:raptor", "ovr:mass_mean", "ovr:lda")


def named_estimators(names: Sequence[str], n_classes: int) -> dict:
    """``{name: estimator}`` for ``multinomial`` and ``ovr:NAME`` names (module docstring);
    ``ValueError`` names an unknown one."""
    out = {}
    for name in names:
        if name == "multinomial":
            out[name] = multinomial_raptor(n_classes)
        elif name.startswith("ovr:") and name[4:]:
            out[name] = OneVsRest(get_estimator(name[4:]), n_classes)
        else:
            raise ValueError(
                f"multi-class estimator {name!r} is neither 'multinomial' (RAPTOR's protocol with the multinomial loss) nor "
                f"'ovr:NAME' (one-vs-rest of a registered binary estimator, e.g. 'ovr:lda')."
            )
    return out


def probe_multiclass(
    activations: str | Path | LayerStack,
    labels: str | Path | ClassLabels,
    out: str | Path | None = None,
    *,
    key: str | None = None,
    estimators: Sequence[str] = DEFAULT,
    split: SplitSpec = SplitSpec(),
    seed: int = 0,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Every multi-class estimator on every layer of an activation file.

    **Arguments:**

    - ``activations``: a file :func:`probejax.io.open_activations` reads (or its stack);
      layers are read one at a time.
    - ``labels``: a CSV (``label`` column) or ``.npy`` of ``K >= 2`` classes
      (:func:`probejax.io.read_class_labels`), or :class:`probejax.io.ClassLabels`.
    - ``out``: folder for ``results.json`` and ``multiclass.png`` (``None``: nothing
      written).
    - ``key``: the file's entry holding the activations, when it has several.
    - ``estimators``: names (module docstring); ``split``: the shares of the stratified
      split; ``seed``: of the split.
    - ``log``: receives progress lines (``None``: silent).

    **Returns:** the results dict (as written): ``layers``, ``n_classes``,
    ``label_names``, ``estimators`` (per estimator and layer: ``test_accuracy``,
    ``macro_f1``, ``per_class_auroc``, ``C``), ``best`` (per estimator its best layer by
    macro-F1), the activation file's path and SHA-256, the split and code versions.

    Raises ``ValueError`` before any fit for an unknown estimator, labels of another
    length than the file's examples, or a split that leaves a class out of a part.
    """
    log = log or (lambda s: None)
    stack = (
        activations
        if isinstance(activations, LayerStack)
        else open_activations(activations, key=key)
    )
    n = stack.shape[1]
    if isinstance(labels, ClassLabels):
        classes = labels
        if len(classes.y) != n:
            raise ValueError(f"labels hold {len(classes.y)} values, the activations {n} examples.")
    else:
        classes = read_class_labels(labels, n)
    K = len(classes.label_names)
    models = named_estimators(list(estimators), K)
    log(f"{stack.path}: {len(stack)} layers of {n} x {stack.shape[2]}, {K} classes")
    res = compare_multiclass(
        models, stack, classes.y, jax.random.key(seed), layers=list(stack.layers), split=split
    )
    res["label_names"] = list(classes.label_names)
    res["best"] = {
        name: {
            "layer": res["layers"][int(np.argmax(r["macro_f1"]))],
            "macro_f1": float(np.max(r["macro_f1"])),
        }
        for name, r in res["estimators"].items()
    }
    res["activations"] = {
        "path": str(stack.path),
        "format": stack.format,
        "key": stack.key,
        "sha256": file_sha256(stack.path) if Path(stack.path).is_file() else None,
    }
    res["split"] = {
        "kind": "random",
        "test_fraction": split.test_fraction,
        "val_fraction": split.val_fraction,
    }
    res["seed"] = seed
    res["versions"] = {"code": code_version()}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "results.json", res)
        plot_multiclass(res, out / "multiclass.png")
        log(f"wrote {out / 'results.json'} and {out / 'multiclass.png'}")
    return res


def plot_multiclass(res: dict, path: Path) -> Path:
    """Test accuracy and macro-F1 against the layer, one line per estimator."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.5), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    for name, r in res["estimators"].items():
        for ax, field in zip(axes, ("test_accuracy", "macro_f1"), strict=True):
            ax.plot(res["layers"], r[field], marker="o", ms=3, label=name)
    for ax, title in zip(axes, ("test accuracy", "macro-F1"), strict=True):
        ax.axhline(1 / res["n_classes"], color="grey", lw=0.8, ls=":")
        ax.set(xlabel="layer", title=f"{title} ({res['n_classes']} classes)")
    axes[0].legend(fontsize=8)
    fig.savefig(path, dpi=120)
    return path
