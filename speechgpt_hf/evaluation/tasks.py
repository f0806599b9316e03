"""The evaluation tasks: what the assembled system hears (ASR), says (TTS, spoken QA), and its units allow.

Each task talks to a *system*: a `SpeechGPTChat` or anything with the same `respond`/`stream`/`reset` methods
and `unit_tokenizer`/`vocoder` attributes (tests pass stand-ins that answer perfectly or badly). Speech the
system writes is transcribed by an independent ASR judge; every judged WER comes with the judge's WER on the
reference audio of the same items, so the floor the judge sets is visible. The judge's transcript is scored as it
decoded it: where its loop stop or token cap cut decoding short, the item says so (`judge_cut`) and the task counts
those items (`*_judge_cut_items`), since a cut transcript may hold less than the audio said.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from ..models.speechgpt.prompt_format import INPUT_MARKER, format_cross_modal_instruction
from .eval_data import SAMPLING_RATE, SpeechItem, SpokenQuestion
from .judges import Heard
from .scoring import error_rates, qa_accuracy

if TYPE_CHECKING:
    from ..inference.chat import SpeechGPTChat

NO_VOCODER = "the system has no vocoder"
NO_UNIT_TOKENIZER = "the system has no unit tokenizer"


@dataclass
class TaskResult:
    """One task's scores, its per-item records, and what was skipped (by reason) or not run (and why); `by_topic`
    holds a task's scores per topic of its items where they have one (spoken QA)."""

    task: str
    metrics: dict[str, float] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    not_run: str | None = None
    seconds: float = 0.0
    by_topic: dict[str, dict[str, float]] = field(default_factory=dict)
    examples: list[tuple[np.ndarray | None, np.ndarray]] = field(default_factory=list, repr=False)


@dataclass
class Judges:
    """The independent scorers: an ASR judge (`transcribe(waveforms) -> texts`, and `hear(waveforms) -> Heard` where
    it can say when its decoding was cut short) and an optional naturalness scorer (`score(waveforms) -> MOS`), both
    on 16 kHz mono float audio.

    Verdicts are remembered by audio content, so reference audio shared by several tasks (and splits) is judged
    once: the Whisper judge costs seconds an utterance on a CPU.
    """

    asr: Any
    mos: Any | None = None
    _heard: dict[str, Heard] = field(default_factory=dict, repr=False)
    _scored: dict[str, float] = field(default_factory=dict, repr=False)

    def hear(self, waveforms: Sequence[np.ndarray]) -> list[Heard]:
        def judge(todo: list) -> list[Heard]:
            if hasattr(self.asr, "hear"):
                return list(self.asr.hear(todo))
            return [Heard(str(text)) for text in self.asr.transcribe(todo)]

        return _remembered(self._heard, waveforms, judge)

    def transcribe(self, waveforms: Sequence[np.ndarray]) -> list[str]:
        return [heard.text for heard in self.hear(waveforms)]

    def naturalness(self, waveforms: Sequence[np.ndarray]) -> list[float] | None:
        if self.mos is None or not waveforms:
            return None
        return _remembered(self._scored, waveforms, lambda todo: [float(s) for s in self.mos.score(todo)])


def _remembered(memory: dict[str, Any], waveforms: Sequence[np.ndarray], judge: Callable[[list], list]) -> list[Any]:
    """`judge` applied to the waveforms not seen before (in one call); earlier verdicts reused."""
    import hashlib

    keys = [hashlib.sha1(np.ascontiguousarray(w, dtype=np.float32).tobytes()).hexdigest() for w in waveforms]
    todo = {key: wave for key, wave in zip(keys, waveforms, strict=True) if key not in memory}
    if todo:
        memory.update(zip(todo, judge(list(todo.values())), strict=True))
    return [memory[key] for key in keys]


def _to_16k(waveform: np.ndarray | None, rate: int) -> np.ndarray | None:
    from ..audio import AudioInputError, load_audio

    if waveform is None or len(waveform) == 0:
        return None
    try:
        return load_audio(np.asarray(waveform, dtype=np.float32), sampling_rate=rate, target_rate=SAMPLING_RATE)
    except AudioInputError:  # shorter than one analysis frame: no usable speech
        return None


def _ask(
    system: SpeechGPTChat, progress: bool, items: Sequence[Any], task: str, ask: Callable[[Any], Any]
) -> list[Any]:
    """Asks the system about every item, each as a fresh conversation."""
    replies = []
    for item in tqdm(items, desc=task, disable=not progress, unit="item"):
        system.reset()
        replies.append(ask(item))
    return replies


