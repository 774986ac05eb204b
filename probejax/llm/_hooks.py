"""Where a decoder model's activations are read, and forward hooks that always come off.

Sites, for a decoder block ``layers[i]`` (a ``torch.nn.Module``):

- ``"block_output"`` (default): the hidden state leaving block ``i`` (the residual
  stream after the block), i.e. ``hidden_states[i + 1]`` of ``output_hidden_states``
  in a transformers model, before the final norm.
- ``"block_input"``: the hidden state entering block ``i`` (``hidden_states[i]``).
- ``"attn_output"``: the output of the block's self-attention submodule, before it is
  added to the residual stream (``self_attn`` in Llama/Qwen/Mistral/Gemma/Phi-3,
  ``attn`` in GPT-2, ``attention`` in GPT-NeoX, ``self_attention`` in Falcon;
  :data:`ATTENTION_NAMES`).
- ``"mlp_output"``: the output of the block's MLP submodule (in a mixture-of-experts
  model the sparse block that routes to the experts, ``mlp`` or ``block_sparse_moe``;
  :data:`MLP_NAMES`).
- any other name: the submodule of that dotted path inside each block
  (``"post_attention_layernorm"``, ``"self_attn.o_proj"``, ``"mlp.down_proj"``), read
  with a forward hook on it.

A submodule returning a tuple is read at its first element. :func:`site_modules`
checks a site against a model before anything runs: an unknown site raises, naming the
site, the model class and the submodules block 0 does have.

Blocks are found by :func:`decoder_layers`: the known layouts first (Llama, Mistral,
Qwen, Gemma, Phi, OLMo ``model.layers``; GPT-2, Falcon ``transformer.h``; GPT-NeoX
``gpt_neox.layers``; OPT ``model.decoder.layers``; MPT ``transformer.blocks``), then,
for any other decoder-only model, the longest ``ModuleList`` of blocks of one class
that no other such list contains.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence

SITES = ("block_output", "block_input", "attn_output", "mlp_output")
ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")
MLP_NAMES = ("mlp", "block_sparse_moe", "feed_forward", "ffn", "moe")
_SITE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")

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


def check_site(site: str) -> None:
    """Raise ``ValueError`` unless ``site`` is one of :data:`SITES` or a dotted module
    path (letters, digits, ``_``, ``.``). Whether the model has it is checked by
    :func:`site_modules`."""
    if not isinstance(site, str) or not _SITE_NAME.match(site):
        raise ValueError(
            f"site {site!r} is neither one of {SITES} nor a dotted submodule path of a "
            f"decoder block such as 'post_attention_layernorm' or 'mlp.down_proj'."
        )


def _block_lists(model):
    """``(path, ModuleList)`` of every non-empty list of one class of blocks (modules
    with submodules), outermost lists only (none inside another's block)."""
    import torch

    found = []
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.ModuleList) or len(mod) == 0:
            continue
        if any(name.startswith(p + ".") for p, _ in found):
            continue
        kinds = {type(m) for m in mod}
        if len(kinds) == 1 and any(True for _ in mod[0].children()):
            found.append((name, mod))
    return found


def decoder_layers(model) -> Sequence:
    """The list of decoder blocks of a transformers decoder model (a ``ModuleList``).

    The known attribute paths are tried first; failing those, the longest
    ``ModuleList`` of blocks of one class under the model (outermost lists only, so the
    experts of a mixture-of-experts block never count; ties: the first in module
    order).

    Raises ``ValueError`` naming the model class, the paths tried and the lists found
    when there is none.
    """
    for path in _LAYER_PATHS:
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None and hasattr(obj, "__len__") and len(obj) > 0:
            return obj
    lists = _block_lists(model)
    if lists:
        return max(lists, key=lambda pm: len(pm[1]))[1]
    raise ValueError(
        f"cannot find the decoder blocks of {type(model).__name__}: none of "
        f"{', '.join(_LAYER_PATHS)} is a non-empty list of modules, and no ModuleList of "
        f"blocks of one class is under the model."
    )


