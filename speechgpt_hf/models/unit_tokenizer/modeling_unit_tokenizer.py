"""SpeechUnitTokenizer: speech -> discrete units (SSL or Whisper encoder layer L, or MFCC, then nearest k-means centroid).

This is SpeechGPT's unit extractor (mHuBERT layer 11 + k-means 1000) as a transformers model: the
encoder and the centroids are one safetensors checkpoint, `encode` takes paths, arrays or datasets
Audio values, and batches them length-sorted with exact masking so units match a one-at-a-time loop.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput, logging

from .audio import AudioInputError, load_audio
from .configuration_unit_tokenizer import SpeechUnitTokenizerConfig
from .features import encoder_features, mfcc_features, whisper_encoder_features, whisper_utterance_features
from .kmeans import KMeansResult, ReservoirSampler, assign_units, fit_kmeans

logger = logging.get_logger(__name__)

SOSP, EOSP = "<sosp>", "<eosp>"
_UNIT_SPAN = re.compile(r"<sosp>((?:\s*<\s*\d+\s*>)*)\s*<eosp>")
_UNIT = re.compile(r"<\s*(\d+)\s*>")
_PRECISIONS = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclass
class UnitSequence:
    """Units of one utterance: `units[i]` lasts `durations[i]` frames (20 ms each at 50 Hz)."""

    units: list[int]
    durations: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.durations:
            self.durations = [1] * len(self.units)
        if len(self.durations) != len(self.units):
            raise ValueError(f"{len(self.units)} units but {len(self.durations)} durations.")

    @property
    def num_frames(self) -> int:
        """Frames before merging (the sum of the durations)."""
        return sum(self.durations)

    def frame_units(self) -> list[int]:
        """The frame-level sequence (each unit repeated by its duration)."""
        return [u for u, d in zip(self.units, self.durations, strict=True) for _ in range(d)]

    def __len__(self) -> int:
        return len(self.units)


def merge_units(frame_units: Sequence[int]) -> UnitSequence:
    """Run-length collapse of adjacent repeats: [5, 5, 7] -> units [5, 7], durations [2, 1]."""
    units: list[int] = []
    durations: list[int] = []
    for unit in frame_units:
        if units and units[-1] == unit:
            durations[-1] += 1
        else:
            units.append(int(unit))
            durations.append(1)
    return UnitSequence(units, durations)


@dataclass
class SpeechUnitTokenizerOutput(ModelOutput):
    """`units` [B, T] (-1 on padding), `features` [B, T, D], `frame_counts` [B] valid frames per item."""

    units: torch.LongTensor | None = None
    features: torch.FloatTensor | None = None
    frame_counts: torch.LongTensor | None = None


class SpeechUnitTokenizer(PreTrainedModel):
    """Speech to discrete units: features of a speech encoder truncated after `config.layer` layers (or MFCC),
    each frame mapped to its nearest of `config.num_units` k-means centroids.

    `encode` is the user-facing entry point; `forward` works on an already padded batch at 16 kHz.
    Until a codebook is fitted (`fit`) or converted, the centroids are random with `config.seed`, and encoding
    warns that its units are not trained (`config.codebook_fitted`, saved with the model, records the fit).

    With a Whisper encoder, features are Whisper's log-mel (`WhisperFeatureExtractor`'s, computed in torch on the
    model's device) through the encoder's first `config.layer` layers, 50 frames a second, exactly ⌊N / 320⌋ of
    them for N samples; longer audio is cut into independent 30-s chunks. By default (`whisper_window=
    "utterance"`) each chunk runs at its own length with attention masked to it: about 0.1 s for a 3-s utterance
    with Whisper tiny.en (4 layers, float32) on one core of a shared 2-core CPU. With `"30s"` every chunk is
    zero-padded to the 30-s window as Whisper was trained (its mel past the audio at the silence floor): every
    chunk, however short, then costs a full window, about 1 s on the same core.
    """

    config_class = SpeechUnitTokenizerConfig
    base_model_prefix = "unit_tokenizer"
    main_input_name = "input_values"
    _supports_sdpa = True

    def __init__(self, config: SpeechUnitTokenizerConfig) -> None:
        super().__init__(config)
        self.encoder = _build_encoder(config) if config.feature_type == "encoder" else None
        # Fitted by k-means, never by gradients (a parameter so that MFCC tokenizers, which have no other weights,
        # still save and load like every model).
        self.centroids = nn.Parameter(torch.empty(config.num_units, config.feature_dim), requires_grad=False)
        self.post_init()

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> SpeechUnitTokenizer:
        """As `PreTrainedModel.from_pretrained`; the loaded codebook stays out of gradient training."""
        model = super().from_pretrained(*args, **kwargs)
        model.centroids.requires_grad_(False)
        return model

    @classmethod
    def from_encoder(
        cls, encoder: str | PreTrainedModel, layer: int = 11, num_units: int = 1000, **config_kwargs: Any
    ) -> SpeechUnitTokenizer:
        """A tokenizer around a pretrained speech encoder, truncated after `layer` layers, with random centroids
        until `fit` (or a converted codebook).

        `encoder` is a HubertModel/Wav2Vec2Model/WavLMModel, a WhisperModel/WhisperForConditionalGeneration/
        WhisperEncoder (only the encoder is kept), the repo or folder of any of them, or the name of a Whisper
        bundled in a registry package: "whisper-tiny.en" (4 layers, width 384) or "whisper-base" (multilingual,
        6 layers, width 512), converted offline on first use.
        """
        if isinstance(encoder, str):
            encoder = AutoModel.from_pretrained(bundled_encoder_path(encoder))
        encoder = _speech_encoder(encoder)
        config = SpeechUnitTokenizerConfig(
            encoder_config=encoder.config, layer=layer, num_units=num_units, **config_kwargs
        )
        tokenizer = cls(config)
        missing, _ = tokenizer.encoder.load_state_dict(encoder.state_dict(), strict=False)
        if [k for k in missing if k != "masked_spec_embed"]:
            raise ValueError(f"The encoder's weights do not fit its own config: missing {missing[:5]}.")
        return tokenizer.eval()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self:
            generator = torch.Generator().manual_seed(self.config.seed)
            with torch.no_grad():
                self.centroids.copy_(torch.randn(self.centroids.shape, generator=generator))
        elif self.encoder is not None:
            self.encoder._init_weights(module)

    def set_codebook(self, centroids: torch.Tensor | np.ndarray) -> None:
        """Replaces the k-means centroids ([num_units, feature_dim]), e.g. after fitting or converting; the
        tokenizer then counts as fitted (`config.codebook_fitted`)."""
        centroids = centroids if isinstance(centroids, torch.Tensor) else torch.from_numpy(np.array(centroids))
        if tuple(centroids.shape) != tuple(self.centroids.shape):
            raise ValueError(
                f"Centroids of shape {tuple(centroids.shape)} do not fit {tuple(self.centroids.shape)} "
                "([num_units, feature_dim] of this config)."
            )
        with torch.no_grad():
            self.centroids.copy_(centroids.to(self.centroids))
        self.config.codebook_fitted = True

    @property
    def is_fitted(self) -> bool:
        """Whether the codebook was fitted or converted (else its centroids are random and its units mean nothing)."""
        return bool(getattr(self.config, "codebook_fitted", False))

    # ---- features -------------------------------------------------------------------------------------

    def compute_features(self, input_values: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T, D] features and [B] frame counts of a padded batch of 16 kHz waveforms [B, N]."""
        if self.config.normalize_waveform:
            mask = torch.arange(input_values.shape[1], device=input_values.device)[None] < lengths[:, None]
            mean = (input_values * mask).sum(1, keepdim=True) / lengths[:, None]
            var = (((input_values - mean) * mask) ** 2).sum(1, keepdim=True) / lengths[:, None]
            input_values = (input_values - mean) / torch.sqrt(var + 1e-5) * mask
        if self.config.is_whisper and self.config.whisper_window == "utterance":
            return whisper_utterance_features(self.encoder, input_values, lengths, self.config.frame_hop)
        if self.config.is_whisper:
            window = self.config.encoder_window_samples
            return whisper_encoder_features(self.encoder, input_values, lengths, window, self.config.frame_hop)
        if self.encoder is not None:
            return encoder_features(self.encoder, input_values, lengths)
        cfg = self.config
        per_item = [
            mfcc_features(w[:n], cfg.sampling_rate, cfg.num_mfcc, cfg.frame_length, cfg.frame_hop)
            for w, n in zip(input_values.float().cpu(), lengths.tolist(), strict=True)
        ]
        features = nn.utils.rnn.pad_sequence(per_item, batch_first=True).to(input_values.device)
        return features, torch.tensor([f.shape[0] for f in per_item], device=input_values.device)

    def forward(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> SpeechUnitTokenizerOutput:
        """Frame-level units of a padded batch [B, N] of 16 kHz waveforms (`attention_mask` marks real samples)."""
        if input_values.dim() == 1:
            input_values = input_values[None]
        lengths = (
            attention_mask.sum(-1)
            if attention_mask is not None
            else torch.full((input_values.shape[0],), input_values.shape[1], device=input_values.device)
        )
        features, frames = self.compute_features(input_values, lengths.long())
        flat = assign_units(features.reshape(-1, features.shape[-1]), self.centroids)
        units = flat.view(features.shape[:2])
        units = units.masked_fill(torch.arange(units.shape[1], device=units.device)[None] >= frames[:, None], -1)
        return SpeechUnitTokenizerOutput(units=units, features=features, frame_counts=frames)

    # ---- batching -------------------------------------------------------------------------------------

    def _chunks(self, waves: Sequence[np.ndarray]) -> list[tuple[int, int, np.ndarray]]:
        """(item, chunk index, samples) for every independent chunk; a last chunk with no frame adds nothing."""
        size = self.config.max_chunk_samples
        chunks = []
        for item, wave in enumerate(waves):
            for index, start in enumerate(range(0, len(wave), size)):
                piece = wave[start : start + size]
                if self.config.num_frames(len(piece)) > 0:
                    chunks.append((item, index, piece))
        return chunks

    def _padded_samples(self, samples: int) -> int:
        """Samples a chunk of `samples` samples occupies in a batch: Whisper's 30-s mode pads every chunk to its window."""
        return self.config.encoder_window_samples if self.config.whisper_window == "30s" else samples

    def _batches(
        self, chunks: list[tuple[int, int, np.ndarray]], max_batch_samples: int
    ) -> Iterable[list[tuple[int, int, np.ndarray]]]:
        """Longest first; a batch grows while its padded size (items × longest) stays within the budget.

        In Whisper's 30-s mode a chunk is padded to the encoder's window, so there every chunk counts as one window.
        """
        ordered = sorted(chunks, key=lambda c: len(c[2]), reverse=True)
        batch: list[tuple[int, int, np.ndarray]] = []
        for chunk in ordered:
            if batch and self._padded_samples(len(batch[0][2])) * (len(batch) + 1) > max_batch_samples:
                yield batch
                batch = []
            batch.append(chunk)
        if batch:
            yield batch

    @torch.no_grad()
    def frame_units(
        self,
        waves: Sequence[np.ndarray],
        max_batch_samples: int = 960_000,
        precision: str | torch.dtype = "float32",
        return_features: bool = False,
        progress: bool = False,
    ) -> list[torch.Tensor]:
        """Frame-level units ([T] int64) of checked 16 kHz mono waveforms; features [T, D] with `return_features`.

        Waveforms are chunked (`config.max_chunk_samples`), sorted by length and padded into batches of at
        most `max_batch_samples` padded samples. `precision="bfloat16"` runs the encoder under autocast
        (faster on CPUs and GPUs with bf16 matrix units; units may differ on a few frames).
        """
        if not return_features and not self.is_fitted and not getattr(self, "_warned_unfitted", False):
            self._warned_unfitted = True  # once per tokenizer
            logger.warning(
                "This SpeechUnitTokenizer's codebook was never fitted: its units come from random centroids and "
                "carry little meaning. Fit it first (`speechgpt-hf fit-units` or `tokenizer.fit(audio)`)."
            )
        dtype = _PRECISIONS[precision] if isinstance(precision, str) else precision
        device = self.centroids.device
        autocast = (
            torch.autocast(device.type, dtype=dtype)
            if dtype != torch.float32 and self.encoder is not None
            else nullcontext()
        )
        pieces: dict[int, list[tuple[int, torch.Tensor]]] = {item: [] for item in range(len(waves))}
        chunks = self._chunks(waves)
        # One autocast region for all batches, so the bf16 copies of the weights are made once, not per batch.
        with autocast, tqdm(total=len(chunks), desc="units", disable=not progress) as bar:
            for batch in self._batches(chunks, max_batch_samples):
                lengths = torch.tensor([len(c[2]) for c in batch], device=device)
                padded = torch.zeros(len(batch), int(lengths.max()), device=device)
                for row, (_, _, piece) in enumerate(batch):
                    padded[row, : len(piece)] = torch.from_numpy(piece).to(device)
                features, frames = self.compute_features(padded, lengths)
                features = features.float()
                for row, (item, index, _) in enumerate(batch):
                    valid = features[row, : int(frames[row])]
                    result = valid if return_features else assign_units(valid, self.centroids)
                    pieces[item].append((index, result.cpu()))
                bar.update(len(batch))
        return [
            torch.cat([part for _, part in sorted(parts, key=lambda p: p[0])])
            if parts
            else torch.zeros(0, dtype=torch.long)
            for parts in pieces.values()
        ]

    def encode(
        self,
        audio: Any,
        sampling_rate: int | None = None,
        merge: bool = True,
        max_batch_samples: int = 960_000,
        precision: str | torch.dtype = "float32",
        progress: bool = False,
    ) -> UnitSequence | list[UnitSequence]:
        """Units of one input (-> `UnitSequence`) or a list of inputs (-> list of `UnitSequence`).

        An input is a path, a 1-D or (channels, samples) numpy array / torch tensor with `sampling_rate`,
        or a datasets Audio value (a dict with "array"/"sampling_rate" or "bytes"/"path", or a torchcodec
        AudioDecoder). Audio is down-mixed to mono and resampled to `config.sampling_rate`. With
        `merge=True` adjacent repeats are merged and their run lengths kept as `durations`; with
        `merge=False` every frame's unit is returned (durations all 1). A bad input raises
        `AudioInputError` naming the problem (and the item's index within a list).
        """
        single = not isinstance(audio, (list, tuple))
        items = [audio] if single else list(audio)
        waves = []
        for index, item in enumerate(items):
            try:
                waves.append(self.load_audio(item, sampling_rate))
            except AudioInputError as error:
                raise AudioInputError(str(error) if single else f"Item {index}: {error}") from None
        frame_units = self.frame_units(
            waves, max_batch_samples=max_batch_samples, precision=precision, progress=progress
        )
        sequences = [merge_units(u.tolist()) if merge else UnitSequence(u.tolist()) for u in frame_units]
        return sequences[0] if single else sequences

    def load_audio(self, item: Any, sampling_rate: int | None = None) -> np.ndarray:
        """One input as a checked mono float32 waveform at this tokenizer's rate (see `encode`)."""
        return load_audio(item, sampling_rate, self.config.sampling_rate, self.config.frame_length)

    # ---- unit strings ---------------------------------------------------------------------------------

    @staticmethod
    def to_unit_string(units: Iterable[int] | UnitSequence) -> str:
        """`[12, 7]` -> `'<sosp><12><7><eosp>'`, the form SpeechGPT's LM reads and writes."""
        if isinstance(units, UnitSequence):
            units = units.units
        return SOSP + "".join(f"<{int(u)}>" for u in units) + EOSP

    @staticmethod
    def from_unit_string(text: str) -> list[int]:
        """Unit ids of the first `<sosp>…<eosp>` span in `text` (whitespace between tokens allowed)."""
        match = _UNIT_SPAN.search(text)
        if match is None:
            raise ValueError(f"No <sosp>…<eosp> unit span in {text[:80]!r}.")
        return [int(u) for u in _UNIT.findall(match.group(1))]

    # ---- fitting --------------------------------------------------------------------------------------

    def fit(
        self,
        audio: Iterable[Any],
        sampling_rate: int | None = None,
        max_frames: int = 200_000,
        batch_size: int = 10000,
        max_iter: int = 100,
        seed: int = 0,
        progress: bool = True,
        tolerance: float = 1e-4,
        max_batch_samples: int = 960_000,
    ) -> KMeansResult:
        """Fits the codebook with k-means on a uniform sample of the feature frames of `audio`.

        `audio` is any iterable of inputs as `encode` takes them: a list, a datasets column, a generator.
        Features are computed utterance by utterance (in batches of at most `max_batch_samples` samples)
        and streamed through a reservoir that keeps a uniform random sample of at most `max_frames` frames,
        so memory stays bounded however long the corpus. k-means (`fit_kmeans`: k-means++ then Lloyd passes,
        at most `max_iter`, stopping once a pass gains less than `tolerance`) runs on that sample on this
        model's device. Unreadable items are skipped with a warning and listed in the result's `skipped`. Returns the result with the inertia of
        every pass and the number of frames seen; `seed` makes the sample and the fit reproducible.
        """
        sample = ReservoirSampler(max_frames, seed=seed)
        skipped: list[tuple[int, str]] = []
        for waves in self._readable_wave_groups(audio, sampling_rate, max_batch_samples, progress, skipped):
            for features in self.frame_units(waves, max_batch_samples=max_batch_samples, return_features=True):
                sample.add(features)
        if not sample.seen:
            raise ValueError(f"No readable audio to fit the codebook on ({len(skipped)} items could not be read).")
        logger.info(f"Fitting {self.config.num_units} units on a sample of {sample.size} of {sample.seen} frames.")
        result = fit_kmeans(
            sample.sample().to(self.centroids.device),
            self.config.num_units,
            batch_size=batch_size,
            max_iter=max_iter,
            seed=seed,
            progress=progress,
            tolerance=tolerance,
        )
        self.set_codebook(result.centroids)
        result.frames_seen, result.skipped = sample.seen, skipped
        return result

    def _readable_wave_groups(
        self,
        audio: Iterable[Any],
        sampling_rate: int | None,
        max_samples: int,
        progress: bool,
        skipped: list[tuple[int, str]],
    ) -> Iterable[list[np.ndarray]]:
        """Waveforms of the readable items of `audio`, read one by one and grouped while their total length
        stays within `max_samples` (an item longer than that is a group of its own); unreadable items are
        appended to `skipped` as (index, reason)."""
        group: list[np.ndarray] = []
        total = 0
        for index, item in enumerate(tqdm(audio, desc="features", unit="utterance", disable=not progress)):
            try:
                wave = self.load_audio(item, sampling_rate)
            except AudioInputError as error:
                logger.warning(f"Skipped item {index} while fitting: {error}")
                skipped.append((index, str(error)))
                continue
            if group and total + len(wave) > max_samples:
                yield group
                group, total = [], 0
            group.append(wave)
            total += len(wave)
        if group:
            yield group


def bundled_encoder_path(name: str) -> str:
    """The converted folder of a bundled Whisper named "whisper-tiny.en" or "whisper-base"; any other repo id or
    path as it is (so is a name without the speechgpt_hf package, as under `trust_remote_code`)."""
    if not name.startswith("whisper-") or os.path.exists(name):
        return name
    try:
        from speechgpt_hf.convert.convert_whisper_ct2 import BUNDLED_WHISPER, bundled_whisper
    except ImportError:
        return name
    return str(bundled_whisper(name)) if name in BUNDLED_WHISPER else name


def _speech_encoder(model: PreTrainedModel) -> PreTrainedModel:
    """The speech encoder within `model`: a Whisper model's encoder (its decoder dropped), any other model itself."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    if model.config.model_type == "whisper" and not isinstance(model, WhisperEncoder):
        return model.get_encoder()
    return model


def _build_encoder(config: SpeechUnitTokenizerConfig) -> PreTrainedModel:
    """The (truncated) encoder `config` describes; for Whisper only its encoder, the final LayerNorm kept only
    where `config.final_layer_norm` says (so layer L's features equal the full encoder's `hidden_states[L]`)."""
    if not config.is_whisper:
        return AutoModel.from_config(config.encoder_config)
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    encoder = WhisperEncoder(config.encoder_config)
    if not config.final_layer_norm:
        encoder.layer_norm = nn.Identity()
    return encoder


__all__ = ["SpeechUnitTokenizer", "SpeechUnitTokenizerOutput", "UnitSequence", "merge_units"]
