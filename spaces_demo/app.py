"""The SpeechGPT Space: talk to SpeechGPT by voice or text and hear its answer.

The talking system loads on the first request (not at import), from the repo in SPEECHGPT_REPO; its config
names the unit tokenizer and vocoder. Each browser session keeps its own conversation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from speechgpt_hf.audio import read_audio, to_int16
from speechgpt_hf.inference.chat import SpeechGPTChat

DEFAULT_REPO = "fnlp/SpeechGPT-7B-hf"
EXAMPLES = [
    ["Tell me a fun fact about the moon, and say it aloud."],
    ["Recognize this speech. This is input:"],
    ["Read this sentence aloud: the weather is lovely today."],
]
# "Answer in" choices -> SpeechGPTChat's output_modality (None: the request is sent as it is written).
ANSWER_MODES = {"as asked": None, "speech": "speech", "text": "text"}


class LazyChat:
    """Builds the SpeechGPTChat once, on first use, so the Space starts at once and loads weights only when asked."""

    def __init__(self, factory: Callable[[], SpeechGPTChat]) -> None:
        self.factory = factory
        self._chat: SpeechGPTChat | None = None

    def get(self) -> SpeechGPTChat:
        if self._chat is None:
            self._chat = self.factory()
        return self._chat


def _to_float(audio: tuple[int, np.ndarray] | None) -> tuple[np.ndarray | None, int | None]:
    """Gradio's (rate, int16 array) -> (float32 mono array, rate), through `speechgpt_hf.audio.read_audio`."""
    if audio is None:
        return None, None
    rate, samples = audio
    return read_audio(samples, rate)


def build_demo(chat: LazyChat) -> gr.Blocks:
    """The Blocks app around one (lazily loaded) talking system."""

    def respond(text: str, audio: Any, answer_in: str, history: list[tuple[str, str]]) -> tuple[str, Any, list, str]:
        if not (text or "").strip() and audio is None:
            raise gr.Error("Type something or record/upload speech first.")
        system = chat.get()
        system.history = list(history)
        try:
            samples, rate = _to_float(audio)
            reply = system.respond(
                text=text or None, audio=samples, sampling_rate=rate, output_modality=ANSWER_MODES[answer_in]
            )
        except ValueError as error:  # AudioInputError and the chat's own input checks
            raise gr.Error(str(error)) from error
        answer = reply.response
        lines = [f"**Transcript:** {answer.transcript}"] if answer.transcript else []
        lines.append(f"**Answer:** {answer.text or '(speech only)'}")
        lines += [f"*{problem}*" for problem in answer.problems]
        speech = None if reply.waveform is None else (reply.sampling_rate, to_int16(reply.waveform))
        return "\n\n".join(lines), speech, system.history, ""

    with gr.Blocks(title="SpeechGPT") as demo:
        gr.Markdown("# SpeechGPT\nSpeak or type; SpeechGPT answers in text and speech. The conversation is remembered.")
        history = gr.State([])
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="Text", placeholder="Ask anything, or end with 'This is input:' and add speech")
                audio = gr.Audio(sources=["microphone", "upload"], type="numpy", label="Speech")
                answer_in = gr.Radio(list(ANSWER_MODES), value="as asked", label="Answer in")
                with gr.Row():
                    send = gr.Button("Send", variant="primary")
                    clear = gr.Button("New conversation")
            with gr.Column():
                answer = gr.Markdown(label="Answer")
                speech = gr.Audio(label="Spoken answer", type="numpy", autoplay=True, interactive=False)
        gr.Examples(EXAMPLES, inputs=[text])
        send.click(respond, [text, audio, answer_in, history], [answer, speech, history, text], api_name="respond")
        clear.click(lambda: ([], "", None), None, [history, answer, speech], api_name="clear")
    return demo


def main() -> None:
    repo = os.environ.get("SPEECHGPT_REPO", DEFAULT_REPO)
    build_demo(LazyChat(lambda: SpeechGPTChat.from_pretrained(repo))).launch()


if __name__ == "__main__":
    main()
