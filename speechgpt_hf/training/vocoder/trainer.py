"""The vocoder training loop on accelerate: the unit HiFi-GAN's GAN, or the unit-to-mel vocoder's regression.

A unit HiFi-GAN step: the generator turns random segments of unit frames into audio; the discriminators learn
(LSGAN) to tell it from the real segment; the generator then learns from the adversarial loss, feature matching,
log-mel L1 and the duration predictor's loss on log(d + 1) of the merged units' run lengths. A unit-to-mel step
(`architecture: unit_mel`, see `unit_mel.py`) fits predicted mel frames to the real ones, in front of a frozen
pretrained generator. Both share the loop: progress bar, expected time a step, checkpoints with exact resume,
validation, time limit and loss plot. Works on one CPU or GPU, and on several processes through `accelerate launch`.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANDiscriminator, UnitHiFiGANVocoder
from ...safe_files import atomic_path, atomic_write_json, read_json_file
from ..checkpoints import MARKER, numbered_checkpoints, resume_target, staged_model
from ..step_timer import StepTimer
from .config import VocoderTrainingConfig
from .data import VocoderCollator, VocoderDataset
from .losses import (
    LogMelSpectrogram,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    mel_l1_loss,
)
from .unit_mel import UnitMelCollator, UnitMelTrainingForward, build_unit_mel_vocoder, training_summary

logger = logging.getLogger(__name__)
STATE_FILE = MARKER  # written last, at once: a checkpoint folder without it is a save that was cut short


@dataclass
class TrainerState:
    """What a checkpoint records besides the tensors: the exact step, the epoch, the logged losses."""

    step: int = 0
    epoch: int = 0
    epoch_start_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class TrainingParts:
    """What a training step works with: the accelerator, the wrapped model (`GeneratorTrainingForward` or
    `UnitMelTrainingForward`) and its optimiser, the discriminators and theirs (unit HiFi-GAN only), the
    validation mel front end and the training config."""

    accelerator: Any
    generator: nn.Module
    optimizer: torch.optim.Optimizer
    config: VocoderTrainingConfig
    mel: LogMelSpectrogram
    discriminator: nn.Module | None = None
    discriminator_optimizer: torch.optim.Optimizer | None = None


class GeneratorTrainingForward(nn.Module):
    """Wraps the vocoder so one `forward` uses every trainable weight (what DDP needs): fake audio + duration loss."""

    def __init__(self, vocoder: UnitHiFiGANVocoder) -> None:
        super().__init__()
        self.vocoder = vocoder

    def forward(self, frame_units, frame_lengths, units, durations, unit_mask, speaker_ids=None, **_):
        features = self.vocoder.frame_features(frame_units, speaker_ids)
        fake = self.vocoder.generator(features, frame_lengths)
        if self.vocoder.duration_predictor is None:
            return fake, fake.new_zeros(())
        return fake, self.vocoder.duration_loss(units, durations, unit_mask)


def build_vocoder(config: VocoderTrainingConfig, data: VocoderDataset, num_units: int | None) -> UnitHiFiGANVocoder:
    """A fresh vocoder sized for the data (or the `init_from` one), recording the speaker names in its config."""
    if config.init_from:
        vocoder = UnitHiFiGANVocoder.from_pretrained(config.init_from)
    else:
        largest = max(max(example["units"]) for example in data.examples)
        kwargs = {"num_units": num_units or largest + 1, "num_speakers": len(data.speakers), **config.model}
        vocoder = UnitHiFiGANVocoder(UnitHiFiGANConfig(**kwargs))
    if len(data.speakers) > vocoder.config.num_speakers:
        raise ValueError(
            f"The data has {len(data.speakers)} speakers but the vocoder only {vocoder.config.num_speakers}."
        )
    vocoder.config.speaker_names = list(data.speakers)
    vocoder.apply_weight_norm()
    return vocoder


def train_vocoder(
    config: VocoderTrainingConfig,
    train_data: VocoderDataset,
    eval_data: VocoderDataset | None = None,
    num_units: int | None = None,
) -> nn.Module:
    """Trains (or resumes) a vocoder of `config.architecture`; writes checkpoints, samples, the loss plot and the
    final model to output_dir."""
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.utils import set_seed

    accelerator = Accelerator(
        cpu=config.cpu,
        mixed_precision=config.mixed_precision,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(config.seed)
    seed = config.seed + accelerator.process_index
    if config.architecture == "unit_mel":
        vocoder, targets = build_unit_mel_vocoder(config, train_data, num_units)
        vocoder.config.speaker_names = list(train_data.speakers)
        generator, discriminator = UnitMelTrainingForward(vocoder), None
        collate = UnitMelCollator(vocoder.config, targets, config.segment_frames, vocoder.config.num_speakers > 0, seed)
    else:
        vocoder = build_vocoder(config, train_data, num_units)
        generator = GeneratorTrainingForward(vocoder)
        discriminator = UnitHiFiGANDiscriminator(config.mpd_periods, width=config.discriminator_width)
        collate = VocoderCollator(
            config.segment_frames, vocoder.config.hop_length, vocoder.config.num_speakers > 0, seed
        )
    trainable = [p for p in generator.parameters() if p.requires_grad]
    optimizers = [torch.optim.AdamW(trainable, config.learning_rate, betas=config.adam_betas)]
    if discriminator is not None:
        optimizers.append(torch.optim.AdamW(discriminator.parameters(), config.learning_rate, betas=config.adam_betas))
    schedulers = [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=config.lr_decay) for opt in optimizers]
    loader = torch.utils.data.DataLoader(
        train_data,
        batch_size=config.batch_size,
        shuffle=True,
        collate_fn=collate,
        num_workers=config.num_workers,
        generator=torch.Generator().manual_seed(config.seed),  # keeps iterator seeding off the global RNG
    )
    models = [generator] + ([discriminator] if discriminator is not None else [])
    prepared = accelerator.prepare(*models, *optimizers, loader)
    models, optimizers, loader = prepared[: len(models)], prepared[len(models) : -1], prepared[-1]
    # Per-epoch decay: kept out of `prepare`, which would step them once per process.
    accelerator.register_for_checkpointing(*schedulers)
    mel = _mel(config, vocoder.config.sampling_rate).to(accelerator.device)
    parts = TrainingParts(accelerator, models[0], optimizers[0], config, mel, *models[1:], *optimizers[1:])
    state = _resume(accelerator, config)
    step = unit_mel_step if config.architecture == "unit_mel" else _gan_step
    _loop(parts, step, schedulers, loader, collate, state, eval_data)
    return _export(parts, (len(train_data), state.step))


def _gan_step(parts: TrainingParts, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
    return train_step(parts, batch, adversarial=step >= parts.config.discriminator_start_step)


def _mel(config: VocoderTrainingConfig, sampling_rate: int) -> LogMelSpectrogram:
    return LogMelSpectrogram(
        sampling_rate, config.n_fft, config.hop_length, config.win_length, config.n_mels, config.f_min, config.f_max
    )


def _loop(
    parts: TrainingParts,
    step: Callable[[TrainingParts, dict[str, torch.Tensor], int], dict[str, float]],
    schedulers: list[Any],
    loader: Any,
    collate: VocoderCollator | UnitMelCollator,
    state: TrainerState,
    eval_data: VocoderDataset | None,
) -> None:
    from accelerate import skip_first_batches
    from tqdm.auto import tqdm

    accelerator, config = parts.accelerator, parts.config
    deadline = None if config.time_limit_minutes is None else time.monotonic() + 60 * config.time_limit_minutes
    progress = tqdm(total=config.max_steps, initial=state.step, desc="vocoder", disable=not accelerator.is_main_process)
    timer = StepTimer(config.max_steps, tqdm.write if accelerator.is_main_process else logger.debug)
    while state.step < config.max_steps:
        loader.set_epoch(state.epoch)
        collate.epoch = state.epoch
        done_in_epoch = state.step - state.epoch_start_step
        epoch_loader = skip_first_batches(loader, done_in_epoch) if done_in_epoch else loader
        for batch in epoch_loader:
            losses = step(parts, batch, state.step)
            state.step += 1
            progress.update(1)
            timer.step_ended(state.step)
            if state.step % config.log_steps == 0 or state.step == config.max_steps:
                state.history.append({"step": state.step, **losses})
                progress.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
            if eval_data is not None and (state.step % config.eval_steps == 0 or state.step == config.max_steps):
                _log_eval(parts, eval_data, state)
            if deadline is not None and time.monotonic() > deadline:
                accelerator.set_trigger()
            out_of_time = accelerator.check_trigger()  # true on every process once any is out of time
            if state.step % config.save_steps == 0 or state.step == config.max_steps or out_of_time:
                save_checkpoint(accelerator, state, config)
            if state.step >= config.max_steps or out_of_time:
                break
        else:
            for scheduler in schedulers:
                scheduler.step()
            state.epoch += 1
            state.epoch_start_step = state.step
            continue
        break  # max_steps reached, or out of time
    progress.close()
    if state.step < config.max_steps:
        logger.warning(f"Time limit reached at step {state.step} of {config.max_steps}; resume to continue.")


def train_step(parts: TrainingParts, batch: dict[str, torch.Tensor], adversarial: bool = True) -> dict[str, float]:
    """One discriminator update then one generator update (only the latter, on mel + duration losses, while
    `adversarial` is False); returns the losses as floats."""
    accelerator, generator, discriminator, config = (
        parts.accelerator,
        parts.generator,
        parts.discriminator,
        parts.config,
    )
    real, values = batch["audio"], {}
    with accelerator.autocast():
        fake, duration_loss = generator(**batch)
    if adversarial:
        with accelerator.autocast():
            logits, _ = discriminator(torch.cat([real, fake.detach()]))
            values["loss_d"] = discriminator_loss([x[: len(real)] for x in logits], [x[len(real) :] for x in logits])
        parts.discriminator_optimizer.zero_grad(set_to_none=True)
        accelerator.backward(values["loss_d"])
        parts.discriminator_optimizer.step()
    with accelerator.autocast():
        values["mel_l1"], values["duration"] = mel_l1_loss(parts.mel, real, fake), duration_loss
        loss_g = config.mel_weight * values["mel_l1"] + config.duration_weight * duration_loss
        if adversarial:
            logits, features = discriminator(torch.cat([real, fake]))
            values["adversarial"] = generator_adversarial_loss([x[len(real) :] for x in logits])
            values["feature_matching"] = feature_matching_loss(
                [[f[: len(real)] for f in maps] for maps in features],
                [[f[len(real) :] for f in maps] for maps in features],
            )
            loss_g = loss_g + values["adversarial"] + config.feature_matching_weight * values["feature_matching"]
    values["loss_g"] = loss_g
    parts.optimizer.zero_grad(set_to_none=True)
    accelerator.backward(loss_g)
    parts.optimizer.step()
    return {name: accelerator.reduce(value.detach().float(), "mean").item() for name, value in values.items()}


def unit_mel_step(parts: TrainingParts, batch: dict[str, torch.Tensor], step: int = 0) -> dict[str, float]:
    """One update of the unit-to-mel network and duration predictor: log-mel L1 + weighted duration loss."""
    accelerator = parts.accelerator
    with accelerator.autocast():
        mel_l1, duration = parts.generator(**batch)
        loss = mel_l1 + parts.config.duration_weight * duration
    parts.optimizer.zero_grad(set_to_none=True)
    accelerator.backward(loss)
    parts.optimizer.step()
    values = {"mel_l1": mel_l1, "duration": duration, "loss_g": loss}
    return {name: accelerator.reduce(value.detach().float(), "mean").item() for name, value in values.items()}


@torch.no_grad()
def evaluate_vocoder(
    vocoder: nn.Module, data: VocoderDataset, mel: LogMelSpectrogram, sample_dir: Path | None, num_samples: int
) -> float:
    """Mean log-mel L1 distance between each utterance and its resynthesis (true durations); writes a few wavs."""
    import soundfile as sf

    was_training = vocoder.training
    vocoder.eval()
    distances = []
    for index, example in enumerate(data.examples):
        kwargs = {"speaker_id": example["speaker"]} if vocoder.config.num_speakers else {}
        wave = vocoder.synthesize(example["units"], durations=example["durations"], **kwargs)
        real = torch.from_numpy(example["audio"])[None]
        distances.append(mel_l1_loss(mel.cpu(), real, wave[None]).item())
        if sample_dir is not None and index < num_samples:
            with atomic_path(sample_dir / f"{index}.wav") as staging:
                sf.write(staging, wave.numpy(), vocoder.config.sampling_rate, format="WAV")
    vocoder.train(was_training)
    return sum(distances) / len(distances)


def _log_eval(parts: TrainingParts, data: VocoderDataset, state: TrainerState) -> None:
    accelerator, config = parts.accelerator, parts.config
    if accelerator.is_main_process:
        vocoder = accelerator.unwrap_model(parts.generator).vocoder
        sample_dir = Path(config.output_dir) / "samples" / f"step-{state.step}"
        distance = evaluate_vocoder(vocoder, data, parts.mel, sample_dir, config.num_audio_samples)
        parts.mel.to(accelerator.device)
        state.history.append({"step": state.step, "eval_mel_distance": distance})
        logger.info(f"step {state.step}: validation mel distance {distance:.4f}")
    accelerator.wait_for_everyone()


def save_checkpoint(accelerator, state: TrainerState, config: VocoderTrainingConfig) -> Path:
    """Models, optimisers, schedulers and RNG (accelerate) plus the trainer state, written last and at once: the
    folder counts as a checkpoint only then. Keeps the newest few."""
    output = Path(config.output_dir)
    folder = output / f"checkpoint-{state.step}"
    if accelerator.is_main_process:
        (folder / STATE_FILE).unlink(missing_ok=True)  # a folder saved again is unfinished until its end
    accelerator.wait_for_everyone()
    accelerator.save_state(str(folder))
    accelerator.wait_for_everyone()  # every process's part is written before the folder is marked
    if accelerator.is_main_process:
        atomic_write_json(folder / STATE_FILE, state.__dict__, indent=1)
        plot_losses(state.history, output / "loss.png")
        for old in _checkpoints(output)[: -config.save_total_limit]:
            (old / STATE_FILE).unlink()  # unmarked first: a kill mid-removal leaves no finished-looking remains
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return folder


def _checkpoints(output: Path) -> list[Path]:
    return [p for p in numbered_checkpoints(output) if (p / STATE_FILE).exists()]


def _resume(accelerator, config: VocoderTrainingConfig) -> TrainerState:
    """The trainer state of the checkpoint `resume_from_checkpoint` names (True or "latest": the newest complete
    one), its tensors loaded; checked first, so that a truncated file is named with the way out."""
    target = resume_target(config.resume_from_checkpoint, config.output_dir)
    if target is None:
        return TrainerState()
    folder = Path(target)
    way_out = f"delete {folder} to resume from the checkpoint before it"
    state = TrainerState(**read_json_file(folder / STATE_FILE, way_out))
    accelerator.load_state(str(folder))
    logger.info(f"Resumed from {folder} at step {state.step}.")
    return state


def plot_losses(history: list[dict[str, float]], path: Path) -> None:
    """Training losses (and validation mel distance) against the step, as a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=80)
    names = ["loss_d", "adversarial", "feature_matching", "mel_l1", "duration"]
    for name in names:
        points = [(h["step"], h[name]) for h in history if name in h]
        if points:
            axes[0].plot(*zip(*points, strict=True), label=name)
    evals = [(h["step"], h["eval_mel_distance"]) for h in history if "eval_mel_distance" in h]
    if evals:
        axes[1].plot(*zip(*evals, strict=True), marker="o")
    axes[0].set(xlabel="step", title="training losses", yscale="log")
    axes[0].legend(fontsize=7)
    axes[1].set(xlabel="step", title="validation mel distance")
    figure.tight_layout()
    with atomic_path(path) as staging:
        figure.savefig(staging, format="png")
    plt.close(figure)


