"""The whole SpeechGPT recipe in miniature, offline, on a CPU, in minutes, ending with held-out numbers.

It is the `quickstart` preset of `speechgpt_hf.reproduction` (see there for the steps): a narrow corpus voiced by
Piper and espeak-ng with held-out sentences and a held-out voice, Whisper tiny.en units, SpeechInstruct, a small
Llama trained from scratch through the three stages, a small vocoder, then the evaluation harness on speech the
system never heard. Then the assembled system is loaded in one call and used: it transcribes a held-out sentence
spoken by the held-out voice, and speaks another held-out sentence, streamed into `answer.wav`. Its latest numbers
are in benchmarks/quickstart.md, the larger runs in benchmarks/reproduction.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..stages import STAGES
from .pipeline import build_corpus, run_reproduction
from .settings import PRESETS, ReproductionSettings

if TYPE_CHECKING:
    from datasets import DatasetDict


def _step(message: str) -> None:
    print(f"[quickstart] {message}", flush=True)


def talk(output: Path, corpus: DatasetDict) -> dict[str, Any]:
    """Loads the system from its folder and uses it on held-out speech: hear one sentence, speak another."""
    import soundfile

    from ..inference.chat import SpeechGPTChat
    from ..models.speechgpt.prompt_format import INPUT_MARKER, format_cross_modal_instruction
    from ..models.speechgpt.task_descriptions import default_task_description

    chat = SpeechGPTChat.from_pretrained(str(output / "lm" / STAGES[-1]))
    chat.generation_kwargs.update(max_new_tokens=300, do_sample=False)
    heard_item, spoken_item = corpus["test_voice"][0], corpus["test"][len(corpus["test"]) - 1]
    request = f"{default_task_description('asr')} {INPUT_MARKER}"
    audio = heard_item["audio"]
    heard = chat.respond(text=request, audio=audio["array"], sampling_rate=audio["sampling_rate"]).response
    chat.reset()
    start, first_audio, reply = time.perf_counter(), None, None
    request = format_cross_modal_instruction(default_task_description("tts"), spoken_item["text"])
    for event in chat.stream(text=request):
        if getattr(event, "audio", None) is not None and first_audio is None:
            first_audio = time.perf_counter() - start
        reply = event
    if reply.waveform is not None:
        soundfile.write(output / "answer.wav", reply.waveform, reply.sampling_rate)
    speech = 0.0 if reply.waveform is None else len(reply.waveform) / reply.sampling_rate
    _step(f"heard {heard_item['speaker']} say {heard_item['text']!r} and wrote {heard.text!r}")
    _step(
        f"asked to say {spoken_item['text']!r}: {len(reply.response.units or [])} units, {speech:.1f} s of speech "
        f"in {output / 'answer.wav'} (first audio after {first_audio or 0:.2f} s)"
    )
    return {
        "heard": {"speaker": heard_item["speaker"], "reference": heard_item["text"], "transcript": heard.text},
        "spoken": {
            "text": spoken_item["text"],
            "units": len(reply.response.units or []),
            "seconds": round(speech, 2),
            "first_audio_seconds": first_audio,
        },
    }


def run_quickstart(
    output_dir: str | Path = "quickstart_output", settings: ReproductionSettings | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Runs (or resumes) the miniature reproduction, then talks to the result; returns and writes summary.json."""
    output = Path(output_dir)
    settings = settings or PRESETS["quickstart"]
    summary = run_reproduction(output, settings, overwrite=overwrite)
    summary["talk"] = talk(output, build_corpus(output, settings))
    summary["repos"] = {
        "speechgpt": str(output / "lm" / STAGES[-1]),
        "unit_tokenizer": str(output / "unit-tokenizer"),
        "vocoder": str(output / "vocoder"),
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    for split, tasks in summary["evaluation"].items():
        scores = ", ".join(
            f"{task} {name} {value:.3f}"
            for task, result in tasks.items()
            for name, value in result["metrics"].items()
            if isinstance(value, float)
        )
        _step(f"held-out scores ({split}): {scores}")
    _step(f"done in {sum(summary['seconds'].values()):.0f} s; report in {output / 'report.md'}")
    return summary


__all__ = ["run_quickstart", "talk"]
