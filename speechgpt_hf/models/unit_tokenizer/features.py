"""Feature front ends of the unit tokenizer: weight-free MFCC and an exact batched pass through a speech encoder.

The MFCC front end computes HuBERT's first-iteration features (13 Kaldi MFCCs + deltas + delta-deltas)
with a 25 ms window and a 20 ms hop, so it yields exactly the encoder's ⌊(N−400)/320⌋+1 frames.
The encoder pass runs the convolutional front end item by item (its first GroupNorm spans the whole
utterance) and the transformer on a padded, masked batch, so batched features equal one-at-a-time ones.
"""

from __future__ import annotations

import torch
from torch import nn


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


__all__ = ["conv_features", "encoder_features", "mfcc_features"]
