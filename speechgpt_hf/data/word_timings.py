"""Where each word (and phoneme) of a spoken sentence starts and ends, in seconds, offline.

Two routes, both giving a `WordTimings`, and `speak_with_timings` to pick one for a TTS engine:

- `espeak_synthesize`: espeak-ng speaks the text through libespeak-ng (ctypes) and reports word and phoneme events
  with their sample positions from the same synthesis, so the audio and its timings cannot disagree. The audio is
  sample-for-sample what the `espeak-ng` command line writes for the same voice, rate, pitch and word gap.
- `align_words`: pocketsphinx force-aligns any recording to its transcript with its bundled en-us acoustic model
  and dictionary (at 16 kHz, 100 frames a second); words outside the dictionary are spelt from espeak-ng's phonemes.

Piper is timed by alignment. piper-tts (1.8) reports the samples each phoneme lasted only for a voice whose graph
outputs its durations, and it patches a voice that way with the `onnx` package (`piper-tts[alignment]`), which is
not among this package's dependencies; without it the counts are not available offline.

Words are the transcript's whitespace-separated tokens with surrounding punctuation removed (`text_words`); a token
that is only punctuation is not a word. A word's end is the end of its last phoneme (espeak-ng, Piper) or of its
last aligned frame (pocketsphinx): a pause after a word is not part of it, so `ends[i] <= starts[i + 1]` and the gap
between them is silence. espeak-ng pronounces some function-word pairs as one word ("on the", "of the"); the second
word then has no event of its own and the pair's phonemes are shared out between the two in proportion to their
letters.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import re
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ESPEAK = "espeak-ng"
POCKETSPHINX = "pocketsphinx"
TIMING_COLUMNS = ("words", "word_starts", "word_ends")
_WORD_EDGE = re.compile(r"^[^\w']+|[^\w']+$")


class TimingsUnavailable(RuntimeError):
    """A route cannot give timings in this installation (a missing library or package)."""


@dataclass(frozen=True)
class WordTimings:
    """Word (and phoneme) start and end times in seconds from the start of the audio; `source` names the route.

    `phoneme_words[i]` is the index of the word phoneme `i` belongs to, or -1 for a pause or punctuation.
    """

    words: tuple[str, ...]
    starts: tuple[float, ...]
    ends: tuple[float, ...]
    source: str = ""
    phonemes: tuple[str, ...] = ()
    phoneme_starts: tuple[float, ...] = ()
    phoneme_ends: tuple[float, ...] = ()
    phoneme_words: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if not len(self.words) == len(self.starts) == len(self.ends):
            raise ValueError(f"{len(self.words)} words, {len(self.starts)} starts and {len(self.ends)} ends.")
        phoneme_fields = (self.phonemes, self.phoneme_starts, self.phoneme_ends, self.phoneme_words)
        if len({len(values) for values in phoneme_fields}) != 1:
            raise ValueError("phonemes, phoneme_starts, phoneme_ends and phoneme_words must have one length.")

    def columns(self) -> dict[str, list[Any]]:
        """The word columns of a dataset row: `words`, `word_starts`, `word_ends` (seconds, rounded to 0.1 ms)."""
        return {
            "words": list(self.words),
            "word_starts": [round(t, 4) for t in self.starts],
            "word_ends": [round(t, 4) for t in self.ends],
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WordTimings:
        return cls(
            **{key: tuple(value) if isinstance(value, list) else value for key, value in json.loads(text).items()}
        )


def text_words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) character spans of `text`'s whitespace-separated tokens; the word has its surrounding
    punctuation removed, the span covers the whole token, and a token without a letter or digit is left out."""
    spans = []
    for match in re.finditer(r"\S+", text):
        word = _WORD_EDGE.sub("", match.group())
        if any(ch.isalnum() for ch in word):
            spans.append((word, match.start(), match.end()))
    return spans


# ---- espeak-ng through libespeak-ng ----------------------------------------------------------------------------

_WORKER = Path(__file__).with_name("_espeak_synth.py")


@dataclass(frozen=True)
class _SynthEvent:
    kind: int
    text_position: int  # 0-based character offset into the text
    sample: int
    name: str


