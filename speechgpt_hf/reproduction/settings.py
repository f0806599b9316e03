"""Sizes of a small-scale SpeechGPT reproduction: the corpus, the units, the LM, the stages, the vocoder, the
evaluation. Two presets: `quickstart` (minutes, the README's main job) and `hour` (about an hour on two CPU
cores). Every field can be overridden; a rerun with the same settings resumes where it stopped."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..convert.convert_whisper_ct2 import BUNDLED_WHISPER
from ..stages import CHAIN_OF_MODALITY, CROSS_MODAL, MODALITY_ADAPTATION

# The bundled Whispers by the names the converter knows them by, and the weight-free MFCC features.
UNIT_ENCODERS = (*BUNDLED_WHISPER, "mfcc")
VOCODERS = ("unit_mel", "unit_hifigan")
# A one-line system prompt: the package's three-line one is over half of every stage-2 row for a small BPE
# vocabulary, compute that a small model trained from scratch spends on a constant prefix.
SHORT_SYSTEM_PROMPT = "You are SpeechGPT. You hear and speak through speech units.\n"
# What the stages' recipes say, read back for the run's record (`ReproductionSettings.to_dict`).
FROM_RECIPES = ("unit_row_spread", "replay_fraction", "cross_modal_replay_fraction")


@dataclass(frozen=True)
class ReproductionSettings:
    """One reproduction run.

    Corpus: `num_train`/`num_test` sentences (the test sentences and `held_out_voices` are never trained on), from
    the grammar narrowed to `words_per_kind` words of each kind when set, `held_out_fraction` of each noun and
    adjective kind kept for test sentences only (0: every test sentence is a new combination of training words).
    Units: `unit_encoder` (a bundled Whisper, "whisper-tiny.en" or "whisper-base", truncated after `unit_layer`
    layers; or "mfcc"),
    k-means with `num_units` clusters on a sample of at most `unit_fit_frames` frames of the first
    `unit_fit_utterances` training utterances (the corpus takes its voices in turn, so they span every voice); with
    `unit_bpe_vocab_size`, the LM reads and writes that many BPE pieces over the units, learnt on stage 1's rows.
    LM: a Llama of `lm_hidden` width and `lm_layers` layers from scratch, with a BPE tokenizer of
    `text_vocab_size` trained on the training text; or, with `base_model`, a pretrained text LM ("smollm2": the
    bundled SmolLM2-135M-Instruct GGUF; or a repo id, folder or .gguf path) whose turns are written in
    `prompt_format` ("speechgpt", or "chat_template" for an instruct base). `stage_steps` optimiser steps per stage
    at `batch_size`, in bf16 autocast when `bf16` (True, False, or "auto": where the CPU computes bf16 natively,
    `speechgpt_hf.training.precision`). How each stage trains comes from its recipe in
    `speechgpt_hf/training/recipes/` (`stage_recipe`), these settings choosing only sizes: with `lora_all_stages`,
    stages 1 and 2 take the `pretrained_lora/` recipes (a LoRA on q/v with the unit rows of the embeddings, instead
    of every weight, which a pretrained base would forget its text by). The recipes' values are read back as
    `unit_row_spread`, `replay_fraction` (stage 3's rehearsal of cross-modal rows) and `cross_modal_replay_fraction`
    (stage 2's of chain-of-modality rows), and recorded with the settings. Stage 3 trains at `lora_learning_rate`.
    `system_prompt` is the one the data is built with and the model keeps; with `asr_and_tts` every
    training utterance gives stage 2 both an ASR and a TTS row (else one of them at random); with
    `spliced_asr_rows`, stage 2 also gets that many ASR rows per training utterance of new grammar sentences
    (never a training or test one) spoken by splicing the training words' units (`speechgpt_hf.data.word_splicing`).
    Vocoder: `vocoder` "unit_mel" (units -> mel frames in front of the pretrained universal HiFi-GAN, the recipe
    `vocoder_mel_cpu.yaml`, `vocoder_steps` regression steps: it speaks after minutes on a CPU) or "unit_hifigan"
    (the release's kind, learnt from scratch: `vocoder_steps` GAN steps, generator-only for the first
    `vocoder_warmup_steps`, `vocoder_channels` wide; it needs a GPU's hours to speak).
    Knowledge retention: `knowledge_questions` spoken-QA questions asked in text of the bare base (its own chat
    template), the expanded model and every stage (0: not measured).
    Evaluation: `eval_items` held-out utterances per split (TTS and resynthesis on the first `eval_speech_items` of
    them; None: all), `eval_questions` spoken questions (of the shipped set,
    spread over its topics, spoken in the held-out voices and asked again in text), judged by `judge` (an ASR judge
    name for `speechgpt_hf.evaluation.judges.load_asr_judge`) and DNSMOS when `naturalness`.
    """

    num_train: int = 2000
    num_test: int = 100
    words_per_kind: int | None = None
    held_out_fraction: float = 0.1
    voices: tuple[str, ...] = (
        "piper:joe",
        "piper:joe-slow",
        "piper:joe-fast",
        "espeak:en-us",
        "espeak:en-gb",
        "espeak:en-us+m3",
        "espeak:en-us+f2",
        "espeak:en-us+f3",
    )
    held_out_voices: tuple[str, ...] = ("espeak:en-gb-x-rp",)
    unit_encoder: str = "whisper-tiny.en"
    unit_layer: int = 4
    num_units: int = 200
    unit_bpe_vocab_size: int = 0
    unit_fit_frames: int = 200_000
    unit_fit_utterances: int = 800
    text_vocab_size: int = 1000
    lm_hidden: int = 256
    lm_layers: int = 4
    lm_heads: int = 4
    base_model: str | None = None
    prompt_format: str = "speechgpt"
    lora_all_stages: bool = False
    bf16: bool | str = False
    stage_steps: dict[str, int] = field(
        default_factory=lambda: {MODALITY_ADAPTATION: 400, CROSS_MODAL: 2400, CHAIN_OF_MODALITY: 300}
    )
    batch_size: int = 16
    learning_rate: float = 1e-3
    lora_learning_rate: float = 1e-3
    com_pairs: int = 100
    asr_and_tts: bool = False
    spliced_asr_rows: int = 0
    # ASR and TTS task descriptions used (of the shipped 100 each). With one row per utterance and many descriptions,
    # a small corpus lets the model key its answers on the wording of the request instead of on the speech (measured
    # on the quickstart: training transcripts exact under their own training request, lost under another one).
    task_descriptions: int = 10
    system_prompt: str = SHORT_SYSTEM_PROMPT
    vocoder: str = "unit_mel"
    vocoder_steps: int = 600
    vocoder_warmup_steps: int = 400
    vocoder_channels: int = 96
    eval_items: int = 20
    eval_speech_items: int | None = None
    eval_questions: int = 10
    judge: str = "whisper-tiny.en"
    naturalness: bool = True
    constrained_decoding: bool = True
    knowledge_questions: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.vocoder not in VOCODERS:
            raise ValueError(f"vocoder must be one of {VOCODERS}, got {self.vocoder!r}.")
        if self.unit_encoder not in UNIT_ENCODERS:
            raise ValueError(f"unit_encoder must be one of {UNIT_ENCODERS}, got {self.unit_encoder!r}.")
        from ..models.speechgpt.prompt_format import as_prompt_format

        as_prompt_format(self.prompt_format)  # refuses an unknown format by name
        if self.bf16 not in (True, False, "auto"):
            raise ValueError(f"bf16 must be True, False or 'auto', got {self.bf16!r}.")
        if self.task_descriptions < 1:
            raise ValueError("task_descriptions must be at least 1 (the evaluation asks with the first one).")
        if self.spliced_asr_rows < 0:
            raise ValueError(f"spliced_asr_rows must be 0 or more, got {self.spliced_asr_rows}.")
        if self.num_train < 10 or self.num_test < 1:
            raise ValueError("A reproduction needs at least 10 training and 1 test sentence.")

    def stage_recipe(self, stage: str) -> str:
        """The recipe (a name under `speechgpt_hf/training/recipes/`) that says how `stage` trains in this run."""
        from ..training.stage_recipes import PRETRAINED_LORA, recipe_name

        return recipe_name(stage, PRETRAINED_LORA if self.lora_all_stages else None)

    @property
    def unit_row_spread(self) -> float:
        """How far apart stage 1's recipe starts the unit rows, as a share of the text rows' spread."""
        from ..training.stage_recipes import stage_method

        return float(stage_method(self.stage_recipe(MODALITY_ADAPTATION))["unit_row_spread"])

    @property
    def replay_fraction(self) -> float:
        """Stage 3's cross-modal rows, as a fraction of its own (its recipe's `replay_fraction`; 0: none)."""
        from ..training.stage_recipes import replay_fraction_of

        return replay_fraction_of(self.stage_recipe(CHAIN_OF_MODALITY))

    @property
    def cross_modal_replay_fraction(self) -> float:
        """Stage 2's chain-of-modality rows, as a fraction of its own (its recipe's `replay_fraction`; 0: none)."""
        from ..training.stage_recipes import replay_fraction_of

        return replay_fraction_of(self.stage_recipe(CROSS_MODAL))

    def to_dict(self) -> dict[str, Any]:
        """The settings, with the values the run takes from the recipes recorded beside them."""
        return {**asdict(self), **{name: getattr(self, name) for name in FROM_RECIPES}}

    def override(self, **changes: Any) -> ReproductionSettings:
        """These settings with some fields changed (unknown names, and the recipes' values, are refused)."""
        from_recipes = sorted(set(changes) & set(FROM_RECIPES))
        if from_recipes:
            raise ValueError(
                f"{from_recipes} come from the stages' recipes (speechgpt_hf/training/recipes/), not from the "
                "reproduction's settings: change them there (lora_all_stages picks the pretrained_lora/ ones)."
            )
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"Unknown reproduction setting(s) {unknown}; known: {sorted(known)}.")
        return replace(self, **changes)


PRESETS: dict[str, ReproductionSettings] = {
    # The run recorded in benchmarks/reproduction.md: its data were built with all 100 task descriptions (and it
    # shipped the unit HiFi-GAN, the default then: `vocoder="unit_hifigan"` repeats it).
    "hour": ReproductionSettings(task_descriptions=100),
    # What makes its small LM learn to read in minutes was measured in benchmarks/reading.md: a narrow grammar heard
    # in many combinations, each utterance both read and written, one request wording, eight new sentences per
    # utterance spliced from its words' units; bf16 where the CPU has it.
    "quickstart": ReproductionSettings(
        num_train=480,
        num_test=20,
        words_per_kind=2,
        held_out_fraction=0.0,
        voices=("piper:joe", "piper:joe-fast", "espeak:en-us", "espeak:en-gb"),
        unit_layer=2,  # the vocoder speaks far better from layer 2 than from the last (benchmarks/vocoders.md)
        num_units=64,
        unit_fit_frames=20_000,
        unit_fit_utterances=100,
        text_vocab_size=600,
        lm_hidden=128,
        lm_layers=3,
        bf16="auto",
        # Twice the steps of the preset without spliced rows: reading new combinations takes longer than recognising
        # 480 recordings (benchmarks/reading.md), and the job still ends within its ten minutes.
        stage_steps={MODALITY_ADAPTATION: 60, CROSS_MODAL: 4800, CHAIN_OF_MODALITY: 60},
        batch_size=8,
        learning_rate=2e-3,
        asr_and_tts=True,
        spliced_asr_rows=8,
        task_descriptions=1,
        com_pairs=12,
        vocoder_steps=150,
        # ASR on 20 items a split (6 moved its WER by about 15 points between sentence sets); TTS and resynthesis,
        # which cost a vocoder pass and a judge an item, on 10 of them, so that the job stays within ten minutes.
        eval_items=20,
        eval_speech_items=10,
        eval_questions=4,
    ),
    # SpeechGPT on pretrained parts: SmolLM2-135M-Instruct, the mel vocoder, the knowledge of the base measured before
    # and after. The corpus, units and stage-2 rows are the quickstart's (what made reading generalise in
    # benchmarks/reading.md: a narrow grammar, one request wording, spliced ASR rows); the pretrained_lora/ recipes
    # train stages 1 and 2 (a LoRA of rank 16 on every linear layer, unit rows at their own rate, stage 2 rehearsing
    # the chain-of-modality rows); bf16 where the CPU has it (2.1x a SmolLM2 step on AVX-512 BF16). The LM reads a
    # BPE of 256 pieces over the 64 units: SmolLM2 read at 44% held-out WER against 80% over units at the same CPU
    # seconds in benchmarks/reading.md. benchmarks/reproduction.md records the run.
    "pretrained": ReproductionSettings(
        base_model="smollm2",
        prompt_format="chat_template",
        lora_all_stages=True,
        num_train=480,
        num_test=20,
        words_per_kind=2,
        held_out_fraction=0.0,
        voices=("piper:joe", "piper:joe-fast", "espeak:en-us", "espeak:en-gb"),
        unit_layer=2,
        num_units=64,
        unit_bpe_vocab_size=256,
        unit_fit_frames=20_000,
        unit_fit_utterances=100,
        bf16="auto",
        # Stage 1 expands the base and learns the unit BPE, then takes one step: 60 steps of a LoRA over unit
        # sequences, merged, left SmolLM2 reading at 76.6% held-out WER where one step reads at 37.8%
        # (benchmarks/reproduction.md).
        stage_steps={MODALITY_ADAPTATION: 1, CROSS_MODAL: 600, CHAIN_OF_MODALITY: 30},
        batch_size=8,
        learning_rate=5e-4,
        lora_learning_rate=5e-4,
        asr_and_tts=True,
        spliced_asr_rows=8,
        task_descriptions=1,
        com_pairs=40,
        vocoder_steps=300,
        eval_items=20,
        eval_speech_items=10,
        eval_questions=12,
        knowledge_questions=30,
    ),
}


__all__ = ["FROM_RECIPES", "PRESETS", "UNIT_ENCODERS", "VOCODERS", "ReproductionSettings"]
