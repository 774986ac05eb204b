"""Which tokens of a text are read, and the chat template a text is wrapped in.

A text becomes the model's input in two steps:

1. :class:`Chat` (optional) wraps it in the tokenizer's chat template: the text is the
   user turn (after an optional system message) and the template's generation prompt
   closes the input, or, with ``assistant_after=MARKER``, the text is cut after the
   last ``MARKER``: what precedes it (marker included) is the user turn and the rest the
   assistant's reply. The exact string each example became is what is tokenized, and
   :func:`model_inputs` returns it so results and exported files record it. A chat
   input is tokenized without adding special tokens (the template writes them), as
   transformers' ``apply_chat_template`` does; a plain text with the tokenizer's
   defaults.
2. A token mask chooses tokens of the tokenized input, by character offsets into that
   input string (so it needs a fast tokenizer). Masks compose with ``&`` (the tokens
   both select):

   - :class:`AllTokens`: every token.
   - :class:`LastTokens`: the last ``k`` tokens.
   - :class:`AfterMarker`: the tokens that start after the last occurrence of
     ``marker`` in the input (a text without it is an error naming it).
   - :class:`AssistantTurn`: the assistant's reply, the tokens after the template's
     assistant header (needs ``Chat(assistant_after=...)``).

The pooling (``"last"``, ``"mean"``, ``"max"``) then reduces the selected tokens: the
last selected one, their mean, their coordinate-wise max. Without a mask the pooling
keeps its default tokens: ``"last"`` the last token; ``"mean"`` and ``"max"`` every
token but the first (an attention sink whose residual norm is orders of magnitude above
the others), or the only token of a one-token text.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np


class TokenMask:
    """The protocol of a token mask: ``select(offsets, text, start)`` gives a bool array
    over one input's tokens. ``offsets`` is ``(T, 2)`` int, each token's ``[begin,
    end)`` characters in the input string ``text`` (an empty span for special tokens
    the tokenizer adds); ``start`` is the character where the assistant's reply begins
    (``None`` when the input has none). ``describe()`` is the mask's identity in caches
    and results."""

    def select(self, offsets: np.ndarray, text: str, start: int | None) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def needs_reply(self) -> bool:
        """Whether the mask reads the assistant's reply (so the input must have one)."""
        return False

    def __and__(self, other: TokenMask) -> TokenMask:
        if not isinstance(other, TokenMask):
            return NotImplemented
        return Both(self, other)


@dataclasses.dataclass(frozen=True)
class AllTokens(TokenMask):
    """Every token of the input, special tokens included."""

    def select(self, offsets, text, start):
        return np.ones(len(offsets), bool)

    def describe(self) -> str:
        return "all"


@dataclasses.dataclass(frozen=True)
class LastTokens(TokenMask):
    """The last ``k`` tokens (all of them for a shorter input)."""

    k: int

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"LastTokens.k must be a positive integer, got {self.k!r}.")

    def select(self, offsets, text, start):
        keep = np.zeros(len(offsets), bool)
        keep[-self.k :] = True
        return keep

    def describe(self) -> str:
        return f"last:{self.k}"


@dataclasses.dataclass(frozen=True)
class AfterMarker(TokenMask):
    """The tokens that begin at or after the end of the last occurrence of ``marker``
    in the input string."""

    marker: str

    def __post_init__(self):
        if not isinstance(self.marker, str) or not self.marker:
            raise ValueError(f"AfterMarker.marker must be a non-empty string, got {self.marker!r}.")

    def select(self, offsets, text, start):
        at = text.rfind(self.marker)
        if at < 0:
            raise ValueError(f"the marker {self.marker!r} does not occur in the input {text!r}.")
        return _from_char(offsets, at + len(self.marker))

    def describe(self) -> str:
        return f"after:{self.marker}"


