"""The SpeechInstruct builder: templates, determinism, skips, multi-turn, the four chain-of-modality formats, and the
Hub-ready folder (load_dataset, resume, card, CLI). The original jsonl format is tested in
test_speechinstruct_original_format.py, with this module's fixtures."""

import json
import sys
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile

from speechgpt_hf.data.hub_folder import build_speechinstruct_folder
from speechgpt_hf.data.rows import COM_TASKS, TURN_KEYS, estimate_tokens, token_counter
from speechgpt_hf.data.sources import decode_audio, load_instruction_pairs, normalize_transcript
from speechgpt_hf.data.speechinstruct import SpeechInstruct, SpeechInstructConfig
from speechgpt_hf.data.tts_engines import EspeakTTS
from speechgpt_hf.hub.push import IGNORE_PATTERNS
from speechgpt_hf.models.speechgpt.prompt_format import (
    DEFAULT_SYSTEM_PROMPT,
    format_chain_of_modality_instruction,
    format_cross_modal_instruction,
    parse_response,
    units_to_string,
)
from speechgpt_hf.models.speechgpt.task_descriptions import load_task_descriptions
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf_cli import main as cli_main

SENTENCES = [
    "the cat sat on the mat",
    "good morning to everyone here",
    "please open the window",
    "it is raining again today",
    "we will meet at noon",
    "my phone is on the table",
]
PAIRS = [
    {"id": "p0", "instruction": "What is two plus two?", "response": "Two plus two is four."},
    {"id": "p1", "instruction": "Name a red fruit.", "response": "A strawberry is red."},
    {"id": "p2", "instruction": "Say hello.", "response": "Hello there."},
]


@pytest.fixture(scope="module")
def tokenizer() -> SpeechUnitTokenizer:
    return SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=32))


@pytest.fixture(scope="module")
def voices() -> dict[str, tuple[np.ndarray, int]]:
    engine = EspeakTTS(speakers=["en-us+m1", "en-gb+f2"])
    return {text: engine(text, speaker=engine.speakers[i % 2]) for i, text in enumerate(SENTENCES)}


@pytest.fixture(scope="module")
def speech_dataset(voices) -> datasets.Dataset:
    """A datasets Dataset with a decoding Audio column (torchcodec) and LibriSpeech-like columns."""
    rows = {
        "audio": [{"array": audio, "sampling_rate": sr} for audio, sr in voices.values()],
        "text": list(voices),
        "id": [f"utt-{i}" for i in range(len(voices))],
        "speaker_id": [i % 2 for i in range(len(voices))],
    }
    return datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio(sampling_rate=16000))


