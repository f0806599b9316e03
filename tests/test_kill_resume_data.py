"""The data jobs under `kill -9`: a job killed mid-run and run again gives what an uninterrupted run gives, leaves no
staging names behind and never shows a half-written file or folder; a damaged file met on a rerun is named, with the
way out.

Each job is killed once, in a fresh interpreter (its imports take most of its time); the reference and the rerun run
in this process.
"""

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile
from datasets import Audio, load_from_disk
from safetensors.torch import load_file

from speechgpt_hf.data.tts_engines import EspeakTTS
from speechgpt_hf.data.unit_extraction import add_unit_columns_distributed, audio_dataset
from speechgpt_hf.hub.cards import record_provenance
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.reproduction.corpus import build_speech_corpus
from speechgpt_hf.safe_files import CorruptFileError
from speechgpt_hf.testing_utils import kill_when
from speechgpt_hf_cli import main as cli_main

SR = 16000
SENTENCES = ("the cat sat on the mat", "good morning to everyone", "please open the window", "we meet at noon")


def voice_corpus(folder: str) -> None:
    """Voices a four-clip corpus with espeak-ng voices, which time their own speech."""
    build_speech_corpus(folder, 2, 1, voices=("espeak:en-us",), held_out_voices=("espeak:en-gb+f2",), seed=2)


def _python(function: str, *args: Path) -> list[str]:
    """The command that runs `function(*args)` of this module in a fresh interpreter."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import {Path(__file__).stem} as m; "
    return [sys.executable, "-c", code + f"m.{function}(*sys.argv[1:])", *map(str, args)]


def _cli(*argv: object) -> list[str]:
    return [sys.executable, "-m", "speechgpt_hf_cli", *map(str, argv)]


def _leftovers(folder: Path) -> list[Path]:
    """Staging names of killed writers under `folder` and beside it."""
    return [*folder.rglob("*.partial*"), *folder.parent.glob(f".{folder.name}.partial-*")]


def _tone(seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    noise = 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * (150 + 50 * seed) * t * (1 + 0.3 * t)) + noise).astype(np.float32)


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    """Six short recordings and one corrupt file."""
    folder = tmp_path_factory.mktemp("tones")
    for i in range(6):
        soundfile.write(folder / f"tone{i}.wav", _tone(0.5 + 0.25 * i, i), SR)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    return folder


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """Spoken sentences with transcripts beside them, and a corrupt recording."""
    folder = tmp_path_factory.mktemp("speech")
    engine = EspeakTTS(speakers=["en-us"])
    for i, text in enumerate(SENTENCES):
        soundfile.write(folder / f"utt{i}.wav", *engine(text))
        (folder / f"utt{i}.txt").write_text(text)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (folder / "corrupt.txt").write_text("broken file")
    return folder


@pytest.fixture(scope="module")
def units(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("units")
    SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=32)).save_pretrained(folder)
    return folder


def _corpus(folder: Path) -> tuple[dict, dict]:
    """The corpus rows (audio as its FLAC bytes) and the manifest without its timing of the run."""
    corpus = load_from_disk(str(folder / "dataset"))
    rows = {
        name: [{**row, "audio": row["audio"]["bytes"]} for row in split.cast_column("audio", Audio(decode=False))]
        for name, split in corpus.items()
    }
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.pop("voicing_seconds")
    return rows, manifest


def test_killed_corpus_voicing_resumes_to_the_same_corpus(tmp_path):
    voice_corpus(tmp_path / "reference")
    folder = tmp_path / "killed"
    assert kill_when(_python("voice_corpus", folder), lambda: any((folder / "clips").glob("*.flac")))
    assert not (folder / "manifest.json").exists()
    voice_corpus(folder)
    reference = _corpus(tmp_path / "reference")
    assert _corpus(folder) == reference and not _leftovers(folder)
    assert any(row["words"] for split in reference[0].values() for row in split)
    for timings in (folder / "clips").glob("*.words.json"):  # every clip timed again, as one is on a resume
        timings.unlink()
    (folder / "manifest.json").unlink()
    voice_corpus(folder)
    assert _corpus(folder) == reference


def _speechinstruct(folder: Path) -> dict:
    """Every parquet shard's rows, the shard records less their timings, the summary, descriptions and card."""
    state = folder / ".speechinstruct"
    records = {
        str(path.relative_to(state)): {**json.loads(path.read_text()), "seconds": None}
        for path in state.glob("*/*-[0-9]*.json")
    }
    return {
        "shards": {str(p.relative_to(folder)): pq.read_table(p).to_pylist() for p in folder.glob("*/*.parquet")},
        "records": records,
        "state": [json.loads((state / name).read_text()) for name in ("summary.json", "descriptions.json")],
        "card": (folder / "README.md").read_text(),
    }


def test_killed_build_speechinstruct_resumes_to_the_same_folder(tmp_path, speech, units):
    def argv(folder: Path) -> list[str]:
        return ["build-speechinstruct", str(folder), "--audio", str(speech), "--unit-tokenizer", str(units)]

    options = ["--configs", "modality_adaptation", "cross_modal", "--shard-size", "2"]
    reference, folder = tmp_path / "reference" / "si", tmp_path / "killed" / "si"  # one name: the cards match
    assert cli_main([*argv(reference), *options]) == 0

    def second_configuration_begun() -> bool:  # 3 shards a configuration
        return len(list(folder.glob(".speechinstruct/*/*-*.json"))) >= 4

    assert kill_when(_cli(*argv(folder), *options), second_configuration_begun)
    assert not (folder / "README.md").exists()
    assert cli_main([*argv(folder), *options]) == 0
    assert _speechinstruct(folder) == _speechinstruct(reference) and not _leftovers(folder)


