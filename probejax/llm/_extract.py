"""Activations of a frozen decoder model at one site, pooled over each text's tokens.

One forward pass per batch; forward hooks (:func:`probejax.llm.hooked`) read the tensor
at the site (:data:`probejax.llm.SITES` or a named submodule of each block) of every
requested block and pool it on the spot, so only ``(batch, width)`` per layer is kept,
and the pass stops at the last requested site: its hook raises a private exception that
ends the forward pass, so later submodules, later blocks, the final norm and the
unembedding never run.

Texts are padded on the right: the causal mask then keeps every real token from seeing
a pad and position ids stay ``0..len-1``, so a text's activations do not depend on what
else is in its batch (up to float rounding of differently shaped matmuls). That is what
lets batches be formed in order of token count (:func:`length_order`): texts of similar
length share a batch, so little compute goes to pads (``benchmarks/llm_extraction.py
--only-batching`` measures the padding and the time either way). Pooling over
the real tokens ``t = 0..len-1`` of a text, ``h_t`` the hidden state at one block:

- ``"last"``: ``h_{len-1}``, the last real token.
- ``"mean"``: ``mean_{t=1..len-1} h_t``. The first token is left out: it acts as an
  attention sink and its residual norm is orders of magnitude above the others. A
  one-token text falls back to ``h_0``.
- ``"max"``: the coordinate-wise max over ``t = 1..len-1`` (``h_0`` for one token).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ._hooks import check_site, hooked, site_path
from ._model import LoadedModel

POOLINGS = ("last", "mean", "max")


class _Stop(Exception):
    """Raised from the deepest hook to end the forward pass early."""


def resolve_layers(loaded: LoadedModel, layers: Sequence[int] | None) -> list[int]:
    """The requested block indices as a list (None: all blocks), checked.

    Negative indices count from the last block. Raises ``ValueError`` for an index out of
    range or a repeated block.
    """
    if layers is None:
        return list(range(loaded.n_layers))
    out = []
    for i in layers:
        j = int(i)
        if not -loaded.n_layers <= j < loaded.n_layers:
            raise ValueError(
                f"layer {i} is out of range: {loaded.model_id!r} has {loaded.n_layers} blocks "
                f"(valid: 0..{loaded.n_layers - 1} or negative from the end)."
            )
        out.append(j % loaded.n_layers)
    if len(set(out)) != len(out):
        raise ValueError(f"layers {list(layers)} name a block more than once.")
    if not out:
        raise ValueError("layers is empty: pass None for all blocks or a list of indices.")
    return out


def context_limit(loaded: LoadedModel, max_length: int | None) -> int:
    """The token limit per text: ``max_length``, at most the model's context."""
    if max_length is None:
        return loaded.max_length
    if not 1 <= max_length <= loaded.max_length:
        raise ValueError(
            f"max_length={max_length} must lie in 1..{loaded.max_length} (the context of "
            f"{loaded.model_id!r})."
        )
    return int(max_length)


def tokenize(
    loaded: LoadedModel,
    texts: Sequence[str],
    *,
    max_length: int | None = None,
    truncate: bool = False,
) -> list[list[int]]:
    """Token ids of each text (with the tokenizer's special tokens), length-checked.

    **Arguments:**

    - `loaded`: the model and tokenizer.
    - `texts`: a non-empty sequence of strings.
    - `max_length`: tokens allowed per text; None: the model's context.
    - `truncate`: keep the first ``max_length`` tokens of a longer text instead of raising.

    **Returns:** one list of ids per text.

    Raises ``ValueError`` for an empty sequence, a non-string, a text with no tokens, or
    (unless ``truncate``) the first text longer than the limit, naming its index, its
    token count and the limit.
    """
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of strings, not one string.")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: there is nothing to extract.")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}] is a {type(t).__name__}, not a str.")
    limit = context_limit(loaded, max_length)
    ids = loaded.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
    for i, row in enumerate(ids):
        if len(row) == 0:
            raise ValueError(f"texts[{i}] = {texts[i]!r} has no tokens.")
        if len(row) > limit and not truncate:
            raise ValueError(
                f"texts[{i}] has {len(row)} tokens, more than the limit of {limit} "
                f"({'max_length' if max_length is not None else 'the context of ' + repr(loaded.model_id)}); "
                f"shorten it, raise max_length, or pass truncate=True to keep the first {limit}."
            )
    return [list(row[:limit]) for row in ids]


