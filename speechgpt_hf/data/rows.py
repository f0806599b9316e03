"""The SpeechInstruct row: its schema, how a row is built for each task, and its ready-to-train text forms.

A row describes one exchange in structured fields (task, instruction, input/output text and units,
speaker, source id) and carries the same exchange rendered three ways: `text` (system prompt and the
whole conversation, for language modelling), and `prompt`/`completion` (for SFT: the prompt ends with
`[SpeechGPT]: `, the completion is the answer and `<eoa>`). Multi-turn rows keep their earlier turns
in `history`; the top-level fields describe the last turn, the one the completion answers. All prompt
text comes from `speechgpt_hf.models.speechgpt.prompt_format`. The stored text is this package's prompt format;
training renders `prompt`/`completion` again from the structured fields in the prompt format (and under the
system prompt) of the model's processor (`prompt_completion_for`), so that training and use agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import datasets

from ..models.speechgpt.prompt_format import (
    DEFAULT_SYSTEM_PROMPT,
    Modality,
    PromptFormat,
    format_chain_of_modality_request,
    format_chain_of_modality_response,
    format_cross_modal_instruction,
    format_turn,
    units_to_string,
)
from ..stages import CHAIN_OF_MODALITY, CROSS_MODAL, MODALITY_ADAPTATION

ASR, TTS = "asr", "tts"
# Chain-of-modality tasks: (input modality, output modality).
COM_TASKS: dict[str, tuple[Modality, Modality]] = {
    "speech_to_speech": (Modality.SPEECH, Modality.SPEECH),
    "speech_to_text": (Modality.SPEECH, Modality.TEXT),
    "text_to_speech": (Modality.TEXT, Modality.SPEECH),
    "text_to_text": (Modality.TEXT, Modality.TEXT),
}

_TURN_FIELDS = {
    "task": datasets.Value("string"),
    "instruction": datasets.Value("string"),
    "input_modality": datasets.Value("string"),
    "output_modality": datasets.Value("string"),
    "input_text": datasets.Value("string"),
    "input_units": datasets.List(datasets.Value("int32")),
    "output_text": datasets.Value("string"),
    "output_units": datasets.List(datasets.Value("int32")),
    "speaker": datasets.Value("string"),
    "source_id": datasets.Value("string"),
}
TURN_KEYS = tuple(_TURN_FIELDS)
# The words of the row's recording (its last turn's speech, when the source had timings) and their start and end
# times in seconds; empty lists otherwise. The original jsonl layout does not carry them.
WORD_TIMING_FIELDS = {
    "words": datasets.List(datasets.Value("string")),
    "word_starts": datasets.List(datasets.Value("float64")),
    "word_ends": datasets.List(datasets.Value("float64")),
}

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        **_TURN_FIELDS,
        "history": datasets.List(dict(_TURN_FIELDS)),
        "text": datasets.Value("string"),
        "prompt": datasets.Value("string"),
        "completion": datasets.Value("string"),
        **WORD_TIMING_FIELDS,
    }
)

_UNIT_TOKEN = re.compile(r"<\d+>|<sosp>|<eosp>|<eoh>|<eoa>|\[Human\]|\[SpeechGPT\]")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free length estimate: one token a unit or special marker, one a 4 characters of the rest.

    Four characters a token is the usual rate of English BPE vocabularies; pass a real tokenizer's
    counter (see `token_counter`) where lengths must be exact.
    """
    specials = _UNIT_TOKEN.findall(text)
    rest = len(text) - sum(len(s) for s in specials)
    return len(specials) + math.ceil(rest / 4)


def token_counter(tokenizer: Any | None) -> Callable[[str], int]:
    """A `text -> number of tokens` function: `estimate_tokens`, or the length under a given tokenizer."""
    if tokenizer is None:
        return estimate_tokens
    if isinstance(tokenizer, str):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def make_turn(
    task: str,
    instruction: str = "",
    input_text: str = "",
    input_units: Sequence[int] = (),
    output_text: str = "",
    output_units: Sequence[int] = (),
    speaker: str = "",
    source_id: str = "",
) -> dict[str, Any]:
    """One exchange's structured fields; the modalities follow from the task."""
    if task in COM_TASKS:
        input_modality, output_modality = (m.value for m in COM_TASKS[task])
    elif task == ASR:
        input_modality, output_modality = Modality.SPEECH.value, Modality.TEXT.value
    elif task == TTS:
        input_modality, output_modality = Modality.TEXT.value, Modality.SPEECH.value
    elif task == MODALITY_ADAPTATION:
        input_modality, output_modality = Modality.SPEECH.value, ""
    else:
        raise ValueError(f"Unknown SpeechInstruct task {task!r}.")
    return {
        "task": task,
        "instruction": instruction,
        "input_modality": input_modality,
        "output_modality": output_modality,
        "input_text": input_text,
        "input_units": [int(u) for u in input_units],
        "output_text": output_text,
        "output_units": [int(u) for u in output_units],
        "speaker": speaker,
        "source_id": source_id,
    }


