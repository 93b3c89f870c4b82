"""The batch runner and the end of a batch, in this process, on every backend."""

from __future__ import annotations

import json
import os
import signal
import typing

import anyio
import pytest

pytest.importorskip("click", reason="the aura command needs the cli extra")

from aura_anyio import AuraClient
from aura_anyio._cli.batch import (
    BatchStats,
    run_batch,
    summary_line,
    summary_of,
    until_signalled,
)
from aura_anyio._cli.commands import Failed, Interrupted, finish_batch, main
from aura_anyio._cli.progress import rates
from aura_anyio.testing import Fault, ReceivedRequest, ReferenceServer, ToolCalls, default_reply

if typing.TYPE_CHECKING:
    from pathlib import Path

# A row as JSON gives it: its fields' types are what the tests check.
Row = dict[str, typing.Any]


def rows(path: Path) -> list[Row]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_lines(path: Path, *lines: dict[str, object]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def by_id(path: Path) -> dict[object, Row]:
    return {row["id"]: row for row in rows(path)}


def prompt_of(request: ReceivedRequest) -> str:
    return request.kept_messages[-1]["content"]


@pytest.mark.network
async def test_resume_after_a_row_cut_by_a_kill(tmp_path: Path) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"id": n, "prompt": f"p{n}"}) + "\n" for n in range(5)))
    done = json.dumps({"id": 0, "line": 1, "ok": True, "text": "t"})
    output.write_text(done + '\n{"id": 1, "line": 2, "ok": tr')  # the kill cut the last row
    async with ReferenceServer() as server, AuraClient(server.base_url) as client:
        stats = await run_batch(client, source, output, concurrency=2, resume=True)
    assert (stats.total, stats.done, stats.skipped, stats.failed) == (4, 4, 1, 0)
    lines = output.read_text(encoding="utf-8").splitlines()
    assert lines[1] == '{"id": 1, "line": 2, "ok": tr'  # left as it was, on its own line
    parsed = [json.loads(line) for line in lines[:1] + lines[2:]]
    assert sorted(row["id"] for row in parsed if row["ok"]) == [0, 1, 2, 3, 4]
    assert len(stats.latencies) == 4


@pytest.mark.network
async def test_the_counts_go_to_the_stats_given(tmp_path: Path) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"prompt": "a"}\n{"prompt": "[[fault status=500]] b"}\n{"x": 1}\n')
    stats = BatchStats()
    seen: list[int] = []
    async with ReferenceServer() as server:
        async with AuraClient(server.base_url, max_retries=1) as client:
            await run_batch(
                client,
                source,
                output,
                concurrency=4,
                stats=stats,
                on_result=lambda s: seen.append(s.done),
            )
    assert (stats.total, stats.done, stats.failed, stats.retried) == (3, 3, 2, 1)
    assert seen == [1, 2, 3]
    assert {row["line"] for row in rows(output)} == {1, 2, 3}


@pytest.mark.network
async def test_rows_cut_by_max_tokens_are_ok_and_counted(tmp_path: Path) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    failing = Fault(status=500).marker()
    write_lines(
        source,
        {"id": "short", "prompt": "a", "max_tokens": 2},
        {"id": "whole", "prompt": "b"},
        {"id": "shorter", "prompt": "c", "max_tokens": 1},
        {"id": "roomy", "prompt": "d", "max_tokens": 100},  # room to spare: "stop"
        {"id": "failed", "prompt": failing, "max_tokens": 2},
        {"id": "never sent", "prompt": "e", "max_tokens": "2"},
    )
    async with (
        ReferenceServer() as server,
        AuraClient(server.base_url, wire="openai", max_retries=0) as client,
    ):
        stats = await run_batch(client, source, output, concurrency=3)
    assert (stats.done, stats.failed, stats.truncated) == (6, 2, 2)
    found = by_id(output)
    assert {key: row["finish_reason"] for key, row in found.items()} == {
        "short": "length",
        "whole": "stop",
        "shorter": "length",
        "roomy": "stop",
        "failed": None,
        "never sent": None,
    }
    assert (found["short"]["ok"], found["short"]["text"]) == (True, "Hello from ")
    assert (found["shorter"]["ok"], found["shorter"]["text"]) == (True, "Hello ")
    assert found["short"]["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
    }
    assert found["failed"]["error"]["status_code"] == 500
    assert found["never sent"]["error"]["type"] == "InvalidRequestError"
    sent = {
        prompt_of(request): typing.cast("dict[str, object]", request.json)
        for request in server.requests
    }
    assert "max_tokens" not in sent["b"]  # none asked: the server's default applies
    assert sent["a"]["max_tokens"] == 2


