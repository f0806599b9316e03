"""Configuration of a SpeechGPT model: any causal LM plus a block of discrete speech-unit tokens."""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PretrainedConfig

# Tokens a SpeechGPT vocabulary adds after the unit tokens, in the order of the original release
# (`<eoa>` is extra here: the original left it to ordinary sub-word pieces).
SPEECHGPT_SPECIAL_TOKENS: dict[str, str] = {
    "sosp": "<sosp>",
    "eosp": "<eosp>",
    "human": "[Human]",
    "speechgpt": "[SpeechGPT]",
    "eoh": "<eoh>",
    "eos": "<eos>",
    "eoa": "<eoa>",
}


class SpeechGPTConfig(PretrainedConfig):
    """Configuration for [`SpeechGPTForCausalLM`].

    Args:
        text_config: configuration of the wrapped causal LM (any `AutoModelForCausalLM` architecture),
            as a `PretrainedConfig` or its dict form with a `model_type` key.
        num_units: size K of the discrete unit vocabulary (`<0>` … `<K-1>`).
        unit_token_offset: token id of `<0>`; unit `u` has token id `unit_token_offset + u`.
        special_token_ids: token ids of the SpeechGPT markers, keyed as in `SPEECHGPT_SPECIAL_TOKENS`
            (a marker the vocabulary lacks, e.g. `<eoa>` in the original release, is left out).
        unit_tokenizer_repo: repo id or path of the SpeechUnitTokenizer whose units this model reads.
        vocoder_repo: repo id or path of the UnitHiFiGANVocoder that turns this model's units into speech.
    """

    model_type = "speechgpt"
    sub_configs = {"text_config": AutoConfig}

    def __init__(
        self,
        text_config: PretrainedConfig | dict[str, Any] | None = None,
        num_units: int = 1000,
        unit_token_offset: int | None = None,
        special_token_ids: dict[str, int] | None = None,
        unit_tokenizer_repo: str | None = None,
        vocoder_repo: str | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(text_config, dict):
            text_config = dict(text_config)
            model_type = text_config.pop("model_type", None)
            if model_type is None:
                raise ValueError("`text_config` given as a dict needs a `model_type` key (e.g. 'llama').")
            text_config = AutoConfig.for_model(model_type, **text_config)
        elif text_config is None:
            text_config = AutoConfig.for_model("llama")
        self.text_config = text_config
        self.num_units = num_units
        self.unit_token_offset = unit_token_offset
        self.special_token_ids = dict(special_token_ids or {})
        self.unit_tokenizer_repo = unit_tokenizer_repo
        self.vocoder_repo = vocoder_repo
        kwargs.setdefault("tie_word_embeddings", getattr(text_config, "tie_word_embeddings", False))
        super().__init__(**kwargs)

    @property
    def vocab_size(self) -> int:
        """Size of the expanded vocabulary (the wrapped LM's embedding rows)."""
        return self.text_config.vocab_size

    @vocab_size.setter
    def vocab_size(self, value: int) -> None:
        self.text_config.vocab_size = value

    def unit_token_ids(self) -> range:
        """Token ids of `<0>` … `<K-1>`."""
        if self.unit_token_offset is None:
            raise ValueError(
                "This SpeechGPTConfig has no `unit_token_offset`: build the model with "
                "`speechgpt_hf.add_speech_units(...)` or set the offset of `<0>` in the config."
            )
        return range(self.unit_token_offset, self.unit_token_offset + self.num_units)


__all__ = ["SpeechGPTConfig", "SPEECHGPT_SPECIAL_TOKENS"]
