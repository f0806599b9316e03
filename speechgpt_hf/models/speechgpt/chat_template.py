"""SpeechGPT's Jinja chat template, generated from the prompt formats so that both say the same thing.

The template renders messages whose content items are `{"type": "text", "text": ...}` and `{"type": "audio", ...}`
as `build_prompt` does: the system prompt (a system message, else the `system_prompt` variable, else the one the
template was made with), `[Human]: … <eoh>. ` turns, `[SpeechGPT]: …<eoa>` answers, and:

- one item: the instruction as it is (free form); an audio item becomes `AUDIO_PLACEHOLDER`, which the processor
  replaces with the audio's unit string;
- a text item followed by more items: the cross-modal form `'{task description} This is input: {the rest}'`;
- `output_modality` ("speech" or "text"), as a template variable for the last user message or as a key of any user
  message: the chain-of-modality request for that kind of answer to its one (spoken or written) instruction.
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
    format_turn,
)

# What an audio item renders as until the processor puts the audio's units in its place.
AUDIO_PLACEHOLDER = "<|speechgpt_audio|>"

_TEMPLATE = """\
{%- set ns = namespace(system=DEFAULT_SYSTEM, last_user=-1, text='', rest='') -%}
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
  {%- endif -%}
{%- endfor -%}
{{- ns.system -}}
{%- for message in messages -%}
  {%- set items = [{'type': 'text', 'text': message['content']}] if message['content'] is string else message['content'] -%}
  {%- if message['role'] == 'user' -%}
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
      {%- set instruction = INPUT_SENTENCE[source] ~ ' ' ~ content ~ '\\n' ~ OUTPUT_SENTENCE[target] ~ ' ' ~ GUIDANCE[source ~ '-' ~ target] -%}
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
    {{- HUMAN_START ~ instruction ~ HUMAN_END -}}
  {%- elif message['role'] == 'assistant' -%}
    {%- set ns.text = '' -%}
    {%- for item in items -%}{%- set ns.text = ns.text ~ item_text(item) -%}{%- endfor -%}
    {{- ANSWER_START ~ ns.text ~ ANSWER_END -}}
    {%- if not loop.last -%}{{- ' ' -}}{%- endif -%}
  {%- elif message['role'] != 'system' -%}
    {{- raise_exception("SpeechGPT conversations have 'system', 'user' and 'assistant' messages, not " ~ message['role']) -}}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- ANSWER_START -}}{%- endif -%}
"""


def _turn_pieces() -> dict[str, str]:
    """The fixed text around a turn's instruction and answer, cut out of `format_turn` itself."""
    instruction, answer = "\x00", "\x01"
    human_start, rest = format_turn(instruction, answer).split(instruction)
    between, answer_end = rest.split(answer)
    split = between.index(SPEECHGPT)
    return {
        "HUMAN_START": human_start,
        "HUMAN_END": between[:split],
        "ANSWER_START": between[split:],
        "ANSWER_END": answer_end,
    }


def speechgpt_chat_template(system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> str:
    """The Jinja chat template of SpeechGPT conversations, with `system_prompt` as its default system prompt."""
    constants: dict[str, Any] = {
        "DEFAULT_SYSTEM": system_prompt,
        "AUDIO": AUDIO_PLACEHOLDER,
        "MARKER": INPUT_MARKER,
        "INPUT_SENTENCE": {source.value: sentence for source, sentence in _INPUT_SENTENCE.items()},
        "OUTPUT_SENTENCE": {target.value: sentence for target, sentence in _OUTPUT_SENTENCE.items()},
        "GUIDANCE": {f"{source.value}-{target.value}": text for (source, target), text in _GUIDANCE.items()},
        **_turn_pieces(),
    }
    header = "".join(
        f"{{%- set {name} = {json.dumps(value, ensure_ascii=False)} -%}}\n" for name, value in constants.items()
    )
    return header + _TEMPLATE


def history_messages(history: Sequence[tuple[str, str]], instruction: str | None = None) -> list[dict[str, Any]]:
    """Chat messages of earlier `(instruction, answer)` turns, then `instruction` (when given) as the next request."""
    messages: list[dict[str, Any]] = []
    for question, answer in history:
        messages.append({"role": "user", "content": [{"type": "text", "text": question}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    if instruction is not None:
        messages.append({"role": "user", "content": [{"type": "text", "text": instruction}]})
    return messages


__all__ = ["AUDIO_PLACEHOLDER", "history_messages", "speechgpt_chat_template"]
