"""One espeak-ng synthesis through libespeak-ng (ctypes), with its word and phoneme events; run as a script.

libespeak-ng keeps state from one synthesis to the next in a process (a second synthesis of the same text comes
out a few samples longer or shorter), so `speechgpt_hf.data.word_timings` runs this file in a fresh interpreter
for each synthesis: the audio is then exactly what the `espeak-ng` command line writes. It uses the standard
library only, so the interpreter starts quickly. Input: a JSON request on stdin (text, voice, rate, pitch,
word_gap). Output on stdout: one JSON line (sampling rate, sample count, events), then the samples as int16.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys
from typing import Any

WORD, SENTENCE, END, PHONEME = 1, 2, 5, 7
_KEPT_EVENTS = (WORD, SENTENCE, END, PHONEME)
_RATE, _PITCH, _WORDGAP = 1, 3, 7
_SYNCHRONOUS = 2
_PHONEME_EVENTS, _IPA, _DONT_EXIT = 0x0001, 0x0002, 0x8000
_CHARS_UTF8, _PHONEME_INPUT, _END_PAUSE = 1, 0x100, 0x1000  # the flags the espeak-ng command line synthesises with
_POS_CHARACTER = 1
UNAVAILABLE, NO_VOICE = 3, 4  # exit statuses


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def synthesize(text: str, voice: str, rate: int, pitch: int, word_gap: int) -> tuple[int, bytes, list[list[Any]]]:
    """(sampling rate, int16 samples, events as [type, 0-based character, sample, phoneme]) of one synthesis.

    Raises OSError when libespeak-ng is missing and LookupError for a voice it does not have (looked up by name,
    then by language, as the command line does)."""
    lib = ctypes.CDLL(ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1")
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
        ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]  # fmt: skip
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
    sampling_rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, None, _PHONEME_EVENTS | _IPA | _DONT_EXIT)
    if sampling_rate <= 0:
        raise OSError(f"espeak_Initialize failed ({sampling_rate}): is espeak-ng-data installed?")
    chunks: list[bytes] = []
    events: list[list[Any]] = []

    def receive(wav: Any, count: int, event_list: Any) -> int:
        if wav and count > 0:
            chunks.append(ctypes.string_at(wav, count * 2))
        index = 0
        while event_list[index].type != 0:
            event = event_list[index]
            if event.type in _KEPT_EVENTS:
                name = event.id.string.decode("utf-8", "replace") if event.type == PHONEME else ""
                events.append([event.type, event.text_position - 1, event.sample, name])
            index += 1
        return 0

    callback = _CALLBACK(receive)
    lib.espeak_SetSynthCallback(callback)
    name = voice.encode("utf-8")
    if lib.espeak_SetVoiceByName(name) != 0 and lib.espeak_SetVoiceByProperties(_Voice(languages=name)) != 0:
        raise LookupError(voice)
    for parameter, value in ((_RATE, rate), (_PITCH, pitch), (_WORDGAP, word_gap)):
        lib.espeak_SetParameter(parameter, int(value), 0)
    encoded = text.encode("utf-8")
    flags = _CHARS_UTF8 | _PHONEME_INPUT | _END_PAUSE
    status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, flags, None, None)
    lib.espeak_Synchronize()
    if status != 0:
        raise OSError(f"espeak_Synth failed with status {status}")
    return sampling_rate, b"".join(chunks), events


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    try:
        rate, samples, events = synthesize(**request)
    except LookupError:
        return NO_VOICE
    except OSError as error:
        sys.stderr.write(f"{error}\n")
        return UNAVAILABLE
    header = {"sampling_rate": rate, "samples": len(samples) // 2, "events": events}
    sys.stdout.buffer.write(json.dumps(header).encode() + b"\n" + samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
