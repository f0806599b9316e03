"""The report of benchmarks/space_load.py: a table of the requests by kind and outcome with their latencies, the
server's memory, threads, CPU and temporary files before, during and after the load, its memory against the requests
served, and a comparison of the queue settings; written to space_load.md beside it."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from space_load_clients import QUEUE_FULL, SERVED, STEPS, Outcome

from speechgpt_hf.training.precision import cpu_model_name

if TYPE_CHECKING:
    from space_load import LoadResult, ServerSample

RESULT = Path(__file__).with_name("space_load.md")
LABELS = ("typed question", "spoken question (WAV upload)", "bad upload (a text file)", "closed at first audio")


def cpu_percent(samples: list[ServerSample]) -> float:
    """The server's CPU use over `samples`, in percent of one core."""
    return 100 * (samples[-1].cpu - samples[0].cpu) / max(samples[-1].at - samples[0].at, 1e-9)


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
