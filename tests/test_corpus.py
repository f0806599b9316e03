"""The held-out corpus: reproducible distinct sentences, held-out words and voices, resumable offline voicing."""

import json
import re
import shutil
from collections import Counter

import numpy as np
import pytest

from speechgpt_hf.reproduction.corpus import (
    NEW_COMBINATION,
    NEW_WORDS,
    CorpusSplit,
    build_speech_corpus,
    check_split,
    split_sentences,
    words_of,
)
from speechgpt_hf.reproduction.corpus_grammar import MAX_WORDS, MIN_WORDS, Grammar, generate_sentences, normalise


@pytest.fixture(scope="module")
def split() -> CorpusSplit:
    return split_sentences(3000, 400, seed=7)


def test_sentences_are_reproducible_distinct_and_of_bounded_length():
    sentences = generate_sentences(3000, seed=1)
    assert sentences == generate_sentences(3000, seed=1)
    assert sentences != generate_sentences(3000, seed=2)
    assert len({normalise(s) for s in sentences}) == 3000
    assert all(MIN_WORDS <= len(normalise(s).split()) <= MAX_WORDS for s in sentences)
    shapes = Counter(
        "question" if s.endswith("?") else "request" if re.match(r"(Please|Let's|Don't)", s) else "other"
        for s in sentences
    )
    assert min(shapes.values()) > 300
    assert {"does", "is", "am", "goes", "went"} <= words_of(sentences)  # agreement and tense forms all occur


def test_grammar_words_are_unambiguous_and_written_sentences_fit():
    grammar = Grammar.load()
    entries = [forms for group in grammar.reservable().values() for forms in group]
    counts = Counter(word for forms in entries for word in forms)
    assert [word for word, n in counts.items() if n > 1] == []
    fixed = words_of([re.sub(r"\{\w+\}", " ", t) for texts in grammar.rules["templates"].values() for t in texts])
    fixed |= words_of([t for times in grammar.rules["times"].values() for t in times])
    fixed |= {form for verb in grammar.verbs for form in (verb.base, verb.third, verb.past, verb.ing)}
    assert sorted(fixed & set(counts)) == []  # no reservable word in a template, time phrase or verb
    vocabulary = set(counts) | fixed | set(grammar.rules["numbers"])
    assert len(vocabulary) > 300
    written = grammar.rules["sentences"]
    assert len(written) >= 36 and len({normalise(s) for s in written}) == len(written)
    assert all(MIN_WORDS <= len(normalise(s).split()) <= MAX_WORDS for s in written)


def test_split_holds_out_sentences_and_words(split):
    check_split(split)
    assert (len(split.train), len(split.test)) == (3000, 400)
    assert Counter(split.test_kinds) == {NEW_WORDS: 200, NEW_COMBINATION: 200}
    reserved, train_words = set(split.reserved_words), words_of(split.train)
    assert not reserved & train_words
    assert not {normalise(s) for s in split.test} & {normalise(s) for s in split.train}
    for sentence, kind in zip(split.test, split.test_kinds, strict=True):
        assert bool(words_of([sentence]) & reserved) == (kind == NEW_WORDS), sentence
    assert len(set(split.test_only_words) & reserved) > 20
    written = {normalise(s) for s in Grammar.load().rules["sentences"]}
    assert written & {normalise(s) for s in split.train} and written & {normalise(s) for s in split.test}
    assert split_sentences(3000, 400, seed=7) == split


def test_check_split_names_each_kind_of_leak(split):
    leaked_sentence = CorpusSplit(split.train + split.test[-1:], split.test, split.test_kinds, split.reserved_words, 7)
    with pytest.raises(ValueError, match="held-out sentences are also in training"):
        check_split(leaked_sentence)
    word = split.reserved_words[0]
    leaked_word = CorpusSplit(
        (*split.train, f"I like the {word} a lot."), split.test, split.test_kinds, split.reserved_words, 7
    )
    with pytest.raises(ValueError, match=f"reserved for testing.*{word}"):
        check_split(leaked_word)
    with pytest.raises(ValueError, match="repeat"):
        check_split(CorpusSplit(split.train + split.train[:1], (), (), (), 7))


class _ToneEngine:
    """A fast stand-in TTS: a tone a word at 22.05 kHz; it cannot speak the sentence `refuse`."""

    def __init__(self, refuse: str) -> None:
        self.refuse, self.calls = refuse, 0

    def __call__(self, text: str, speaker: str | None = None) -> tuple[np.ndarray, int]:
        self.calls += 1
        if text == self.refuse:
            raise ValueError("cannot speak this")
        pitch = 200 + 40 * ord(speaker[-1]) % 300
        t = np.arange(int(0.1 * 22050 * len(text.split()))) / 22050
        return (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32), 22050