def _export(parts: TrainingParts, done: tuple[int, int]) -> nn.Module:
    """The trained vocoder (weight norm folded in, for the unit HiFi-GAN), saved (safetensors) to output_dir with
    its model card, through a staging folder (`staged_model`): a kill never leaves half a model there."""
    accelerator, config = parts.accelerator, parts.config
    vocoder = copy.deepcopy(accelerator.unwrap_model(parts.generator).vocoder).float().cpu()
    if hasattr(vocoder, "remove_weight_norm"):
        vocoder.remove_weight_norm()
    vocoder.eval()
    if accelerator.is_main_process:
        with staged_model(config.output_dir) as staging:
            vocoder.save_pretrained(staging)
            write_vocoder_card(config, *done, folder=staging)
    accelerator.wait_for_everyone()
    return vocoder


def write_vocoder_card(config: VocoderTrainingConfig, utterances: int, steps: int, folder: Path | None = None) -> Path:
    """Records how the vocoder in `config.output_dir` (saved in `folder`, by default there) was trained (`steps`
    done on `utterances`) and renders its model card."""
    from ...hub.cards import record_provenance, write_model_card

    start = f"from {Path(config.init_from).name}" if config.init_from else "from scratch"
    if config.architecture == "unit_mel":
        name, method = "unit-to-mel vocoder training", training_summary(config, config.generator)
    else:
        name = "unit HiFi-GAN training"
        method = (
            f"batch {config.batch_size} of {config.segment_frames}-frame segments, AdamW lr {config.learning_rate:g} "
            f"(decay {config.lr_decay} an epoch), mel loss weight {config.mel_weight:g}, discriminators from step "
            f"{config.discriminator_start_step}"
        )
    step = {
        "name": name,
        "made_by": "speechgpt-hf train-vocoder",
        "summary": f"{steps} of {config.max_steps} steps {start}, {method}",
        "facts": {"training utterances": utterances, "training steps": steps},
    }
    folder = Path(folder or config.output_dir)
    record_provenance(folder, step)
    return write_model_card(folder, repo_id=Path(config.output_dir).resolve().name)


__all__ = [
    "GeneratorTrainingForward",
    "TrainerState",
    "TrainingParts",
    "build_vocoder",
    "evaluate_vocoder",
    "plot_losses",
    "save_checkpoint",
    "train_step",
    "train_vocoder",
    "unit_mel_step",
    "write_vocoder_card",
]
