"""The reading benchmark's task and rows: the voiced corpus and its units (cached), the utterances with their word
spans, the LM a configuration trains, and every kind of training row it can add (spliced sentences, crossovers,
phrases, word-interleaved rows, noisy copies). `reading.py` runs and scores the configurations."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from reading import ReadingConfig

VOICES = ("piper:joe", "piper:joe-fast", "espeak:en-us", "espeak:en-gb")
HELD_OUT_VOICES = ("espeak:en-gb-x-rp",)
ROWS = "trainable_tokens_delta"  # in the names of PEFT's trainable-token parameters: the unit and marker rows


# ---- data ---------------------------------------------------------------------------------------------------------


def corpus_and_units(cache: Path, config: ReadingConfig) -> tuple[Any, dict[str, dict[str, list[int]]]]:
    """The voiced corpus (cached by the corpus builder, with word timings) and every utterance's merged units and
    their durations in frames, keyed by utterance id and speaker."""
    from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer
    from speechgpt_hf.reproduction.corpus import build_speech_corpus

    name = f"corpus-{config.num_train}-w{config.words_per_kind}-h{config.held_out_fraction}"
    corpus = build_speech_corpus(
        cache / name,
        config.num_train,
        20,
        voices=VOICES,
        held_out_voices=HELD_OUT_VOICES,
        held_out_fraction=config.held_out_fraction,
        words_per_kind=config.words_per_kind,
    )
    pooled = f"-P{config.frame_pooling}" if config.frame_pooling > 1 else ""
    key = f"units-{name}-L{config.unit_layer}-K{config.num_units}{pooled}-durations.json"
    path = cache / key
    if path.exists():
        return corpus, json.loads(path.read_text())
    torch.manual_seed(0)
    tokenizer = SpeechUnitTokenizer.from_encoder("whisper-tiny.en", layer=config.unit_layer, num_units=config.num_units)
    train = corpus["train"]
    if config.frame_pooling > 1:
        coded = pooled_units(tokenizer, corpus, config.frame_pooling)
    else:
        tokenizer.fit((row["audio"] for row in train.select(range(min(100, len(train))))), max_frames=20_000, seed=0)
        coded = {}
        for split in corpus.values():
            arrays = [row["audio"]["array"] for row in split]
            for row, sequence in zip(split, tokenizer.encode(arrays, sampling_rate=16000), strict=True):
                coded[f"{row['id']}/{row['speaker']}"] = sequence
    units = {key: {"units": seq.units, "durations": seq.durations} for key, seq in coded.items()}
    path.write_text(json.dumps(units))
    return corpus, units


def pooled_units(tokenizer: Any, corpus: Any, pooling: int) -> dict[str, Any]:
    """Merged units of every utterance from encoder frames averaged in groups of `pooling` (50 Hz -> 50/pooling Hz)
    before k-means, the codebook fitted on the pooled frames of the first 100 training utterances."""
    from speechgpt_hf.models.unit_tokenizer.kmeans import assign_units, fit_kmeans
    from speechgpt_hf.models.unit_tokenizer.modeling_unit_tokenizer import merge_units

    def pooled(split: Any) -> list[torch.Tensor]:
        frames = tokenizer.frame_units([row["audio"]["array"] for row in split], return_features=True)
        return [f[: len(f) // pooling * pooling].reshape(-1, pooling, f.shape[-1]).mean(1) for f in frames]

    train = corpus["train"]
    sample = torch.cat(pooled(train.select(range(min(100, len(train))))))
    sample = sample[torch.randperm(len(sample), generator=torch.Generator().manual_seed(0))[:20_000]]
    tokenizer.set_codebook(fit_kmeans(sample, tokenizer.config.num_units, seed=0, progress=False).centroids)
    coded = {}
    for split in corpus.values():
        for row, features in zip(split, pooled(split), strict=True):
            coded[f"{row['id']}/{row['speaker']}"] = merge_units(assign_units(features, tokenizer.centroids).tolist())
    return coded


@dataclass(frozen=True)
class Utterance:
    text: str
    units: list[int]
    words: list[str]
    word_units: list[tuple[int, int]]  # each word's [first, last) merged-unit indices
    voice: str = ""
    durations: list[int] = dataclasses.field(default_factory=list)  # each unit's frames
    starts: list[float] = dataclasses.field(default_factory=list)  # each word's start and end, seconds
    ends: list[float] = dataclasses.field(default_factory=list)


def utterances(
    corpus: Any, units: dict[str, dict[str, list[int]]], split: str, frames_per_second: float = 50.0
) -> list[Utterance]:
    from speechgpt_hf.data.word_splicing import word_unit_spans

    items = []
    for row in corpus[split].remove_columns("audio"):
        coded = units[f"{row['id']}/{row['speaker']}"]
        timed = row["words"]
        spans = (
            word_unit_spans(coded["durations"], row["word_starts"], row["word_ends"], frames_per_second)
            if timed
            else []
        )
        items.append(
            Utterance(
                row["text"],
                coded["units"],
                row["words"],
                spans,
                row["speaker"],
                coded["durations"],
                row["word_starts"],
                row["word_ends"],
            )
        )
    return items


@dataclass
class UnitPieces:
    """What the LM reads and writes for a run of merged units: the units themselves, or with a BPE learnt over the
    training utterances' units (one character a unit) its pieces. Rows are spliced, cut and noised as units and
    rewritten as pieces last, so a piece never straddles a splice."""

    bpe: Any = None

    @classmethod
    def learn(cls, train: list[Utterance], vocabulary: int) -> UnitPieces:
        from tokenizers import Tokenizer, models, trainers

        if not vocabulary:
            return cls()
        alphabet = sorted({_letters([u]) for item in train for u in item.units})
        if len(alphabet) > vocabulary:
            raise ValueError(f"A BPE of {vocabulary} pieces cannot hold the {len(alphabet)} units it starts from.")
        bpe = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(vocab_size=vocabulary, initial_alphabet=alphabet, show_progress=False)
        bpe.train_from_iterator((_letters(item.units) for item in train), trainer=trainer)
        return cls(bpe)

    def __call__(self, units: Sequence[int]) -> list[int]:
        if self.bpe is None:
            return list(units)
        return [self.bpe.token_to_id(token) for token in self.bpe.encode(_letters(units)).tokens]


def _letters(units: Sequence[int]) -> str:
    return "".join(chr(0x4E00 + unit) for unit in units)


# ---- the model and its rows -----------------------------------------------------------------------------------------


def build_model(config: ReadingConfig, train_texts: Sequence[str]) -> tuple[Any, Any]:
    from speechgpt_hf.models.speechgpt import SpeechGPTProcessor
    from speechgpt_hf.models.speechgpt.vocabulary_expansion import add_speech_units
    from speechgpt_hf.reproduction.base_lm import small_llama, train_bpe_tokenizer
    from speechgpt_hf.reproduction.settings import SHORT_SYSTEM_PROMPT

    if config.base == "smollm2":
        return pretrained_with_lora(config)
    tokenizer = train_bpe_tokenizer(train_texts, vocab_size=600)
    base = small_llama(len(tokenizer), config.lm_hidden, config.lm_layers, heads=4)
    model, tokenizer = add_speech_units(base, tokenizer, num_units=config.lm_units)
    return model, SpeechGPTProcessor(tokenizer, num_units=config.lm_units, system_prompt=SHORT_SYSTEM_PROMPT)


def pretrained_with_lora(config: ReadingConfig) -> tuple[Any, Any]:
    """The bundled SmolLM2-135M-Instruct expanded with the units as the `pretrained` preset expands it (unit rows
    spread as far apart as text rows, its chat template), behind a LoRA with the unit and marker rows trainable.
    With `lora_r=0` every weight of the transformer trains instead (full fine-tuning), the unit and marker rows as
    PEFT trainable tokens beside them and the text rows of the embedding frozen."""
    from peft import LoraConfig, TrainableTokensConfig, get_peft_model

    from speechgpt_hf.models.speechgpt import SpeechGPTProcessor
    from speechgpt_hf.models.speechgpt.base_models import bundled_smollm2
    from speechgpt_hf.models.speechgpt.vocabulary_expansion import add_speech_units
    from speechgpt_hf.reproduction.settings import SHORT_SYSTEM_PROMPT
    from speechgpt_hf.training.sft import _embedding_module_names, speech_token_ids

    model, tokenizer = add_speech_units(str(bundled_smollm2()), num_units=config.lm_units, unit_row_spread=1.0)
    processor = SpeechGPTProcessor(
        tokenizer, num_units=config.lm_units, system_prompt=SHORT_SYSTEM_PROMPT, prompt_format="chat_template"
    )
    if config.lora_r == 0:
        rows = TrainableTokensConfig(
            target_modules=_embedding_module_names(model), token_indices=speech_token_ids(model)
        )
        model = get_peft_model(model, rows)
        embeddings = {id(model.get_input_embeddings().base_layer.weight)}
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(ROWS in name or id(parameter) not in embeddings)
        return model, processor
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=2 * config.lora_r,
        lora_dropout=0.05,
        target_modules=list(config.lora_targets),
        task_type="CAUSAL_LM",
        trainable_token_indices={name: speech_token_ids(model) for name in _embedding_module_names(model)},
    )
    return get_peft_model(model, lora), processor


def parameter_groups(model: Any, config: ReadingConfig) -> list[dict[str, Any]]:
    """The trainable parameters, the unit rows (PEFT trainable tokens) in a group of their own when they have
    their own learning rate."""
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if config.unit_learning_rate is None:
        return [{"params": [p for _, p in trainable]}]
    rows = [p for name, p in trainable if ROWS in name]
    rest = [p for name, p in trainable if ROWS not in name]
    return [{"params": rest}, {"params": rows, "lr": config.unit_learning_rate}]


def asr_request(units: list[int], description: str) -> str:
    from speechgpt_hf.models.speechgpt.prompt_format import format_cross_modal_instruction, units_to_string

    return format_cross_modal_instruction(description, units_to_string(units))


def phrase_rows(
    config: ReadingConfig, processor: Any, train: list[Utterance], pieces: UnitPieces
) -> list[tuple[list[int], list[int]]]:
    """A curriculum's first rows: `config.curriculum_phrases` ASR rows an utterance of 1-3 of its words each."""
    phrases_only = dataclasses.replace(
        config,
        phrases=config.curriculum_phrases,
        sentences=False,
        **dict.fromkeys(("spliced", "crossovers", "noisy_copies", "interleaved", "grammar_text"), 0),
    )
    return training_rows(phrases_only, processor, train, pieces=pieces)