def test_speech_corpus_splits_voices_skips_and_resumes(tmp_path):
    refused = split_sentences(6, 3, seed=5).train[2]
    engine = _ToneEngine(refused)
    settings = {
        "num_train": 6,
        "num_test": 3,
        "voices": ("tone:a", "tone:b"),
        "held_out_voices": ("tone:c",),
        "seed": 5,
        "engines": {"tone": engine},
    }
    corpus = build_speech_corpus(tmp_path, **settings)
    assert {name: len(rows) for name, rows in corpus.items()} == {"train": 5, "test": 3, "test_voice": 3}
    assert set(corpus["train"]["speaker"]) == set(corpus["test"]["speaker"]) == {"tone:a", "tone:b"}
    assert set(corpus["test_voice"]["speaker"]) == {"tone:c"} and refused not in corpus["train"]["text"]
    assert corpus["test"]["text"] == corpus["test_voice"]["text"]
    assert not set(corpus["test"]["text"]) & set(corpus["train"]["text"])
    audio = corpus["train"][0]["audio"].get_all_samples()
    assert (
        audio.sample_rate == 16000
        and abs(audio.data.shape[-1] / 16000 - 0.1 * len(corpus["train"][0]["text"].split())) < 0.01
    )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["skipped"]["count"] == 1 and manifest["skipped"]["items"][0]["text"] == refused
    assert manifest["counts"]["train"] == 5 and manifest["held_out_voices"] == ["tone:c"]
    assert manifest["test_only_words"] and set(manifest["test_only_words"]) <= words_of(corpus["test"]["text"])
    assert engine.calls == 12
    again = build_speech_corpus(tmp_path, **settings)
    assert engine.calls == 12 and again["train"]["id"] == corpus["train"]["id"]
    (tmp_path / "manifest.json").unlink()
    build_speech_corpus(tmp_path, **settings)
    assert engine.calls == 13  # only the skipped sentence was tried again; every clip was reused
    shutil.rmtree(tmp_path / "clips")  # the saved dataset holds its audio itself
    assert build_speech_corpus(tmp_path, **settings)["test"][2]["audio"].get_all_samples().data.abs().max() > 0.2


class _BrokenEngine(_ToneEngine):
    """An engine with a bug: every call fails with an error that is not the contract's ValueError."""

    def __call__(self, text: str, speaker: str | None = None) -> tuple[np.ndarray, int]:
        raise KeyError("speaker table not loaded")


def test_speech_corpus_stops_on_an_engine_bug_instead_of_skipping(tmp_path):
    engines = {"tone": _BrokenEngine(refuse="")}
    with pytest.raises(KeyError, match="speaker table"):
        build_speech_corpus(tmp_path, 3, 1, voices=("tone:a",), held_out_voices=("tone:b",), engines=engines)
    assert not (tmp_path / "manifest.json").exists()


def test_speech_corpus_without_test_sentences_saves_empty_held_out_splits(tmp_path):
    corpus = build_speech_corpus(
        tmp_path, 3, 0, voices=("tone:a",), held_out_voices=("tone:b",), engines={"tone": _ToneEngine(refuse="")}
    )
    assert {name: len(rows) for name, rows in corpus.items()} == {"train": 3, "test": 0, "test_voice": 0}


def test_speech_corpus_refuses_bad_voices(tmp_path):
    with pytest.raises(ValueError, match="both training and held-out"):
        build_speech_corpus(tmp_path, 2, 1, voices=("piper:joe",), held_out_voices=("piper:joe",))
    with pytest.raises(ValueError, match="'engine:speaker'"):
        build_speech_corpus(tmp_path, 2, 1, voices=("joe",))
    with pytest.raises(ValueError, match="names engine 'festival'"):
        build_speech_corpus(tmp_path, 2, 1, held_out_voices=("festival:kal",))
    with pytest.raises(RuntimeError, match="could not speak any"):
        build_speech_corpus(
            tmp_path,
            2,
            1,
            voices=("tone:a",),
            held_out_voices=("tone:b",),
            engines={"tone": lambda text, speaker=None: (np.zeros(0), 16000)},
        )


def test_real_piper_and_espeak_voice_two_sentences(tmp_path):
    corpus = build_speech_corpus(tmp_path, 1, 1, voices=("piper:joe",), held_out_voices=("espeak:en-gb-scotland+m4",))
    assert [len(corpus[name]) for name in ("train", "test", "test_voice")] == [1, 1, 1]
    for name in ("train", "test_voice"):
        samples = corpus[name][0]["audio"].get_all_samples()
        seconds = samples.data.shape[-1] / samples.sample_rate
        assert samples.sample_rate == 16000 and 0.8 < seconds < 8 and samples.data.abs().max() > 0.05
    assert corpus["test_voice"][0]["speaker"] == "espeak:en-gb-scotland+m4"


def test_a_narrowed_grammar_repeats_few_words_and_can_hold_out_none():
    full, narrow = Grammar.load(), Grammar.load().narrowed(2)
    assert all(len(nouns) <= 2 for nouns in narrow.nouns.values()) and not narrow.rules["sentences"]
    assert all(len(words) <= 2 for words in narrow.adjectives.values()) and len(narrow.verbs) < len(full.verbs)
    split = split_sentences(480, 20, seed=3, held_out_fraction=0.0, grammar=narrow)
    check_split(split)
    train_words = words_of(split.train)
    assert not split.reserved_words and set(split.test_kinds) == {NEW_COMBINATION}
    assert len(train_words) < 200 < len(words_of(split_sentences(480, 20, seed=3).train))
    # each word is heard many times: the median word occurs in over ten training sentences
    counts = Counter(word for sentence in split.train for word in set(normalise(sentence).split()))
    assert sorted(counts.values())[len(counts) // 2] > 10
    with pytest.raises(ValueError, match="per_kind"):
        full.narrowed(0)
