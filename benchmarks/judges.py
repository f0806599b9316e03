"""Which offline judge to trust: Whisper tiny.en (converted, through transformers) vs pocketsphinx, per voice.

Piper's joe voice (three speaking rates) and every English espeak-ng voice that `espeak-ng --voices=en` lists
(the built-in gmw voices; MBROLA voices need an extra program) plus the voice+variant speakers the SpeechInstruct
builder uses read the same everyday sentences. Both judges transcribe every utterance; WER and CER are corpus
rates over normalised text (speechgpt_hf.evaluation.normalize). DNSMOS overall MOS is the mean over the first
`--mos-sentences` utterances of each voice. Everything runs in one process, side by side.

    python benchmarks/judges.py [--sentences 8] [--mos-sentences 3] [--report benchmarks/judges.md]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from speechgpt_hf.data.tts_engines import DEFAULT_ESPEAK_SPEAKERS, EspeakTTS, PiperTTS
from speechgpt_hf.evaluation import DNSMOSScorer, character_error_rate, load_asr_judge, word_error_rate
from speechgpt_hf.evaluation.judges import prepare_waveforms

SENTENCES = [
    "The weather is nice today, so we will walk to the park.",
    "Please remember to buy milk, bread and three green apples.",
    "My brother moved to a small town near the sea last year.",
    "Could you tell me how to get to the train station?",
    "She reads a book every night before going to sleep.",
    "The meeting starts at 10 and should be over by noon.",
    "We need to finish this report before the end of the week.",
    "Dogs are loyal animals and they love to play outside.",
    "I would like a cup of hot tea with a little honey.",
    "The children built a tall castle out of sand on the beach.",
    "Turn left at the second light and the shop is on your right.",
    "He forgot his umbrella and got wet in the rain.",
    "Our team won the game by 2 points in the last minute.",
    "The museum is closed on Mondays but open every other day.",
    "Fresh vegetables are good for your health.",
    "They are planning a trip to the mountains this summer.",
    "The computer was too slow, so I bought a new one.",
    "Please speak a little louder, I cannot hear you.",
    "The river flows quietly through the old village.",
    "Thank you for your help, I really appreciate it.",
]


def espeak_english_voices() -> list[str]:
    """The built-in English espeak-ng voices (file under gmw/), as `espeak-ng --voices=en` lists them."""
    listing = subprocess.run(["espeak-ng", "--voices=en"], capture_output=True, text=True, check=True).stdout
    voices = [line.split()[1] for line in listing.splitlines()[1:] if len(line.split()) > 4 and "gmw/" in line]
    return list(dict.fromkeys(voices))


def voice_all(texts: list[str]) -> tuple[dict[str, list], dict[str, str]]:
    """Speaker label -> 16 kHz waveforms of every text, and speakers left out because they sound exactly like
    an earlier one (label -> that one's label)."""
    piper, espeak = PiperTTS(), EspeakTTS()
    speakers = [("piper", s) for s in ("joe", "joe-slow", "joe-fast")]
    speakers += [("espeak-ng", v) for v in dict.fromkeys(espeak_english_voices() + list(DEFAULT_ESPEAK_SPEAKERS))]
    audio, seen, same = {}, {}, {}
    for engine_name, speaker in speakers:
        engine, label = (piper if engine_name == "piper" else espeak), f"{engine_name} {speaker}"
        spoken = [engine(text, speaker) for text in texts]
        fingerprint = hashlib.sha1(b"".join(a.tobytes() for a, _ in spoken)).hexdigest()
        if fingerprint in seen:
            same[label] = seen[fingerprint]
            continue
        seen[fingerprint] = label
        audio[label] = [prepare_waveforms([a], rate)[0] for a, rate in spoken]
    return audio, same


def run(texts: list[str], mos_sentences: int) -> tuple[dict[str, dict], dict[str, float], dict[str, str]]:
    """Per-voice WER/CER of each judge and DNSMOS; seconds spent in each part; speakers that duplicate another."""
    started = time.perf_counter()
    audio, same = voice_all(texts)
    seconds = {"tts": time.perf_counter() - started}
    judges = {"whisper-tiny.en": load_asr_judge("whisper-tiny.en"), "pocketsphinx": load_asr_judge("pocketsphinx")}
    scorer, rows = DNSMOSScorer(), {}
    for voice, waves in audio.items():
        row = {"seconds of audio": sum(len(w) for w in waves) / 16000}
        for name, judge in judges.items():
            started = time.perf_counter()
            heard = judge.transcribe(waves)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
            row[name] = (word_error_rate(texts, heard), character_error_rate(texts, heard), heard)
        started = time.perf_counter()
        mos = scorer.score(waves[:mos_sentences])
        seconds["dnsmos"] = seconds.get("dnsmos", 0.0) + time.perf_counter() - started
        row["dnsmos"] = sum(mos) / len(mos)
        rows[voice] = row
        print(
            f"{voice}: whisper {row['whisper-tiny.en'][0]:.3f} pocketsphinx {row['pocketsphinx'][0]:.3f} "
            f"dnsmos {row['dnsmos']:.2f}",
            flush=True,
        )
    return rows, seconds, same


def reading(rows: dict[str, dict], same: dict[str, str], threshold: float = 0.1) -> list[str]:
    """Which judge reads each voice family better, which voices Whisper reads within `threshold` WER, and which
    speakers are not distinct voices at all."""
    lines = [
        f"- {label} gives exactly the audio of {other}: espeak-ng ignores the variant there, so it is not a "
        "distinct speaker (left out of the table)."
        for label, other in same.items()
    ]
    for family in ("piper", "espeak-ng"):
        voices = [v for v in rows if v.startswith(family)]
        means = {j: sum(rows[v][j][0] for v in voices) / len(voices) for j in ("whisper-tiny.en", "pocketsphinx")}
        best = min(means, key=means.get)
        lines.append(
            f"- {family} ({len(voices)} voices): mean WER Whisper tiny.en {means['whisper-tiny.en']:.1%}, "
            f"pocketsphinx {means['pocketsphinx']:.1%}; {best} is the better judge here."
        )
    clear = [v for v in rows if rows[v]["whisper-tiny.en"][0] <= threshold]
    lines.append(
        f"- Voices Whisper tiny.en reads within {threshold:.0%} WER (a judge's error there stays small "
        f"beside a system's): {', '.join(clear) or 'none'}."
    )
    return lines


def report(
    rows: dict[str, dict], seconds: dict[str, float], same: dict[str, str], texts: list[str], args: argparse.Namespace
) -> str:
    """The results as markdown."""
    table = [
        f"| {voice} | {r['whisper-tiny.en'][0]:.1%} | {r['whisper-tiny.en'][1]:.1%} | {r['pocketsphinx'][0]:.1%} "
        f"| {r['pocketsphinx'][1]:.1%} | {r['dnsmos']:.2f} |"
        for voice, r in rows.items()
    ]
    audio_seconds = sum(r["seconds of audio"] for r in rows.values())
    worst = max(rows, key=lambda v: rows[v]["whisper-tiny.en"][0])
    examples = [
        f"| {text} | {rows[worst]['whisper-tiny.en'][2][i]} | {rows[worst]['pocketsphinx'][2][i]} |"
        for i, text in enumerate(texts[:5])
    ]
    return "\n".join(
        [
            "# Offline judges: Whisper tiny.en vs pocketsphinx, with DNSMOS, per voice",
            "",
            f"`python benchmarks/judges.py --sentences {args.sentences} --mos-sentences {args.mos_sentences}`: "
            f"{len(texts)} everyday sentences a voice, {len(rows)} voices, {audio_seconds / 60:.1f} minutes of speech.",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other work, no GPU; torch "
            f"{torch.__version__} with {torch.get_num_threads()} thread(s); Python {platform.python_version()}.",
            f"Time: TTS {seconds['tts']:.0f} s, Whisper tiny.en {seconds['whisper-tiny.en']:.0f} s (every input is "
            f"padded to 30 s), pocketsphinx {seconds['pocketsphinx']:.0f} s, DNSMOS {seconds['dnsmos']:.0f} s.",
            "",
            "| voice | Whisper WER | Whisper CER | pocketsphinx WER | pocketsphinx CER | DNSMOS overall |",
            "| --- | --- | --- | --- | --- | --- |",
            *table,
            "",
            "## Reading",
            "",
            *reading(rows, same),
            "",
            f"What the judges heard for the voice Whisper found hardest ({worst}), first sentences:",
            "",
            "| reference | Whisper tiny.en | pocketsphinx |",
            "| --- | --- | --- |",
            *examples,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=8, help="sentences a voice (at most 20)")
    parser.add_argument("--mos-sentences", type=int, default=3, help="utterances a voice scored by DNSMOS")
    parser.add_argument("--report", type=Path, default=Path(__file__).with_suffix(".md"))
    args = parser.parse_args()
    texts = SENTENCES[: args.sentences]
    rows, seconds, same = run(texts, args.mos_sentences)
    args.report.write_text(report(rows, seconds, same, texts, args))
    print(f"Wrote {args.report}")


if __name__ == "__main__":
    main()
