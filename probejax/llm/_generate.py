r"""Batched, seeded generation and forward-only scores, with any steering hook.

:func:`generate_batch` runs one cached decoding loop over many prompts at once. Prompts
are padded on the left (so every row's next token is at the last column) with an
attention mask, and position ids count each row's own tokens from 0, so a row sees what
it would see alone. Each row samples with its own ``torch.Generator`` seeded by its
seed (one uniform draw per step, inverse-CDF over the nucleus), so a row of a batch
equals the same prompt and seed generated alone (up to float rounding of differently
shaped matmuls) whatever else is in the batch. Sampling at temperature :math:`T` with
nucleus :math:`p`: :math:`\pi \propto \exp(z/T)`, sorted descending, keep the shortest
prefix whose mass reaches :math:`p`, renormalise. ``temperature=0`` is greedy.

Steering is any :class:`~probejax.llm.Intervention`: a
:class:`~probejax.llm.RowSteering` (a push per row) or a
:class:`~probejax.llm.TargetSteering` (RAPTOR's minimal edit, which edits each row).

:func:`continuation_nll` and :func:`ab_probabilities` are single forward passes.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from ._hooks import unpack_model
from ._intervention import Intervention, Positions
from ._rowsteer import RowSteering


class Generations(NamedTuple):
    """``texts``: decoded continuations; ``prompt_ids`` and ``token_ids``: each row's
    prompt tokens and continuation tokens (up to, not including, the end token)."""

    texts: list[str]
    prompt_ids: list[list[int]]
    token_ids: list[list[int]]


def _cache_kw(model) -> str:
    names = inspect.signature(model.forward).parameters
    return "cache" if "cache" in names else "past_key_values"


def _out_cache(out):
    return out["cache"] if "cache" in out else out["past_key_values"]


def _keep(model, n: int) -> dict:
    """``logits_to_keep=n`` where the model takes it (only the last n positions' logits)."""
    return (
        {"logits_to_keep": n}
        if "logits_to_keep" in inspect.signature(model.forward).parameters
        else {}
    )


def encode_prompts(tokenizer, prompts: Sequence[str], chat: bool = False) -> list[list[int]]:
    """Token ids of each prompt (the tokenizer's special tokens included); with
    ``chat=True`` the prompt is the user turn of the chat template."""
    out = []
    for p in prompts:
        if chat:
            if not getattr(tokenizer, "chat_template", None):
                raise ValueError("chat=True but the tokenizer has no chat template.")
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
            )
            ids = tokenizer(text, add_special_tokens=False).input_ids
        else:
            ids = tokenizer(p).input_ids
        if not ids:
            raise ValueError(f"prompt {p!r} has no tokens.")
        out.append(list(ids))
    return out


def _left_pad(rows: Sequence[Sequence[int]], pad: int):
    T = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (T - len(r)) + list(r) for r in rows])
    att = torch.tensor([[0] * (T - len(r)) + [1] * len(r) for r in rows])
    pos = (att.cumsum(-1) - 1).clamp(min=0)
    return ids, att, pos


def _hooks(model, steering: Intervention | None):
    return contextlib.nullcontext() if steering is None else steering.attach(model)


def _nucleus_draw(logp, idx, top_p: float, u):
    """Inverse-CDF draw from sorted log-probabilities ``logp`` (tokens ``idx``) cut to
    the nucleus of mass `top_p`."""
    p = logp.exp()
    p = p * ((p.cumsum(-1) - p) < top_p)
    c = p.cumsum(-1)
    j = torch.searchsorted(c, (u * c[-1]).reshape(1)).clamp(max=c.shape[-1] - 1)
    return idx[j[0]]


def _choose(logits, temperature: float, top_p: float, gens, top_k: int = 256):
    if temperature == 0:
        return logits.argmax(-1)
    z = logits.float() / temperature
    lse = torch.logsumexp(z.double(), dim=-1)
    u = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in gens])
    # the nucleus almost always lies in the top_k tokens: sort those only, and a row's
    # whole vocabulary when their mass falls short of top_p (the same draw, fewer sorts)
    vals, idx = z.topk(min(top_k, z.shape[-1]), dim=-1)
    logp = vals.double() - lse[:, None]
    out = torch.empty(z.shape[0], dtype=torch.long)
    for b in range(z.shape[0]):
        if float(logp[b].exp().sum()) >= top_p:
            out[b] = _nucleus_draw(logp[b], idx[b], top_p, u[b])
        else:
            v_all, i_all = z[b].sort(descending=True)
            out[b] = _nucleus_draw(v_all.double() - lse[b], i_all, top_p, u[b])
    return out


