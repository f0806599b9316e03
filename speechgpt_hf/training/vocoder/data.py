"""Vocoder training data: audio (+ speaker) run through a SpeechUnitTokenizer, cut into random aligned segments."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ...audio import AudioInputError, load_audio
from ...data.unit_extraction import undecoded

logger = logging.getLogger(__name__)


class UnusableRow(ValueError):
    """A row whose units cannot train the vocoder (none, or durations that do not match them)."""


class MissingColumnError(KeyError, ValueError):
    """The data lacks a column every row needs; the message names it, the columns there are, and the way out."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class VocoderDataset(torch.utils.data.Dataset):
    """Utterances as (16 kHz audio trimmed to its unit frames, merged units, durations, speaker id); `skipped`
    lists `(row index, reason)` for the input rows left out."""

    def __init__(
        self,
        examples: list[dict[str, Any]],
        speakers: list[str],
        hop_length: int,
        skipped: list[tuple[int, str]] | None = None,
    ) -> None:
        self.examples, self.speakers, self.hop_length = examples, speakers, hop_length
        self.skipped = list(skipped or [])

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.examples[index], "index": index}


def prepare_vocoder_dataset(
    dataset: Sequence[dict[str, Any]],
    unit_tokenizer: Any | None = None,
    audio_column: str = "audio",
    speaker_column: str | None = None,
    speakers: list[str] | None = None,
    hop_length: int = 320,
    sampling_rate: int = 16000,
) -> VocoderDataset:
    """Runs every row's audio through `unit_tokenizer` (or reads existing `units`/`durations` columns).

    Rows whose audio is refused (`speechgpt_hf.audio.AudioInputError`: a corrupt or empty file) or that yield no
    units (`UnusableRow`) are skipped, counted in a warning and listed in the result's `skipped`; any other error
    (a missing column, `MissingColumnError`, or decoding library) stops the run. A datasets Audio column is read
    undecoded and each row decoded on its own, so one corrupt file cannot fail the read. `speakers` fixes the
    speaker-name -> id order (new names are appended), so a fine-tuning run can keep a vocoder's ids.
    """
    if hasattr(dataset, "features"):
        dataset = undecoded(dataset, audio_column)
    speakers = list(speakers or [])
    examples, skipped = [], []
    for index in tqdm(range(len(dataset)), desc="vocoder data"):
        row = dataset[index]
        if index == 0:
            _check_columns(row, audio_column, unit_tokenizer is not None, speaker_column)
        try:
            example = _prepare_row(row, unit_tokenizer, audio_column, hop_length, sampling_rate)
        except (AudioInputError, UnusableRow) as error:
            skipped.append((index, str(error)))
            logger.warning(f"Skipped row {index}: {error}")
            continue
        if speaker_column is not None:
            name = str(row[speaker_column])
            if name not in speakers:
                speakers.append(name)
            example["speaker"] = speakers.index(name)
        examples.append(example)
    if skipped:
        logger.warning(f"Skipped {len(skipped)} of {len(dataset)} rows (see the warnings above).")
    if not examples:
        raise ValueError("No usable rows: every row was skipped.")
    return VocoderDataset(examples, speakers, hop_length, skipped)


def _check_columns(row: dict[str, Any], audio_column: str, has_tokenizer: bool, speaker_column: str | None) -> None:
    """Raises MissingColumnError naming the columns the rows lack (every row would fail the same way)."""
    needed = [audio_column] if has_tokenizer else [audio_column, "units", "durations"]
    missing = [column for column in needed if column not in row]
    if missing:
        raise MissingColumnError(
            f"The vocoder data lacks the column(s) {missing} (it has {sorted(row)}): pass audio_column=…, or a "
            "unit_tokenizer when there are no units/durations columns."
        )
    if speaker_column is not None and speaker_column not in row:
        raise MissingColumnError(
            f"The vocoder data has no speaker column {speaker_column!r} (it has {sorted(row)}): name one of those "
            "(--speaker-column), or leave it out to train a single-voice vocoder."
        )


def _prepare_row(row: dict[str, Any], tokenizer: Any, audio_column: str, hop: int, rate: int) -> dict[str, Any]:
    if tokenizer is not None:
        audio = tokenizer.load_audio(row[audio_column])
        sequence = tokenizer.encode(audio, sampling_rate=tokenizer.config.sampling_rate)
        units, durations = list(sequence.units), list(sequence.durations)
    else:
        audio = load_audio(row[audio_column], rate, target_rate=rate, min_samples=1)
        units, durations = list(row["units"]), list(row["durations"])
    if not units or len(units) != len(durations) or min(durations) < 1:
        raise UnusableRow("no units, or durations that do not match the units")
    frames = sum(durations)
    audio = np.asarray(audio, dtype=np.float32)[: frames * hop]
    audio = np.pad(audio, (0, frames * hop - len(audio)))
    return {"audio": audio, "units": units, "durations": durations}


class VocoderCollator:
    """Cuts a random segment of `segment_frames` unit frames (and the matching audio) from each utterance.

    The whole merged unit sequence travels along for the duration loss. A crop depends only on (seed, `epoch`,
    the example's index), never on a running random state, so a resumed run cuts exactly the same segments.
    """

    def __init__(self, segment_frames: int, hop_length: int, multi_speaker: bool, seed: int = 0) -> None:
        self.segment_frames, self.hop_length, self.multi_speaker = segment_frames, hop_length, multi_speaker
        self.seed, self.epoch = seed, 0

    def _start(self, index: int, num_frames: int) -> int:
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) % 2**63)
        return int(torch.randint(0, max(1, num_frames - self.segment_frames + 1), (), generator=generator))

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        seg, hop = self.segment_frames, self.hop_length
        frame_units = torch.zeros(len(batch), seg, dtype=torch.long)
        audio = torch.zeros(len(batch), seg * hop)
        frame_lengths = torch.zeros(len(batch), dtype=torch.long)
        for i, example in enumerate(batch):
            frames = torch.repeat_interleave(torch.tensor(example["units"]), torch.tensor(example["durations"]))
            start = self._start(example["index"], len(frames))
            piece = frames[start : start + seg]
            frame_units[i, : len(piece)] = piece
            frame_lengths[i] = len(piece)
            audio[i, : len(piece) * hop] = torch.from_numpy(example["audio"][start * hop : (start + len(piece)) * hop])
        units = torch.nn.utils.rnn.pad_sequence([torch.tensor(e["units"]) for e in batch], batch_first=True)
        durations = torch.nn.utils.rnn.pad_sequence([torch.tensor(e["durations"]) for e in batch], batch_first=True)
        out = {
            "frame_units": frame_units,
            "frame_lengths": frame_lengths,
            "audio": audio,
            "units": units,
            "durations": durations,
            "unit_mask": durations > 0,
        }
        if self.multi_speaker:
            out["speaker_ids"] = torch.tensor([e["speaker"] for e in batch])
        return out


__all__ = ["MissingColumnError", "UnusableRow", "VocoderCollator", "VocoderDataset", "prepare_vocoder_dataset"]
