r"""What a sequence-probe family is trained and selected with: the grid of
configurations and the validation criterion.

A :class:`SeqGrid` holds learning rates :math:`\eta_a`, weight decays
:math:`\lambda_b` and a number of seeds :math:`S`; its :math:`C = A\,B\,S`
configurations are every :math:`(\eta_a, \lambda_b, s)`, each seed's initialisation
shared across the hyperparameters. A criterion is ``None`` (select the lowest
validation loss, the early-stopping loss) or a callable ``criterion(y, scores) ->
scalar`` with ``y`` in :math:`\{-1, +1\}`, larger is better (as the flat probes'
:func:`probejax.estimators.raptor` takes, e.g. :func:`probejax.metrics.accuracy`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np


def _values(values, name: str, *, positive: bool) -> tuple[float, ...]:
    want = "positive numbers" if positive else "numbers >= 0"
    try:
        a = np.ravel(np.asarray(values, np.float64))
    except (TypeError, ValueError):
        a = None
    if a is None or a.size == 0 or not np.all(np.isfinite(a) & ((a > 0) if positive else (a >= 0))):
        raise ValueError(
            f"SeqGrid.{name} must be a non-empty list of finite {want}, got {values!r}."
        )
    return tuple(float(v) for v in a)


@dataclasses.dataclass(frozen=True)
class SeqGrid:
    """The grid of training configurations (module docstring), validated when built.

    - ``learning_rates``: AdamW's peak learning rates, finite and positive.
    - ``weight_decays``: decoupled weight decays, finite and >= 0.
    - ``seeds``: initialisations per hyperparameter pair, a positive int.

    Raises ``ValueError`` naming the field and the value.
    """

    learning_rates: tuple[float, ...] = (1e-3, 3e-3, 1e-2)
    weight_decays: tuple[float, ...] = (1e-2,)
    seeds: int = 2

    def __post_init__(self):
        lrs = _values(self.learning_rates, "learning_rates", positive=True)
        wds = _values(self.weight_decays, "weight_decays", positive=False)
        s = self.seeds
        if isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1:
            raise ValueError(f"SeqGrid.seeds must be a positive int, got {s!r}.")
        object.__setattr__(self, "learning_rates", lrs)
        object.__setattr__(self, "weight_decays", wds)
        object.__setattr__(self, "seeds", int(s))

    @property
    def size(self) -> int:
        """The number of configurations :math:`C`."""
        return len(self.learning_rates) * len(self.weight_decays) * self.seeds

    def configurations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(learning_rate, weight_decay, seed)``, each ``(C,)``, in the order learning
        rate, then weight decay, then seed (the seed varies fastest)."""
        lrs, wds = np.asarray(self.learning_rates), np.asarray(self.weight_decays)
        L, W, S = np.meshgrid(
            np.arange(lrs.size), np.arange(wds.size), np.arange(self.seeds), indexing="ij"
        )
        return lrs[L.ravel()], wds[W.ravel()], S.ravel()


def check_criterion(criterion, where: str = "criterion") -> Callable | None:
    """``criterion`` if it is ``None`` or callable (module docstring); otherwise a
    ``ValueError`` naming ``where``."""
    if criterion is not None and not callable(criterion):
        raise ValueError(
            f"{where} must be None (the lowest validation loss) or a callable "
            f"criterion(y, scores) -> scalar, larger is better (e.g. "
            f"probejax.metrics.accuracy or probejax.metrics.auroc), got {criterion!r}."
        )
    return criterion