@functools.lru_cache(maxsize=1)
def espeak_available() -> bool:
    """Whether libespeak-ng loads here."""
    try:
        ctypes.CDLL(ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1")
    except OSError:
        return False
    return True


def espeak_synthesize(
    text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50, word_gap: int = 0
) -> tuple[np.ndarray, int, WordTimings]:
    """Speaks `text` with libespeak-ng: (int16 samples, sampling rate, timings from the same synthesis).

    `voice` is a voice with an optional variant (`en-gb+f2`), `rate` words a minute, `pitch` 0-99, `word_gap` a
    pause between words in units of 10 ms at the default rate (the command line's `-v`, `-s`, `-p` and `-g`); the
    samples equal the command line's. Each synthesis runs in a fresh interpreter (`_espeak_synth.py`) because the
    library carries state from one synthesis to the next. A word starts at its word event (which comes before a
    stop consonant's closure) and ends where its last phoneme does: at the next event, whether the next word, a
    pause or the end of the clause, and never after the next word's start (espeak-ng can place a word's event on
    the last phoneme of the word before, as in "then it"). Raises RuntimeError for a voice espeak-ng lacks,
    TimingsUnavailable without libespeak-ng and ValueError for a text that gives no audio.
    """
    import subprocess

    from . import _espeak_synth

    request = {"text": text, "voice": voice, "rate": int(rate), "pitch": int(pitch), "word_gap": int(word_gap)}
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(_WORKER)], input=json.dumps(request).encode(), capture_output=True
    )
    if result.returncode == _espeak_synth.NO_VOICE:
        raise RuntimeError(f"espeak-ng has no voice {voice!r} (see espeak-ng --voices).")
    if result.returncode == _espeak_synth.UNAVAILABLE:
        raise TimingsUnavailable(
            f"libespeak-ng is unusable ({result.stderr.decode(errors='replace').strip()}); Debian/Ubuntu: "
            "apt-get install espeak-ng."
        )
    if result.returncode != 0:
        raise RuntimeError(f"espeak-ng synthesis failed: {result.stderr.decode(errors='replace')[-500:]}")
    line, _, body = result.stdout.partition(b"\n")
    header = json.loads(line)
    samples = np.frombuffer(body, dtype="<i2", count=header["samples"]).copy()
    if samples.size == 0:
        raise ValueError(f"espeak-ng produced no audio for {text[:40]!r}.")
    events = [_SynthEvent(*event) for event in header["events"]]
    rate_hz = int(header["sampling_rate"])
    return samples, rate_hz, _timings_from_events(text, events, samples.size, rate_hz)


def _timings_from_events(text: str, events: list[_SynthEvent], total: int, sampling_rate: int) -> WordTimings:
    """Words of `text` timed by espeak-ng's events (positions in samples at `sampling_rate`)."""
    from . import _espeak_synth

    spans = text_words(text)
    owner = _token_of(text, spans)
    phonemes: list[tuple[str, int, int, int]] = []  # name, start, end, word (-1: a pause or punctuation)
    word_events: dict[int, int] = {}
    for index, event in enumerate(events):
        word = owner(event.text_position)
        if event.kind == _espeak_synth.WORD and word >= 0:
            word_events.setdefault(word, event.sample)
        if event.kind != _espeak_synth.PHONEME:
            continue
        end = next((e.sample for e in events[index + 1 :] if e.sample > event.sample), max(total, event.sample))
        phonemes.append((event.name, event.sample, end, word if event.name.strip() else -1))
    phonemes = _share_joined_words(phonemes, spans)
    starts, ends = [], []
    for index in range(len(spans)):
        own = [p for p in phonemes if p[3] == index]
        first = min([p[1] for p in own] + ([word_events[index]] if index in word_events else []), default=None)
        if first is None:  # nothing spoken for it: a zero-length word where the previous one ended
            first = ends[-1] if ends else 0
        starts.append(first)
        ends.append(max([p[2] for p in own], default=first))
    for index in range(len(spans) - 1):  # a word event can come before the last phoneme of the word before it
        ends[index] = max(starts[index], min(ends[index], starts[index + 1]))
    seconds = [1.0 / sampling_rate * s for s in (*starts, *ends)]
    return WordTimings(
        words=tuple(word for word, _, _ in spans),
        starts=tuple(seconds[: len(spans)]),
        ends=tuple(seconds[len(spans) :]),
        source=ESPEAK,
        phonemes=tuple(p[0] for p in phonemes),
        phoneme_starts=tuple(p[1] / sampling_rate for p in phonemes),
        phoneme_ends=tuple(p[2] / sampling_rate for p in phonemes),
        phoneme_words=tuple(p[3] for p in phonemes),
    )


def _token_of(text: str, spans: list[tuple[str, int, int]]) -> Any:
    """A function from a character offset to the index of the word whose token holds it (-1: none)."""
    table = np.full(len(text) + 1, -1, dtype=np.int64)
    for index, (_, start, end) in enumerate(spans):
        table[start:end] = index
    return lambda position: int(table[position]) if 0 <= position < len(table) else -1


