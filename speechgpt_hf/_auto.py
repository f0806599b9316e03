"""Registers every speechgpt-hf class with the transformers Auto factories, once, on package import.

`register_for_auto_class` also makes `save_pretrained` write `auto_map` and copy the class files, so a
saved repo loads with `trust_remote_code=True` where this package is not installed. The pipelines register their
tasks here too (`speechgpt_hf.pipelines.registration`).
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoProcessor

from .models.speechgpt import SpeechGPTConfig, SpeechGPTForCausalLM, SpeechGPTProcessor
from .models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANVocoder
from .models.unit_mel import UnitMelConfig, UnitMelVocoder
from .models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from .pipelines.registration import register_pipelines


def _register() -> None:
    AutoConfig.register(SpeechGPTConfig.model_type, SpeechGPTConfig, exist_ok=True)
    AutoModelForCausalLM.register(SpeechGPTConfig, SpeechGPTForCausalLM, exist_ok=True)
    AutoProcessor.register(SpeechGPTConfig, SpeechGPTProcessor, exist_ok=True)
    SpeechGPTConfig.register_for_auto_class()
    SpeechGPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")
    SpeechGPTProcessor.register_for_auto_class("AutoProcessor")
    AutoConfig.register(SpeechUnitTokenizerConfig.model_type, SpeechUnitTokenizerConfig, exist_ok=True)
    AutoModel.register(SpeechUnitTokenizerConfig, SpeechUnitTokenizer, exist_ok=True)
    AutoProcessor.register(SpeechUnitTokenizerConfig, SpeechUnitTokenizer, exist_ok=True)
    SpeechUnitTokenizerConfig.register_for_auto_class()
    SpeechUnitTokenizer.register_for_auto_class("AutoModel")
    AutoConfig.register(UnitHiFiGANConfig.model_type, UnitHiFiGANConfig, exist_ok=True)
    AutoModel.register(UnitHiFiGANConfig, UnitHiFiGANVocoder, exist_ok=True)
    UnitHiFiGANConfig.register_for_auto_class()
    UnitHiFiGANVocoder.register_for_auto_class("AutoModel")
    AutoConfig.register(UnitMelConfig.model_type, UnitMelConfig, exist_ok=True)
    AutoModel.register(UnitMelConfig, UnitMelVocoder, exist_ok=True)
    UnitMelConfig.register_for_auto_class()
    UnitMelVocoder.register_for_auto_class("AutoModel")
    register_pipelines()


_register()
