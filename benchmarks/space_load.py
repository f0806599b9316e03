"""The Space under load: many visitors at once against the Space on loopback; writes benchmarks/space_load.md.

The Space's own `launch()` serves a tiny random SpeechGPT system in a subprocess on 127.0.0.1, with the queue
settings under test; the system's generation config biases decoding towards speech units, so every answer streams
audio. Each visitor is a gradio_client Client in a thread of this process. The first visitor of every slot sends its
first request at the same moment; each visitor sends a typed question, a spoken question (a WAV upload), a bad
upload (a text file) and a question whose connection it closes at the first audio, pausing between requests (longer
after a refusal), and leaves; a new visitor takes the slot until the time is up. Every question carries its
visitor's tag, and each conversation that comes back must hold that visitor's turns, all of them and no one else's.
The server's resident memory, threads and CPU time are sampled before, during and after the load; the run stops by
itself.

Run: python benchmarks/space_load.py [--clients 50] [--seconds 60] [--queue-size 16] [--concurrency 1]
         [--compare QUEUE_SIZE:CONCURRENCY ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psutil
import soundfile

from speechgpt_hf.training.precision import cpu_model_name

if TYPE_CHECKING:
    import httpx

RESULT = Path(__file__).with_suffix(".md")
NUM_UNITS = 30
SERVE = (
    "import sys; from speechgpt_hf.space.app import launch; "
    "launch(sys.argv[1], max_seconds=float(sys.argv[2]), server_name='127.0.0.1', server_port=int(sys.argv[3]))"
)
QUEUE_FULL = "queue full"
SERVED = ("answered", "disconnected")
STEPS = ("text question", "spoken question", "bad upload", "disconnect")
LABELS = ("typed question", "spoken question (WAV upload)", "bad upload (a text file)", "closed at first audio")


@dataclass
class LoadSettings:
    """One load run: the visitors, the time they keep coming, and the Space's settings under test."""

    queue_size: int
    concurrency: int
    clients: int = 50
    seconds: float = 60.0
    max_new_tokens: int = 150
    threads: int = 1
    max_seconds: float = 3.0
    pause: tuple[float, float] = (0.5, 2.0)
    pause_after_refusal: tuple[float, float] = (5.0, 10.0)
    request_timeout: float = 180.0


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


@dataclass
class ServerSample:
    """The server process at one moment: its RSS, its child processes (audio encoders) with their unique memory
    (USS: a child caught between fork and exec shares all of the server's pages), its threads, and CPU seconds so
    far (its own and its finished children's)."""

    at: float
    rss: int
    children: int
    children_uss: int
    threads: int
    cpu: float


@dataclass
class LoadResult:
    """Every request's outcome and the server's samples, with the moments the load began and ended."""

    settings: LoadSettings
    outcomes: list[Outcome]
    samples: list[ServerSample]
    idle_end: float
    load_start: float
    load_end: float
    disk_before: int
    disk_after: int
    visitors_cpu: float

    def count(self, status: str, step: str | None = None) -> int:
        return sum(o.status == status and step in (None, o.step) for o in self.outcomes)

    @property
    def served(self) -> int:
        return sum(self.count(status) for status in SERVED)

    @property
    def failures(self) -> list[str]:
        return sorted(
            {f"{o.step}: {o.status}: {o.message}" for o in self.outcomes if o.status not in SERVED + (QUEUE_FULL,)}
        )

    def window(self, start: float, end: float) -> list[ServerSample]:
        return [s for s in self.samples if start <= s.at <= end]

    @property
    def phases(self) -> dict[str, list[ServerSample]]:
        """The samples before the visitors connect (idle, model loaded), during the load, and after it (from a
        second on)."""
        return {
            "before": self.window(0, self.idle_end),
            "during": self.window(self.load_start, self.load_end),
            "after": self.window(self.load_end + 1, float("inf")),
        }

    @property
    def rss_growth(self) -> float:
        """The server's RSS after the load less its RSS before, in bytes (medians of each phase)."""
        before, _, after = ([s.rss for s in phase] for phase in self.phases.values())
        return float(np.median(after) - np.median(before))