def _share_joined_words(
    phonemes: list[tuple[str, int, int, int]], spans: list[tuple[str, int, int]]
) -> list[tuple[str, int, int, int]]:
    """Gives words that espeak-ng spoke joined to the word before them ("on the") their share of its phonemes,
    in proportion to letters, keeping at least one phoneme for each word where there are enough."""
    spoken = {p[3] for p in phonemes}
    result = list(phonemes)
    for head in sorted(spoken - {-1}):
        group = [head]
        while group[-1] + 1 < len(spans) and group[-1] + 1 not in spoken:
            group.append(group[-1] + 1)
        if len(group) == 1:
            continue
        positions = [i for i, p in enumerate(result) if p[3] == head]
        letters = np.array([max(1, sum(ch.isalnum() for ch in spans[w][0])) for w in group], dtype=float)
        cuts = np.round(np.cumsum(letters)[:-1] / letters.sum() * len(positions)).astype(int)
        if len(positions) >= len(group):
            cuts = np.clip(cuts, np.arange(1, len(group)), len(positions) - np.arange(len(group) - 1, 0, -1))
        for rank, position in enumerate(positions):
            name, start, end, _ = result[position]
            result[position] = (name, start, end, group[int(np.searchsorted(cuts, rank, side="right"))])
    return result


# ---- pocketsphinx forced alignment -------------------------------------------------------------------------------

_FRAMES_PER_SECOND = 100
_ALIGN_RATE = 16000
# espeak-ng's IPA (stress and length marks removed) to the ARPAbet phones of pocketsphinx's en-us model, for words
# its dictionary lacks.
_IPA_TO_ARPABET = {
    "ə": "AH", "ʌ": "AH", "ɐ": "AH", "æ": "AE", "a": "AE", "ɑ": "AA", "ɒ": "AA", "ɔ": "AO", "o": "OW", "ɛ": "EH",
    "e": "EH", "ɪ": "IH", "ᵻ": "IH", "i": "IY", "ʊ": "UH", "u": "UW", "aɪ": "AY", "aʊ": "AW", "eɪ": "EY",
    "oʊ": "OW", "əʊ": "OW", "ɔɪ": "OY", "ɜ": "ER", "ɚ": "ER", "ɝ": "ER", "ɛɹ": "EH R", "ɪɹ": "IH R",
    "ʊɹ": "UH R", "ɑɹ": "AA R", "ɔɹ": "AO R", "oɹ": "AO R", "aɪɚ": "AY ER", "aʊɚ": "AW ER", "iə": "IY AH",
    "əl": "AH L", "l̩": "AH L", "n̩": "AH N", "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G", "g": "G",
    "f": "F", "v": "V", "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "m": "M",
    "n": "N", "ŋ": "NG", "l": "L", "ɹ": "R", "r": "R", "w": "W", "j": "Y", "tʃ": "CH", "dʒ": "JH", "ɾ": "D",
    "ʔ": "T", "x": "K",
}  # fmt: skip
_IPA_MARKS = re.compile("[ˈˌːˑ]")


class _Aligner:
    """One pocketsphinx decoder in alignment mode for the process, used under a lock."""

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as error:
            raise TimingsUnavailable("Forced alignment needs pocketsphinx: pip install pocketsphinx") from error
        # Beams far wider than recognition's defaults (1e-48, 7e-29, 1e-48): with those, or even 1e-80, alignment
        # of clean espeak-ng speech found no path for 1 sentence in 5; the search is one chain of words, so it stays
        # cheap.
        self._new = functools.partial(
            Decoder, lm=None, bestpath=False, samprate=_ALIGN_RATE, logfn="/dev/null", beam=1e-200, wbeam=1e-200,
            pbeam=1e-200,
        )  # fmt: skip
        self.decoder = self._new()
        self.lock = threading.Lock()

    def spelling(self, word: str) -> str:
        """`word` as the dictionary holds it, added (spelt from espeak-ng's phonemes) when it is missing."""
        key = word.lower()
        if self.decoder.lookup_word(key) is None:
            phones = arpabet(word)
            if not phones:
                raise ValueError(f"No pronunciation for {word!r}: it is not in the dictionary and espeak-ng is absent.")
            self.decoder.add_word(key, " ".join(phones), True)
        return key

    def align(self, pcm: bytes, words: list[str]) -> list[tuple[str, int, int, list[tuple[str, int, int]]]]:
        """(word, start frame, frames, [(phone, start frame, frames)]) of every aligned word and silence."""
        with self.lock:
            keys = [self.spelling(word) for word in words]
            try:
                # The feature front end carries its cepstral mean from one recording to the next, which moved the
                # alignment of 4 clips in 30: starting it afresh makes each alignment independent of what came
                # before, so a corpus build resumed in a new process times its clips as an unbroken one does.
                self.decoder.reinit_feat()
                self.decoder.set_align_text(" ".join(keys))
                for second_pass in (False, True):  # words first, then phones within them
                    if second_pass:
                        self.decoder.set_alignment()
                    self.decoder.start_utt()
                    self.decoder.process_raw(pcm, full_utt=True)
                    self.decoder.end_utt()
                alignment = self.decoder.get_alignment()
            except RuntimeError as error:
                self.decoder = self._new()  # a failed alignment leaves the decoder unable to align the next
                raise ValueError(f"pocketsphinx could not align {' '.join(keys)[:60]!r}: {error}") from error
            if alignment is None:
                self.decoder = self._new()
                raise ValueError(f"pocketsphinx found no alignment of {' '.join(keys)[:60]!r} in the audio.")
            return [
                (entry.name, entry.start, entry.duration, [(p.name, p.start, p.duration) for p in entry])
                for entry in alignment
            ]


