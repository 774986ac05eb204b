r"""Training one sequence probe with optax, and ensembles of them in one program.

:func:`train_probe` is a pure function of ``(probe, hyper, train, val, key)``: AdamW
(``optax.adamw``, decoupled weight decay on every parameter) after global-norm
clipping, learning rate :math:`\eta\, s(k)` with :math:`s` the schedule's shape
(``"constant"``, ``"cosine"`` decay to zero over ``max_steps``, ``"warmup_cosine"``),
minimising ``loss(probe, batch) + probe.penalty()``. Every ``eval_every`` steps the
validation loss (inference-mode logits) is computed; the parameters with the lowest
validation loss so far are carried along, and training stops after ``patience``
evaluations without a strict improvement or at ``max_steps``. The loop is a
``lax.while_loop`` over evaluations around a ``lax.scan`` of optimiser steps, so one
call compiles once, and :func:`train_ensemble` is just ``vmap`` of it over probes,
hyperparameters and keys (a vmapped while loop runs until every member has stopped;
stopped members are carried unchanged).

Swept values (learning rate, weight decay) are array leaves of :class:`Hyper`;
everything in :class:`TrainConfig` is static.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._base import SeqProbe
from ._losses import SeqData, SequenceLoss, TokenLoss

SCHEDULES = ("constant", "cosine", "warmup_cosine")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static training settings (changing one recompiles).

    - ``max_steps`` (300), ``eval_every`` (10), ``patience`` evaluations (5).
    - ``batch_size``: sequences per step, drawn without replacement each step; None:
      full batch.
    - ``schedule`` (``"cosine"``), ``warmup_steps`` (for ``"warmup_cosine"``).
    - ``clip_norm``: global gradient-norm clip (1.0; None: off); ``b1``, ``b2`` Adam's.
    - ``loss``: :class:`SequenceLoss` or :class:`TokenLoss`.
    """

    max_steps: int = 300
    eval_every: int = 10
    patience: int = 5
    batch_size: int | None = None
    schedule: str = "cosine"
    warmup_steps: int = 0
    clip_norm: float | None = 1.0
    b1: float = 0.9
    b2: float = 0.999
    loss: SequenceLoss | TokenLoss = dataclasses.field(default_factory=SequenceLoss)

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"TrainConfig: schedule must be one of {SCHEDULES}, got {self.schedule!r}."
            )
        for name in ("max_steps", "eval_every", "patience"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"TrainConfig: {name} must be a positive int, got {v!r}.")
        if self.eval_every > self.max_steps:
            raise ValueError(
                f"TrainConfig: eval_every={self.eval_every} exceeds max_steps={self.max_steps}."
            )
        if self.batch_size is not None and (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise ValueError(
                f"TrainConfig: batch_size must be a positive int or None, got {self.batch_size!r}."
            )

    @property
    def n_evals(self) -> int:
        return self.max_steps // self.eval_every


class Hyper(eqx.Module):
    """Swept optimiser values: ``learning_rate`` :math:`\\eta` and ``weight_decay``."""

    learning_rate: Float[Array, ""]
    weight_decay: Float[Array, ""]


class TrainResult(eqx.Module):
    """``probe``: the parameters with the lowest validation loss; ``best_val_loss``;
    ``best_step`` (0 = the initial probe); ``steps`` run; ``val_history``: validation
    loss at steps ``0, eval_every, 2 eval_every, ...`` (NaN after stopping)."""

    probe: SeqProbe
    best_val_loss: Float[Array, ""]
    best_step: Int[Array, ""]
    steps: Int[Array, ""]
    val_history: Float[Array, " E"]


def _shape(config: TrainConfig):
    n = config.max_steps
    if config.schedule == "constant":
        return optax.constant_schedule(1.0)
    if config.schedule == "cosine":
        return optax.cosine_decay_schedule(1.0, n)
    return optax.warmup_cosine_decay_schedule(0.0, 1.0, config.warmup_steps, n)


def optimizer(config: TrainConfig, hyper: Hyper) -> optax.GradientTransformation:
    """Clip (optional), then AdamW with the scaled schedule."""
    shape = _shape(config)
    adamw = optax.adamw(
        lambda k: hyper.learning_rate * shape(k),
        b1=config.b1,
        b2=config.b2,
        weight_decay=hyper.weight_decay,
    )
    if config.clip_norm is None:
        return adamw
    return optax.chain(optax.clip_by_global_norm(config.clip_norm), adamw)


def _select(flag, a, b):
    return jax.tree.map(lambda u, v: jnp.where(flag, u, v), a, b)


def train_probe(
    probe: SeqProbe,
    hyper: Hyper,
    train: SeqData,
    val: SeqData,
    key: PRNGKeyArray,
    config: TrainConfig = TrainConfig(),
) -> TrainResult:
    """Train one probe with early stopping (see module docstring).

    **Arguments:**

    - ``probe``: the initial probe.
    - ``hyper``: learning rate and weight decay (scalars; may be traced).
    - ``train``, ``val``: :class:`SeqData`.
    - ``key``: PRNG key for the minibatches (unused with full batches).
    - ``config``: :class:`TrainConfig`.

    **Returns:** :class:`TrainResult`.
    """
    params, static = eqx.partition(probe, eqx.is_inexact_array)
    opt = optimizer(config, hyper)
    n = train.y.shape[0]
    full = config.batch_size is None or config.batch_size >= n

    def train_loss(p, batch):
        m = eqx.combine(p, static)
        return config.loss(m, batch, True) + m.penalty()

    def val_loss(p):
        return config.loss(eqx.combine(p, static), val, False)

    def step(carry, k):
        p, s = carry
        batch = (
            train
            if full
            else train.take(jax.random.choice(k, n, (config.batch_size,), replace=False))
        )
        g = jax.grad(train_loss)(p, batch)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    E = config.n_evals
    v0 = val_loss(params)
    init = dict(
        i=jnp.zeros((), jnp.int32),
        bad=jnp.zeros((), jnp.int32),
        p=params,
        s=opt.init(params),
        best=params,
        best_v=v0,
        best_i=jnp.zeros((), jnp.int32),
        hist=jnp.full((E + 1,), jnp.nan, v0.dtype).at[0].set(v0),
    )

    def cond(c):
        return (c["i"] < E) & (c["bad"] < config.patience)

    def body(c):
        keys = jax.random.split(jax.random.fold_in(key, c["i"]), config.eval_every)
        (p, s), _ = jax.lax.scan(step, (c["p"], c["s"]), keys)
        v = val_loss(p)
        i = c["i"] + 1
        better = v < c["best_v"]
        return dict(
            i=i,
            bad=jnp.where(better, 0, c["bad"] + 1),
            p=p,
            s=s,
            best=_select(better, p, c["best"]),
            best_v=jnp.where(better, v, c["best_v"]),
            best_i=jnp.where(better, i, c["best_i"]),
            hist=c["hist"].at[i].set(v),
        )

    c = jax.lax.while_loop(cond, body, init)
    return TrainResult(
        probe=eqx.combine(c["best"], static),
        best_val_loss=c["best_v"],
        best_step=c["best_i"] * config.eval_every,
        steps=c["i"] * config.eval_every,
        val_history=c["hist"],
    )


def train_ensemble(
    probes: SeqProbe,
    hypers: Hyper,
    train: SeqData,
    val: SeqData,
    keys: PRNGKeyArray,
    config: TrainConfig = TrainConfig(),
) -> TrainResult:
    """:func:`train_probe` vmapped over a leading axis of ``probes``, ``hypers`` and
    ``keys`` (the data are shared); one compiled program for the whole ensemble.

    Build ``probes`` with ``eqx.filter_vmap(lambda k: Family(d, key=k))(init_keys)``.

    **Returns:** :class:`TrainResult` with a leading ensemble axis.
    """
    return eqx.filter_vmap(
        lambda p, h, k: train_probe(p, h, train, val, k, config),
    )(probes, hypers, keys)


train_probe_jit = eqx.filter_jit(train_probe)
train_ensemble_jit = eqx.filter_jit(train_ensemble)
