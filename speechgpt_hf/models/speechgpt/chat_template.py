"""SpeechGPT's Jinja chat template, generated from the prompt formats so that both say the same thing.

The template renders messages whose content items are `{"type": "text", "text": ...}` and `{"type": "audio", ...}`
as `build_prompt` does: the system prompt (a system message, else the `system_prompt` variable, else the one the
template was made with), then the turns as its prompt format writes them (this package's `[Human]: … <eoh>. `
turns and `[SpeechGPT]: …<eoa>` answers, the original release's layouts, or the base LLM's own chat template), and:

- one item: the instruction as it is (free form); an audio item becomes `AUDIO_PLACEHOLDER`, which the processor
  replaces with the audio's unit string;
- a text item followed by more items: the cross-modal form `'{task description} This is input: {the rest}'`;
- `output_modality` ("speech" or "text"), as a template variable for the last user message or as a key of any user
  message: the chain-of-modality request for that kind of answer to its one (spoken or written) instruction (for the
  "release" format, the bare instruction, as the release was trained).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .prompt_format import (
    _GUIDANCE,
    _INPUT_SENTENCE,
    _OUTPUT_SENTENCE,
    DEFAULT_SYSTEM_PROMPT,
    INPUT_MARKER,
    SPEECHGPT,
    PromptFormat,
    as_prompt_format,
    format_release_turn,
    format_turn,
)

# What an audio item renders as until the processor puts the audio's units in its place.
AUDIO_PLACEHOLDER = "<|speechgpt_audio|>"

# The first line of every template made here, so that one is never taken for a base LLM's own template.
TEMPLATE_TAG = "{#- speechgpt-hf chat template -#}"

# Turns the messages into `ns.system` and `ns.turns` (user and assistant turns with plain-text content): audio items
# become AUDIO, a request with `output_modality` the chain-of-modality request, text followed by input cross-modal.
_NORMALIZE = """\
{%- set ns = namespace(system=DEFAULT_SYSTEM, last_user=-1, text='', rest='', turns=[]) -%}
{%- if system_prompt is defined and system_prompt is not none -%}{%- set ns.system = system_prompt -%}{%- endif -%}
{%- macro item_text(item) -%}
  {%- if item['type'] == 'text' -%}{{- item['text'] -}}
  {%- elif item['type'] == 'audio' -%}{{- AUDIO -}}
  {%- else -%}{{- raise_exception("SpeechGPT messages hold 'text' and 'audio' items, not " ~ item['type']) -}}
  {%- endif -%}
{%- endmacro -%}
{%- for message in messages -%}
  {%- if message['role'] == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}
{%- endfor -%}
{%- for message in messages -%}
  {%- set items = [{'type': 'text', 'text': message['content']}] if message['content'] is string else message['content'] -%}
  {%- if message['role'] == 'system' -%}
    {%- if not loop.first -%}{{- raise_exception('Only the first message may be the system prompt.') -}}{%- endif -%}
    {%- set ns.text = '' -%}
    {%- for item in items -%}{%- set ns.text = ns.text ~ item_text(item) -%}{%- endfor -%}
    {%- set ns.system = ns.text -%}
  {%- elif message['role'] == 'user' -%}
    {%- if message['output_modality'] is defined -%}{%- set wanted = message['output_modality'] -%}
    {%- elif loop.index0 == ns.last_user and output_modality is defined -%}{%- set wanted = output_modality -%}
    {%- else -%}{%- set wanted = none -%}
    {%- endif -%}
    {%- if items | length == 0 -%}{{- raise_exception('A user message needs a text or an audio item.') -}}{%- endif -%}
    {%- if wanted is not none -%}
      {%- if items | length != 1 -%}
        {{- raise_exception('A request with output_modality takes one instruction, spoken or written: give one audio or one text item.') -}}
      {%- endif -%}
      {%- set content = item_text(items[0]) | trim -%}
      {%- if not content -%}{{- raise_exception('A chain-of-modality instruction needs its input (audio, a unit string or text).') -}}{%- endif -%}
      {%- set source = 'speech' if (items[0]['type'] == 'audio' or '<sosp>' in content) else 'text' -%}
      {%- if wanted == 'speech' -%}{%- set target = 'speech' -%}
      {%- elif wanted == 'text' -%}{%- set target = 'text' -%}
      {%- else -%}{{- raise_exception("output_modality must be 'speech' or 'text', got " ~ wanted) -}}
      {%- endif -%}
      {%- if BARE_REQUEST -%}{%- set instruction = content -%}
      {%- else -%}
        {%- set instruction = INPUT_SENTENCE[source] ~ ' ' ~ content ~ '\\n' ~ OUTPUT_SENTENCE[target] ~ ' ' ~ GUIDANCE[source ~ '-' ~ target] -%}
      {%- endif -%}
    {%- elif items | length == 1 -%}
      {%- set instruction = item_text(items[0]) -%}
    {%- else -%}
      {%- set ns.rest = '' -%}
      {%- for item in items[1:] -%}{%- set ns.rest = ns.rest ~ ' ' ~ item_text(item) -%}{%- endfor -%}
      {%- if items[0]['type'] == 'text' -%}
        {%- set head = item_text(items[0]) | trim -%}
        {%- if not head.endswith(MARKER) -%}{%- set head = head ~ ' ' ~ MARKER -%}{%- endif -%}
      {%- else -%}
        {%- set head = item_text(items[0]) -%}
      {%- endif -%}
      {%- set instruction = head ~ ns.rest -%}
    {%- endif -%}
    {%- set ns.turns = ns.turns + [{'role': 'user', 'content': instruction}] -%}
  {%- elif message['role'] == 'assistant' -%}
    {%- set ns.text = '' -%}
    {%- for item in items -%}{%- set ns.text = ns.text ~ item_text(item) -%}{%- endfor -%}
    {%- set ns.turns = ns.turns + [{'role': 'assistant', 'content': ns.text}] -%}
  {%- else -%}
    {{- raise_exception("SpeechGPT conversations have 'system', 'user' and 'assistant' messages, not " ~ message['role']) -}}
  {%- endif -%}
{%- endfor -%}
"""

# This package's turns: `[Human]: … <eoh>. [SpeechGPT]: …<eoa>`, one space between turns.
_SPEECHGPT_TURNS = """\
{{- ns.system -}}
{%- for turn in ns.turns -%}
  {%- if turn['role'] == 'user' -%}{{- HUMAN_START ~ turn['content'] ~ HUMAN_END -}}
  {%- else -%}{{- ANSWER_START ~ turn['content'] ~ ANSWER_END -}}{%- if not loop.last -%}{{- ' ' -}}{%- endif -%}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- ANSWER_PROMPT -}}{%- endif -%}
