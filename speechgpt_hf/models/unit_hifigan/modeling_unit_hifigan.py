"""UnitHiFiGANVocoder: discrete speech units (and a speaker) back to a 16 kHz waveform.

A unit HiFi-GAN (Polyak et al., 2021) as SpeechGPT uses it: a unit embedding table, an optional speaker embedding
concatenated to every frame, an optional duration predictor that expands merged units back to 20 ms frames, and a
HiFi-GAN generator (transposed-convolution upsampling, multi-receptive-field residual blocks). Batches are padded
and masked after every convolution, so a padded batch gives the same waveforms as one-by-one synthesis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_unit_hifigan import UnitHiFiGANConfig

if TYPE_CHECKING:
    from .streaming_unit_hifigan import UnitHiFiGANStreamer


def lengths_to_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """Boolean mask `[B, max_length]`, True at positions before each row's length."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


def _masked(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zeroes the padded time steps of `hidden` `[B, C, T]` (a no-op without a mask)."""
    return hidden if mask is None else hidden * mask[:, None, :].to(hidden.dtype)


def _masked_(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """In-place `_masked`, for tensors the caller has just created."""
    return hidden if mask is None else hidden.mul_(mask[:, None, :].to(hidden.dtype))


class UnitDurationPredictor(nn.Module):
    """Predicts log(d + 1) of each merged unit's run length d from its embedding (two convolutions + LayerNorm)."""

    def __init__(self, config: UnitHiFiGANConfig) -> None:
        super().__init__()
        hidden, kernel = config.duration_predictor_hidden_dim, config.duration_predictor_kernel_size
        self.conv1 = nn.Conv1d(config.unit_embed_dim, hidden, kernel, padding=(kernel - 1) // 2)
        self.ln1 = nn.LayerNorm(hidden)
        self.conv2 = nn.Conv1d(hidden, hidden, kernel, padding=(kernel - 1) // 2)
        self.ln2 = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(config.duration_predictor_dropout)
        self.proj = nn.Linear(hidden, 1)

    @property
    def context(self) -> int:
        """Units on each side that one unit's prediction depends on."""
        return 2 * ((self.conv1.kernel_size[0] - 1) // 2)

    def forward(self, unit_embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`unit_embeds` `[B, T, E]` -> log(d + 1) `[B, T]`."""
        hidden = _masked(unit_embeds.transpose(1, 2), mask)
        hidden = self.dropout(self.ln1(F.relu(self.conv1(hidden)).transpose(1, 2)))
        hidden = _masked(hidden.transpose(1, 2), mask)
        hidden = self.dropout(self.ln2(F.relu(self.conv2(hidden)).transpose(1, 2)))
        return self.proj(hidden).squeeze(-1)


class HiFiGANResidualBlock(nn.Module):
    """Residual stack of dilated convolutions (HiFi-GAN "type 1" block) at one resolution."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int], slope: float) -> None:
        super().__init__()
        self.slope = slope
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=(kernel_size - 1) * d // 2)
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2) for _ in dilations
        )

    @property
    def context(self) -> int:
        """Time steps on each side that one output step depends on."""
        kernel = self.convs2[0].kernel_size[0]
        return sum((kernel - 1) * conv.dilation[0] // 2 + (kernel - 1) // 2 for conv in self.convs1)

    def forward(
        self, hidden: torch.Tensor, mask: torch.Tensor | None = None, activated: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`activated` is leaky_relu(hidden) when the caller computed it already (parallel blocks share it).

        Activations, masks and residual sums run in place on freshly made tensors (autograd-safe: none of them is
        saved for backward), which saves memory traffic at the high-resolution stages."""
        for index, (conv1, conv2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            first = activated if index == 0 and activated is not None else F.leaky_relu(hidden, self.slope)
            update = F.leaky_relu_(_masked_(conv1(first), mask), self.slope)
            hidden = _masked_(conv2(update), mask).add_(hidden)
        return hidden


class HiFiGANGenerator(nn.Module):
    """Frame features `[B, C, F]` -> waveform `[B, F * hop_length]` in [-1, 1]."""

    def __init__(self, config: UnitHiFiGANConfig) -> None:
        super().__init__()
        channels = config.upsample_initial_channel
        self.slope = config.leaky_relu_slope
        self.upsample_rates = list(config.upsample_rates)
        self.num_kernels = len(config.resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(config.model_in_dim, channels, 7, padding=3)
        self.upsamplers = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True)):
            in_ch, out_ch = channels // 2**i, channels // 2 ** (i + 1)
            self.upsamplers.append(nn.ConvTranspose1d(in_ch, out_ch, kernel, stride=rate, padding=(kernel - rate) // 2))
            for res_kernel, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True):
                self.resblocks.append(HiFiGANResidualBlock(out_ch, res_kernel, dilations, self.slope))
        self.conv_post = nn.Conv1d(channels // 2 ** len(self.upsamplers), 1, 7, padding=3)

    def receptive_context(self) -> int:
        """Unit frames on each side that one output frame depends on (rounded up, plus one frame of margin)."""
        total, resolution = 3.0, 1
        for i, upsampler in enumerate(self.upsamplers):
            kernel, stride = upsampler.kernel_size[0], upsampler.stride[0]
            total += (kernel / stride + 1) / resolution
            resolution *= stride
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            total += max(block.context for block in blocks) / resolution
        total += 3 / resolution
        return int(total) + 2

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        mask = None if frame_lengths is None else lengths_to_mask(frame_lengths, features.shape[-1])
        hidden = _masked_(self.conv_pre(_masked(features, mask)), mask)
        lengths = frame_lengths
        for i, (upsampler, rate) in enumerate(zip(self.upsamplers, self.upsample_rates, strict=True)):
            hidden = upsampler(F.leaky_relu_(hidden, self.slope))
            if lengths is not None:
                lengths = lengths * rate
                mask = lengths_to_mask(lengths, hidden.shape[-1])
                hidden = _masked_(hidden, mask)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            activated = F.leaky_relu(hidden, self.slope)
            summed = blocks[0](hidden, mask, activated)
            for block in blocks[1:]:
                summed = summed.add_(block(hidden, mask, activated))
            hidden = summed.mul_(1.0 / self.num_kernels)
        # The original applies the final activation with PyTorch's default slope (0.01), not `self.slope`.
        waveform = torch.tanh_(self.conv_post(F.leaky_relu_(hidden))).squeeze(1)
        return waveform if mask is None else waveform * mask.to(waveform.dtype)


@dataclass
class UnitHiFiGANOutput(ModelOutput):
    """Waveforms `[B, S]` (zero after each row's length), their lengths in samples, the durations used to expand
    the units to frames `[B, T]` (0 at padding) and, when the predictor ran, its log(d + 1) predictions."""

    waveform: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    durations: torch.Tensor | None = None
    log_durations: torch.Tensor | None = None


class UnitHiFiGANPreTrainedModel(PreTrainedModel):
    """Base class: config class, weight initialisation and weight-norm handling for the unit vocoder."""

    config_class = UnitHiFiGANConfig
    base_model_prefix = "vocoder"
    main_input_name = "input_ids"
    _no_split_modules: list[str] = []

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Convolutions get std 1/sqrt(fan-in) rather than HiFi-GAN's fixed 0.01: with 0.01 a narrow generator
        starts out writing ~1e-6 amplitudes, below the log-mel loss's 1e-5 floor, where that loss has no gradient."""
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
            fan_in = module.in_channels // module.groups * module.kernel_size[0]
            if isinstance(module, nn.ConvTranspose1d):
                fan_in = module.in_channels * module.kernel_size[0] // module.stride[0]
            init.normal_(module.weight, mean=0.0, std=fan_in**-0.5)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=0.02)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class UnitHiFiGANVocoder(UnitHiFiGANPreTrainedModel):
    """Unit HiFi-GAN vocoder: `input_ids` (unit ids, `[B, T]`) -> waveforms at `config.sampling_rate`.

    Durations come from, in order: the `durations` argument (run lengths, e.g. from a SpeechUnitTokenizer), the
    duration predictor (when the config has one), or one frame per unit (frame-level, unmerged units).
    """

    def __init__(self, config: UnitHiFiGANConfig) -> None:
        super().__init__(config)
        self.unit_embedding = nn.Embedding(config.num_units, config.unit_embed_dim)
        self.speaker_embedding = (
            nn.Embedding(config.num_speakers, config.speaker_embed_dim) if config.num_speakers > 0 else None
        )
        self.duration_predictor = UnitDurationPredictor(config) if config.use_duration_predictor else None
        self.generator = HiFiGANGenerator(config)
        self.post_init()

    # ---- input checks -------------------------------------------------------------------------------------------
    def _check_inputs(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        speaker_ids: torch.Tensor | None,
        durations: torch.Tensor | None,
    ) -> None:
        """Raises a ValueError/TypeError naming the first problem in a batch, before any synthesis starts."""
        if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
            raise TypeError(f"Unit ids must be an integer tensor, got dtype {input_ids.dtype}; pass torch.long ids.")
        if input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must be [batch, units], got shape {tuple(input_ids.shape)}.")
        empty = (mask.sum(-1) == 0).nonzero().flatten().tolist()
        if input_ids.shape[0] == 0 or empty:
            raise ValueError(
                f"Empty unit sequence(s) at batch index {empty or [0]}: every row needs at least one unit."
            )
        bad = mask & ((input_ids < 0) | (input_ids >= self.config.num_units))
        if bad.any():
            row, col = bad.nonzero()[0].tolist()
            raise ValueError(
                f"Unit id {int(input_ids[row, col])} at batch index {row}, position {col} is outside 0..{self.config.num_units - 1} "
                f"(this vocoder has K={self.config.num_units} units); map or drop it before synthesis."
            )
        self._check_speakers(speaker_ids, input_ids.shape[0])
        if durations is not None:
            if durations.is_floating_point() or durations.shape != input_ids.shape:
                raise TypeError(
                    f"`durations` must be an integer tensor shaped like `input_ids` {tuple(input_ids.shape)}."
                )
            short = mask & (durations < 1)
            if short.any():
                row, col = short.nonzero()[0].tolist()
                raise ValueError(
                    f"Duration {int(durations[row, col])} at batch index {row}, position {col}: every unit lasts at "
                    "least one frame (drop units with zero duration)."
                )

    def _check_speakers(self, speaker_ids: torch.Tensor | None, batch_size: int) -> None:
        num_speakers = self.config.num_speakers
        if num_speakers == 0:
            if speaker_ids is not None:
                raise ValueError("This vocoder has a single voice (num_speakers=0): do not pass `speaker_ids`.")
            return
        if speaker_ids is None:
            raise ValueError(f"This vocoder has {num_speakers} speakers: pass `speaker_ids` (0..{num_speakers - 1}).")
        if speaker_ids.is_floating_point() or speaker_ids.shape != (batch_size,):
            raise TypeError(f"`speaker_ids` must be integer ids, one per batch row ({batch_size}).")
        bad = ((speaker_ids < 0) | (speaker_ids >= num_speakers)).nonzero().flatten().tolist()
        if bad:
            raise ValueError(
                f"Speaker id {int(speaker_ids[bad[0]])} at batch index {bad[0]} is outside 0..{num_speakers - 1}."
            )

    # ---- building blocks ----------------------------------------------------------------------------------------
    def predict_durations(
        self, input_ids: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run length in frames of each unit (>= 1; 0 at padding) and the raw log(d + 1) predictions."""
        safe_ids = input_ids if mask is None else input_ids.masked_fill(~mask, 0)
        log_durations = self.duration_predictor(self.unit_embedding(safe_ids), mask)
        durations = torch.clamp(torch.round(torch.exp(log_durations.float()) - 1).long(), min=1)
        return (durations if mask is None else durations.masked_fill(~mask, 0)), log_durations

    def expand_units(self, input_ids: torch.Tensor, durations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Repeats each unit by its duration (0 at padding): frame-level ids `[B, F]` (0-padded) and frame counts."""
        frame_lengths = durations.sum(-1)
        frames = torch.repeat_interleave(input_ids.flatten(), durations.flatten())
        rows = torch.split(frames, frame_lengths.tolist())
        return nn.utils.rnn.pad_sequence(list(rows), batch_first=True), frame_lengths

    def frame_features(self, frame_ids: torch.Tensor, speaker_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Generator input `[B, C, F]`: unit embeddings, with the speaker embedding concatenated to every frame."""
        features = self.unit_embedding(frame_ids).transpose(1, 2)
        if self.speaker_embedding is not None:
            speaker = self.speaker_embedding(speaker_ids)[:, :, None].expand(-1, -1, features.shape[-1])
            features = torch.cat([features, speaker.to(features.dtype)], dim=1)
        return features

    # ---- synthesis ----------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        speaker_ids: torch.Tensor | None = None,
        durations: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> UnitHiFiGANOutput | tuple[torch.Tensor, ...]:
        """Synthesises a padded batch of unit sequences.

        Args:
            input_ids: unit ids `[B, T]` in `0 … K-1` (any value at padded positions).
            attention_mask: 1 for real units, 0 for padding `[B, T]`; all ones when omitted.
            speaker_ids: one speaker id a row `[B]` (multi-speaker vocoders only).
            durations: frames per unit `[B, T]` (>= 1); predicted (or all 1 without a predictor) when omitted.
        """
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        self._check_inputs(input_ids, mask, speaker_ids, durations)
        log_durations = None
        if durations is None and self.duration_predictor is not None:
            durations, log_durations = self.predict_durations(input_ids, mask)
        elif durations is None:
            durations = mask.long()
        durations = durations.long().masked_fill(~mask, 0)
        frame_ids, frame_lengths = self.expand_units(input_ids.masked_fill(~mask, 0), durations)
        features = self.frame_features(frame_ids, speaker_ids)
        padded = bool((frame_lengths < frame_ids.shape[1]).any())
        waveform = self.generator(features, frame_lengths if padded else None)
        output = UnitHiFiGANOutput(waveform, frame_lengths * self.config.hop_length, durations, log_durations)
        return output if return_dict is not False else output.to_tuple()

    @torch.inference_mode()
    def synthesize(
        self,
        units: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor,
        speaker_id: int | Sequence[int] | None = None,
        durations: Sequence[int] | Sequence[Sequence[int]] | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Units (one list, a list of lists, or an object with `.units`/`.durations` such as a UnitSequence)
        -> 1-D float32 waveform(s) on the CPU; a list in gives a list out."""
        single = _is_single(units)
        rows = [units] if single else list(units)
        if durations is None and all(hasattr(row, "durations") for row in rows):
            durations = [row.durations for row in rows]
        elif durations is not None and single:
            durations = [durations]
        ids, mask = _pad_rows([_as_ids(getattr(row, "units", row), "unit ids") for row in rows], self.device)
        dur = None if durations is None else _pad_rows([_as_ids(d, "durations") for d in durations], self.device)[0]
        speakers = None if speaker_id is None else torch.as_tensor(speaker_id, device=self.device)
        if speakers is not None and speakers.dim() == 0:
            speakers = speakers.expand(len(rows))
        out = self(ids, attention_mask=mask, speaker_ids=speakers, durations=dur)
        waves = [w[:n].float().cpu() for w, n in zip(out.waveform, out.lengths.tolist(), strict=True)]
        return waves[0] if single else waves

    def duration_loss(
        self, input_ids: torch.Tensor, durations: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Mean squared error between predicted log(d + 1) and the true run lengths' log(d + 1), over real units."""
        mask = attention_mask.bool()
        _, log_pred = self.predict_durations(input_ids, mask)
        target = torch.log(durations.float() + 1)
        return ((log_pred.float() - target) ** 2)[mask].mean()

    def streamer(self, speaker_id: int | None = None, chunk_frames: int = 50) -> UnitHiFiGANStreamer:
        """A [`UnitHiFiGANStreamer`]: push units as they arrive, get waveform chunks equal to one-shot synthesis."""
        from .streaming_unit_hifigan import UnitHiFiGANStreamer

        return UnitHiFiGANStreamer(self, speaker_id=speaker_id, chunk_frames=chunk_frames)

    def _weight_norm_modules(self) -> Iterable[nn.Module]:
        return (m for m in self.generator.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)))

    def apply_weight_norm(self) -> None:
        """Reparametrises every generator convolution with weight norm (as HiFi-GAN trains)."""
        for module in self._weight_norm_modules():
            nn.utils.parametrizations.weight_norm(module)

    def remove_weight_norm(self) -> None:
        """Folds weight norm back into plain weights (for saving and fast inference)."""
        for module in self._weight_norm_modules():
            if nn.utils.parametrize.is_parametrized(module, "weight"):
                nn.utils.parametrize.remove_parametrizations(module, "weight")


def _is_single(units: object) -> bool:
    """Whether `synthesize` got one sequence (a UnitSequence, a 1-D tensor, a flat list) rather than a batch."""
    if hasattr(units, "units"):
        return True
    if isinstance(units, torch.Tensor):
        return units.dim() <= 1
    if len(units) == 0:
        return True
    first = units[0]
    is_row = hasattr(first, "units") or (hasattr(first, "__len__") and getattr(first, "ndim", 1) >= 1)
    return not is_row or isinstance(first, str)


def _as_ids(values: Sequence[int] | torch.Tensor, what: str) -> torch.Tensor:
    """A 1-D long tensor from integers; floats and other non-integers are refused with a clear error."""
    if isinstance(values, torch.Tensor):
        tensor = values
    else:
        tensor = torch.as_tensor(values) if len(values) else torch.zeros(0, dtype=torch.long)
    if tensor.is_floating_point() or tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{what} must be integers, got {tensor.dtype} values.")
    if tensor.dim() != 1:
        raise ValueError(f"each sequence of {what} must be 1-D, got shape {tuple(tensor.shape)}.")
    return tensor.long()


def _pad_rows(rows: list[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows])
    ids = nn.utils.rnn.pad_sequence(rows, batch_first=True) if rows else torch.zeros(0, 0, dtype=torch.long)
    return ids.to(device), lengths_to_mask(lengths, ids.shape[1]).to(device)


__all__ = [
    "HiFiGANGenerator",
    "HiFiGANResidualBlock",
    "UnitDurationPredictor",
    "UnitHiFiGANOutput",
    "UnitHiFiGANPreTrainedModel",
    "UnitHiFiGANVocoder",
    "lengths_to_mask",
]
