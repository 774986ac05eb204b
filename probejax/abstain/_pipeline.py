r"""The sAwMIL truth probe with abstention, as in "The Trilemma of Truth in Large Language
Models" (Savcisens & Eliassi-Rad 2025, arXiv 2506.23921): bags of token activations ->
one multiple-instance SVM per class (one vs rest) -> a multinomial logistic combiner ->
split conformal prediction sets that abstain when they do not name exactly one class.

For statements with bags :math:`B_i` (the token activations of statement :math:`i` at
one layer) and classes :math:`y_i \in \{0, \dots, K-1\}` (for truth: false, true,
neither), :meth:`SAwMIL.fit` cuts the data into three stratified parts and

1. standardises the tokens with the mean and standard deviation of the SVM part's real
   tokens;
2. fits, on the SVM part, :math:`K` :class:`~probejax.abstain.MILSVM` separators
   :math:`(w_k, b_k)`, class :math:`k` against the rest; a bag's score for class
   :math:`k` is :math:`s_k(B) = \max_{x \in B} (w_k^\top x + b_k)`;
3. fits, on the combiner part, a multinomial logistic regression
   :math:`p(y \mid B) = \operatorname{softmax}(W^\top s(B) + c)` on the :math:`K`
   scores (:func:`~probejax.abstain.fit_multinomial`);
4. calibrates, on the calibration part, split conformal prediction on
   :math:`p(\cdot \mid B)` (:func:`~probejax.abstain.calibrate`), so that the sets
   :math:`C(B)` cover the true class with probability :math:`\ge 1-\alpha` for new
   statements exchangeable with the calibration ones.

The combiner and calibration parts are disjoint from the SVM part and from each other:
the combiner's fit would otherwise make the calibration scores smaller than a new
statement's and break the guarantee. A set with one class is a prediction; an empty set
or one with several classes is an abstention.

:func:`sawmil_layers` runs the pipeline at every layer of per-token activations
(``probejax.llm.extract(..., per_token=True)``) on one train / test split and tabulates
accuracy, coverage, abstention and set size per layer.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..core._scaler import Standardizer
from ..core._splits import stratified_partition
from ._combiner import Multinomial, fit_multinomial
from ._conformal import LAC, Conformal, ConformalReport, _min_points, calibrate, conformal_report
from ._mil import MILSVM, MILSolution, bag_scores, check_bags, token_bags


def check_classes(labels, n: int, where: str) -> tuple[np.ndarray, int]:
    """``labels`` as integers ``0..K-1`` with every class present; returns ``(labels, K)``."""
    lab = np.asarray(labels)
    if lab.shape != (n,):
        raise ValueError(
            f"{where}: labels must have shape ({n},) (one per statement), got {lab.shape}."
        )
    if lab.dtype == bool or not np.issubdtype(lab.dtype, np.integer):
        if lab.dtype.kind not in "biuf" or not np.all(np.mod(lab, 1) == 0):
            raise ValueError(f"{where}: labels must be integers 0..K-1, got dtype {lab.dtype}.")
    lab = lab.astype(np.int64)
    K = int(lab.max()) + 1 if lab.size else 0
    counts = np.bincount(lab[lab >= 0], minlength=K) if lab.size else np.zeros(0, int)
    if lab.size == 0 or lab.min() < 0 or K < 2 or (counts == 0).any():
        missing = np.flatnonzero(counts == 0).tolist() if K else []
        raise ValueError(
            f"{where}: labels must be the classes 0..K-1 with K >= 2, each present; got "
            f"values {np.unique(lab)[:8].tolist()}"
            + (f" (classes {missing} absent)" if missing else "")
            + "."
        )
    return lab, K


def _masked_standardizer(X, mask) -> Standardizer:
    w = mask.astype(X.dtype)[..., None]
    count = jnp.sum(w, axis=(0, 1))
    mean = jnp.sum(X * w, axis=(0, 1)) / count
    std = jnp.sqrt(jnp.sum(((X - mean) ** 2) * w, axis=(0, 1)) / count)
    constant = std <= 10 * jnp.finfo(X.dtype).eps * jnp.maximum(jnp.abs(mean), 1.0)
    return Standardizer(mean, jnp.where(constant, 1.0, std))


class SAwMILReport(eqx.Module):
    """How a fitted pipeline did on labelled statements.

    - ``accuracy``: accuracy of the most probable class (no abstention).
    - ``conformal``: the :class:`~probejax.abstain.ConformalReport` of the sets
      (coverage, abstention rate, accuracy when not abstaining, set size).
    """

    accuracy: Float[Array, ""]
    conformal: ConformalReport


class FittedSAwMIL(eqx.Module):
    """A fitted :class:`SAwMIL` pipeline (module docstring).

    **Fields:**

    - ``scaler``: the token standardisation.
    - ``ovr``: the :math:`K` one-vs-rest :class:`~probejax.abstain.MILSolution`\\ s
      (leading axis :math:`K`, on standardised tokens).
    - ``combiner``: the :class:`~probejax.abstain.Multinomial` on the :math:`K` scores.
    - ``conformal``: the calibrated :class:`~probejax.abstain.Conformal`.
    """

    scaler: Standardizer
    ovr: MILSolution
    combiner: Multinomial
    conformal: Conformal

    @property
    def converged(self) -> Bool[Array, ""]:
        """Every one-vs-rest SVM and the combiner met their tolerances."""
        return jnp.all(self.ovr.converged) & self.combiner.converged

    def scores(
        self, X: Float[Array, "n T d"], mask: Bool[Array, "n T"] | None = None
    ) -> Float[Array, "n K"]:
        """The one-vs-rest bag scores :math:`s_k(B)` of bags ``X`` with token ``mask``."""
        X, mask = check_bags(X, mask, "FittedSAwMIL")
        return bag_scores(self.ovr.w, self.ovr.b, self.scaler.transform(X), mask)

    def predict_proba(self, X, mask=None) -> Float[Array, "n K"]:
        """Class probabilities from the combiner."""
        return self.combiner.predict_proba(self.scores(X, mask))

    def sets(self, X, mask=None, key: PRNGKeyArray | None = None) -> Bool[Array, "n K"]:
        """Conformal prediction sets ``(n, K)``."""
        return self.conformal.sets(self.predict_proba(X, mask), key)

    def predict(self, X, mask=None, key: PRNGKeyArray | None = None) -> Int[Array, " n"]:
        """The class when the set names exactly one, else ``ABSTAIN`` (-1)."""
        return self.conformal.predict(self.predict_proba(X, mask), key)

    def evaluate(self, X, mask, labels, key: PRNGKeyArray | None = None) -> SAwMILReport:
        """Accuracy and the conformal report on labelled bags."""
        probs = self.predict_proba(X, mask)
        y = jnp.asarray(labels)
        accuracy = jnp.mean(jnp.argmax(probs, axis=1) == y)
        return SAwMILReport(accuracy, conformal_report(self.conformal.sets(probs, key), y))


def _as_leaves(spec):
    """The spec with its numbers as arrays: under ``filter_jit`` a Python float would be
    static, and every new ``C``, ``eta``, ``lam`` or ``alpha`` would recompile."""
    dt = jnp.result_type(float)

    def leaf(v):
        return jnp.asarray(v, dt) if isinstance(v, float | int) and not isinstance(v, bool) else v

    return jax.tree_util.tree_map(leaf, spec)


@eqx.filter_jit
def _fit_parts(spec, X, mask, y, parts, n_classes, key):
    svm, comb, cal = parts
    scaler = _masked_standardizer(X[svm], mask[svm])
    Xs = scaler.transform(X)
    onehot = y[:, None] == jnp.arange(n_classes)
    ovr = jax.vmap(lambda yk: spec.mil.fit(Xs[svm], mask[svm], yk), in_axes=1)(onehot[svm])
    combiner = fit_multinomial(
        bag_scores(ovr.w, ovr.b, Xs[comb], mask[comb]), y[comb], n_classes, lam=spec.lam
    )
    probs = combiner.predict_proba(bag_scores(ovr.w, ovr.b, Xs[cal], mask[cal]))
    conformal = calibrate(
        probs, y[cal], spec.alpha, conditional=spec.conditional, score=spec.score, key=key
    )
    return FittedSAwMIL(scaler, ovr, combiner, conformal)


class SAwMIL(eqx.Module):
    r"""The sAwMIL pipeline with conformal abstention (module docstring).

    **Fields:**

    - ``mil``: the one-vs-rest :class:`~probejax.abstain.MILSVM` (``C``, ``eta``, ...).
    - ``lam``: ridge of the multinomial combiner (scikit-learn ``C = 1/lam``).
    - ``alpha``: conformal miscoverage level in (0, 1) (the paper: 0.1).
    - ``conditional``: class-conditional (Mondrian) conformal (static).
    - ``score``: the conformal score, :class:`~probejax.abstain.LAC` or
      :class:`~probejax.abstain.APS` (static).
    - ``combine_fraction``, ``calibrate_fraction``: shares of the statements held out
      for the combiner and for calibration (static); the rest fits the SVMs.
    """

    mil: MILSVM = MILSVM()
    lam: float = 1.0
    alpha: float = 0.1
    conditional: bool = eqx.field(static=True, default=False)
    score: eqx.Module = eqx.field(static=True, default=LAC())
    combine_fraction: float = eqx.field(static=True, default=0.25)
    calibrate_fraction: float = eqx.field(static=True, default=0.25)

    def __check_init__(self):
        if not 0.0 < float(self.alpha) < 1.0:
            raise ValueError(
                f"SAwMIL: alpha must lie strictly between 0 and 1, got {self.alpha!r}."
            )
        if not float(self.lam) > 0:
            raise ValueError(f"SAwMIL: lam must be > 0, got {self.lam!r}.")
        fc, fk = float(self.combine_fraction), float(self.calibrate_fraction)
        if not (fc > 0 and fk > 0 and fc + fk < 1):
            raise ValueError(
                "SAwMIL: combine_fraction and calibrate_fraction must be > 0 with a sum < 1 "
                f"(the rest fits the SVMs), got {fc!r} and {fk!r}."
            )

    def split(
        self, labels, key: PRNGKeyArray
    ) -> tuple[Int[Array, " a"], Int[Array, " b"], Int[Array, " c"]]:
        """Stratified ``(svm, combiner, calibration)`` index parts of the statements,
        checked to leave enough calibration points for ``alpha``."""
        lab, _ = check_classes(labels, np.shape(labels)[0], "SAwMIL.split")
        fc, fk = float(self.combine_fraction), float(self.calibrate_fraction)
        comb, cal, svm = stratified_partition(key, lab, (fc, fk / (1 - fc)), where="SAwMIL")
        need = _min_points(float(self.alpha))
        have = (
            np.bincount(lab[np.asarray(cal)], minlength=lab.max() + 1)
            if self.conditional
            else np.array([cal.shape[0]])
        )
        if (have < need).any():
            raise ValueError(
                f"SAwMIL: the calibration part has {have.tolist()} statements"
                f"{' per class' if self.conditional else ''}; alpha = {self.alpha} needs at "
                f"least {need}. Use more statements, a larger calibrate_fraction or a larger alpha."
            )
        return svm, comb, cal

    def fit(
        self, X: Float[Array, "n T d"], mask: Bool[Array, "n T"] | None, labels, key: PRNGKeyArray
    ) -> FittedSAwMIL:
        """Fit on bags ``X`` ``(n, T, d)``, token ``mask`` ``(n, T)`` (None: all tokens)
        and classes ``labels`` ``(n,)`` ``0..K-1``; ``key`` draws the split (and a
        randomised conformal score).

        **Returns:** a :class:`FittedSAwMIL` (read ``converged``).
        """
        X, mask = check_bags(X, mask, "SAwMIL.fit")
        lab, K = check_classes(labels, X.shape[0], "SAwMIL.fit")
        k_split, k_score = jax.random.split(key)
        parts = self.split(lab, k_split)
        return _fit_parts(_as_leaves(self), X, mask, jnp.asarray(lab, jnp.int32), parts, K, k_score)


@eqx.filter_jit
def _evaluate(fitted, X, mask, y, key):
    return fitted.evaluate(X, mask, y, key)


# the per-layer measurements of a LayerTable, in its column order
COLUMNS = ("accuracy", "coverage", "abstention", "selective_accuracy", "set_size", "converged")


@dataclasses.dataclass(frozen=True)
class LayerTable:
    """Per-layer results of :func:`sawmil_layers` (numpy arrays of length ``L``).

    - ``layer``: the layer indices.
    - ``accuracy``: test accuracy of the most probable class (no abstention).
    - ``coverage``: share of test sets holding the true class (target ``1 - alpha``).
    - ``abstention``: share of test statements abstained on (empty or multi-class set).
    - ``selective_accuracy``: accuracy on the statements not abstained on (NaN if none).
    - ``set_size``: mean set size.
    - ``converged``: every solver of the layer's fit met its tolerance.
    - ``alpha``: the conformal level; ``n_test``: test statements.
    """

    layer: np.ndarray
    accuracy: np.ndarray
    coverage: np.ndarray
    abstention: np.ndarray
    selective_accuracy: np.ndarray
    set_size: np.ndarray
    converged: np.ndarray
    alpha: float
    n_test: int

    def rows(self) -> list[dict]:
        """One dict per layer."""
        keys = ("layer", *COLUMNS)
        return [{k: getattr(self, k)[i].item() for k in keys} for i in range(len(self.layer))]

    def markdown(self) -> str:
        """The table in Markdown, with the level and test size in a header line."""
        lines = [
            f"alpha = {self.alpha:g} (target coverage {1 - self.alpha:.0%}), {self.n_test} test statements",
            "",
            "| layer | accuracy | coverage | abstention | accuracy when answering | set size |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows():
            flag = "" if r["converged"] else " (not converged)"
            lines.append(
                f"| {r['layer']}{flag} | {r['accuracy']:.3f} | {r['coverage']:.3f} | "
                f"{r['abstention']:.3f} | {r['selective_accuracy']:.3f} | {r['set_size']:.2f} |"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.markdown()


def sawmil_layers(
    acts: Float[Array, "L n T d"],
    mask: Bool[Array, "n T"],
    labels,
    key: PRNGKeyArray,
    spec: SAwMIL = SAwMIL(),
    *,
    test_fraction: float = 0.25,
    layers=None,
    bag_size: int | None = 10,
    keep_last: int = 2,
) -> LayerTable:
    """Run :class:`SAwMIL` at every layer of per-token activations and tabulate it.

    The statements are cut once into a stratified train / test split, and the train
    part once into SVM / combiner / calibration parts, shared by every layer; bags keep
    the same tokens at every layer (:func:`~probejax.abstain.token_bags`). Layers are
    fitted one after another (one compiled program; one layer's activations on the
    device at a time).

    **Arguments:**

    - ``acts``: ``(L, n, T, d)`` per-token activations, e.g. the first value of
      ``probejax.llm.extract(loaded, texts, layers=[...], per_token=True)``; a numpy
      array or memmap is read one layer at a time.
    - ``mask``: ``(n, T)`` bool, the real tokens (its second value).
    - ``labels``: ``(n,)`` classes ``0..K-1``.
    - ``key``: PRNG key (splits, token sample).
    - ``spec``: the pipeline's options.
    - ``test_fraction``: share of the statements held out for the table.
    - ``layers``: names of the ``L`` layers in the table (default ``0..L-1``).
    - ``bag_size``, ``keep_last``: tokens per bag and final tokens always kept
      (:func:`~probejax.abstain.token_bags`); ``bag_size=None`` keeps every token.

    **Returns:** a :class:`LayerTable`.
    """
    if not hasattr(acts, "shape") or len(acts.shape) != 4:
        raise ValueError(
            "sawmil_layers: acts must be (L layers, n statements, T tokens, d), got shape "
            f"{getattr(acts, 'shape', None)}."
        )
    L, n, T, _ = acts.shape
    mask = np.asarray(mask, bool)
    if mask.shape != (n, T):
        raise ValueError(
            f"sawmil_layers: mask must have shape ({n}, {T}) to match acts, got {mask.shape}."
        )
    lab, K = check_classes(labels, n, "sawmil_layers")
    names = np.arange(L) if layers is None else np.asarray(layers)
    if names.shape != (L,):
        raise ValueError(
            f"sawmil_layers: layers must name the {L} layers of acts, got {names.shape[0]} names."
        )
    k_bag, k_test, k_split, k_score = jax.random.split(key, 4)
    test, train = stratified_partition(k_test, lab, (test_fraction,), where="sawmil_layers")
    train, test = np.sort(np.asarray(train)), np.sort(np.asarray(test))
    if bag_size is None:
        idx, bag_mask = None, jnp.asarray(mask)
    else:
        idx, bag_mask = token_bags(mask, k_bag, bag_size, keep_last)
    parts = spec.split(lab[train], k_split)
    y = jnp.asarray(lab, jnp.int32)
    traced = _as_leaves(spec)
    columns = {k: [] for k in COLUMNS}
    for layer in range(L):
        X = jnp.asarray(np.asarray(acts[layer]), jnp.result_type(float))
        if idx is not None:
            X = jnp.take_along_axis(X, idx[:, :, None], axis=1)
        X, m = check_bags(X, bag_mask, f"sawmil_layers (layer {names[layer]})")
        fitted = _fit_parts(traced, X[train], m[train], y[train], parts, K, k_score)
        report = _evaluate(fitted, X[test], m[test], y[test], k_score)
        columns["accuracy"].append(report.accuracy)
        columns["coverage"].append(report.conformal.coverage)
        columns["abstention"].append(report.conformal.abstention)
        columns["selective_accuracy"].append(report.conformal.accuracy)
        columns["set_size"].append(report.conformal.set_size)
        columns["converged"].append(fitted.converged)
    return LayerTable(
        layer=names,
        **{k: np.asarray(jnp.stack(v)) for k, v in columns.items()},
        alpha=float(spec.alpha),
        n_test=int(test.shape[0]),
    )
