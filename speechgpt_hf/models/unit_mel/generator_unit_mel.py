"""Running transformers' `SpeechT5HifiGan` on padded batches, and how far each output sample looks.

`SpeechT5HifiGan.forward` convolves padding into the last real samples of shorter rows. `masked_hifigan` runs the
same modules in the same order but zeroes every padded step after every convolution, so each row of a padded batch
equals that row alone (a row alone is what `forward` computes: with no lengths the two are the same function).
`hifigan_context` bounds the mel frames on each side that one output sample depends on, which streaming uses.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from .inputs_unit_mel import lengths_to_mask


def _masked(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return hidden if mask is None else hidden * mask[:, None, :].to(hidden.dtype)


def _residual_block(block: Any, hidden: torch.Tensor, mask: torch.Tensor | None, slope: float) -> torch.Tensor:
    """`HifiGanResidualBlock.forward` with the padded steps zeroed after each convolution."""
    for conv1, conv2 in zip(block.convs1, block.convs2, strict=True):
        update = _masked(conv1(F.leaky_relu(hidden, slope)), mask)
        hidden = hidden + _masked(conv2(F.leaky_relu(update, slope)), mask)
    return hidden


def masked_hifigan(generator: Any, mel: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Log-mel `[B, frames, bins]` -> waveform `[B, frames * hop]`, zero after each row's `frame_lengths * hop`."""
    config = generator.config
    if config.normalize_before:
        mel = (mel - generator.mean) / generator.scale
    mask = None if frame_lengths is None else lengths_to_mask(frame_lengths, mel.shape[1])
    hidden = _masked(generator.conv_pre(_masked(mel.transpose(1, 2), mask)), mask)
    lengths, kernels = frame_lengths, len(config.resblock_kernel_sizes)
    for i, (upsampler, rate) in enumerate(zip(generator.upsampler, config.upsample_rates, strict=True)):
        hidden = upsampler(F.leaky_relu(hidden, config.leaky_relu_slope))
        if lengths is not None:
            lengths = lengths * rate
            mask = lengths_to_mask(lengths, hidden.shape[-1])
            hidden = _masked(hidden, mask)
        blocks = generator.resblocks[i * kernels : (i + 1) * kernels]
        summed = _residual_block(blocks[0], hidden, mask, config.leaky_relu_slope)
        for block in blocks[1:]:
            summed = summed + _residual_block(block, hidden, mask, config.leaky_relu_slope)
        hidden = summed / kernels
    # As in SpeechT5HifiGan (and the original), the last activation uses PyTorch's default slope.
    waveform = torch.tanh(generator.conv_post(F.leaky_relu(hidden))).squeeze(1)
    return _masked(waveform[:, None], mask)[:, 0]


def hifigan_context(config: Any) -> int:
    """Mel frames on each side that one output sample depends on (rounded up, plus a frame of margin)."""
    total, resolution = 3.0, 1  # conv_pre, kernel 7
    for rate, kernel in zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True):
        total += (kernel / rate + 1) / resolution
        resolution *= rate
        block = max(
            sum((k - 1) * d // 2 + (k - 1) // 2 for d in dilations)
            for k, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True)
        )
        total += block / resolution
    total += 3 / resolution  # conv_post, kernel 7
    return math.ceil(total) + 1


__all__ = ["hifigan_context", "masked_hifigan"]
