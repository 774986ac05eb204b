r"""Fit a sequence-probe family on given splits and report every configuration.

The public way to fit a family is :class:`probejax.seq.SeqEstimator` with
:func:`probejax.evaluate` (or :func:`probejax.compare`); it shares the helpers below.
:func:`fit_family` is the library's reference for it (the tests check that both
select the same configuration and score the same) and reports more than an
estimator's fit does: every configuration's test metrics, the seeds' score stability,
and token-level targets for :class:`probejax.seq.TokenLoss`. For one family it runs

1. the RAPTOR split (stratified 20% test, then 20% of the rest for validation,
   64/16/20; :func:`probejax.protocol_splits`), or the splits given;
2. per-feature standardisation with the statistics of the real tokens of train_sub;
3. the :class:`probejax.seq.SeqGrid` of configurations, learning rate x weight decay x
   seed, each seed's initialisation shared across the hyperparameters; all :math:`C`
   configurations are trained with early stopping on the validation split in one
   compiled program (:func:`probejax.seq.train_ensemble`);
4. selection on validation: the lowest validation loss (``criterion=None``), or the
   highest ``criterion(y, scores)`` with ties to the lower validation loss. There is
   no refit on train_sub + val: the validation split is what early stopping used;
5. test accuracy, AUROC and log loss of every configuration, and the seed stability at
   the selected hyperparameters: the mean pairwise Pearson correlation of the seeds'
   test logits, and (linear read-outs only) RAPTOR's mean :math:`|\cos|` between the
   seeds' concept vectors.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..core._metrics import accuracy, auroc, log_loss, pairwise_cosine_summary
from ..protocol._splits import Splits, protocol_splits
from ._base import SeqProbe
from ._fitted import FittedSeqProbe, TokenScaler, check_sequences
from ._grid import SeqGrid, check_criterion
from ._losses import SeqData
from ._train import Hyper, TrainConfig, train_ensemble_jit


class SeqFitResult(eqx.Module):
    """Outcome of :func:`fit_family`.

    - ``probe``: the selected :class:`FittedSeqProbe` (raw activations in).
    - ``members``: every configuration's trained module (leading axis ``C``, standardised
      coordinates; wrap one with ``FittedSeqProbe(member, probe.scaler)``).
    - ``learning_rate``, ``weight_decay``, ``seed``: the grid, ``(C,)``.
    - ``index``: the selected configuration.
    - ``val_loss``, ``val_accuracy``, ``val_auroc``, ``test_accuracy``, ``test_auroc``,
      ``test_log_loss``, ``best_step``, ``steps``: per configuration ``(C,)``;
      ``val_history`` ``(C, E)``.
    - ``accuracy``, ``auroc``, ``log_loss``: test metrics of the selected configuration.
    - ``score_stability``: mean pairwise Pearson correlation of the test logits of the
      seeds at the selected hyperparameters (NaN with one seed).
    - ``concept_stability``: mean pairwise :math:`|\\cos|` of their concept vectors (NaN
      when the family has none or with one seed).
    - ``splits``: the :class:`probejax.Splits` used.
    """

    probe: FittedSeqProbe
    members: SeqProbe
    learning_rate: Float[Array, " C"]
    weight_decay: Float[Array, " C"]
    seed: Int[Array, " C"]
    index: Int[Array, ""]
    val_loss: Float[Array, " C"]
    val_accuracy: Float[Array, " C"]
    val_auroc: Float[Array, " C"]
    test_accuracy: Float[Array, " C"]
    test_auroc: Float[Array, " C"]
    test_log_loss: Float[Array, " C"]
    best_step: Int[Array, " C"]
    steps: Int[Array, " C"]
    val_history: Float[Array, "C E"]
    accuracy: Float[Array, ""]
    auroc: Float[Array, ""]
    log_loss: Float[Array, ""]
    score_stability: Float[Array, ""]
    concept_stability: Float[Array, ""]
    splits: Splits


@eqx.filter_jit
def ensemble_scores(members: SeqProbe, X, mask) -> Float[Array, "C n"]:
    """Logits of every member on every sequence, one member at a time (bounded memory)."""
    params, static = eqx.partition(members, eqx.is_array)
    return jax.lax.map(lambda p: jax.vmap(eqx.combine(p, static))(X, mask), params)


def standardized_parts(
    X, mask, y, fit_rows, parts, extra: dict, standardize: bool
) -> tuple[TokenScaler, list[SeqData]]:
    """The :class:`TokenScaler` of the real tokens of ``X[fit_rows]`` (identity when not
    ``standardize``) and the standardised :class:`SeqData` of each index array of
    ``parts`` (``y`` in {0, 1}; ``extra``: token_labels / spans); rows in no part are
    never transformed. Traceable."""
    scaler = (
        TokenScaler.fit(X[fit_rows], mask[fit_rows])
        if standardize
        else TokenScaler.identity(X.shape[-1])
    )

    def part(idx):
        data = SeqData(X, mask, y, **extra).take(idx)
        return eqx.tree_at(lambda d: d.X, data, scaler.transform(data.X, data.mask))

    return scaler, [part(idx) for idx in parts]


@eqx.filter_jit
def _prepare(X, mask, y, tr, va, te, extra, standardize: bool):
    scaler, parts = standardized_parts(
        X, mask, y, tr, (tr, va, jnp.concatenate([va, te])), extra, standardize
    )
    return scaler, *parts


_METRICS = {"accuracy": accuracy, "auroc": auroc, "log_loss": log_loss}


def member_metrics(
    y: Float[Array, " n"], scores: Float[Array, "C n"], names=("accuracy", "auroc")
) -> dict[str, Float[Array, " C"]]:
    """``{name: (C,)}``: each metric of ``names`` (``accuracy``, ``auroc``,
    ``log_loss``) of every member's scores against ``y``. Traceable."""
    return {k: jax.vmap(_METRICS[k], in_axes=(None, 0))(y, scores) for k in names}