def _judged_speech(
    result: TaskResult, outputs: Sequence[np.ndarray | None], items: Sequence[SpeechItem], judges: Judges
) -> None:
    """Judge WER (and DNSMOS) of spoken outputs; a missing output counts as silence, i.e. every word deleted."""
    references = [item.text for item in items]
    spoken = [(i, w) for i, w in enumerate(outputs) if w is not None]
    heard = [Heard("")] * len(outputs)
    for (index, _), verdict in zip(spoken, judges.hear([w for _, w in spoken]), strict=True):
        heard[index] = verdict
    scores = error_rates(references, [h.text for h in heard])
    result.metrics.update(judge_wer=scores["wer"], judge_cer=scores["cer"], silent_answers=len(outputs) - len(spoken))
    result.metrics["judge_cut_items"] = _cut_count(heard)
    mos = judges.naturalness([w for _, w in spoken])
    if mos:
        result.metrics["dnsmos"] = float(np.mean(mos))
    mos_by_index = dict(zip((i for i, _ in spoken), mos or [], strict=False))
    for index, record in enumerate(result.items):
        record.update(
            heard=heard[index].text,
            judge_cut=heard[index].cut,
            judge_wer=scores["item_wer"][index],
            dnsmos=mos_by_index.get(index),
        )
    reference_audio = [item.audio for item in items]
    _judge_reference(result, references, judges.hear(reference_audio))
    reference_mos = judges.naturalness(reference_audio)
    if reference_mos:
        result.metrics["reference_dnsmos"] = float(np.mean(reference_mos))
    result.examples = list(zip(outputs, reference_audio, strict=True))


def evaluate_asr(
    system: SpeechGPTChat, items: Sequence[SpeechItem], judges: Judges | None, description: str, progress: bool = True
) -> TaskResult:
    """Speech in, transcript out through the cross-modal prompt: WER and CER against the references."""
    result = TaskResult("asr")
    prompt = f"{description.strip()} {INPUT_MARKER}"

    def ask(item: SpeechItem) -> Any:
        return system.respond(text=prompt, audio=item.audio, sampling_rate=SAMPLING_RATE)

    replies = _ask(system, progress, items, "asr", ask)
    hypotheses = [reply.response.text or "" for reply in replies]
    scores = error_rates([item.text for item in items], hypotheses)
    result.metrics.update(wer=scores["wer"], cer=scores["cer"])
    result.items = [
        {
            "id": item.id,
            "reference": item.text,
            "hypothesis": hypothesis,
            "wer": wer,
            "seconds": item.seconds,
            "problems": reply.response.problems,
        }
        for item, hypothesis, wer, reply in zip(items, hypotheses, scores["item_wer"], replies, strict=True)
    ]
    if judges is not None:  # what the independent judge hears in the same audio: an ASR reference point
        _judge_reference(result, [item.text for item in items], judges.hear([item.audio for item in items]))
    return result


def _cut_count(heard: Sequence[Heard]) -> int:
    """How many of the judge's transcripts its decoding guard cut short (loop stop or token cap)."""
    return sum(h.cut is not None for h in heard)


def _judge_reference(result: TaskResult, references: Sequence[str], heard: Sequence[Heard]) -> None:
    """The judge's WER on the reference audio, and how many of those transcripts it cut short."""
    result.metrics["reference_judge_wer"] = error_rates(references, [h.text for h in heard])["wer"]
    result.metrics["reference_judge_cut_items"] = _cut_count(heard)


def evaluate_tts(
    system: SpeechGPTChat, items: Sequence[SpeechItem], judges: Judges, description: str, progress: bool = True
) -> TaskResult:
    """Text in, units out, voiced by the vocoder and transcribed by the judge: judge WER and DNSMOS."""
    result = TaskResult("tts")
    if getattr(system, "vocoder", None) is None:
        result.not_run = NO_VOCODER
        return result

    def ask(item: SpeechItem) -> Any:
        return system.respond(text=format_cross_modal_instruction(description, item.text))

    replies = _ask(system, progress, items, "tts", ask)
    outputs = [_to_16k(reply.waveform, reply.sampling_rate) for reply in replies]
    result.items = [
        {
            "id": item.id,
            "reference": item.text,
            "units": len(reply.response.units or []),
            "speech_seconds": 0.0 if out is None else len(out) / SAMPLING_RATE,
            "problems": reply.response.problems,
        }
        for item, reply, out in zip(items, replies, outputs, strict=True)
    ]
    _judged_speech(result, outputs, items, judges)
    return result


