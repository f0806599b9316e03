"""SpeechInstruct, the paper's cross-modal instruction data, as a `datasets` GeneratorBasedBuilder.

Three configurations, one a training stage: `modality_adaptation` (unit sequences of unlabelled speech),
`cross_modal` (ASR and TTS requests from transcribed speech, optionally packed into multi-turn
conversations) and `chain_of_modality` (the four speech/text formats from text instruction pairs voiced by
a TTS engine). datasets 5 has no loading scripts: run the builder directly, e.g.
`SpeechInstruct(config_name="cross_modal", audio_source=ds, unit_tokenizer=tok).download_and_prepare()`,
or write a Hub-ready parquet folder with `speechgpt_hf.data.hub_folder.build_speechinstruct_folder`.

Generation is split into shards of `shard_size` source items, each with its own seeded random stream, so
the output depends only on the seed and the inputs, not on `num_proc` or on which shards were resumed.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import datasets

from ..models.speechgpt.prompt_format import DEFAULT_SYSTEM_PROMPT, Modality
from ..stages import CHAIN_OF_MODALITY, CROSS_MODAL, MODALITY_ADAPTATION
from .rows import (
    ASR,
    COM_TASKS,
    FEATURES,
    TTS,
    WORD_TIMING_FIELDS,
    make_turn,
    render_row,
)
from .skipped import SkippedItems, audio_name
from .sources import (
    BAD_PAIR,
    ID_COLUMNS,
    MISSING_TRANSCRIPT,
    SPEAKER_COLUMNS,
    TOO_LONG,
    TRANSCRIPT_COLUMNS,
    SkipItem,
    decode_audio,
    find_column,
    load_instruction_pairs,
    load_speech_source,
    normalize_transcript,
)
from .speechinstruct_workbench import PortableModule, Workbench, fingerprint, resolve_unit_tokenizer
from .word_splicing import WordSpliceBank

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = {MODALITY_ADAPTATION: 1024, CROSS_MODAL: 512, CHAIN_OF_MODALITY: 1024}
_CITATION = """@inproceedings{zhang-etal-2023-speechgpt,
  title = {SpeechGPT: Empowering Large Language Models with Intrinsic Cross-Modal Conversational Abilities},
  author = {Zhang, Dong and Li, Shimin and Zhang, Xin and Zhan, Jun and Wang, Pengyu and Zhou, Yaqian and Qiu, Xipeng},
  booktitle = {Findings of EMNLP},
  year = {2023}
}"""


@dataclass
class SpeechInstructConfig(datasets.BuilderConfig):
    """What to build a configuration from, and how.

    Sources:
        audio_source: speech for `modality_adaptation`/`cross_modal`: a Dataset, IterableDataset, dict of
            splits, local audio folder or Hub dataset id (with `audio_source_config`, `audio_split`, `streaming`).
        audio_column / transcript_column / id_column / speaker_column: found by usual names when None.
        instructions: text instruction/response pairs for `chain_of_modality` (None: the built-in set).
        unit_tokenizer: a SpeechUnitTokenizer (or any object with `.encode(audio, sampling_rate=)`), or a
            path/repo for `SpeechUnitTokenizer.from_pretrained`; None builds an unfitted MFCC one (a warning).
        tts: "piper", "espeak-ng", an engine, or any callable `text -> (array, sampling_rate)`.
    Recipe:
        asr_probability: chance that a transcribed utterance becomes an ASR request (else TTS).
        asr_and_tts: every transcribed utterance becomes both an ASR and a TTS request (`asr_probability` unused):
            a small corpus is then both read and written in full.
        asr_descriptions / tts_descriptions: task descriptions (list or file; None: the shipped 100 each).
        spliced_asr_rows / spliced_texts: for `cross_modal`, this many extra ASR rows per timed utterance, each a
            sentence of `spliced_texts` (a list, or a text file of one a line, taken in a shard-seeded order)
            spoken by splicing the unit spans of its words from one speaker's utterances in the shard
            (`word_splicing`; needs the source's word timings). Sentences with a word no single speaker said are
            passed over. New combinations of heard words make the LM read word by word (benchmarks/reading.md).
        multi_turn_probability / max_turns: chance that a cross-modal turn joins the previous conversation.
        max_tokens: longest row (None: 1024 / 512 / 1024 for the three stages, as the release trained).
        tokenizer: a tokenizer (or path) to count tokens exactly; None uses `estimate_tokens`.
        max_audio_seconds: longer utterances are skipped as too long.
        com_tasks / com_all_tasks: chain-of-modality formats; each pair gives all of them, or one at random.
        system_prompt, shard_size, seed.
        torch_threads: torch intra-op threads while a shard is generated (None: leave torch's setting). One is
            the default because utterances are short and parallelism comes from `num_proc`; measured on 2 shared
            cores, two threads made MFCC unit extraction ~80x slower than one (threads waiting on each other).
    """

    audio_source: Any = None
    audio_source_config: str | None = None
    audio_split: str | None = None
    streaming: bool = False
    audio_column: str | None = None
    transcript_column: str | None = None
    id_column: str | None = None
    speaker_column: str | None = None
    instructions: Any = None
    unit_tokenizer: Any = None
    tts: Any = "piper"
    asr_probability: float = 0.5
    asr_and_tts: bool = False
    asr_descriptions: Any = None
    tts_descriptions: Any = None
    spliced_asr_rows: int = 0
    spliced_texts: Any = None
    multi_turn_probability: float = 0.0
    max_turns: int = 4
    max_tokens: int | None = None
    tokenizer: Any = None
    max_audio_seconds: float = 30.0
    com_tasks: tuple[str, ...] = tuple(COM_TASKS)
    com_all_tasks: bool = True
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    shard_size: int = 1000
    seed: int = 0
    torch_threads: int | None = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the first bad setting (datasets sets overrides without __post_init__)."""
        if self.name not in DEFAULT_MAX_TOKENS:
            raise ValueError(
                f"Unknown SpeechInstruct configuration {self.name!r}; use one of {list(DEFAULT_MAX_TOKENS)}."
            )
        for name in ("asr_probability", "multi_turn_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}.")
        unknown = [t for t in self.com_tasks if t not in COM_TASKS]
        if unknown or not self.com_tasks:
            raise ValueError(f"com_tasks {list(self.com_tasks)} must be a non-empty subset of {list(COM_TASKS)}.")
        if self.shard_size < 1 or self.max_turns < 1:
            raise ValueError("shard_size and max_turns must be at least 1.")
        if self.spliced_asr_rows < 0:
            raise ValueError(f"spliced_asr_rows must be 0 or more, got {self.spliced_asr_rows}.")
        if self.spliced_asr_rows and self.name != CROSS_MODAL:
            raise ValueError(f"spliced_asr_rows makes ASR rows, which only {CROSS_MODAL} has (not {self.name}).")
        if self.spliced_asr_rows and self.spliced_texts is None:
            raise ValueError("spliced_asr_rows needs spliced_texts= (sentences to splice, or a file of one a line).")
        self.com_tasks = tuple(self.com_tasks)

    @property
    def token_limit(self) -> int:
        return self.max_tokens or DEFAULT_MAX_TOKENS[self.name]


class Shard(NamedTuple):
    """Source items [start, stop) of one split; stop None means "to the end of a stream"."""

    split: str
    index: int
    start: int
    stop: int | None


class ShardResult(NamedTuple):
    """A generated shard: its rows, the source items it left out (by reason, named) and where the time went."""

    rows: list[dict[str, Any]]
    skipped: SkippedItems
    seconds: dict[str, float]


_OBJECT_FIELDS = ("unit_tokenizer", "tts", "tokenizer")


class SpeechInstruct(datasets.GeneratorBasedBuilder):
    """Builds the three SpeechInstruct configurations from speech corpora, instruction pairs and a TTS engine.

    Objects given for `unit_tokenizer`, `tts` or `tokenizer` enter the cache id by their content hash (see
    `fingerprint`), so two builds with different weights never share a prepared cache.
    """

    BUILDER_CONFIG_CLASS = SpeechInstructConfig
    BUILDER_CONFIGS = [
        SpeechInstructConfig(name=MODALITY_ADAPTATION, description="Stage 1: unit sequences of unlabelled speech."),
        SpeechInstructConfig(name=CROSS_MODAL, description="Stage 2: ASR and TTS instructions."),
        SpeechInstructConfig(name=CHAIN_OF_MODALITY, description="Stage 3: the four chain-of-modality formats."),
    ]
    DEFAULT_CONFIG_NAME = CROSS_MODAL
    VERSION = datasets.Version("1.2.0")  # 1.2: the word timing columns

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        objects = {k: kwargs[k] for k in _OBJECT_FIELDS if kwargs.get(k) is not None and not isinstance(kwargs[k], str)}
        kwargs.update({k: f"<{type(v).__name__} {fingerprint(v)}>" for k, v in objects.items()})
        super().__init__(*args, **kwargs)
        # What each object field was, as text: the path/repo given, or the object's content hash.
        self.input_ids = {k: kwargs[k] if k in kwargs else getattr(self.config, k) for k in _OBJECT_FIELDS}
        for key, value in objects.items():
            setattr(self.config, key, value)
        self.config.validate()

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=f"SpeechInstruct ({self.config.name}): {self.config.description or ''}",
            features=FEATURES,
            citation=_CITATION,
            homepage="https://arxiv.org/abs/2305.11000",
        )

    # ---- planning ------------------------------------------------------------------------------------------
    def sources(self) -> dict[str, Any]:
        """`{split: source}`: speech datasets, or for chain-of-modality `{"train": list of instruction pairs}`."""
        if getattr(self, "_sources", None) is None:
            config = self.config
            if config.name == CHAIN_OF_MODALITY:
                self._sources = {"train": load_instruction_pairs(config.instructions)}
            elif config.audio_source is None:
                raise ValueError(f"The {config.name} configuration needs audio_source= (a Dataset, folder or Hub id).")
            else:
                self._sources = load_speech_source(
                    config.audio_source, config.audio_source_config, config.audio_split, config.streaming
                )
        return self._sources

    def plan(self) -> dict[str, list[Shard]]:
        """The shards of every split; a streamed split is one open-ended shard here (see `iter_stream_shards`)."""
        plan = {}
        for split, source in self.sources().items():
            if isinstance(source, datasets.IterableDataset):
                plan[split] = [Shard(split, 0, 0, None)]
                continue
            size, step = len(source), self.config.shard_size
            plan[split] = [
                Shard(split, i, start, min(start + step, size)) for i, start in enumerate(range(0, size, step))
            ]
        return plan

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"shards": shards}) for split, shards in self.plan().items()
        ]

    def _generate_examples(self, shards: list[Shard]) -> Iterator[tuple[str, dict[str, Any]]]:
        for shard in shards:
            items = self.shard_items(shard)
            if shard.stop is None:  # one stream: still shard it, so the random streams match the folder writer
                batches = enumerate(_batched(items, self.config.shard_size))
                results = (self.generate_shard(Shard(shard.split, i, 0, None), batch) for i, batch in batches)
            else:
                results = iter([self.generate_shard(shard, items)])
            for result in results:
                if result.skipped:
                    logger.warning(
                        "SpeechInstruct %s/%s skipped:\n%s",
                        self.config.name,
                        shard.split,
                        "\n".join(result.skipped.lines()),
                    )
                for row in result.rows:
                    yield row["id"], row

    def shard_items(self, shard: Shard) -> Iterable[tuple[int, Any]]:
        """(item index, source item) pairs of a shard."""
        source = self.sources()[shard.split]
        if shard.stop is None:
            return enumerate(source)
        if isinstance(source, list):
            return ((i, source[i]) for i in range(shard.start, shard.stop))
        rows = _decoded_per_item(source.select(range(shard.start, shard.stop)), self.config.audio_column or "audio")
        return zip(range(shard.start, shard.stop), rows, strict=True)

    def iter_stream_shards(self, split: str) -> Iterator[tuple[Shard, list[tuple[int, Any]]]]:
        """A streamed split cut into shards of `shard_size` items as it is read (for resumable folder writes)."""
        for index, batch in enumerate(_batched(enumerate(self.sources()[split]), self.config.shard_size)):
            yield Shard(split, index, batch[0][0], batch[-1][0] + 1), batch

    # ---- generation ----------------------------------------------------------------------------------------
    @property
    def workbench(self) -> Workbench:
        if getattr(self, "_workbench", None) is None:
            self._workbench = Workbench(self.config)
        return self._workbench

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_workbench"], state["_parent_pid"] = None, os.getpid()  # the workbench is rebuilt in each worker
        if hasattr(self.config.unit_tokenizer, "state_dict"):
            state["config"] = copy.copy(self.config)
            state["config"].unit_tokenizer = PortableModule(self.config.unit_tokenizer)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if state.get("_parent_pid") not in (None, os.getpid()):
            import torch

            # A forked worker must not enter OpenMP regions its parent started (libgomp hangs); with one process
            # a core, one thread each is what it should use anyway.
            torch.set_num_threads(1)

    def generate_shard(self, shard: Shard, items: Iterable[tuple[int, Any]]) -> ShardResult:
        """The rows of one shard, what was skipped (by reason, each item named) and where the time went."""
        import torch

        threads = torch.get_num_threads()
        if self.config.torch_threads:
            torch.set_num_threads(self.config.torch_threads)
        try:
            return self._generate_shard(shard, items)
        finally:
            torch.set_num_threads(threads)

    def _generate_shard(self, shard: Shard, items: Iterable[tuple[int, Any]]) -> ShardResult:
        bench, skipped = self.workbench, SkippedItems()
        bench.seconds.clear()
        rng = random.Random(f"{self.config.seed}/{self.config.name}/{shard.split}/{shard.index}")
        started = time.perf_counter()
        make = {MODALITY_ADAPTATION: self._modality_turns, CROSS_MODAL: self._cross_modal_turns}.get(
            self.config.name, self._chain_of_modality_turns
        )
        turns = self._checked_turns(make(items, rng, skipped), skipped)
        if self.config.name == CROSS_MODAL and self.config.multi_turn_probability > 0:
            conversations = self._pack(turns, rng)
        else:
            conversations = ([turn] for turn in turns)
        rows = [self._render(conversation) for conversation in conversations]
        seconds = dict(bench.seconds)
        seconds["total"] = time.perf_counter() - started
        return ShardResult(rows, skipped, seconds)

    def _render(self, turns: list[dict[str, Any]]) -> dict[str, Any]:
        row_id = "+".join(f"{t['task']}:{t['source_id']}" for t in turns)
        return render_row(row_id, turns, self.config.system_prompt)

    def _checked_turns(self, turns: Iterable[dict[str, Any]], skipped: SkippedItems) -> Iterator[dict[str, Any]]:
        """Drops turns whose row would exceed the token limit (named by their source id)."""
        for turn in turns:
            started = time.perf_counter()
            length = self.workbench.count_tokens(self._render([turn])["text"])
            self.workbench.seconds["render and count"] += time.perf_counter() - started
            if length > self.config.token_limit:
                skipped.add(TOO_LONG, turn["source_id"])
            else:
                yield turn

    def _pack(self, turns: Iterable[dict[str, Any]], rng: random.Random) -> Iterator[list[dict[str, Any]]]:
        """Joins consecutive turns into conversations while they fit in `max_tokens` and `max_turns`."""
        conversation: list[dict[str, Any]] = []
        for turn in turns:
            if conversation and len(conversation) < self.config.max_turns:
                if rng.random() < self.config.multi_turn_probability:
                    candidate = conversation + [turn]
                    if self.workbench.count_tokens(self._render(candidate)["text"]) <= self.config.token_limit:
                        conversation = candidate
                        continue
            if conversation:
                yield conversation
            conversation = [turn]
        if conversation:
            yield conversation

    def _speech_items(
        self, items: Iterable[tuple[int, Any]], skipped: SkippedItems, need_transcript: bool
    ) -> Iterator[tuple[dict[str, Any], str, Any, dict[str, list[Any]]]]:
        """(ids, transcript, UnitSequence, word timings) of each usable utterance; bad ones are counted by reason and named
        by their id, else their file, else their index. The timings are the source's `words`, `word_starts` and
        `word_ends` columns where it has all three (a speech corpus built by `build_speech_corpus` does)."""
        columns: dict[str, str | None] | None = None
        for index, example in items:
            if columns is None:
                columns, timed = self._columns(list(example)), set(WORD_TIMING_FIELDS) <= set(example)
            transcript = normalize_transcript(example.get(columns["transcript"])) if columns["transcript"] else ""
            ids = {
                "source_id": str(example[columns["id"]]) if columns["id"] else f"{index:08d}",
                "speaker": str(example[columns["speaker"]]) if columns["speaker"] else "",
            }
            try:
                if need_transcript and not transcript:
                    raise SkipItem(MISSING_TRANSCRIPT)
                started = time.perf_counter()
                audio, sampling_rate = decode_audio(example[columns["audio"]])
                self.workbench.seconds["audio decoding"] += time.perf_counter() - started
                units = self.workbench.encode_sequence(audio, sampling_rate)
            except SkipItem as skip:
                name = ids["source_id"] if columns["id"] else audio_name(example[columns["audio"]]) or f"item {index}"
                skipped.add(skip.reason, name)
                continue
            timings = {key: list(example[key] or []) for key in WORD_TIMING_FIELDS} if timed else {}
            yield ids, transcript, units, timings

    def _columns(self, columns: list[str]) -> dict[str, str | None]:
        config = self.config
        audio = find_column(columns, config.audio_column, ("audio",), "audio")
        if audio is None:
            raise ValueError(f"No audio column in the source (columns {columns}): pass audio_column=.")
        return {
            "audio": audio,
            "transcript": find_column(columns, config.transcript_column, TRANSCRIPT_COLUMNS, "transcript"),
            "id": find_column(columns, config.id_column, ID_COLUMNS, "id"),
            "speaker": find_column(columns, config.speaker_column, SPEAKER_COLUMNS, "speaker"),
        }

    def _modality_turns(self, items: Iterable, rng: random.Random, skipped: SkippedItems) -> Iterator[dict[str, Any]]:
        for ids, transcript, sequence, timings in self._speech_items(items, skipped, need_transcript=False):
            turn = make_turn(MODALITY_ADAPTATION, input_text=transcript, input_units=sequence.units, **ids)
            yield {**turn, **timings}

    def _cross_modal_turns(
        self, items: Iterable, rng: random.Random, skipped: SkippedItems
    ) -> Iterator[dict[str, Any]]:
        bench = self.workbench
        bank = WordSpliceBank(bench.frames_per_second)
        timed = utterances = 0
        for ids, transcript, sequence, timings in self._speech_items(items, skipped, need_transcript=True):
            units, utterances = list(sequence.units), utterances + 1
            if self.config.spliced_asr_rows and timings.get("words"):
                durations = getattr(sequence, "durations", None) or []
                timed += bank.add(
                    ids["speaker"], transcript, units, durations, *(timings[k] for k in WORD_TIMING_FIELDS)
                )
            both = self.config.asr_and_tts
            asr = both or rng.random() < self.config.asr_probability
            if asr:
                description = rng.choice(bench.asr_descriptions)
                yield {**make_turn(ASR, description, transcript, units, output_text=transcript, **ids), **timings}
            if both or not asr:
                description = rng.choice(bench.tts_descriptions)
                turn = make_turn(TTS, description, transcript, output_text=transcript, output_units=units, **ids)
                yield {**turn, **timings}
        if self.config.spliced_asr_rows and utterances and not timed:
            logger.warning(
                "spliced_asr_rows: none of %d utterances has word timings (words, word_starts, word_ends columns) and "
                "unit durations (a unit tokenizer whose encode returns a UnitSequence), so no spliced rows were made.",
                utterances,
            )
        yield from self._spliced_turns(bank, timed * self.config.spliced_asr_rows, rng)

    def _spliced_turns(self, bank: WordSpliceBank, count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
        """`count` ASR turns of `spliced_texts` sentences spoken by `bank` (see `spliced_asr_rows`)."""
        if not count:
            return
        bench = self.workbench
        texts = list(bench.spliced_texts)
        rng.shuffle(texts)
        for index, (text, speaker, units) in enumerate(bank.speak_many(texts, count, rng)):
            description = rng.choice(bench.asr_descriptions)
            transcript = normalize_transcript(text)
            yield make_turn(
                ASR,
                description,
                transcript,
                units,
                output_text=transcript,
                speaker=speaker,
                source_id=f"spliced-{index}",
            )

    def _chain_of_modality_turns(
        self, items: Iterable, rng: random.Random, skipped: SkippedItems
    ) -> Iterator[dict[str, Any]]:
        config, bench = self.config, self.workbench
        for _, pair in items:
            tasks = list(config.com_tasks) if config.com_all_tasks else [rng.choice(config.com_tasks)]
            speaker = rng.choice(bench.tts.speakers)
            if not pair["instruction"] or not pair["response"]:
                skipped.add(BAD_PAIR, pair["id"])
                continue
            try:
                speech_in = any(COM_TASKS[t][0] is Modality.SPEECH for t in tasks)
                speech_out = any(COM_TASKS[t][1] is Modality.SPEECH for t in tasks)
                units_in = bench.speak(pair["instruction"], speaker) if speech_in else []
                units_out = bench.speak(pair["response"], speaker) if speech_out else []
            except SkipItem as skip:
                skipped.add(skip.reason, pair["id"])
                continue
            for task in tasks:
                modality_in, modality_out = COM_TASKS[task]
                yield make_turn(
                    task,
                    instruction=pair["instruction"],
                    input_text=pair["instruction"],
                    input_units=units_in if modality_in is Modality.SPEECH else [],
                    output_text=pair["response"],
                    output_units=units_out if modality_out is Modality.SPEECH else [],
                    speaker=f"{bench.tts.name}:{speaker}",
                    source_id=pair["id"],
                )


class _LazyAudio:
    """A datasets Audio value decoded (by its own feature, as datasets would) only when its samples are read, so
    that a corrupt file fails as its own item, which the builder skips, not as the read of a whole shard."""

    def __init__(self, value: dict[str, Any], feature: datasets.Audio) -> None:
        self.value, self.feature, self.path = value, feature, value.get("path")

    def get_all_samples(self) -> Any:
        return self.feature.decode_example(self.value).get_all_samples()


def _decoded_per_item(rows: datasets.Dataset, column: str) -> Iterator[dict[str, Any]]:
    """The rows of `rows`, with a decoding Audio `column` read undecoded and decoded item by item (`_LazyAudio`)."""
    feature = rows.features.get(column)
    if not isinstance(feature, datasets.Audio) or not feature.decode:
        yield from rows
        return
    for row in rows.cast_column(column, datasets.Audio(decode=False)):
        yield {**row, column: None if row[column] is None else _LazyAudio(row[column], feature)}


def _batched(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


__all__ = [
    "DEFAULT_MAX_TOKENS",
    "Shard",
    "ShardResult",
    "SpeechInstruct",
    "SpeechInstructConfig",
    "resolve_unit_tokenizer",
]