def cpu_percent(samples: list[ServerSample]) -> float:
    """The server's CPU use over `samples`, in percent of one core."""
    return 100 * (samples[-1].cpu - samples[0].cpu) / max(samples[-1].at - samples[0].at, 1e-9)


def save_system(folder: Path) -> Path:
    """A tiny random SpeechGPT with its unit tokenizer and vocoder under `folder`; returns the LM's folder.

    Its generation config favours <sosp> and the unit tokens, so a random model still answers in speech."""
    import torch

    from speechgpt_hf import SpeechGPTProcessor, add_speech_units
    from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
    from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer, build_tiny_vocoder, fan_in_init_

    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    model, tokenizer = add_speech_units(build_tiny_causal_lm(vocab_size=len(tokenizer)), tokenizer, NUM_UNITS)
    processor = SpeechGPTProcessor(tokenizer, num_units=NUM_UNITS)
    vocoder = build_tiny_vocoder(NUM_UNITS)
    fan_in_init_(vocoder)
    units = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=NUM_UNITS))
    units.save_pretrained(folder / "unit-tokenizer")
    vocoder.save_pretrained(folder / "vocoder")
    model.config.unit_tokenizer_repo = str(folder / "unit-tokenizer")
    model.config.vocoder_repo = str(folder / "vocoder")
    unit_ids = range(processor.unit_token_offset, processor.unit_token_offset + NUM_UNITS)
    model.generation_config.sequence_bias = [[[processor.sosp_token_id], 30.0]] + [[[u], 20.0] for u in unit_ids]
    model.save_pretrained(folder / "lm")
    processor.use_components_of(model.config)
    processor.save_pretrained(folder / "lm")
    return folder / "lm"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(system: Path, settings: LoadSettings, workdir: Path) -> tuple[subprocess.Popen, str]:
    """Starts the Space's `launch()` in a subprocess on a free loopback port; returns it once it answers."""
    port, tmp = free_port(), workdir / "server-tmp"
    (tmp / "gradio").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPEECHGPT_QUEUE_SIZE": str(settings.queue_size),
        "SPEECHGPT_CONCURRENCY": str(settings.concurrency),
        "SPEECHGPT_MAX_NEW_TOKENS": str(settings.max_new_tokens),
        "OMP_NUM_THREADS": str(settings.threads),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "TMPDIR": str(tmp),
        "GRADIO_TEMP_DIR": str(tmp / "gradio"),
    }
    with open(workdir / "server.log", "w") as log:
        command = [sys.executable, "-c", SERVE, str(system), str(settings.max_seconds), str(port)]
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            return server, url
        except OSError as error:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                log = (workdir / "server.log").read_text()[-3000:]
                raise RuntimeError(f"the Space did not start:\n{log}") from error
            time.sleep(0.5)