def evaluate_resynthesis(
    system: SpeechGPTChat, items: Sequence[SpeechItem], judges: Judges, progress: bool = True
) -> TaskResult:
    """Speech -> units -> vocoder -> judge: the ceiling the unit tokenizer and vocoder set for TTS."""
    result = TaskResult("resynthesis")
    unit_tokenizer, vocoder = getattr(system, "unit_tokenizer", None), getattr(system, "vocoder", None)
    if unit_tokenizer is None or vocoder is None:
        result.not_run = NO_UNIT_TOKENIZER if unit_tokenizer is None else NO_VOCODER
        return result
    import torch

    speaker = {} if getattr(system, "speaker_id", None) is None else {"speaker_id": system.speaker_id}
    outputs, units_per_second = [], []
    for item in tqdm(items, desc="resynthesis", disable=not progress, unit="item"):
        units = unit_tokenizer.encode(item.audio, sampling_rate=SAMPLING_RATE).units
        units_per_second.append(len(units) / item.seconds)
        with torch.inference_mode():
            waveform = vocoder.synthesize(units, **speaker).float().cpu().numpy() if units else None
        outputs.append(_to_16k(waveform, vocoder.config.sampling_rate))
    result.items = [
        {"id": item.id, "reference": item.text, "units_per_second": rate}
        for item, rate in zip(items, units_per_second, strict=True)
    ]
    _judged_speech(result, outputs, items, judges)
    result.metrics["merged_units_per_second"] = float(np.mean(units_per_second)) if units_per_second else 0.0
    return result


def evaluate_spoken_qa(
    system: SpeechGPTChat,
    questions: Sequence[SpokenQuestion],
    spoken: Sequence[SpeechItem],
    judges: Judges | None,
    progress: bool = True,
) -> TaskResult:
    """Spoken questions answered in speech, beside the same questions written and answered in text.

    `accuracy`: an accepted answer appears in the text answer to the spoken question; `text_accuracy`: the same for
    the written question, asked through the same chat and processor; `cross_modal_transfer`: their ratio, the share
    of what the model knows in text that survives speech (left out when text accuracy is 0). `question_judge_wer`:
    the judge on the question audio (a voice the judge cannot follow is likely lost on the model too);
    `question_transcript_wer`: the model's own transcript of the question; `speech_text_consistency_wer`: the judge
    on the spoken answer against the model's text answer. `by_topic`: both accuracies per question topic.
    """
    result = TaskResult("spoken_qa")
    if not spoken:
        result.not_run = "no question could be voiced"
        return result
    by_id = {question.id: question for question in questions}
    asked = [by_id[item.id] for item in spoken]

    def ask_spoken(item: SpeechItem) -> Any:
        return system.respond(audio=item.audio, sampling_rate=SAMPLING_RATE, output_modality="speech")

    def ask_written(question: SpokenQuestion) -> Any:
        return system.respond(text=question.question, output_modality="text")

    replies = _ask(system, progress, spoken, "spoken_qa", ask_spoken)
    written = _ask(system, progress, asked, "spoken_qa (text)", ask_written)
    answers = [reply.response.text or "" for reply in replies]
    text_answers = [reply.response.text or "" for reply in written]
    scored = qa_accuracy(answers, [question.answers for question in asked])
    text_scored = qa_accuracy(text_answers, [question.answers for question in asked])
    result.metrics.update(accuracy=scored["accuracy"], text_accuracy=text_scored["accuracy"])
    if text_scored["accuracy"] > 0:
        result.metrics["cross_modal_transfer"] = scored["accuracy"] / text_scored["accuracy"]
    transcripts = error_rates([item.text for item in spoken], [r.response.transcript or "" for r in replies])
    result.metrics["question_transcript_wer"] = transcripts["wer"]
    result.items = [
        {
            "id": item.id,
            "topic": question.topic,
            "voice": item.voice,
            "question": item.text,
            "transcript": reply.response.transcript,
            "answer": answer,
            "accepted": question.answers,
            "correct": correct,
            "text_answer": text_answer,
            "text_correct": text_correct,
            "problems": reply.response.problems,
        }
        for item, question, reply, answer, correct, text_answer, text_correct in zip(
            spoken, asked, replies, answers, scored["correct"], text_answers, text_scored["correct"], strict=True
        )
    ]
    result.by_topic = _accuracy_by_topic(asked, scored["correct"], text_scored["correct"])
    if judges is not None:
        heard = judges.hear([item.audio for item in spoken])
        rates = error_rates([item.text for item in spoken], [h.text for h in heard])
        result.metrics.update(question_judge_wer=rates["wer"], question_judge_cut_items=_cut_count(heard))
        for record, verdict, wer in zip(result.items, heard, rates["item_wer"], strict=True):
            record.update(question_heard=verdict.text, question_judge_cut=verdict.cut, question_judge_wer=wer)
    _judge_spoken_answers(result, system, replies, answers, judges)
    return result


