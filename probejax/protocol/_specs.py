r"""The protocol's options as small frozen specs, validated when they are built.

- :class:`SplitSpec`: how the train_sub / val / test splits are drawn (RAPTOR's
  64/16/20 by default: a stratified ``test_fraction`` of the examples, then a
  stratified ``val_fraction`` of the rest).
- :class:`StabilitySpec`: how directional stability is measured (``runs`` refits each
  dropping a stratified ``drop`` fraction of the training pool) and, in a comparison,
  of which estimators and on which layers.
- :class:`ControlsSpec`: which validity controls run (label permutations, the
  k-direction probe's largest ``k``, random directions).

A spec holds no data and no PRNG key; building one with an invalid value raises at
once, naming the field and what would be valid, before any model is loaded or any
activation read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np


def _fraction(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"{where} must be a number in (0, 1), got {value!r}.")
    return float(value)


def _count(value, where: str, low: int, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        extra = " or None" if allow_none else ""
        raise ValueError(f"{where} must be an integer >= {low}{extra}, got {value!r}.")
    return int(value)


def _names(value, where: str) -> tuple | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{where} must be a list (or None for all), got {value!r}.")
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """How the protocol's splits are drawn.

    - ``test_fraction``: share of the examples held out for test (stratified; with
      groups, whole groups).
    - ``val_fraction``: share of the rest held out for validation; stability runs
      re-split their pool with it too.
    """

    test_fraction: float = 0.2
    val_fraction: float = 0.2

    def __post_init__(self):
        object.__setattr__(
            self, "test_fraction", _fraction(self.test_fraction, "SplitSpec.test_fraction")
        )
        object.__setattr__(
            self, "val_fraction", _fraction(self.val_fraction, "SplitSpec.val_fraction")
        )


@dataclasses.dataclass(frozen=True)
class Spread:
    """``k`` of a list of layers, evenly spread over it, the first and the last
    included (all of them when there are at most ``k``): where stability is measured
    when measuring it everywhere costs too much."""

    k: int

    def __post_init__(self):
        object.__setattr__(self, "k", _count(self.k, "Spread.k", 1))

    def pick(self, layers: Sequence) -> list:
        """The chosen layers, in order."""
        layers = list(layers)
        if len(layers) <= self.k:
            return layers
        picks = np.unique(np.round(np.linspace(0, len(layers) - 1, self.k)).astype(int))
        return [layers[i] for i in picks]


@dataclasses.dataclass(frozen=True)
class StabilitySpec:
    """How directional stability is measured.

    - ``runs``: :math:`K \\ge 2` refits; run :math:`r` drops a stratified ``drop``
      share of the training pool (train_sub + val; test untouched), re-splits the
      rest and refits, re-tuning what the estimator tunes.
    - ``drop``: the share dropped per run, in (0, 1).
    - ``batch_size``: runs evaluated at once (``None``: all at once).
    - ``estimators``: in :func:`probejax.compare`, the names whose stability is
      measured (``None``: all).
    - ``layers``: in :func:`probejax.compare`, the layers where it is: a list, a
      :class:`Spread` of them, or ``None`` for all (each costs ``runs`` refits per
      estimator).
    """

    runs: int = 20
    drop: float = 0.2
    batch_size: int | None = 4
    estimators: Sequence[str] | None = None
    layers: Sequence[Any] | Spread | None = None

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)
        set_("runs", _count(self.runs, "StabilitySpec.runs", 2))
        set_("drop", _fraction(self.drop, "StabilitySpec.drop"))
        set_("batch_size", _count(self.batch_size, "StabilitySpec.batch_size", 1, True))
        set_("estimators", _names(self.estimators, "StabilitySpec.estimators"))
        if not isinstance(self.layers, Spread):
            set_("layers", _names(self.layers, "StabilitySpec.layers"))

    def layers_of(self, layers: Sequence) -> list:
        """The layers of ``layers`` where stability is measured (errors name the ones
        that are not among them)."""
        layers = list(layers)
        if self.layers is None:
            return layers
        if isinstance(self.layers, Spread):
            return self.layers.pick(layers)
        missing = [i for i in self.layers if i not in layers]
        if missing:
            raise ValueError(f"StabilitySpec.layers {missing} are not among the layers {layers}.")
        return list(self.layers)

    def replace(self, **changes) -> StabilitySpec:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class ControlsSpec:
    """Which validity controls run (:mod:`probejax.protocol`).

    - ``permutations``: label shuffles per layer for the permutation test (and per
      step of the k-direction probe's test), >= 1.
    - ``batch_size``: fits evaluated at once (``None``: all at once).
    - ``k_max``: the k-direction probe's largest number of directions, at the best
      layer of a sweep (>= 1).
    - ``random_directions``: random unit directions of the random-direction baseline
      at that layer (>= 1).
    """

    permutations: int = 100
    batch_size: int | None = 8
    k_max: int = 8
    random_directions: int = 200

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)
        set_("permutations", _count(self.permutations, "ControlsSpec.permutations", 1))
        set_("batch_size", _count(self.batch_size, "ControlsSpec.batch_size", 1, True))
        set_("k_max", _count(self.k_max, "ControlsSpec.k_max", 1))
        set_(
            "random_directions",
            _count(self.random_directions, "ControlsSpec.random_directions", 1),
        )
