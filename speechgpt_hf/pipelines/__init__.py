"""`transformers.pipeline(...)` for SpeechGPT: "speech-to-text", "speech-to-speech", "text-to-audio" and
"any-to-any", registered on `import speechgpt_hf`."""

from .any_to_any import SpeechGPTAnyToAnyPipeline
from .base import SpeechGPTPipeline
from .speech_in import SpeechToSpeechPipeline, SpeechToTextPipeline
from .text_to_audio import SpeechGPTTextToAudioPipeline

__all__ = [
    "SpeechGPTAnyToAnyPipeline",
    "SpeechGPTPipeline",
    "SpeechGPTTextToAudioPipeline",
    "SpeechToSpeechPipeline",
    "SpeechToTextPipeline",
]
