"""SpeechGPTForCausalLM: a causal LM whose vocabulary also holds discrete speech units.

The speech side lives entirely in the vocabulary, so the model wraps any `AutoModelForCausalLM`
architecture unchanged and forwards every call to it; what it adds is the unit bookkeeping of
`SpeechGPTConfig` and a place for the Auto classes to find it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, Cache, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_speechgpt import SpeechGPTConfig


class SpeechGPTPreTrainedModel(PreTrainedModel):
    """Base class holding what transformers needs to know about SpeechGPT's capabilities."""

    config_class = SpeechGPTConfig
    base_model_prefix = "language_model"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    _skip_keys_device_placement = ["past_key_values"]

    def _init_weights(self, module: nn.Module) -> None:
        self.language_model._init_weights(module)


class SpeechGPTForCausalLM(SpeechGPTPreTrainedModel, GenerationMixin):
    """A SpeechGPT language model: text tokens and speech-unit tokens in one causal LM.

    `forward` and `generate` behave exactly like those of the wrapped LM (`self.language_model`),
    which is built from `config.text_config` with `AutoModelForCausalLM`.
    """

    def __init__(self, config: SpeechGPTConfig, language_model: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        if language_model is None:
            language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.language_model = language_model
        inner = type(language_model)
        self._no_split_modules = list(getattr(inner, "_no_split_modules", None) or [])
        self._tied_weights_keys = {
            f"language_model.{target}": f"language_model.{source}"
            for target, source in (getattr(language_model, "_tied_weights_keys", None) or {}).items()
        }
        self.post_init()

    @classmethod
    def from_language_model(
        cls,
        language_model: PreTrainedModel,
        tokenizer: Any,
        num_units: int,
        special_token_ids: dict[str, int],
        unit_tokenizer_repo: str | None = None,
        vocoder_repo: str | None = None,
        num_unit_merges: int = 0,
    ) -> SpeechGPTForCausalLM:
        """Wraps a causal LM whose vocabulary already holds the unit tokens (their offset is read from `tokenizer`)."""
        attn_implementation = language_model.config._attn_implementation
        config = SpeechGPTConfig(
            text_config=language_model.config,
            num_units=num_units,
            num_unit_merges=num_unit_merges,
            unit_token_offset=tokenizer.convert_tokens_to_ids("<0>"),
            special_token_ids=special_token_ids,
            unit_tokenizer_repo=unit_tokenizer_repo,
            vocoder_repo=vocoder_repo,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        config.dtype = language_model.config.dtype
        config._attn_implementation = attn_implementation  # building the config resets the shared text config's
        model = cls(config, language_model=language_model)
        model.generation_config = language_model.generation_config
        return model

    @property
    def base_model(self) -> nn.Module:
        """The wrapped LM's backbone (the decoder without its head), as transformers and TRL expect."""
        return self.language_model.base_model

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.language_model.set_output_embeddings(new_embeddings)

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        cache_position: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Runs the wrapped causal LM; takes and returns what its `forward` does."""
        return self.language_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            cache_position=cache_position,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )

    def prepare_inputs_for_generation(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.language_model.prepare_inputs_for_generation(*args, **kwargs)


__all__ = ["SpeechGPTForCausalLM", "SpeechGPTPreTrainedModel"]
