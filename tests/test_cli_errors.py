"""How the command line answers a user's mistake: one line naming the problem and the way out, exit code 2, no
traceback unless `--debug`; `--version`; and `train --help` listing every configuration field with its default."""

import pytest

import speechgpt_hf_cli
from speechgpt_hf_cli._verbs import UsageError


def run_cli(argv, capsys):
    """(exit code, stdout, stderr) of `speechgpt-hf argv`, whether the verb returns or argparse exits."""
    try:
        code = speechgpt_hf_cli.main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.startswith("speechgpt-hf ") and out.split()[1][0].isdigit()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["extract-units", "{audio}", "--tokenizer", "{tmp}/missing", "--output-dir", "{tmp}/o"], "no such folder"),
        (["extract-units", "{audio}", "--tokenizer", "org/not-cached", "--output-dir", "{tmp}/o"], "offline"),
        (["fit-units", "{audio}", "--output-dir", "{tmp}/o", "--num-units", "5000"], "Give more audio or fewer units"),
        (["train"], "train needs --stage"),
        (["train", "--recipe", "stage1_modality_adaptation"], "pass --dataset-name"),
        (["build-speechinstruct", "{tmp}/si", "--configs", "cross_modal"], "pass --audio"),
        (["build-speechinstruct", "{tmp}/si", "--audio", "{tmp}", "--spliced-asr-rows", "2"], "go together"),
        (
            ["build-speechinstruct", "{tmp}/si", "--audio", "{tmp}", "--configs", "modality_adaptation"]
            + ["--spliced-asr-rows", "2", "--spliced-texts", "{tmp}/s.txt"],
            "build cross_modal too",
        ),
    ],
)
def test_a_user_mistake_is_one_line_and_exit_code_2(argv, expected, tmp_path, capsys):
    audio = tmp_path / "a.wav"
    _write_tone(audio)
    argv = [arg.format(tmp=tmp_path, audio=audio) for arg in argv]
    code, _, err = run_cli(argv, capsys)
    last = err.strip().split("\n")[-1].split("\r")[-1]  # progress bars may come before it
    assert code == 2 and last.startswith("speechgpt-hf ") and expected in last and "--debug" in last
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["convert", "speechgpt", "{tmp}/no-such-checkpoint", "{tmp}/out"],
        ["extract-units", "{tmp}/none", "--tokenizer", "x", "--output-dir", "o"],
        ["convert", "vocoder", "{tmp}/g_0", "{tmp}/config.json", "{tmp}/out"],
    ],
)
def test_a_missing_input_path_is_named_before_anything_loads(argv, tmp_path, capsys):
    code, _, err = run_cli([arg.format(tmp=tmp_path) for arg in argv], capsys)
    assert code == 2 and "no such file or folder" in err and "sentencepiece" not in err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(UsageError, match="no such folder"):
        speechgpt_hf_cli.main(["--debug", "train-vocoder", str(tmp_path / "missing"), "--output-dir", str(tmp_path)])
    with pytest.raises(UsageError, match="train needs"):
        speechgpt_hf_cli.main(["train", "--debug"])


def test_train_help_lists_every_field_grouped_with_defaults(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0
    groups = ["SpeechGPT: stage, model, data and LoRA", "TRL SFTConfig", "transformers TrainingArguments"]
    positions = [out.index(group) for group in groups]
    assert positions == sorted(positions)
    own = out[positions[0] : positions[1]]
    assert "--lora_r" in own and "(default: 8)" in own and "--dataset_name" in own
    assert "--max_length" in out[positions[1] : positions[2]]
    assert "--seed" in out[positions[2] :] and "(default: 42)" in out[positions[2] :]


def test_train_needs_stage_dataset_and_output_dir_from_flags_or_yaml(tmp_path, capsys):
    yaml_file = tmp_path / "stage.yaml"
    yaml_file.write_text("stage: cross_modal\ndataset_name: data/\n")
    code, _, err = run_cli(["train", "--config", str(yaml_file), "--model_name_or_path", "m"], capsys)
    assert code == 2 and "--output-dir" in err and "--stage" not in err and "--dataset-name" not in err


def _write_tone(path):
    import numpy as np
    import soundfile

    t = np.arange(8000) / 16000
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