def criterion_values(criterion, y01: Float[Array, " n"], scores: Float[Array, "C n"]):
    """``criterion(y, scores)`` of every member, ``(C,)`` (``y`` in +-1), or ``None``
    when ``criterion`` is ``None``. Traceable."""
    if criterion is None:
        return None
    return jax.vmap(criterion, in_axes=(None, 0))(2 * y01 - 1, scores)


@eqx.filter_jit
def _evaluate(members: SeqProbe, both: SeqData, n_val: int, criterion):
    s = ensemble_scores(members, both.X, both.mask)
    s_val, s_te = s[:, :n_val], s[:, n_val:]
    y_val, y_te = both.y[:n_val], both.y[n_val:]
    val = member_metrics(y_val, s_val)
    test = member_metrics(y_te, s_te, ("accuracy", "auroc", "log_loss"))
    return (
        s_te,
        criterion_values(criterion, y_val, s_val),
        {
            **{f"val_{k}": v for k, v in val.items()},
            **{f"test_{k}": v for k, v in test.items()},
        },
    )


def _init(make, keys, seeds: np.ndarray) -> SeqProbe:
    """``make(keys[s])`` for each seed, stacked along a new leading axis in the order of
    ``seeds``. One eager call per seed: for the few seeds of a grid, compiling the vmapped
    initialisation (threefry under ``vmap``) costs more than running it."""
    built = [make(k) for k in keys]
    params = [eqx.filter(m, eqx.is_array) for m in built]
    stacked = jax.tree.map(
        lambda *a: jnp.asarray(np.stack([np.asarray(x) for x in a])[seeds]), *params
    )
    return eqx.combine(stacked, eqx.filter(built[0], eqx.is_array, inverse=True))


@eqx.filter_jit
def _concept_vectors(members):
    return eqx.filter_vmap(lambda m: m.concept_vector())(members)


def select_member(val_loss, val_criterion=None) -> Int[Array, ""]:
    """The selected configuration (module docstring, step 4): the lowest validation loss
    when ``val_criterion`` is ``None``, else the highest ``val_criterion`` with ties to
    the lower validation loss; remaining ties to the first index, NaN losses last.
    Traceable."""
    val_loss = jnp.asarray(val_loss)
    if val_criterion is None:
        behind = jnp.zeros(val_loss.shape, bool)
    else:
        primary = jnp.asarray(val_criterion)
        behind = primary != jnp.nanmax(primary)
    return jnp.lexsort((val_loss, behind))[0]


def take_member(members: SeqProbe, i) -> SeqProbe:
    """Member ``i`` of an ensemble (leading axis of every array leaf). Traceable."""
    params, static = eqx.partition(members, eqx.is_array)
    return eqx.combine(jax.tree.map(lambda a: a[i], params), static)


def _mean_pairwise_cos(V: np.ndarray, absolute: bool) -> float:
    if V.shape[0] < 2:
        return float("nan")
    mean_abs, mean_signed = pairwise_cosine_summary(jnp.asarray(V))
    return float(mean_abs if absolute else mean_signed)


def _concept_stability(members: SeqProbe, scale, idx: np.ndarray) -> float:
    if idx.size < 2:
        return float("nan")
    try:
        V = np.asarray(_concept_vectors(members))
    except NotImplementedError:
        return float("nan")
    return _mean_pairwise_cos(V[idx] / np.asarray(scale), absolute=True)


