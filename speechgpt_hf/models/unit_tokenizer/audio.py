"""Turns whatever a user holds (a path, an array, a datasets Audio value) into checked 16 kHz mono float32.

Every problem gets an `AudioInputError` that names it and the way out, so a batch job can report which
item failed and why instead of stopping.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

MIN_SAMPLING_RATE = 4000
MAX_SAMPLING_RATE = 384000
_INT_SCALES = {np.dtype("int8"): 128.0, np.dtype("int16"): 32768.0, np.dtype("int32"): 2147483648.0}


class AudioInputError(ValueError):
    """An audio input that cannot be encoded; the message names the problem and how to fix it."""


def _decode_file(source: str | Path | bytes) -> tuple[np.ndarray, int]:
    """Decodes a file (or its bytes) with soundfile, then torchcodec (mp3, m4a, …) when soundfile cannot."""
    import soundfile

    name = "<bytes>" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise AudioInputError(f"Audio file not found: {name}.")
    try:
        data, rate = soundfile.read(
            io.BytesIO(source) if isinstance(source, bytes) else source, dtype="float32", always_2d=True
        )
        return data.T, int(rate)
    except Exception as sf_error:  # noqa: BLE001  (soundfile raises several types; torchcodec gets a try)
        try:
            from torchcodec.decoders import AudioDecoder

            samples = AudioDecoder(source).get_all_samples()
            return samples.data.numpy(), int(samples.sample_rate)
        except Exception as codec_error:  # noqa: BLE001
            raise AudioInputError(
                f"Could not decode {name}: it is corrupt or not an audio file "
                f"(soundfile: {sf_error}; torchcodec: {codec_error})."
            ) from codec_error


def _as_channels_first(array: Any) -> np.ndarray:
    """A float32 (channels, samples) array from a 1-D or 2-D numpy array / torch tensor of any numeric dtype."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        array = array.float().numpy() if array.dtype in (torch.bfloat16, torch.float16) else array.numpy()
    array = np.asarray(array)
    if array.dtype == np.uint8:
        array = (array.astype(np.float32) - 128.0) / 128.0
    elif array.dtype in _INT_SCALES:
        array = array.astype(np.float32) / _INT_SCALES[array.dtype]
    elif not np.issubdtype(array.dtype, np.floating):
        raise AudioInputError(f"Audio arrays must hold numbers; got dtype {array.dtype}.")
    array = array.astype(np.float32, copy=False)
    if array.ndim == 1:
        return array[None]
    if array.ndim == 2:
        # Channels are the short axis: (samples, channels) arrays as soundfile returns them are accepted too.
        return array if array.shape[0] <= array.shape[1] else array.T
    raise AudioInputError(f"Audio arrays must be 1-D or (channels, samples); got shape {tuple(array.shape)}.")


def _raw_audio(item: Any, sampling_rate: int | None) -> tuple[np.ndarray, int]:
    """(channels-first float array, rate) of one input of any supported kind, before checks."""
    if isinstance(item, (str, Path)):
        return _decode_file(item)
    if hasattr(item, "get_all_samples"):  # a torchcodec AudioDecoder, as datasets >= 4 yields
        samples = item.get_all_samples()
        return samples.data.numpy(), int(samples.sample_rate)
    if isinstance(item, dict):
        if item.get("array") is not None:
            return _as_channels_first(item["array"]), item.get("sampling_rate", sampling_rate)
        if item.get("bytes"):
            return _decode_file(item["bytes"])
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


def load_audio(
    item: Any, sampling_rate: int | None = None, target_rate: int = 16000, min_samples: int = 400
) -> np.ndarray:
    """One input as a checked mono float32 waveform at `target_rate`.

    Channels are averaged (down-mix), other rates resampled. Raises `AudioInputError` for empty audio,
    audio shorter than `min_samples` after resampling (one analysis frame), NaN/inf samples, and rates
    outside 4 kHz … 384 kHz. Digital silence is valid: it is encoded like any audio.
    """
    data, rate = _raw_audio(item, sampling_rate)
    if rate is None or not float(rate).is_integer() or not MIN_SAMPLING_RATE <= int(rate) <= MAX_SAMPLING_RATE:
        raise AudioInputError(
            f"Unsupported sampling rate {rate!r}: give an integer rate between {MIN_SAMPLING_RATE} and "
            f"{MAX_SAMPLING_RATE} Hz (the audio is resampled to {target_rate} Hz)."
        )
    if data.size == 0:
        raise AudioInputError("The audio is empty (0 samples).")
    if not np.isfinite(data).all():
        raise AudioInputError("The audio contains NaN or infinite samples: clean or drop this item.")
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=0, dtype=np.float32)))
    if int(rate) != target_rate:
        import torchaudio

        wave = torchaudio.functional.resample(wave, int(rate), target_rate)
    if wave.numel() < min_samples:
        raise AudioInputError(
            f"The audio is too short: {wave.numel()} samples at {target_rate} Hz, fewer than one frame "
            f"({min_samples} samples = {1000 * min_samples / target_rate:.0f} ms)."
        )
    return wave.numpy()


__all__ = ["AudioInputError", "load_audio"]
