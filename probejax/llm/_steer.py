r"""Steering a causal LM along a probe's concept direction, and measuring the result.

A linear probe at layer :math:`\ell` reads the residual stream :math:`e \in \mathbb{R}^d`
leaving block :math:`\ell` (hook point ``"block_output"``) in raw activation
coordinates, as ``fit_raptor(...).probe`` returns it:

.. math::  s(e) = w^\top e + b, \qquad p(e) = \sigma(s(e)), \qquad v = w / \lVert w \rVert ,

:math:`v` being the concept vector (``res.concept_vector()``).

- **Fixed steering** adds a constant push, :math:`e \leftarrow e + \alpha v`, at every
  position or only at the last one.
- **Target steering** (RAPTOR, arXiv 2602.00158) applies the smallest L2 edit that puts
  the probe at a target probability :math:`p^*`. Along :math:`v`,
  :math:`s(e + \epsilon v) = s(e) + \epsilon \lVert w \rVert`, so

  .. math::  \epsilon = \frac{\operatorname{logit}(p^*) - b - w^\top e}{\lVert w \rVert},
             \qquad e \leftarrow e + \epsilon v ,

  and no other edit of smaller norm reaches :math:`s = \operatorname{logit}(p^*)`. It is
  applied at the last position of every forward step (the prompt's last token, then
  each generated token), and only while the probe has not reached the target:
  towards (:math:`p^* \ge 1/2`) when :math:`s(e) < \operatorname{logit}(p^*)`, away
  (:math:`p^* < 1/2`) when :math:`s(e) > \operatorname{logit}(p^*)`.

  RAPTOR's code writes :math:`\epsilon = \operatorname{logit}(p^*) - b - v^\top e` with
  the unit :math:`v` (and :math:`b = 0`): it treats :math:`v` itself as the probe, so the
  real probe lands at :math:`s = \lVert w\rVert(\operatorname{logit}(p^*) - b) + b`, not
  at the target, unless :math:`\lVert w \rVert = 1`. ``rule="raptor"`` reproduces that
  edit; ``rule="exact"`` (default) is the one above.

Success in the edited coordinate is true by construction. :func:`probe_probability`
measures instead: it re-encodes the generated text without steering and reads the probe
there.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from ._extract import extract
from ._hooks import hooked

POSITIONS = ("all", "last")
RULES = ("exact", "raptor")


class SteerRecord(NamedTuple):
    """What one steering hook did to one batch row at one forward step.

    ``step`` counts the forward passes through ``layer`` (0 is the prompt, then one per
    generated token); ``eps`` is the step length along the unit direction at the last
    position (0 when skipped); ``logit_before``/``logit_after`` are the probe logit
    :math:`w^\\top e + b` at the last position before and after the edit (``nan`` for
    fixed steering, which has no probe); ``n_edited`` counts the edited positions.
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
        return _sigmoid(self.logit_before)

    @property
    def p_after(self) -> float:
        return _sigmoid(self.logit_after)


def _sigmoid(s: float) -> float:
    return math.nan if math.isnan(s) else float(np.exp(-np.logaddexp(0.0, -s)))


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x


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


def _check_positions(positions: str) -> None:
    if positions not in POSITIONS:
        raise ValueError(f"positions={positions!r} is not one of {POSITIONS}.")