@pytest.fixture(scope="module")
def speech_folder(tmp_path_factory, voices) -> Path:
    """A local audio folder: good files with sidecar transcripts, plus one of each kind of bad item."""
    folder = tmp_path_factory.mktemp("speech")
    for i, (text, (audio, sr)) in enumerate(voices.items()):
        soundfile.write(folder / f"utt{i}.wav", audio, sr)
        (folder / f"utt{i}.txt").write_text(text)
    soundfile.write(folder / "no_transcript.wav", voices[SENTENCES[0]][0], 22050)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (folder / "corrupt.txt").write_text("broken file")
    soundfile.write(folder / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    (folder / "silent.txt").write_text("nothing to hear")
    long_audio = np.tile(voices[SENTENCES[1]][0], 4)
    soundfile.write(folder / "long.wav", long_audio, 22050)
    (folder / "long.txt").write_text("too long")
    return folder


def _build(config_name: str, tmp_path: Path, **kwargs) -> datasets.Dataset:
    builder = SpeechInstruct(config_name=config_name, cache_dir=str(tmp_path / "cache"), **kwargs)
    builder.download_and_prepare()
    return builder.as_dataset()["train"]


def test_cross_modal_rows_follow_the_paper_template(tmp_path, speech_dataset, tokenizer):
    rows = _build("cross_modal", tmp_path, audio_source=speech_dataset, unit_tokenizer=tokenizer, seed=3)
    asr_descriptions, tts_descriptions = load_task_descriptions(None, "asr"), load_task_descriptions(None, "tts")
    assert len(rows) == len(SENTENCES) and {r["task"] for r in rows} == {"asr", "tts"}
    for row in rows:
        units = row["input_units"] if row["task"] == "asr" else row["output_units"]
        assert units and max(units) < 32 and all(a != b for a, b in zip(units, units[1:], strict=False))
        assert row["text"] == row["prompt"] + row["completion"] and row["prompt"].startswith(DEFAULT_SYSTEM_PROMPT)
        assert row["prompt"].endswith("[SpeechGPT]:") and row["completion"].endswith("<eoa>")
        assert row["source_id"].startswith("utt-") and row["speaker"] in {"0", "1"}
        assert row["input_text"] == row["output_text"] in SENTENCES
        if row["task"] == "asr":
            assert row["instruction"] in asr_descriptions
            assert format_cross_modal_instruction(row["instruction"], units_to_string(units)) in row["prompt"]
            assert parse_response(row["completion"], strict=True).text == row["output_text"]
        else:
            assert row["instruction"] in tts_descriptions
            assert format_cross_modal_instruction(row["instruction"], row["input_text"]) in row["prompt"]
            assert parse_response(row["completion"], num_units=32, strict=True).units == units
    expected = tokenizer.encode(speech_dataset[0]["audio"]).units
    first = rows.filter(lambda r: r["source_id"] == "utt-0")[0]
    assert (first["input_units"] or first["output_units"]) == expected
    only_asr = _build(
        "cross_modal", tmp_path / "asr", audio_source=speech_dataset, unit_tokenizer=tokenizer, asr_probability=1.0
    )
    assert set(only_asr["task"]) == {"asr"}
    both = _build(
        "cross_modal", tmp_path / "both", audio_source=speech_dataset, unit_tokenizer=tokenizer, asr_and_tts=True
    )
    assert sorted(zip(both["source_id"], both["task"], strict=True)) == sorted(
        (row_id, task) for row_id in set(rows["source_id"]) for task in ("asr", "tts")
    )


def test_generation_is_deterministic_for_a_seed_whatever_the_sharding(tmp_path, speech_dataset, tokenizer):
    common = {"audio_source": speech_dataset, "unit_tokenizer": tokenizer, "shard_size": 2}
    first = _build("cross_modal", tmp_path / "a", seed=7, **common).to_list()
    again = _build("cross_modal", tmp_path / "b", seed=7, **common).to_list()
    other = _build("cross_modal", tmp_path / "c", seed=8, **common).to_list()
    assert first == again
    assert [(r["task"], r["instruction"]) for r in first] != [(r["task"], r["instruction"]) for r in other]
    build_speechinstruct_folder(tmp_path / "parallel", ["cross_modal"], num_proc=2, seed=7, **common)
    parallel = datasets.load_dataset(str(tmp_path / "parallel"), "cross_modal", split="train").to_list()
    assert parallel == first


def test_streamed_sources_give_the_same_rows_and_resume(tmp_path, speech_dataset, tokenizer):
    common = {"unit_tokenizer": tokenizer, "shard_size": 4, "seed": 2}
    reference = _build("cross_modal", tmp_path / "map", audio_source=speech_dataset, **common).to_list()
    stream = speech_dataset.to_iterable_dataset(num_shards=2)
    assert _build("cross_modal", tmp_path / "stream", audio_source=stream, **common).to_list() == reference
    first = build_speechinstruct_folder(tmp_path / "out", ["cross_modal"], audio_source=stream, **common)
    assert sorted(p.name for p in (tmp_path / "out" / "cross_modal").iterdir()) == [
        "train-00000.parquet",
        "train-00001.parquet",
    ]
    again = build_speechinstruct_folder(tmp_path / "out", ["cross_modal"], audio_source=stream, **common)
    assert (first["cross_modal"]["train"].reused_shards, again["cross_modal"]["train"].reused_shards) == (0, 2)
    assert datasets.load_dataset(str(tmp_path / "out"), "cross_modal", split="train").to_list() == reference


def test_encoder_tokenizers_hash_by_weights_and_work_in_worker_processes(tmp_path, speech_dataset):
    import torch
    from transformers import HubertConfig

    hubert = HubertConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )

    def encoder_tokenizer(seed: int) -> SpeechUnitTokenizer:
        torch.manual_seed(seed)
        config = SpeechUnitTokenizerConfig(feature_type="encoder", encoder_config=hubert, layer=2, num_units=20)
        return SpeechUnitTokenizer(config).eval()

    source = speech_dataset.select(range(4))
    builders = [
        SpeechInstruct(
            config_name="modality_adaptation",
            cache_dir=str(tmp_path / "cache"),
            audio_source=source,
            unit_tokenizer=encoder_tokenizer(seed),
            shard_size=2,
        )
        for seed in (0, 0, 1)
    ]
    assert builders[0].config_id == builders[1].config_id != builders[2].config_id
    builders[0].download_and_prepare(num_proc=2)  # the weight-normed encoder travels to the workers by state dict
    in_workers = builders[0].as_dataset()["train"]
    assert in_workers["input_units"] == [builders[1].workbench.encode(*decode_audio(a)) for a in source["audio"]]