@dataclasses.dataclass(frozen=True)
class AssistantTurn(TokenMask):
    """The assistant's reply: the tokens from the character where the reply begins,
    after the chat template's assistant header (needs ``Chat(assistant_after=...)``)."""

    def select(self, offsets, text, start):
        if start is None:
            raise ValueError(
                f"AssistantTurn needs an assistant reply, and the input {text!r} has none: "
                "pass Chat(assistant_after=MARKER) to cut each text into a user turn and a reply."
            )
        return _from_char(offsets, start)

    def describe(self) -> str:
        return "assistant"

    def needs_reply(self) -> bool:
        return True


@dataclasses.dataclass(frozen=True)
class Both(TokenMask):
    """The tokens that masks ``a`` and ``b`` both select (``a & b``)."""

    a: TokenMask
    b: TokenMask

    def select(self, offsets, text, start):
        return self.a.select(offsets, text, start) & self.b.select(offsets, text, start)

    def describe(self) -> str:
        return f"{self.a.describe()}&{self.b.describe()}"

    def needs_reply(self) -> bool:
        return self.a.needs_reply() or self.b.needs_reply()


def _from_char(offsets: np.ndarray, char: int) -> np.ndarray:
    """Tokens whose text begins at or after ``char`` (special tokens, with an empty span,
    count by their position after a real token that does)."""
    offsets = np.asarray(offsets).reshape(-1, 2)
    real = offsets[:, 1] > offsets[:, 0]
    keep = real & (offsets[:, 0] >= char)
    if keep.any():
        keep[int(np.argmax(keep)) :] = True
    return keep


def parse_tokens(spec: str | None) -> TokenMask | None:
    """The mask a command-line string names: ``all``, ``last:K``, ``after:MARKER``,
    ``assistant``, joined by ``&`` for their intersection; ``None`` for ``None``.

    Raises ``ValueError`` naming the part that is none of these."""
    if spec is None:
        return None
    masks: list[TokenMask] = []
    for part in spec.split("&"):
        kind, _, arg = part.partition(":")
        if part == "all":
            masks.append(AllTokens())
        elif part == "assistant":
            masks.append(AssistantTurn())
        elif kind == "last" and arg.isdigit():
            masks.append(LastTokens(int(arg)))
        elif kind == "after" and arg:
            masks.append(AfterMarker(arg))
        else:
            raise ValueError(
                f"--tokens part {part!r} is not one of 'all', 'last:K', 'after:MARKER', "
                f"'assistant' (join them with '&')."
            )
    out = masks[0]
    for m in masks[1:]:
        out = out & m
    return out


@dataclasses.dataclass(frozen=True)
class Chat:
    """Wrap each text in the tokenizer's chat template.

    **Fields:**

    - `system`: a system message before the user turn (``None``: none).
    - `assistant_after`: cut each text after the last occurrence of this marker: the
      part up to it (marker included, surrounding whitespace stripped) is the user turn,
      the rest the assistant's reply, and no generation prompt is added. ``None``: the
      whole text is the user turn and the template's generation prompt follows it.
    """

    system: str | None = None
    assistant_after: str | None = None

    def __post_init__(self):
        for name in ("system", "assistant_after"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v):
                raise ValueError(f"Chat.{name} must be a non-empty string or None, got {v!r}.")

    def messages(self, text: str, where: str) -> list[dict]:
        """The conversation ``text`` becomes (``where`` names it in errors)."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        if self.assistant_after is None:
            return [*head, {"role": "user", "content": text}]
        at = text.rfind(self.assistant_after)
        if at < 0:
            raise ValueError(
                f"{where} = {text!r} does not contain Chat.assistant_after = "
                f"{self.assistant_after!r}, so it has no assistant reply."
            )
        cut = at + len(self.assistant_after)
        user, reply = text[:cut].strip(), text[cut:].strip()
        if not reply:
            raise ValueError(f"{where} = {text!r} has nothing after {self.assistant_after!r}.")
        return [*head, {"role": "user", "content": user}, {"role": "assistant", "content": reply}]

    def describe(self, tokenizer) -> str:
        """The identity of this wrapping with ``tokenizer``'s template (its SHA-256)."""
        digest = template_sha256(tokenizer)[:16]
        return f"chat(system={self.system!r},assistant_after={self.assistant_after!r},template={digest})"