def _fitted(folder: Path) -> dict:
    texts = {name: (folder / name).read_text() for name in ("config.json", "provenance.json", "README.md")}
    return {**texts, "weights": {k: v.tolist() for k, v in load_file(folder / "model.safetensors").items()}}


def test_fit_units_never_shows_a_half_written_folder_and_a_rerun_gives_the_same_codebook(tmp_path, tones):
    def argv(folder: Path) -> list[str]:
        good = sorted(str(p) for p in tones.glob("tone*.wav"))
        return ["fit-units", *good, "--output-dir", str(folder), "--num-units", "6", "--max-iter", "10"]

    reference, folder = tmp_path / "reference" / "units", tmp_path / "killed" / "units"
    assert cli_main(argv(reference)) == 0
    assert kill_when(_cli(*argv(folder)), lambda: any(folder.parent.glob(".units.partial-*"))) and not folder.exists()
    assert cli_main(argv(folder)) == 0
    assert _fitted(folder) == _fitted(reference) and not _leftovers(folder)


def test_killed_extract_units_resumes_to_the_same_dataset(tmp_path, tones, units):
    def argv(folder: Path) -> list[str]:
        return ["extract-units", str(tones), "--unit-tokenizer", str(units), "--output-dir", str(folder)]

    reference, folder = tmp_path / "reference" / "out", tmp_path / "killed" / "out"
    assert cli_main([*argv(reference), "--shard-size", "2"]) == 0
    shards = folder.with_name("out.shards")
    assert kill_when(_cli(*argv(folder), "--shard-size", "2"), lambda: (shards / "shard-00001").exists())
    assert not folder.exists() and (shards / "extraction.json").exists()
    assert cli_main([*argv(folder), "--shard-size", "2"]) == 0
    expected = load_from_disk(str(reference)).cast_column("audio", Audio(decode=False)).to_list()
    assert load_from_disk(str(folder)).cast_column("audio", Audio(decode=False)).to_list() == expected
    assert not shards.exists() and not _leftovers(folder)


def _truncate(path: Path) -> Path:
    path.write_text(path.read_text()[: len(path.read_text()) // 2])
    return path


def test_a_truncated_shard_record_on_a_rerun_is_one_line_naming_it(tmp_path, speech, units, capsys):
    argv = ["build-speechinstruct", str(tmp_path / "si"), "--audio", str(speech), "--unit-tokenizer", str(units)]
    argv += ["--configs", "cross_modal", "--shard-size", "2"]
    assert cli_main(argv) == 0
    record = _truncate(tmp_path / "si" / ".speechinstruct" / "cross_modal" / "train-00001.json")
    capsys.readouterr()
    assert cli_main(argv) == 2
    error = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert error.startswith(f"speechgpt-hf build-speechinstruct: error: {record} is truncated or corrupt")
    assert "delete it and build again" in error
    record.unlink()
    assert cli_main(argv) == 0 and "2 of 3 shards reused" in capsys.readouterr().out


def _tone_engine(text: str, speaker: str | None = None) -> tuple[np.ndarray, int]:
    return _tone(0.1 * len(text.split()), len(speaker)), SR


def _names(path: Path, way_out: str) -> str:
    """The pattern of an error that names `path` as damaged and gives `way_out`."""
    return f"{re.escape(str(path))} is truncated or corrupt .*{re.escape(way_out)}"


def test_truncated_manifests_timings_and_provenance_are_named_with_the_way_out(tmp_path, tones, units, capsys):
    settings = {"voices": ("tone:a",), "held_out_voices": ("tone:bc",), "engines": {"tone": _tone_engine}}
    build_speech_corpus(tmp_path / "corpus", 2, 1, **settings)
    manifest = _truncate(tmp_path / "corpus" / "manifest.json")
    with pytest.raises(CorruptFileError, match=_names(manifest, "delete it and build again")):
        build_speech_corpus(tmp_path / "corpus", 2, 1, **settings)
    manifest.unlink()
    timings = _truncate(next((tmp_path / "corpus" / "clips").glob("*.words.json")))
    with pytest.raises(CorruptFileError, match=_names(timings, "delete it and build again")):
        build_speech_corpus(tmp_path / "corpus", 2, 1, **settings)

    dataset, shards = audio_dataset(tones), tmp_path / "shards"
    encoded = add_unit_columns_distributed(dataset, str(units), shards, shard_size=4)[0].to_list()
    extraction = _truncate(shards / "extraction.json")
    with pytest.raises(CorruptFileError, match=_names(extraction, f"delete {shards} and run again")):
        add_unit_columns_distributed(dataset, str(units), shards, shard_size=4)
    extraction.unlink()  # shards without the record of what made them are not trusted: they are encoded again
    capsys.readouterr()
    assert add_unit_columns_distributed(dataset, str(units), shards, shard_size=4)[0].to_list() == encoded
    assert "done by an earlier run" not in capsys.readouterr().err

    shutil.copytree(units, tmp_path / "tokenizer")
    step = {"name": "codebook fit", "made_by": "a test"}
    provenance = _truncate(record_provenance(tmp_path / "tokenizer", step))
    with pytest.raises(CorruptFileError, match=_names(provenance, "it only records how the folder was made")):
        record_provenance(tmp_path / "tokenizer", step)


@pytest.mark.parametrize("verb", ["fit-units", "extract-units"])
def test_a_folder_of_other_files_is_not_replaced_by_the_output(verb, tmp_path, tones, units, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    argv = [verb, str(tones / "tone0.wav"), "--output-dir", str(tmp_path), "--unit-tokenizer", str(units)]
    assert cli_main(argv) == 2
    assert "holds other files" in capsys.readouterr().err and (tmp_path / "notes.txt").read_text() == "mine"
