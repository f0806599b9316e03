"""Which offline judge to trust, on which voice: Whisper tiny.en with and without the repetition guard, Whisper
base, pocketsphinx, with DNSMOS, per voice, on the sentences of the reproduction's corpus.

Piper's joe voice (three speaking rates) and every English espeak-ng voice that `espeak-ng --voices=en` lists
(the built-in gmw voices; MBROLA voices need an extra program) plus the voice+variant speakers the SpeechInstruct
builder uses read the same held-out-style grammar sentences (speechgpt_hf.reproduction.corpus_grammar). Every judge
transcribes every utterance; WER and CER are corpus rates over normalised text (speechgpt_hf.evaluation.normalize).
"before" is Whisper tiny.en decoding as its checkpoint says (no loop stop, no length cap), "after" the guarded
judge the evaluation uses. DNSMOS overall MOS is the mean over the first `--mos-sentences` utterances of each
voice. Everything runs in one process, side by side; seconds per utterance are this CPU's.

    python benchmarks/judges.py [--sentences 6] [--mos-sentences 2] [--report benchmarks/judges.md]
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
from speechgpt_hf.reproduction.corpus_grammar import generate_sentences
from speechgpt_hf.training.precision import cpu_model_name

# Column label -> (judge name, keyword arguments of load_asr_judge).
JUDGES = {
    "tiny.en, no guard": ("whisper-tiny.en", {"repetition_guard": False}),
    "tiny.en": ("whisper-tiny.en", {}),
    "base": ("whisper-base", {}),
    "pocketsphinx": ("pocketsphinx", {}),
}
GUARDED = "tiny.en"  # the evaluation's judge, by which held-out voices are chosen
THRESHOLD = 0.10
NOTES = "## What this shows"


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


def run(
    texts: list[str], mos_sentences: int, judges: list[str]
) -> tuple[dict[str, dict], dict[str, float], dict[str, str]]:
    """Per-voice WER/CER of each judge and DNSMOS; seconds spent in each part; speakers that duplicate another."""
    started = time.perf_counter()
    audio, same = voice_all(texts)
    seconds = {"tts": time.perf_counter() - started}
    loaded = {label: load_asr_judge(JUDGES[label][0], **JUDGES[label][1]) for label in judges}
    scorer, rows = DNSMOSScorer(), {}
    for voice, waves in audio.items():
        row = {"seconds of audio": sum(len(w) for w in waves) / 16000}
        for label, judge in loaded.items():
            started = time.perf_counter()
            heard = judge.transcribe(waves, expected=texts)  # the unguarded judge ignores it
            seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - started
            row[label] = (word_error_rate(texts, heard), character_error_rate(texts, heard), heard)
        started = time.perf_counter()
        mos = scorer.score(waves[:mos_sentences])
        seconds["dnsmos"] = seconds.get("dnsmos", 0.0) + time.perf_counter() - started
        row["dnsmos"] = sum(mos) / len(mos)
        rows[voice] = row
        print(voice, " ".join(f"{label} {row[label][0]:.3f}" for label in loaded), f"dnsmos {row['dnsmos']:.2f}")
    return rows, seconds, same


TOLD = (
    "Every Whisper judge is told each sentence's text, as `ASRJudge.judge` tells it (the guarded judge caps its "
    "decoding at twice the text's tokens as well as by the audio's length); the evaluation harness tells its judge "
    "nothing, so its decoding is capped by the audio's length alone."
)


def reading(rows: dict[str, dict], same: dict[str, str], judges: list[str]) -> list[str]:
    """Which judge reads each voice family best, what the guard changed, which voices the guarded judge reads within
    THRESHOLD, and which speakers are not distinct voices at all."""
    lines = [
        f"- {label} gives exactly the audio of {other}: espeak-ng ignores the variant there, so it is not a "
        "distinct speaker (left out of the table)."
        for label, other in same.items()
    ]
    for family in ("piper", "espeak-ng"):
        voices = [v for v in rows if v.startswith(family)]
        means = {j: sum(rows[v][j][0] for v in voices) / len(voices) for j in judges}
        best = min(means, key=means.get)
        listed = ", ".join(f"{j} {m:.1%}" for j, m in means.items())
        lines.append(f"- {family} ({len(voices)} voices), mean WER: {listed}; {best} reads it best.")
    if "tiny.en, no guard" in judges and GUARDED in judges:
        changed = sorted(((rows[v]["tiny.en, no guard"][0] - rows[v][GUARDED][0], v) for v in rows), reverse=True)
        moved = [f"{v} {rows[v]['tiny.en, no guard'][0]:.1%} -> {rows[v][GUARDED][0]:.1%}" for d, v in changed if d]
        lines.append(
            "- The repetition guard changed the WER of "
            f"{len(moved)} of {len(rows)} voices: {'; '.join(moved[:8]) or 'none'}."
        )
    if GUARDED in judges:
        clear = [v for v in rows if rows[v][GUARDED][0] <= THRESHOLD]
        lines.append(
            f"- Voices the guarded Whisper tiny.en reads within {THRESHOLD:.0%} WER on these sentences (candidates "
            f"for held-out voices: a judge's error there stays small beside a system's): {', '.join(clear) or 'none'}."
        )
    return lines


def report(
    rows: dict[str, dict],
    seconds: dict[str, float],
    same: dict[str, str],
    texts: list[str],
    args: argparse.Namespace,
) -> str:
    """The results as markdown."""
    judges = args.judges
    header = "| voice | " + " | ".join(f"{j} WER | {j} CER" for j in judges) + " | DNSMOS overall |"
    rule = "| --- |" + " ---: | ---: |" * len(judges) + " ---: |"
    table = [
        f"| {voice} | " + " | ".join(f"{r[j][0]:.1%} | {r[j][1]:.1%}" for j in judges) + f" | {r['dnsmos']:.2f} |"
        for voice, r in rows.items()
    ]
    utterances = len(texts) * len(rows)
    audio_seconds = sum(r["seconds of audio"] for r in rows.values())
    speed = ", ".join(f"{j} {seconds[j] / utterances:.2f} s" for j in judges)
    worst = max(rows, key=lambda v: rows[v][judges[0]][0])
    examples = [
        f"| {text} | " + " | ".join(rows[worst][j][2][i] for j in judges) + " |" for i, text in enumerate(texts[:4])
    ]
    return "\n".join(
        [
            "# Offline judges per voice: Whisper tiny.en before and after the repetition guard, Whisper base, "
            "pocketsphinx, DNSMOS",
            "",
            f"`python benchmarks/judges.py --sentences {args.sentences} --mos-sentences {args.mos_sentences}`: "
            f"{len(texts)} sentences of the reproduction's grammar a voice, {len(rows)} voices, "
            f"{audio_seconds / 60:.1f} minutes of speech.",
            f"Machine: {cpu_model_name()}, {os.cpu_count()} CPU cores, no GPU; torch {torch.__version__} with "
            f"{torch.get_num_threads()} thread(s); Python {platform.python_version()}.",
            f"Seconds per utterance (batches of 8, every Whisper input padded to 30 s): {speed}; TTS "
            f"{seconds['tts']:.0f} s, DNSMOS {seconds['dnsmos']:.0f} s in all.",
            TOLD,
            "",
            header,
            rule,
            *table,
            "",
            "## Reading",
            "",
            *reading(rows, same, judges),
            "",
            f"What the judges heard for the voice hardest for {judges[0]} ({worst}), first sentences:",
            "",
            "| reference | " + " | ".join(judges) + " |",
            "| --- |" + " --- |" * len(judges),
            *examples,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=6, help="sentences a voice")
    parser.add_argument("--mos-sentences", type=int, default=2, help="utterances a voice scored by DNSMOS")
    parser.add_argument("--judges", nargs="+", default=list(JUDGES), choices=list(JUDGES), help="columns to run")
    parser.add_argument("--report", type=Path, default=Path(__file__).with_suffix(".md"))
    args = parser.parse_args()
    texts = generate_sentences(args.sentences, seed="judges")
    rows, seconds, same = run(texts, args.mos_sentences, args.judges)
    earlier = args.report.read_text() if args.report.exists() else ""
    notes = earlier[earlier.index(NOTES) :] if NOTES in earlier else ""  # the hand-written reading is kept
    args.report.write_text(report(rows, seconds, same, texts, args) + ("\n" + notes if notes else ""))
    print(f"Wrote {args.report}")


if __name__ == "__main__":
    main()
