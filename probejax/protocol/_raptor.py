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

Every step is configurable (:class:`RaptorConfig`, the grid, the key). The traceable
core :func:`raptor_fit_split` takes the split indices, so stability runs and layer
sweeps ``vmap`` it.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..core._checks import as_float_matrix, as_pm1_labels, check_lams, check_two_classes
from ..core._metrics import accuracy, auroc, log_loss
from ..core._probe import LinearProbe
from ..core._scaler import Standardizer
from ..core._splits import stratified_partition
from ..solvers._ridge_logistic import resolve_solver, solve_ridge_logistic

RAPTOR_C_GRID = np.logspace(-4, 2, 100)
CRITERIA = ("accuracy", "log_loss")


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
            raise ValueError(f"criterion must be one of {CRITERIA}, got {self.criterion!r}.")


class RaptorSplits(eqx.Module):
    """Index arrays into the examples: ``train_sub``, ``val``, ``test``."""

    train_sub: Int[Array, " n_tr"]
    val: Int[Array, " n_val"]
    test: Int[Array, " n_te"]


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


def raptor_splits(
    key: PRNGKeyArray, y, *, test_fraction: float = 0.2, val_fraction: float = 0.2
) -> RaptorSplits:
    """Stratified test split, then validation split of the rest (vmappable over keys)."""
    test, val, train_sub = stratified_partition(
        key, y, (test_fraction, val_fraction), where="the RAPTOR examples"
    )
    return RaptorSplits(train_sub, val, test)


def select_index(criterion: Float[Array, " L"], lams: Float[Array, " L"]) -> Int[Array, ""]:
    """Grid index of the best (largest) criterion; exact ties go to the largest ridge."""
    best = jnp.max(criterion)
    return jnp.argmax(jnp.where(criterion == best, lams, -jnp.inf))


def raptor_fit_split(
    X: Float[Array, "n d"],
    y: Float[Array, " n"],
    splits: RaptorSplits,
    lams: Float[Array, " L"],
    config: RaptorConfig = RaptorConfig(),
) -> RaptorResult:
    """The traceable core: steps 2-6 on given splits. ``y`` must be +-1 floats."""
    n_tr = splits.train_sub.shape[0]
    pool = jnp.concatenate([splits.train_sub, splits.val])
    X_pool, y_pool = X[pool], y[pool]
    scaler = (
        Standardizer.fit(X_pool[:n_tr])
        if config.standardize
        else Standardizer.identity(X.shape[1], X.dtype)
    )
    # Materialise the standardised pool before the product: fused into the matmul, the
    # gather and scaling would slow the one large GEMM of the protocol several-fold.
    Xs = jax.lax.optimization_barrier(scaler.transform(X_pool))
    d = Xs.shape[1]
    gram = Xs @ Xs.T if n_tr < d else None  # shared by the path and the refit
    Xs_tr, y_tr, Xs_val, y_val = Xs[:n_tr], y_pool[:n_tr], Xs[n_tr:], y_pool[n_tr:]
    path_solver = resolve_solver(config.solver, n_tr, d, lams.shape[0])
    solve = lambda A, b, lam, solver, K: solve_ridge_logistic(
        A,
        b,
        lam,
        fit_intercept=config.fit_intercept,
        solver=solver,
        tol=config.tol,
        max_iter=config.max_iter,
        gram=K,
    )
    K_tr = None if gram is None else gram[:n_tr, :n_tr]
    path = jax.vmap(lambda lam: solve(Xs_tr, y_tr, lam, path_solver, K_tr))(lams)
    val_scores = Xs_val @ path.w.T + path.b
    val_acc = jax.vmap(accuracy, in_axes=(None, 1))(y_val, val_scores)
    if config.criterion == "accuracy":
        crit = val_acc
    else:
        crit = -jax.vmap(log_loss, in_axes=(None, 1))(y_val, val_scores)
    index = select_index(crit, lams)
    lam = lams[index]
    if config.refit:
        fit = solve(Xs, y_pool, lam, resolve_solver(config.solver, *Xs.shape, 1), gram)
        w, b, refit_ok = fit.w, fit.b, fit.converged
    else:
        w, b, refit_ok = path.w[index], path.b[index], path.converged[index]
    probe = scaler.to_raw(w, b)
    s_tr = probe.decision_function(X_pool[:n_tr])
    s_te = probe.decision_function(X[splits.test])
    y_te = y[splits.test]
    return RaptorResult(
        probe=probe,
        lam=lam,
        C=1.0 / lam,
        index=index,
        val_criterion=crit,
        val_accuracy=val_acc,
        path_converged=path.converged,
        refit_converged=refit_ok,
        train_accuracy=accuracy(y_tr, s_tr),
        test_accuracy=accuracy(y_te, s_te),
        test_auroc=auroc(y_te, s_te),
        test_log_loss=log_loss(y_te, s_te),
    )


_raptor_jit = eqx.filter_jit(raptor_fit_split)


def check_raptor_inputs(X, y, Cs, splits: RaptorSplits | None, key, config: RaptorConfig):
    """Validate user inputs; **Returns** ``(X, y_pm1, lams, splits)``."""
    X = as_float_matrix(X, "X")
    y, _ = as_pm1_labels(y, X.shape[0])
    Cs = np.asarray(Cs, dtype=float) if not hasattr(Cs, "shape") else Cs
    lams = 1.0 / check_lams(Cs, "Cs")
    if splits is None:
        if key is None:
            raise ValueError("give either a PRNG key (key=jax.random.key(seed)) or splits=.")
        splits = raptor_splits(
            key,
            np.asarray(y),
            test_fraction=config.test_fraction,
            val_fraction=config.val_fraction,
        )
    yn = np.asarray(y)
    for name in ("train_sub", "val", "test"):
        idx = np.asarray(getattr(splits, name))
        if idx.ndim != 1 or idx.size == 0:
            raise ValueError(f"splits.{name} must be a non-empty 1-D index array.")
        if idx.min() < 0 or idx.max() >= X.shape[0]:
            raise ValueError(
                f"splits.{name} holds indices outside [0, {X.shape[0]}): "
                f"min {idx.min()}, max {idx.max()}."
            )
        check_two_classes(yn[idx], name)
    return X, y, lams, splits


def fit_raptor(
    X,
    y,
    key: PRNGKeyArray | None = None,
    *,
    Cs=RAPTOR_C_GRID,
    config: RaptorConfig = RaptorConfig(),
    splits: RaptorSplits | None = None,
) -> tuple[RaptorResult, RaptorSplits]:
    """Run the RAPTOR protocol on one activation matrix.

    **Arguments:**

    - ``X``: activations ``(n, d)``; ``y``: two-class labels ``(n,)``.
    - ``key``: PRNG key for the splits (ignored when ``splits`` is given).
    - ``Cs``: 1-D grid of scikit-learn ``C`` values (``lam = 1/C``), default
      ``logspace(-4, 2, 100)``.
    - ``config``: :class:`RaptorConfig`.
    - ``splits``: explicit :class:`RaptorSplits` (e.g. to match another run).

    **Returns:** ``(RaptorResult, RaptorSplits)``.
    """
    X, y, lams, splits = check_raptor_inputs(X, y, Cs, splits, key, config)
    return _raptor_jit(X, y, splits, lams, config), splits
