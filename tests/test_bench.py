"""``aura bench``: its figures from what each request did (pure), and the command end to end
against a reference server paced as a model server (a known truth), in this process."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import re
import subprocess
import sys
import time
import typing

import pytest
from hypothesis import given, strategies as st

from aura_anyio import AuraClient, ChatRequest, InvalidRequestError, Message, ResponseCache
from aura_anyio._bench.report import Outcome, parse_rates, parse_slo, report, table
from aura_anyio._bench.stats import summary
from aura_anyio._cli import main
from aura_anyio._cli.bench import run_rate, say, synthetic_prompts
from aura_anyio._cli.progress import BenchProgress
from aura_anyio.testing import Fault, ReferenceServer

from .helpers import Pause, Script, make_client, reply, served_in_thread

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from aura_anyio._wire import WireName

TTFT, ITL, TOKENS = 0.1, 0.02, 12
HELLO: list[Message] = [{"role": "user", "content": "hello"}]
PIECES = [f"t{index} " for index in range(TOKENS)]


def paced_server() -> ReferenceServer:
    """A server that waits 100 ms before its first token and 20 ms between tokens."""
    return ReferenceServer(
        delay=ITL, fault=Fault(first_chunk_after=TTFT), reply=lambda _request: PIECES
    )


@pytest.fixture(scope="module")
def paced() -> Iterator[ReferenceServer]:
    with served_in_thread(paced_server()) as running:
        yield running


@pytest.fixture
async def paced_async() -> AsyncIterator[ReferenceServer]:
    async with paced_server() as server:
        yield server


def runs(path: Path) -> list[dict[str, typing.Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def bench(server: ReferenceServer, output: Path, *args: str) -> int:
    return main(["bench", "--base-url", server.base_url, "--output", str(output), *args])


# --- the figures (pure) ------------------------------------------------------------------


outcomes = st.lists(
    st.builds(
        lambda due, wait, ttft, rest, tokens, gaps, failed: Outcome(
            due,
            due + wait,
            due + wait + ttft,
            due + wait + ttft + rest,
            tuple(gaps),
            10,
            tokens,
            "ServerError" if failed else None,
        ),
        st.floats(0, 100),
        st.floats(0, 5),
        st.floats(0.001, 5),
        st.floats(0, 5),
        st.integers(0, 50),
        st.lists(st.floats(0, 1), max_size=5),
        st.booleans(),
    ),
    max_size=30,
)


@given(outcomes)
def test_the_figures_are_those_of_the_requests_that_succeeded(done: list[Outcome]) -> None:
    figures = report(
        done,
        duration=10.0,
        request_rate=math.inf,
        max_concurrency=4,
        percentiles=[50, 99],
        slo={},
        client_cpu_percent=12.5,
    )
    ok = [outcome for outcome in done if outcome.error is None]
    assert (figures["completed"], figures["failed"]) == (len(ok), len(done) - len(ok))
    assert figures["errors"] == (
        {"ServerError": len(done) - len(ok)} if len(ok) < len(done) else {}
    )
    assert figures["request_rate"] == "inf"
    assert figures["request_goodput"] is None  # no SLO
    assert figures["total_output_tokens"] == sum(outcome.output_tokens for outcome in ok)
    assert figures["output_throughput"] == pytest.approx(figures["total_output_tokens"] / 10)
    ttfts = [1000 * (typing.cast("float", o.first) - o.scheduled) for o in ok]
    expected = summary(ttfts, [50, 99])
    assert figures["median_ttft_ms"] == pytest.approx(expected["median"])
    assert figures["p99_ttft_ms"] == pytest.approx(expected["p99"])
    queues = summary([1000 * (o.started - o.scheduled) for o in ok], [50])
    assert figures["mean_queue_ms"] == pytest.approx(queues["mean"])
    tpots = [
        1000 * (o.end - typing.cast("float", o.first)) / (o.output_tokens - 1)
        for o in ok
        if o.output_tokens > 1
    ]
    assert figures["mean_tpot_ms"] == pytest.approx(summary(tpots, [50])["mean"])
    assert "Time to First Token" in table(figures, [50, 99])


def test_goodput_counts_the_requests_within_every_limit() -> None:
    fast = Outcome(0.0, 0.0, 0.1, 0.5, (), 10, 5)
    slow = Outcome(0.0, 0.0, 0.9, 1.5, (), 10, 5)
    kwargs: dict[str, typing.Any] = {
        "duration": 2.0,
        "request_rate": 10.0,
        "max_concurrency": None,
        "percentiles": [99],
        "client_cpu_percent": 0.0,
    }
    assert report([fast, slow], slo={"ttft": 500}, **kwargs)["request_goodput"] == 0.5
    assert report([fast, slow], slo={"e2el": 2000}, **kwargs)["request_goodput"] == 1.0
    assert report([fast, slow], slo={"tpot": 1}, **kwargs)["request_goodput"] == 0.0
    assert report([], slo={}, **kwargs)["mean_ttft_ms"] == 0.0


def test_rates_and_slos_are_read_or_refused() -> None:
    assert parse_rates("10,2.5,inf") == [10.0, 2.5, math.inf]
    assert parse_slo("ttft_ms=500, tpot_ms=50") == {"ttft": 500.0, "tpot": 50.0}
    assert parse_slo(None) == {}
    for bad in ("0", "-1", "nan", "fast", "10,"):
        with pytest.raises(InvalidRequestError, match="--request-rate"):
            parse_rates(bad)
    for bad in ("ttft=5", "itl_ms=5", "ttft_ms=0", "ttft_ms=soon", "e2el_ms=inf"):
        with pytest.raises(InvalidRequestError, match="--slo"):
            parse_slo(bad)


# --- the command, end to end -------------------------------------------------------------


@pytest.mark.parametrize("wire", ["openai", "aura"])
def test_the_measured_truth_is_the_servers(
    paced: ReferenceServer, tmp_path: Path, wire: str
) -> None:
    output = tmp_path / "runs.jsonl"
    args = ["--wire", wire, "--num-prompts", "8", "--request-rate", "40", "--max-concurrency", "4"]
    assert bench(paced, output, *args, "--percentiles", "50,90") == 0
    (run,) = runs(output)
    assert (run["completed"], run["failed"], run["errors"]) == (8, 0, {})
    assert run["request_rate"] == 40
    # Lower bounds are the truth; a busy machine only adds to them, so the upper ones are loose.
    assert TTFT * 1000 - 5 <= run["median_ttft_ms"] < TTFT * 1000 + 2000
    assert ITL * 1000 * 0.9 <= run["median_itl_ms"] < 1000
    assert ITL * 1000 * 0.9 <= run["median_tpot_ms"] < 1000
    assert run["median_e2el_ms"] >= run["median_ttft_ms"] + (TOKENS - 1) * ITL * 1000 * 0.9
    assert run["total_output_tokens"] == 8 * TOKENS
    assert {"p50_ttft_ms", "p90_itl_ms", "std_e2el_ms", "mean_queue_ms"} <= run.keys()
    assert run["client_cpu_percent"] >= 0


def test_a_request_waiting_for_a_slot_counts_its_wait(
    paced: ReferenceServer, tmp_path: Path
) -> None:
    output = tmp_path / "runs.jsonl"
    args = ["--num-prompts", "4", "--max-concurrency", "1", "--output-tokens", "3"]
    assert bench(paced, output, *args) == 0
    (run,) = runs(output)
    # All due at once, one at a time: the last waited for the three before it.
    one = TTFT + 2 * ITL
    assert run["p99_queue_ms"] >= 3 * one * 1000 * 0.9
    assert run["p99_ttft_ms"] >= run["p99_queue_ms"] + TTFT * 1000 * 0.9


def test_a_sweep_writes_one_run_per_rate_with_goodput(
    paced: ReferenceServer, tmp_path: Path
) -> None:
    output = tmp_path / "runs.jsonl"
    args = ["--num-prompts", "4", "--request-rate", "50,inf", "--arrival", "gamma"]
    assert bench(paced, output, *args, "--burstiness", "2", "--slo", "ttft_ms=60000") == 0
    first, second = runs(output)
    assert (first["request_rate"], second["request_rate"]) == (50, "inf")
    for run in (first, second):
        assert run["request_goodput"] == pytest.approx(run["request_throughput"])
    assert bench(paced, output, "--num-prompts", "2", "--slo", "ttft_ms=1") == 0
    assert runs(output)[-1]["request_goodput"] == 0.0  # none came within 1 ms


def test_a_sweep_is_plotted(paced: ReferenceServer, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plot, output = tmp_path / "sweep.png", tmp_path / "runs.jsonl"
    args = ["--num-prompts", "3", "--request-rate", "20,inf", "--output-tokens", "2"]
    assert bench(paced, output, *args, "--percentiles", "50,99.9", "--plot", str(plot)) == 0
    assert len(runs(output)) == 2
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert plot.stat().st_size > 10_000  # two panels drawn, not an empty canvas


def test_plotting_without_matplotlib_is_a_usage_error_before_any_request(
    paced: ReferenceServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "matplotlib" else real(name)
    )
    before = len(paced.requests)
    assert bench(paced, tmp_path / "runs.jsonl", "--plot", str(tmp_path / "p.png")) == 2
    assert "--plot needs matplotlib: pip install 'aura_anyio[plot]'" in capsys.readouterr().err
    assert len(paced.requests) == before


@pytest.mark.parametrize("backend", ["trio", "uvloop"])
def test_a_run_for_a_duration_on_another_loop(
    paced: ReferenceServer, tmp_path: Path, backend: str
) -> None:
    pytest.importorskip(backend)
    output = tmp_path / "runs.jsonl"
    args = ["--duration", "1", "--max-concurrency", "2", "--backend", backend]
    assert bench(paced, output, *args, "--output-tokens", "2") == 0
    (run,) = runs(output)
    one = TTFT + ITL
    assert run["completed"] >= 2
    assert run["completed"] <= 2 * math.ceil(1 / one) + 2  # the slots paced them
    assert run["median_queue_ms"] < 50  # due when a slot freed: no queue to speak of


@pytest.mark.parametrize("backend", ["asyncio", "trio", "uvloop"])
def test_no_request_is_sent_before_it_is_due(
    paced: ReferenceServer, tmp_path: Path, backend: str
) -> None:
    # uvloop's loop clock ticks in whole milliseconds: its timers may wake early by another.
    pytest.importorskip("trio" if backend == "trio" else "anyio")
    if backend == "uvloop":
        pytest.importorskip("uvloop")
    output = tmp_path / "runs.jsonl"
    args = ["--num-prompts", "20", "--request-rate", "200", "--arrival", "constant"]
    assert bench(paced, output, *args, "--backend", backend, "--percentiles", "0") == 0
    (run,) = runs(output)
    assert run["p0_queue_ms"] >= 0


def test_a_duration_at_a_rate_sends_what_is_due_within_it(
    paced: ReferenceServer, tmp_path: Path
) -> None:
    output = tmp_path / "runs.jsonl"
    args = ["--duration", "0.5", "--request-rate", "10", "--arrival", "constant"]
    assert bench(paced, output, *args, "--output-tokens", "1") == 0
    assert runs(output)[0]["completed"] == 5  # due at 0, 0.1, 0.2, 0.3 and 0.4 s


def events(*contents: str) -> str:
    """OpenAI events carrying ``contents``, all in one chunk of the body."""
    return "".join(
        f"data: {json.dumps({'choices': [{'delta': {'content': text}}]})}\n\n" for text in contents
    )


END = 'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


async def test_events_that_arrive_in_one_read_are_timed_one_by_one() -> None:
    # Three events in one read, then one 50 ms later: gaps of nought, nought and 50 ms, as
    # vLLM's client times them, and four events counted as the tokens (no usage sent).
    script = Script(reply(events("a", "b", "c"), Pause(0.05), events("d"), END))
    async with make_client(script, wire="openai") as client:
        (outcome,), _ = await run_rate(
            client, [ChatRequest(HELLO)], [0.0], max_concurrency=None, max_tokens=None, model="m"
        )
    assert outcome.gaps[:2] == (0.0, 0.0)
    assert 0.045 <= outcome.gaps[2] < 30
    assert outcome.output_tokens == 4


@pytest.mark.parametrize("wire", ["openai", "aura"])
async def test_a_stream_counts_its_events_carrying_text(wire: str) -> None:
    body = [events("a", "b"), events(""), events("c"), END] if wire == "openai" else ["ab", "c"]
    async with make_client(Script(reply(*body)), wire=wire) as client:
        async with client.stream(HELLO) as stream:
            assert stream.text_events == (2 if wire == "openai" else 1)  # the first read's
            pieces = [piece async for piece in stream]
    assert (pieces, stream.text_events) == (["ab", "c"], 3 if wire == "openai" else 2)


async def test_a_reply_from_the_cache_is_one_event(tmp_path: Path) -> None:
    async with ResponseCache(tmp_path / "replies.db") as cache:
        async with make_client(Script(reply("ab", "c")), cache=cache) as client:
            assert await client.complete(HELLO) == "abc"
            async with client.stream(HELLO) as stream:
                assert [piece async for piece in stream] == ["abc"]
    assert (stream.cached, stream.text_events) == (True, 1)


@pytest.mark.network
async def test_the_paced_server_records_when_it_sent_each_token(wire: WireName) -> None:
    server = ReferenceServer(
        delay=ITL,
        fault=Fault(first_chunk_after=TTFT),
        reply=lambda _request: PIECES,
        record_times=True,
    )
    async with server, AuraClient(server.base_url, wire=wire) as client:
        before = time.perf_counter()
        assert await client.complete(HELLO) == "".join(PIECES)
        after = time.perf_counter()
    ((received, *sent),) = server.sent_times
    assert before <= received <= sent[0] <= sent[-1] <= after
    assert len(sent) == TOKENS  # a chunk a token: the role and the end ride with them
    assert sent[0] - received >= TTFT * 0.95
    assert all(later - earlier >= ITL * 0.95 for earlier, later in itertools.pairwise(sent))
    assert paced_server().sent_times == []  # recorded only when asked


@pytest.mark.network
async def test_a_closed_loop_ends_with_its_requests(paced_async: ReferenceServer) -> None:
    requests = [ChatRequest([{"role": "user", "content": f"p{n}"}]) for n in range(3)]
    async with AuraClient(paced_async.base_url, wire="openai") as client:
        outcomes, _ = await run_rate(
            client, requests, None, max_concurrency=2, max_tokens=1, model="m", until=60
        )
    assert len(outcomes) == 3  # the input ran out long before the minute


@pytest.mark.parametrize("command", ["bench", "chat"])
def test_headers_given_are_sent(paced: ReferenceServer, tmp_path: Path, command: str) -> None:
    header = ["--header", "X-Trace: b 1", "--header", "x-team:ops"]
    if command == "bench":
        assert bench(paced, tmp_path / "runs.jsonl", "--num-prompts", "1", *header) == 0
    else:
        assert main(["chat", "--base-url", paced.base_url, *header, "hi"]) == 0
    headers = paced.requests[-1].headers
    assert (headers["x-trace"], headers["x-team"]) == ("b 1", "ops")


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("nocolon", "give it as 'Name: value'"),
        ("Bad Name: x", "invalid name 'Bad Name'"),
        ("Host: x", "set by the client itself"),
    ],
)
def test_a_bad_header_is_a_usage_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str, words: str
) -> None:
    assert main(["bench", "--header", header, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--header" in err
    assert words in err


def test_live_figures_on_a_terminal(paced: ReferenceServer) -> None:
    args = ["bench", "--base-url", paced.base_url, "--num-prompts", "6", "--output-tokens", "2"]

    def aura(*more: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "aura_anyio", *args, *more],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "FORCE_COLOR": "1"},  # rich then draws as on a terminal
            check=True,
        )
        return done.stderr

    shown = aura()
    assert "6/6" in shown
    assert "0 in flight" in shown
    assert re.search(r"ttft p50 \d+ ms", shown)
    hidden = aura("--no-progress")
    assert "in flight" not in hidden
    assert "Successful requests" in hidden  # the table still


def test_live_figures_count_failures_and_replies_without_text_but_no_ttft_for_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then draws as on a terminal
    with BenchProgress("run", 3, enabled=True) as live:
        for _ in range(3):
            live.sent()
        live.ended(Outcome(scheduled=0.0, started=0.0, first=None, end=0.1))  # no text
        live.ended(Outcome(scheduled=0.0, started=0.0, first=None, end=0.1, error="ReadTimeout"))
    shown = capsys.readouterr().err
    assert "2/3" in shown
    assert "1 in flight" in shown
    assert "1 failed" in shown
    assert "ttft" not in shown  # neither had a first token to time
    with BenchProgress("run", 1, enabled=True) as live:
        live.sent()
        live.ended(Outcome(scheduled=0.0, started=0.0, first=0.25, end=0.5))
    assert "ttft p50 250 ms" in capsys.readouterr().err


def test_warm_up_requests_go_first_and_are_not_counted(
    paced: ReferenceServer, tmp_path: Path
) -> None:
    output, before = tmp_path / "runs.jsonl", len(paced.requests)
    args = ["--num-prompts", "2", "--num-warmups", "3", "--max-concurrency", "3"]
    assert bench(paced, output, *args, "--output-tokens", "1") == 0
    (run,) = runs(output)
    assert run["completed"] == 2
    sent = [request.messages[-1]["content"] for request in paced.requests[before:]]
    assert len(sent) == 5
    assert not set(sent[:3]) & set(sent[3:])  # other prompts than the run's


def test_ignore_eos_is_sent_with_every_request(
    paced: ReferenceServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output, before = tmp_path / "runs.jsonl", len(paced.requests)
    args = ["--num-prompts", "2", "--num-warmups", "1", "--ignore-eos", "--output-tokens", "1"]
    assert bench(paced, output, *args) == 0
    bodies = [typing.cast("dict[str, object]", r.json) for r in paced.requests[before:]]
    assert [body["ignore_eos"] for body in bodies] == [True] * 3  # the warm-up's too
    assert bench(paced, output, "--wire", "aura", "--ignore-eos") == 2
    assert "--ignore-eos needs --wire openai" in capsys.readouterr().err


def test_synthetic_prompts_differ_and_a_seed_repeats_them() -> None:
    first = list(itertools.islice(synthetic_prompts(50, seed=1), 20))
    texts = [str(request.messages[0]["content"]) for request in first]
    assert len(set(texts)) == 20
    assert all(len(text.split()) == 50 for text in texts)  # the index, and 49 words
    again = list(itertools.islice(synthetic_prompts(50, seed=1), 20))
    assert [request.messages for request in again] == [request.messages for request in first]
    other = next(synthetic_prompts(50, seed=2)).messages
    assert other != first[0].messages


def test_a_busy_client_warns_and_no_output_writes_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = report(
        [],
        duration=1.0,
        request_rate=1.0,
        max_concurrency=None,
        percentiles=[99],
        slo={},
        client_cpu_percent=93.0,
    )
    say(figures, [99], None)
    assert "warning: the client used 93% of a core" in capsys.readouterr().err
    say({**figures, "duration": 0.2}, [99], None)  # too short a run to tell
    assert "warning" not in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_uvloop_missing_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "uvloop" else real(name)
    )
    assert main(["bench", "--backend", "uvloop"]) == 2
    assert "--backend uvloop needs uvloop" in capsys.readouterr().err


def test_prompts_from_a_file_are_used_in_turn(paced: ReferenceServer, tmp_path: Path) -> None:
    prompts, output = tmp_path / "prompts.jsonl", tmp_path / "runs.jsonl"
    prompts.write_text('{"prompt": "one"}\n\n{"messages": [{"role": "user", "content": "two"}]}\n')
    before = len(paced.requests)
    assert bench(paced, output, "--prompts", str(prompts), "--num-prompts", "3") == 0
    sent = [request.kept_messages[-1]["content"] for request in paced.requests[before:]]
    assert sorted(sent) == ["one", "one", "two"]


def test_failures_are_counted_by_type_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "runs.jsonl"
    with served_in_thread(ReferenceServer(fault=Fault(status=500))) as broken:
        assert bench(broken, output, "--num-prompts", "3") == 1
    (run,) = runs(output)
    assert (run["completed"], run["failed"], run["errors"]) == (0, 3, {"ServerError": 3})
    err = capsys.readouterr().err
    assert "Serving Benchmark Result" in err
    assert "3 ServerError" in err  # the table names the errors too
    assert "aura: error: 3 requests failed" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--num-prompts", "2", "--duration", "1"], "not both"),
        (["--duration", "1"], "needs --max-concurrency"),
        (["--wire", "aura", "--output-tokens", "5"], "needs --wire openai"),
        (["--request-rate", "0"], "--request-rate takes positive numbers"),
        (["--arrival", "constant", "--burstiness", "0"], "burstiness must be a positive"),
        (["--burstiness", "2"], "use arrival 'gamma'"),
        (["--slo", "ttft=1"], "--slo names"),
        (["--percentiles", "101"], "from 0 to 100"),
        (["--percentiles", "p99"], "--percentiles takes numbers from 0 to 100"),
    ],
)
def test_bad_options_are_a_usage_error_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    assert main(["bench", "--base-url", "http://127.0.0.1:9", *args]) == 2
    assert needle in capsys.readouterr().err


def test_a_prompts_file_without_requests_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty, bad = tmp_path / "empty.jsonl", tmp_path / "bad.jsonl"
    empty.write_text("\n")
    bad.write_text("[1]\n")
    assert main(["bench", "--prompts", str(empty)]) == 2
    assert "has no requests" in capsys.readouterr().err
    assert main(["bench", "--prompts", str(bad)]) == 2
    assert "must be a JSON object" in capsys.readouterr().err
