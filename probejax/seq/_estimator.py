r"""Sequence-probe families as protocol estimators (:class:`probejax.estimators.Estimator`).

:class:`SeqEstimator` makes a sequence-probe family an estimator like any linear probe,
so :func:`probejax.compare`, :func:`probejax.stability` and layer sweeps take it. Its
input ``X`` is a :class:`probejax.core.Tokens` (token activations ``(n, T, d)`` and
their mask ``(n, T)``), ``y`` is in :math:`\{-1, +1\}`.

``probejax.evaluate(SeqEstimator(family), Tokens(X, mask), y, key)`` is the way to fit
and score one family. ``fit_with_validation(X, y, train, val, key)`` is traceable end
to end (it ``jit``-s, ``vmap``-s and runs inside ``lax.map``):

1. per-feature token standardisation with the statistics of the real tokens of
   ``train`` (padding is zeroed first);
2. the :class:`probejax.seq.SeqGrid` learning rate x weight decay x seed (``C``
   configurations; each seed's initialisation shared across the hyperparameters)
   trained with early stopping on ``val`` in one vmapped program
   (:func:`probejax.seq.train_ensemble`);
3. selection on ``val``: the lowest validation loss (``criterion=None``), or the
   highest ``criterion(y, scores)`` (e.g. :func:`probejax.metrics.accuracy`) with ties
   to the lower validation loss; no refit.

It selects the same configuration and scores the same as the reference
``probejax.seq._fit.fit_family`` with the same ``key`` and splits (``train_sub``,
``val``; tested). ``fit(X, y, key)`` first holds out a stratified
``val_fraction`` of the examples with
:func:`probejax.core._splits.traced_stratified_split`.

The returned probe (:class:`SeqTokensProbe` inside :class:`probejax.core.Diagnosed`)
scores raw :class:`Tokens`. Its concept vector, a unit direction in raw activation
space, is

- for families with a linear read-out (``SeqProbe.concept_vector``: mean-linear,
  attention pooling, linear MLP), that read-out mapped to raw coordinates,
  :math:`w/\sigma` normalised (as :meth:`FittedSeqProbe.concept_vector`);
- for the other families, the gradient of the mean inference logit over the training
  sequences with respect to a shift :math:`\delta` added to every real token,
  :math:`\nabla_\delta \frac1{n}\sum_i f(x_{i,1} + \delta, \dots, x_{i,T_i} + \delta)`
  at :math:`\delta = 0`, in raw coordinates (divided by :math:`\sigma`) and normalised:
  the direction in which moving every token raises the score fastest on average. For
  a mean-pooled linear read-out it equals the read-out direction.

The diagnostics (``probejax.core.diagnostics``) are ``index``, ``learning_rate``,
``weight_decay``, ``seed`` of the selected configuration, ``linear_readout`` (whether
the concept vector is the read-out), and per configuration ``(C,)``: ``val_loss`` (best,
the early-stopping criterion), ``val_accuracy``, ``val_auroc``, ``best_step``, ``steps``,
``learning_rates``, ``weight_decays``; with a ``criterion``, ``val_criterion`` ``(C,)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..core._checks import check_fraction
from ..core._probe import Diagnosed, Probe, unit
from ..core._rows import Tokens
from ..estimators._base import ValidatedEstimator
from ._base import SeqProbe
from ._fit import (
    criterion_values,
    ensemble_scores,
    member_metrics,
    select_member,
    standardized_parts,
    take_member,
)
from ._fitted import FittedSeqProbe
from ._grid import SeqGrid, check_criterion
from ._losses import SeqData
from ._train import Hyper, TrainConfig, train_ensemble


def _options(options) -> tuple[tuple[str, Any], ...]:
    items = tuple(sorted(dict(options).items()))
    try:
        hash(items)
    except TypeError as e:
        raise TypeError(
            f"SeqEstimator: family options must be hashable (ints, floats, strings, ...), "
            f"got {dict(items)!r}."
        ) from e
    return items


def _tokens(X) -> Tokens:
    if not isinstance(X, Tokens):
        raise TypeError(
            f"SeqEstimator takes probejax.core.Tokens(X (n, T, d), mask (n, T)), got "
            f"{type(X).__name__}; with probejax.compare pass mask=..."
        )
    return X


class SeqTokensProbe(Probe):
    """A fitted sequence probe that scores :class:`Tokens` (raw activations).

    ``fitted``: the :class:`FittedSeqProbe` (module and token standardisation; it takes
    ``(X, mask)`` arrays); ``concept``: the unit concept vector chosen at fit time
    (module docstring).
    """

    fitted: FittedSeqProbe
    concept: Float[Array, " d"]

    def decision_function(self, X: Tokens) -> Float[Array, " n"]:
        X = _tokens(X)
        return self.fitted.decision_function(X.X, X.mask)

    def token_scores(self, X: Tokens) -> Float[Array, "n T"]:
        """Per-token scores ``(n, T)`` (see :meth:`FittedSeqProbe.token_scores`)."""
        X = _tokens(X)
        return self.fitted.token_scores(X.X, X.mask)

    def attention(self, X: Tokens) -> Float[Array, "n H T"]:
        """Attention maps ``(n, H, T)`` (see :meth:`FittedSeqProbe.attention`)."""
        X = _tokens(X)
        return self.fitted.attention(X.X, X.mask)

    def concept_vector(self) -> Float[Array, " d"]:
        return self.concept


def concept_direction(fitted: FittedSeqProbe, train: SeqData) -> tuple[Array, bool]:
    """The unit raw-space concept vector of ``fitted`` (module docstring) and whether it
    is the family's linear read-out; ``train`` holds standardised training sequences."""
    try:
        return fitted.concept_vector(), True
    except NotImplementedError:
        pass

    def mean_logit(delta):
        shifted = train.X + jnp.where(train.mask[..., None], delta, 0.0)
        return jnp.mean(jax.vmap(fitted.probe)(shifted, train.mask))

    g = jax.grad(mean_logit)(jnp.zeros(train.X.shape[-1], train.X.dtype))
    return unit(g / fitted.scaler.scale), False