class Sampler(threading.Thread):
    """Samples the server process every `every` seconds until stopped."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.process, self.every = psutil.Process(pid), every
        self.name = self.process.name()
        self.samples: list[ServerSample] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            with self.process.oneshot():
                cpu = sum(self.process.cpu_times()[:4])
                rss, threads = self.process.memory_info().rss, self.process.num_threads()
            uss, encoders = 0, 0
            for child in self.process.children(recursive=True):
                try:
                    if child.name() != self.name:  # one not yet exec'd shares or copies the server's pages
                        uss, encoders = uss + child.memory_full_info().uss, encoders + 1
                except psutil.Error:  # it ended between the listing and the reading
                    pass
            self.samples.append(ServerSample(time.monotonic(), rss, encoders, uss, threads, cpu))
            self.stopped.wait(self.every)


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


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


def run(settings: LoadSettings, workdir: Path) -> LoadResult:
    """Serves a fresh tiny system under `settings`, drives it, and stops the server; everything lands in `workdir`."""
    server, url = serve(save_system(workdir / "system"), settings, workdir)
    sampler = Sampler(server.pid)
    try:
        warm_up(url, workdir / "visitors", settings)
        sampler.start()
        time.sleep(1.5)
        disk_before, visitors_cpu, idle_end = folder_size(workdir / "server-tmp"), time.process_time(), time.monotonic()
        outcomes, load_start, load_end = drive(url, workdir / "visitors", settings)
        visitors_cpu = time.process_time() - visitors_cpu
        time.sleep(3.0)
        disk_after = folder_size(workdir / "server-tmp")
    finally:
        sampler.stopped.set()
        server.terminate()
        server.wait(timeout=60)
    samples = sampler.samples
    return LoadResult(
        settings, outcomes, samples, idle_end, load_start, load_end, disk_before, disk_after, visitors_cpu
    )


def spread(values: list[float], quantiles: tuple[int, ...] = (50, 90, 99)) -> str:
    """Percentiles of `values` in seconds, or a dash without any."""
    if not values:
        return "—"
    return " / ".join(f"{np.percentile(values, q):.2f}" for q in quantiles)


def latencies(outcomes: list[Outcome], what: str) -> list[float]:
    return [value for o in outcomes if o.status in SERVED and (value := getattr(o, what)) is not None]


def request_rows(result: LoadResult) -> list[str]:
    """A row per kind of request, and one for all: counts by outcome and the latency percentiles."""
    rows = []
    for step, label in zip((*STEPS, None), (*LABELS, "all"), strict=True):
        mine = [o for o in result.outcomes if step in (None, o.step)]
        counts = [sum(o.status in SERVED for o in mine)]
        counts += [result.count(status, step) for status in (QUEUE_FULL, "failed", "wrong session")]
        cells = [len(mine), *counts, spread(latencies(mine, "first_audio")), spread(latencies(mine, "end"))]
        rows.append(f"| {label} | {' | '.join(map(str, cells))} |")
    return rows


def server_rows(result: LoadResult) -> list[str]:
    """The server's memory, threads, CPU and temporary files before, during and after the load."""
    before, during, after = result.phases.values()
    mib = [[s.rss / 2**20 for s in phase] for phase in (before, during, after)]
    children = [max(phase, key=lambda s: s.children_uss) for phase in (before, during, after)]
    threads = [[s.threads for s in phase] for phase in (before, during, after)]
    return [
        f"| resident memory, MiB | {np.median(mib[0]):.0f} | {np.median(mib[1]):.0f} / {max(mib[1]):.0f} | "
        f"{np.median(mib[2]):.0f} |",
        "| child processes (audio encoders) at their memory peak: count, unique MiB | "
        + " | ".join(f"{s.children}, {s.children_uss / 2**20:.0f}" for s in children)
        + " |",
        f"| threads | {max(threads[0])} | {np.median(threads[1]):.0f} / {max(threads[1])} | {max(threads[2])} |",
        f"| CPU, % of one core | {cpu_percent(before):.0f} | {cpu_percent(during):.0f} | {cpu_percent(after):.0f} |",
        f"| temporary files, MiB | {result.disk_before / 2**20:.1f} | | {result.disk_after / 2**20:.1f} |",
    ]


def growth_rows(result: LoadResult) -> list[str]:
    """The server's RSS at each quarter of the load against the requests served by then."""
    served, rss = [], []
    for quarter in (0.25, 0.5, 0.75, 1.0):
        at = result.load_start + quarter * (result.load_end - result.load_start)
        served.append(sum(o.status in SERVED and o.done_at <= at for o in result.outcomes))
        rss.append(min(result.samples, key=lambda s: abs(s.at - at)).rss / 2**20)
    return [
        "| time into the load | " + " | ".join(f"{q}%" for q in (25, 50, 75, 100)) + " |",
        "| --- | ---: | ---: | ---: | ---: |",
        "| requests served so far | " + " | ".join(map(str, served)) + " |",
        "| server resident memory, MiB | " + " | ".join(f"{x:.0f}" for x in rss) + " |",
    ]


def quoted(messages: set[str]) -> str:
    return "; ".join(f'"{message}"' for message in sorted(messages)[:10]) or "none"


