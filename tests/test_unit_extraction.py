"""Bulk unit extraction: Dataset.map with workers, bad rows skipped and reported, accelerate ranks, and the CLI verbs."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile
from datasets import Audio, Dataset, load_from_disk

from speechgpt_hf import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.data.unit_extraction import add_unit_columns, audio_dataset
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


def test_accelerate_ranks_each_take_a_shard(audio_folder, tokenizer_dir, tmp_path):
    audio_dataset(audio_folder).save_to_disk(tmp_path / "ds")
    script = tmp_path / "extract.py"
    script.write_text(
        textwrap.dedent(f"""
        from accelerate import PartialState
        from datasets import load_from_disk
        from speechgpt_hf.data.unit_extraction import add_unit_columns_distributed
        state = PartialState(cpu=True)
        ds = load_from_disk({str(tmp_path / "ds")!r})
        merged, report = add_unit_columns_distributed(ds, {str(tokenizer_dir)!r}, {str(tmp_path / "out")!r})
        print("RANK", state.process_index, state.num_processes, report.total, report.failed, merged["path"] == ds["path"])
    """)
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    result = subprocess.run(
        [torchrun, "--nproc_per_node", "2", str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = sorted(line for line in result.stdout.splitlines() if line.startswith("RANK"))
    assert lines == ["RANK 0 2 7 3 True", "RANK 1 2 7 3 True"]
    shards = [load_from_disk(str(tmp_path / "out" / f"shard-0000{r}")) for r in (0, 1)]
    assert [len(s) for s in shards] == [4, 3]


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