def render_exchange(
    turn: dict[str, Any], prompt_format: PromptFormat | str = PromptFormat.SPEECHGPT
) -> tuple[str, str]:
    """(human instruction, SpeechGPT response) of one cross-modal or chain-of-modality turn in `prompt_format`.

    This package's chain-of-modality instruction names its input and wanted output modality, so the prompt alone
    tells which of the four answer formats is wanted; the "release" format has the bare input instead.
    """
    task = turn["task"]
    if task == ASR:
        request = format_cross_modal_instruction(turn["instruction"], units_to_string(turn["input_units"]))
        return request, turn["output_text"]
    if task == TTS:
        request = format_cross_modal_instruction(turn["instruction"], turn["input_text"])
        return request, units_to_string(turn["output_units"])
    if task in COM_TASKS:
        speech_in = turn["input_modality"] == Modality.SPEECH.value
        content = units_to_string(turn["input_units"]) if speech_in else turn["input_text"]
        human = format_chain_of_modality_request(
            content, turn["input_modality"], turn["output_modality"], prompt_format
        )
        response = format_chain_of_modality_response(
            turn["output_modality"],
            turn["output_text"],
            answer_units=turn["output_units"] or None,
            transcript=turn["input_text"] if speech_in else None,
            prompt_format=prompt_format,
        )
        return human, response
    raise ValueError(f"Task {task!r} has no instruction/response form.")


def turn_messages(turn: dict[str, Any]) -> list[dict[str, Any]]:
    """The user and assistant chat messages of one cross-modal or chain-of-modality turn, as SpeechGPT's chat
    template reads them (units as unit-string text items, the wanted answer as the message's `output_modality`)."""
    task = turn["task"]
    _, response = render_exchange(turn)
    if task in (ASR, TTS):
        content = units_to_string(turn["input_units"]) if task == ASR else turn["input_text"]
        user = {"role": "user", "content": [_text(turn["instruction"]), _text(content)]}
    else:
        speech_in = turn["input_modality"] == Modality.SPEECH.value
        content = units_to_string(turn["input_units"]) if speech_in else turn["input_text"]
        user = {"role": "user", "content": [_text(content)], "output_modality": turn["output_modality"]}
    return [user, {"role": "assistant", "content": [_text(response)]}]


def row_messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A row's conversation (its history, then its last turn) as chat messages: the processor's chat template
    renders them, after the system prompt, as the row's `prompt` + `completion`."""
    if row["task"] == MODALITY_ADAPTATION:
        raise ValueError("Modality-adaptation rows are bare unit sequences, not conversations; train on their `text`.")
    return [message for turn in [*row["history"], row] for message in turn_messages(turn)]


def prompt_completion_for(row: dict[str, Any], processor: Any) -> dict[str, str]:
    """A row's `prompt` and `completion` rendered from its structured fields by `processor` (a SpeechGPTProcessor)
    in its prompt format and under its system prompt: the text the trained model is then prompted with."""
    if row["task"] == MODALITY_ADAPTATION:
        raise ValueError("Modality-adaptation rows are bare unit sequences, not conversations; train on their `text`.")
    *history, (instruction, response) = [
        render_exchange(turn, processor.prompt_format) for turn in [*(row.get("history") or []), row]
    ]
    prompt, completion = processor.prompt_and_completion(instruction, response, history)
    return {"prompt": prompt, "completion": completion}


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def render_row(
    row_id: str, turns: Sequence[dict[str, Any]], system_prompt: str = DEFAULT_SYSTEM_PROMPT
) -> dict[str, Any]:
    """A full row from its turns (the last one is trained on): structured fields plus text/prompt/completion, and
    the last turn's word timings (`words`, `word_starts`, `word_ends`) where it has them."""
    if not turns:
        raise ValueError("A row needs at least one turn.")
    timings = {key: list(turns[-1].get(key) or []) for key in WORD_TIMING_FIELDS}  # the last turn's, at top level
    *history, last = [{k: v for k, v in turn.items() if k not in WORD_TIMING_FIELDS} for turn in turns]
    if last["task"] == MODALITY_ADAPTATION:
        if history:
            raise ValueError("Modality-adaptation rows are single unit sequences; they have no history.")
        text = units_to_string(last["input_units"])
        return {"id": row_id, **last, "history": [], "text": text, "prompt": "", "completion": text, **timings}
    context = "".join(format_turn(*render_exchange(turn)) + " " for turn in history)
    question, answer = render_exchange(last)
    prompt = (system_prompt + context + format_turn(question)).rstrip(" ")  # the space is the answer's first token
    text = system_prompt + context + format_turn(question, answer)
    return {
        "id": row_id,
        **last,
        "history": [dict(turn) for turn in history],
        "text": text,
        "prompt": prompt,
        "completion": text[len(prompt) :],
        **timings,
    }


__all__ = [
    "ASR",
    "CHAIN_OF_MODALITY",
    "COM_TASKS",
    "CROSS_MODAL",
    "FEATURES",
    "MODALITY_ADAPTATION",
    "TTS",
    "TURN_KEYS",
    "WORD_TIMING_FIELDS",
    "estimate_tokens",
    "make_turn",
    "prompt_completion_for",
    "render_exchange",
    "render_row",
    "row_messages",
    "token_counter",
    "turn_messages",
]
