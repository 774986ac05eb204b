"""Tiny randomly initialised decoder models (a Llama, and one of each family in
:data:`FAMILIES`) with a character tokenizer, built offline in tests."""

from __future__ import annotations

import string

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
CHARS = list(string.ascii_letters + string.digits + string.punctuation + " ")


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character (letters, digits, punctuation, space), plus specials."""
    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def tiny_llama(n_layers: int = 3, d: int = 32, seed: int = 0, max_positions: int = 128):
    """``(model, tokenizer)``: a random Llama, float32, eval mode, on the CPU."""
    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=d,
        intermediate_size=2 * d,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    return model, tokenizer


def save_tiny_llama(path, **kwargs) -> None:
    """Write the tiny model and tokenizer as a local model folder (safetensors)."""
    model, tokenizer = tiny_llama(**kwargs)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


# model_type -> the config entries it needs beyond the common ones of tiny_decoder
FAMILIES = {
    "llama": {},
    "gemma3_text": {"head_dim": 8, "sliding_window": 16},
    "qwen2": {},
    "qwen3": {"head_dim": 8},
    "mistral": {},
    "phi3": {},
    "gpt2": {},
    "gpt_neox": {},
    "falcon": {},
    "qwen2_moe": {
        "moe_intermediate_size": 16,
        "shared_expert_intermediate_size": 16,
        "num_experts": 4,
        "num_experts_per_tok": 2,
    },
    "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "olmoe": {"num_experts": 4, "num_experts_per_tok": 2},
}


def tiny_decoder(
    model_type: str, n_layers: int = 2, d: int = 16, seed: int = 0, max_positions: int = 64
):
    """``(model, tokenizer)``: a random decoder of the transformers ``model_type`` (a key
    of :data:`FAMILIES`), float32, eval mode, on the CPU, through ``from_config``."""
    tokenizer = tiny_tokenizer()
    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(tokenizer),
        hidden_size=d,
        intermediate_size=2 * d,
        num_hidden_layers=n_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **FAMILIES[model_type],
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.requires_grad_(False)
    return model, tokenizer
