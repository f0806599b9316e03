"""Word timings as columns of the speech corpus and of the SpeechInstruct rows built from it; a corpus cached before
the columns existed is rebuilt with them, reusing its clips."""

import json

import datasets
import numpy as np
import pytest

from speechgpt_hf.data.original_format import write_original_jsonl
from speechgpt_hf.data.rows import WORD_TIMING_FIELDS
from speechgpt_hf.data.speechinstruct import SpeechInstruct
from speechgpt_hf.data.tts_engines import CallableTTS, EspeakTTS
from speechgpt_hf.data.word_timings import espeak_synthesize, text_words
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.reproduction.corpus import build_speech_corpus

COLUMNS = list(WORD_TIMING_FIELDS)


def _plain_espeak() -> CallableTTS:
    """espeak-ng's audio without its own timings: the corpus must align it."""
    engine = EspeakTTS(speakers=["en-us"])
    return CallableTTS(lambda text, speaker=None: engine(text), name="plain", speakers=["x"])


def _settings() -> dict:
    return {
        "num_train": 4,
        "num_test": 1,
        "voices": ("espeak:en-us+m3", "plain:x"),
        "held_out_voices": ("espeak:en-gb-x-rp",),
        "engines": {"plain": _plain_espeak()},
    }


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    build_speech_corpus(folder, **_settings())
    return folder


def test_every_clip_has_its_words_timed_inside_it(corpus_dir):
    corpus = build_speech_corpus(corpus_dir, **_settings())
    for name, rows in corpus.items():
        assert {"words", "word_starts", "word_ends"} <= set(rows.column_names)
        for row in rows:
            samples = row["audio"].get_all_samples()
            seconds = samples.data.shape[-1] / samples.sample_rate
            starts, ends = np.array(row["word_starts"]), np.array(row["word_ends"])
            assert row["words"] == [word for word, _, _ in text_words(row["text"])], (name, row["speaker"])
            assert (np.diff(starts) > 0).all() and (ends > starts).all() and ends[-1] <= seconds + 0.01
            if row["speaker"] == "plain:x":  # aligned by pocketsphinx: near what espeak-ng itself reports
                own = espeak_synthesize(row["text"], "en-us", rate=165)[2]
                assert np.abs(starts - np.array(own.starts)).mean() < 0.05
    assert json.loads((corpus_dir / "manifest.json").read_text())["untimed"] == {"train": 0, "test": 0, "test_voice": 0}


def test_a_corpus_cached_without_the_columns_is_rebuilt_with_them_from_its_clips(corpus_dir, tmp_path):
    corpus = build_speech_corpus(corpus_dir, **_settings())
    expected = {name: rows.select_columns(COLUMNS).to_list() for name, rows in corpus.items()}
    clips = sorted((corpus_dir / "clips").glob("*.flac"))
    before = {clip.name: clip.read_bytes() for clip in clips}
    # what an older build left: no timing files, no columns, and settings without the timing version
    for path in (corpus_dir / "clips").glob("*.words.json"):
        path.unlink()
    manifest = json.loads((corpus_dir / "manifest.json").read_text())
    del manifest["settings"]["word_timings"]
    (corpus_dir / "manifest.json").write_text(json.dumps(manifest))
    old = datasets.DatasetDict({name: rows.remove_columns(COLUMNS) for name, rows in corpus.items()})
    old.save_to_disk(str(tmp_path / "old"))
    old = datasets.load_from_disk(str(tmp_path / "old"))
    old.save_to_disk(str(corpus_dir / "dataset"))
    rebuilt = build_speech_corpus(corpus_dir, **_settings())
    assert {clip.name: clip.read_bytes() for clip in clips} == before
    assert {name: rows.select_columns(COLUMNS).to_list() for name, rows in rebuilt.items()} == expected
    assert all(row["words"] for rows in expected.values() for row in rows)


def test_speechinstruct_rows_carry_the_timings_of_their_recording(corpus_dir, tmp_path):
    train = build_speech_corpus(corpus_dir, **_settings())["train"]
    by_id = {row["id"]: row for row in train.remove_columns("audio")}
    tokenizer = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=32))
    for config in ("cross_modal", "modality_adaptation"):
        builder = SpeechInstruct(
            config_name=config, cache_dir=str(tmp_path / config), audio_source=train, unit_tokenizer=tokenizer
        )
        builder.download_and_prepare()
        rows = builder.as_dataset()["train"]
        assert len(rows) == len(train) and set(COLUMNS) <= set(rows.column_names)
        for row in rows:
            source = by_id[row["source_id"]]
            assert row["words"] == source["words"] and row["word_starts"] == pytest.approx(source["word_starts"])
            assert row["word_ends"] == pytest.approx(source["word_ends"])
    # the release's jsonl layout does not carry them: the same file with and without the columns
    cross = SpeechInstruct(
        config_name="cross_modal", cache_dir=str(tmp_path / "cross_modal"), audio_source=train, unit_tokenizer=tokenizer
    )
    rows = cross.as_dataset()["train"].to_list()
    write_original_jsonl(rows, tmp_path / "with.jsonl")
    write_original_jsonl([{k: v for k, v in r.items() if k not in COLUMNS} for r in rows], tmp_path / "without.jsonl")
    assert (tmp_path / "with.jsonl").read_bytes() == (tmp_path / "without.jsonl").read_bytes()
    assert all(row["words"] for row in rows)