def test_bad_items_are_skipped_and_counted_by_reason(tmp_path, speech_folder, tokenizer):
    summary = build_speechinstruct_folder(
        tmp_path / "out",
        ["modality_adaptation", "cross_modal"],
        audio_source=str(speech_folder),
        unit_tokenizer=tokenizer,
        max_audio_seconds=6.0,
    )
    cross = summary["cross_modal"]["train"]
    assert cross.items == len(SENTENCES) + 4 and cross.rows == len(SENTENCES)
    assert cross.skipped == Counter(
        {"missing transcript": 1, "corrupt audio": 1, "empty or silent audio": 1, "too long": 1}
    )
    assert cross.skipped.names == {
        "missing transcript": ["no_transcript.wav"],
        "corrupt audio": ["corrupt.wav"],
        "empty or silent audio": ["silent.wav"],
        "too long": ["long.wav"],
    }
    stage1 = summary["modality_adaptation"]["train"]
    assert stage1.rows == len(SENTENCES) + 1  # unlabelled speech needs no transcript
    assert stage1.skipped == Counter({"corrupt audio": 1, "empty or silent audio": 1, "too long": 1})
    saved = json.loads((tmp_path / "out" / ".speechinstruct" / "summary.json").read_text())
    assert saved["cross_modal"]["train"]["skipped_names"] == cross.skipped.names
    assert saved["modality_adaptation"]["train"]["skipped_names"]["corrupt audio"] == ["corrupt.wav"]
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| `cross_modal` | train | missing transcript | 1 |" in card
    assert "corrupt.wav" not in card  # the card, pushed to the Hub, counts the skipped files without naming them
    other_units = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=16))
    with pytest.raises(ValueError, match="other settings \\(unit_tokenizer\\)"):
        build_speechinstruct_folder(
            tmp_path / "out",
            ["cross_modal"],
            audio_source=str(speech_folder),
            unit_tokenizer=other_units,
            max_audio_seconds=6.0,
        )
    assert f"| `cross_modal` | 2: cross-modal | train | {len(SENTENCES)} | {len(SENTENCES) + 4} | 4 |" in card


def test_a_corrupt_file_in_a_decoding_audio_column_is_skipped_and_named(tmp_path, speech_folder, tokenizer):
    files = [str(speech_folder / name) for name in ("utt0.wav", "corrupt.wav", "utt1.wav")]
    source = datasets.Dataset.from_dict({"audio": files}).cast_column("audio", datasets.Audio(sampling_rate=16000))
    summary = build_speechinstruct_folder(
        tmp_path / "out", ["modality_adaptation"], audio_source=source, unit_tokenizer=tokenizer
    )
    stage1 = summary["modality_adaptation"]["train"]
    assert stage1.rows == 2 and stage1.skipped.names == {"corrupt audio": [files[1]]}
    rows = datasets.load_dataset(str(tmp_path / "out"), "modality_adaptation", split="train")
    expected = [tokenizer.encode(*decode_audio(source[i]["audio"])).units for i in (0, 2)]
    assert rows["input_units"] == expected  # decoded as the Audio feature decodes, resampling included


