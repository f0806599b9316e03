"""Bulk unit extraction: Dataset.map with workers, bad rows skipped and reported, accelerate ranks, and the CLI verbs."""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile
from datasets import Audio, Dataset, load_from_disk

from speechgpt_hf import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.data.unit_extraction import add_unit_columns, audio_dataset
from speechgpt_hf.training.sft import ACCELERATE_CONFIGS_DIR
from speechgpt_hf_cli import main as cli_main

SR = 16000


def tone(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (
        0.3 * np.sin(2 * np.pi * (150 + 50 * seed) * t * (1 + 0.3 * t)) + 0.01 * rng.standard_normal(t.size)
    ).astype(np.float32)


@pytest.fixture
def audio_folder(tmp_path):
    """Four good recordings and three bad ones (corrupt, empty, shorter than a frame)."""
    folder = tmp_path / "audio"
    folder.mkdir()
    for i, seconds in enumerate((1.0, 0.5, 2.0, 1.5)):
        soundfile.write(folder / f"good{i}.wav", tone(seconds, i), SR)
    (folder / "bad_corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    soundfile.write(folder / "bad_empty.wav", np.zeros(0, np.float32), SR)
    soundfile.write(folder / "bad_short.wav", np.zeros(100, np.float32), SR)
    return folder


@pytest.fixture
def tokenizer_dir(tmp_path):
    tok = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=30))
    tok.save_pretrained(tmp_path / "tok")
    return tmp_path / "tok"


def test_map_with_workers_skips_and_reports_bad_rows(audio_folder, tokenizer_dir):
    dataset = audio_dataset(audio_folder)
    tok = SpeechUnitTokenizer.from_pretrained(tokenizer_dir)
    encoded, report = add_unit_columns(dataset, str(tokenizer_dir), batch_size=3, num_proc=2)
    assert (report.total, report.encoded, report.failed) == (7, 4, 3)
    paths = dataset["path"]
    reasons = {paths[i].rsplit("/", 1)[-1]: reason for i, reason in report.failures}
    assert "corrupt or not an audio file" in reasons["bad_corrupt.wav"]
    assert "empty" in reasons["bad_empty.wav"] and "too short" in reasons["bad_short.wav"]
    assert report.summary().startswith("4/7 rows encoded, 3 skipped.") and len(report.summary().splitlines()) == 4
    assert isinstance(encoded.features["audio"], Audio) and encoded.features["audio"].decode
    for row in encoded.remove_columns("audio"):  # decoding the corrupt row's audio would raise
        if row["unit_error"] is None:
            expected = tok.encode(row["path"])
            assert row["units"] == expected.units and row["durations"] == expected.durations
        else:
            assert row["units"] == [] and row["durations"] == []


def test_a_missing_library_or_a_bug_stops_the_extraction_instead_of_failing_rows(
    audio_folder, tokenizer_dir, monkeypatch, decoding_bug
):
    dataset = audio_dataset(audio_folder)
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "soundfile", None)
        with pytest.raises(ImportError, match="pip install soundfile"):
            add_unit_columns(dataset, str(tokenizer_dir), progress=False)

    decoding_bug()
    with pytest.raises(TypeError, match="a bug"):
        add_unit_columns(dataset, str(tokenizer_dir), progress=False)


def test_tokenizer_object_and_frame_units(audio_folder):
    tok = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=30))
    arrays = Dataset.from_dict({"audio": [{"array": tone(1.0, 0), "sampling_rate": SR}]}).cast_column("audio", Audio())
    encoded, report = add_unit_columns(arrays, tok, merge=False)
    assert report.failed == 0 and encoded[0]["durations"] == [1] * 49
    with pytest.raises(ValueError, match="No column 'speech'"):
        add_unit_columns(arrays, tok, audio_column="speech")


def _extract_args(audio_folder, tokenizer_dir, output_dir) -> list[str]:
    return [str(audio_folder), "--tokenizer", str(tokenizer_dir), "--output-dir", str(output_dir), "--shard-size", "2"]


