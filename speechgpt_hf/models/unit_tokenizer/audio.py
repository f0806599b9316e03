"""Reading and writing audio for every part of speechgpt-hf (its public name is `speechgpt_hf.audio`).

Whatever a user holds (a path, bytes, an array or tensor, a datasets Audio value) becomes checked mono float32;
float audio becomes int16 for players and recognisers. Integers scale by 2**(bits-1) (int16: 32768), so int16
-32768 is exactly -1.0 and `to_int16` inverts `to_float` exactly. Bad input raises `AudioInputError`, naming
the problem and the way out, so a batch job can skip and count it; a missing decoding library raises
ImportError naming the package to install, because that is the environment's problem, not the data's.

The file lives with the unit tokenizer because a saved tokenizer repo carries it for `trust_remote_code`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

SAMPLING_RATE = 16000  # the rate every speech model of this package reads and writes
MIN_SAMPLING_RATE = 4000
MAX_SAMPLING_RATE = 384000


class AudioInputError(ValueError):
    """An audio input that cannot be used; the message names the problem and how to fix it."""


def _soundfile() -> Any:
    """The soundfile module, or an ImportError saying how to install it (a missing libsndfile is an OSError)."""
    try:
        import soundfile
    except (ImportError, OSError) as error:
        raise ImportError(
            f"Reading audio files needs the soundfile package and its libsndfile library: pip install soundfile "
            f"({type(error).__name__}: {error})."
        ) from error
    return soundfile


def _torchcodec_decoder(name: str) -> Any:
    """torchcodec's AudioDecoder class, or an ImportError naming torchcodec and FFmpeg (its shared libraries)."""
    try:
        from torchcodec.decoders import AudioDecoder
    except (ImportError, OSError, RuntimeError) as error:  # torchcodec raises RuntimeError when FFmpeg is missing
        raise ImportError(
            f"Decoding {name} needs torchcodec (soundfile cannot read it) and the system's FFmpeg libraries: "
            f"pip install torchcodec, and install FFmpeg (Debian/Ubuntu: apt-get install ffmpeg) "
            f"({type(error).__name__}: {error})."
        ) from error
    return AudioDecoder


def _torchcodec_samples(source: Any, name: str, soundfile_error: Exception | None = None) -> tuple[np.ndarray, int]:
    """(channels-first samples, rate) that torchcodec decodes from a path, bytes or an AudioDecoder it made.

    Its decoding errors (RuntimeError, ValueError) mean bad input; a missing torchcodec or FFmpeg raises ImportError.
    """
    audio_decoder = None if hasattr(source, "get_all_samples") else _torchcodec_decoder(name)
    try:
        decoder = source if audio_decoder is None else audio_decoder(source)
        samples = decoder.get_all_samples()
    except (RuntimeError, ValueError) as error:
        tried = f"soundfile: {soundfile_error}; " if soundfile_error is not None else ""
        raise AudioInputError(
            f"Could not decode {name}: it is corrupt or not an audio file ({tried}torchcodec: {error})."
        ) from error
    return samples.data.numpy(), int(samples.sample_rate)


def _decode_file(source: str | Path | bytes, name: str | None = None) -> tuple[np.ndarray, int]:
    """Decodes a file (or its bytes) with soundfile, then torchcodec (mp3, m4a, …) when soundfile cannot; errors
    call it `name` (the file the bytes came from) when given."""
    name = name or ("<bytes>" if isinstance(source, bytes) else str(source))
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise AudioInputError(f"Audio file not found: {name}.")
    soundfile = _soundfile()
    try:
        data, rate = soundfile.read(
            io.BytesIO(source) if isinstance(source, bytes) else source, dtype="float32", always_2d=True
        )
    except soundfile.SoundFileError as error:
        return _torchcodec_samples(source, name, error)
    return data.T, int(rate)


