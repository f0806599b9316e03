"""New sentences spoken by splicing heard words' units: the spans cut by word timings, one speaker per sentence,
and the SpeechInstruct builder's `spliced_asr_rows` (never a transcript of the source, resumable only with the
same sentences)."""

import random

import datasets
import numpy as np
import pytest

from speechgpt_hf.data.hub_folder import build_speechinstruct_folder
from speechgpt_hf.data.speechinstruct import SpeechInstructConfig
from speechgpt_hf.data.word_splicing import WordSpliceBank, read_sentences, word_unit_spans
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig


def test_word_spans_follow_the_unit_onsets_at_50_frames_a_second():
    durations = [5, 5, 5, 5, 5, 5]  # unit i starts at 0.1 i seconds
    assert word_unit_spans(durations, [0.0, 0.2, 0.4], [0.2, 0.4, 0.5]) == [(0, 2), (2, 4), (4, 5)]
    # a word shorter than a unit gets the unit sounding at its start
    assert word_unit_spans(durations, [0.23], [0.26]) == [(2, 3)]
    assert word_unit_spans([10, 10], [0.0, 0.1], [0.1, 0.2], frames_per_second=100) == [(0, 1), (1, 2)]


def _bank() -> WordSpliceBank:
    bank = WordSpliceBank()
    five = [5] * 6
    bank.add("a", "The cat sat.", [10, 11, 12, 13, 14, 15], five, ["The", "cat", "sat"], [0, 0.2, 0.4], [0.2, 0.4, 0.5])
    bank.add("a", "A dog ran!", [20, 21, 22, 23, 24, 25], five, ["A", "dog", "ran"], [0, 0.2, 0.4], [0.2, 0.4, 0.5])
    bank.add("b", "The cow sat.", [30, 31, 32, 33, 34, 35], five, ["The", "cow", "sat"], [0, 0.2, 0.4], [0.2, 0.4, 0.5])
    return bank


def test_a_new_sentence_is_spliced_from_one_speakers_words_and_ends_in_their_silence():
    bank = _bank()
    speaker, units = bank.speak("The dog sat?", random.Random(0))
    assert speaker == "a"  # only speaker a said "dog"
    assert units == [10, 11, 22, 23, 14] + [15] or units == [10, 11, 22, 23, 14] + [25]
    # "cow" was said by b alone and "dog" by a alone: no one voice says both
    assert bank.speak("The cow ran", random.Random(0)) is None
    assert bank.speak("The horse sat", random.Random(0)) is None  # never heard
    assert bank.speak("the CAT sat", random.Random(0)) is None  # a transcript heard already teaches nothing new


def test_mixed_speakers_say_what_no_single_speaker_said_word_by_word():
    bank = _bank()
    bank.mix_speakers = True
    speaker, units = bank.speak("The cow ran", random.Random(0))  # "cow" only b said, "ran" only a
    assert speaker == "a+b" and units[2:5] == [32, 33, 24] and units[-1] in (15, 25)
    assert bank.speak("The horse sat", random.Random(0)) is None
    assert bank.speak("The dog sat", random.Random(0))[0] == "a"  # one voice still says it when it can


def test_repeated_units_at_a_joint_merge_as_the_tokenizer_merges_them():
    bank = WordSpliceBank()
    bank.add("a", "x y", [1, 2, 3], [5, 5, 5], ["x", "y"], [0.0, 0.1], [0.1, 0.2])
    bank.add("a", "y x", [2, 1, 4], [5, 5, 5], ["y", "x"], [0.0, 0.1], [0.1, 0.2])
    spoken = bank.speak_many(["y y", "x x"], 5, random.Random(0))
    assert [text for text, _, _ in spoken] == ["y y", "x x"]
    assert all(all(a != b for a, b in zip(units, units[1:], strict=False)) for _, _, units in spoken)


def test_sentences_come_from_a_list_or_a_file(tmp_path):
    (tmp_path / "s.txt").write_text("One two.\n\n  Three four  \n", encoding="utf-8")
    expected = ["One two.", "Three four"]
    assert read_sentences(tmp_path / "s.txt") == read_sentences(["One two.", "", "Three four"]) == expected
    with pytest.raises(FileNotFoundError, match="one sentence a line"):
        read_sentences(tmp_path / "missing.txt")


