r"""Every sequence-probe family at its paper defaults, as :class:`SeqEstimator` objects."""

from __future__ import annotations

import dataclasses
import math

from ._attention import AttentionPoolProbe, MultiHeadAttentionProbe
from ._efficient import EfficientProbe
from ._estimator import SeqEstimator
from ._gemini import (
    MeanLinearProbe,
    MLPAttentionProbe,
    MLPMeanProbe,
    MultiMaxProbe,
    RollingAttentionProbe,
)
from ._grid import SeqGrid
from ._losses import TokenLoss
from ._mlp import MLPProbe
from ._moment import MomentProbe
from ._prototype import PrototypeProbe
from ._train import TrainConfig


def default_families(
    d: int, grid: SeqGrid = SeqGrid(), config: TrainConfig = TrainConfig()
) -> dict[str, SeqEstimator]:
    r"""``name -> SeqEstimator`` for every family at its paper defaults.

    **Arguments:**

    - ``d``: the token width; widths adapt to it where a divisibility constraint needs
      it (EP's queries :math:`M = \gcd(d, 32)`, the heads of multi-head attention).
    - ``grid``, ``config``: every family's :class:`SeqGrid` and :class:`TrainConfig`;
      the per-token MLP trains with ``config``'s settings and the span-max
      :class:`TokenLoss`.

    Moment Probing's projection is :math:`p = 256` instead of 512, which quarters its
    second-order branch (the :math:`k \times k` cross-covariances and convolutions of
    every sequence, its dominant cost).

    **Returns:** the estimators by display name, in table order.
    """
    m = math.gcd(d, 32)
    h = max(k for k in (8, 4, 2, 1) if d % k == 0)
    token = dataclasses.replace(config, loss=TokenLoss())

    def est(family, config=config, **options):
        return SeqEstimator(family, options, config=config, grid=grid)

    return {
        "mean-linear": est(MeanLinearProbe),
        "mean-linear, EMA-max": est(MeanLinearProbe, ema_alpha=0.5),
        "MLP-mean": est(MLPMeanProbe),
        "attention pool (1 query)": est(AttentionPoolProbe),
        f"EP (M={m})": est(EfficientProbe, n_queries=m),
        f"multi-head attention ({h} heads)": est(MultiHeadAttentionProbe, n_heads=h),
        "MLP attention (H=10)": est(MLPAttentionProbe),
        "MultiMax (H=10)": est(MultiMaxProbe),
        "rolling attention (H=10, w=10)": est(RollingAttentionProbe),
        "MLP (last token)": est(MLPProbe, pooling="last"),
        "MLP per token (max)": est(MLPProbe, config=token, mode="token"),
        "moment (p=256)": est(MomentProbe, hidden=256),
        "prototype (J=20)": est(PrototypeProbe),
    }