def test_multi_turn_rows_stay_within_the_token_limit(tmp_path, speech_dataset, tokenizer):
    limit = 3 * estimate_tokens(DEFAULT_SYSTEM_PROMPT)
    rows = _build(
        "cross_modal",
        tmp_path,
        audio_source=speech_dataset,
        unit_tokenizer=tokenizer,
        multi_turn_probability=1.0,
        max_turns=3,
        max_tokens=limit,
    )
    assert sum(1 + len(r["history"]) for r in rows) == len(SENTENCES)
    assert any(r["history"] for r in rows) and all(len(r["history"]) < 3 for r in rows)
    for row in rows:
        assert estimate_tokens(row["text"]) <= limit
        assert row["text"] == row["prompt"] + row["completion"]
        assert row["prompt"].count("[Human]: ") == len(row["history"]) + 1
        assert row["id"].count("+") == len(row["history"])
        for turn in row["history"]:
            assert set(turn) == set(TURN_KEYS)
    from speechgpt_hf.testing_utils import build_tiny_tokenizer

    text_tokenizer = build_tiny_tokenizer()
    exact = _build(
        "cross_modal",
        tmp_path / "exact",
        audio_source=speech_dataset,
        unit_tokenizer=tokenizer,
        multi_turn_probability=1.0,
        max_tokens=1000,
        tokenizer=text_tokenizer,
    )
    count = token_counter(text_tokenizer)  # this tiny BPE splits every unit into several tokens
    assert all(count(text) <= 1000 for text in exact["text"]) and count("<sosp><1><eosp>") > 3
    assert sum(1 + len(h) for h in exact["history"]) == len(SENTENCES)
    too_small = build_speechinstruct_folder(
        tmp_path / "small", ["cross_modal"], audio_source=speech_dataset, unit_tokenizer=tokenizer, max_tokens=20
    )
    assert too_small["cross_modal"]["train"].skipped == Counter({"too long": len(SENTENCES)})


