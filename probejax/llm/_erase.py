r"""Concept erasure inside the forward pass.

:class:`EraseAt` is an :class:`~probejax.llm.Intervention` that replaces the hidden
state :math:`e` at each of its blocks by :math:`r_\ell(e) = e - U_\ell V_\ell^\top (e -
\mu_\ell)`, a fitted :class:`probejax.erasure.Eraser` per block (LEACE: no linear
readout of the erased concept at that block beats a constant), at the positions its
:class:`~probejax.llm.Positions` names, for extraction and generation alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ..erasure import Eraser
from ._intervention import Intervention, Positions, SteerRecord


class EraseAt(Intervention):
    """Erase at blocks: ``{layer: Eraser}``.

    **Arguments:**

    - `erasers`: ``{layer: Eraser}`` (each fitted on that block's activations).
    - `positions`: :attr:`Positions.ALL` or :attr:`Positions.LAST`.
    - `site`: where each block is edited (:func:`probejax.llm.hooked`).

    Its log records, per row and step, the length of the edit at the last position as
    ``eps``.
    """

    def __init__(
        self,
        erasers: Mapping[int, Eraser],
        *,
        positions: Positions = Positions.ALL,
        site: str = "block_output",
    ):
        super().__init__(positions=positions, site=site)
        if not erasers:
            raise ValueError("erasers is empty: give at least one {layer: Eraser}.")
        for i, e in erasers.items():
            if not isinstance(e, Eraser):
                raise ValueError(f"erasers[{i}] is a {type(e).__name__}, not an Eraser.")
        self.arrays = {
            int(i): tuple(np.asarray(a, np.float64) for a in (e.mean, e.U, e.V))
            for i, e in erasers.items()
        }

    @property
    def layers(self) -> list[int]:
        return sorted(self.arrays)

    def edit(self, layer: int, step: int, hidden: torch.Tensor) -> torch.Tensor:
        mean, U, V = self._tensors(layer, hidden, self.arrays[layer], hidden.dtype)
        part = self.positions.part(hidden)
        delta = ((part - mean) @ V) @ U.T
        lengths = torch.linalg.vector_norm(delta[:, -1], dim=-1)
        for row in range(hidden.shape[0]):
            eps = float(lengths[row])
            self.log.append(
                SteerRecord(step, layer, row, True, eps, float("nan"), float("nan"), part.shape[1])
            )
        return self.positions.merge(hidden, part - delta)