class SeqEstimator(ValidatedEstimator):
    """A sequence-probe family trained as a vmapped ensemble (module docstring).

    **Fields** (all static: changing one recompiles):

    - ``family``: the probe constructor, called ``family(d, key=k, **options)`` with
      ``d`` the token width of the data, e.g. :class:`probejax.seq.EfficientProbe`
      (a class or another hashable callable; not a lambda, whose identity would change
      the results hash of :func:`probejax.compare` and recompile every instance).
    - ``options``: the family's keyword arguments (a dict or pairs; kept as sorted
      pairs), e.g. ``{"n_queries": 4}``.
    - ``config``: :class:`TrainConfig`.
    - ``grid``: :class:`SeqGrid`, the ``C`` configurations.
    - ``criterion``: ``None`` (the lowest validation loss) or a callable
      ``criterion(y, scores)`` maximised on validation, e.g.
      :func:`probejax.metrics.accuracy` (a hashable function, as ``family``).
    - ``standardize``: standardise tokens with the train statistics (True).
    - ``val_fraction``: the validation share ``fit`` holds out (0.2).

    For example ``SeqEstimator(EfficientProbe, {"n_queries": 4},
    grid=SeqGrid(learning_rates=(1e-2,)))``.
    """

    family: Callable[..., SeqProbe] = eqx.field(static=True)
    options: tuple[tuple[str, Any], ...] = eqx.field(default=(), static=True, converter=_options)
    config: TrainConfig = eqx.field(default=TrainConfig(), static=True)
    grid: SeqGrid = eqx.field(default=SeqGrid(), static=True)
    criterion: Callable | None = eqx.field(default=None, static=True)
    standardize: bool = eqx.field(default=True, static=True)
    val_fraction: float = eqx.field(default=0.2, static=True)

    def __check_init__(self):
        if not callable(self.family):
            raise TypeError(f"SeqEstimator: family must be callable, got {self.family!r}.")
        check_criterion(self.criterion, "SeqEstimator.criterion")
        if not isinstance(self.config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(self.config).__name__}.")
        if not isinstance(self.grid, SeqGrid):
            raise TypeError(
                f"SeqEstimator.grid must be a probejax.seq.SeqGrid, got {type(self.grid).__name__}."
            )
        check_fraction(self.val_fraction, "val_fraction")

    def make(self, d: int) -> Callable[[PRNGKeyArray], SeqProbe]:
        """``key -> SeqProbe`` for token width ``d``."""
        family, options = self.family, dict(self.options)
        return lambda key: family(d, key=key, **options)

    def fit_with_validation(self, X: Tokens, y, train, val, key) -> Probe:
        X = _tokens(X)
        mask = jnp.asarray(X.mask, bool)
        tokens = jnp.where(mask[..., None], X.X, 0.0)
        y01 = (y > 0).astype(tokens.dtype)
        lrs, wds, seeds = self.grid.configurations()
        _, k_init, k_train = jax.random.split(key, 3)  # fit_family's keys
        scaler, (tr, va) = standardized_parts(
            tokens, mask, y01, train, (train, val), {}, self.standardize
        )
        init_keys = jax.random.split(k_init, self.grid.seeds)[seeds]
        members = eqx.filter_vmap(self.make(tokens.shape[-1]))(init_keys)
        hypers = Hyper(jnp.asarray(lrs, jnp.float32), jnp.asarray(wds, jnp.float32))
        res = train_ensemble(
            members, hypers, tr, va, jax.random.split(k_train, lrs.size), self.config
        )
        scores = ensemble_scores(res.probe, va.X, va.mask)
        m = member_metrics(va.y, scores)
        crit = criterion_values(self.criterion, va.y, scores)
        i = select_member(res.best_val_loss, crit)
        fitted = FittedSeqProbe(take_member(res.probe, i), scaler)
        concept, readout = concept_direction(fitted, tr)
        info = {
            "index": i,
            "learning_rate": hypers.learning_rate[i],
            "weight_decay": hypers.weight_decay[i],
            "seed": jnp.asarray(seeds)[i],
            "linear_readout": jnp.asarray(readout),
            "val_loss": res.best_val_loss,
            "val_accuracy": m["accuracy"],
            "val_auroc": m["auroc"],
            "best_step": res.best_step,
            "steps": res.steps,
            "learning_rates": hypers.learning_rate,
            "weight_decays": hypers.weight_decay,
        }
        if crit is not None:
            info["val_criterion"] = crit
        return Diagnosed(SeqTokensProbe(fitted, concept), info)