def generate_batch(
    lm,
    prompts: Sequence[str],
    *,
    seeds: Sequence[int] | int = 0,
    max_new_tokens: int = 40,
    temperature: float = 0.8,
    top_p: float = 0.95,
    steering: Intervention | None = None,
    chat: bool = False,
    batch_size: int | None = None,
) -> Generations:
    """Continuations of many prompts in one cached decoding loop (module docstring).

    **Arguments:**

    - `lm`: a loaded model (``.model``, ``.tokenizer``) or a ``(model, tokenizer)`` pair.
    - `prompts`: one per row (repeat a prompt for several strengths or seeds).
    - `seeds`: one per row, or one for all; row ``b`` samples from
      ``torch.Generator().manual_seed(seeds[b])``.
    - `max_new_tokens`, `temperature` (0: greedy), `top_p`.
    - `steering`: ``None`` or an :class:`~probejax.llm.Intervention`, e.g. a
      :class:`~probejax.llm.RowSteering` (its rows align with the prompts, or one row
      for all) or a :class:`~probejax.llm.TargetSteering`; its log is reset.
    - `chat`: wrap each prompt in the chat template as the user turn.
    - `batch_size`: rows per loop (default: all); a per-row steering is sliced to match.

    **Returns:** :class:`Generations`.
    """
    model, tok = unpack_model(lm)
    n = len(prompts)
    if n == 0:
        raise ValueError("prompts is empty.")
    seeds = [int(seeds)] * n if isinstance(seeds, int | np.integer) else [int(s) for s in seeds]
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for {n} prompts: give one per prompt or one int.")
    if not (temperature >= 0 and 0 < top_p <= 1):
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}.")
    rows_steered = 1 if steering is None else steering.n_rows
    if rows_steered not in (1, n):
        raise ValueError(f"the steering has {rows_steered} rows for {n} prompts.")
    step = batch_size or n
    if step < n:
        out = Generations([], [], [])
        for s in range(0, n, step):
            part = None if steering is None else steering.select(slice(s, s + step))
            g = generate_batch(
                lm,
                prompts[s : s + step],
                seeds=seeds[s : s + step],
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                steering=part,
                chat=chat,
            )
            for a, b in zip(out, g, strict=True):
                a.extend(b)
        return out

    rows = encode_prompts(tok, prompts, chat)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    eos = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
    ids, att, pos = _left_pad(rows, pad)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    ckw = _cache_kw(model)
    new = [[] for _ in range(n)]
    done = torch.zeros(n, dtype=torch.bool)
    with torch.no_grad(), _hooks(model, steering):
        out = model(
            input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True, **_keep(model, 1)
        )
        for step_i in range(max_new_tokens):
            nxt = _choose(out.logits[:, -1].float(), temperature, top_p, gens)
            for b in range(n):
                t = int(nxt[b])
                if not done[b]:
                    if t in eos:
                        done[b] = True
                    else:
                        new[b].append(t)
            if bool(done.all()) or step_i == max_new_tokens - 1:
                break
            att = torch.cat([att, torch.ones(n, 1, dtype=att.dtype)], dim=1)
            pos = pos[:, -1:] + 1
            out = model(
                input_ids=nxt[:, None],
                attention_mask=att,
                position_ids=pos,
                use_cache=True,
                **{ckw: _out_cache(out)},
            )
    texts = [tok.decode(r, skip_special_tokens=True) for r in new]
    return Generations(texts, rows, new)


def continuation_nll(
    lm, prompt_ids: Sequence[Sequence[int]], token_ids: Sequence[Sequence[int]], *, batch_size=32
) -> np.ndarray:
    r"""Mean negative log-likelihood of each continuation given its prompt, under the
    model as it is (no steering): :math:`\frac1m\sum_{j=1}^m -\log
    p(c_j \mid \text{prompt}, c_{<j})`. Its exponential is the continuation's perplexity.
    ``nan`` for an empty continuation.

    **Returns:** shape ``(n,)``, float64.
    """
    model, tok = unpack_model(lm)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out = np.full(len(prompt_ids), np.nan)
    for s in range(0, len(prompt_ids), batch_size):
        idx = [i for i in range(s, min(s + batch_size, len(prompt_ids))) if len(token_ids[i])]
        if not idx:
            continue
        rows = [list(prompt_ids[i]) + list(token_ids[i]) for i in idx]
        ids, att, pos = _left_pad(rows, pad)
        m_max = max(len(token_ids[i]) for i in idx)
        with torch.no_grad():
            z = model(
                input_ids=ids, attention_mask=att, position_ids=pos, **_keep(model, m_max + 1)
            ).logits.float()
        # z[:, j] predicts column T - m_max - 1 + j + 1
        logp = z - torch.logsumexp(z, dim=-1, keepdim=True)
        for r, i in enumerate(idx):
            m = len(token_ids[i])
            tgt = ids[r, ids.shape[1] - m :]
            lp = logp[r, m_max - m : m_max].gather(-1, tgt[:, None])[:, 0]
            out[i] = float(-lp.double().mean())
    return out


def letter_token(tokenizer, prompt: str, letter: str) -> int:
    """The id of the single token `letter` adds after `prompt` (checked: the prompt's
    tokens are a prefix of ``prompt + letter``'s, one token shorter)."""
    a = tokenizer(prompt).input_ids
    b = tokenizer(prompt + letter).input_ids
    if len(b) != len(a) + 1 or b[: len(a)] != a:
        raise ValueError(
            f"answer {letter!r} after prompt ending {prompt[-20:]!r} is not one extra token "
            f"({len(a)} -> {len(b)} tokens)."
        )
    return int(b[-1])


