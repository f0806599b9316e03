"""SpeechInstruct in the release's original jsonl format (a `prefix` and a `plain_text` a line): built rows written
and read back, and the release's layouts parsed, in any spacing, and written back byte for byte. The fixtures and the
build helper are test_speechinstruct.py's."""

import json
from collections import Counter

import pytest
from test_speechinstruct import PAIRS, _build, speech_dataset, tokenizer, voices  # noqa: F401  (fixtures)

from speechgpt_hf.data.original_format import (
    iter_original_jsonl,
    original_jsonl_to_dataset,
    parse_original_record,
    to_original_record,
    write_original_jsonl,
)
from speechgpt_hf.data.rows import TURN_KEYS


def test_original_jsonl_round_trip_and_the_released_layout(tmp_path, speech_dataset, tokenizer):  # noqa: F811
    cross = _build(
        "cross_modal",
        tmp_path / "cm",
        audio_source=speech_dataset,
        unit_tokenizer=tokenizer,
        multi_turn_probability=0.6,
        system_prompt="Be brief.\n",
    )
    com = _build(
        "chain_of_modality", tmp_path / "com", instructions=PAIRS[:1], unit_tokenizer=tokenizer, tts="espeak-ng"
    )
    stage1 = _build(
        "modality_adaptation", tmp_path / "ma", audio_source=speech_dataset.select(range(2)), unit_tokenizer=tokenizer
    )
    rows = [*cross, *com, *stage1]
    path = tmp_path / "speechinstruct.jsonl"
    assert write_original_jsonl(rows, path) == len(rows)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert set(records[0]) == {"prefix", "plain_text"} and records[0]["prefix"] == "Be brief.\n"
    read_back = list(iter_original_jsonl(path))
    assert original_jsonl_to_dataset(path).to_list() == read_back
    compared = [k for k in TURN_KEYS if k not in ("speaker", "source_id")] + ["text", "prompt", "completion"]
    for original, restored in zip(rows, read_back, strict=True):
        kept = [k for k in compared if not (k == "input_text" and original["task"] == "modality_adaptation")]
        assert {k: restored[k] for k in kept} == {k: original[k] for k in kept}  # bare unit rows lose transcripts
        assert len(restored["history"]) == len(original["history"])
    released_asr = {
        "prefix": "P",
        "plain_text": "[Human]: Transcribe it. This is input: <sosp><5><9><eosp><eoh> [SpeechGPT]: hello world<eoa> ",
    }
    asr = parse_original_record(released_asr, "r0")
    assert (asr["task"], asr["input_units"], asr["output_text"]) == ("asr", [5, 9], "hello world")
    released_com = {
        "prefix": "P",
        "plain_text": "[Human]: <sosp><1><2><eosp><eoh>. [SpeechGPT]: what is up; [ta] "
        "Not much.; [ua] <sosp><3><eosp><eoa>.",
    }
    com_row = parse_original_record(released_com, "r1")
    assert (com_row["task"], com_row["input_text"], com_row["output_text"], com_row["output_units"]) == (
        "speech_to_speech",
        "what is up",
        "Not much.",
        [3],
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(released_asr) + "\n" + json.dumps({"prefix": "P", "plain_text": "no turns"}) + "\n")
    with pytest.raises(ValueError, match="line 2"):
        list(iter_original_jsonl(bad))
    skipped = Counter()
    assert len(list(iter_original_jsonl(bad, skipped=skipped))) == 1 and skipped == {"malformed record": 1}


# Records written by hand in the release's layouts (the cross-modal and chain-of-modality files), one line each.
RELEASED_LINES = [
    {
        "prefix": "You are SpeechGPT.\n",
        "plain_text": "[Human]: Transcribe the speech. This is input: <sosp><5><9><eosp>"
        "<eoh> [SpeechGPT]: hello world<eoa> ",
    },
    {
        "prefix": "You are SpeechGPT.\n",
        "plain_text": "[Human]: Read this text aloud. This is input: good morning<eoh> "
        "[SpeechGPT]: <sosp><7><3><7><eosp><eoa> ",
    },
    {
        "prefix": "You are SpeechGPT.\n",
        "plain_text": "[Human]: <sosp><1><2><eosp><eoh>. [SpeechGPT]: what is up; [ta] "
        "Not much.; [ua] <sosp><3><eosp><eoa>.",
    },
    {"prefix": "P", "plain_text": "[Human]: <sosp><1><2><eosp><eoh>. [SpeechGPT]: what is up; [ta] Not much.<eoa>."},
    {"prefix": "P", "plain_text": "[Human]: what is up<eoh>. [SpeechGPT]: [ta] Not much.; [ua] <sosp><3><eosp><eoa>."},
    {"prefix": "P", "plain_text": "[Human]: what is up<eoh>. [SpeechGPT]: [ta] Not much.<eoa>."},
    {
        "prefix": "P",
        "plain_text": "[Human]: Say it. This is input: hi<eoh> [SpeechGPT]: <sosp><1><eosp><eoa> [Human]: "
        "Write it down. This is input: <sosp><2><eosp><eoh> [SpeechGPT]: hi<eoa> ",
    },
]
RELEASED_TASKS = ["asr", "tts", "speech_to_speech", "speech_to_text", "text_to_speech", "text_to_text", "asr"]


def test_the_original_layouts_are_written_back_byte_for_byte(tmp_path):
    released = tmp_path / "released.jsonl"
    released.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RELEASED_LINES).encode())
    rows = list(iter_original_jsonl(released))
    assert [row["task"] for row in rows] == RELEASED_TASKS
    for row, record in zip(rows, RELEASED_LINES, strict=True):
        assert row["prompt"].startswith(record["prefix"] + "[Human]: ")  # the prefix is the system prompt
    written = tmp_path / "written.jsonl"
    write_original_jsonl(rows, written)
    assert written.read_bytes() == released.read_bytes()
    assert (rows[2]["input_units"], rows[2]["input_text"], rows[2]["output_text"], rows[2]["output_units"]) == (
        [1, 2],
        "what is up",
        "Not much.",
        [3],
    )


def test_original_records_read_the_same_in_any_spacing_and_with_this_packages_instructions():
    reference = [parse_original_record(record, "r") for record in RELEASED_LINES]
    decoded = [  # as the release's slow tokenizer decodes them, with spaces around every added token
        {
            **r,
            "plain_text": r["plain_text"]
            .replace("<", " <")
            .replace(">", "> ")
            .replace("[SpeechGPT]:", "[SpeechGPT] :"),
        }
        for r in RELEASED_LINES
    ]
    ours = [  # this package's training text: its own chain-of-modality instructions as the human turn
        {"prefix": r["prefix"], "plain_text": row["text"][len(r["prefix"]) :]}
        for r, row in zip(RELEASED_LINES, reference, strict=True)
    ]
    assert "Here is an instruction in speech: <sosp><1><2><eosp>\nPlease answer in speech." in ours[2]["plain_text"]
    for variant in (decoded, ours):
        rows = [parse_original_record(record, "r") for record in variant]
        assert [{k: row[k] for k in TURN_KEYS} for row in rows] == [{k: row[k] for k in TURN_KEYS} for row in reference]
        assert [to_original_record(row) for row in rows] == RELEASED_LINES
