r"""The steering hook protocol: one base for every intervention, one position vocabulary.

An :class:`Intervention` edits the residual stream :math:`e_{\ell} \in
\mathbb{R}^{B\times T\times d}` (batch, positions, width) at a site of each block
:math:`\ell` in :attr:`~Intervention.layers` (``"block_output"`` or ``"block_input"``,
:mod:`probejax.llm._hooks`). A forward call through a block is one *step*: with a KV
cache the first call carries the whole prompt and every later call one generated token.
At each step the intervention sees the positions its :class:`Positions` names,

- :attr:`Positions.ALL`: every position of the call;
- :attr:`Positions.LAST`: the last position of the call; during cached generation the
  prompt's last token, then each generated token (the tokens whose outputs become the
  generated text: CAA's placement, and RAPTOR's),

and returns the edited state or ``None`` (unchanged). It logs a :class:`SteerRecord` per
batch row and step; :meth:`~Intervention.summary` condenses the log per layer.

``with intervention.attach(model):`` installs the hooks (ahead of the blocks' own, so
``output_hidden_states`` records the edited state) and removes them on exit, also when
the body raises.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from scipy.special import expit

from ._hooks import check_site, hooked, unpack_model


class Positions(enum.Enum):
    """Which positions of each forward call an intervention edits (module docstring).

    Build one from a name (a command-line flag, a config value) with
    :meth:`Positions.named`.
    """

    ALL = "all"
    LAST = "last"

    @classmethod
    def named(cls, name: str, what: str = "positions") -> Positions:
        """The member called `name` (``"all"`` or ``"last"``); `what` names the argument
        in the error."""
        for p in cls:
            if p.value == name:
                return p
        raise ValueError(f"{what}={name!r} is not one of {[p.value for p in cls]}.")

    def part(self, hidden: torch.Tensor) -> torch.Tensor:
        """The edited positions of ``hidden`` (batch, seq, d): all, or the last one
        (shape (batch, 1, d))."""
        return hidden if self is Positions.ALL else hidden[:, -1:]

    def merge(self, hidden: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        """``hidden`` with its :meth:`part` replaced by `part` (a new tensor)."""
        if self is Positions.ALL:
            return part
        new = hidden.clone()
        new[:, -1:] = part
        return new


class SteerRecord(NamedTuple):
    """What one intervention did to one batch row at one forward step.

    ``step`` counts the forward calls through ``layer`` since the hooks were attached (0
    is the prompt, then one per generated token); ``eps`` is the length of the edit at
    the last position (along the unit direction for probe edits and fixed pushes, the
    push's norm for per-row pushes; 0 when skipped); ``logit_before``/``logit_after``
    are the probe logit :math:`w^\\top e + b` at the last position before and after the
    edit (``nan`` without a probe); ``n_edited`` counts the edited positions.
    """

    step: int
    layer: int
    row: int
    applied: bool
    eps: float
    logit_before: float
    logit_after: float
    n_edited: int

    @property
    def p_before(self) -> float:
        return float(expit(self.logit_before))

    @property
    def p_after(self) -> float:
        return float(expit(self.logit_after))


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x


def check_positions(positions) -> Positions:
    if not isinstance(positions, Positions):
        raise ValueError(
            f"positions={positions!r} is not a Positions: use Positions.ALL or "
            "Positions.LAST (Positions.named('all' | 'last') from a name)."
        )
    return positions


class Intervention(abc.ABC):
    """The base of every steering hook (module docstring).

    A subclass gives :attr:`layers` and :meth:`edit`; the base counts the steps, caches
    the per-device tensors, keeps the log and attaches the hooks.

    **Arguments:**

    - `positions`: a :class:`Positions`.
    - `site`: where each block is edited: ``"block_output"`` (the residual stream
      leaving the block), ``"block_input"``, or any other site of
      :func:`probejax.llm.hooked` (``"attn_output"``, ``"mlp_output"``, a submodule).
    """

    def __init__(self, *, positions: Positions, site: str = "block_output"):
        self.positions = check_positions(positions)
        check_site(site)
        self.site = site
        self.log: list[SteerRecord] = []
        self._calls: dict[int, int] = {}
        self._cache: dict[tuple, tuple[torch.Tensor, ...]] = {}

    @property
    @abc.abstractmethod
    def layers(self) -> list[int]:
        """The steered blocks, sorted."""

    @abc.abstractmethod
    def edit(self, layer: int, step: int, hidden: torch.Tensor) -> torch.Tensor | None:
        """The edited ``hidden`` (batch, seq, d) at `layer` and forward `step`, or
        ``None`` to leave it; appends its :class:`SteerRecord` rows to :attr:`log`."""

    @property
    def n_rows(self) -> int:
        """Rows of per-row settings; 1: the same edit for every batch row."""
        return 1

    def select(self, rows: slice) -> Intervention:
        """The intervention for a slice of the batch rows (itself unless per-row)."""
        return self

    def __call__(self, layer: int, hidden: torch.Tensor) -> torch.Tensor | None:
        step = self._calls.get(layer, 0)
        self._calls[layer] = step + 1
        return self.edit(layer, step, hidden)

    def _tensors(self, layer: int, hidden: torch.Tensor, arrays, dtype) -> tuple:
        """``arrays`` (numpy, last axis d) as tensors on the hidden state's device."""
        key = (layer, hidden.device, dtype)
        if key not in self._cache:
            d = hidden.shape[-1]
            if arrays[0].shape[-1] != d:
                raise ValueError(
                    f"layer {layer}: the steering vector has {arrays[0].shape[-1]} entries but "
                    f"the hidden state has d = {d}."
                )
            self._cache[key] = tuple(
                torch.as_tensor(a, dtype=dtype, device=hidden.device) for a in arrays
            )
        return self._cache[key]

    def reset(self) -> None:
        """Clear the log and the step counters."""
        self.log.clear()
        self._calls.clear()

    @contextlib.contextmanager
    def attach(self, model) -> Iterator[Intervention]:
        """Install the hooks on :attr:`layers` at :attr:`site` for the body of a
        ``with`` (ahead of the blocks' own hooks) after a :meth:`reset`; they come off
        on exit, also when the body raises.

        **Arguments:** `model`: a transformers causal LM, a loaded model (``.model``) or
        a ``(model, tokenizer)`` pair.

        **Returns:** a context manager yielding the intervention, whose :attr:`log`
        fills as the model runs.
        """
        module, _ = unpack_model(model, need_tokenizer=False)
        self.reset()
        with hooked(module, self.layers, self, self.site, prepend=True):
            yield self

    def summary(self) -> list[dict]:
        """Per steered layer: steps seen, edits applied and skipped, mean and max
        :math:`|\\epsilon|` of the applied edits, probe probability before and after the
        edit at the first and the last step (``None`` without a probe or a step)."""
        out = []
        for layer in self.layers:
            recs = [r for r in self.log if r.layer == layer]
            done = [r for r in recs if r.applied]
            eps = np.abs([r.eps for r in done]) if done else np.zeros(0)
            out.append(
                {
                    "layer": layer,
                    "n_steps": len(recs),
                    "n_applied": len(done),
                    "n_skipped": len(recs) - len(done),
                    "mean_abs_eps": float(eps.mean()) if done else 0.0,
                    "max_abs_eps": float(eps.max()) if done else 0.0,
                    "p_before_first": _finite(recs[0].p_before) if recs else None,
                    "p_after_first": _finite(recs[0].p_after) if recs else None,
                    "p_before_last": _finite(recs[-1].p_before) if recs else None,
                    "p_after_last": _finite(recs[-1].p_after) if recs else None,
                }
            )
        return out