def ab_probabilities(
    lm,
    prompts: Sequence[str],
    match: Sequence[str],
    other: Sequence[str],
    *,
    steering: Intervention | None = None,
    batch_size: int = 16,
) -> np.ndarray:
    r"""CAA's A/B score: the probability of the behaviour-matching answer letter
    against the other one at the prompt's next token,

    .. math::  p = \frac{\exp z_{\text{match}}}{\exp z_{\text{match}} + \exp z_{\text{other}}},

    :math:`z` the next-token logits after the prompt (which ends where the letter goes,
    e.g. ``"Answer:\n ("``), one forward pass per row, under `steering` (an
    :class:`~probejax.llm.Intervention`, e.g. a :class:`~probejax.llm.RowSteering`
    with a row per prompt or one row for all, or ``None``).

    **Returns:** shape ``(n,)``, float64.
    """
    model, tok = unpack_model(lm)
    n = len(prompts)
    if not n == len(match) == len(other):
        raise ValueError(f"{n} prompts, {len(match)} match and {len(other)} other letters.")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out = np.empty(n)
    for s in range(0, n, batch_size):
        sl = slice(s, min(s + batch_size, n))
        rows = [tok(p).input_ids for p in prompts[sl]]
        a = [letter_token(tok, p, m) for p, m in zip(prompts[sl], match[sl], strict=True)]
        b = [letter_token(tok, p, o) for p, o in zip(prompts[sl], other[sl], strict=True)]
        spec = None if steering is None else steering.select(sl)
        ids, att, pos = _left_pad(rows, pad)
        with torch.no_grad(), _hooks(model, spec):
            z = model(input_ids=ids, attention_mask=att, position_ids=pos).logits[:, -1].double()
        r = torch.arange(len(rows))
        za, zb = z[r, torch.tensor(a)], z[r, torch.tensor(b)]
        out[sl] = torch.sigmoid(za - zb).numpy()
    return out


def ab_sweep(
    lm,
    prompts: Sequence[str],
    match: Sequence[str],
    other: Sequence[str],
    arms: Sequence[tuple],
    *,
    batch_size: int = 8,
) -> np.ndarray:
    r""":func:`ab_probabilities` for many steering arms at once, each applied after the
    prompt (CAA's placement: only the prompt's last token, where the answer letter is
    read). The unsteered prefix (every prompt token but the last) runs once per question
    and its KV cache is shared by all arms; each arm then costs one token per question.

    **Arguments:**

    - `prompts`, `match`, `other`: as for :func:`ab_probabilities`.
    - `arms`: ``(SteeringVector | None, multiplier)`` pairs (``None``: unsteered).
    - `batch_size`: questions per prefix pass (each expands to ``len(arms)`` rows).

    **Returns:** shape ``(len(arms), n)``, float64; equal (up to float rounding) to
    ``ab_probabilities`` with ``RowSteering.constant(v, m, positions=Positions.LAST)``.
    """
    model, tok = unpack_model(lm)
    n, R = len(prompts), len(arms)
    if not n == len(match) == len(other):
        raise ValueError(f"{n} prompts, {len(match)} match and {len(other)} other letters.")
    if R == 0:
        raise ValueError("arms is empty.")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    ckw = _cache_kw(model)
    out = np.empty((R, n))
    for s in range(0, n, batch_size):
        sl = list(range(s, min(s + batch_size, n)))
        rows = [tok(prompts[i]).input_ids for i in sl]
        if min(len(r) for r in rows) < 2:
            raise ValueError("every prompt needs at least two tokens (a prefix and a last one).")
        a = [letter_token(tok, prompts[i], match[i]) for i in sl]
        b = [letter_token(tok, prompts[i], other[i]) for i in sl]
        ids, att, pos = _left_pad([r[:-1] for r in rows], pad)
        B = len(sl)
        with torch.no_grad():
            cache = _out_cache(
                model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True)
            )
            cache.batch_repeat_interleave(R)
            last = torch.tensor([r[-1] for r in rows]).repeat_interleave(R)[:, None]
            att2 = torch.cat([att, torch.ones(B, 1, dtype=att.dtype)], 1).repeat_interleave(R, 0)
            pos2 = (pos[:, -1:] + 1).repeat_interleave(R, 0)
            vecs = [arms[r][0] for _ in sl for r in range(R)]
            mults = [arms[r][1] for _ in sl for r in range(R)]
            spec = (
                None
                if all(v is None for v in vecs)
                else RowSteering.rows(vecs, mults, positions=Positions.LAST)
            )
            with _hooks(model, spec):
                z = (
                    model(
                        input_ids=last,
                        attention_mask=att2,
                        position_ids=pos2,
                        use_cache=True,
                        **{ckw: cache},
                    )
                    .logits[:, -1]
                    .double()
                )
        z = z.reshape(B, R, -1)
        za = z[torch.arange(B), :, torch.tensor(a)]
        zb = z[torch.arange(B), :, torch.tensor(b)]
        out[:, sl] = torch.sigmoid(za - zb).numpy().T
    return out
