"""The from-scratch base LM of the small-scale reproduction: a byte-level BPE tokenizer trained on the run's own
text and a randomly initialised causal LM of the configured size."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from .settings import ReproductionSettings


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `texts` in memory, with BOS/EOS/UNK/PAD tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(list(texts), trainer=trainer)
    bos = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def random_causal_lm(model_type: str, seed: int = 0, **config: Any) -> PreTrainedModel:
    """A randomly initialised causal LM of any transformers architecture; special ids follow `train_bpe_tokenizer`."""
    settings = dict(max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, pad_token_id=3)
    settings.update(config)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **settings))


def small_llama(vocab_size: int, hidden: int, layers: int, heads: int, seed: int = 0) -> PreTrainedModel:
    """The reproduction's from-scratch Llama: `layers` layers of width `hidden`, a 4x MLP, `heads` attention heads."""
    return random_causal_lm(
        "llama",
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        seed=seed,
    )


def build_base_lm(output: Path, settings: ReproductionSettings, texts: Iterable[str]) -> dict[str, Any]:
    """Trains the tokenizer on `texts`, builds the Llama the settings describe and saves both to `output/base-lm`."""
    tokenizer = train_bpe_tokenizer(texts, vocab_size=settings.text_vocab_size)
    model = small_llama(len(tokenizer), settings.lm_hidden, settings.lm_layers, settings.lm_heads, settings.seed)
    model.save_pretrained(output / "base-lm")
    tokenizer.save_pretrained(output / "base-lm")
    return {"parameters": sum(p.numel() for p in model.parameters()), "text_vocab": len(tokenizer)}


__all__ = ["build_base_lm", "random_causal_lm", "small_llama", "train_bpe_tokenizer"]