"""

# The release's turns: a cross-modal exchange ends `<eoh> ` / `<eoa> `, any other `<eoh>. ` / `<eoa>.` and a space.
_RELEASE_TURNS = """\
{{- ns.system -}}
{%- set release = namespace(cross=false) -%}
{%- for turn in ns.turns -%}
  {%- if turn['role'] == 'user' -%}
    {%- set release.cross = MARKER.lower() in turn['content'].lower() -%}
    {{- HUMAN_START ~ turn['content'] ~ (CROSS_HUMAN_END if release.cross else HUMAN_END) -}}
  {%- else -%}
    {{- ANSWER_START ~ turn['content'] ~ (CROSS_ANSWER_END if release.cross else ANSWER_END) -}}
    {%- if not loop.last and not release.cross -%}{{- ' ' -}}{%- endif -%}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- ANSWER_PROMPT -}}{%- endif -%}
"""

# The base LLM's own template renders the plain-text turns, after the system prompt as a system message.
_BASE_TURNS = """\
{%- set messages = ([{'role': 'system', 'content': ns.system}] if ns.system else []) + ns.turns -%}
"""


def _turn_pieces(turn: Any, name: str = "") -> dict[str, str]:
    """The fixed text around a turn's instruction and answer, cut out of the turn function itself."""
    instruction, answer = "\x00" + name, "\x01"
    human_start, rest = turn(instruction, answer).split(instruction)
    between, answer_end = rest.split(answer)
    split = between.index(SPEECHGPT)
    return {
        "HUMAN_START": human_start,
        "HUMAN_END": between[:split],
        "ANSWER_START": between[split:],
        # where generation starts: the space after the marker belongs to the answer (see SpeechGPTProcessor._prompt)
        "ANSWER_PROMPT": between[split:].rstrip(" "),
        "ANSWER_END": answer_end,
    }


