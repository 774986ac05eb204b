r"""A steering hook with its own push for every batch row.

:class:`RowSteering` holds, per steered block :math:`\ell`, a matrix
:math:`P_\ell \in \mathbb{R}^{B\times d}` and adds row :math:`b`'s push to that row's
hidden state, :math:`e_{\ell,b,t} \leftarrow e_{\ell,b,t} + P_{\ell,b}`, at the positions
:math:`t` its :class:`~probejax.llm.Positions` names (every position, or the last of each
forward call). One batch can thus hold many prompts, directions and strengths at once
(a dose-response in one ``generate_batch`` call); a matrix with one row applies to every
row. Rows without a push at a layer get zeros there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ._intervention import Intervention, Positions, SteerRecord
from ._vectors import SteeringVector


class RowSteering(Intervention):
    """Per-row additive pushes ``{layer: (B, d)}`` at one site.

    **Arguments:**

    - `pushes`: ``{layer: array (B, d)}``, row ``b``'s push at that layer (``B = 1``
      broadcasts over the batch).
    - `positions`: :attr:`Positions.ALL` or :attr:`Positions.LAST`.
    - `site`: where each block is edited (:func:`probejax.llm.hooked`).

    Its log records, per row and step, the push's norm as ``eps`` (``applied`` when it
    is not zero).
    """

    def __init__(
        self,
        pushes: Mapping[int, np.ndarray],
        *,
        positions: Positions = Positions.ALL,
        site: str = "block_output",
    ):
        super().__init__(positions=positions, site=site)
        if not pushes:
            raise ValueError("pushes is empty: give at least one {layer: (B, d) array}.")
        self.pushes = {int(i): np.atleast_2d(np.asarray(p, np.float64)) for i, p in pushes.items()}
        rows = {p.shape[0] for p in self.pushes.values()}
        if len(rows) != 1:
            raise ValueError(f"the layers' pushes have different row counts {sorted(rows)}.")
        self.lengths = {i: np.linalg.norm(p, axis=-1) for i, p in self.pushes.items()}

    @property
    def layers(self) -> list[int]:
        return sorted(self.pushes)

    @property
    def n_rows(self) -> int:
        return next(iter(self.pushes.values())).shape[0]

    @classmethod
    def constant(
        cls, vector: SteeringVector, multiplier: float, *, positions: Positions = Positions.ALL
    ) -> RowSteering:
        """``multiplier * vector`` on every row, at the vector's site."""
        pushes = {i: float(multiplier) * v[None] for i, v in vector.directions.items()}
        return cls(pushes, positions=positions, site=vector.site)

    @classmethod
    def rows(
        cls,
        vectors: Sequence[SteeringVector | None],
        multipliers: Sequence[float],
        *,
        positions: Positions = Positions.ALL,
    ) -> RowSteering:
        """Row ``b`` gets ``multipliers[b] * vectors[b]`` (``None``: unsteered); all the
        vectors must share one site."""
        if len(vectors) != len(multipliers):
            raise ValueError(
                f"{len(vectors)} vectors but {len(multipliers)} multipliers: one of each per row."
            )
        used = [v for v in vectors if v is not None]
        if not used:
            raise ValueError("every row is unsteered: pass steering=None instead.")
        sites = {v.site for v in used}
        if len(sites) != 1:
            raise ValueError(f"the vectors use different sites {sorted(sites)}.")
        d = next(iter(used[0].directions.values())).shape[0]
        layers = sorted({i for v in used for i in v.directions})
        pushes = {i: np.zeros((len(vectors), d)) for i in layers}
        for b, (v, m) in enumerate(zip(vectors, multipliers, strict=True)):
            if v is None:
                continue
            for i, u in v.directions.items():
                pushes[i][b] = float(m) * u
        return cls(pushes, positions=positions, site=sites.pop())

    def select(self, rows: slice) -> RowSteering:
        """The pushes of a slice of the rows (all of them when one row broadcasts)."""
        if self.n_rows == 1:
            return self
        pushes = {i: p[rows] for i, p in self.pushes.items()}
        return RowSteering(pushes, positions=self.positions, site=self.site)

    def edit(self, layer: int, step: int, hidden: torch.Tensor) -> torch.Tensor:
        (push,) = self._tensors(layer, hidden, (self.pushes[layer],), hidden.dtype)
        B = hidden.shape[0]
        if push.shape[0] not in (1, B):
            raise ValueError(f"layer {layer}: {push.shape[0]} rows of pushes for a batch of {B}.")
        part = self.positions.part(hidden)
        lengths = np.broadcast_to(self.lengths[layer], (B,))
        for row in range(B):
            eps = float(lengths[row])
            n = part.shape[1] if eps != 0 else 0
            self.log.append(
                SteerRecord(step, layer, row, eps != 0, eps, float("nan"), float("nan"), n)
            )
        return self.positions.merge(hidden, part + push[:, None, :])
