"""The SpeechGPT Space: a chat that hears and speaks, served with Gradio.

One talking system loads on the first message (not at start-up) and serves every visitor; each browser session
keeps its own conversation in `gr.State`, so nothing is shared between sessions. The spoken answer streams into
an audio player while the LM is still writing, and a picture shows the answer's units and spectrogram.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import soundfile

from ..audio import AudioInputError, read_audio, to_int16
from ..inference.chat import SpeechGPTChat, SpeechGPTReply
from .answer_view import answer_picture

# "Answer in" choices -> SpeechGPTChat's output_modality (None: the request is sent as it is written).
ANSWER_MODES = {"as asked": None, "speech": "speech", "text": "text"}
EXAMPLES = [
    "Tell me a fun fact about the moon, and say it aloud.",
    "Read this sentence aloud: the weather is lovely today.",
]
EMPTY_REQUEST = "Type something, or record or upload speech, first."
MAX_UPLOAD = "20mb"
# The queue (SPEECHGPT_QUEUE_SIZE, SPEECHGPT_CONCURRENCY): one answer generated at a time, since two at once share the
# same cores and each streams at about half speed, which on a CPU Space can fall behind playback; 16 more requests
# wait, and one beyond them is refused at once with a message instead of joining a line with no end.
# benchmarks/space_load.md measures these settings against others.
QUEUE_SIZE = 16
CONCURRENCY = 1


class LazyChat:
    """Builds the SpeechGPTChat once, on first use, so the Space starts at once and loads weights only when asked."""

    def __init__(self, factory: Callable[[], SpeechGPTChat]) -> None:
        self.factory = factory
        self._chat: SpeechGPTChat | None = None
        self._lock = threading.Lock()

    def get(self) -> SpeechGPTChat:
        with self._lock:
            if self._chat is None:
                self._chat = self.factory()
            return self._chat

    def session(self, history: list) -> SpeechGPTChat:
        """A chat on the shared model with one session's history (the shared object is never changed)."""
        view = copy.copy(self.get())
        view.history = list(history)
        return view


class UploadRefused(ValueError):
    """An upload the Space cannot answer; the message says why, for the person who sent it."""


def read_upload(files: list[Any], max_seconds: float) -> tuple[np.ndarray, int] | None:
    """The one uploaded recording as (mono float32 samples, rate), None without one; else UploadRefused."""
    if not files:
        return None
    if len(files) > 1:
        raise UploadRefused("Send one recording at a time.")
    path = files[0]["path"] if isinstance(files[0], dict) else files[0]
    name = Path(path).name
    try:
        samples, rate = read_audio(str(path))
    except AudioInputError as error:
        raise UploadRefused(
            f"{name} is not a recording I can play: record with the microphone, or upload a WAV, MP3 or FLAC file."
        ) from error
    seconds = len(samples) / rate
    if seconds > max_seconds:
        raise UploadRefused(
            f"{name} is {seconds:.1f} s long; this Space takes recordings of up to {max_seconds:g} s. "
            "Trim it or record a shorter question."
        )
    return samples, rate


class SpaceSession:
    """The request handlers of one Space; every per-visitor value lives in the `gr.State` passed to them."""

    def __init__(self, chat: LazyChat, max_seconds: float, audio_dir: str | Path | None = None) -> None:
        self.chat = chat
        self.max_seconds = max_seconds
        self.audio_dir = Path(audio_dir or tempfile.mkdtemp(prefix="speechgpt-space-"))

    def respond(self, message: dict | None, answer_in: str, state: dict) -> Iterator[tuple]:
        """Answers one message; yields (chat messages, audio chunk, picture, state, message box) as it goes."""
        state = {"history": list(state["history"]), "messages": list(state["messages"])}
        messages = state["messages"]
        text = ((message or {}).get("text") or "").strip()
        files = (message or {}).get("files") or []
        if not text and not files:
            gr.Warning(EMPTY_REQUEST)
            yield messages, None, None, state, gr.skip()
            return
        messages += [{"role": "user", "content": text}] if text else []
        messages += [{"role": "user", "content": {"path": f["path"] if isinstance(f, dict) else f}} for f in files]
        try:
            audio = read_upload(files, self.max_seconds)
        except UploadRefused as refusal:
            yield from self._refuse(str(refusal), state)
            return
        samples, rate = audio if audio is not None else (None, None)
        answer = {"role": "assistant", "content": "…"}
        messages.append(answer)
        yield messages, None, None, state, {"text": "", "files": []}
        session = self.chat.session(state["history"])
        parts: dict[str, str] = {}
        try:
            events = session.stream(
                text=text or None, audio=samples, sampling_rate=rate, output_modality=ANSWER_MODES[answer_in]
            )
            for event in events:
                if isinstance(event, SpeechGPTReply):
                    yield self._finish(event, session, state, answer)
                elif event.audio is not None:
                    yield (
                        messages,
                        (session.vocoder.config.sampling_rate, to_int16(event.audio)),
                        None,
                        state,
                        gr.skip(),
                    )
                elif event.text:
                    parts[event.part or "answer"] = parts.get(event.part or "answer", "") + event.text
                    answer["content"] = _answer_text(parts.get("transcript"), parts.get("answer"), [])
                    yield messages, None, None, state, gr.skip()
        except ValueError as error:  # the chat's own input checks (no units heard, a prompt too long)
            messages.remove(answer)
            yield from self._refuse(str(error), state)

    def respond_streamed(self, message: dict | None, answer_in: str, state: dict) -> Iterator[tuple]:
        """`respond` as served: audio chunks go to Gradio as WAV bytes, which it streams as they are.

        Given (rate, samples), Gradio writes each chunk to a cache file named after its content, and two sessions
        streaming the same chunk at once (silence, say) write and read that file together: one answer fails."""
        with contextlib.closing(self.respond(message, answer_in, state)) as steps:
            for messages, audio, picture, new_state, box in steps:
                yield messages, None if audio is None else _wav_bytes(*audio), picture, new_state, box

    def _finish(self, reply: SpeechGPTReply, session: SpeechGPTChat, state: dict, answer: dict) -> tuple:
        response = reply.response
        answer["content"] = _answer_text(response.transcript, response.text, response.problems)
        state["history"] = session.history
        picture = answer_picture(reply.waveform, reply.sampling_rate, response.units)
        if reply.waveform is not None:
            handle, path = tempfile.mkstemp(suffix=".wav", dir=self.audio_dir)
            os.close(handle)
            soundfile.write(path, to_int16(reply.waveform), reply.sampling_rate)
            state["messages"].append({"role": "assistant", "content": {"path": path}})
        return state["messages"], None, picture, state, gr.skip()

    def _refuse(self, reason: str, state: dict) -> Iterator[tuple]:
        gr.Warning(reason)
        state["messages"].append({"role": "assistant", "content": f"⚠️ {reason}"})
        yield state["messages"], None, None, state, {"text": "", "files": []}

    @staticmethod
    def reset() -> tuple:
        """A new conversation for this session only."""
        return new_state()["messages"], None, None, new_state()