def _pool(h, lengths, pooling: str):
    """Pool ``h`` ``(B, T, d)`` over each row's real tokens; float32 ``(B, d)``."""
    import torch

    h = h.float()
    B, T, _ = h.shape
    if pooling == "last":
        return h[torch.arange(B, device=h.device), lengths - 1]
    pos = torch.arange(T, device=h.device)[None, :]
    keep = (pos < lengths[:, None]) & (pos >= 1)
    keep = keep | ((lengths[:, None] == 1) & (pos == 0))
    if pooling == "mean":
        w = keep.to(h.dtype)[..., None]
        return (h * w).sum(1) / w.sum(1)
    return h.masked_fill(~keep[..., None], -torch.inf).amax(1)


def _batch_tensors(loaded: LoadedModel, rows: Sequence[Sequence[int]]):
    import torch

    device = loaded.model.get_input_embeddings().weight.device
    pad = loaded.tokenizer.pad_token_id
    pad = 0 if pad is None else int(pad)
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    T = int(lengths.max())
    input_ids = torch.full((len(rows), T), pad, dtype=torch.long)
    for b, r in enumerate(rows):
        input_ids[b, : len(r)] = torch.as_tensor(r, dtype=torch.long)
    attention_mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    return input_ids.to(device), attention_mask.to(device), lengths.to(device)


def _run(loaded: LoadedModel, rows, layers: list[int], site: str, reduce) -> dict:
    """One forward pass over ``rows``; ``reduce(h, lengths)`` at ``site`` of each
    requested block, the pass stopped once the last one is read."""
    import torch

    input_ids, attention_mask, lengths = _batch_tensors(loaded, rows)
    got: dict = {}

    def fn(i, h):
        if not (isinstance(h, torch.Tensor) and h.ndim == 3 and h.shape[:2] == input_ids.shape):
            shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise ValueError(
                f"site {site!r} of block {i} gives {shape}, not a (batch, tokens, width) "
                f"tensor for input {tuple(input_ids.shape)}: pick a module that sees every "
                f"token (e.g. one of 'block_output', 'attn_output', 'mlp_output')."
            )
        got[i] = reduce(h, lengths)
        if len(got) == len(layers):
            raise _Stop
        return None

    with torch.inference_mode(), hooked(loaded.model, layers, fn, site):
        try:
            loaded.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        except _Stop:
            pass
    missing = [i for i in layers if i not in got]
    if missing:
        raise RuntimeError(f"the forward pass never reached site {site!r} of blocks {missing}.")
    return got


def site_width(loaded: LoadedModel, site: str) -> int:
    """The width of the activations at ``site``, checked against the model before any
    text is extracted: ``d_model`` for the block sites, else read from one forward pass
    over a one-token input stopped at block 0's site.

    Raises ``ValueError`` naming the site, the model class and block 0's submodules when
    the model has no such site, or the site's shape when it is not ``(batch, tokens,
    width)``.
    """
    path = site_path(loaded.model, site)
    if path is None or site in ("attn_output", "mlp_output"):
        return int(loaded.d_model)
    tok = loaded.tokenizer
    token = next((t for t in (tok.bos_token_id, tok.eos_token_id) if t is not None), 0)
    got = _run(loaded, [[int(token)]], [0], site, lambda h, _: int(h.shape[-1]))
    return got[0]


def length_order(ids: Sequence[Sequence[int]]) -> np.ndarray:
    """The rows of ``ids`` by token count, shortest first (a stable sort: ties keep
    their input order), as int64 indices."""
    return np.argsort(np.array([len(r) for r in ids], np.int64), kind="stable")