def _launch(launcher: list[str], *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    return subprocess.run([*launcher, *args], capture_output=True, text=True, env=env, timeout=300)


def _units(folder) -> list[tuple]:
    saved = load_from_disk(str(folder)).remove_columns("audio")
    return list(zip(saved["path"], saved["units"], saved["durations"], saved["unit_error"], strict=True))


def test_accelerate_launch_on_two_processes_gives_the_units_of_one(audio_folder, tokenizer_dir, tmp_path, capsys):
    assert cli_main(["extract-units", *_extract_args(audio_folder, tokenizer_dir, tmp_path / "one")]) == 0
    ddp = str(ACCELERATE_CONFIGS_DIR / "ddp.yaml")  # the shipped config, as on GPUs; here its processes use gloo
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", ddp, "--num_processes", "2"]
    result = _launch(
        [*launch, "-m", "speechgpt_hf_cli"],
        "extract-units",
        *_extract_args(audio_folder, tokenizer_dir, tmp_path / "two"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("4/7 rows encoded, 3 skipped.") == 1  # the summary once, from the main process
    assert _units(tmp_path / "two") == _units(tmp_path / "one") and len(_units(tmp_path / "one")) == 4
    for process in ("1/2", "2/2"):  # each process reports its own shards: 4 shards of 2 rows, two each
        assert len(re.findall(rf"process {process}\] shard \d \(rows \d-\d\) done", result.stderr)) == 2
    assert not (tmp_path / "two.shards").exists()  # the shards are gone once the dataset is saved


def test_a_killed_extraction_resumes_without_redoing_finished_shards(audio_folder, tokenizer_dir, tmp_path, capsys):
    entry = tmp_path / "killed_after_one_shard.py"
    entry.write_text(
        textwrap.dedent("""
        import os, signal, sys
        from speechgpt_hf.data import unit_extraction
        save = unit_extraction._save_shard
        def save_then_die(*args):
            save(*args)
            if os.environ["RANK"] == "1":  # killed right after its first shard, as by a pre-empted machine
                os.kill(os.getpid(), signal.SIGKILL)
        unit_extraction._save_shard = save_then_die
        from speechgpt_hf_cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    )
    args = _extract_args(audio_folder, tokenizer_dir, tmp_path / "units")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    result = _launch([torchrun, "--nproc_per_node", "2", str(entry)], "extract-units", *args)
    assert result.returncode != 0 and not (tmp_path / "units").exists()
    shards = tmp_path / "units.shards"
    kept = {int(path.name[-5:]) for path in shards.glob("shard-?????")}
    assert 1 in kept and 3 not in kept  # rank 1 finished shard 1 and died before shard 3

    assert cli_main(["extract-units", *args]) == 0  # the same command again, now on one process
    err = capsys.readouterr().err
    assert f"{len(kept)}/4 shards done by an earlier run, kept; {4 - len(kept)} to go." in err
    redone = {int(index) for index in re.findall(r"\] shard (\d) \(rows", err)}
    assert redone == {0, 1, 2, 3} - kept
    tok = SpeechUnitTokenizer.from_pretrained(tokenizer_dir)
    for path, units, durations, error in _units(tmp_path / "units"):
        expected = tok.encode(path)
        assert error is None and (units, durations) == (expected.units, expected.durations)


def test_resuming_into_shards_of_other_options_is_refused(audio_folder, tokenizer_dir, tmp_path):
    from speechgpt_hf.data.unit_extraction import add_unit_columns_distributed

    dataset = audio_dataset(audio_folder)
    add_unit_columns_distributed(dataset, str(tokenizer_dir), tmp_path / "shards", shard_size=4)
    with pytest.raises(ValueError, match=r"holds shards of another extraction \(merge, shard_size differ.*Delete that"):
        add_unit_columns_distributed(dataset, str(tokenizer_dir), tmp_path / "shards", shard_size=3, merge=False)


def test_cli_fit_then_extract(audio_folder, tmp_path, capsys):
    good = [str(p) for p in sorted(audio_folder.glob("good*.wav"))]
    cli_main(
        [
            "fit-units",
            *good,
            "--output-dir",
            str(tmp_path / "fitted"),
            "--num-units",
            "6",
            "--max-iter",
            "10",
            "--batch-size",
            "100",
        ]
    )
    assert "Fitted 6 units: inertia" in capsys.readouterr().out
    tok = SpeechUnitTokenizer.from_pretrained(tmp_path / "fitted")
    assert tok.config.num_units == 6
    code = cli_main(
        [
            "extract-units",
            str(audio_folder),
            "--tokenizer",
            str(tmp_path / "fitted"),
            "--output-dir",
            str(tmp_path / "units"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "4/7 rows encoded, 3 skipped." in out
    saved = load_from_disk(str(tmp_path / "units")).remove_columns("audio")
    good_row = next(row for row in saved if row["unit_error"] is None)
    assert good_row["units"] == tok.encode(good_row["path"]).units


@pytest.mark.parametrize("verb", [["fit-units"], ["extract-units"], ["convert", "unit-tokenizer"]])
def test_cli_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*verb, "--help"])
    assert exit_info.value.code == 0 and "--output-dir" in capsys.readouterr().out
