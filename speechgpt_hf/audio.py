"""Audio in and out for every part of speechgpt-hf: one reader (`read_audio`, `load_audio`), one integer scaling
(`to_float`: divide by 2**(bits-1); `to_int16`: its inverse) and one error type (`AudioInputError`), and the 16 kHz rate (`SAMPLING_RATE`) the package works at.

The code lives in `speechgpt_hf/models/unit_tokenizer/audio.py` because a saved unit tokenizer repo carries
that file for `trust_remote_code`; this module is its public name.
"""

from .models.unit_tokenizer.audio import SAMPLING_RATE, AudioInputError, load_audio, read_audio, to_float, to_int16

__all__ = ["SAMPLING_RATE", "AudioInputError", "load_audio", "read_audio", "to_float", "to_int16"]
