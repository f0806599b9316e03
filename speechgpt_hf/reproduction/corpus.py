"""A held-out English speech corpus that builds offline, to show whether a recipe generalises.

Sentences come from a small generative grammar (`corpus_grammar`) plus a few dozen hand-written sentences.
`split_sentences` reserves a slice of the nouns and adjectives for the test set only, so the test set holds both
sentences with words never seen in training and new combinations of training words; `check_split` checks that no
test sentence and no reserved word reaches training. `build_speech_corpus` voices the split with Piper and espeak-ng
voices, holding out at least one voice, and saves a DatasetDict.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speechgpt_hf.audio import SAMPLING_RATE
from speechgpt_hf.data.tts_engines import EspeakTTS, PiperTTS, TTSEngine, resolve_tts
from speechgpt_hf.safe_files import atomic_path, atomic_write_text, read_json_file, staged_folder

from . import corpus_timings
from .corpus_grammar import GRAMMAR_PATH, MAX_WORDS, MIN_WORDS, Grammar, generate_sentences, normalise

if TYPE_CHECKING:
    from datasets import DatasetDict

NEW_WORDS, NEW_COMBINATION, TRAINING = "new_words", "new_combination", "train"
DEFAULT_VOICES = (
    "piper:joe", "piper:joe-slow", "piper:joe-fast", "espeak:en-us", "espeak:en-gb",
    "espeak:en-us+m3", "espeak:en-us+f2", "espeak:en-us+f3",
)  # fmt: skip
DEFAULT_HELD_OUT_VOICES = ("espeak:en-gb-x-rp",)  # no training voice is an en-gb-x-rp variant


def words_of(sentences: Iterable[str]) -> set[str]:
    """Every normalised word of `sentences`."""
    return {word for sentence in sentences for word in normalise(sentence).split()}


@dataclass(frozen=True)
class CorpusSplit:
    """Training and held-out sentences; `test_kinds` says, per test sentence, `new_words` or `new_combination`."""

    train: tuple[str, ...]
    test: tuple[str, ...]
    test_kinds: tuple[str, ...]
    reserved_words: tuple[str, ...]
    seed: int

    @property
    def test_only_words(self) -> list[str]:
        """The words of test sentences that no training sentence uses."""
        return sorted(words_of(self.test) - words_of(self.train))


def reserve_words(grammar: Grammar, fraction: float, seed: int | str) -> frozenset[str]:
    """Every form of `fraction` (at least one) of each noun and adjective kind: words kept for testing only."""
    if fraction <= 0:
        return frozenset()
    rng = random.Random(f"{seed}:reserve")
    reserved: set[str] = set()
    for _, entries in sorted(grammar.reservable().items()):
        ordered = sorted(entries, key=sorted)
        for forms in rng.sample(ordered, max(1, round(fraction * len(ordered)))):
            reserved |= forms
    return frozenset(reserved)


def split_sentences(
    num_train: int,
    num_test: int,
    seed: int = 0,
    held_out_fraction: float = 0.1,
    new_word_share: float = 0.5,
    grammar: Grammar | None = None,
) -> CorpusSplit:
    """Training and held-out sentences: `new_word_share` of the test set uses words reserved from training
    (`held_out_fraction` of each noun and adjective kind), the rest are new combinations of training words.
    Hand-written sentences join whichever side their words allow."""
    grammar = grammar or Grammar.load()
    reserved = reserve_words(grammar, held_out_fraction, seed)
    written = [s for s in grammar.rules["sentences"] if MIN_WORDS <= len(normalise(s).split()) <= MAX_WORDS]
    random.Random(f"{seed}:written").shuffle(written)
    written_new = [s for s in written if words_of([s]) & reserved]
    written_known = [s for s in written if s not in written_new]
    num_new = round(num_test * new_word_share) if reserved else 0
    known_test = min(round(len(written_known) * num_test / max(1, num_train + num_test)), num_test - num_new)
    train = written_known[known_test:][:num_train]
    train += generate_sentences(num_train - len(train), f"{seed}:train", grammar, exclude=reserved, taken=written)
    new = written_new[:num_new]
    new += generate_sentences(num_new - len(new), f"{seed}:new", grammar, require=reserved, taken=train + written)
    combined = written_known[:known_test]
    combined += generate_sentences(
        num_test - num_new - len(combined), f"{seed}:combined", grammar, exclude=reserved, taken=train + new + written
    )
    kinds = (NEW_WORDS,) * len(new) + (NEW_COMBINATION,) * len(combined)
    return CorpusSplit(tuple(train), tuple(new + combined), kinds, tuple(sorted(reserved)), seed)


def check_split(split: CorpusSplit) -> None:
    """Raises ValueError if a held-out sentence (normalised) or a reserved word reaches training, or a side
    repeats a sentence; returns None when the split is clean."""
    train_keys = [normalise(s) for s in split.train]
    test_keys = [normalise(s) for s in split.test]
    for name, keys in (("training", train_keys), ("test", test_keys)):
        if len(set(keys)) != len(keys):
            raise ValueError(f"The {name} sentences repeat themselves ({len(keys) - len(set(keys))} duplicates).")
    leaked = sorted(set(test_keys) & set(train_keys))
    if leaked:
        raise ValueError(f"{len(leaked)} held-out sentences are also in training, e.g. {leaked[0]!r}.")
    leaked_words = sorted(set(split.reserved_words) & words_of(split.train))
    if leaked_words:
        raise ValueError(f"Words reserved for testing occur in training sentences: {leaked_words[:10]}.")


@dataclass(frozen=True)
class _Utterance:
    split: str
    id: str
    text: str
    voice: str
    kind: str

    @property
    def clip_name(self) -> str:
        """A clip file named by what it says and who says it, so a rerun with other settings reuses only matches."""
        digest = hashlib.sha1(f"{self.voice}\n{self.text}".encode()).hexdigest()[:20]
        return f"{digest}.flac"


def _plan(split: CorpusSplit, voices: Sequence[str], held_out_voices: Sequence[str]) -> list[_Utterance]:
    """Every utterance to make: each training sentence once in a training voice; each held-out sentence once in
    a training voice ("test") and once in a held-out voice ("test_voice"), voices taken in turn."""
    order = list(voices)
    random.Random(f"{split.seed}:voices").shuffle(order)

    def utterances(
        name: str, texts: Sequence[str], kinds: Sequence[str], speakers: Sequence[str], offset: int = 0
    ) -> list[_Utterance]:
        return [
            _Utterance(name, f"{name}-{i:05d}", text, speakers[(i + offset) % len(speakers)], kind)
            for i, (text, kind) in enumerate(zip(texts, kinds, strict=True))
        ]

    return (
        utterances("train", split.train, [TRAINING] * len(split.train), order)
        + utterances("test", split.test, split.test_kinds, order, offset=len(split.train))
        + utterances("test_voice", split.test, split.test_kinds, held_out_voices)
    )


def _check_voices(voices: Sequence[str], held_out_voices: Sequence[str], engines: Mapping[str, Any]) -> None:
    if not voices or not held_out_voices:
        raise ValueError("Give at least one training voice and one held-out voice, e.g. 'piper:joe', 'espeak:en-gb'.")
    for voice in [*voices, *held_out_voices]:
        engine, colon, speaker = voice.partition(":")
        if not colon or not speaker:
            raise ValueError(f"Voice {voice!r} is not 'engine:speaker' (e.g. 'piper:joe' or 'espeak:en-gb+f2').")
        if engine not in engines and engine not in ("piper", "espeak"):
            raise ValueError(f"Voice {voice!r} names engine {engine!r}: use piper, espeak or pass it in engines=.")
    shared = sorted(set(voices) & set(held_out_voices))
    if shared:
        raise ValueError(f"Voices {shared} are both training and held-out voices; a held-out voice must be unseen.")


def _engines(needed: Sequence[str], given: Mapping[str, Any]) -> dict[str, TTSEngine]:
    """One engine a voice prefix: the given ones (engines or callables), else Piper or espeak-ng with the speakers
    asked for."""
    speakers: dict[str, list[str]] = {}
    for voice in needed:
        engine, _, speaker = voice.partition(":")
        speakers.setdefault(engine, []).append(speaker)
    defaults = {"piper": lambda names: PiperTTS(speakers=names), "espeak": lambda names: EspeakTTS(speakers=names)}
    return {
        name: resolve_tts(given[name]) if name in given else defaults[name](sorted(set(names)))
        for name, names in speakers.items()
    }


@functools.lru_cache(maxsize=8)
def _resampler(sampling_rate: int) -> Any:
    import torchaudio

    return torchaudio.transforms.Resample(sampling_rate, SAMPLING_RATE)


def _write_clip(path: Path, audio: np.ndarray, sampling_rate: int) -> None:
    """Writes 16 kHz 16-bit FLAC through a temporary file, so an interrupted build leaves no half clip."""
    import soundfile
    import torch

    if audio.size == 0 or not np.isfinite(audio).all():
        raise ValueError("the engine returned empty or non-finite audio")
    if sampling_rate != SAMPLING_RATE:
        with torch.no_grad():
            audio = _resampler(sampling_rate)(torch.from_numpy(audio)).numpy()
    with atomic_path(path) as staging:
        soundfile.write(staging, np.clip(audio, -1.0, 1.0), SAMPLING_RATE, format="FLAC", subtype="PCM_16")


def _voice(utterances: list[_Utterance], clips: Path, engines: Mapping[str, Any]) -> list[dict[str, str]]:
    """Voices every utterance without a clip yet, and times every clip without timings; returns the utterances
    the engine could not speak."""
    from tqdm.auto import tqdm

    missing = [u for u in utterances if not corpus_timings.timings_path(clips / u.clip_name).exists()]
    if not missing:
        return []
    resolved = _engines([u.voice for u in missing], engines)
    failures: list[dict[str, str]] = []
    progress = tqdm(missing, desc="voicing sentences", unit="sentence")
    for utterance in progress:
        engine, _, speaker = utterance.voice.partition(":")
        try:
            corpus_timings.voice_clip(
                resolved[engine], utterance.text, speaker, clips / utterance.clip_name, _write_clip
            )
        except ValueError as error:  # the engines' contract: a text they cannot voice; anything else is a bug
            failures.append(
                {
                    "id": utterance.id,
                    "voice": utterance.voice,
                    "text": utterance.text,
                    "error": f"{type(error).__name__}: {error}",
                }
            )
            progress.set_postfix(skipped=len(failures))
    _refuse_silent_voices(utterances, clips, failures)
    return failures


def _refuse_silent_voices(utterances: list[_Utterance], clips: Path, failures: list[dict[str, str]]) -> None:
    """A voice without a single clip is a set-up error (a misspelt voice, a broken engine), not a hard sentence."""
    for voice in sorted({failure["voice"] for failure in failures}):
        if not any((clips / u.clip_name).exists() for u in utterances if u.voice == voice):
            error = next(f["error"] for f in failures if f["voice"] == voice)
            raise RuntimeError(f"Voice {voice!r} could not speak any of its sentences: {error}")


def _dataset_dict(utterances: list[_Utterance], clips: Path) -> DatasetDict:
    """The three splits over the clips that exist; clip files are referenced here and embedded on saving."""
    import datasets

    string = datasets.Value("string")
    features = datasets.Features(
        {
            "audio": datasets.Audio(sampling_rate=SAMPLING_RATE),
            "text": string,
            "speaker": string,
            "id": string,
            "kind": string,
            **corpus_timings.timing_features(),
        }
    )
    splits = {}
    for name in ("train", "test", "test_voice"):
        rows = [u for u in utterances if u.split == name and (clips / u.clip_name).exists()]
        table = {
            "audio": [str(clips / u.clip_name) for u in rows],
            "text": [u.text for u in rows],
            "speaker": [u.voice for u in rows],
            "id": [u.id for u in rows],
            "kind": [u.kind for u in rows],
            **corpus_timings.timing_columns([clips / u.clip_name for u in rows]),
        }
        splits[name] = datasets.Dataset.from_dict(table, features=features)
    return datasets.DatasetDict(splits)


def _manifest(
    settings: dict[str, Any], split: CorpusSplit, corpus: DatasetDict, skipped: list[dict[str, str]], seconds: float
) -> dict[str, Any]:
    """What a build made: its settings, counts, skipped sentences, test-only words and voices."""
    return {
        "settings": settings,
        "counts": {name: len(rows) for name, rows in corpus.items()},
        "sentences": {
            "train": len(split.train),
            NEW_WORDS: split.test_kinds.count(NEW_WORDS),
            NEW_COMBINATION: split.test_kinds.count(NEW_COMBINATION),
        },
        "skipped": {"count": len(skipped), "items": skipped},
        "test_only_words": split.test_only_words,
        "reserved_words": list(split.reserved_words),
        "voices": settings["voices"],
        "held_out_voices": settings["held_out_voices"],
        "seed": settings["seed"],
        "voicing_seconds": round(seconds, 1),
        "untimed": {name: sum(not words for words in rows["words"]) for name, rows in corpus.items()},
    }


def _finished(manifest_path: Path, dataset_path: Path, settings: dict[str, Any]) -> bool:
    """Whether a build with these settings finished there: its manifest, written last, says so."""
    if not (manifest_path.exists() and dataset_path.exists()):
        return False
    way_out = "delete it and build again: the clips kept in clips/ are reused and the dataset is saved anew."
    return read_json_file(manifest_path, way_out).get("settings") == settings


def build_speech_corpus(
    output_dir: str | Path,
    num_train: int,
    num_test: int,
    voices: Sequence[str] = DEFAULT_VOICES,
    held_out_voices: Sequence[str] = DEFAULT_HELD_OUT_VOICES,
    seed: int = 0,
    held_out_fraction: float = 0.1,
    engines: Mapping[str, TTSEngine | Callable[..., Any]] | None = None,
    words_per_kind: int | None = None,
) -> DatasetDict:
    """Voices a held-out split into a DatasetDict: "train", "test" (held-out sentences, training voices) and
    "test_voice" (held-out sentences, held-out voices), columns audio (16 kHz), text, speaker, id, kind, and
    the word timings `words`, `word_starts`, `word_ends` (seconds; see `speechgpt_hf.reproduction.corpus_timings`:
    espeak-ng's own events for espeak-ng voices, pocketsphinx alignment for the others).

    A voice is `engine:speaker`: `piper:joe` (or joe-slow, joe-fast) and espeak-ng voices such as
    `espeak:en-gb+f2`; `engines` maps other prefixes (or overrides these) to an engine or callable. Clips are
    kept in `output_dir/clips` by text and voice, so an interrupted build resumes, and a finished build with the
    same settings is loaded, not redone (delete manifest.json to retry skipped sentences). A sentence an engine
    cannot speak is skipped and listed in manifest.json with the counts, voices, seed and test-only words.
    `words_per_kind` narrows the grammar (`Grammar.narrowed`) so that a small corpus repeats each word often;
    `held_out_fraction=0` reserves no words, so every held-out sentence is a new combination of training words.
    Voicing speed measured on 2 CPU cores at a load average near 5 (other jobs running), resampling and writing
    included: Piper 0.47 s a sentence, espeak-ng 0.04 s; 5000 Piper sentences take about 40 minutes there.
    """
    import datasets

    engines = dict(engines or {})
    _check_voices(voices, held_out_voices, engines)
    output = Path(output_dir)
    settings = {
        "num_train": num_train,
        "num_test": num_test,
        "voices": list(voices),
        "seed": seed,
        "held_out_voices": list(held_out_voices),
        "held_out_fraction": held_out_fraction,
        "words_per_kind": words_per_kind,
        "sampling_rate": SAMPLING_RATE,
        "grammar": hashlib.sha1(GRAMMAR_PATH.read_bytes()).hexdigest(),
        "word_timings": corpus_timings.TIMINGS_VERSION,
    }
    manifest_path, dataset_path = output / "manifest.json", output / "dataset"
    if _finished(manifest_path, dataset_path, settings):
        return datasets.load_from_disk(str(dataset_path))
    grammar = Grammar.load() if words_per_kind is None else Grammar.load().narrowed(words_per_kind)
    split = split_sentences(num_train, num_test, seed=seed, held_out_fraction=held_out_fraction, grammar=grammar)
    check_split(split)
    utterances = _plan(split, voices, held_out_voices)
    (output / "clips").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    skipped = _voice(utterances, output / "clips", engines)
    corpus = _dataset_dict(utterances, output / "clips")
    manifest_path.unlink(missing_ok=True)  # the mark of a finished build goes before the dataset it vouches for
    empty = {name: 1 for name, rows in corpus.items() if len(rows) == 0}  # datasets cannot reload a zero-shard split
    with staged_folder(dataset_path) as staging:
        corpus.save_to_disk(str(staging), num_shards=empty)
    manifest = _manifest(settings, split, corpus, skipped, time.perf_counter() - started)
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    return datasets.load_from_disk(str(dataset_path))


__all__ = [
    "DEFAULT_HELD_OUT_VOICES",
    "DEFAULT_VOICES",
    "NEW_COMBINATION",
    "NEW_WORDS",
    "SAMPLING_RATE",
    "CorpusSplit",
    "build_speech_corpus",
    "check_split",
    "reserve_words",
    "split_sentences",
    "words_of",
]