def comparison_row(result: LoadResult) -> str:
    settings, outcomes = result.settings, result.outcomes
    cells = [settings.queue_size, settings.concurrency, len(outcomes), result.served, result.count(QUEUE_FULL)]
    cells += [result.count("failed") + result.count("wrong session")]
    cells += [spread(latencies(outcomes, "first_audio"), (50, 99)), spread(latencies(outcomes, "end"), (50, 99))]
    cells += [f"{max(s.rss for s in result.phases['during']) / 2**20:.0f}", f"{result.rss_growth / 2**20:+.0f}"]
    return f"| {' | '.join(map(str, cells))} |"


def write(results: list[LoadResult], command: str, output: Path = RESULT) -> str:
    """Writes the report (the first result in full, every result in the comparison) to `output`; returns it."""
    result, settings = results[0], results[0].settings
    lines = [
        "# The Space under load",
        "",
        f"Command: `{command}`.",
        f"Machine: {cpu_model_name()}; Python {platform.python_version()}, gradio {version('gradio')}, gradio_client "
        f"{version('gradio_client')}, torch {version('torch')}.",
        f"Space settings: queue size {settings.queue_size}, concurrency {settings.concurrency}, "
        f"{settings.threads} torch thread(s), answers of {settings.max_new_tokens} new tokens, uploads of up to "
        f"{settings.max_seconds:g} s. Load: {settings.clients} visitors at once for {settings.seconds:g} s, "
        f"{settings.pause[0]:g}-{settings.pause[1]:g} s between requests, {settings.pause_after_refusal[0]:g}-"
        f"{settings.pause_after_refusal[1]:g} s after a refusal.",
        "",
        "| request | sent | answered | refused: queue full | failed | wrong session | first audio p50 / p90 / p99 (s) "
        "| end p50 / p90 / p99 (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *request_rows(result),
        "",
        "| server process | before (idle, model loaded) | during (median / peak) | after (idle) |",
        "| --- | ---: | ---: | ---: |",
        *server_rows(result),
        "",
        *growth_rows(result),
        "",
        f"{result.served} requests served in {result.load_end - result.load_start:.0f} s; the server's resident memory "
        f"changed by {result.rss_growth / 2**20:+.0f} MiB from before to after. The visitors' own process used "
        f"{100 * result.visitors_cpu / (result.load_end - result.load_start):.0f}% of one core meanwhile.",
        f"What a refused visitor is told: {quoted({o.message for o in result.outcomes if o.status == QUEUE_FULL})}.",
        f"Failures: {quoted(set(result.failures))}.",
    ]
    if len(results) > 1:
        lines += [
            "",
            "| queue size | concurrency | sent | served | refused: queue full | failed or wrong session | first audio "
            "p50 / p99 (s) | end p50 / p99 (s) | peak RSS, MiB | RSS after less before, MiB |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *map(comparison_row, results),
        ]
    lines += ["", f"Load average when the run ended (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())}."]
    text = "\n".join(lines) + "\n"
    output.write_text(text)
    return text


def queue_setting(text: str) -> tuple[int, int]:
    size, _, concurrency = text.partition(":")
    return int(size), int(concurrency)


def main() -> None:
    from speechgpt_hf.space.app import CONCURRENCY, QUEUE_SIZE

    defaults = LoadSettings(QUEUE_SIZE, CONCURRENCY)
    names = ("clients", "seconds", "queue_size", "concurrency", "max_new_tokens", "threads")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in names:
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=type(getattr(defaults, name)), default=getattr(defaults, name)
        )
    parser.add_argument(
        "--compare", type=queue_setting, nargs="*", default=[], metavar="SIZE:CONCURRENCY", help="more queue settings"
    )
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    first = LoadSettings(**{name: getattr(args, name) for name in names})
    results = []
    for settings in [first] + [replace(first, queue_size=q, concurrency=c) for q, c in args.compare]:
        with tempfile.TemporaryDirectory(prefix="space-load-") as workdir:
            results.append(run(settings, Path(workdir)))
    print(write(results, "python benchmarks/space_load.py " + " ".join(sys.argv[1:]), args.output))


if __name__ == "__main__":
    main()
