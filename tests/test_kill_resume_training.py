"""Training under `kill -9`: a stage or vocoder run killed mid-checkpoint, then rerun, ends with the very weights of a
run never killed; a checkpoint whose save was cut short is skipped, a corrupt one is named with the way out (one line
from the CLI); the reproduction's step markers, settings and resumed stages, and assembling in place, likewise."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_assemble import parts  # noqa: F401  (fixture)
from test_train_vocoder import TINY_MODEL, unit_rows
from test_training_stages import NUM_UNITS, base_model_folder, speechinstruct_folder  # noqa: F401  (fixtures)
from transformers import AutoModelForCausalLM, TrainerControl, TrainerState, TrainingArguments

import speechgpt_hf_cli
from speechgpt_hf import assemble_system
from speechgpt_hf.safe_files import CorruptFileError
from speechgpt_hf.testing_utils import kill_when
from speechgpt_hf.training.checkpoints import MARKER, latest_checkpoint
from speechgpt_hf.training.sft import SpeechGPTTrainingConfig, UnmarkRewrittenCheckpoints, train_stage

STAGE = dict(
    stage="modality_adaptation",
    num_units=NUM_UNITS,
    max_steps=4,
    save_steps=1,
    per_device_train_batch_size=2,
    max_length=64,
    learning_rate=5e-3,
    logging_steps=1,
    report_to="none",
    use_cpu=True,
    resume_from_checkpoint="latest",
)
VOCODER = dict(
    model=TINY_MODEL,
    segment_frames=8,
    batch_size=2,
    max_steps=4,
    log_steps=1,
    eval_steps=100,
    save_steps=2,
    discriminator_start_step=2,  # the steps after the resumed checkpoint are adversarial, the ones before cheaper
    discriminator_width=1 / 32,
    mpd_periods=[2, 3],
    n_fft=256,
    hop_length=64,
    win_length=256,
    n_mels=20,
    cpu=True,
)


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "speechgpt_hf_cli", *argv]


def _saving_into(folder: Path) -> bool:
    """Whether a run has begun writing the checkpoint `folder` (the moment to kill it mid-save)."""
    return folder.is_dir() and any(folder.iterdir())


def _same_weights(a: Path, b: Path) -> bool:
    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def _losses(state: dict) -> list[float]:
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def _corrupt_copy(source: Path, folder: Path, damaged: str) -> tuple[Path, Path]:
    """The last two checkpoints of `source` copied into `folder`, the latest one's file `damaged` cut to half its
    length: (that one, the one before)."""
    checkpoints = sorted(source.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-2:]
    for checkpoint in checkpoints:
        shutil.copytree(checkpoint, folder / checkpoint.name)
    before, latest = (folder / checkpoint.name for checkpoint in checkpoints)
    path = latest / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return latest, before


def _one_line_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """The CLI's error line for `argv` (after any progress bars), checked to be its one line with no traceback."""
    assert speechgpt_hf_cli.main(argv) == 2
    stderr = capsys.readouterr().err
    error = stderr.strip().splitlines()[-1]
    assert error.startswith(f"speechgpt-hf {argv[0]}: error: ") and "Traceback" not in stderr
    return error


@pytest.fixture(scope="module")
def stage_runs(tmp_path_factory, base_model_folder, speechinstruct_folder):  # noqa: F811
    """root/whole: a stage trained through; root/killed: the same `train` run SIGKILLed mid-save of checkpoint-3,
    rerun and SIGKILLed again while saving the final model, then rerun to its end."""
    root = tmp_path_factory.mktemp("stage")
    fields = {**STAGE, "base_model_name_or_path": str(base_model_folder), "dataset_name": str(speechinstruct_folder)}
    train_stage(SpeechGPTTrainingConfig(output_dir=str(root / "whole"), **fields))
    killed = root / "killed"
    flags = [part for name, value in fields.items() for part in (f"--{name}", str(value))]
    command = _cli("train", *flags, "--output_dir", str(killed))
    assert kill_when(command, lambda: _saving_into(killed / "checkpoint-3"))
    assert kill_when(command, lambda: any(_saving_into(staging) for staging in root.glob(".killed.*")))
    assert not (killed / "config.json").exists()  # no loadable-looking half model
    train_stage(SpeechGPTTrainingConfig(output_dir=str(killed), **fields))
    return root


def test_a_killed_stage_reruns_to_the_weights_of_an_uninterrupted_run(stage_runs):
    assert _same_weights(stage_runs / "whole", stage_runs / "killed")
    whole, killed = (json.loads((stage_runs / name / "trainer_state.json").read_text()) for name in ("whole", "killed"))
    assert killed["global_step"] == 4 and not (stage_runs / "killed" / "checkpoint-5").exists()  # no step too many
    assert _losses(killed) == _losses(whole)
    assert AutoModelForCausalLM.from_pretrained(stage_runs / "killed").config.num_units == NUM_UNITS
    assert not [p.name for p in stage_runs.iterdir() if p.name.startswith(".")]  # no staging folder left behind


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.pt"])
def test_a_corrupt_stage_checkpoint_is_named_with_the_way_out(stage_runs, tmp_path, capsys, damaged):
    latest, before = _corrupt_copy(stage_runs / "whole", tmp_path, damaged)
    argv = ["train", *("--stage", "modality_adaptation", "--dataset_name", "unused", "--base_model_name_or_path", "x")]
    error = _one_line_error(capsys, [*argv, "--output_dir", str(tmp_path), "--resume_from_checkpoint", "latest"])
    assert str(latest / damaged) in error and f"delete {latest} " in error and f"resume from {before}." in error