def _accuracy_by_topic(
    questions: Sequence[SpokenQuestion], correct: Sequence[bool], text_correct: Sequence[bool]
) -> dict[str, dict[str, float]]:
    """`{topic: {"questions", "accuracy", "text_accuracy"}}` over the questions that have a topic."""
    grouped: dict[str, list[tuple[bool, bool]]] = {}
    for question, spoken_right, text_right in zip(questions, correct, text_correct, strict=True):
        if question.topic:
            grouped.setdefault(question.topic, []).append((spoken_right, text_right))
    return {
        topic: {
            "questions": len(rows),
            "accuracy": sum(s for s, _ in rows) / len(rows),
            "text_accuracy": sum(t for _, t in rows) / len(rows),
        }
        for topic, rows in sorted(grouped.items())
    }


def _judge_spoken_answers(
    result: TaskResult, system: SpeechGPTChat, replies: Sequence[Any], answers: Sequence[str], judges: Judges | None
) -> None:
    """The judge WER between each spoken answer and the model's own text answer (their consistency)."""
    if judges is None or getattr(system, "vocoder", None) is None:
        result.skipped["consistency not measured: " + (NO_VOCODER if judges else "no judge")] = len(replies)
        return
    pairs = [
        (i, _to_16k(r.waveform, r.sampling_rate)) for i, r in enumerate(replies) if (r.response.text or "").strip()
    ]
    spoken_answers = [(i, w) for i, w in pairs if w is not None]
    if len(replies) > len(pairs):
        result.skipped["no text answer to compare the speech with"] = len(replies) - len(pairs)
    if spoken_answers:
        heard = judges.hear([w for _, w in spoken_answers])
        consistency = error_rates([answers[i] for i, _ in spoken_answers], [h.text for h in heard])
        result.metrics["speech_text_consistency_wer"] = consistency["wer"]
        result.metrics["answer_judge_cut_items"] = _cut_count(heard)
        for (index, _), verdict in zip(spoken_answers, heard, strict=True):
            result.items[index].update(heard_answer=verdict.text, heard_answer_cut=verdict.cut)
    result.metrics["spoken_answers"] = len(spoken_answers)


def evaluate_latency(system: SpeechGPTChat, items: Sequence[SpeechItem], progress: bool = True) -> TaskResult:
    """Spoken answers to spoken input, streamed: time to first audio and real-time factor (compute / speech)."""
    result = TaskResult("latency")
    if getattr(system, "vocoder", None) is None:
        result.not_run = NO_VOCODER
        return result
    first_audio, factors = [], []
    for item in tqdm(items, desc="latency", disable=not progress, unit="item"):
        system.reset()
        start, first, reply = time.perf_counter(), None, None
        for event in system.stream(audio=item.audio, sampling_rate=SAMPLING_RATE, output_modality="speech"):
            if getattr(event, "audio", None) is not None and first is None:
                first = time.perf_counter() - start
            reply = event
        elapsed = time.perf_counter() - start
        speech = 0.0 if reply is None or reply.waveform is None else len(reply.waveform) / reply.sampling_rate
        record = {"id": item.id, "first_audio_seconds": first, "seconds": elapsed, "speech_seconds": speech}
        result.items.append(record)
        if first is None or speech == 0.0:
            result.skipped["no speech in the answer"] += 1
            continue
        first_audio.append(first)
        factors.append(elapsed / speech)
    if first_audio:
        result.metrics.update(
            first_audio_seconds=float(np.median(first_audio)), real_time_factor=float(np.median(factors))
        )
    return result


__all__ = [
    "Judges",
    "TaskResult",
    "evaluate_asr",
    "evaluate_latency",
    "evaluate_resynthesis",
    "evaluate_spoken_qa",
    "evaluate_tts",
]
