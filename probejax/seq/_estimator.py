r"""Sequence-probe families as protocol estimators (:class:`probejax.estimators.Estimator`).

:class:`SeqEstimator` makes a sequence-probe family an estimator like any linear probe,
so :func:`probejax.compare`, :func:`probejax.stability` and layer sweeps take it. Its
input ``X`` is a :class:`probejax.core.Tokens` (token activations ``(n, T, d)`` and
their mask ``(n, T)``), ``y`` is in :math:`\{-1, +1\}`.

``fit_with_validation(X, y, train, val, key)`` is steps 2 to 4 of
:func:`probejax.seq.fit_seq_probe` (same helpers, same keys, same selection), traceable
end to end (it ``jit``-s, ``vmap``-s and runs inside ``lax.map``):

1. per-feature token standardisation with the statistics of the real tokens of
   ``train`` (padding is zeroed first);
2. the grid learning rate x weight decay x seed (``C`` configurations; each seed's
   initialisation shared across the hyperparameters) trained with early stopping on
   ``val`` in one vmapped program (:func:`probejax.seq.train_ensemble`);
3. selection by ``criterion`` on ``val`` (lowest validation loss, or highest validation
   accuracy / AUROC with ties to the lower validation loss); no refit.

With ``fit_seq_probe``'s ``key`` and splits (``train_sub``, ``val``) it selects the same
configuration and scores the same. ``fit(X, y, key)`` first holds out a stratified
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
``learning_rates``, ``weight_decays``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..core._checks import check_fraction
from ..core._probe import Diagnosed, Probe, unit
from ..core._rows import Tokens
from ..estimators._base import ValidatedEstimator
from ._base import SeqProbe
from ._fit import (
    CRITERIA,
    _grid,
    ensemble_scores,
    member_metrics,
    select_member,
    standardized_parts,
    take_member,
)
from ._fitted import FittedSeqProbe
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


def _floats(values) -> tuple[float, ...]:
    return tuple(float(v) for v in np.ravel(np.asarray(values, np.float64)))


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
    - ``learning_rates``, ``weight_decays``, ``n_seeds``: the grid.
    - ``criterion``: ``"loss"``, ``"accuracy"`` or ``"auroc"`` on validation.
    - ``standardize``: standardise tokens with the train statistics (True).
    - ``val_fraction``: the validation share ``fit`` holds out (0.2).
    """

    family: Callable[..., SeqProbe] = eqx.field(static=True)
    options: tuple[tuple[str, Any], ...] = eqx.field(default=(), static=True, converter=_options)
    config: TrainConfig = eqx.field(default=TrainConfig(), static=True)
    learning_rates: tuple[float, ...] = eqx.field(
        default=(1e-3, 3e-3, 1e-2), static=True, converter=_floats
    )
    weight_decays: tuple[float, ...] = eqx.field(default=(1e-2,), static=True, converter=_floats)
    n_seeds: int = eqx.field(default=2, static=True)
    criterion: str = eqx.field(default="loss", static=True)
    standardize: bool = eqx.field(default=True, static=True)
    val_fraction: float = eqx.field(default=0.2, static=True)

    def __check_init__(self):
        if not callable(self.family):
            raise TypeError(f"SeqEstimator: family must be callable, got {self.family!r}.")
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {self.criterion!r}.")
        if not isinstance(self.config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(self.config).__name__}.")
        _grid(self.learning_rates, self.weight_decays, self.n_seeds)
        check_fraction(self.val_fraction, "val_fraction")

    def make(self, d: int) -> Callable[[PRNGKeyArray], SeqProbe]:
        """``key -> SeqProbe`` for token width ``d`` (what ``fit_seq_probe`` takes)."""
        family, options = self.family, dict(self.options)
        return lambda key: family(d, key=key, **options)

    def fit_with_validation(self, X: Tokens, y, train, val, key) -> Probe:
        X = _tokens(X)
        mask = jnp.asarray(X.mask, bool)
        tokens = jnp.where(mask[..., None], X.X, 0.0)
        y01 = (y > 0).astype(tokens.dtype)
        lrs, wds, seeds = _grid(self.learning_rates, self.weight_decays, self.n_seeds)
        _, k_init, k_train = jax.random.split(key, 3)  # fit_seq_probe's keys
        scaler, (tr, va) = standardized_parts(
            tokens, mask, y01, train, (train, val), {}, self.standardize
        )
        init_keys = jax.random.split(k_init, self.n_seeds)[seeds]
        members = eqx.filter_vmap(self.make(tokens.shape[-1]))(init_keys)
        hypers = Hyper(jnp.asarray(lrs, jnp.float32), jnp.asarray(wds, jnp.float32))
        res = train_ensemble(
            members, hypers, tr, va, jax.random.split(k_train, lrs.size), self.config
        )
        m = member_metrics(va.y, ensemble_scores(res.probe, va.X, va.mask))
        i = select_member(self.criterion, res.best_val_loss, m["accuracy"], m["auroc"])
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
        return Diagnosed(SeqTokensProbe(fitted, concept), info)


def seq_estimator(
    family: Callable[..., SeqProbe],
    /,
    *,
    config: TrainConfig = TrainConfig(),
    learning_rates=(1e-3, 3e-3, 1e-2),
    weight_decays=(1e-2,),
    n_seeds: int = 2,
    criterion: str = "loss",
    standardize: bool = True,
    val_fraction: float = 0.2,
    **options: Any,
) -> SeqEstimator:
    """A :class:`SeqEstimator` of ``family`` with the remaining keyword arguments as the
    family's options, e.g. ``seq_estimator(EfficientProbe, n_queries=4,
    learning_rates=(1e-2,))``."""
    return SeqEstimator(
        family,
        options,
        config=config,
        learning_rates=learning_rates,
        weight_decays=weight_decays,
        n_seeds=n_seeds,
        criterion=criterion,
        standardize=standardize,
        val_fraction=val_fraction,
    )
