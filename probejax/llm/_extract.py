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

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from ._hooks import check_site, hooked, site_path
from ._model import LoadedModel
from ._tokens import Chat, TokenMask, model_inputs, template_sha256, token_masks

POOLINGS = ("last", "mean", "max")
DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class ExtractionSpec:
    """What is extracted from the model, validated when built.

    - ``layers``: block indices (``None``: every block).
    - ``pooling``: ``"last"``, ``"mean"`` or ``"max"`` over the selected tokens.
    - ``site``: where each block is read: ``"block_output"`` (default),
      ``"block_input"``, ``"attn_output"``, ``"mlp_output"`` or a submodule path of the
      blocks (``"post_attention_layernorm"``); checked against the model once loaded,
      before any extraction (:func:`probejax.llm.hooked`).
    - ``tokens``: a token mask (:class:`probejax.llm.LastTokens`,
      :class:`probejax.llm.AfterMarker`, :class:`probejax.llm.AssistantTurn`,
      :class:`probejax.llm.AllTokens`, composed with ``&``); ``None``: the pooling's
      default tokens.
    - ``chat``: a :class:`probejax.llm.Chat` to wrap each text in the tokenizer's chat
      template (``None``: the texts as they are).
    - ``batch_size``: texts per forward pass; ``max_length``: tokens allowed per text
      (``None``: the model's context); ``truncate``: keep the first ``max_length``
      tokens of longer texts instead of raising.
    - ``dtype``: the forward pass's dtype when the sweep loads the model
      (``"float32"``, ``"bfloat16"``, ``"float16"``; ``benchmarks/llm_extraction.py``
      measures speed and the activations' agreement with float32).
    """

    layers: Sequence[int] | None = None
    pooling: str = "last"
    site: str = "block_output"
    tokens: TokenMask | None = None
    chat: Chat | None = None
    batch_size: int = 16
    max_length: int | None = None
    truncate: bool = False
    dtype: str = "float32"

    def __post_init__(self):
        check_options(self.pooling, self.site, self.batch_size)
        if self.dtype not in DTYPES:
            raise ValueError(f"ExtractionSpec.dtype must be one of {DTYPES}, got {self.dtype!r}.")
        if self.tokens is not None and not isinstance(self.tokens, TokenMask):
            raise ValueError(
                f"ExtractionSpec.tokens must be a TokenMask or None, got {self.tokens!r}."
            )
        if self.chat is not None and not isinstance(self.chat, Chat):
            raise ValueError(f"ExtractionSpec.chat must be a Chat or None, got {self.chat!r}.")
        if (
            self.tokens is not None
            and self.tokens.needs_reply()
            and (self.chat is None or self.chat.assistant_after is None)
        ):
            raise ValueError(
                "ExtractionSpec.tokens reads the assistant turn, which needs "
                "chat=Chat(assistant_after=MARKER) to cut each text into a user turn and a reply."
            )
        if self.layers is not None:
            layers = tuple(self.layers)
            if not layers or any(isinstance(i, bool) or not isinstance(i, int) for i in layers):
                raise ValueError(
                    f"ExtractionSpec.layers must be a non-empty list of integers or None, "
                    f"got {self.layers!r}."
                )
            object.__setattr__(self, "layers", layers)
        if self.max_length is not None and (
            isinstance(self.max_length, bool)
            or not isinstance(self.max_length, int)
            or self.max_length < 1
        ):
            raise ValueError(
                f"ExtractionSpec.max_length must be a positive integer or None, "
                f"got {self.max_length!r}."
            )

    def options(self) -> dict:
        """The keywords of :func:`probejax.llm.extract` (all but ``layers`` and ``dtype``)."""
        return {
            k: getattr(self, k)
            for k in ("pooling", "site", "tokens", "chat", "batch_size", "max_length", "truncate")
        }

    def selection(self, tokenizer) -> str | None:
        """The identity of the token choice beyond the pooling (the mask, the chat
        wrapping with the template's digest); ``None`` for the defaults."""
        parts = []
        if self.chat is not None:
            parts.append(self.chat.describe(tokenizer))
        if self.tokens is not None:
            parts.append(f"tokens={self.tokens.describe()}")
        return ";".join(parts) or None

    def record(self, tokenizer, texts: Sequence[str]) -> dict:
        """What results and exported files record of the token choice: ``tokens`` (the
        mask's description or None), ``chat`` (system message, marker and the chat
        template's SHA-256, or None) and, with a chat, ``inputs``: the exact string each
        text became."""
        out: dict = {"tokens": None if self.tokens is None else self.tokens.describe()}
        if self.chat is None:
            return {**out, "chat": None}
        return {
            **out,
            "chat": {
                "system": self.chat.system,
                "assistant_after": self.chat.assistant_after,
                "template_sha256": template_sha256(tokenizer),
            },
            "inputs": model_inputs(tokenizer, texts, self.chat, offsets=False).texts,
        }


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


