"""Where a causal LM's residual stream lives, and forward hooks that always come off.

Hook points, for a decoder block ``layers[i]`` (a ``torch.nn.Module``):

- ``"block_output"`` (default): the hidden state leaving block ``i`` (the residual
  stream after the block), i.e. ``hidden_states[i + 1]`` of ``output_hidden_states``
  in a transformers model, before the final norm.
- ``"block_input"``: the hidden state entering block ``i`` (``hidden_states[i]``).

Blocks are found by :func:`decoder_layers` for every common layout of transformers
causal LMs (Llama/Mistral/Qwen/Gemma/Phi ``model.layers``, GPT-2/GPT-J/Falcon
``transformer.h``, GPT-NeoX ``gpt_neox.layers``, OPT ``model.decoder.layers``, MPT
``transformer.blocks``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

HOOK_POINTS = ("block_output", "block_input")

_LAYER_PATHS = (
    "model.layers",
    "model.model.layers",
    "model.language_model.layers",
    "transformer.h",
    "gpt_neox.layers",
    "model.decoder.layers",
    "transformer.blocks",
    "language_model.model.layers",
)


def decoder_layers(model) -> Sequence:
    """The list of decoder blocks of a transformers causal LM (a ``ModuleList``).

    Raises ``ValueError`` naming the model class and the attribute paths tried when
    none holds a list of blocks.
    """
    for path in _LAYER_PATHS:
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None and hasattr(obj, "__len__") and len(obj) > 0:
            return obj
    raise ValueError(
        f"cannot find the decoder blocks of {type(model).__name__}: none of "
        f"{', '.join(_LAYER_PATHS)} is a non-empty list of modules."
    )


def unpack_model(lm, need_tokenizer: bool = True):
    """``(model, tokenizer)`` of a loaded model (``.model``, ``.tokenizer``), a
    ``(model, tokenizer)`` pair or a bare ``torch.nn.Module`` (tokenizer ``None``).

    Raises ``TypeError`` for anything else, and when `need_tokenizer` and there is none.
    """
    import torch

    if isinstance(lm, tuple):
        model, tokenizer = lm
    elif isinstance(lm, torch.nn.Module):
        model, tokenizer = lm, None
    elif hasattr(lm, "model"):
        model, tokenizer = lm.model, getattr(lm, "tokenizer", None)
    else:
        raise TypeError(
            f"expected a loaded model (with .model and .tokenizer), a (model, tokenizer) "
            f"pair or a torch module, got {type(lm).__name__}."
        )
    if need_tokenizer and tokenizer is None:
        raise TypeError("a tokenizer is needed: pass a loaded model or a (model, tokenizer) pair.")
    return model, tokenizer


def _hidden(output):
    """The hidden-state tensor of a block's output (a tensor or a tuple led by one)."""
    return output[0] if isinstance(output, tuple) else output


def _replace_hidden(output, hidden):
    if isinstance(output, tuple):
        return (hidden, *output[1:])
    return hidden


@contextlib.contextmanager
def hooked(
    model,
    layers: Sequence[int],
    fn: Callable,
    point: str = "block_output",
    *,
    prepend: bool = False,
) -> Iterator[None]:
    """Run ``fn(layer_index, hidden) -> hidden | None`` at each hooked block.

    ``hidden`` is the ``(batch, seq, d)`` residual-stream tensor at ``point``; a
    returned tensor replaces it (steering), ``None`` leaves it (reading). The hooks are
    removed on exit, also when the body raises, so the model is restored exactly.

    ``prepend=True`` runs ``fn`` before the hooks the blocks already carry. Editing hooks
    want this: transformers records ``output_hidden_states`` with forward hooks of its
    own, installed lazily the first time they are asked for, and a recorder that runs
    before an edit records the unedited state.
    """
    if point not in HOOK_POINTS:
        raise ValueError(f"hook point {point!r} is not one of {HOOK_POINTS}.")
    blocks = decoder_layers(model)
    handles = []
    try:
        for i in layers:
            if not 0 <= i < len(blocks):
                raise ValueError(f"layer {i} out of range: the model has {len(blocks)} blocks.")
            if point == "block_output":

                def post(module, args, output, i=i):
                    new = fn(i, _hidden(output))
                    return None if new is None else _replace_hidden(output, new)

                handles.append(blocks[i].register_forward_hook(post, prepend=prepend))
            else:

                def pre(module, args, kwargs, i=i):
                    if args:
                        new = fn(i, args[0])
                        return None if new is None else ((new, *args[1:]), kwargs)
                    new = fn(i, kwargs["hidden_states"])
                    if new is None:
                        return None
                    return args, {**kwargs, "hidden_states": new}

                handles.append(
                    blocks[i].register_forward_pre_hook(pre, with_kwargs=True, prepend=prepend)
                )
        yield
    finally:
        for h in handles:
            h.remove()
