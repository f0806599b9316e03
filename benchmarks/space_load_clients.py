"""The visitors of benchmarks/space_load.py: gradio_client sessions that ask tagged questions of the Space on
loopback, one slot after another until the time is up, and judge every answer they get (their own turns, their own
audio stream, the refusal of a bad upload). `space_load.py` serves the Space and runs them."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile

if TYPE_CHECKING:
    import httpx
    from space_load import LoadSettings

QUEUE_FULL = "queue full"
SERVED = ("answered", "disconnected")
STEPS = ("text question", "spoken question", "bad upload", "disconnect")


@dataclass
class Outcome:
    """What one request got: `status` is answered, queue full, failed, wrong session or disconnected (closed at
    its first audio, as planned); times in seconds from submission."""

    step: str
    status: str
    message: str = ""
    first_audio: float | None = None
    end: float | None = None
    done_at: float = field(default_factory=time.monotonic)


def tone(path: Path, seconds: float, freq: float) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * freq * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32), 16000)
    return path


def user_entries(messages: list[dict]) -> list[str]:
    """The visitor's turns in a conversation that came back: each text, or each uploaded file's name."""
    user = [item for message in messages if message["role"] == "user" for item in message["content"]]
    return [item["text"] if item["type"] == "text" else Path(item["file"]["path"]).name for item in user]


def assistant_texts(messages: list[dict]) -> list[str]:
    return [i["text"] for m in messages if m["role"] == "assistant" for i in m["content"] if i["type"] == "text"]


def lists_segment(playlist_url: str) -> bool:
    """Whether the HLS playlist of a streaming answer lists a segment yet, as a browser's player polls it."""
    import httpx

    try:
        playlist = httpx.get(playlist_url, timeout=10.0)
    except httpx.HTTPError:
        return False
    return playlist.is_success and any(line and not line.startswith("#") for line in playlist.text.splitlines())


def stream_url(output: dict | None) -> str | None:
    """The playlist URL of the audio output in one update (gradio_client output or raw queue message data)."""
    return output.get("url") if isinstance(output, dict) else None


class Visitor:
    """One person at the Space: a gradio_client session that asks tagged questions and checks what comes back."""

    def __init__(self, url: str, tag: str, folder: Path, settings: LoadSettings) -> None:
        from gradio_client import Client

        self.url, self.tag, self.settings = url, tag, settings
        self.folder = folder / tag
        self.folder.mkdir(parents=True, exist_ok=True)
        self.client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        self.fn_index = next(i for i, d in enumerate(self.client.config["dependencies"]) if d["api_name"] == "respond")
        self.turns: list[str] | None = []  # the turns the Space keeps for this session; None once unknown
        self.rng = random.Random(tag)
        self.asked = 0

    def stay(self, deadline: float) -> list[Outcome]:
        """One request of every kind until `deadline`, with a pause after each (a longer one after a refusal, as a
        person told to try again later does); then it leaves (closes its client)."""
        outcomes = []
        try:
            for step in STEPS:
                if time.monotonic() >= deadline:
                    break
                outcomes.append(self.ask(step))
                refused = outcomes[-1].status == QUEUE_FULL
                pause_until(
                    deadline, self.rng.uniform(*(self.settings.pause_after_refusal if refused else self.settings.pause))
                )
        finally:
            self.client.close()
        return outcomes

    def ask(self, step: str) -> Outcome:
        """Sends the next request of kind `step` and judges what comes back."""
        from gradio_client import handle_file

        self.asked += 1
        name = f"{self.tag}-q{self.asked}"
        question = f"{name}: what rhymes with {self.rng.choice(['moon', 'tree', 'sky', 'stone'])}?"
        if step == "disconnect":
            return self._leave_at_first_audio(step, question)
        if step == "text question":
            return self._converse(step, {"text": question, "files": []}, question)
        if step == "spoken question":
            path = tone(self.folder / f"{name}.wav", 1.0, self.rng.uniform(150, 300))
        else:
            path = self.folder / f"{name}.txt"
            path.write_text("not a recording")
        return self._converse(step, {"text": "", "files": [handle_file(str(path))]}, path.name)

    def _converse(self, step: str, message: dict, entry: str) -> Outcome:
        """Submits one message in this session, timing its first audio and its end, then checks the conversation."""
        from gradio_client.utils import QueueError

        job = self.client.submit(message, "as asked", api_name="/respond")
        start, first_audio = time.monotonic(), None
        while not job.done():
            if first_audio is None and self._heard(job.outputs()):
                first_audio = time.monotonic() - start
            if time.monotonic() - start > self.settings.request_timeout:
                job.cancel()
                self.turns = None
                return Outcome(step, "failed", f"no answer in {self.settings.request_timeout:g} s")
            time.sleep(0.1)
        end = time.monotonic() - start
        try:
            messages = job.result()[0]
        except QueueError as error:
            return Outcome(step, QUEUE_FULL, str(error))
        except Exception as error:  # whatever the Space sent back instead of an answer
            self.turns = None
            return Outcome(step, "failed", f"{type(error).__name__}: {error}")
        if first_audio is None and self._heard(job.outputs()):
            first_audio = end
        sessions = {
            url.split("/stream/")[1].split("/")[0] for output in job.outputs() if (url := stream_url(output[1]))
        }
        if sessions - {self.client.session_hash}:
            return Outcome(step, "wrong session", f"{self.tag} got the audio stream of session {sessions}")
        return self._judge(step, messages, entry, Outcome(step, "answered", first_audio=first_audio, end=end))

    @staticmethod
    def _heard(outputs: list[tuple]) -> bool:
        return bool(outputs) and (url := stream_url(outputs[-1][1])) is not None and lists_segment(url)

    def _judge(self, step: str, messages: list[dict], entry: str, outcome: Outcome) -> Outcome:
        """The outcome, unless the conversation holds someone else's turn, lost one of ours, or lacks the refusal."""
        turns = user_entries(messages)
        foreign = [turn for turn in turns if not turn.startswith(f"{self.tag}-")]
        known, self.turns = self.turns, turns
        if foreign:
            return Outcome(step, "wrong session", f"{self.tag} got {foreign[:2]}")
        if not turns or turns[-1] != entry or (known is not None and turns[:-1] != known):
            return Outcome(step, "failed", f"{self.tag}'s conversation lost a turn: {turns[-3:]} after {entry!r}")
        if step == "bad upload" and f"{entry} is not a recording I can play" not in assistant_texts(messages)[-1]:
            return Outcome(step, "failed", f"no refusal for {entry}: {assistant_texts(messages)[-1][:80]!r}")
        return outcome

    def _leave_at_first_audio(self, step: str, question: str) -> Outcome:
        """Asks in a session of its own over the raw queue API, as a browser page does (its heartbeat open while it
        lives), and closes both connections once the answer's first audio is out, as closing the tab does."""
        import httpx

        session, start = uuid.uuid4().hex[:11], time.monotonic()
        prefix = self.url + self.client.config.get("api_prefix", "/gradio_api").strip("/")
        body = {"data": [{"text": question, "files": []}, "as asked", None], "fn_index": self.fn_index}
        timeout = httpx.Timeout(30.0, read=self.settings.request_timeout)
        try:
            with httpx.stream("GET", f"{prefix}/heartbeat/{session}", timeout=timeout):
                joined = httpx.post(f"{prefix}/queue/join", json={**body, "session_hash": session}, timeout=timeout)
                if joined.status_code == 503:
                    return Outcome(step, QUEUE_FULL, joined.json().get("detail", joined.text))
                joined.raise_for_status()
                with httpx.stream(
                    "GET", f"{prefix}/queue/data", params={"session_hash": session}, timeout=timeout
                ) as sse:
                    return self._read_until_audio(step, sse, start)
        except (httpx.HTTPError, ValueError) as error:
            return Outcome(step, "failed", f"{type(error).__name__}: {error}")

    def _read_until_audio(self, step: str, sse: httpx.Response, start: float) -> Outcome:
        """Reads the queue's messages until the answer's audio stream opens, then polls it until it holds audio."""
        for line in sse.iter_lines():
            event = json.loads(line[5:]) if line.startswith("data:") else {}
            data = event.get("output", {}).get("data") or [None, None]
            if event.get("msg") == "process_generating" and (url := stream_url(data[1])):
                return self._wait_for_audio(step, url, start)
            if event.get("msg") == "process_completed":
                return Outcome(step, "failed", "the answer ended before it began to stream")
        return Outcome(step, "failed", "the stream closed before any audio")

    def _wait_for_audio(self, step: str, playlist_url: str, start: float) -> Outcome:
        while not lists_segment(playlist_url):
            if time.monotonic() - start > self.settings.request_timeout:
                return Outcome(step, "failed", f"no audio in {self.settings.request_timeout:g} s")
            time.sleep(0.1)
        return Outcome(step, "disconnected", first_audio=time.monotonic() - start)