def _release_pieces() -> dict[str, str]:
    """The release's turn pieces of a chain-of-modality exchange, and (CROSS_…) those of a cross-modal one."""
    cross = _turn_pieces(format_release_turn, f" {INPUT_MARKER}")
    return {**_turn_pieces(format_release_turn), **{f"CROSS_{key}": cross[key] for key in ("HUMAN_END", "ANSWER_END")}}


def is_speechgpt_chat_template(template: str | None) -> bool:
    """Whether `template` was made by `speechgpt_chat_template` (as opposed to a base LLM's own template)."""
    return bool(template) and (template.startswith(TEMPLATE_TAG) or template.startswith("{%- set DEFAULT_SYSTEM ="))


def speechgpt_chat_template(
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    prompt_format: PromptFormat | str = PromptFormat.SPEECHGPT,
    base_chat_template: str | None = None,
) -> str:
    """The Jinja chat template of SpeechGPT conversations in `prompt_format`, with `system_prompt` as its default
    system prompt; "chat_template" wraps `base_chat_template` (the base LLM's own), which renders the turns."""
    prompt_format = as_prompt_format(prompt_format)
    if prompt_format is PromptFormat.CHAT_TEMPLATE and not base_chat_template:
        raise ValueError("The chat_template prompt format needs the base LLM's chat template (base_chat_template).")
    if prompt_format is PromptFormat.CHAT_TEMPLATE and is_speechgpt_chat_template(base_chat_template):
        raise ValueError(
            "base_chat_template is a SpeechGPT chat template, not the base LLM's own: pass the instruct model's "
            "template (its tokenizer's chat_template before it was saved inside a SpeechGPT processor)."
        )
    pieces = _release_pieces() if prompt_format is PromptFormat.RELEASE else _turn_pieces(format_turn)
    constants: dict[str, Any] = {
        "DEFAULT_SYSTEM": system_prompt,
        "AUDIO": AUDIO_PLACEHOLDER,
        "MARKER": INPUT_MARKER,
        "BARE_REQUEST": prompt_format is PromptFormat.RELEASE,
        "INPUT_SENTENCE": {source.value: sentence for source, sentence in _INPUT_SENTENCE.items()},
        "OUTPUT_SENTENCE": {target.value: sentence for target, sentence in _OUTPUT_SENTENCE.items()},
        "GUIDANCE": {f"{source.value}-{target.value}": text for (source, target), text in _GUIDANCE.items()},
        **pieces,
    }
    header = "".join(
        f"{{%- set {name} = {json.dumps(value, ensure_ascii=False)} -%}}\n" for name, value in constants.items()
    )
    turns = {
        PromptFormat.SPEECHGPT: _SPEECHGPT_TURNS,
        PromptFormat.RELEASE: _RELEASE_TURNS,
        PromptFormat.CHAT_TEMPLATE: _BASE_TURNS + (base_chat_template or ""),
    }[prompt_format]
    return f"{TEMPLATE_TAG}\n{header}{_NORMALIZE}{turns}"


def history_messages(history: Sequence[tuple[str, str]], instruction: str | None = None) -> list[dict[str, Any]]:
    """Chat messages of earlier `(instruction, answer)` turns, then `instruction` (when given) as the next request."""
    messages: list[dict[str, Any]] = []
    for question, answer in history:
        messages.append({"role": "user", "content": [{"type": "text", "text": question}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    if instruction is not None:
        messages.append({"role": "user", "content": [{"type": "text", "text": instruction}]})
    return messages


__all__ = [
    "AUDIO_PLACEHOLDER",
    "TEMPLATE_TAG",
    "history_messages",
    "is_speechgpt_chat_template",
    "speechgpt_chat_template",
]
