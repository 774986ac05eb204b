r"""Steering a causal LM along a probe's concept direction, and measuring the result.

A linear probe at layer :math:`\ell` reads the residual stream :math:`e \in \mathbb{R}^d`
leaving block :math:`\ell` (site ``"block_output"``) in raw activation
coordinates, as ``pj.evaluate(...).probe`` returns it:

.. math::  s(e) = w^\top e + b, \qquad p(e) = \sigma(s(e)), \qquad v = w / \lVert w \rVert ,

:math:`v` being the concept vector (``probe.concept_vector()``). Both interventions here
are :class:`~probejax.llm.Intervention` hooks (``with spec.attach(model):``) and take a
:class:`~probejax.llm.Positions`.

- **Fixed steering** (:class:`FixedSteering`) adds a constant push,
  :math:`e \leftarrow e + \alpha v`, at every position or only at the last one.
- **Target steering** (:class:`TargetSteering`; RAPTOR, arXiv 2602.00158) applies an
  edit along :math:`v` that moves the probe to a target probability :math:`p^*`,
  :math:`e \leftarrow e + \epsilon v`, by default at the last position of every forward
  step (the prompt's last token, then each generated token), and only while the probe
  has not reached the target: towards (:math:`p^* \ge 1/2`) when the score is below
  :math:`\operatorname{logit}(p^*)`, away (:math:`p^* < 1/2`) when above. An
  :class:`EditRule` says which score and which :math:`\epsilon`: :class:`ExactEdit`
  (default) is the smallest L2 edit that puts the probe at the target;
  :class:`UnitVectorEdit` reproduces the edit of RAPTOR's code.

Success in the edited coordinate is true by construction. :func:`probe_probability`
measures instead: it re-encodes the generated text without steering and reads the probe
there.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy.special import expit

from ._extract import extract
from ._hooks import unpack_model
from ._intervention import Intervention, Positions, SteerRecord
from ._rowsteer import RowSteering


def _logit(p: float, name: str) -> float:
    p = float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"{name} = {p} is not a probability strictly between 0 and 1.")
    return math.log(p) - math.log1p(-p)


def _vector(v: Any, name: str) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().to("cpu", torch.float64).numpy()
    a = np.array(v, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a vector of shape (d,), got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries.")
    if not np.any(a):
        raise ValueError(f"{name} is the zero vector: it has no direction.")
    return a


def _probe(value: Any, name: str) -> tuple[np.ndarray, float]:
    """``(w, b)`` from a pair or from an object with ``.w`` and ``.b`` (a ``LinearProbe``)."""
    if hasattr(value, "w") and hasattr(value, "b"):
        w, b = value.w, value.b
    else:
        try:
            w, b = value
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a pair (w, b) or a LinearProbe.") from None
    return _vector(w, f"{name} weights"), float(np.asarray(b))


class FixedSteering(RowSteering):
    r"""A constant push :math:`e \leftarrow e + \alpha v` with unit :math:`v = u/\lVert u\rVert`.

    A :class:`RowSteering` with the same push on every row; its log records the signed
    :math:`\alpha` as ``eps``.

    **Arguments:**

    - `layers`: ``{layer: u}``, a direction per block (any scale; it is normalised).
    - `strength`: :math:`\alpha`, in units of the residual stream (negative pushes away).
    - `positions`: :attr:`Positions.ALL` (with a KV cache: the prompt, then each new
      token) or :attr:`Positions.LAST` (the last position of each forward step).
    - `site`: where each block is edited (:func:`probejax.llm.hooked`).
    """

    def __init__(
        self,
        layers: Mapping[int, Any],
        strength: float,
        *,
        positions: Positions = Positions.ALL,
        site: str = "block_output",
    ):
        if not layers:
            raise ValueError("layers is empty: give at least one {layer: direction}.")
        self.directions = {
            int(i): (u := _vector(v, f"layers[{i}]")) / np.linalg.norm(u) for i, v in layers.items()
        }
        self.strength = float(strength)
        pushes = {i: self.strength * v[None] for i, v in self.directions.items()}
        super().__init__(pushes, positions=positions, site=site)
        self.lengths = {i: np.array([self.strength]) for i in self.directions}


class EditRule(abc.ABC):
    r"""How :class:`TargetSteering` scores a state and how far it steps along :math:`v`.

    The edit is :math:`e \leftarrow e + \epsilon v` with :math:`\epsilon =`
    :meth:`step` of the gap :math:`\operatorname{logit}(p^*) - ` :meth:`score`, made
    while the score has not reached :math:`\operatorname{logit}(p^*)`.
    """

    @abc.abstractmethod
    def score(self, e: torch.Tensor, w: torch.Tensor, v: torch.Tensor, b: float) -> torch.Tensor:
        """The score of states ``e`` (..., d) that is compared with the target logit."""

    @abc.abstractmethod
    def step(self, gap: torch.Tensor, norm_w: float) -> torch.Tensor:
        """:math:`\\epsilon` for a gap :math:`\\operatorname{logit}(p^*) -` score."""


@dataclasses.dataclass(frozen=True)
class ExactEdit(EditRule):
    r"""The smallest L2 edit that puts the probe at the target.

    Along :math:`v`, :math:`s(e + \epsilon v) = s(e) + \epsilon \lVert w \rVert`, so

    .. math::  \epsilon = \frac{\operatorname{logit}(p^*) - b - w^\top e}{\lVert w \rVert}

    gives :math:`s = \operatorname{logit}(p^*)` after the edit, and no edit of smaller
    norm does. The score is the probe's, :math:`s(e) = w^\top e + b`.
    """

    def score(self, e, w, v, b):
        return e @ w + b

    def step(self, gap, norm_w):
        return gap / norm_w


@dataclasses.dataclass(frozen=True)
class UnitVectorEdit(EditRule):
    r"""The edit of RAPTOR's code, which treats the unit vector :math:`v` as the probe.

    Score :math:`v^\top e + b` and

    .. math::  \epsilon = \operatorname{logit}(p^*) - b - v^\top e ,

    so after the edit :math:`v^\top e + b = \operatorname{logit}(p^*)`, and the real
    probe lands at :math:`s = \lVert w\rVert(\operatorname{logit}(p^*) - b) + b`, not at
    the target, unless :math:`\lVert w \rVert = 1` (RAPTOR's code has :math:`b = 0`).
    """

    def score(self, e, w, v, b):
        return e @ v + b

    def step(self, gap, norm_w):
        return gap


class TargetSteering(Intervention):
    r"""RAPTOR's minimal edit to a target probe probability, applied until reached.

    At each forward step and steered layer, at each edited position: if the rule's
    score (:meth:`EditRule.score`) has not reached :math:`\operatorname{logit}(p^*)`
    (towards: below it for :math:`p^* \ge 1/2`; away: above it), :math:`e \leftarrow e +
    \epsilon v` with the rule's :math:`\epsilon`; with :class:`ExactEdit` the probe
    then reads :math:`s = w^\top e + b = \operatorname{logit}(p^*)`. Otherwise nothing
    is changed and the log says skipped. The logit arithmetic is done in float32 (or
    float64 for float64 models) and the edited state is cast back to the model's dtype.

    **Arguments:**

    - `layers`: ``{layer: (w, b)}`` or ``{layer: LinearProbe}``, raw-coordinate probes.
    - `target_p`: :math:`p^*` in (0, 1); RAPTOR uses 0.9999 (towards) and 0.0001 (away).
    - `positions`: :attr:`Positions.LAST` (RAPTOR) or :attr:`Positions.ALL` (each
      position edited independently).
    - `rule`: an :class:`EditRule`, :class:`ExactEdit` or :class:`UnitVectorEdit`.
    - `site`: where each block is edited (:func:`probejax.llm.hooked`).
    """

    def __init__(
        self,
        layers: Mapping[int, Any],
        target_p: float,
        *,
        positions: Positions = Positions.LAST,
        rule: EditRule = ExactEdit(),
        site: str = "block_output",
    ):
        super().__init__(positions=positions, site=site)
        if not isinstance(rule, EditRule):
            raise ValueError(
                f"rule={rule!r} is not an EditRule: use ExactEdit() or UnitVectorEdit()."
            )
        if not layers:
            raise ValueError("layers is empty: give at least one {layer: (w, b)}.")
        self.probes = {int(i): _probe(p, f"layers[{i}]") for i, p in layers.items()}
        self.target_p = float(target_p)
        self.target_logit = _logit(target_p, "target_p")
        self.towards = self.target_p >= 0.5
        self.rule = rule

    @property
    def layers(self) -> list[int]:
        return sorted(self.probes)

    def edit(self, layer: int, step: int, hidden: torch.Tensor) -> torch.Tensor | None:
        w_np, b = self.probes[layer]
        dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        w, v = self._tensors(layer, hidden, (w_np, w_np / np.linalg.norm(w_np)), dtype)
        norm_w = float(np.linalg.norm(w_np))
        t = self.target_logit
        part = self.positions.part(hidden)
        e = part.to(dtype)
        s = e @ w + b
        score = self.rule.score(e, w, v, b)
        todo = score < t if self.towards else score > t
        eps = torch.where(todo, self.rule.step(t - score, norm_w), torch.zeros_like(score))
        edited = (e + eps[..., None] * v).to(hidden.dtype)
        s_after = edited.to(dtype) @ w + b
        for row in range(hidden.shape[0]):
            self.log.append(
                SteerRecord(
                    step,
                    layer,
                    row,
                    bool(todo[row, -1]),
                    float(eps[row, -1]),
                    float(s[row, -1]),
                    float(s_after[row, -1]) if todo[row, -1] else float(s[row, -1]),
                    int(todo[row].sum()),
                )
            )
        if not bool(todo.any()):
            return None
        return self.positions.merge(hidden, torch.where(todo[..., None], edited, part))


def _encode(tokenizer, prompt: str, chat: bool):
    if not chat:
        return tokenizer(prompt, return_tensors="pt")
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat=True but the tokenizer has no chat template; use chat=False.")
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer(text, return_tensors="pt", add_special_tokens=False)


def generate(
    lm,
    prompt: str,
    *,
    max_new_tokens: int = 40,
    do_sample: bool = False,
    temperature: float = 0.75,
    top_p: float = 0.95,
    repetition_penalty: float = 1.1,
    seed: int = 0,
    steering: Intervention | None = None,
    chat: bool = False,
) -> str:
    """The continuation of `prompt`, optionally under steering.

    Greedy by default (reproducible); with ``do_sample=True`` it samples at `temperature`
    with nucleus `top_p` (RAPTOR's settings) after ``torch.manual_seed(seed)``; the global
    RNG state is restored afterwards.

    **Arguments:**

    - `lm`: a loaded model (``.model``, ``.tokenizer``) or a ``(model, tokenizer)`` pair.
    - `prompt`: raw text, or the user turn of a chat template when ``chat=True``.
    - `steering`: an :class:`~probejax.llm.Intervention` (e.g. :class:`FixedSteering`,
      :class:`TargetSteering`), attached for the call, or ``None``.

    **Returns:**

    The decoded new tokens (special tokens removed), without the prompt.
    """
    model, tokenizer = unpack_model(lm)
    enc = _encode(tokenizer, prompt, chat).to(model.device)
    config = copy.deepcopy(model.generation_config)
    config.max_new_tokens = max_new_tokens
    config.do_sample = do_sample
    config.repetition_penalty = repetition_penalty
    config.temperature = temperature if do_sample else None
    config.top_p = top_p if do_sample else None
    if config.pad_token_id is None:
        config.pad_token_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
    cuda = [model.device.index or 0] if model.device.type == "cuda" else []
    hooks = contextlib.nullcontext() if steering is None else steering.attach(model)
    with torch.random.fork_rng(devices=cuda), torch.no_grad(), hooks:
        torch.manual_seed(seed)
        out = model.generate(**enc, generation_config=config)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def probe_probability(
    loaded,
    texts: Sequence[str],
    w,
    b: float,
    layer: int,
    *,
    pooling: str = "last",
    site: str = "block_output",
    batch_size: int = 16,
) -> np.ndarray:
    r"""The probe's probability on re-encoded texts, :math:`\sigma(w^\top e_\ell(x) + b)`.

    The texts are run through the unsteered model (:func:`extract`) and the probe is read
    at `layer`: the measurement of what steering did to the generated text, rather than
    of the coordinate it edited.

    **Arguments:**

    - `loaded`: what :func:`extract` accepts (a loaded model).
    - `texts`: the texts, e.g. prompt + continuation.
    - `w`, `b`: the probe at `layer`, raw activation coordinates.
    - `pooling`, `site`, `batch_size`: passed to :func:`extract`.

    **Returns:**

    Probabilities, shape ``(n,)``, float64.
    """
    w = _vector(w, "w")
    X = extract(
        loaded, list(texts), layers=[layer], pooling=pooling, site=site, batch_size=batch_size
    )[0]
    return expit(np.asarray(X, dtype=np.float64) @ w + float(b))


def steering_demo(
    loaded,
    prompt: str,
    w,
    b,
    layers: Sequence[int],
    *,
    direction: str = "towards",
    target_p: float | None = None,
    strength: float | None = None,
    rule: EditRule = ExactEdit(),
    max_new_tokens: int = 40,
    **generate_kwargs,
) -> dict:
    r"""Generate with and without steering and measure both on re-encoded text.

    Target steering (default) to ``target_p`` (0.9999 towards, 0.0001 away), or, when
    `strength` is given, fixed steering :math:`e \leftarrow e \pm \alpha v` at every
    position (``+`` towards).

    **Arguments:**

    - `loaded`: a loaded model (``.model``, ``.tokenizer``; what :func:`extract` accepts).
    - `prompt`: the prompt (raw text unless ``chat=True`` is passed on).
    - `w`: the probe weights, shape ``(d,)`` (the same at every layer) or
      ``(len(layers), d)``; `b`: a float or shape ``(len(layers),)``.
    - `layers`: the blocks to steer (and to measure at).
    - `direction`: ``"towards"`` or ``"away"`` (the positive class of the probe).
    - `target_p`, `strength`: at most one; `strength` is :math:`\alpha \ge 0`.
    - `rule`: for target steering, an :class:`EditRule`.
    - `generate_kwargs`: passed to :func:`generate` (``do_sample``, ``seed``, ``chat``...).

    **Returns:**

    A dict: ``prompt``, ``direction``, ``method``, ``target_p``, ``strength``, ``layers``,
    ``unsteered``, ``steered`` (continuations), ``p_prompt``, ``p_unsteered``,
    ``p_steered`` (probe probability per layer, aligned with ``layers``, of the prompt
    and of prompt + continuation, re-encoded without steering) and ``log`` (the
    steering object's :meth:`summary`).
    """
    if direction not in ("towards", "away"):
        raise ValueError(f"direction={direction!r} is not 'towards' or 'away'.")
    layers = [int(i) for i in layers]
    if not layers:
        raise ValueError("layers is empty.")
    W = np.asarray(w.detach().cpu() if isinstance(w, torch.Tensor) else w, dtype=np.float64)
    if W.ndim == 1:
        W = np.broadcast_to(W, (len(layers), W.shape[0]))
    if W.shape[0] != len(layers) or W.ndim != 2:
        raise ValueError(f"w has shape {W.shape}; expected (d,) or ({len(layers)}, d).")
    B = np.broadcast_to(np.asarray(b, dtype=np.float64), (len(layers),))
    sign = 1.0 if direction == "towards" else -1.0
    if strength is not None:
        if target_p is not None:
            raise ValueError("give target_p or strength, not both.")
        if strength < 0:
            raise ValueError(f"strength = {strength} must be >= 0; direction gives the sign.")
        spec = FixedSteering(dict(zip(layers, W, strict=True)), sign * strength)
    else:
        if target_p is None:
            target_p = 0.9999 if direction == "towards" else 0.0001
        if (target_p >= 0.5) != (direction == "towards"):
            raise ValueError(f"target_p = {target_p} does not point {direction}.")
        pairs = {i: (W[k], B[k]) for k, i in enumerate(layers)}
        spec = TargetSteering(pairs, target_p, rule=rule)
    kwargs = dict(max_new_tokens=max_new_tokens, **generate_kwargs)
    unsteered = generate(loaded, prompt, **kwargs)
    steered = generate(loaded, prompt, steering=spec, **kwargs)
    texts = [prompt, prompt + unsteered, prompt + steered]
    X = extract(loaded, texts, layers=layers, pooling="last")
    s = np.einsum("lnd,ld->ln", np.asarray(X, dtype=np.float64), W) + B[:, None]
    p = expit(s)
    return {
        "prompt": prompt,
        "direction": direction,
        "method": "fixed" if strength is not None else "target",
        "target_p": None if target_p is None else float(target_p),
        "strength": None if strength is None else float(strength),
        "layers": layers,
        "unsteered": unsteered,
        "steered": steered,
        "p_prompt": p[:, 0].tolist(),
        "p_unsteered": p[:, 1].tolist(),
        "p_steered": p[:, 2].tolist(),
        "log": spec.summary(),
    }