def training_rows(
    config: ReadingConfig,
    processor: Any,
    train: list[Utterance],
    held_out: Sequence[str] = (),
    pieces: UnitPieces | None = None,
) -> list[tuple[list[int], list[int]]]:
    """(token ids, labels) of every training row: prompt positions of prompt/completion rows are -100, interleaved
    rows are learnt whole."""
    from speechgpt_hf.models.speechgpt.prompt_format import format_cross_modal_instruction, units_to_string
    from speechgpt_hf.models.speechgpt.task_descriptions import load_task_descriptions

    pieces = pieces or UnitPieces()
    asr = load_task_descriptions(None, "asr")[: config.task_descriptions]
    tts = load_task_descriptions(None, "tts")[: config.task_descriptions]
    rng = random.Random(0)
    pairs, texts = [], []
    for item in train:
        if config.sentences:
            pairs.append(processor.prompt_and_completion(asr_request(pieces(item.units), rng.choice(asr)), item.text))
        if config.tts_rows and config.sentences:
            request = format_cross_modal_instruction(rng.choice(tts), item.text)
            pairs.append(processor.prompt_and_completion(request, units_to_string(pieces(item.units))))
        for _ in range(config.noisy_copies):
            noisy = [rng.randrange(config.num_units) if rng.random() < config.unit_noise else u for u in item.units]
            pairs.append(processor.prompt_and_completion(asr_request(pieces(noisy), rng.choice(asr)), item.text))
        for _ in range(config.phrases if item.word_units else 0):
            words, units = phrase(item, rng)
            pairs.append(processor.prompt_and_completion(asr_request(pieces(units), rng.choice(asr)), words))
        for _ in range(config.interleaved if item.word_units else 0):
            texts.append(interleave(item, rng, pieces))
    extra = spliced_sentences(config, train, held_out, config.spliced * len(train))
    extra += crossovers(train, held_out, config.crossovers * len(train))
    texts += [text for text, _ in spliced_sentences(config, train, held_out, config.grammar_text * len(train))]
    for text, units in extra:
        pairs.append(processor.prompt_and_completion(asr_request(pieces(units), rng.choice(asr)), text))
    rows = []
    for prompt, completion in pairs:
        prompt_ids = processor.tokenizer(prompt)["input_ids"]
        ids = processor.tokenizer(prompt + completion)["input_ids"] + [processor.tokenizer.eos_token_id]
        rows.append((ids, [-100] * len(prompt_ids) + ids[len(prompt_ids) :]))
    for text in texts:
        ids = processor.tokenizer(text)["input_ids"] + [processor.tokenizer.eos_token_id]
        rows.append((ids, list(ids)))
    return rows