def visit(url: str, slot: int, folder: Path, settings: LoadSettings, start: threading.Barrier, clock: dict) -> list:
    """One slot's visitors, one after another until the time is up. The first visitors of all slots wait for each
    other, so that they all ask at once."""
    outcomes: list[Outcome] = []
    for number in count(1):
        try:
            visitor = Visitor(url, f"s{slot}v{number}", folder, settings)
        except Exception as error:  # the Space did not even answer the connection
            visitor = None
            outcomes.append(Outcome("connect", "failed", f"{type(error).__name__}: {error}"))
        if number == 1:
            start.wait()
        deadline = clock["start"] + settings.seconds
        if visitor is not None:
            outcomes += visitor.stay(deadline)
        if time.monotonic() >= deadline:
            return outcomes
        pause_until(deadline, random.uniform(*settings.pause))


def pause_until(deadline: float, seconds: float) -> None:
    """Sleeps `seconds`, or until `deadline` if that comes first."""
    time.sleep(max(0.0, min(seconds, deadline - time.monotonic())))


def drive(url: str, folder: Path, settings: LoadSettings) -> tuple[list[Outcome], float, float]:
    """All slots at once; returns the outcomes and the moments the load began and ended."""
    clock: dict[str, float] = {}
    start = threading.Barrier(settings.clients, action=lambda: clock.update(start=time.monotonic()), timeout=300)
    with ThreadPoolExecutor(settings.clients) as pool:
        jobs = [pool.submit(visit, url, i, folder, settings, start, clock) for i in range(1, settings.clients + 1)]
        outcomes = [outcome for job in jobs for outcome in job.result()]
    return outcomes, clock["start"], time.monotonic()


def warm_up(url: str, folder: Path, settings: LoadSettings) -> None:
    """Loads the model and takes every path once, so that 'before' means ready to serve."""
    quick = replace(settings, pause=(0.0, 0.0))
    for outcome in Visitor(url, "warm", folder, quick).stay(time.monotonic() + 600):
        if outcome.status not in SERVED:
            raise RuntimeError(f"the Space failed its warm-up {outcome.step}: {outcome.status} {outcome.message}")