def _timed_source() -> datasets.Dataset:
    """Four utterances of two speakers, each word a tone of its own pitch, 0.3 s a word."""
    texts = {"s1": ["red cat sat", "blue dog ran"], "s2": ["red dog sat", "blue cat ran"]}
    pitch = {"red": 300, "blue": 500, "cat": 700, "dog": 900, "sat": 1100, "ran": 1300}
    rows = []
    for speaker, sentences in texts.items():
        for text in sentences:
            words = text.split()
            t = np.arange(int(0.3 * 16000)) / 16000
            audio = np.concatenate([0.3 * np.sin(2 * np.pi * pitch[w] * t) for w in words] + [np.zeros(3200)])
            rows.append(
                {
                    "audio": {"array": audio.astype(np.float32), "sampling_rate": 16000},
                    "text": text,
                    "speaker": speaker,
                    "id": f"{speaker}-{text.replace(' ', '-')}",
                    "words": words,
                    "word_starts": [0.3 * i for i in range(len(words))],
                    "word_ends": [0.3 * (i + 1) for i in range(len(words))],
                }
            )
    return datasets.Dataset.from_list(rows).cast_column("audio", datasets.Audio(sampling_rate=16000))


def test_the_builder_adds_spliced_asr_rows_and_refuses_to_resume_with_other_sentences(tmp_path):
    source = _timed_source()
    tokenizer = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=16))
    sentences = ["red cat ran", "blue dog sat", "red dog sat", "green cat sat", "blue cat sat", "red cat sat"]
    common = {"audio_source": source, "unit_tokenizer": tokenizer, "asr_and_tts": True, "spliced_texts": sentences}
    build_speechinstruct_folder(tmp_path / "si", {"cross_modal": {"spliced_asr_rows": 1}}, **common)
    rows = datasets.load_dataset("parquet", data_files=str(tmp_path / "si" / "cross_modal" / "*.parquet"))["train"]
    spliced = [row for row in rows if row["source_id"].startswith("spliced-")]
    assert len(rows) == 2 * len(source) + len(spliced)
    # "red dog sat" and "red cat sat" are transcripts already, "green" was never said: three can be spoken
    assert sorted(row["output_text"] for row in spliced) == ["blue cat sat", "blue dog sat", "red cat ran"]
    assert all(row["task"] == "asr" and row["input_units"] and row["speaker"] in ("s1", "s2") for row in spliced)
    with pytest.raises(ValueError, match="spliced_texts"):
        build_speechinstruct_folder(
            tmp_path / "si", {"cross_modal": {"spliced_asr_rows": 1}}, **{**common, "spliced_texts": sentences[:3]}
        )


def test_spliced_rows_need_sentences():
    with pytest.raises(ValueError, match="spliced_texts"):
        SpeechInstructConfig(name="cross_modal", spliced_asr_rows=2)
    with pytest.raises(ValueError, match="0 or more"):
        SpeechInstructConfig(name="cross_modal", spliced_asr_rows=-1, spliced_texts=["a b"])


def test_a_source_without_word_timings_gets_no_spliced_rows_and_a_warning_that_says_why(tmp_path, caplog):
    source = _timed_source().remove_columns(["words", "word_starts", "word_ends"])
    tokenizer = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=16))
    settings = {"spliced_asr_rows": 2, "spliced_texts": ["red cat ran"]}
    with caplog.at_level("WARNING", logger="speechgpt_hf.data.speechinstruct"):
        build_speechinstruct_folder(
            tmp_path / "si", {"cross_modal": settings}, audio_source=source, unit_tokenizer=tokenizer
        )
    rows = datasets.load_dataset("parquet", data_files=str(tmp_path / "si" / "cross_modal" / "*.parquet"))["train"]
    assert len(rows) == len(source) and not any(s.startswith("spliced-") for s in rows["source_id"])
    assert "none of 4 utterances has word timings" in caplog.text