def new_state() -> dict:
    """A session's state: the model's turns (`history`) and the messages shown (`messages`)."""
    return {"history": [], "messages": []}


def _wav_bytes(rate: int, samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _answer_text(transcript: str | None, text: str | None, problems: list[str]) -> str:
    lines = [f"*Heard:* {transcript.strip()}"] if transcript and transcript.strip() else []
    lines.append((text or "").strip() or "(a spoken answer)")
    lines += [f"*{problem}*" for problem in problems]
    return "\n\n".join(lines)


def build_demo(
    chat: LazyChat, max_seconds: float = 30.0, queue_size: int = QUEUE_SIZE, concurrency: int = CONCURRENCY
) -> gr.Blocks:
    """The Blocks app around one lazily loaded talking system, with its queue limits set (each at least 1: a queue of
    0 would turn every request away, and no answer could ever be generated at a concurrency of 0)."""
    for name, value in (
        ("queue_size (SPEECHGPT_QUEUE_SIZE)", queue_size),
        ("concurrency (SPEECHGPT_CONCURRENCY)", concurrency),
    ):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}: unset it for the default.")
    handlers = SpaceSession(chat, max_seconds)
    with gr.Blocks(title="SpeechGPT") as demo:
        gr.Markdown(
            "# SpeechGPT\nSpeak or type; SpeechGPT answers in text and speech, and remembers the conversation. "
            f"Recordings of up to {max_seconds:g} s."
        )
        state = gr.State(new_state())
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Conversation", height=420)
                box = gr.MultimodalTextbox(
                    placeholder="Ask anything, or record or upload a spoken question",
                    sources=["upload", "microphone"],
                    show_label=False,
                )
                answer_in = gr.Radio(list(ANSWER_MODES), value="as asked", label="Answer in")
                reset = gr.Button("New conversation")
            with gr.Column(scale=2):
                spoken = gr.Audio(label="Spoken answer (live)", streaming=True, autoplay=True, interactive=False)
                picture = gr.Image(label="Units and spectrogram of the answer", type="numpy", interactive=False)
        gr.Examples([[{"text": example, "files": []}] for example in EXAMPLES], inputs=[box])
        box.submit(
            handlers.respond_streamed,
            [box, answer_in, state],
            [chatbot, spoken, picture, state, box],
            api_name="respond",
        )
        reset.click(handlers.reset, None, [chatbot, spoken, picture, state], api_name="reset")
    return demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)


def _env_number(name: str, default: float, kind: type = float) -> Any:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return kind(value)
    except ValueError as error:
        raise ValueError(f"{name}={value!r} is not a {kind.__name__}: unset it or give a number.") from error


def launch(model: str, max_seconds: float = 30.0, **launch_kwargs: Any) -> None:
    """Serves the Space for `model` (a SpeechGPT repo id or folder); settings come from SPEECHGPT_* variables."""
    max_new_tokens = _env_number("SPEECHGPT_MAX_NEW_TOKENS", 0, int)

    def load() -> SpeechGPTChat:
        chat = SpeechGPTChat.from_pretrained(model)
        if max_new_tokens:
            chat.generation_kwargs["max_new_tokens"] = max_new_tokens
        return chat

    demo = build_demo(
        LazyChat(load),
        max_seconds=max_seconds,
        queue_size=_env_number("SPEECHGPT_QUEUE_SIZE", QUEUE_SIZE, int),
        concurrency=_env_number("SPEECHGPT_CONCURRENCY", CONCURRENCY, int),
    )
    demo.launch(max_file_size=MAX_UPLOAD, **launch_kwargs)


__all__ = [
    "ANSWER_MODES",
    "CONCURRENCY",
    "QUEUE_SIZE",
    "LazyChat",
    "SpaceSession",
    "UploadRefused",
    "build_demo",
    "launch",
    "read_upload",
]