@pytest.mark.network
async def test_a_batch_on_the_aura_wire_counts_no_truncation(tmp_path: Path) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_lines(source, {"prompt": "a", "max_tokens": 800}, {"prompt": "b"})
    async with ReferenceServer() as server, AuraClient(server.base_url) as client:
        stats = await run_batch(client, source, output, concurrency=2)
    assert (stats.done, stats.failed, stats.truncated) == (2, 0, 0)
    assert [row["finish_reason"] for row in rows(output)] == [None, None]  # /api/chat says none
    assert sorted(request.token_limit or 0 for request in server.requests) == [800, 8192]


@pytest.mark.network
async def test_the_common_extra_body_reaches_every_request_and_a_lines_own_wins(
    tmp_path: Path,
) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_lines(
        source,
        {"id": 1, "prompt": "plain"},
        {"id": 2, "prompt": "own seed", "extra_body": {"seed": 2}},
        {"id": 3, "prompt": "more", "extra_body": {"top_p": 0.5, "stop": None}},
        {"id": 4, "prompt": "no usage", "extra_body": {"stream_options": {"include_usage": False}}},
        {"id": 5, "prompt": "null", "extra_body": None},
        {"id": 6, "prompt": "a list", "extra_body": [1]},
        {"id": 7, "prompt": "reserved", "extra_body": {"stream": False}},
    )
    common = {"seed": 1, "stop": ["\n"]}
    async with (
        ReferenceServer() as server,
        AuraClient(server.base_url, wire="openai") as client,
    ):
        stats = await run_batch(client, source, output, concurrency=4, extra_body=common)
    assert (stats.done, stats.failed) == (7, 2)
    assert common == {"seed": 1, "stop": ["\n"]}  # shared, never changed
    received = {prompt_of(request): request for request in server.requests}
    assert {prompt: dict(request.extra_body) for prompt, request in received.items()} == {
        "plain": {"seed": 1, "stop": ["\n"]},
        "own seed": {"seed": 2, "stop": ["\n"]},
        "more": {"seed": 1, "stop": None, "top_p": 0.5},
        "no usage": {"seed": 1, "stop": ["\n"]},
        "null": {"seed": 1, "stop": ["\n"]},
    }
    assert received["no usage"].include_usage is False  # the line replaced stream_options
    assert received["plain"].include_usage is True
    found = by_id(output)
    assert found[4]["usage"] is None
    assert found[1]["usage"] is not None
    for key, needle in [(6, "extra_body must be a mapping"), (7, "'stream'")]:
        assert (found[key]["ok"], found[key]["attempts"]) == (False, 0)  # never sent
        assert found[key]["error"]["type"] == "InvalidRequestError"
        assert needle in found[key]["error"]["message"]


def calls_tools(request: ReceivedRequest) -> str | ToolCalls:
    if prompt_of(request) == "weather?":
        return ToolCalls([("get_weather", '{"city": "Paris", "unit": "C"}')], text="Let me look.")
    return default_reply(request)


@pytest.mark.network
async def test_a_row_carries_the_tool_calls_of_its_reply(tmp_path: Path) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_lines(source, {"id": "t", "prompt": "weather?"}, {"id": "p", "prompt": "plain"})
    async with (
        ReferenceServer(reply=calls_tools) as server,
        AuraClient(server.base_url, wire="openai") as client,
    ):
        stats = await run_batch(client, source, output, concurrency=2)
    assert (stats.done, stats.failed, stats.truncated) == (2, 0, 0)
    found = by_id(output)
    assert (found["t"]["ok"], found["t"]["text"]) == (True, "Let me look.")
    assert found["t"]["finish_reason"] == "tool_calls"
    assert found["t"]["tool_calls"] == [
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "C"}'},
        }
    ]
    assert found["p"]["finish_reason"] == "stop"
    assert "tool_calls" not in found["p"]  # none made, none written


async def test_until_signalled_stops_the_job_on_sigint() -> None:
    started = anyio.Event()

    async def job() -> None:
        started.set()
        await anyio.sleep_forever()

    async def interrupt() -> None:
        await started.wait()
        os.kill(os.getpid(), signal.SIGINT)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(interrupt)
        assert await until_signalled(job) is True


async def test_until_signalled_passes_a_failure_through_unwrapped() -> None:
    async def job() -> None:
        raise LookupError("from the job")

    with pytest.raises(LookupError, match="from the job"):
        await until_signalled(job)
    assert await until_signalled(anyio.lowlevel.checkpoint) is False