def pooled_batches(
    loaded: LoadedModel,
    ids: Sequence[Sequence[int]],
    layers: list[int],
    *,
    pooling: str,
    site: str,
    batch_size: int,
    order: Sequence[int] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(rows, acts)`` for consecutive batches of ``order`` (default: length
    order of ``ids``): ``rows`` the int64 indices into ``ids`` of one batch, ``acts``
    float32 ``(L, len(rows), width)``, their pooled activations at ``site``."""
    check_options(pooling, site, batch_size)
    order = length_order(ids) if order is None else np.asarray(order, np.int64)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = [ids[i] for i in rows]
        got = _run(loaded, batch, layers, site, lambda h, n: _pool(h, n, pooling).cpu())
        yield rows, np.stack([got[i].numpy() for i in layers])


def check_options(pooling: str, site: str, batch_size: int) -> None:
    """Raise ``ValueError`` for an unknown pooling, a malformed site name
    (:func:`probejax.llm.check_site`; whether the model has it is checked once it is
    loaded) or a bad batch size."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}.")
    check_site(site)
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")


def extract(
    loaded: LoadedModel,
    texts: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    pooling: str = "last",
    site: str = "block_output",
    batch_size: int = 16,
    max_length: int | None = None,
    truncate: bool = False,
    per_token: bool = False,
):
    """Pooled activations of ``texts`` at ``site`` of the requested blocks.

    **Arguments:**

    - `loaded`: from :func:`probejax.llm.load_model`.
    - `texts`: a non-empty sequence of strings.
    - `layers`: block indices (negative from the end); None: every block.
    - `pooling`: ``"last"``, ``"mean"`` or ``"max"`` (see the module docstring).
    - `site`: ``"block_output"`` (``hidden_states[i + 1]``), ``"block_input"``
      (``hidden_states[i]``), ``"attn_output"``, ``"mlp_output"`` or the dotted path of
      a submodule of each block (``"post_attention_layernorm"``, ``"mlp.down_proj"``);
      checked against the model before any text is extracted.
    - `batch_size`: texts per forward pass; pooled batches are formed in order of token
      count, so similar lengths share a batch (the result is in the order of ``texts``).
    - `max_length`: tokens allowed per text (None: the model's context).
    - `truncate`: keep the first ``max_length`` tokens of longer texts instead of raising.
    - `per_token`: return every token's hidden state instead of a pooled one.

    **Returns:** float32 ``(L, n, width)`` with ``L = len(layers)`` in the order given
    (``width`` is ``d_model`` but for submodules of another width, e.g. ``mlp.up_proj``);
    with ``per_token=True`` a pair ``(acts, mask)``: ``acts`` float32 ``(L, n, T, width)``, zero
    past each text's end, and ``mask`` bool ``(n, T)``, True on real tokens, ``T`` the
    longest text in tokens (``pooling`` is then ignored).
    """
    check_options(pooling, site, batch_size)
    layer_list = resolve_layers(loaded, layers)
    ids = tokenize(loaded, texts, max_length=max_length, truncate=truncate)
    n, d = len(ids), site_width(loaded, site)
    if per_token:
        import torch

        T = max(len(r) for r in ids)
        acts = np.zeros((len(layer_list), n, T, d), np.float32)
        mask = np.zeros((n, T), bool)
        for start in range(0, n, batch_size):
            rows = ids[start : start + batch_size]
            # a copy: a model may add into the site's tensor in place later (Falcon's MLP output)
            got = _run(
                loaded, rows, layer_list, site, lambda h, _: h.to("cpu", torch.float32, copy=True)
            )
            for b, r in enumerate(rows):
                mask[start + b, : len(r)] = True
                for k, i in enumerate(layer_list):
                    acts[k, start + b, : len(r)] = got[i][b, : len(r)].numpy()
        return acts, mask
    out = np.empty((len(layer_list), n, d), np.float32)
    for rows, acts in pooled_batches(
        loaded, ids, layer_list, pooling=pooling, site=site, batch_size=batch_size
    ):
        out[:, rows] = acts
    return out
