"""UnitMelVocoder: discrete speech units (and a speaker) -> log-mel frames -> a frozen pretrained mel HiFi-GAN.

A unit HiFi-GAN trained from scratch needs ~10^5 GPU steps before it speaks clearly; a pretrained mel generator
already speaks, so only the unit -> mel map has to be learnt, a regression that a CPU fits in minutes. Merged units
are expanded by their durations (known, or predicted), every mel frame (22,050 / 256 = 86.13 a second) takes the
unit frame (50 a second) under its centre, and residual dilated convolutions predict the frame as a correction to
that unit's mean mel (`unit_mel`, set from training data before any training: `set_unit_mels`). The generator is
transformers' `SpeechT5HifiGan`, saved with the model and never trained. Batches are masked after every
convolution, so a padded batch gives the same audio as one-by-one synthesis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel, SpeechT5HifiGan
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_unit_mel import UnitMelConfig
from .generator_unit_mel import hifigan_context, masked_hifigan
from .inputs_unit_mel import batch_inputs, check_speakers, check_units, lengths_to_mask

if TYPE_CHECKING:
    from .streaming_unit_mel import UnitMelStreamer

QUIET_LOG_MEL = -6.0  # the initial mean mel of a unit no training data has set (quiet, well above the 1e-5 floor)
NUM_POSITION_FEATURES = 2  # where a frame sits inside its unit's run, and log of the run's length


def _masked(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zeroes the padded steps of `hidden` `[B, C, T]` (a no-op without a mask)."""
    return hidden if mask is None else hidden * mask[:, None, :].to(hidden.dtype)