def test_the_end_of_a_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out.jsonl"
    finish_batch(BatchStats(total=3, done=3), output, None)
    err = capsys.readouterr().err
    assert err.startswith("aura: 3 ok, 0 failed, 0 retries, ")
    assert " requests/s" in err
    assert err.count("\n") == 1
    with pytest.raises(Failed, match="1 of 3 requests failed"):
        finish_batch(BatchStats(total=3, done=3, failed=1, skipped=2), output, None)
    assert "2 skipped (done before)" in capsys.readouterr().err
    finish_batch(BatchStats(total=9, done=4, failed=1), output, Interrupted())
    err = capsys.readouterr().err
    assert err.startswith("aura: interrupted: 3 ok, 1 failed")
    assert "--resume finishes it" in err
    finish_batch(BatchStats(), output, Failed("bad URL"))  # the error speaks for itself
    assert capsys.readouterr().err == ""
    finish_batch(BatchStats(total=5, done=5, truncated=2), output, None)  # still a success
    assert capsys.readouterr().err.startswith(
        "aura: 5 ok, 0 failed, 0 retries, 2 cut short by max_tokens (finish_reason length), "
    )
    with pytest.raises(Failed, match="1 of 5 requests failed"):
        finish_batch(BatchStats(total=5, done=5, failed=1, skipped=1, truncated=1), output, None)
    assert (
        "1 skipped (done before), 1 cut short by max_tokens (finish_reason length)"
        in capsys.readouterr().err
    )


def test_the_summary_counts_tokens_rate_and_latency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stats = BatchStats(
        total=4,
        done=4,
        failed=1,
        retried=2,
        truncated=1,
        cached=3,
        prompt_tokens=1200,
        completion_tokens=34_000,
        latencies=[0.1, 0.2, 0.3, 1.5],
        ttfts=[0.05, 0.01, 0.4],
    )
    summary = summary_of(stats, elapsed=2.0)
    assert summary == {
        "ok": 3,
        "done": 4,
        "failed": 1,
        "retried": 2,
        "skipped": 0,
        "truncated": 1,
        "cached": 3,
        "prompt_tokens": 1200,
        "completion_tokens": 34_000,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "elapsed": 2.0,
        "requests_per_second": 2.0,
        "output_tokens_per_second": 17_000.0,
        "latency_p50": 0.2,
        "latency_p95": 1.5,
        "ttft_p50": 0.05,
        "ttft_p95": 0.4,
    }
    assert summary_line(summary) == (
        "3 ok, 1 failed, 2 retries, 3 from the cache, "
        "1 cut short by max_tokens (finish_reason length), "
        "1,200 tokens in, 34,000 out, 2.0 requests/s, 17,000.0 output tokens/s, "
        "latency p50 200 ms, p95 1500 ms, first text p50 50 ms, p95 400 ms"
    )
    empty = summary_of(BatchStats(), elapsed=0.0)
    assert [
        empty[name]
        for name in (
            "requests_per_second",
            "output_tokens_per_second",
            "latency_p50",
            "latency_p95",
            "ttft_p50",
            "ttft_p95",
        )
    ] == [None] * 6
    assert summary_line(empty) == "0 ok, 0 failed, 0 retries"
    written = tmp_path / "summary.json"
    with pytest.raises(Failed):
        finish_batch(stats, tmp_path / "out.jsonl", None, written)
    assert "34,000 out" in capsys.readouterr().err
    saved = json.loads(written.read_text(encoding="utf-8"))
    assert saved["prompt_tokens"] == 1200
    assert saved["latency_p95"] == 1.5
    assert saved.keys() == summary.keys()
    with pytest.raises(Failed, match="cannot write the summary"):
        finish_batch(BatchStats(), tmp_path / "out.jsonl", None, tmp_path)  # a directory


@pytest.mark.parametrize(
    ("stats", "elapsed", "text"),
    [
        (BatchStats(done=3), 10.0, "0.3 req/s"),  # not "0/s"
        (BatchStats(done=3, prompt_tokens=10, completion_tokens=15), 10.0, "0.3 req/s, 2.5 tok/s"),
        (BatchStats(done=3), 0.0, ""),
    ],
)
def test_the_progress_bar_rates_have_one_decimal(
    stats: BatchStats, elapsed: float, text: str
) -> None:
    assert rates(stats, elapsed) == text


@pytest.mark.parametrize(
    ("raised", "code"),
    [(Interrupted(), 130), (Failed("x"), 1), (Failed("x", 2), 2), (BrokenPipeError(), 1)],
)
def test_how_main_ends(
    raised: BaseException,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def run(self: object, job: object) -> None:
        raise raised

    silenced: list[bool] = []
    monkeypatch.setattr("aura_anyio._cli.commands.Connection.run", run)
    monkeypatch.setattr("aura_anyio._cli.commands.silence_stdout", lambda: silenced.append(True))
    assert main(["chat", "hi"]) == code
    assert silenced == ([True] if isinstance(raised, BrokenPipeError) else [])
    if isinstance(raised, Failed):
        assert capsys.readouterr().err == "aura: error: x\n"