@functools.lru_cache(maxsize=1)
def _aligner() -> _Aligner:
    return _Aligner()


def arpabet(word: str) -> list[str]:
    """ARPAbet phones for `word` from espeak-ng's pronunciation (empty when libespeak-ng is absent)."""
    if not espeak_available():
        return []
    phones: list[str] = []
    for name in espeak_synthesize(word, "en-us")[2].phonemes:
        name = _IPA_MARKS.sub("", name)
        while name:
            for size in range(min(3, len(name)), 0, -1):  # the longest known phoneme at the front
                if name[:size] in _IPA_TO_ARPABET:
                    phones += _IPA_TO_ARPABET[name[:size]].split()
                    name = name[size:]
                    break
            else:
                name = name[1:]
    return phones


def align_words(audio: np.ndarray, sampling_rate: int, transcript: str) -> WordTimings:
    """Force-aligns `transcript` to a mono recording with pocketsphinx: word and phone (ARPAbet) start and end times.

    Audio at another rate is resampled to 16 kHz. Times are multiples of 10 ms. A word starts at its first aligned
    frame and ends after its last; silences between words are left out. Raises ValueError when the transcript
    cannot be aligned to the audio (say, the audio is far too short for it).
    """
    from ..audio import read_audio, to_int16

    spans = text_words(transcript)
    if not spans:
        raise ValueError(f"The transcript {transcript[:40]!r} has no words to align.")
    samples, rate = read_audio(audio, int(sampling_rate))
    if rate != _ALIGN_RATE:
        import torch
        import torchaudio

        samples = torchaudio.functional.resample(torch.from_numpy(samples), rate, _ALIGN_RATE).numpy()
    words = [word for word, _, _ in spans]
    entries = [e for e in _aligner().align(to_int16(samples).tobytes(), words) if not e[0].startswith("<")]
    if len(entries) != len(words):
        raise ValueError(f"pocketsphinx aligned {len(entries)} of the {len(words)} words of {transcript[:40]!r}.")
    phones = [(name, start, frames, index) for index, entry in enumerate(entries) for name, start, frames in entry[3]]
    second = 1.0 / _FRAMES_PER_SECOND
    return WordTimings(
        words=tuple(words),
        starts=tuple(start * second for _, start, _, _ in entries),
        ends=tuple((start + frames) * second for _, start, frames, _ in entries),
        source=POCKETSPHINX,
        phonemes=tuple(p[0] for p in phones),
        phoneme_starts=tuple(p[1] * second for p in phones),
        phoneme_ends=tuple((p[1] + p[2]) * second for p in phones),
        phoneme_words=tuple(p[3] for p in phones),
    )


def speak_with_timings(engine: Any, text: str, speaker: str | None = None) -> tuple[np.ndarray, int, WordTimings]:
    """(audio, sampling rate, word timings) of `text` spoken by a TTS engine as `speaker`: from the engine itself
    where it times its own speech (`EspeakTTS.speak_with_timings`), else by aligning its audio with `align_words`."""
    own = getattr(engine, "speak_with_timings", None)
    if callable(own):
        return own(text, speaker=speaker)
    audio, sampling_rate = engine(text, speaker=speaker)
    return audio, sampling_rate, align_words(audio, sampling_rate, text)


__all__ = [
    "ESPEAK",
    "POCKETSPHINX",
    "TIMING_COLUMNS",
    "TimingsUnavailable",
    "WordTimings",
    "align_words",
    "arpabet",
    "espeak_available",
    "espeak_synthesize",
    "speak_with_timings",
    "text_words",
]