def _submodule_names(block, depth: int = 2) -> list[str]:
    """Dotted names of ``block``'s submodules up to ``depth`` levels, numbered list
    entries (experts, heads) left out."""
    names = []
    for name, _ in block.named_modules():
        parts = name.split(".")
        if name and len(parts) <= depth and not any(p.isdigit() for p in parts):
            names.append(name)
    return names


def _named_child(block, names: Sequence[str]):
    for name in names:
        mod = getattr(block, name, None)
        if mod is not None and hasattr(mod, "register_forward_hook"):
            return name
    return None


def site_path(model, site: str) -> str | None:
    """The dotted submodule path inside each block that ``site`` reads (``None`` for
    ``"block_output"`` and ``"block_input"``, which hook the block itself).

    Raises ``ValueError`` naming the site, the model class and block 0's submodules when
    the model has no such submodule.
    """
    check_site(site)
    if site in ("block_output", "block_input"):
        return None
    block = decoder_layers(model)[0]
    if site == "attn_output":
        path, looked = _named_child(block, ATTENTION_NAMES), ATTENTION_NAMES
    elif site == "mlp_output":
        path, looked = _named_child(block, MLP_NAMES), MLP_NAMES
    else:
        try:
            block.get_submodule(site)
            path, looked = site, (site,)
        except AttributeError:
            path, looked = None, (site,)
    if path is None:
        raise ValueError(
            f"site {site!r}: the decoder blocks of {type(model).__name__} have no submodule "
            f"{' or '.join(map(repr, looked))}; block 0 has "
            f"{', '.join(_submodule_names(block)) or 'no submodules'} (or use one of {SITES})."
        )
    return path


def site_modules(model, layers: Sequence[int], site: str) -> dict:
    """``{layer: module}``: the module hooked for ``site`` in each of ``layers`` (the
    block itself for ``"block_output"``/``"block_input"``), checked to exist in every
    one of them (``ValueError`` naming the site, layer and model class otherwise)."""
    path = site_path(model, site)
    blocks = decoder_layers(model)
    out = {}
    for i in layers:
        if not 0 <= i < len(blocks):
            raise ValueError(f"layer {i} out of range: the model has {len(blocks)} blocks.")
        try:
            out[i] = blocks[i] if path is None else blocks[i].get_submodule(path)
        except AttributeError:
            raise ValueError(
                f"site {site!r}: block {i} of {type(model).__name__} has no submodule "
                f"{path!r} (block 0 has it); block {i} has "
                f"{', '.join(_submodule_names(blocks[i]))}."
            ) from None
    return out


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
    """The tensor of a module's output (a tensor or a tuple led by one)."""
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
    site: str = "block_output",
    *,
    prepend: bool = False,
) -> Iterator[None]:
    """Run ``fn(layer_index, hidden) -> hidden | None`` at ``site`` of each hooked block.

    ``hidden`` is the ``(batch, seq, width)`` tensor at ``site`` (module docstring); a
    returned tensor replaces it (steering), ``None`` leaves it (reading). The site is
    checked against the model before any hook goes on (:func:`site_modules`). The hooks
    are removed on exit, also when the body raises, so the model is restored exactly.

    ``prepend=True`` runs ``fn`` before the hooks the modules already carry. Editing
    hooks want this: transformers records ``output_hidden_states`` with forward hooks of
    its own, installed lazily the first time they are asked for, and a recorder that
    runs before an edit records the unedited state.
    """
    modules = site_modules(model, list(layers), site)
    handles = []
    try:
        for i, module in modules.items():
            if site != "block_input":

                def post(module, args, output, i=i):
                    new = fn(i, _hidden(output))
                    return None if new is None else _replace_hidden(output, new)

                handles.append(module.register_forward_hook(post, prepend=prepend))
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
                    module.register_forward_pre_hook(pre, with_kwargs=True, prepend=prepend)
                )
        yield
    finally:
        for h in handles:
            h.remove()