def spliced_sentences(
    config: ReadingConfig, train: list[Utterance], held_out: Sequence[str], count: int
) -> list[tuple[str, list[int]]]:
    """`count` new grammar sentences (none of them a training or held-out one) spoken by splicing their words'
    units from training utterances of one voice, as the recipe's `spliced_asr_rows` makes them."""
    from speechgpt_hf.data.word_splicing import WordSpliceBank
    from speechgpt_hf.reproduction.corpus_grammar import Grammar, generate_sentences

    if count == 0:
        return []
    bank = WordSpliceBank(frames_per_second=50.0 / config.frame_pooling, mix_speakers=config.splice_mixed)
    for item in train:
        bank.add(item.voice, item.text, item.units, item.durations, item.words, item.starts, item.ends)
    grammar = Grammar.load() if config.words_per_kind is None else Grammar.load().narrowed(config.words_per_kind)
    taken = [item.text for item in train] + list(held_out)
    texts = generate_sentences(2 * count, "spliced", grammar, taken=taken, allow_fewer=True)
    return [(text, units) for text, _, units in bank.speak_many(texts, count, random.Random("spliced"))]


def crossovers(train: list[Utterance], held_out: Sequence[str], count: int) -> list[tuple[str, list[int]]]:
    """`count` new sentences, each the start of one training utterance up to a word it shares with another of the
    same voice, then that other's words from there on (units cut at the shared word's onset): new combinations
    that need only word timings, no grammar. Sentences already in training or held out are not made."""
    from speechgpt_hf.reproduction.corpus_grammar import normalise

    at: dict[tuple[str, str], list[tuple[Utterance, int]]] = {}  # (voice, word) -> where it is spoken
    timed = [item for item in train if item.word_units]
    for item in timed:
        for position, word in enumerate(item.words[1:], start=1):
            at.setdefault((item.voice, normalise(word)), []).append((item, position))
    seen = {normalise(text) for text in [*(item.text for item in train), *held_out]}
    rng = random.Random("crossovers")
    out: list[tuple[str, list[int]]] = []
    for _ in range(20 * count):
        if len(out) == count:
            break
        first = rng.choice(timed)
        i = rng.randrange(1, len(first.words))
        second, j = rng.choice(at[(first.voice, normalise(first.words[i]))])
        words = first.words[:i] + second.words[j:]
        text = " ".join(words) + (second.text[-1] if second.text[-1] in ".?!" else "")
        if normalise(text) in seen:
            continue
        seen.add(normalise(text))
        units = first.units[: first.word_units[i][0]] + second.units[second.word_units[j][0] :]
        out.append((text, [u for k, u in enumerate(units) if k == 0 or u != units[k - 1]]))
    return out


