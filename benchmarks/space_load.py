"""The Space under load: many visitors at once against the Space on loopback; writes benchmarks/space_load.md.

The Space's own `launch()` serves a tiny random SpeechGPT system in a subprocess on 127.0.0.1, with the queue
settings under test; the system's generation config biases decoding towards speech units, so every answer streams
audio. Each visitor is a gradio_client Client in a thread of this process. The first visitor of every slot sends its
first request at the same moment; each visitor sends a typed question, a spoken question (a WAV upload), a bad
upload (a text file) and a question whose connection it closes at the first audio, pausing between requests (longer
after a refusal), and leaves; a new visitor takes the slot until the time is up. Every question carries its
visitor's tag, and each conversation that comes back must hold that visitor's turns, all of them and no one else's.
The server's resident memory, threads and CPU time are sampled before, during and after the load; the run stops by
itself. The visitors are in `space_load_clients.py`, the report's tables in `space_load_report.py`.

Run: python benchmarks/space_load.py [--clients 50] [--seconds 60] [--queue-size 16] [--concurrency 1]
         [--compare QUEUE_SIZE:CONCURRENCY ...]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import psutil

# STEPS and cpu_percent are here for tests/test_space_load.py, which reads them from this module.
from space_load_clients import QUEUE_FULL, SERVED, STEPS, Outcome, drive, warm_up  # noqa: F401
from space_load_report import RESULT, cpu_percent, write  # noqa: F401

NUM_UNITS = 30
SERVE = (
    "import sys; from speechgpt_hf.space.app import launch; "
    "launch(sys.argv[1], max_seconds=float(sys.argv[2]), server_name='127.0.0.1', server_port=int(sys.argv[3]))"
)


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