def to_float(array: Any) -> np.ndarray:
    """A float32 copy of a numpy array or torch tensor of samples; integers scale by 2**(bits-1), unsigned ones
    are centred first (uint8 128 is 0.0). Float input keeps its values."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        array = array.float().numpy() if array.dtype in (torch.bfloat16, torch.float16) else array.numpy()
    array = np.asarray(array)
    if array.dtype.kind in "iu":
        half = float(2 ** (8 * array.dtype.itemsize - 1))
        offset = half if array.dtype.kind == "u" else 0.0
        return ((array.astype(np.float64) - offset) / half).astype(np.float32)
    if array.dtype.kind != "f":
        raise AudioInputError(f"Audio arrays must hold numbers; got dtype {array.dtype}.")
    return array.astype(np.float32)


def to_int16(waveform: Any) -> np.ndarray:
    """Samples (float in [-1, 1], or integers, numpy or torch) as int16: x * 32768, rounded, clipped to the range."""
    array = to_float(waveform)
    if not np.isfinite(array).all():
        raise AudioInputError("The audio contains NaN or infinite samples: it cannot be written as int16.")
    return np.clip(np.rint(array * 32768.0), -32768, 32767).astype(np.int16)


def _as_channels_first(array: Any) -> np.ndarray:
    """A float32 (channels, samples) array from a 1-D or 2-D numpy array / torch tensor of any numeric dtype."""
    array = to_float(array)
    if array.ndim == 1:
        return array[None]
    if array.ndim == 2:
        # Channels are the short axis: (samples, channels) arrays as soundfile and Gradio give them are accepted too.
        return array if array.shape[0] <= array.shape[1] else array.T
    raise AudioInputError(f"Audio arrays must be 1-D or (channels, samples); got shape {tuple(array.shape)}.")


def _raw_audio(item: Any, sampling_rate: int | None) -> tuple[np.ndarray, int]:
    """(channels-first float array, rate) of one input of any supported kind, before checks."""
    if isinstance(item, (str, Path)):
        return _decode_file(item)
    if hasattr(item, "get_all_samples"):  # a torchcodec AudioDecoder, as datasets >= 4 yields
        return _torchcodec_samples(item, "the audio")
    if isinstance(item, dict):
        if item.get("array") is not None:
            return _as_channels_first(item["array"]), item.get("sampling_rate", sampling_rate)
        if item.get("bytes"):
            return _decode_file(item["bytes"], item.get("path"))  # a datasets value keeps its file's name
        if item.get("path"):
            return _decode_file(item["path"])
        raise AudioInputError("An audio dict needs 'array' and 'sampling_rate', or 'bytes' or 'path'.")
    if isinstance(item, (np.ndarray, torch.Tensor, list)):
        if sampling_rate is None:
            raise AudioInputError("An audio array needs its rate: pass sampling_rate=… (e.g. 16000).")
        return _as_channels_first(np.asarray(item) if isinstance(item, list) else item), sampling_rate
    raise AudioInputError(
        f"Unsupported audio input of type {type(item).__name__}: pass a path, an array with sampling_rate, "
        "or a datasets Audio value."
    )


def read_audio(item: Any, sampling_rate: int | None = None) -> tuple[np.ndarray, int]:
    """One input as (checked mono float32 waveform, its own rate); channels are averaged (down-mix).

    `sampling_rate` is the rate of a bare array. Raises `AudioInputError` for empty audio, NaN/inf samples
    and rates outside 4 kHz … 384 kHz; digital silence is valid.
    """
    data, rate = _raw_audio(item, sampling_rate)
    if rate is None or not float(rate).is_integer() or not MIN_SAMPLING_RATE <= int(rate) <= MAX_SAMPLING_RATE:
        raise AudioInputError(
            f"Unsupported sampling rate {rate!r}: give an integer rate between {MIN_SAMPLING_RATE} and "
            f"{MAX_SAMPLING_RATE} Hz."
        )
    if data.size == 0:
        raise AudioInputError("The audio is empty (0 samples).")
    if not np.isfinite(data).all():
        raise AudioInputError("The audio contains NaN or infinite samples: clean or drop this item.")
    return np.ascontiguousarray(data.mean(axis=0, dtype=np.float32)), int(rate)


def load_audio(
    item: Any, sampling_rate: int | None = None, target_rate: int = SAMPLING_RATE, min_samples: int = 400
) -> np.ndarray:
    """One input as a checked mono float32 waveform at `target_rate` (`read_audio`, then resampling).

    Also raises `AudioInputError` for audio shorter than `min_samples` after resampling (the unit tokenizer's
    analysis frame by default).
    """
    wave, rate = read_audio(item, sampling_rate)
    if rate != target_rate:
        import torchaudio

        wave = torchaudio.functional.resample(torch.from_numpy(wave), rate, target_rate).numpy()
    if wave.size < min_samples:
        raise AudioInputError(
            f"The audio is too short: {wave.size} samples at {target_rate} Hz, fewer than one frame "
            f"({min_samples} samples = {1000 * min_samples / target_rate:.0f} ms)."
        )
    return wave


__all__ = ["AudioInputError", "load_audio", "read_audio", "to_float", "to_int16"]