def template_sha256(tokenizer) -> str:
    """SHA-256 of ``tokenizer``'s chat template (``ValueError`` when it has none)."""
    return hashlib.sha256(_template(tokenizer).encode()).hexdigest()


def _template(tokenizer) -> str:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    if not isinstance(template, str) or not template:
        raise ValueError(
            f"the tokenizer ({type(tokenizer).__name__}, {getattr(tokenizer, 'name_or_path', '')!r}) "
            "has no chat template, so Chat cannot wrap the texts; drop --chat or use a model "
            "whose tokenizer has one."
        )
    return template


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """What the model reads: ``texts`` the exact input strings, ``ids`` their token ids,
    ``offsets`` each token's ``[begin, end)`` characters in its string, ``reply`` the
    character where each assistant reply begins (``None`` entries without one)."""

    texts: list[str]
    ids: list[list[int]]
    offsets: list[np.ndarray]
    reply: list[int | None]


def model_inputs(
    tokenizer, texts: Sequence[str], chat: Chat | None, *, offsets: bool = True
) -> ModelInputs:
    """The input strings, token ids and (with ``offsets``; a fast tokenizer's) offsets
    of ``texts``, wrapped by ``chat``.

    Raises ``ValueError`` when the tokenizer has no chat template, when a text lacks the
    chat's marker (naming its index), or when a rendered reply is not a suffix the
    template keeps intact.
    """
    reply: list[int | None] = [None] * len(texts)
    if chat is None:
        inputs = list(texts)
        enc = _encode(tokenizer, inputs, True, offsets)
    else:
        _template(tokenizer)
        inputs = []
        for i, t in enumerate(texts):
            msgs = chat.messages(t, f"texts[{i}]")
            has_reply = msgs[-1]["role"] == "assistant"
            full = tokenizer.apply_chat_template(
                msgs, tokenize=False, add_generation_prompt=not has_reply
            )
            if has_reply:
                prompt = tokenizer.apply_chat_template(
                    msgs[:-1], tokenize=False, add_generation_prompt=True
                )
                if not full.startswith(prompt):
                    raise ValueError(
                        f"texts[{i}]: the chat template does not render the conversation as "
                        f"its prompt followed by the reply, so the reply's tokens cannot be found."
                    )
                reply[i] = len(prompt)
            inputs.append(full)
        enc = _encode(tokenizer, inputs, False, offsets)
    ids = [list(r) for r in enc["input_ids"]]
    spans = enc.get("offset_mapping") or [np.zeros((len(r), 2), np.int64) for r in ids]
    return ModelInputs(
        texts=inputs,
        ids=ids,
        offsets=[np.asarray(o, np.int64).reshape(-1, 2) for o in spans],
        reply=reply,
    )


def _encode(tokenizer, inputs: list[str], special: bool, offsets: bool):
    if offsets and not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"token masks need character offsets, which {type(tokenizer).__name__} (a slow "
            "tokenizer) does not give; load the model with its fast tokenizer."
        )
    return tokenizer(
        inputs, add_special_tokens=special, truncation=False, return_offsets_mapping=offsets
    )


def token_masks(inputs: ModelInputs, mask: TokenMask | None, pooling: str) -> list[np.ndarray]:
    """One bool array per input: the tokens ``pooling`` reduces (module docstring).

    Raises ``ValueError`` naming the first input where ``mask`` selects no token.
    """
    out = []
    for i, ids in enumerate(inputs.ids):
        n = len(ids)
        if mask is None:
            keep = np.zeros(n, bool)
            if pooling == "last" or n == 1:
                keep[n - 1 if pooling == "last" else 0] = True
            else:
                keep[1:] = True
        else:
            try:
                keep = mask.select(inputs.offsets[i][:n], inputs.texts[i], inputs.reply[i])
            except ValueError as e:
                raise ValueError(f"texts[{i}]: {e}") from None
            if not keep.any():
                raise ValueError(
                    f"texts[{i}]: the token mask {mask.describe()!r} selects no token of "
                    f"{inputs.texts[i]!r} ({n} tokens)."
                )
        out.append(keep)
    return out
