"""Feature front ends of the unit tokenizer: weight-free MFCC and an exact batched pass through a speech encoder.

The MFCC front end computes HuBERT's first-iteration features (13 Kaldi MFCCs + deltas + delta-deltas)
with a 25 ms window and a 20 ms hop, so it yields exactly the encoder's ⌊(N−400)/320⌋+1 frames.
The encoder pass pads a length-sorted batch and masks the one place padding would leak in (the
group norm over time after the first convolution), so batched features equal one-at-a-time features.
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


def _masked_group_norm(norm: nn.GroupNorm, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per-channel GroupNorm over the valid time steps of each item only ([B, C, T], one group a channel).

    Statistics come from each item's valid slice; normalisation and affine are folded into one scale and
    shift per (item, channel), so the big activation is read twice and written once.
    """
    if norm.num_groups != norm.num_channels:
        raise ValueError("Batched encoding supports GroupNorm with one group a channel (as HuBERT/Wav2Vec2 use).")
    stats = [torch.var_mean(hidden[row, :, : int(n)], dim=-1, correction=0) for row, n in enumerate(lengths.tolist())]
    variance = torch.stack([v for v, _ in stats]).unsqueeze(-1)
    mean = torch.stack([m for _, m in stats]).unsqueeze(-1)
    scale = torch.rsqrt(variance + norm.eps) * norm.weight.view(1, -1, 1)
    return torch.addcmul(norm.bias.view(1, -1, 1) - mean * scale, hidden, scale)


def _conv_output_lengths(conv: nn.Conv1d, lengths: torch.Tensor) -> torch.Tensor:
    return torch.div(lengths - conv.kernel_size[0], conv.stride[0], rounding_mode="floor") + 1


def conv_features(
    feature_extractor: nn.Module, waves: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The convolutional feature encoder on a padded batch [B, N]: ([B, T, C] features, [B] frame counts)."""
    hidden = waves[:, None]
    for layer in feature_extractor.conv_layers:
        hidden = layer.conv(hidden)
        lengths = _conv_output_lengths(layer.conv, lengths)
        norm = getattr(layer, "layer_norm", None)
        if isinstance(norm, nn.GroupNorm):
            hidden = _masked_group_norm(norm, hidden, lengths)
        elif norm is not None:  # LayerNorm over channels, per frame: padding cannot leak
            hidden = norm(hidden.transpose(-2, -1)).transpose(-2, -1)
        hidden = layer.activation(hidden)
    return hidden.transpose(1, 2), lengths


def encoder_features(
    encoder: nn.Module, waves: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Last hidden state of a (truncated) HuBERT/Wav2Vec2/WavLM-style model for a padded batch of waveforms.

    Returns ([B, T, D] features, [B] valid frame counts); frames past an item's count are padding.
    """
    extracted, frames = conv_features(encoder.feature_extractor, waves, lengths)
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