def test_chain_of_modality_gives_the_four_formats_with_real_speech_units(tmp_path, tokenizer):
    engine = EspeakTTS(speakers=["en-us+f3"])
    rows = _build(
        "chain_of_modality",
        tmp_path,
        instructions=datasets.Dataset.from_list(PAIRS),
        unit_tokenizer=tokenizer,
        tts=engine,
    )
    assert len(rows) == 4 * len(PAIRS) and Counter(rows["task"]) == Counter({t: len(PAIRS) for t in COM_TASKS})
    spoken_answer = tokenizer.encode(engine(PAIRS[0]["response"])[0], sampling_rate=22050).units
    for row in rows:
        answer = parse_response(row["completion"], num_units=32, strict=True)
        speech_in, speech_out = (m.value == "speech" for m in COM_TASKS[row["task"]])
        assert row["speaker"] == "espeak-ng:en-us+f3" and row["instruction"] == row["input_text"]
        assert answer.text == row["output_text"] and (answer.transcript == row["input_text"]) == speech_in
        assert bool(row["input_units"]) == speech_in and bool(row["output_units"]) == speech_out
        assert (answer.units or []) == row["output_units"]
        content = units_to_string(row["input_units"]) if speech_in else row["input_text"]
        request = format_chain_of_modality_instruction(content, *COM_TASKS[row["task"]])
        assert row["prompt"].endswith(f"[Human]: {request} <eoh>. [SpeechGPT]:")
        assert f"instruction in {COM_TASKS[row['task']][0].value}: {content}" in row["prompt"]
        assert f"Please answer in {COM_TASKS[row['task']][1].value}." in row["prompt"]
        if speech_out and row["source_id"] == "p0":
            assert row["output_units"] == spoken_answer
    calls = []

    def tone(text: str) -> tuple[np.ndarray, int]:
        calls.append(text)
        return np.sin(np.arange(16000 * len(text) // 10) * 0.3 * (1 + len(text) % 5)).astype(np.float32), 16000

    one_each = _build(
        "chain_of_modality",
        tmp_path / "one",
        instructions=PAIRS,
        unit_tokenizer=tokenizer,
        tts=tone,
        com_all_tasks=False,
        seed=1,
    )
    assert len(one_each) == len(PAIRS) and set(one_each["speaker"]) == {"tone:tone"}
    assert len(calls) == sum(sum(m.value == "speech" for m in COM_TASKS[task]) for task in one_each["task"])


def test_modality_adaptation_rows_are_unit_sequences(tmp_path, speech_dataset, tokenizer):
    rows = _build("modality_adaptation", tmp_path, audio_source=speech_dataset, unit_tokenizer=tokenizer)
    assert len(rows) == len(SENTENCES)
    for row in rows:
        assert row["text"] == row["completion"] == units_to_string(row["input_units"]) and row["prompt"] == ""
        assert row["input_text"] in SENTENCES and row["output_units"] == []


def test_cli_writes_a_loadable_resumable_hub_folder(tmp_path, speech_folder, tokenizer, local_hub, capsys):
    tokenizer.save_pretrained(tmp_path / "units")
    out = tmp_path / "cli-speechinstruct"  # datasets caches local folders by name: keep it unique in the session
    argv = [
        "build-speechinstruct",
        str(out),
        "--audio",
        str(speech_folder),
        "--unit-tokenizer",
        str(tmp_path / "units"),
        "--tts",
        "espeak-ng",
        "--instructions",
        str(tmp_path / "pairs.json"),
        "--shard-size",
        "4",
        "--max-audio-seconds",
        "6",
    ]
    (tmp_path / "pairs.json").write_text(
        json.dumps([{"question": p["instruction"], "answer": p["response"]} for p in PAIRS])
    )
    assert cli_main(argv) == 0
    out_text = capsys.readouterr().out
    assert "cross_modal/train: 6 rows from 10 items; skipped" in out_text
    assert "  corrupt audio (1):\n    corrupt.wav\n" in out_text and "Every skipped item is named in" in out_text
    expected = {"modality_adaptation": len(SENTENCES) + 1, "cross_modal": len(SENTENCES), "chain_of_modality": 12}
    assert datasets.get_dataset_config_names(str(out)) == sorted(expected)
    loaded = {name: datasets.load_dataset(str(out), name, split="train") for name in expected}
    assert {name: len(ds) for name, ds in loaded.items()} == expected
    assert set(loaded["cross_modal"].features) >= {"prompt", "completion", "text", "input_units", "history"}
    card = (out / "README.md").read_text()
    assert "3 instruction pairs from the local file 'pairs.json'" in card and str(tmp_path) not in card
    shards = sorted((out / "cross_modal").glob("*.parquet"))
    # The first shard holds the four bad files (sorted first): all skipped, so it has a record but no file.
    assert [p.name for p in shards] == [f"train-0000{i}-of-00003.parquet" for i in (1, 2)]
    stamp, content = shards[1].stat().st_mtime_ns, shards[0].read_bytes()
    shards[0].unlink()
    assert cli_main(argv + ["--configs", "cross_modal"]) == 0
    out_text = capsys.readouterr().out
    assert "2 of 3 shards reused" in out_text
    assert "    corrupt.wav\n" in out_text  # skipped in the first run: its shard's record still names it
    assert shards[0].read_bytes() == content and shards[1].stat().st_mtime_ns == stamp
    assert cli_main(argv + ["--configs", "cross_modal", "--seed", "5"]) == 2  # a user's mistake: one line
    assert "other settings (seed)" in capsys.readouterr().err
    settings = out / ".speechinstruct" / "cross_modal" / "settings.json"
    old = json.loads(settings.read_text())
    settings.write_text(json.dumps({**old, "builder_version": "1.0.0"}))  # rows rendered by an older builder
    assert cli_main(argv + ["--configs", "cross_modal"]) == 2
    assert "other settings (builder_version)" in capsys.readouterr().err
    settings.write_text(json.dumps(old))
    local_hub(out, "someone/speechinstruct", repo_type="dataset")
    from huggingface_hub import snapshot_download

    snapshot = snapshot_download("someone/speechinstruct", repo_type="dataset")
    assert len(datasets.load_dataset(snapshot, "chain_of_modality", split="train")) == 12


def test_push_to_hub_uploads_as_speechgpt_hf_push_does(tmp_path, tokenizer, monkeypatch, capsys):
    from huggingface_hub import HfApi

    calls = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.setdefault("create", (repo_id, kw)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.update(upload=kw) or "done")
    out = tmp_path / "out"
    tokenizer.save_pretrained(tmp_path / "units")
    (tmp_path / "pairs.json").write_text(json.dumps(PAIRS[:2]))
    argv = ["build-speechinstruct", str(out), "--unit-tokenizer", str(tmp_path / "units"), "--tts", "espeak-ng"]
    argv += ["--instructions", str(tmp_path / "pairs.json"), "--push-to-hub", "someone/speechinstruct", "--private"]
    assert cli_main(argv) == 0
    assert calls["create"] == ("someone/speechinstruct", {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert calls["upload"]["repo_type"] == "dataset" and calls["upload"]["ignore_patterns"] == IGNORE_PATTERNS
    assert ".speechinstruct/**" in IGNORE_PATTERNS and "Pushed to done" in capsys.readouterr().out


def test_transcripts_lose_corpus_tags_that_would_look_like_markers():
    assert normalize_transcript("AS THEY SAID <COMMA> WELL <PERIOD>") == "AS THEY SAID, WELL."
    assert normalize_transcript("hello <unk> world <12>") == "hello world"
    assert normalize_transcript("<SIL>") == normalize_transcript(None) == ""


def test_cli_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["build-speechinstruct", "--help"])
    assert exit_info.value.code == 0 and "--push-to-hub" in capsys.readouterr().out


def test_inputs_are_checked_with_clear_errors(tmp_path):
    assert len(load_task_descriptions(None, "asr")) == len(set(load_task_descriptions(None, "asr"))) == 100
    assert len(set(load_task_descriptions(None, "tts"))) == 100
    builtin = load_instruction_pairs()
    assert len(builtin) >= 50 and all(p["instruction"] and p["response"] for p in builtin)
    alpaca = load_instruction_pairs(
        [{"instruction": "Translate to French.", "input": "Good night.", "output": "Bonne nuit."}]
    )
    assert alpaca == [
        {"id": "pair-000000", "instruction": "Translate to French.\nGood night.", "response": "Bonne nuit."}
    ]
    with pytest.raises(ValueError, match="needs one of"):
        load_instruction_pairs([{"prompt_text": "x", "reply": "y"}])
    with pytest.raises(ValueError, match="Unknown SpeechInstruct configuration"):
        SpeechInstructConfig(name="stage4")
    with pytest.raises(ValueError, match="com_tasks"):
        SpeechInstructConfig(name="chain_of_modality", com_tasks=("speech_to_music",))
    with pytest.raises(ValueError, match="needs audio_source"):
        SpeechInstruct(config_name="cross_modal", cache_dir=str(tmp_path)).plan()
    assert cli_main(["build-speechinstruct", str(tmp_path / "x"), "--configs", "cross_modal"]) == 2


def _build_failure(tmp_path: Path, config_name: str, **kwargs) -> BaseException:
    """What stopped a build (datasets wraps it in a DatasetGenerationError)."""
    with pytest.raises(datasets.exceptions.DatasetGenerationError) as caught:
        _build(config_name, tmp_path, **kwargs)
    return caught.value.__cause__


def test_missing_libraries_and_bugs_stop_the_build_instead_of_counting_corrupt_audio(
    tmp_path, speech_folder, tokenizer, monkeypatch, decoding_bug
):
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "soundfile", None)
        error = _build_failure(
            tmp_path / "a", "modality_adaptation", audio_source=str(speech_folder), unit_tokenizer=tokenizer
        )
    assert isinstance(error, ImportError) and "pip install soundfile" in str(error)
    decoding_bug()
    error = _build_failure(
        tmp_path / "b", "modality_adaptation", audio_source=str(speech_folder), unit_tokenizer=tokenizer
    )
    assert isinstance(error, TypeError) and "a bug" in str(error)


def test_a_tts_engine_refusing_a_text_skips_it_and_a_broken_engine_stops_the_build(tmp_path, tokenizer):
    def picky(text: str) -> tuple[np.ndarray, int]:
        if "red" in text:
            raise ValueError("cannot voice this text")
        return np.sin(np.arange(8000) * 0.3).astype(np.float32), 16000

    summary = build_speechinstruct_folder(
        tmp_path / "out", ["chain_of_modality"], instructions=PAIRS, unit_tokenizer=tokenizer, tts=picky
    )
    assert summary["chain_of_modality"]["train"].skipped == Counter({"TTS failed": 1})

    def broken(text: str) -> tuple[np.ndarray, int]:
        raise RuntimeError("the engine's process died")

    error = _build_failure(
        tmp_path / "broken", "chain_of_modality", instructions=PAIRS, unit_tokenizer=tokenizer, tts=broken
    )
    assert isinstance(error, RuntimeError) and "process died" in str(error)