class _Steering:
    """Shared bookkeeping: per-layer step counters, device/dtype caches and the log."""

    def __init__(self) -> None:
        self.log: list[SteerRecord] = []
        self._calls: dict[int, int] = {}
        self._cache: dict[tuple, tuple[torch.Tensor, ...]] = {}

    @property
    def layers(self) -> list[int]:
        raise NotImplementedError

    def _step(self, layer: int) -> int:
        step = self._calls.get(layer, 0)
        self._calls[layer] = step + 1
        return step

    def _tensors(self, layer: int, hidden: torch.Tensor, arrays, dtype) -> tuple:
        key = (layer, hidden.device, dtype)
        if key not in self._cache:
            d = hidden.shape[-1]
            if arrays[0].shape[0] != d:
                raise ValueError(
                    f"layer {layer}: the steering vector has {arrays[0].shape[0]} entries but "
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


class FixedSteering(_Steering):
    r"""A constant push :math:`e \leftarrow e + \alpha v` with unit :math:`v = u/\lVert u\rVert`.

    A hook function for :func:`steer` (``fn(layer, hidden) -> hidden``).

    **Arguments:**

    - `layers`: ``{layer: u}``, a direction per block (any scale; it is normalised).
    - `strength`: :math:`\alpha`, in units of the residual stream (negative pushes away).
    - `positions`: ``"all"`` edits every position (with a KV cache: the prompt, then each
      new token), ``"last"`` only the last one of each forward step.
    """

    def __init__(self, layers: Mapping[int, Any], strength: float, *, positions: str = "all"):
        super().__init__()
        _check_positions(positions)
        if not layers:
            raise ValueError("layers is empty: give at least one {layer: direction}.")
        self.directions = {
            int(i): (u := _vector(v, f"layers[{i}]")) / np.linalg.norm(u) for i, v in layers.items()
        }
        self.strength = float(strength)
        self.positions = positions

    @property
    def layers(self) -> list[int]:
        return sorted(self.directions)

    def __call__(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        (v,) = self._tensors(layer, hidden, (self.directions[layer],), hidden.dtype)
        step = self._step(layer)
        push = self.strength * v
        if self.positions == "all":
            new = hidden + push
        else:
            new = hidden.clone()
            new[:, -1] = hidden[:, -1] + push
        n = hidden.shape[1] if self.positions == "all" else 1
        for row in range(hidden.shape[0]):
            self.log.append(
                SteerRecord(step, layer, row, True, self.strength, math.nan, math.nan, n)
            )
        return new


class TargetSteering(_Steering):
    r"""RAPTOR's minimal edit to a target probe probability, applied until reached.

    At each forward step and steered layer, with :math:`s = w^\top e + b` at the last
    position: if the probe has not reached :math:`p^*` (towards: :math:`s <
    \operatorname{logit}(p^*)` for :math:`p^* \ge 1/2`; away: :math:`s >
    \operatorname{logit}(p^*)`), :math:`e \leftarrow e + \epsilon v` with
    :math:`\epsilon = (\operatorname{logit}(p^*) - s)/\lVert w \rVert` (``rule="exact"``,
    after which :math:`s = \operatorname{logit}(p^*)`) or :math:`\epsilon =
    \operatorname{logit}(p^*) - b - v^\top e` (``rule="raptor"``, RAPTOR's code, whose
    reached-test also uses :math:`v^\top e + b`). Otherwise nothing is changed and the log
    says skipped. The logit arithmetic is done in float32 (or float64 for float64
    models) and the edited state is cast back to the model's dtype.

    **Arguments:**

    - `layers`: ``{layer: (w, b)}`` or ``{layer: LinearProbe}``, raw-coordinate probes.
    - `target_p`: :math:`p^*` in (0, 1); RAPTOR uses 0.9999 (towards) and 0.0001 (away).
    - `positions`: ``"last"`` (RAPTOR) or ``"all"`` (each position edited independently).
    - `rule`: ``"exact"`` or ``"raptor"``.
    """

    def __init__(
        self,
        layers: Mapping[int, Any],
        target_p: float,
        *,
        positions: str = "last",
        rule: str = "exact",
    ):
        super().__init__()
        _check_positions(positions)
        if rule not in RULES:
            raise ValueError(f"rule={rule!r} is not one of {RULES}.")
        if not layers:
            raise ValueError("layers is empty: give at least one {layer: (w, b)}.")
        self.probes = {int(i): _probe(p, f"layers[{i}]") for i, p in layers.items()}
        self.target_p = float(target_p)
        self.target_logit = _logit(target_p, "target_p")
        self.towards = self.target_p >= 0.5
        self.positions = positions
        self.rule = rule

    @property
    def layers(self) -> list[int]:
        return sorted(self.probes)

    def __call__(self, layer: int, hidden: torch.Tensor) -> torch.Tensor | None:
        w_np, b = self.probes[layer]
        dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        w, v = self._tensors(layer, hidden, (w_np, w_np / np.linalg.norm(w_np)), dtype)
        step = self._step(layer)
        norm_w = float(np.linalg.norm(w_np))
        t = self.target_logit
        part = hidden if self.positions == "all" else hidden[:, -1:]
        e = part.to(dtype)
        s = e @ w + b
        s_rule = s if self.rule == "exact" else e @ v + b
        todo = s_rule < t if self.towards else s_rule > t
        eps = (t - s_rule) / (norm_w if self.rule == "exact" else 1.0)
        eps = torch.where(todo, eps, torch.zeros_like(eps))
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
        if self.positions == "all":
            return torch.where(todo[..., None], edited, hidden)
        new = hidden.clone()
        new[:, -1:] = torch.where(todo[..., None], edited, part)
        return new


@contextlib.contextmanager
def steer(model, spec: _Steering | None, point: str = "block_output") -> Iterator[_Steering | None]:
    """Install a steering object's hooks on its layers for the body of a ``with``.

    The hooks run ahead of any hooks the blocks already carry (so ``output_hidden_states``
    records the steered state) and come off on exit, also when the body raises: outside
    the ``with`` the model computes exactly what it computed before.

    **Arguments:**

    - `model`: a transformers causal LM, or a loaded model with a ``.model``.
    - `spec`: a :class:`FixedSteering` or :class:`TargetSteering`; ``None`` steers nothing.
    - `point`: ``"block_output"`` (RAPTOR) or ``"block_input"``.

    **Returns:**

    A context manager yielding `spec`, whose ``log`` fills as the model runs.
    """
    if spec is None:
        yield None
        return
    model, _ = _unpack(model, need_tokenizer=False)
    with hooked(model, spec.layers, spec, point, prepend=True):
        yield spec


def _unpack(lm, need_tokenizer: bool = True):
    if isinstance(lm, tuple):
        model, tokenizer = lm
    elif isinstance(lm, torch.nn.Module):
        model, tokenizer = lm, None
    elif hasattr(lm, "model"):
        model, tokenizer = lm.model, getattr(lm, "tokenizer", None)
    else:
        raise TypeError(
            f"expected a loaded model (with .model and .tokenizer) or a (model, tokenizer) "
            f"pair, got {type(lm).__name__}."
        )
    if need_tokenizer and tokenizer is None:
        raise TypeError("a tokenizer is needed: pass a loaded model or a (model, tokenizer) pair.")
    return model, tokenizer


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
    steering: _Steering | None = None,
    point: str = "block_output",
    chat: bool = False,
) -> str:
    """The continuation of `prompt`, optionally under steering.

    Greedy by default (reproducible); with ``do_sample=True`` it samples at `temperature`
    with nucleus `top_p` (RAPTOR's settings) after ``torch.manual_seed(seed)``; the global
    RNG state is restored afterwards.

    **Arguments:**

    - `lm`: a loaded model (``.model``, ``.tokenizer``) or a ``(model, tokenizer)`` pair.
    - `prompt`: raw text, or the user turn of a chat template when ``chat=True``.
    - `steering`: a :class:`FixedSteering` / :class:`TargetSteering`, or ``None``.
    - `point`: the hook point steering edits.

    **Returns:**

    The decoded new tokens (special tokens removed), without the prompt.
    """
    model, tokenizer = _unpack(lm)
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
    with torch.random.fork_rng(devices=cuda), torch.no_grad(), steer(model, steering, point):
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
    point: str = "block_output",
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
    - `pooling`, `point`, `batch_size`: passed to :func:`extract`.

    **Returns:**

    Probabilities, shape ``(n,)``, float64.
    """
    w = _vector(w, "w")
    X = extract(
        loaded, list(texts), layers=[layer], pooling=pooling, point=point, batch_size=batch_size
    )[0]
    s = np.asarray(X, dtype=np.float64) @ w + float(b)
    return np.exp(-np.logaddexp(0.0, -s))


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
    rule: str = "exact",
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
    - `rule`: for target steering, ``"exact"`` or ``"raptor"``.
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
    p = np.exp(-np.logaddexp(0.0, -s))
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