@dataclasses.dataclass(frozen=True)
class Encoded:
    """Texts made model inputs: ``texts`` the exact strings tokenized (the chat
    template applied), ``ids`` their token ids (truncated to the limit when asked),
    ``keep`` per text the bool mask of the tokens the pooling reduces."""

    texts: list[str]
    ids: list[list[int]]
    keep: list[np.ndarray]


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, or ``ValueError`` for one string, an empty sequence or a
    non-string (naming its index)."""
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of strings, not one string.")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: there is nothing to extract.")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}] is a {type(t).__name__}, not a str.")
    return texts


def encode(
    loaded: LoadedModel,
    texts: Sequence[str],
    *,
    pooling: str = "last",
    tokens: TokenMask | None = None,
    chat: Chat | None = None,
    max_length: int | None = None,
    truncate: bool = False,
) -> Encoded:
    """Token ids of each text (the chat template applied, the tokenizer's special
    tokens added), length-checked, with the tokens ``pooling`` reads.

    **Arguments:**

    - `loaded`: the model and tokenizer.
    - `texts`: a non-empty sequence of strings.
    - `pooling`, `tokens`, `chat`: as for :func:`extract`.
    - `max_length`: tokens allowed per text; None: the model's context.
    - `truncate`: keep the first ``max_length`` tokens of a longer text instead of raising.

    **Returns:** an :class:`Encoded`.

    Raises ``ValueError`` for an empty sequence, a non-string, a text with no tokens, a
    mask that selects no token of a text, or (unless ``truncate``) the first text longer
    than the limit, naming its index, its token count and the limit.
    """
    texts = check_texts(texts)
    limit = context_limit(loaded, max_length)
    inputs = model_inputs(loaded.tokenizer, texts, chat, offsets=tokens is not None)
    for i, row in enumerate(inputs.ids):
        if len(row) == 0:
            raise ValueError(f"texts[{i}] = {texts[i]!r} has no tokens.")
        if len(row) > limit and not truncate:
            raise ValueError(
                f"texts[{i}] has {len(row)} tokens, more than the limit of {limit} "
                f"({'max_length' if max_length is not None else 'the context of ' + repr(loaded.model_id)}); "
                f"shorten it, raise max_length, or pass truncate=True to keep the first {limit}."
            )
    inputs = dataclasses.replace(inputs, ids=[row[:limit] for row in inputs.ids])
    return Encoded(inputs.texts, inputs.ids, token_masks(inputs, tokens, pooling))


def _pool(h, keep, pooling: str):
    """Pool ``h`` ``(B, T, d)`` over each row's tokens where ``keep`` ``(B, T)`` is
    True; float32 ``(B, d)``."""
    import torch

    h = h.float()
    B, T, _ = h.shape
    if pooling == "last":
        pos = torch.arange(T, device=h.device)[None, :]
        last = torch.where(keep, pos, -1).amax(1)
        return h[torch.arange(B, device=h.device), last]
    if pooling == "mean":
        w = keep.to(h.dtype)[..., None]
        return (h * w).sum(1) / w.sum(1)
    return h.masked_fill(~keep[..., None], -torch.inf).amax(1)


def _keep_tensor(keep: Sequence[np.ndarray], device):
    import torch

    T = max(len(k) for k in keep)
    out = np.zeros((len(keep), T), bool)
    for b, k in enumerate(keep):
        out[b, : len(k)] = k
    return torch.as_tensor(out).to(device)


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
    """One forward pass over ``rows``; ``reduce(h)`` at ``site`` of each requested
    block, the pass stopped once the last one is read."""
    import torch

    input_ids, attention_mask, _ = _batch_tensors(loaded, rows)
    got: dict = {}

    def fn(i, h):
        if not (isinstance(h, torch.Tensor) and h.ndim == 3 and h.shape[:2] == input_ids.shape):
            shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise ValueError(
                f"site {site!r} of block {i} gives {shape}, not a (batch, tokens, width) "
                f"tensor for input {tuple(input_ids.shape)}: pick a module that sees every "
                f"token (e.g. one of 'block_output', 'attn_output', 'mlp_output')."
            )
        got[i] = reduce(h)
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
    got = _run(loaded, [[int(token)]], [0], site, lambda h: int(h.shape[-1]))
    return got[0]


def length_order(ids: Sequence[Sequence[int]]) -> np.ndarray:
    """The rows of ``ids`` by token count, shortest first (a stable sort: ties keep
    their input order), as int64 indices."""
    return np.argsort(np.array([len(r) for r in ids], np.int64), kind="stable")


def pooled_batches(
    loaded: LoadedModel,
    encoded: Encoded,
    layers: list[int],
    *,
    pooling: str,
    site: str,
    batch_size: int,
    order: Sequence[int] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(rows, acts)`` for consecutive batches of ``order`` (default: length
    order of ``encoded.ids``): ``rows`` the int64 indices into the texts of one batch,
    ``acts`` float32 ``(L, len(rows), width)``, their pooled activations at ``site``
    over the tokens ``encoded.keep`` selects."""
    check_options(pooling, site, batch_size)
    ids = encoded.ids
    order = length_order(ids) if order is None else np.asarray(order, np.int64)
    device = loaded.model.get_input_embeddings().weight.device
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        keep = _keep_tensor([encoded.keep[i] for i in rows], device)
        got = _run(
            loaded,
            [ids[i] for i in rows],
            layers,
            site,
            lambda h, keep=keep: _pool(h, keep.to(h.device), pooling).cpu(),
        )
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
    tokens: TokenMask | None = None,
    chat: Chat | None = None,
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
    - `pooling`: ``"last"``, ``"mean"`` or ``"max"`` over the selected tokens (see the
      module docstring).
    - `site`: ``"block_output"`` (``hidden_states[i + 1]``), ``"block_input"``
      (``hidden_states[i]``), ``"attn_output"``, ``"mlp_output"`` or the dotted path of
      a submodule of each block (``"post_attention_layernorm"``, ``"mlp.down_proj"``);
      checked against the model before any text is extracted.
    - `tokens`: a token mask choosing the tokens pooled (:class:`probejax.llm.LastTokens`,
      :class:`probejax.llm.AfterMarker`, :class:`probejax.llm.AssistantTurn`,
      :class:`probejax.llm.AllTokens`, composed with ``&``); None: the pooling's default.
    - `chat`: a :class:`probejax.llm.Chat` wrapping each text in the tokenizer's chat
      template before tokenization; None: the texts as given, with the tokenizer's
      special tokens.
    - `batch_size`: texts per forward pass; pooled batches are formed in order of token
      count, so similar lengths share a batch (the result is in the order of ``texts``).
    - `max_length`: tokens allowed per text (None: the model's context).
    - `truncate`: keep the first ``max_length`` tokens of longer texts instead of raising.
    - `per_token`: return every token's hidden state instead of a pooled one.

    **Returns:** float32 ``(L, n, width)`` with ``L = len(layers)`` in the order given
    (``width`` is ``d_model`` but for submodules of another width, e.g. ``mlp.up_proj``);
    with ``per_token=True`` a pair ``(acts, mask)``: ``acts`` float32 ``(L, n, T, width)``,
    zero past each text's end, and ``mask`` bool ``(n, T)``, True on the tokens ``tokens``
    selects (every real token when it is None), ``T`` the longest input in tokens
    (``pooling`` is then ignored).
    """
    check_options(pooling, site, batch_size)
    layer_list = resolve_layers(loaded, layers)
    encoded = encode(
        loaded,
        texts,
        pooling=pooling,
        tokens=tokens,
        chat=chat,
        max_length=max_length,
        truncate=truncate,
    )
    ids = encoded.ids
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
                loaded, rows, layer_list, site, lambda h: h.to("cpu", torch.float32, copy=True)
            )
            for b, r in enumerate(rows):
                mask[start + b, : len(r)] = True if tokens is None else encoded.keep[start + b]
                for k, i in enumerate(layer_list):
                    acts[k, start + b, : len(r)] = got[i][b, : len(r)].numpy()
        return acts, mask
    out = np.empty((len(layer_list), n, d), np.float32)
    for rows, acts in pooled_batches(
        loaded, encoded, layer_list, pooling=pooling, site=site, batch_size=batch_size
    ):
        out[:, rows] = acts
    return out