def fit_family(
    make: Callable[[PRNGKeyArray], SeqProbe],
    X,
    mask,
    y,
    key: PRNGKeyArray,
    *,
    grid: SeqGrid = SeqGrid(),
    config: TrainConfig = TrainConfig(),
    criterion: Callable | None = None,
    splits: Splits | None = None,
    standardize: bool = True,
    token_labels=None,
    spans=None,
) -> SeqFitResult:
    """Fit one sequence-probe family (see module docstring).

    **Arguments:**

    - ``make``: ``key -> SeqProbe``, e.g. ``lambda k: EfficientProbe(d, key=k)``.
    - ``X``: activations ``(n, T, d)``; ``mask``: ``(n, T)`` bool, True on real tokens
      (None: all real); ``y``: two-class labels ``(n,)``.
    - ``key``: PRNG key (splits, initialisations, minibatches).
    - ``grid``: :class:`SeqGrid`, the ``C`` configurations.
    - ``config``: :class:`TrainConfig`.
    - ``criterion``: ``None`` (lowest validation loss) or ``criterion(y, scores)``,
      larger is better, e.g. :func:`probejax.metrics.accuracy`.
    - ``splits``: explicit :class:`probejax.Splits` (e.g. to match a RAPTOR run).
    - ``standardize``: standardise tokens with train_sub statistics (True).
    - ``token_labels``, ``spans``: ``(n, T)`` ints for :class:`TokenLoss`.

    **Returns:** :class:`SeqFitResult`.
    """
    if not isinstance(grid, SeqGrid):
        raise TypeError(f"grid must be a probejax.seq.SeqGrid, got {type(grid).__name__}.")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}.")
    check_criterion(criterion)
    Xn, maskn, y01 = check_sequences(X, mask, y)
    lrs, wds, seeds = grid.configurations()
    k_split, k_init, k_train = jax.random.split(key, 3)
    if splits is None:
        splits = jax.jit(lambda k: protocol_splits(k, y01))(k_split)
    tr, va, te = (np.asarray(a) for a in (splits.train_sub, splits.val, splits.test))
    for name, idx in (("train_sub", tr), ("val", va), ("test", te)):
        if idx.size == 0 or len(np.unique(y01[idx])) < 2:
            raise ValueError(
                f"the {name} split needs both classes; it has labels {np.unique(y01[idx]).tolist()}."
            )
    extra = {}
    for name, arr in (("token_labels", token_labels), ("spans", spans)):
        if arr is not None:
            arr = np.asarray(arr)
            if arr.shape != maskn.shape:
                raise ValueError(
                    f"{name} must have shape {maskn.shape} like mask, got {arr.shape}."
                )
            extra[name] = jnp.asarray(arr, jnp.int32)
    scaler, train, val, both = _prepare(
        jnp.asarray(Xn),
        jnp.asarray(maskn),
        jnp.asarray(y01),
        *(jnp.asarray(a) for a in (tr, va, te)),
        extra,
        standardize,
    )

    probes = _init(make, jax.random.split(k_init, grid.seeds), seeds)
    hypers = Hyper(jnp.asarray(lrs, jnp.float32), jnp.asarray(wds, jnp.float32))
    res = train_ensemble_jit(
        probes, hypers, train, val, jax.random.split(k_train, lrs.size), config
    )
    s_te, crit, m = _evaluate(res.probe, both, int(va.size), criterion)
    m = {k: np.asarray(v) for k, v in m.items()}
    i = int(select_member(res.best_val_loss, crit))
    same = np.flatnonzero((lrs == lrs[i]) & (wds == wds[i]))
    s_same = np.asarray(s_te)[same]
    chosen = take_member(res.probe, i)
    return SeqFitResult(
        probe=FittedSeqProbe(chosen, scaler),
        members=res.probe,
        learning_rate=hypers.learning_rate,
        weight_decay=hypers.weight_decay,
        seed=jnp.asarray(seeds),
        index=jnp.asarray(i),
        val_loss=res.best_val_loss,
        **{k: jnp.asarray(v) for k, v in m.items()},
        best_step=res.best_step,
        steps=res.steps,
        val_history=res.val_history,
        accuracy=jnp.asarray(m["test_accuracy"][i]),
        auroc=jnp.asarray(m["test_auroc"][i]),
        log_loss=jnp.asarray(m["test_log_loss"][i]),
        score_stability=jnp.asarray(
            _mean_pairwise_cos(s_same - s_same.mean(1, keepdims=True), absolute=False)
        ),
        concept_stability=jnp.asarray(_concept_stability(res.probe, scaler.scale, same)),
        splits=splits,
    )