def phrase(item: Utterance, rng: random.Random, max_words: int = 3) -> tuple[str, list[int]]:
    """A random run of 1 to `max_words` words of an utterance and the units spoken over it."""
    size = rng.randint(1, min(max_words, len(item.words)))
    first = rng.randrange(len(item.words) - size + 1)
    start, end = item.word_units[first][0], item.word_units[first + size - 1][1]
    return " ".join(item.words[first : first + size]), item.units[start:end]


def interleave(item: Utterance, rng: random.Random, pieces: UnitPieces, max_words: int = 3) -> str:
    """The utterance as runs of 1 to `max_words` words, written as text and as their unit span in turn (the
    modality of the first run drawn at random): a local text-speech pairing at every switch."""
    from speechgpt_hf.models.speechgpt.prompt_format import units_to_string

    parts, index, speech = [], 0, rng.random() < 0.5
    while index < len(item.words):
        size = rng.randint(1, max_words)
        run = range(index, min(index + size, len(item.words)))
        if speech:
            span = item.units[item.word_units[run[0]][0] : item.word_units[run[-1]][1]]
            parts.append(units_to_string(pieces(span)))
        else:
            parts.append(" ".join(item.words[i] for i in run))
        index, speech = run[-1] + 1, not speech
    return " ".join(parts)


def batches(rows: list, batch_size: int, pad_id: int, seed: int = 0):
    """Endless shuffled batches of (input_ids, labels, attention_mask), right-padded."""
    rng = random.Random(seed)
    while True:
        order = list(range(len(rows)))
        rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            chosen = [rows[i] for i in order[start : start + batch_size]]
            width = max(len(ids) for ids, _ in chosen)
            ids = torch.full((batch_size, width), pad_id)
            labels = torch.full((batch_size, width), -100)
            mask = torch.zeros((batch_size, width), dtype=torch.long)
            for row, (row_ids, row_labels) in enumerate(chosen):
                ids[row, : len(row_ids)] = torch.tensor(row_ids)
                labels[row, : len(row_labels)] = torch.tensor(row_labels)
                mask[row, : len(row_ids)] = 1
            yield ids, labels, mask
