r"""RAPTOR and every baseline on every layer, on the same splits: accuracy and stability.

For each method :math:`m` and layer :math:`\ell` (activations :math:`X_\ell`, labels
:math:`y`, the RAPTOR splits train_sub / val / test shared by all methods and layers):

- ``raptor``: :func:`probejax.raptor_fit_split` (grid over :math:`\lambda = 1/C`, best
  validation accuracy, refit on train_sub + val).
- ``ridge_ls``: ridge least squares on standardised train_sub, the same grid, best
  validation accuracy, refit on train_sub + val, mapped back to raw coordinates.
- ``mass_mean``, ``lda`` (Ledoit-Wolf shrinkage), ``pca``: fitted on train_sub + val
  (nothing to tune), Platt-calibrated.
- ``gcs``: ``gcs_probes`` L2-logistic probes at ``C = gcs_C`` on stratified
  ``gcs_subsample`` fractions of train_sub + val; the probe is their mean.

Reported per method and layer: test accuracy and AUROC, the chosen ridge (NaN when the
method has none), the directional stability (K runs each dropping a stratified
``drop`` fraction of train_sub + val, re-splitting, refitting and re-tuning; mean
pairwise :math:`|\cos|` and signed cosine of the concept vectors) and the wall time of
the fit (per layer, the first chunk including compilation).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ..core._metrics import accuracy, auroc, pairwise_cosine_summary
from ..core._probe import LinearProbe
from ..core._scaler import Standardizer
from ..core._splits import stratified_split
from ..estimators._gcs import gcs_core
from ..estimators._lda import lda_core
from ..estimators._mass_mean import mass_mean_core
from ..estimators._pca import pca_core
from ..solvers._ridge_ls import ridge_ls_core, ridge_ls_path_core
from ._layers import _layer, _n_layers, map_layers
from ._raptor import (
    RAPTOR_C_GRID,
    RaptorConfig,
    RaptorSplits,
    check_raptor_inputs,
    raptor_fit_split,
    select_index,
)
from ._stability import resampled_splits

METHODS = ("raptor", "mass_mean", "lda", "pca", "ridge_ls", "gcs")


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """What :func:`compare_layers` runs (all fields static).

    ``stability_methods``: methods whose stability is measured (``None``: all but
    ``gcs``, whose K refits of ``gcs_probes`` probes each cost the most).
    """

    methods: tuple[str, ...] = METHODS
    raptor: RaptorConfig = dataclasses.field(default_factory=RaptorConfig)
    stability_runs: int = 20
    drop: float = 0.2
    stability_methods: tuple[str, ...] | None = None
    gcs_probes: int = 1000
    gcs_subsample: float = 0.1
    gcs_C: float = 1.0
    chunk_size: int = 4
    run_chunk: int = 4

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; known: {list(METHODS)}.")
        if self.stability_methods is not None:
            bad = [m for m in self.stability_methods if m not in self.methods]
            if bad:
                raise ValueError(f"stability_methods {bad} are not in methods {self.methods}.")
        if self.stability_runs < 2 and self.measured_stability():
            raise ValueError(f"stability_runs must be >= 2, got {self.stability_runs}.")

    def measured_stability(self) -> tuple[str, ...]:
        if self.stability_methods is None:
            return tuple(m for m in self.methods if m != "gcs")
        return tuple(self.stability_methods)


def _tuned_ridge_ls(X, y, splits, lams, standardize):
    n_tr = splits.train_sub.shape[0]
    pool = jnp.concatenate([splits.train_sub, splits.val])
    Xp, yp = X[pool], y[pool]
    sc = Standardizer.fit(Xp[:n_tr]) if standardize else Standardizer.identity(X.shape[1], X.dtype)
    Xs = sc.transform(Xp)
    path = ridge_ls_path_core(Xs[:n_tr], yp[:n_tr], lams)
    val_scores = Xs[n_tr:] @ path.w.T + path.b
    index = select_index(jax.vmap(accuracy, in_axes=(None, 1))(yp[n_tr:], val_scores), lams)
    fit = ridge_ls_core(Xs, yp, lams[index])
    return sc.to_raw(fit.w, fit.b), lams[index]


def fit_method(method: str, X, y, splits: RaptorSplits, lams, config: CompareConfig, gcs_idx):
    """One method on one layer (traceable; ``y`` in +-1). **Returns** ``(LinearProbe, lam)``."""
    pool = jnp.concatenate([splits.train_sub, splits.val])
    nan = jnp.asarray(jnp.nan, X.dtype)
    if method == "raptor":
        res = raptor_fit_split(X, y, splits, lams, config.raptor)
        return res.probe, res.lam
    if method == "ridge_ls":
        return _tuned_ridge_ls(X, y, splits, lams, config.raptor.standardize)
    if method == "mass_mean":
        return mass_mean_core(X[pool], y[pool]), nan
    if method == "lda":
        return lda_core(X[pool], y[pool], nan, ledoit_wolf=True), nan
    if method == "pca":
        return pca_core(X[pool], y[pool]), nan
    if method == "gcs":
        g = gcs_core(
            X,
            y,
            gcs_idx,
            jnp.asarray(1.0 / config.gcs_C, X.dtype),
            standardize=config.raptor.standardize,
            chunk_size=min(64, config.gcs_probes),
        )
        return LinearProbe(g.w_mean, g.b_mean), jnp.asarray(1.0 / config.gcs_C, X.dtype)
    raise ValueError(f"unknown method {method!r}; known: {list(METHODS)}.")


def _gcs_indices(key, y_np, splits: RaptorSplits, config: CompareConfig):
    pool = np.concatenate([np.asarray(splits.train_sub), np.asarray(splits.val)])
    keys = jax.random.split(key, config.gcs_probes)
    out = jax.vmap(
        lambda k: stratified_split(k, y_np[pool], config.gcs_subsample, where="the GCS subsample")[
            1
        ]
    )(keys)
    return jnp.asarray(pool)[out]


def _scores(method, X, y, splits, lams, config, gcs_idx):
    probe, lam = fit_method(method, X, y, splits, lams, config, gcs_idx)
    s = probe.decision_function(X[splits.test])
    y_te = y[splits.test]
    return dict(
        w=probe.w,
        b=probe.b,
        lam=lam,
        test_accuracy=accuracy(y_te, s),
        test_auroc=auroc(y_te, s),
    )


def _stability(method, X, y, run_splits, lams, config, run_gcs_idx):
    def one(args):
        sp, idx = args
        probe, _ = fit_method(method, X, y, sp, lams, config, idx)
        return probe.w

    V = jax.lax.map(one, (run_splits, run_gcs_idx), batch_size=config.run_chunk)
    mean_abs, mean_signed = pairwise_cosine_summary(V)
    return dict(stability=mean_abs, stability_signed=mean_signed)


def compare_layers(
    X_layers,
    y,
    key: PRNGKeyArray,
    *,
    Cs=RAPTOR_C_GRID,
    config: CompareConfig = CompareConfig(),
    splits: RaptorSplits | None = None,
    layer_ids=None,
    stability_rows=None,
    log=None,
) -> dict:
    """Run every method of ``config`` on every layer (see module docstring).

    **Arguments:** ``X_layers`` ``(layers, n, d)`` (a memmap is read chunk by chunk) or
    a list of ``(n, d)`` arrays; two-class ``y``; ``key`` (split as
    :func:`probejax.raptor_stability` splits it, so RAPTOR's runs are the same; the GCS
    subsamples use ``fold_in(key, 1)``); ``Cs`` grid; ``config``;
    ``splits`` to fix the base split; ``layer_ids`` (the layers' names in progress lines,
    default ``0..L-1``); ``stability_rows``: the rows of ``X_layers`` whose stability is
    measured (default all; each costs ``stability_runs`` refits); ``log(str)`` for
    progress lines.

    **Returns:** ``dict(splits, methods={name: {...}})``; each method holds NumPy arrays
    with a leading ``layers`` axis: ``w (L, d)``, ``b``, ``lam``, ``test_accuracy``,
    ``test_auroc``, ``fit_seconds`` and, where measured, ``stability``,
    ``stability_signed``, ``stability_seconds`` (else NaN).
    """
    log = log or (lambda s: None)
    if _n_layers(X_layers) == 0:
        raise ValueError("X_layers holds no layers.")
    k_split, k_runs = jax.random.split(key)  # as raptor_stability: the same runs
    k_gcs = jax.random.fold_in(key, 1)
    X0 = _layer(X_layers, 0)
    _, y_pm1, lams, splits = check_raptor_inputs(X0, y, Cs, splits, k_split, config.raptor)
    y_np = np.asarray(y_pm1)
    L = _n_layers(X_layers)
    layer_ids = list(range(L)) if layer_ids is None else list(layer_ids)
    rows = list(range(L)) if stability_rows is None else sorted(int(r) for r in stability_rows)
    if any(not 0 <= r < L for r in rows):
        raise ValueError(f"stability_rows {rows} must index the {L} layers of X_layers.")
    measured = config.measured_stability()
    run_keys = jax.random.split(k_runs, config.stability_runs)
    run_splits = jax.vmap(
        lambda k: resampled_splits(
            k, y_np, splits, drop=config.drop, val_fraction=config.raptor.val_fraction
        )
    )(run_keys)
    needs_gcs = "gcs" in config.methods
    gcs_idx = _gcs_indices(k_gcs, y_np, splits, config) if needs_gcs else jnp.zeros((1, 1), int)
    if needs_gcs and "gcs" in measured:
        run_gcs_idx = jnp.stack(
            [
                _gcs_indices(jax.random.fold_in(k_gcs, r + 1), y_np, sp, config)
                for r, sp in enumerate(_unstack(run_splits, config.stability_runs))
            ]
        )
    else:
        run_gcs_idx = jnp.zeros((config.stability_runs, 1, 1), int)

    methods = {}
    for method in config.methods:
        t0 = time.perf_counter()
        fit = map_layers(
            lambda X, m=method: _scores(m, X, y_pm1, splits, lams, config, gcs_idx),
            X_layers,
            config.chunk_size,
        )
        out = {k: np.asarray(v) for k, v in fit.results.items()}
        out["fit_seconds"] = fit.seconds
        nan = np.full(L, np.nan)
        out["stability"], out["stability_signed"], out["stability_seconds"] = nan, nan, nan
        if method in measured and rows:
            stab = map_layers(
                lambda X, m=method: _stability(m, X, y_pm1, run_splits, lams, config, run_gcs_idx),
                X_layers if len(rows) == L else [X_layers[r] for r in rows],
                config.chunk_size,
            )
            for key in ("stability", "stability_signed"):
                out[key] = nan.copy()
                out[key][rows] = np.asarray(stab.results[key])
            out["stability_seconds"] = nan.copy()
            out["stability_seconds"][rows] = stab.seconds
        methods[method] = out
        best = int(np.argmax(out["test_accuracy"]))
        log(
            f"{method}: best layer {layer_ids[best]} test accuracy {out['test_accuracy'][best]:.3f}, "
            f"({time.perf_counter() - t0:.1f} s)"
        )
    return dict(splits=splits, methods=methods)


def _unstack(tree, k):
    return [jax.tree.map(lambda a, i=i: a[i], tree) for i in range(k)]
