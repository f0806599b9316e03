"""The whole SpeechGPT recipe in miniature: offline, on a CPU, in minutes.

1. voice a small corpus with the offline Piper voice;
2. fit a unit tokenizer (MFCC features + k-means) on it;
3. build SpeechInstruct's three configurations as a Hub-ready parquet folder;
4. expand a tiny text LM into a SpeechGPT and train the three stages with TRL (stage 3 with LoRA);
5. train a small unit HiFi-GAN vocoder;
6. assemble the talking system from its repos and ask it a question aloud: it transcribes, answers in text,
   and speaks the answer, streamed as the units arrive.

Every model is tiny and trained for about a minute on a few sentences, so it can at best repeat what it saw
(the question of step 6 comes from its training data) and the vocoder hums rather than speaks; what the run
shows is that each part is real and that they fit together. Everything is written under `output_dir`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS = (
    "The sun rises in the east and sets in the west.",
    "Please open the window, it is warm in here.",
    "My favourite colour is blue, like the sea.",
    "We walked to the market and bought fresh bread.",
    "The train to the city leaves at nine in the morning.",
    "Music makes long journeys feel much shorter.",
    "She plants tomatoes and beans in her garden every spring.",
    "Turn left at the bridge and follow the river.",
    "The library is quiet on Sunday afternoons.",
    "Could you tell me how to cook rice?",
    "Cats sleep for most of the day.",
    "A good night's sleep helps you think clearly.",
    "The children built a tall tower out of blocks.",
    "Coffee tastes better with a little milk.",
    "Mountains look blue when they are far away.",
    "He forgot his umbrella and got caught in the rain.",
)


@dataclass
class QuickstartSettings:
    """Sizes of the miniature run (kept small so the whole recipe runs in minutes on two CPU cores)."""

    num_units: int = 64
    lm_steps: int = 200
    vocoder_steps: int = 100
    com_pairs: int = 12
    seed: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def _step(message: str) -> None:
    print(f"[quickstart] {message}", flush=True)


class _Timer:
    def __init__(self, settings: QuickstartSettings, name: str) -> None:
        self.settings, self.name = settings, name

    def __enter__(self) -> _Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.settings.timings[self.name] = round(time.perf_counter() - self.start, 1)


def voice_corpus(tts: Any) -> Any:
    """The corpus as a datasets Dataset with an Audio column, a transcript and a speaker."""
    from datasets import Audio, Dataset

    rows = []
    for index, sentence in enumerate(CORPUS):
        speaker = tts.speakers[index % len(tts.speakers)]
        waveform, rate = tts(sentence, speaker=speaker)
        rows.append({"audio": {"array": waveform, "sampling_rate": rate}, "text": sentence, "speaker": speaker, "id": f"utt{index}"})
    return Dataset.from_list(rows).cast_column("audio", Audio(sampling_rate=16000))


def fit_unit_tokenizer(corpus: Any, settings: QuickstartSettings, repo: Path) -> Any:
    from .models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig

    tokenizer = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=settings.num_units))
    audio = [item["audio"] for item in corpus]
    result = tokenizer.fit(audio, seed=settings.seed, progress=False)
    tokenizer.save_pretrained(repo)
    _step(f"unit tokenizer: k-means K={settings.num_units} on MFCC frames, {result.iterations} iterations, "
          f"inertia {result.inertia_per_frame:.2f} a frame")  # fmt: skip
    return tokenizer


def build_data(corpus: Any, tokenizer: Any, tts: Any, settings: QuickstartSettings, folder: Path) -> dict:
    from .data.hub_folder import build_speechinstruct_folder
    from .data.sources import load_instruction_pairs

    pairs = load_instruction_pairs(None)[: settings.com_pairs]
    summaries = build_speechinstruct_folder(
        folder,
        # All four chain-of-modality formats: each prompt names its input and wanted output modality.
        {"modality_adaptation": {}, "cross_modal": {}, "chain_of_modality": {}},
        audio_source=corpus,
        unit_tokenizer=tokenizer,
        tts=tts,
        instructions=pairs,
        seed=settings.seed,
        overwrite=True,
    )
    counts = {name: {split: s.rows for split, s in splits.items()} for name, splits in summaries.items()}
    _step(f"SpeechInstruct rows: {counts} -> {folder}")
    return counts


def train_language_model(data: Path, settings: QuickstartSettings, output: Path, units_repo: Path) -> Path:
    from .testing_utils import build_tiny_causal_lm, build_tiny_tokenizer
    from .training.stages import SpeechGPTTrainingConfig, train_stage

    base = output / "base-lm"
    tokenizer = build_tiny_tokenizer()
    build_tiny_causal_lm("llama", vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128).save_pretrained(base)
    tokenizer.save_pretrained(base)
    common = dict(
        dataset_name=str(data), max_steps=settings.lm_steps, per_device_train_batch_size=4, learning_rate=3e-3,
        logging_steps=max(1, settings.lm_steps // 6), report_to="none", save_strategy="no", use_cpu=True,
        seed=settings.seed, max_length=1024,
    )
    model = None
    for stage, extra in (
        ("modality_adaptation", dict(base_model_name_or_path=str(base), num_units=settings.num_units,
                                     unit_tokenizer_repo=str(units_repo), packing=True)),
        ("cross_modal", {}),
        ("chain_of_modality", dict(use_lora=True, train_unit_embeddings=True, learning_rate=1e-2)),
    ):  # fmt: skip
        source = {} if model is None else {"model_name_or_path": str(model)}
        config = SpeechGPTTrainingConfig(stage=stage, output_dir=str(output / stage), **{**common, **source, **extra})
        model = train_stage(config)
        losses = [e["loss"] for e in json.loads((model / "trainer_state.json").read_text())["log_history"] if "loss" in e]
        _step(f"stage {stage}: loss {losses[0]:.2f} -> {losses[-1]:.2f} over {settings.lm_steps} steps")
    return model


def train_small_vocoder(corpus: Any, tokenizer: Any, settings: QuickstartSettings, output: Path) -> Path:
    from .training.vocoder.config import VocoderTrainingConfig
    from .training.vocoder.data import prepare_vocoder_dataset
    from .training.vocoder.trainer import train_vocoder

    data = prepare_vocoder_dataset(corpus, unit_tokenizer=tokenizer)
    config = VocoderTrainingConfig(
        output_dir=str(output), max_steps=settings.vocoder_steps, batch_size=2, segment_frames=16, cpu=True,
        seed=settings.seed, log_steps=5, eval_steps=settings.vocoder_steps, save_steps=settings.vocoder_steps,
        discriminator_width=0.125,
        model=dict(unit_embed_dim=32, upsample_initial_channel=64, resblock_kernel_sizes=[3, 7],
                   resblock_dilation_sizes=[[1, 3], [1, 3]], duration_predictor_hidden_dim=32),
    )  # fmt: skip
    train_vocoder(config, data, num_units=settings.num_units)
    _step(f"vocoder: {settings.vocoder_steps} GAN steps -> {output}")
    return output


def _spoken_question(data: Path) -> dict:
    """A speech-to-speech chain-of-modality row of the data (the tiny LM can at best repeat what it saw)."""
    from .data.loading import load_speechinstruct

    rows = load_speechinstruct(data, "chain_of_modality")
    return next(row for row in rows if row["task"] == "speech_to_speech")


def talk(model_repo: Path, vocoder_repo: Path, tts: Any, data: Path, output: Path) -> dict:
    """Points the LM's config at its vocoder, loads the system in one call, and asks it a spoken question for a
    spoken answer: speech in, then transcript, text answer and speech out, the speech streamed as the units arrive."""
    import soundfile
    from transformers import AutoConfig

    from .inference.chat import SpeechGPTChat

    config = AutoConfig.from_pretrained(model_repo)
    config.vocoder_repo = str(vocoder_repo)
    config.save_pretrained(model_repo)
    chat = SpeechGPTChat.from_pretrained(str(model_repo))
    chat.generation_kwargs.update(max_new_tokens=300, do_sample=False)
    row = _spoken_question(data)
    question, rate = tts(row["input_text"], speaker=row["speaker"].split(":")[-1])
    start, first_audio, reply = time.perf_counter(), None, None
    for event in chat.stream(audio=question, sampling_rate=rate, output_modality="speech"):
        if getattr(event, "audio", None) is not None and first_audio is None:
            first_audio = time.perf_counter() - start
        reply = event
    seconds = time.perf_counter() - start
    if reply.waveform is not None:
        soundfile.write(output / "answer.wav", reply.waveform, reply.sampling_rate)
    answer, units = reply.response, reply.response.units or []
    first = "no audio" if first_audio is None else f"first audio after {first_audio:.2f} s"
    speech = 0.0 if reply.waveform is None else len(reply.waveform) / reply.sampling_rate
    _step(f"asked aloud {row['input_text']!r}: heard {answer.transcript!r}, answered {answer.text!r} "
          f"(expected {row['output_text']!r}) and {len(units)} units, {speech:.1f} s of speech in "
          f"{output / 'answer.wav'}; {seconds:.1f} s, {first}")  # fmt: skip
    return {
        "question": row["input_text"], "request": chat.history[-1][0], "transcript": answer.transcript, "answer": answer.text,
        "expected_answer": row["output_text"], "units": len(units), "speech_seconds": round(speech, 2),
        "seconds": round(seconds, 2), "first_audio_seconds": first_audio, "problems": answer.problems,
    }  # fmt: skip


def run_quickstart(output_dir: str | Path = "quickstart_output", settings: QuickstartSettings | None = None) -> dict:
    """Runs every step; returns (and writes to summary.json) what each produced and how long it took."""
    from .data.tts_engines import PiperTTS

    settings = settings or QuickstartSettings()
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    tts = PiperTTS()
    summary: dict[str, Any] = {}
    with _Timer(settings, "voice corpus"):
        corpus = voice_corpus(tts)
    _step(f"voiced {len(corpus)} sentences with Piper ({sum(len(a['array']) for a in corpus['audio']) / 16000:.0f} s of speech)")
    with _Timer(settings, "unit tokenizer"):
        tokenizer = fit_unit_tokenizer(corpus, settings, output / "unit-tokenizer")
    with _Timer(settings, "SpeechInstruct"):
        summary["speechinstruct_rows"] = build_data(corpus, tokenizer, tts, settings, output / "speechinstruct")
    with _Timer(settings, "three LM stages"):
        model_repo = train_language_model(output / "speechinstruct", settings, output / "lm", output / "unit-tokenizer")
    with _Timer(settings, "vocoder"):
        vocoder_repo = train_small_vocoder(corpus, tokenizer, settings, output / "vocoder")
    with _Timer(settings, "talk"):
        summary["talk"] = talk(model_repo, vocoder_repo, tts, output / "speechinstruct", output)
    summary["timings_seconds"] = settings.timings
    summary["repos"] = {"speechgpt": str(model_repo), "unit_tokenizer": str(output / "unit-tokenizer"), "vocoder": str(vocoder_repo)}
    (output / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    _step(f"done in {sum(settings.timings.values()):.0f} s: {settings.timings}; summary in {output / 'summary.json'}")
    return summary


__all__ = ["QuickstartSettings", "run_quickstart"]
