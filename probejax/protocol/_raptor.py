r"""The RAPTOR protocol (Ridge-Adaptive Logistic Probe, arXiv 2602.00158) as one function.

As the authors' code runs it:

1. stratified split of the data into train/test (20% test), then of train into
   train_sub/val (20% val): 64/16/20;
2. standardisation statistics from train_sub only, applied to every split;
3. the grid :math:`C \in \mathrm{logspace}(-4, 2, 100)` in scikit-learn's convention
   (:math:`\tfrac12\lVert w\rVert^2 + C\sum_i\ell_i`, i.e. :math:`\lambda = 1/C`), fitted on
   train_sub — here in one vmapped, jit-compiled call;
4. the :math:`C` with the best validation accuracy, ties going to the smallest :math:`C`
   (the strongest ridge);
5. a refit at that :math:`C` on train_sub + val;
6. the probe mapped back to raw activations, :math:`w = w_s/\sigma`,
   :math:`b = b_s - w^\top\mu`, and the concept vector :math:`w/\lVert w\rVert`.

Every step is configurable (:class:`RaptorConfig`, the grid, the key). The protocol
is the estimator ``probejax.estimators.raptor()`` (``Tuned(LogisticRidge(), 1/C)``)
evaluated on the splits; the functions here are conveniences over it with the
protocol's input checks and a :class:`RaptorResult` report.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..core._checks import as_float_matrix, as_pm1_labels, check_lams
from ..core._probe import LinearProbe, bare, diagnostics
from ..estimators._raptor import CRITERIA, RAPTOR_C_GRID, raptor
from ..estimators._tuned import Tuned
from ._evaluate import evaluate
from ._splits import Splits, check_splits, protocol_splits

RaptorSplits = Splits
raptor_splits = protocol_splits
__all__ = ["RAPTOR_C_GRID", "RaptorConfig", "RaptorResult", "RaptorSplits", "fit_raptor"]


@dataclasses.dataclass(frozen=True)
class RaptorConfig:
    """Static settings of the protocol (changing them recompiles; the grid does not).

    - ``test_fraction``, ``val_fraction``: split shares (0.2, 0.2).
    - ``criterion``: ``"accuracy"`` (maximised) or ``"log_loss"`` (minimised) on val.
    - ``refit``: refit at the chosen C on train_sub + val (True) or keep the path fit.
    - ``standardize``: StandardScaler on train_sub statistics (True).
    - ``fit_intercept``, ``solver``, ``tol``, ``max_iter``: passed to the solver.
    """

    test_fraction: float = 0.2
    val_fraction: float = 0.2
    criterion: str = "accuracy"
    refit: bool = True
    standardize: bool = True
    fit_intercept: bool = True
    solver: str = "auto"
    tol: float | None = None
    max_iter: int | None = None

    def __post_init__(self):
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {tuple(CRITERIA)}, got {self.criterion!r}.")

    def estimator(self, Cs=RAPTOR_C_GRID) -> Tuned:
        """The RAPTOR estimator these settings describe, over the grid ``Cs``."""
        return raptor(
            Cs,
            criterion=self.criterion,
            standardize=self.standardize,
            refit=self.refit,
            val_fraction=self.val_fraction,
            fit_intercept=self.fit_intercept,
            solver=self.solver,
            tol=self.tol,
            max_iter=self.max_iter,
        )

    def estimator_at(self, lams) -> Tuned:
        """The same estimator over a ridge grid ``lams = 1/C`` already checked (an array,
        possibly traced: a new grid of the same length reuses the compilation)."""
        return eqx.tree_at(lambda e: e.lams, self.estimator(), lams)


class RaptorResult(eqx.Module):
    """Outcome of the protocol on one activation matrix (leading axes when vmapped).

    ``probe`` is in raw activation coordinates; ``lam`` and ``C = 1/lam`` are the chosen
    ridge; ``index`` its grid position; ``val_criterion`` and ``val_accuracy`` the
    per-grid validation values; ``path_converged`` the per-grid solver flags;
    ``refit_converged`` the flag of the final fit; ``test_*`` the held-out metrics.
    """

    probe: LinearProbe
    lam: Float[Array, ""]
    C: Float[Array, ""]
    index: Int[Array, ""]
    val_criterion: Float[Array, " L"]
    val_accuracy: Float[Array, " L"]
    path_converged: Bool[Array, " L"]
    refit_converged: Bool[Array, ""]
    train_accuracy: Float[Array, ""]
    test_accuracy: Float[Array, ""]
    test_auroc: Float[Array, ""]
    test_log_loss: Float[Array, ""]

    def concept_vector(self) -> Float[Array, " d"]:
        return self.probe.concept_vector()


def raptor_result(ev) -> RaptorResult:
    """A :class:`RaptorResult` from the :class:`~probejax.protocol.Evaluation` of a
    tuned linear estimator."""
    info = diagnostics(ev.probe)
    return RaptorResult(
        probe=bare(ev.probe).linear(),
        lam=info["lam"],
        C=info["C"],
        index=info["index"],
        val_criterion=info["val_criterion"],
        val_accuracy=info["val_accuracy"],
        path_converged=info["path_converged"],
        refit_converged=info["refit_converged"],
        train_accuracy=ev.train_accuracy,
        test_accuracy=ev.test_accuracy,
        test_auroc=ev.test_auroc,
        test_log_loss=ev.test_log_loss,
    )


def raptor_fit_split(
    X: Float[Array, "n d"],
    y: Float[Array, " n"],
    splits: Splits,
    lams: Float[Array, " L"],
    config: RaptorConfig = RaptorConfig(),
) -> RaptorResult:
    """The traceable protocol on given splits (``y`` in +-1 floats, ``lams = 1/C``)."""
    return raptor_result(evaluate(config.estimator_at(lams), X, y, splits, None))


_raptor_jit = eqx.filter_jit(raptor_fit_split)


def check_raptor_inputs(X, y, Cs, splits: Splits | None, key, config: RaptorConfig, groups=None):
    """Validate user inputs; **Returns** ``(X, y_pm1, lams, splits)``."""
    X = as_float_matrix(X, "X")
    y, _ = as_pm1_labels(y, X.shape[0])
    Cs = np.asarray(Cs, dtype=float) if not hasattr(Cs, "shape") else Cs
    lams = 1.0 / check_lams(Cs, "Cs")
    if splits is None:
        if key is None:
            raise ValueError("give either a PRNG key (key=jax.random.key(seed)) or splits=.")
        splits = protocol_splits(
            key,
            np.asarray(y),
            test_fraction=config.test_fraction,
            val_fraction=config.val_fraction,
            groups=groups,
        )
    return X, y, lams, check_splits(splits, np.asarray(y), X.shape[0])


def fit_raptor(
    X,
    y,
    key: PRNGKeyArray | None = None,
    *,
    Cs=RAPTOR_C_GRID,
    config: RaptorConfig = RaptorConfig(),
    splits: Splits | None = None,
    groups=None,
) -> tuple[RaptorResult, Splits]:
    """Run the RAPTOR protocol on one activation matrix.

    **Arguments:**

    - ``X``: activations ``(n, d)``; ``y``: two-class labels ``(n,)``.
    - ``key``: PRNG key for the splits (ignored when ``splits`` is given).
    - ``Cs``: 1-D grid of scikit-learn ``C`` values (``lam = 1/C``), default
      ``logspace(-4, 2, 100)``.
    - ``config``: :class:`RaptorConfig`.
    - ``splits``: explicit :class:`Splits` (e.g. to match another run).
    - ``groups``: ``(n,)`` or ``(n, m)`` group labels: the splits keep groups whole and
      share no group (held-out-group evaluation; :mod:`probejax.protocol`).

    **Returns:** ``(RaptorResult, Splits)``.
    """
    X, y, lams, splits = check_raptor_inputs(X, y, Cs, splits, key, config, groups)
    return _raptor_jit(X, y, splits, lams, config), splits
