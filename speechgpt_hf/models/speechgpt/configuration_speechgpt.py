"""Configuration of a SpeechGPT model: any causal LM plus a block of discrete speech-unit tokens."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import AutoConfig, PretrainedConfig
from transformers.utils import CONFIG_NAME

from .component_paths import is_folder_relative, local_folder, portable_path, resolve_pointer

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


# Config fields that name the other repos of a SpeechGPT system (a Hub id, or a local folder).
COMPONENT_FIELDS = ("unit_tokenizer_repo", "vocoder_repo")


class SpeechGPTConfig(PretrainedConfig):
    """Configuration for [`SpeechGPTForCausalLM`].

    Args:
        text_config: configuration of the wrapped causal LM (any `AutoModelForCausalLM` architecture),
            as a `PretrainedConfig` or its dict form with a `model_type` key.
        num_units: size K of the discrete unit vocabulary (`<0>` … `<K-1>`).
        num_unit_merges: M, the merges of a BPE over the units (0: none); the LM then has K + M unit tokens,
            `<K>` … `<K+M-1>` the pieces its processor's `unit_merges` make.
        unit_token_offset: token id of `<0>`; unit `u` has token id `unit_token_offset + u`.
        special_token_ids: token ids of the SpeechGPT markers, keyed as in `SPEECHGPT_SPECIAL_TOKENS`
            (a marker the vocabulary lacks, e.g. `<eoa>` in the original release, is left out).
        unit_tokenizer_repo: repo id or path of the SpeechUnitTokenizer whose units this model reads.
        vocoder_repo: repo id or path of the UnitHiFiGANVocoder that turns this model's units into speech.

    A local folder inside or near the model folder (`./units`, `../vocoder`, `../../vocoder`) is saved relative to
    it, so a saved system can be moved or copied as a whole; `resolve_component_path` turns it back into a path.
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
        num_unit_merges: int = 0,
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
        self.num_unit_merges = num_unit_merges
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
        """Token ids of `<0>` … `<K-1>` (… `<K+M-1>` with a unit BPE of M merges)."""
        if self.unit_token_offset is None:
            raise ValueError(
                "This SpeechGPTConfig has no `unit_token_offset`: build the model with "
                "`speechgpt_hf.add_speech_units(...)` or set the offset of `<0>` in the config."
            )
        return range(self.unit_token_offset, self.unit_token_offset + self.num_units + self.num_unit_merges)

    def resolve_component_path(self, name: str, model_dir: str | os.PathLike | None = None) -> str | None:
        """The repo id or folder that `name` ("unit_tokenizer_repo" or "vocoder_repo") names, with a path
        relative to the model folder (`model_dir`, by default where this config was loaded from) resolved
        against it. Hub ids and absolute paths are returned as they are."""
        if name not in COMPONENT_FIELDS:
            raise ValueError(f"{name!r} is not a component of a SpeechGPT system; use one of {COMPONENT_FIELDS}.")
        value = getattr(self, name)
        if not value or not is_folder_relative(value):
            return value
        folder = Path(model_dir) if model_dir is not None else local_folder(self.name_or_path, CONFIG_NAME)
        return resolve_pointer(name, value, folder)

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> None:
        """Saves the config, storing local component folders inside or beside `save_directory` relative to it."""
        originals = {name: getattr(self, name) for name in COMPONENT_FIELDS}
        for name in COMPONENT_FIELDS:
            setattr(self, name, self._stored_component(name, Path(save_directory)))
        try:
            super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        finally:
            for name, value in originals.items():
                setattr(self, name, value)

    def _stored_component(self, name: str, folder: Path) -> str | None:
        try:
            local = self.resolve_component_path(name)
        except (ValueError, OSError):  # a relative path whose model folder is unknown here: keep it as it is
            return getattr(self, name)
        return portable_path(Path(local), folder) if local and os.path.isdir(local) else local


__all__ = ["COMPONENT_FIELDS", "SpeechGPTConfig", "SPEECHGPT_SPECIAL_TOKENS"]