class UnitMelDurationPredictor(nn.Module):
    """log(d + 1) of each merged unit's run length d from its (speaker-conditioned) embedding: two convolutions,
    each followed by ReLU, LayerNorm and dropout, then a linear read-out (FastSpeech's variance predictor)."""

    def __init__(self, config: UnitMelConfig) -> None:
        super().__init__()
        hidden, kernel = config.duration_predictor_hidden_dim, config.duration_predictor_kernel_size
        self.convs = nn.ModuleList(
            nn.Conv1d(width, hidden, kernel, padding=kernel // 2) for width in (config.unit_embed_dim, hidden)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in self.convs)
        self.dropout = nn.Dropout(config.duration_predictor_dropout)
        self.proj = nn.Linear(hidden, 1)

    @property
    def context(self) -> int:
        """Units on each side that one unit's prediction depends on."""
        return sum(conv.kernel_size[0] // 2 for conv in self.convs)

    def forward(self, unit_embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`unit_embeds` `[B, T, E]` -> log(d + 1) `[B, T]`."""
        hidden = unit_embeds.transpose(1, 2)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            hidden = self.dropout(norm(F.relu(conv(_masked(hidden, mask))).transpose(1, 2))).transpose(1, 2)
        return self.proj(hidden.transpose(1, 2)).squeeze(-1)


class UnitMelBlock(nn.Module):
    """Pre-norm residual block: LayerNorm, a dilated convolution, GELU, dropout, a 1x1 convolution."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.conv = nn.Conv1d(
            channels, channels, kernel_size, dilation=dilation, padding=(kernel_size - 1) * dilation // 2
        )
        self.proj = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)

    @property
    def context(self) -> int:
        return (self.conv.kernel_size[0] - 1) * self.conv.dilation[0] // 2

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        update = _masked(self.norm(hidden.transpose(1, 2)).transpose(1, 2), mask)
        update = self.dropout(F.gelu(self.conv(update)))
        return hidden + _masked(self.proj(update), mask)


class UnitMelNetwork(nn.Module):
    """Frame features `[B, M, E + 2]` -> a log-mel correction `[B, M, bins]` (zero at initialisation)."""

    def __init__(self, config: UnitMelConfig) -> None:
        super().__init__()
        self.input_proj = nn.Linear(config.unit_embed_dim + NUM_POSITION_FEATURES, config.hidden_dim)
        self.blocks = nn.ModuleList(
            UnitMelBlock(config.hidden_dim, config.kernel_size, d, config.dropout) for d in config.dilations
        )
        self.norm = nn.LayerNorm(config.hidden_dim)
        self.output_proj = nn.Linear(config.hidden_dim, config.num_mel_bins)

    @property
    def context(self) -> int:
        """Mel frames on each side that one prediction depends on."""
        return sum(block.context for block in self.blocks)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = _masked(self.input_proj(features).transpose(1, 2), mask)
        for block in self.blocks:
            hidden = block(hidden, mask)
        return self.output_proj(self.norm(hidden.transpose(1, 2)))


@dataclass
class UnitMelOutput(ModelOutput):
    """Waveforms `[B, S]` (zero after each row's length) and their lengths in samples, the durations used `[B, T]`
    (0 at padding), the predictor's log(d + 1) when it ran, and the predicted log-mel `[B, M, bins]` with its
    frame counts."""

    waveform: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    durations: torch.Tensor | None = None
    log_durations: torch.Tensor | None = None
    mel: torch.Tensor | None = None
    mel_lengths: torch.Tensor | None = None


class UnitMelPreTrainedModel(PreTrainedModel):
    """Base class: config class and weight initialisation (the generator initialises itself, then loads weights)."""

    config_class = UnitMelConfig
    base_model_prefix = "vocoder"
    main_input_name = "input_ids"
    _no_split_modules: list[str] = []

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Convolutions get std 1/sqrt(fan-in); the mel network's read-out starts at zero and the unit mels at a
        quiet constant, so an untrained model predicts exactly each unit's mean mel (once `set_unit_mels` ran).
        Parameter-holding modules are matched by identity: composite modules are skipped by transformers."""
        network = getattr(self, "mel_network", None)
        if isinstance(module, nn.Conv1d):
            init.normal_(module.weight, mean=0.0, std=(module.in_channels * module.kernel_size[0]) ** -0.5)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            std = 0.0 if network is not None and module is network.output_proj else 0.02
            init.normal_(module.weight, mean=0.0, std=std)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) and module is getattr(self, "unit_mel", None):
            init.constant_(module.weight, QUIET_LOG_MEL)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class UnitMelVocoder(UnitMelPreTrainedModel):
    """Unit-to-mel vocoder: `input_ids` (unit ids, `[B, T]`) -> waveforms at `config.sampling_rate`.

    Durations come from, in order: the `durations` argument (run lengths, e.g. from a SpeechUnitTokenizer), the
    duration predictor (when the config has one), or one frame per unit (frame-level, unmerged units). The same
    public surface as [`UnitHiFiGANVocoder`]: `synthesize`, `streamer`, `config.sampling_rate`/`num_units`.
    """

    def __init__(self, config: UnitMelConfig) -> None:
        super().__init__(config)
        self.unit_embedding = nn.Embedding(config.num_units, config.unit_embed_dim)
        self.speaker_embedding = (
            nn.Embedding(config.num_speakers, config.unit_embed_dim) if config.num_speakers > 0 else None
        )
        self.duration_predictor = UnitMelDurationPredictor(config) if config.use_duration_predictor else None
        self.unit_mel = nn.Embedding(config.num_units, config.num_mel_bins)
        self.mel_network = UnitMelNetwork(config)
        self.generator = SpeechT5HifiGan(config.generator_config)
        self.post_init()
        self.freeze_generator()

    # ---- setting up ---------------------------------------------------------------------------------------------
    def freeze_generator(self) -> None:
        """Keeps the pretrained generator out of training (`from_pretrained` loads every weight as trainable)."""
        self.generator.requires_grad_(False)

    def load_generator(self, generator: SpeechT5HifiGan) -> None:
        """Copies a pretrained mel HiFi-GAN's weights into this vocoder's (frozen) generator."""
        self.generator.load_state_dict(generator.state_dict(), strict=True)

    @torch.no_grad()
    def set_unit_mels(self, means: torch.Tensor, seen: torch.Tensor | None = None) -> None:
        """Sets each unit's mean log-mel frame `[K, bins]` (rows where `seen` is False keep their value)."""
        if means.shape != self.unit_mel.weight.shape:
            raise ValueError(f"Unit mels must be shaped {tuple(self.unit_mel.weight.shape)}, got {tuple(means.shape)}.")
        rows = slice(None) if seen is None else seen.to(self.device)
        self.unit_mel.weight[rows] = means.to(self.unit_mel.weight)[rows]

    # ---- building blocks ----------------------------------------------------------------------------------------
    def unit_embeds(self, input_ids: torch.Tensor, speaker_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Unit embeddings `[B, T, E]`, plus the speaker's embedding in a multi-speaker vocoder."""
        embeds = self.unit_embedding(input_ids)
        if self.speaker_embedding is not None:
            embeds = embeds + self.speaker_embedding(speaker_ids)[:, None, :]
        return embeds

    def predict_durations(
        self, input_ids: torch.Tensor, mask: torch.Tensor | None = None, speaker_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run length in unit frames of each unit (>= 1; 0 at padding) and the raw log(d + 1) predictions."""
        safe_ids = input_ids if mask is None else input_ids.masked_fill(~mask, 0)
        log_durations = self.duration_predictor(self.unit_embeds(safe_ids, speaker_ids), mask)
        durations = torch.clamp(torch.round(torch.exp(log_durations.float()) - 1).long(), min=1)
        return (durations if mask is None else durations.masked_fill(~mask, 0)), log_durations

    def duration_loss(
        self,
        input_ids: torch.Tensor,
        durations: torch.Tensor,
        attention_mask: torch.Tensor,
        speaker_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean squared error between predicted and true log(d + 1), over real units."""
        mask = attention_mask.bool()
        _, log_pred = self.predict_durations(input_ids, mask, speaker_ids)
        return ((log_pred.float() - torch.log(durations.float() + 1)) ** 2)[mask].mean()

    @staticmethod
    def expand_units(
        input_ids: torch.Tensor, durations: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unit frames: ids `[B, F]` (0-padded), position features `[B, F, 2]` ((j + 0.5) / d and log d for the
        j-th frame of a run of d) and frame counts `[B]`."""
        flat = durations.flatten()
        frame_lengths = durations.sum(-1)
        ids = torch.repeat_interleave(input_ids.flatten(), flat)
        runs = torch.repeat_interleave(flat, flat)
        starts = torch.repeat_interleave(torch.cumsum(flat, 0) - flat, flat)
        offsets = torch.arange(len(ids), device=ids.device) - starts
        position = torch.stack([(offsets + 0.5) / runs, torch.log(runs.float())], -1)
        sizes = frame_lengths.tolist()
        pad = nn.utils.rnn.pad_sequence
        return (
            pad(list(torch.split(ids, sizes)), batch_first=True),
            pad(list(torch.split(position, sizes)), batch_first=True),
            frame_lengths,
        )

    def mel_from_frames(
        self,
        frame_ids: torch.Tensor,
        positions: torch.Tensor,
        index: torch.Tensor,
        mel_lengths: torch.Tensor | None = None,
        speaker_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Log-mel `[B, M, bins]` of the mel frames whose unit frames are `index` `[B, M]` (into `frame_ids`)."""
        ids = frame_ids.gather(1, index)
        features = torch.cat(
            [self.unit_embeds(ids, speaker_ids), positions.gather(1, index[..., None].expand(-1, -1, 2))], -1
        )
        mask = None if mel_lengths is None else lengths_to_mask(mel_lengths, index.shape[1])
        return self.unit_mel(ids) + self.mel_network(features, mask)

    def predict_mel(
        self, input_ids: torch.Tensor, durations: torch.Tensor, speaker_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel `[B, M, bins]` of units with known durations (0 at padding), and each row's mel frame count."""
        frame_ids, positions, frame_lengths = self.expand_units(input_ids, durations)
        mel_lengths = self.config.num_mel_frames(frame_lengths)
        mel_index = torch.arange(int(mel_lengths.max()), device=input_ids.device)[None, :]
        index = torch.minimum(self.config.unit_frame_of_mel(mel_index), (frame_lengths - 1).clamp(min=0)[:, None])
        padded = bool((mel_lengths < index.shape[1]).any())
        mel = self.mel_from_frames(frame_ids, positions, index, mel_lengths if padded else None, speaker_ids)
        return mel, mel_lengths

    def vocode(self, mel: torch.Tensor, mel_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mel `[B, M, bins]` -> generator audio `[B, M · hop]` at `config.mel_sampling_rate` (masked)."""
        padded = mel_lengths is not None and bool((mel_lengths < mel.shape[1]).any())
        return masked_hifigan(self.generator, mel.to(self.generator.dtype), mel_lengths if padded else None)

    def resample(self, waveform: torch.Tensor) -> torch.Tensor:
        """Generator audio -> `config.sampling_rate` (a no-op when the rates agree)."""
        if self.config.sampling_rate == self.config.mel_sampling_rate:
            return waveform
        import torchaudio

        return torchaudio.functional.resample(waveform, self.config.mel_sampling_rate, self.config.sampling_rate)

    def receptive_context(self) -> int:
        """Unit frames on each side that one output sample depends on (mel network + generator + resampling)."""
        mel_frames = self.mel_network.context + hifigan_context(self.config.generator_config) + 2
        return math.ceil(mel_frames * self.config.mel_hop_length / self.config.generator_hop_length) + 2

    # ---- synthesis ----------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        speaker_ids: torch.Tensor | None = None,
        durations: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> UnitMelOutput | tuple[torch.Tensor, ...]:
        """Synthesises a padded batch of unit sequences.

        Args:
            input_ids: unit ids `[B, T]` in `0 … K-1` (any value at padded positions).
            attention_mask: 1 for real units, 0 for padding `[B, T]`; all ones when omitted.
            speaker_ids: one speaker id a row `[B]` (multi-speaker vocoders only).
            durations: unit frames per unit `[B, T]` (>= 1); predicted (or all 1 without a predictor) when omitted.
        """
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        check_units(input_ids, mask, durations, self.config.num_units)
        check_speakers(speaker_ids, input_ids.shape[0], self.config.num_speakers)
        log_durations = None
        if durations is None and self.duration_predictor is not None:
            durations, log_durations = self.predict_durations(input_ids, mask, speaker_ids)
        elif durations is None:
            durations = mask.long()
        durations = durations.long().masked_fill(~mask, 0)
        mel, mel_lengths = self.predict_mel(input_ids.masked_fill(~mask, 0), durations, speaker_ids)
        lengths = durations.sum(-1) * self.config.hop_length
        waveform = self.resample(self.vocode(mel, mel_lengths))[:, : int(lengths.max())]
        waveform = waveform * lengths_to_mask(lengths, waveform.shape[1]).to(waveform.dtype)
        output = UnitMelOutput(waveform, lengths, durations, log_durations, mel, mel_lengths)
        return output if return_dict is not False else output.to_tuple()

    @torch.inference_mode()
    def synthesize(
        self,
        units: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor | Any,
        speaker_id: int | Sequence[int] | None = None,
        durations: Sequence[int] | Sequence[Sequence[int]] | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Units (one list, a list of lists, or an object with `.units`/`.durations` such as a UnitSequence)
        -> 1-D float32 waveform(s) at `config.sampling_rate` on the CPU; a list in gives a list out."""
        single, ids, mask, frames, speakers = batch_inputs(units, durations, speaker_id, self.device)
        out = self(ids, attention_mask=mask, speaker_ids=speakers, durations=frames)
        waves = [w[:n].float().cpu() for w, n in zip(out.waveform, out.lengths.tolist(), strict=True)]
        return waves[0] if single else waves

    def streamer(self, speaker_id: int | None = None, chunk_frames: int = 50) -> UnitMelStreamer:
        """A [`UnitMelStreamer`]: push units as they arrive, get waveform chunks equal to one-shot synthesis."""
        from .streaming_unit_mel import UnitMelStreamer

        return UnitMelStreamer(self, speaker_id=speaker_id, chunk_frames=chunk_frames)


__all__ = [
    "UnitMelDurationPredictor",
    "UnitMelBlock",
    "UnitMelNetwork",
    "UnitMelOutput",
    "UnitMelPreTrainedModel",
    "UnitMelVocoder",
]