def test_a_cut_short_checkpoint_is_skipped_and_a_truncated_marker_named(stage_runs, tmp_path, capsys, caplog):
    latest, before = _corrupt_copy(stage_runs / "whole", tmp_path, MARKER)
    assert latest_checkpoint(tmp_path) == before and f"Skipping {latest}" in caplog.text
    argv = ["train", *("--stage", "modality_adaptation", "--dataset_name", "unused", "--base_model_name_or_path", "x")]
    error = _one_line_error(capsys, [*argv, "--output_dir", str(tmp_path), "--resume_from_checkpoint", str(latest)])
    assert str(latest / MARKER) in error and f"resume from {before}." in error


def test_a_checkpoint_saved_again_is_unmarked_until_its_save_ends(tmp_path):
    checkpoint = tmp_path / "checkpoint-3"
    checkpoint.mkdir()
    (checkpoint / MARKER).write_text("{}")
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    control = TrainerControl(should_save=True)
    UnmarkRewrittenCheckpoints().on_step_end(args, TrainerState(global_step=3), control)
    assert not (checkpoint / MARKER).exists()


@pytest.fixture(scope="module")
def vocoder_runs(tmp_path_factory):
    """root/whole: a vocoder trained through; root/killed: the same `train-vocoder` run SIGKILLed as it begins
    saving checkpoint-4 (its last), rerun. Every run is a process of its own, as a user's are: one torch setting
    left behind by another test in this process (its thread count) would change the sums, not the code."""
    root = tmp_path_factory.mktemp("vocoder")
    unit_rows().save_to_disk(str(root / "data"))
    (root / "recipe.yaml").write_text(json.dumps(VOCODER))

    def command(output: Path) -> list[str]:
        argv = _cli("train-vocoder", str(root / "data"), "--speaker-column", "speaker", "--eval-size", "0")
        return argv + ["--config", str(root / "recipe.yaml"), "--output-dir", str(output), "--resume"]

    subprocess.run(command(root / "whole"), check=True, capture_output=True)
    assert kill_when(command(root / "killed"), lambda: _saving_into(root / "killed" / "checkpoint-4"))
    subprocess.run(command(root / "killed"), check=True, capture_output=True)
    return root


def test_a_killed_vocoder_reruns_to_the_weights_of_an_uninterrupted_run(vocoder_runs):
    assert _same_weights(vocoder_runs / "whole", vocoder_runs / "killed")
    state = json.loads((vocoder_runs / "killed" / "checkpoint-4" / MARKER).read_text())
    assert state["step"] == 4
    assert not [p.name for p in vocoder_runs.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer_1.bin", MARKER])
def test_a_corrupt_vocoder_checkpoint_is_named_with_the_way_out(vocoder_runs, tmp_path, capsys, damaged):
    latest, before = _corrupt_copy(vocoder_runs / "whole", tmp_path, damaged)
    argv = ["train-vocoder", str(vocoder_runs / "data"), "--speaker-column", "speaker", "--eval-size", "0"]
    argv += ["--config", str(vocoder_runs / "recipe.yaml"), "--output-dir", str(tmp_path), "--resume", str(latest)]
    error = _one_line_error(capsys, argv)
    assert str(latest / damaged) in error and f"resume from {before}." in error


def test_reproduction_markers_and_settings_are_whole_or_named(tmp_path):
    from speechgpt_hf.reproduction.pipeline import _Steps
    from speechgpt_hf.reproduction.settings import PRESETS

    settings = PRESETS["quickstart"]
    assert _Steps(tmp_path, settings, overwrite=False).run("corpus", lambda: {"rows": 3}) == {"rows": 3}
    assert _Steps(tmp_path, settings, overwrite=False).run("corpus", lambda: pytest.fail("redone")) == {"rows": 3}
    assert not list(tmp_path.rglob(".*"))  # written through a staging name, renamed into place
    marker = tmp_path / "steps" / "corpus.json"
    marker.write_text(marker.read_text()[:9])
    with pytest.raises(CorruptFileError, match="corpus.json is truncated.*delete it to run the step 'corpus' again"):
        _Steps(tmp_path, settings, overwrite=False).run("corpus", dict)
    (tmp_path / "settings.json").write_text("{")
    with pytest.raises(CorruptFileError, match="settings.json is truncated.*--overwrite"):
        _Steps(tmp_path, settings, overwrite=False)


def test_a_reproduction_stage_resumes_from_its_latest_complete_checkpoint(stage_runs, tmp_path, caplog):
    from speechgpt_hf.reproduction.pipeline import stage_config
    from speechgpt_hf.reproduction.settings import PRESETS

    folder = tmp_path / "lm" / "modality_adaptation"
    for step in (2, 3):
        shutil.copytree(stage_runs / "whole" / f"checkpoint-{step}", folder / f"checkpoint-{step}")
    (folder / "checkpoint-3" / MARKER).unlink()  # its save was cut short
    config = stage_config(tmp_path, PRESETS["quickstart"], "modality_adaptation")
    assert config.resume_from_checkpoint == str(folder / "checkpoint-2")
    assert f"Skipping {folder / 'checkpoint-3'}" in caplog.text


def test_assembling_in_place_keeps_a_component_inside_the_lm_relative_to_it(parts):  # noqa: F811
    shutil.copytree(parts / "vocoder", parts / "lm" / "vocoder")
    assemble_system(parts / "lm", unit_tokenizer=parts / "units", vocoder=parts / "lm" / "vocoder")
    for name in ("config.json", "processor_config.json"):
        stored = json.loads((parts / "lm" / name).read_text())
        assert (stored["unit_tokenizer_repo"], stored["vocoder_repo"]) == ("../units", "./vocoder"), name
    assert not [p.name for p in parts.iterdir() if p.name.startswith(".")]
