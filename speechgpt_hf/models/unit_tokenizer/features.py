"""Feature front ends of the unit tokenizer: weight-free MFCC and exact batched passes through a speech encoder.

The MFCC front end computes HuBERT's first-iteration features (13 Kaldi MFCCs + deltas + delta-deltas)
with a 25 ms window and a 20 ms hop, so it yields exactly the encoder's ⌊(N−400)/320⌋+1 frames.
The HuBERT-style encoder pass runs the convolutional front end item by item (its first GroupNorm spans the
whole utterance) and the transformer on a padded, masked batch, so batched features equal one-at-a-time ones.
The Whisper pass pads every item to the encoder's 30-s window, as Whisper was trained, so no mask is needed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import WhisperFeatureExtractor


def mfcc_features(
    wave: torch.Tensor, sampling_rate: int, num_mfcc: int, frame_length: int, frame_hop: int
) -> torch.Tensor:
    """[frames, 3·num_mfcc] MFCC + delta + delta-delta features of a 1-D waveform in [-1, 1]."""
    import torchaudio

    mfcc = torchaudio.compliance.kaldi.mfcc(
        wave.float().unsqueeze(0),
        sample_frequency=sampling_rate,
        frame_length=1000.0 * frame_length / sampling_rate,
        frame_shift=1000.0 * frame_hop / sampling_rate,
        num_ceps=num_mfcc,
        use_energy=False,
        dither=0.0,
    ).T
    deltas = torchaudio.functional.compute_deltas(mfcc)
    return torch.cat([mfcc, deltas, torchaudio.functional.compute_deltas(deltas)], dim=0).T.contiguous()


def conv_features(feature_extractor: nn.Module, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The convolutional feature encoder run item by item on each valid slice, padded to [B, T, C].

    Item by item because its first layer normalises each channel over the whole utterance (GroupNorm):
    run on a padded batch, padding would shift those statistics. It is as fast per item as batched.
    """
    per_item = [
        feature_extractor(wave[None, :length])[0].transpose(0, 1)
        for wave, length in zip(waves, lengths.tolist(), strict=True)
    ]
    return nn.utils.rnn.pad_sequence(per_item, batch_first=True)


def encoder_features(
    encoder: nn.Module, waves: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Last hidden state of a (truncated) HuBERT/Wav2Vec2/WavLM-style model for a padded batch of waveforms.

    Returns ([B, T, D] features, [B] valid frame counts); frames past an item's count are padding.
    """
    extracted = conv_features(encoder.feature_extractor, waves, lengths)
    frames = encoder._get_feat_extract_output_lengths(lengths)
    projected = encoder.feature_projection(extracted)
    if isinstance(projected, tuple):  # Wav2Vec2/WavLM also return the normalised pre-projection features
        projected = projected[0]
    frame_mask = torch.arange(projected.shape[1], device=waves.device)[None] < frames[:, None]
    if bool(frame_mask.all()):
        output = encoder.encoder(projected)
    else:
        output = encoder.encoder(projected, attention_mask=frame_mask)
    return output[0], frames


@lru_cache(maxsize=4)
def _whisper_extractor(num_mel_bins: int) -> WhisperFeatureExtractor:
    """transformers' Whisper feature extractor, the definition of the log-mel features (filters, FFT, hop)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=num_mel_bins)


def whisper_log_mel(waves: torch.Tensor, lengths: torch.Tensor, num_mel_bins: int, window_samples: int) -> torch.Tensor:
    """[B, num_mel_bins, window_samples // 160] Whisper log-mel of a padded batch [B, N] of 16 kHz waveforms.

    As `WhisperFeatureExtractor` computes them with its default `padding="max_length"`: each item is
    zero-padded (silence) to the 30-s window, so its mel past the audio sits at the floor of 8 log10 units
    under the item's peak. Computed in float32 on the waveforms' device, autocast or not.
    """
    if waves.shape[1] > window_samples:
        raise ValueError(
            f"A Whisper encoder reads at most {window_samples} samples at once, got {waves.shape[1]}: "
            "use `encode`, which cuts longer audio into independent chunks."
        )
    extractor = _whisper_extractor(num_mel_bins)
    with torch.autocast(waves.device.type, enabled=False):
        valid = torch.arange(waves.shape[1], device=waves.device)[None] < lengths[:, None]
        padded = nn.functional.pad(waves.float() * valid, (0, window_samples - waves.shape[1]))
        window = torch.hann_window(extractor.n_fft, device=waves.device)
        spectrum = torch.stft(padded, extractor.n_fft, extractor.hop_length, window=window, return_complex=True)
        power = spectrum[..., :-1].abs().pow(2)
        filters = torch.from_numpy(extractor.mel_filters).to(waves.device, torch.float32)
        log_mel = (filters.T @ power).clamp(min=1e-10).log10()
        log_mel = torch.maximum(log_mel, log_mel.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (log_mel + 4.0) / 4.0


def whisper_encoder_features(
    encoder: nn.Module, waves: torch.Tensor, lengths: torch.Tensor, window_samples: int, frame_hop: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Last hidden state of a (truncated) `WhisperEncoder` for a padded batch of waveforms of at most one window.

    One encoder call on the batch of 30-s log-mels (1500 frames each), cropped to ⌊N / frame_hop⌋ frames an item.
    Returns ([B, T, D] features, [B] valid frame counts); frames past an item's count are padding.
    """
    mel = whisper_log_mel(waves, lengths, encoder.config.num_mel_bins, window_samples)
    frames = lengths // frame_hop
    hidden = encoder(mel.to(encoder.conv1.weight.dtype)).last_hidden_state
    return hidden[:, : int(frames.max())], frames


__all__ = ["conv_features", "encoder_features", "mfcc_features", "whisper_encoder_features", "whisper_log_mel"]
