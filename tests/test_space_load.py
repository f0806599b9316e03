"""benchmarks/space_load.py at test size: eight visitors for 15 s against the Space on loopback, with a queue small
enough that their first requests, sent at once, overflow it. Every request is answered or refused with a message,
no answer reaches another session, and the server goes idle once they have left, its memory grown by a bounded
amount."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "space_load.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("space_load", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARK.parent))  # its helper modules beside it, as when it is run as a script
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def load(tmp_path_factory):
    """(the benchmark module, the result of its short run)."""
    pytest.importorskip("gradio_client")
    bench = _benchmark()
    settings = bench.LoadSettings(clients=8, seconds=15, queue_size=3, concurrency=1, max_new_tokens=100)
    return bench, bench.run(settings, tmp_path_factory.mktemp("space-load"))


def test_every_request_is_answered_or_refused_with_a_message(load):
    bench, result = load
    assert result.failures == []
    assert {o.step for o in result.outcomes if o.status in bench.SERVED} == set(bench.STEPS)
    refusals = [o.message for o in result.outcomes if o.status == bench.QUEUE_FULL]
    assert refusals and all("queue is full" in message.lower() for message in refusals)
    assert result.served + len(refusals) == len(result.outcomes)


def test_no_answer_reaches_another_session(load):
    _, result = load
    assert result.count("wrong session") == 0
    assert result.count("answered", "spoken question") > 0  # each checked its conversation and its audio stream


def test_spoken_answers_stream_before_they_end(load):
    _, result = load
    answered = [o for o in result.outcomes if o.status == "answered" and o.step != "bad upload"]
    assert answered and all(o.first_audio is not None and o.first_audio <= o.end for o in answered)


def test_the_server_goes_idle_once_the_visitors_leave_and_its_memory_stays_bounded(load):
    bench, result = load
    phases = result.phases
    assert all(phases.values())
    assert bench.cpu_percent(phases["after"]) < 50  # no generation left running for a closed connection
    # The server's memory grows by a few hundred KiB a request served (benchmarks/space_load.md), about 100 MiB in
    # this run; the bound catches runaway growth (megabytes a request), the benchmark's longer run the slow kind.
    assert result.rss_growth < 256 * 2**20


def test_the_report_holds_the_tables(load, tmp_path):
    bench, result = load
    text = bench.write([result], "python benchmarks/space_load.py --clients 8", tmp_path / "space_load.md")
    assert "| all | " in text and "| resident memory, MiB |" in text and "| requests served so far |" in text
    assert "Machine: " in text and "queue size 3, concurrency 1" in text
