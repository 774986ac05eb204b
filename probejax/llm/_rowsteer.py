r"""A steering hook with its own push for every batch row.

:class:`RowSteering` holds, per steered block :math:`\ell`, a matrix
:math:`P_\ell \in \mathbb{R}^{B\times d}` and adds row :math:`b`'s push to that row's
hidden state, :math:`e_{\ell,b,t} \leftarrow e_{\ell,b,t} + P_{\ell,b}`, at every position
or only after the prompt (module :mod:`probejax.llm._vectors`). One batch can thus hold
many prompts, directions and strengths at once (a dose-response in one ``generate``
call); a matrix with one row applies to every row. Rows without a push at a layer get
zeros there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from ._vectors import SteeringVector, check_positions


class RowSteering:
    """Per-row additive pushes ``{layer: (B, d)}`` at one hook point.

    **Arguments:**

    - `pushes`: ``{layer: array (B, d)}``, row ``b``'s push at that layer (``B = 1``
      broadcasts over the batch).
    - `positions`: ``"all"`` or ``"after_prompt"`` (the last position of each forward
      call: with a KV cache, the prompt's last token and then every generated token).
    - `point`: the hook point.
    """

    def __init__(
        self,
        pushes: Mapping[int, np.ndarray],
        *,
        positions: str = "all",
        point: str = "block_output",
    ):
        check_positions(positions)
        if not pushes:
            raise ValueError("pushes is empty: give at least one {layer: (B, d) array}.")
        self.pushes = {int(i): np.atleast_2d(np.asarray(p, np.float64)) for i, p in pushes.items()}
        rows = {p.shape[0] for p in self.pushes.values()}
        if len(rows) != 1:
            raise ValueError(f"the layers' pushes have different row counts {sorted(rows)}.")
        self.positions = positions
        self.point = point
        self._cache: dict = {}

    @property
    def layers(self) -> list[int]:
        return sorted(self.pushes)

    @property
    def n_rows(self) -> int:
        return next(iter(self.pushes.values())).shape[0]

    @classmethod
    def constant(
        cls, vector: SteeringVector, multiplier: float, *, positions: str = "all"
    ) -> RowSteering:
        """``multiplier * vector`` on every row."""
        pushes = {i: float(multiplier) * v[None] for i, v in vector.directions.items()}
        return cls(pushes, positions=positions, point=vector.point)

    @classmethod
    def rows(
        cls,
        vectors: Sequence[SteeringVector | None],
        multipliers: Sequence[float],
        *,
        positions: str = "all",
    ) -> RowSteering:
        """Row ``b`` gets ``multipliers[b] * vectors[b]`` (``None``: unsteered); all the
        vectors must share one hook point."""
        if len(vectors) != len(multipliers):
            raise ValueError(
                f"{len(vectors)} vectors but {len(multipliers)} multipliers: one of each per row."
            )
        used = [v for v in vectors if v is not None]
        if not used:
            raise ValueError("every row is unsteered: pass steering=None instead.")
        points = {v.point for v in used}
        if len(points) != 1:
            raise ValueError(f"the vectors use different hook points {sorted(points)}.")
        d = next(iter(used[0].directions.values())).shape[0]
        layers = sorted({i for v in used for i in v.directions})
        pushes = {i: np.zeros((len(vectors), d)) for i in layers}
        for b, (v, m) in enumerate(zip(vectors, multipliers, strict=True)):
            if v is None:
                continue
            for i, u in v.directions.items():
                pushes[i][b] = float(m) * u
        return cls(pushes, positions=positions, point=points.pop())

    def select(self, rows: slice) -> RowSteering:
        """The pushes of a slice of the rows (all of them when one row broadcasts)."""
        if self.n_rows == 1:
            return self
        pushes = {i: p[rows] for i, p in self.pushes.items()}
        return RowSteering(pushes, positions=self.positions, point=self.point)

    def __call__(self, layer: int, hidden):
        import torch

        key = (layer, hidden.device, hidden.dtype)
        if key not in self._cache:
            p = self.pushes[layer]
            if p.shape[1] != hidden.shape[-1]:
                raise ValueError(
                    f"layer {layer}: the push has {p.shape[1]} entries but the hidden state "
                    f"has d = {hidden.shape[-1]}."
                )
            self._cache[key] = torch.as_tensor(p, dtype=hidden.dtype, device=hidden.device)
        push = self._cache[key]
        if push.shape[0] not in (1, hidden.shape[0]):
            raise ValueError(
                f"layer {layer}: {push.shape[0]} rows of pushes for a batch of {hidden.shape[0]}."
            )
        if self.positions == "all":
            return hidden + push[:, None, :]
        new = hidden.clone()
        new[:, -1] = hidden[:, -1] + push
        return new

    @contextlib.contextmanager
    def attach(self, model) -> Iterator[RowSteering]:
        """Install the hooks for the body of a ``with`` (ahead of the blocks' own hooks);
        they come off on exit, also when the body raises."""
        from ._hooks import hooked

        if isinstance(model, tuple):
            model = model[0]
        elif not hasattr(model, "forward"):
            model = model.model
        with hooked(model, self.layers, self, self.point, prepend=True):
            yield self
