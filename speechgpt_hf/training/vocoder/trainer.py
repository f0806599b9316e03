"""The vocoder GAN loop on accelerate: generator vs multi-period + multi-scale discriminators.

One step: the generator turns random segments of unit frames into audio; the discriminators learn (LSGAN) to tell
it from the real segment; the generator then learns from the adversarial loss, feature matching, log-mel L1 and
the duration predictor's loss on log(d + 1) of the merged units' run lengths. Works on one CPU or GPU, and on
several processes through `accelerate launch`.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANDiscriminator, UnitHiFiGANVocoder
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

logger = logging.getLogger(__name__)
STATE_FILE = "trainer_state.json"


@dataclass
class TrainerState:
    """What a checkpoint records besides the tensors: the exact step, the epoch, the logged losses."""

    step: int = 0
    epoch: int = 0
    epoch_start_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


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
) -> UnitHiFiGANVocoder:
    """Trains (or resumes) a vocoder; writes checkpoints, samples, the loss plot and the final model to output_dir."""
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.utils import set_seed

    accelerator = Accelerator(
        cpu=config.cpu,
        mixed_precision=config.mixed_precision,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(config.seed)
    vocoder = build_vocoder(config, train_data, num_units)
    generator = GeneratorTrainingForward(vocoder)
    discriminator = UnitHiFiGANDiscriminator(config.mpd_periods, width=config.discriminator_width)
    opt_g = torch.optim.AdamW(generator.parameters(), config.learning_rate, betas=config.adam_betas)
    opt_d = torch.optim.AdamW(discriminator.parameters(), config.learning_rate, betas=config.adam_betas)
    sched_g = torch.optim.lr_scheduler.ExponentialLR(opt_g, gamma=config.lr_decay)
    sched_d = torch.optim.lr_scheduler.ExponentialLR(opt_d, gamma=config.lr_decay)
    collate = VocoderCollator(
        config.segment_frames,
        vocoder.config.hop_length,
        vocoder.config.num_speakers > 0,
        seed=config.seed + accelerator.process_index,
    )
    loader = torch.utils.data.DataLoader(
        train_data,
        batch_size=config.batch_size,
        shuffle=True,
        collate_fn=collate,
        num_workers=config.num_workers,
        generator=torch.Generator().manual_seed(config.seed),  # keeps iterator seeding off the global RNG
    )
    generator, discriminator, opt_g, opt_d, loader = accelerator.prepare(generator, discriminator, opt_g, opt_d, loader)
    # Per-epoch decay: kept out of `prepare`, which would step them once per process.
    accelerator.register_for_checkpointing(sched_g, sched_d)
    mel = _mel(config, vocoder.config.sampling_rate).to(accelerator.device)
    state = _resume(accelerator, config)
    parts = (accelerator, generator, discriminator, opt_g, opt_d, mel, config)
    _loop(parts, (sched_g, sched_d), loader, collate, state, eval_data)
    return _export(accelerator, generator, config, (len(train_data), state.step))


def _mel(config: VocoderTrainingConfig, sampling_rate: int) -> LogMelSpectrogram:
    return LogMelSpectrogram(
        sampling_rate, config.n_fft, config.hop_length, config.win_length, config.n_mels, config.f_min, config.f_max
    )


def _loop(
    parts: tuple,
    schedulers: tuple,
    loader: Any,
    collate: VocoderCollator,
    state: TrainerState,
    eval_data: VocoderDataset | None,
) -> None:
    from accelerate import skip_first_batches
    from tqdm.auto import tqdm

    accelerator, generator, config = parts[0], parts[1], parts[-1]
    deadline = None if config.time_limit_minutes is None else time.monotonic() + 60 * config.time_limit_minutes
    progress = tqdm(total=config.max_steps, initial=state.step, desc="vocoder", disable=not accelerator.is_main_process)
    timer = StepTimer(config.max_steps, tqdm.write if accelerator.is_main_process else logger.debug)
    while state.step < config.max_steps:
        loader.set_epoch(state.epoch)
        collate.epoch = state.epoch
        done_in_epoch = state.step - state.epoch_start_step
        epoch_loader = skip_first_batches(loader, done_in_epoch) if done_in_epoch else loader
        for batch in epoch_loader:
            losses = train_step(parts, batch, adversarial=state.step >= config.discriminator_start_step)
            state.step += 1
            progress.update(1)
            timer.step_ended(state.step)
            if state.step % config.log_steps == 0 or state.step == config.max_steps:
                state.history.append({"step": state.step, **losses})
                progress.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
            if eval_data is not None and (state.step % config.eval_steps == 0 or state.step == config.max_steps):
                _log_eval(accelerator, generator, eval_data, parts[5], state, config)
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


def train_step(parts: tuple, batch: dict[str, torch.Tensor], adversarial: bool = True) -> dict[str, float]:
    """One discriminator update then one generator update (only the latter, on mel + duration losses, while
    `adversarial` is False); returns the losses as floats."""
    accelerator, generator, discriminator, opt_g, opt_d, mel, config = parts
    real, values = batch["audio"], {}
    with accelerator.autocast():
        fake, duration_loss = generator(**batch)
    if adversarial:
        with accelerator.autocast():
            logits, _ = discriminator(torch.cat([real, fake.detach()]))
            values["loss_d"] = discriminator_loss([x[: len(real)] for x in logits], [x[len(real) :] for x in logits])
        opt_d.zero_grad(set_to_none=True)
        accelerator.backward(values["loss_d"])
        opt_d.step()
    with accelerator.autocast():
        values["mel_l1"], values["duration"] = mel_l1_loss(mel, real, fake), duration_loss
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
    opt_g.zero_grad(set_to_none=True)
    accelerator.backward(loss_g)
    opt_g.step()
    return {name: accelerator.reduce(value.detach().float(), "mean").item() for name, value in values.items()}


@torch.no_grad()
def evaluate_vocoder(
    vocoder: UnitHiFiGANVocoder, data: VocoderDataset, mel: LogMelSpectrogram, sample_dir: Path | None, num_samples: int
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
            sample_dir.mkdir(parents=True, exist_ok=True)
            sf.write(sample_dir / f"{index}.wav", wave.numpy(), vocoder.config.sampling_rate)
    vocoder.train(was_training)
    return sum(distances) / len(distances)


def _log_eval(accelerator, generator, data, mel, state: TrainerState, config: VocoderTrainingConfig) -> None:
    if accelerator.is_main_process:
        vocoder = accelerator.unwrap_model(generator).vocoder
        sample_dir = Path(config.output_dir) / "samples" / f"step-{state.step}"
        distance = evaluate_vocoder(vocoder, data, mel, sample_dir, config.num_audio_samples)
        mel.to(accelerator.device)
        state.history.append({"step": state.step, "eval_mel_distance": distance})
        logger.info(f"step {state.step}: validation mel distance {distance:.4f}")
    accelerator.wait_for_everyone()


def save_checkpoint(accelerator, state: TrainerState, config: VocoderTrainingConfig) -> Path:
    """Models, optimisers, schedulers and RNG (accelerate) plus the trainer state; keeps the newest few."""
    output = Path(config.output_dir)
    folder = output / f"checkpoint-{state.step}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        (folder / STATE_FILE).write_text(json.dumps(state.__dict__, indent=1))
        plot_losses(state.history, output / "loss.png")
        for old in _checkpoints(output)[: -config.save_total_limit]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return folder


def _checkpoints(output: Path) -> list[Path]:
    found = [p for p in output.glob("checkpoint-*") if (p / STATE_FILE).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def _resume(accelerator, config: VocoderTrainingConfig) -> TrainerState:
    target = config.resume_from_checkpoint
    if not target:
        return TrainerState()
    if target is True or target == "latest":
        found = _checkpoints(Path(config.output_dir))
        if not found:
            logger.warning(f"No checkpoint in {config.output_dir}: starting from scratch.")
            return TrainerState()
        target = found[-1]
    folder = Path(target)
    if not (folder / STATE_FILE).exists():
        raise FileNotFoundError(f"{folder} is not a vocoder checkpoint (no {STATE_FILE}).")
    accelerator.load_state(str(folder))
    state = TrainerState(**json.loads((folder / STATE_FILE).read_text()))
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
    figure.savefig(path)
    plt.close(figure)


def _export(accelerator, generator, config: VocoderTrainingConfig, done: tuple[int, int]) -> UnitHiFiGANVocoder:
    """The trained vocoder with weight norm folded in, saved (safetensors) to output_dir with its model card."""
    vocoder = copy.deepcopy(accelerator.unwrap_model(generator).vocoder).float().cpu()
    vocoder.remove_weight_norm()
    vocoder.eval()
    if accelerator.is_main_process:
        vocoder.save_pretrained(config.output_dir)
        write_vocoder_card(config, *done)
    accelerator.wait_for_everyone()
    return vocoder


def write_vocoder_card(config: VocoderTrainingConfig, utterances: int, steps: int) -> Path:
    """Records how the vocoder in `config.output_dir` was trained (`steps` done on `utterances`) and renders its
    model card."""
    from ...hub.cards import record_provenance, write_model_card

    start = f"from {Path(config.init_from).name}" if config.init_from else "from scratch"
    summary = (
        f"{steps} of {config.max_steps} steps {start}, batch {config.batch_size} of {config.segment_frames}-frame segments, "
        f"AdamW lr {config.learning_rate:g} (decay {config.lr_decay} an epoch), mel loss weight "
        f"{config.mel_weight:g}, discriminators from step {config.discriminator_start_step}"
    )
    step = {
        "name": "unit HiFi-GAN training",
        "made_by": "speechgpt-hf train-vocoder",
        "summary": summary,
        "facts": {"training utterances": utterances, "training steps": steps},
    }
    record_provenance(config.output_dir, step)
    return write_model_card(config.output_dir)


__all__ = [
    "GeneratorTrainingForward",
    "TrainerState",
    "build_vocoder",
    "evaluate_vocoder",
    "plot_losses",
    "save_checkpoint",
    "train_step",
    "train_vocoder",
    "write_vocoder_card",
]
