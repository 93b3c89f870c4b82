"""The aura command, run as users run it: a subprocess against the reference server.

The server runs in this process, on an event loop in a thread of its own (an AnyIO blocking
portal), so a test can see what it received. Every subprocess is bounded by a timeout, a
guard against hangs, not a speed target.
"""

from __future__ import annotations

import collections
import importlib.util
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import typing

import anyio
import pytest

pytest.importorskip("click", reason="the aura command needs the cli extra")

from aura_anyio import AuraClient
from aura_anyio._cli import main
from aura_anyio.testing import Fault, ReferenceServer

from .helpers import REPLY, served_in_thread

pytestmark = pytest.mark.subprocess

if typing.TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from aura_anyio._wire import WireName

HANG_GUARD = 120.0
HI = {"role": "user", "content": "hi"}


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with served_in_thread(ReferenceServer()) as reference:
        yield reference


@pytest.fixture(scope="module")
def slow_server() -> Iterator[ReferenceServer]:
    """Replies take a while, so a batch is still running when it is interrupted."""
    with served_in_thread(ReferenceServer(delay=0.01)) as reference:
        yield reference


# A server of a test's own, so that no other test's requests count towards its faults.
serving = served_in_thread


def aura(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aura_anyio", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=HANG_GUARD,
        env={**os.environ, **(env or {})},
        check=False,
    )


def assert_one_clear_line(stderr: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("aura: error: ")


# A row as JSON gives it: its fields' types are what the tests check.
Row = dict[str, typing.Any]


def rows(path: Path) -> list[Row]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- chat ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_chat_streams_the_reply_and_nothing_else_to_stdout(
    server: ReferenceServer, backend: str
) -> None:
    done = aura("chat", "--base-url", server.base_url, "--backend", backend, "naïve", "café")
    assert (done.returncode, done.stdout, done.stderr) == (0, REPLY.format("naïve café"), "")


def test_chat_reads_the_prompt_from_stdin_and_sends_the_options(server: ReferenceServer) -> None:
    before = len(server.requests)
    done = aura(
        "chat",
        "--base-url",
        server.base_url,
        "--system",
        "Be brief.",
        "--model",
        "openchat_3.6",
        "--temperature",
        "0.2",
        "--max-tokens",
        "1000",
        "-",
        stdin="from stdin ☕\n",
        env={"AURA_KEY": "k-secret"},
    )
    assert done.returncode == 0, done.stderr
    assert "from stdin ☕»" in done.stdout
    (request,) = server.requests[before:]
    assert request.system_prompt == "Be brief."
    assert request.kept_messages == ({"role": "user", "content": "from stdin ☕"},)
    body = typing.cast("dict[str, object]", request.json)
    assert (body["key"], body["temperature"], request.token_limit) == ("k-secret", 0.2, 1000)


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--temperature", "9", "hi"], 2, "temperature must be a finite number"),
        (["--model", "gpt-nope", "hi"], 2, "model"),
        (["--retries", "0", "[[fault status=500 reason=Upstream%20down]] hi"], 1, "Upstream down"),
        (["--backend", "trio", "--retries", "0", "[[fault status=429]] hi"], 1, "429"),
    ],
)
def test_chat_errors_are_one_line_on_stderr(
    server: ReferenceServer, args: list[str], code: int, needle: str
) -> None:
    done = aura("chat", "--base-url", server.base_url, *args)
    assert (done.returncode, done.stdout) == (code, "")
    assert_one_clear_line(done.stderr)
    assert needle in done.stderr


@pytest.mark.parametrize("fault", [Fault(close_after=20), Fault(reset_after=20)])
def test_chat_keeps_the_text_that_arrived_before_a_break_and_says_so_at_once(
    server: ReferenceServer, fault: Fault
) -> None:
    cut = fault.marker()
    started = time.monotonic()
    done = aura("chat", "--base-url", server.base_url, cut)
    # At once, not after the 60 s read timeout: a generous bound for a busy machine.
    assert time.monotonic() - started < 30
    assert done.returncode == 1
    assert done.stdout  # what arrived stays on stdout
    assert REPLY.format(cut).encode().startswith(done.stdout.encode())
    assert_one_clear_line(done.stderr)
    assert "broke after" in done.stderr


def test_chat_timeout_ends_a_silent_reply_early_and_keeps_its_text(
    server: ReferenceServer,
) -> None:
    stalled = Fault(stall_after=20).marker()
    started = time.monotonic()
    done = aura("chat", "--base-url", server.base_url, "--timeout", "0.5", stalled)
    took = time.monotonic() - started
    assert done.returncode == 1
    assert REPLY.format(stalled).encode()[:20] == done.stdout.encode()
    assert_one_clear_line(done.stderr)
    assert "read timeout" in done.stderr
    assert took < 30  # not the default 60 s: a generous bound for a busy machine


def test_batch_timeout_fails_a_silent_reply_early(server: ReferenceServer, tmp_path: Path) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    stalled = Fault(stall_after=20).marker()
    lines = [{"id": "stalled", "prompt": stalled}, {"id": "fine", "prompt": "hi"}]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    args = ["-o", str(output), "--base-url", server.base_url, "--retries", "0"]
    done = aura("batch", str(source), *args, "--timeout", "0.5")
    assert done.returncode == 1
    found = {row["id"]: row for row in rows(output)}
    assert found["stalled"]["error"]["type"] == "IncompleteStreamError"
    assert "read timeout" in found["stalled"]["error"]["message"]
    assert found["fine"]["ok"]


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_timeout_must_be_a_positive_number_of_seconds(value: str) -> None:
    for command in (["chat", "hi"], ["batch", "in.jsonl", "-o", "out.jsonl"]):
        done = aura(*command, "--timeout", value, "--base-url", "http://127.0.0.1:9")
        assert done.returncode == 2
        assert "--timeout" in done.stderr


def test_chat_cannot_connect() -> None:
    done = aura("chat", "--base-url", "http://127.0.0.1:9", "--retries", "0", "hi")
    assert done.returncode == 1
    assert_one_clear_line(done.stderr)
    assert "could not connect" in done.stderr


@pytest.mark.parametrize(
    "args",
    [["chat"], ["chat", "--backend", "curio", "hi"], ["nope"], ["chat", "--retries", "-1", "x"]],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = aura(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


# --- batch -----------------------------------------------------------------------------------

BATCH = [
    '{"id": "a", "prompt": "one"}',
    '{"prompt": "two", "system": "Be brief.", "temperature": 0.1}',
    "not json",
    "",
    '{"id": "a", "prompt": "again"}',
    '{"messages": [{"role": "bogus", "content": "x"}]}',
    '{"id": 7, "messages": [{"role": "user", "content": "three"}], "max_tokens": 1000}',
    '["an", "array"]',
    '{"promt": "typo"}',
]


def test_a_batch_writes_one_row_per_line_and_goes_on_past_bad_ones(
    server: ReferenceServer, tmp_path: Path
) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("\n".join(BATCH) + "\n", encoding="utf-8")
    done = aura("batch", str(source), "-o", str(output), "--base-url", server.base_url)
    assert done.returncode == 1  # some failed
    assert "Traceback" not in done.stderr
    by_line = {row["line"]: row for row in rows(output)}
    assert sorted(by_line) == [1, 2, 3, 5, 6, 7, 8, 9]  # line 4 is blank
    assert by_line[1] == by_line[1] | {"id": "a", "ok": True, "text": REPLY.format("one")}
    assert by_line[2]["id"] == 2  # the line number
    assert by_line[2]["text"] == REPLY.format("two")
    assert by_line[7] == by_line[7] | {"id": 7, "ok": True, "error": None, "attempts": 1}
    for line, kind, needle in [
        (3, "InvalidRequestError", "not valid JSON"),
        (5, "InvalidRequestError", "used already, on line 1"),
        (6, "InvalidRequestError", "role"),
        (8, "InvalidRequestError", "must be a JSON object"),
        (9, "InvalidRequestError", "unknown field 'promt'"),
    ]:
        row = by_line[line]
        assert (row["ok"], row["text"], row["attempts"]) == (False, "", 0)  # never sent
        error = typing.cast("dict[str, object]", row["error"])
        assert error["type"] == kind
        assert needle in str(error["message"])
    assert set(by_line[1]) == {
        "id",
        "line",
        "ok",
        "text",
        "error",
        "attempts",
        "elapsed",
        "ttft",
        "finish_reason",
        "usage",
    }  # no tool_calls: the reply made none; no previous_error_types: no retries
    assert (by_line[1]["finish_reason"], by_line[1]["usage"]) == (None, None)  # /api/chat: none


def test_a_status_error_row_carries_the_status(server: ReferenceServer, tmp_path: Path) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    marker = Fault(status=503, reason="Overloaded").marker()
    source.write_text(json.dumps({"id": "x", "prompt": marker}) + "\n", encoding="utf-8")
    done = aura(
        "batch", str(source), "-o", str(output), "--base-url", server.base_url, "--retries", "1"
    )
    assert done.returncode == 1
    (row,) = rows(output)
    assert row["error"] == {
        "type": "ServerError",
        "message": row["error"]["message"],
        "status_code": 503,
    }
    assert row["attempts"] == 2
    assert row["previous_error_types"] == ["ServerError"]
    assert row["ttft"] is None  # no text ever came


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_clean_batch_exits_0_and_an_existing_output_needs_resume(
    server: ReferenceServer, tmp_path: Path, backend: str
) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(
        "".join(json.dumps({"prompt": f"p{n}"}) + "\n" for n in range(50)), encoding="utf-8"
    )
    args = ["batch", str(source), "-o", str(output), "--base-url", server.base_url]
    done = aura(*args, "--backend", backend, "--concurrency", "8", "--rps", "1000", "--tpm", "1e6")
    assert (done.returncode, done.stdout) == (0, "")
    assert "50 ok, 0 failed" in done.stderr
    assert sorted(row["id"] for row in rows(output)) == list(range(1, 51))
    again = aura(*args)
    assert again.returncode == 2
    assert_one_clear_line(again.stderr)
    assert "--resume" in again.stderr
    resumed = aura(*args, "--resume")  # nothing left to do
    assert resumed.returncode == 0
    assert "0 ok, 0 failed" in resumed.stderr
    assert len(rows(output)) == 50


def test_two_batches_write_one_cache_file_at_once(server: ReferenceServer, tmp_path: Path) -> None:
    source, cache = tmp_path / "in.jsonl", tmp_path / "replies.db"
    prompts = [f"p{n}" for n in range(200)]
    source.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    before = len(server.requests)
    outputs = [tmp_path / "out1.jsonl", tmp_path / "out2.jsonl"]
    # Both start at once on a new file: they race to make it a cache, then to fill it.
    options = ["--cache", str(cache), "--base-url", server.base_url, "--concurrency", "16"]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "aura_anyio", "batch", str(source), "-o", str(output), *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for output in outputs
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=HANG_GUARD)
        assert run.returncode == 0, stderr
    sent = [r.kept_messages[-1]["content"] for r in server.requests[before:]]
    assert sorted(set(sent)) == sorted(prompts)  # each prompt was sent by one batch or both
    cached = 0
    for output in outputs:
        written = rows(output)
        assert sorted(row["text"] for row in written) == sorted(REPLY.format(p) for p in prompts)
        cached += sum(row.get("cached", False) for row in written)
    assert cached + len(sent) == 400  # every row either sent or answered from the cache
    connection = sqlite3.connect(cache)
    assert connection.execute("SELECT count(*) FROM replies").fetchone()[0] == 200
    connection.close()
    again = aura(
        "batch", str(source), "-o", str(tmp_path / "out3.jsonl"), "--cache", str(cache),
        "--base-url", server.base_url,
    )  # fmt: skip
    assert again.returncode == 0
    assert "200 ok, 0 failed, 0 retries, 200 from the cache" in again.stderr
    assert len(server.requests) == before + len(sent)


def test_a_cache_file_that_is_not_a_cache_is_a_usage_error(tmp_path: Path) -> None:
    source, output, notes = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "notes"
    source.write_text('{"prompt": "hi"}\n')
    notes.write_text("my notes\n")
    done = aura("batch", str(source), "-o", str(output), "--cache", str(notes))
    assert done.returncode == 2
    assert_one_clear_line(done.stderr)
    assert "it is not one, or it is corrupt" in done.stderr
    assert notes.read_text() == "my notes\n"
    assert not output.exists()


def test_a_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    done = aura("batch", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "out.jsonl"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr


def test_request_timeout_keeps_the_partial_text(
    slow_server: ReferenceServer, tmp_path: Path
) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"prompt": Fault(endless=True).marker()}) + "\n")
    args = ["batch", str(source), "-o", str(output), "--base-url", slow_server.base_url]
    done = aura(*args, "--request-timeout", "0.3", "--no-progress")
    assert done.returncode == 1
    (row,) = rows(output)
    assert row["error"]["type"] == "APITimeoutError"
    assert row["text"]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_and_resume_give_exactly_one_ok_row_per_request(
    slow_server: ReferenceServer, tmp_path: Path, stop: signal.Signals
) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = [f"r{n}" for n in range(150)]
    source.write_text("".join(json.dumps({"id": i, "prompt": i}) + "\n" for i in ids))
    args = ["batch", str(source), "-o", str(output), "--base-url", slow_server.base_url]
    for _ in range(2):  # interrupted twice, at some point past 20 new rows
        before = len(rows(output)) if output.exists() else 0
        with subprocess.Popen(
            [sys.executable, "-m", "aura_anyio", *args, "--resume", "--concurrency", "10"],
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            deadline = time.monotonic() + HANG_GUARD
            while not output.exists() or len(rows_so_far(output)) < before + 20:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            process.send_signal(stop)
            _, stderr = process.communicate(timeout=HANG_GUARD)
        assert process.returncode == 130, stderr
        assert "interrupted" in stderr
        assert "Traceback" not in stderr
        assert len(rows(output)) < len(ids)  # stopped before the end
    done = aura(*args, "--resume")
    assert done.returncode == 0, done.stderr
    ok = collections.Counter(row["id"] for row in rows(output) if row["ok"])
    assert sorted(ok) == sorted(ids)
    assert set(ok.values()) == {1}
    assert all(row["text"] == REPLY.format(row["id"]) for row in rows(output))


def rows_so_far(path: Path) -> list[str]:
    """Whole rows written so far (the last line may be half-written)."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.endswith("}")]


# --- serve and demo --------------------------------------------------------------------------


def test_serve_runs_the_reference_server_until_sigterm() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "aura_anyio", "serve", "--port", "0", "--delay-ms", "1"],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            done = aura("chat", "--base-url", url, "served")
            assert (done.returncode, done.stdout) == (0, REPLY.format("served"))
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=HANG_GUARD) == 0


def test_serve_paced_as_a_model_server_is_a_known_truth() -> None:
    args = ["--ttft-ms", "300", "--itl-ms", "20", "--tokens", "12"]
    with subprocess.Popen(
        [sys.executable, "-m", "aura_anyio", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            measured = anyio.run(measure_paced, url)
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=HANG_GUARD) == 0
    (ttft, pieces, took), (capped_ttft, capped, _) = measured
    # Lower bounds only: a busy machine makes every figure longer, never shorter.
    assert ttft >= 0.29
    assert pieces == [f"t{index} " for index in range(12)]
    assert took >= 0.29 + 11 * 0.02 * 0.9
    assert capped_ttft >= 0.29
    assert capped == [f"t{index} " for index in range(5)]  # max_tokens caps the tokens


async def measure_paced(url: str) -> list[tuple[float, list[str], float]]:
    """TTFT, pieces and duration of one reply on each wire (the OpenAI one capped at 5)."""
    measured: list[tuple[float, list[str], float]] = []
    runs: list[tuple[WireName, int | None]] = [("aura", None), ("openai", 5)]
    for wire, max_tokens in runs:
        async with AuraClient(url, wire=wire) as client:
            started = anyio.current_time()
            async with client.stream([HI], max_tokens=max_tokens) as reply:
                pieces = [piece async for piece in reply]
            assert reply.ttft is not None
            measured.append((reply.ttft, pieces, anyio.current_time() - started))
    return measured


def test_serve_refuses_an_endless_pause() -> None:
    done = aura("serve", "--port", "0", "--ttft-ms", "inf")
    assert done.returncode == 2
    assert_one_clear_line(done.stderr)
    assert "--ttft-ms must be a finite number" in done.stderr


def test_serve_on_a_port_in_use_is_a_usage_error(server: ReferenceServer) -> None:
    done = aura("serve", "--port", str(server.port))
    assert done.returncode == 2
    assert_one_clear_line(done.stderr)


def test_the_demo_runs_offline() -> None:
    done = aura("demo")
    assert done.returncode == 0, done.stderr
    assert "1000 requests in" in done.stdout
    assert "0 failed, 20 retried" in done.stdout
    assert "latency p50" in done.stdout


def test_without_the_cli_extra_the_command_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "click", None)
    monkeypatch.delitem(sys.modules, "aura_anyio._cli.commands", raising=False)
    assert main(["chat", "hi"]) == 2
    assert "pip install 'aura_anyio[cli]'" in capsys.readouterr().err


# --- in this process -------------------------------------------------------------------------
# coverage.py's C tracer loses track of the lines a subprocess runs after a signal handler has
# run, so the signal paths are also run here, where it records them.


def interrupt_when(ready: typing.Callable[[], bool]) -> threading.Thread:
    """Send this process SIGINT from a thread once ``ready()`` (the handler is in place)."""

    def wait_then_interrupt() -> None:
        deadline = time.monotonic() + HANG_GUARD
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=wait_then_interrupt)
    thread.start()
    return thread


def test_an_interrupted_batch_in_process(
    slow_server: ReferenceServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"prompt": f"p{n}"}) + "\n" for n in range(300)))
    thread = interrupt_when(lambda: output.exists() and len(rows_so_far(output)) >= 5)
    args = ["batch", str(source), "-o", str(output), "--base-url", slow_server.base_url]
    assert main([*args, "--concurrency", "10"]) == 130
    thread.join()
    assert "interrupted: " in capsys.readouterr().err
    assert 5 <= len(rows(output)) < 300


def test_serve_in_process_stops_on_sigint(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a free port, for the server to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def listening() -> bool:
        with socket.socket() as client:
            return client.connect_ex(("127.0.0.1", port)) == 0

    thread = interrupt_when(listening)
    assert main(["serve", "--port", str(port)]) == 0
    thread.join()
    assert capsys.readouterr().out == f"http://127.0.0.1:{port}\n"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_its_prompt_back_on_a_new_line(
    server: ReferenceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["chat", "--base-url", server.base_url, "hi"]) == 0
    assert terminal.getvalue() == REPLY.format("hi") + "\n"
    terminal.truncate(0)
    terminal.seek(0)
    cut = Fault(close_after=10).marker()
    assert main(["chat", "--base-url", server.base_url, "--retries", "0", cut]) == 1
    assert terminal.getvalue().endswith("\n")


def test_ctrl_c_before_the_handler_is_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Stdin:
        def read(self) -> str:
            raise KeyboardInterrupt

    monkeypatch.setattr(sys, "stdin", Stdin())
    assert main(["chat", "-"]) == 130


def test_trio_missing_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "trio" else real(name)
    )
    assert main(["chat", "--backend", "trio", "hi"]) == 2
    assert "pip install 'aura_anyio[trio]'" in capsys.readouterr().err


def test_a_bad_base_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--base-url", "ftp://example.test", "hi"]) == 2
    assert_one_clear_line(capsys.readouterr().err)


def test_an_import_error_that_is_not_the_extra_is_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aura_anyio._cli.commands", None)
    with pytest.raises(ImportError):
        main(["chat", "hi"])


def test_a_reader_that_leaves_early_is_not_a_traceback(slow_server: ReferenceServer) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "aura_anyio", "chat", "--base-url", slow_server.base_url, "hi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None
        assert process.stdout.read(3)
        process.stdout.close()  # like `aura chat ... | head -c 3`
        assert process.wait(timeout=HANG_GUARD) == 1
        assert process.stderr is not None
        assert b"Traceback" not in process.stderr.read()


def test_a_progress_bar_on_a_terminal(server: ReferenceServer, tmp_path: Path) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"prompt": f"p{n}"}) + "\n" for n in range(20)))
    args = ["batch", str(source), "-o", str(output), "--base-url", server.base_url]
    shown = aura(*args, env={"FORCE_COLOR": "1"})  # rich then draws as on a terminal
    assert shown.returncode == 0
    assert "20/20" in shown.stderr
    assert "0 failed" in shown.stderr
    output.unlink()
    hidden = aura(*args, "--no-progress", env={"FORCE_COLOR": "1"})
    assert "20/20" not in hidden.stderr


def test_silenced_stdout_takes_no_more_output() -> None:
    code = "from aura_anyio._cli.commands import silence_stdout; silence_stdout(); print('lost')"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_GUARD
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_openai_wire_from_the_command_line(server: ReferenceServer, tmp_path: Path) -> None:
    done = aura(
        "chat", "--wire", "openai", "--base-url", server.base_url + "/v1", "--model", "m", "hey"
    )
    assert (done.returncode, done.stdout) == (0, REPLY.format("hey"))
    assert server.requests[-1].path == "/v1/chat/completions"
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"prompt": "one"}\n{"prompt": "two", "max_tokens": 2}\n')
    args = ["batch", str(source), "-o", str(output), "--base-url", server.base_url]
    batch = aura(*args, env={"AURA_WIRE": "openai"})
    assert batch.returncode == 0, batch.stderr
    assert {row["line"]: (row["text"], row["finish_reason"]) for row in rows(output)} == {
        1: (REPLY.format("one"), "stop"),
        2: ("Hello from ", "length"),
    }
    assert "2 ok, 0 failed, 0 retries, 1 cut short by max_tokens (finish_reason length)" in (
        batch.stderr
    )


@pytest.mark.parametrize(
    "option", [["--rps", "nan"], ["--request-timeout", "inf"], ["--tpm", "nan"], ["--tpm", "inf"]]
)
def test_bad_numbers_are_usage_errors_and_write_nothing(
    server: ReferenceServer, tmp_path: Path, option: list[str]
) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"prompt": "x"}\n')
    done = aura("batch", str(source), "-o", str(output), "--base-url", server.base_url, *option)
    assert done.returncode == 2
    assert_one_clear_line(done.stderr)
    assert option[0] in done.stderr
    assert not output.exists()


def test_a_terminal_that_cannot_show_every_character(server: ReferenceServer) -> None:
    done = aura("chat", "--base-url", server.base_url, "hi", env={"PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == REPLY.format("hi").encode("ascii", "replace").decode()


# --- the OpenAI wire: extra_body, max_tokens, and no silent truncation ----------------------

BAD_EXTRA_BODIES = [
    (["--wire", "openai", "--extra-body", "{seed: 1}"], "is not valid JSON"),
    (["--wire", "openai", "--extra-body", "[" * 100_000 + "]" * 100_000], "is not valid JSON"),
    (["--wire", "openai", "--extra-body", "[1, 2]"], "must be a JSON object"),
    (["--wire", "openai", "--extra-body", "null"], "must be a JSON object"),
    (["--extra-body", '{"seed": 1}'], "needs --wire openai"),  # aura, the default wire
    (["--wire", "aura", "--extra-body", "{}"], "needs --wire openai"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_EXTRA_BODIES)
@pytest.mark.parametrize("command", ["chat", "batch"])
def test_a_bad_extra_body_is_a_usage_error_that_names_the_option(
    server: ReferenceServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    args: list[str],
    needle: str,
) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"prompt": "x"}\n')
    where = ["chat", "hi"] if command == "chat" else ["batch", str(source), "-o", str(output)]
    before = len(server.requests)
    assert main([where[0], "--base-url", server.base_url, *args, *where[1:]]) == 2
    captured = capsys.readouterr()
    assert_one_clear_line(captured.err)
    assert "--extra-body" in captured.err
    assert needle in captured.err
    assert captured.out == ""
    assert len(server.requests) == before  # refused before any request
    assert not output.exists()


def test_chat_refuses_a_field_the_client_sets_itself(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(server.requests)
    args = ["chat", "--wire", "openai", "--base-url", server.base_url]
    assert main([*args, "--extra-body", '{"stream": false}', "hi"]) == 2
    err = capsys.readouterr().err
    assert_one_clear_line(err)
    assert "extra_body may not set 'stream'" in err
    assert len(server.requests) == before


def test_chat_on_the_openai_wire_sends_the_extra_body_and_max_tokens_only_if_given(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(server.requests)
    args = ["chat", "--wire", "openai", "--base-url", server.base_url]
    assert main([*args, "--extra-body", '{"seed": 3}', "hi"]) == 0
    assert capsys.readouterr().out == REPLY.format("hi")
    assert main([*args, "--max-tokens", "2", "capped"]) == 0
    assert capsys.readouterr().out == "Hello from "
    plain, capped = server.requests[before:]
    assert dict(plain.extra_body) == {"seed": 3}
    body = typing.cast("dict[str, object]", plain.json)
    assert body["seed"] == 3
    assert "max_tokens" not in body  # none asked: the server's own default applies
    assert plain.include_usage
    assert dict(capped.extra_body) == {}
    assert typing.cast("dict[str, object]", capped.json)["max_tokens"] == 2


def test_chat_on_the_aura_wire_keeps_its_token_limit_of_8192(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(server.requests)
    assert main(["chat", "--base-url", server.base_url, "hi"]) == 0
    assert capsys.readouterr().out == REPLY.format("hi")
    (request,) = server.requests[before:]
    assert request.token_limit == 8192
    model = typing.cast("dict[str, dict[str, object]]", request.json)["model"]
    assert model["tokenLimit"] == 8192


def test_a_batch_says_how_many_replies_max_tokens_cut_short(
    server: ReferenceServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [
        {"id": "a", "prompt": "cli one", "max_tokens": 2},
        {"id": "b", "prompt": "cli two"},
        {"id": "c", "prompt": "cli three", "max_tokens": 1, "extra_body": {"seed": 8}},
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    before = len(server.requests)
    args = ["batch", str(source), "-o", str(output), "--base-url", server.base_url]
    options = ["--wire", "openai", "--extra-body", '{"seed": 7, "top_p": 0.9}', "--no-progress"]
    assert main([*args, *options]) == 0  # a reply cut by max_tokens is whole: ok
    assert capsys.readouterr().err.startswith(
        "aura: 3 ok, 0 failed, 0 retries, 2 cut short by max_tokens (finish_reason length), "
    )
    found = {row["id"]: row for row in rows(output)}
    assert {key: (row["ok"], row["finish_reason"]) for key, row in found.items()} == {
        "a": (True, "length"),
        "b": (True, "stop"),
        "c": (True, "length"),
    }
    assert (found["a"]["text"], found["c"]["text"]) == ("Hello from ", "Hello ")
    sent = {
        request.kept_messages[-1]["content"]: dict(request.extra_body)
        for request in server.requests[before:]
    }
    assert sent == {
        "cli one": {"seed": 7, "top_p": 0.9},
        "cli two": {"seed": 7, "top_p": 0.9},
        "cli three": {"seed": 8, "top_p": 0.9},  # the line's own field wins
    }


def test_replies_interrupted_without_a_finish_reason_fail_and_resume_completes_them(
    tmp_path: Path,
) -> None:
    """The issue's acceptance test: llama.cpp's interrupt is a failed row, and --resume heals.

    Each marked prompt is cut (``data: [DONE]`` and no ``finish_reason``, nothing before it)
    on its first two requests: the first attempt and the one retry of the first run. The
    resumed run's request is the third, served as usual.
    """
    cut = Fault(interrupt_after=0, times=2)
    ids = [f"r{n}" for n in range(12)]
    marked = {"r2", "r5", "r9"}
    prompts = {i: f"{cut.marker()} {i}" if i in marked else i for i in ids}
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"id": i, "prompt": prompts[i]}) + "\n" for i in ids))
    with serving(ReferenceServer()) as server:
        args = ["batch", str(source), "-o", str(output), "--base-url", server.base_url]
        args += ["--wire", "openai", "--retries", "1", "--concurrency", "4", "--no-progress"]
        first = aura(*args)
        assert first.returncode == 1, first.stderr
        assert "Traceback" not in first.stderr
        assert "aura: 9 ok, 3 failed, 3 retries, " in first.stderr
        assert "aura: error: 3 of 12 requests failed" in first.stderr
        found = {row["id"]: row for row in rows(output)}
        assert sorted(found) == sorted(ids)
        for key in marked:
            row = found[key]
            assert (row["ok"], row["text"], row["attempts"]) == (False, "", 2)  # not an empty ok
            assert row["error"]["type"] == "APIConnectionError"
            assert "without a finish_reason" in row["error"]["message"]
            assert (row["finish_reason"], row["usage"]) == (None, None)
        for key in set(ids) - marked:
            row = found[key]
            assert (row["ok"], row["text"], row["finish_reason"]) == (
                True,
                REPLY.format(key),
                "stop",
            )
            usage = row["usage"]
            assert usage["completion_tokens"] > 0
            assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

        resumed = aura(*args, "--resume")  # each marked prompt's fault is used up by now
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stderr.startswith(
            "aura: 3 ok, 0 failed, 0 retries, 9 skipped (done before), "
        )
        assert resumed.stderr.count("\n") == 1
        faults = server.faults
    assert sum(fault == cut for fault in faults) == 2 * len(marked)
    final = rows(output)
    assert len(final) == len(ids) + len(marked)  # the failed rows stay, as a record
    ok = collections.Counter(row["id"] for row in final if row["ok"])
    assert ok == collections.Counter(ids)  # exactly one ok row per id
    for row in final[len(ids) :]:
        assert row["id"] in marked
        assert (row["text"], row["finish_reason"]) == (REPLY.format(prompts[row["id"]]), "stop")
        assert row["usage"]["completion_tokens"] > 0


def test_a_batch_cut_everywhere_by_a_server_fault_fails_and_resumes_on_a_healthy_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"id": n, "prompt": f"p{n}"}) + "\n" for n in range(4)))
    args = ["batch", str(source), "-o", str(output), "--wire", "openai", "--no-progress"]
    with serving(ReferenceServer(fault=Fault(interrupt_after=0))) as interrupting:
        assert main([*args, "--base-url", interrupting.base_url, "--retries", "0"]) == 1
    assert "0 ok, 4 failed" in capsys.readouterr().err
    for row in rows(output):  # failed, where the batch wrote empty ok rows
        assert (row["ok"], row["text"], row["finish_reason"]) == (False, "", None)
        assert row["error"]["type"] == "APIConnectionError"
    with serving(ReferenceServer()) as healthy:
        assert main([*args, "--base-url", healthy.base_url, "--resume"]) == 0
    assert capsys.readouterr().err.startswith("aura: 4 ok, 0 failed, 0 retries, 4 tokens in")
    ok = collections.Counter(row["id"] for row in rows(output) if row["ok"])
    assert ok == collections.Counter(range(4))


def test_a_batch_against_a_server_that_answers_empty_reports_those_rows_as_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # openchat-ui under load: some 200s with no body. Before, each was an "ok" row with no text.
    empty, once = Fault(empty_body=True), Fault(empty_body=True, times=1)
    prompts = {n: f"p{n}" for n in range(8)}
    prompts[2], prompts[5] = f"p2 {empty.marker()}", f"p5 {once.marker()}"
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(
        "".join(json.dumps({"id": n, "prompt": p}) + "\n" for n, p in prompts.items())
    )
    with serving(ReferenceServer()) as server:
        args = ["batch", str(source), "-o", str(output), "--base-url", server.base_url]
        assert main([*args, "--retries", "1", "--no-progress"]) == 1
    assert "7 ok, 1 failed, 2 retries" in capsys.readouterr().err
    found = {row["id"]: row for row in rows(output)}
    assert (found[2]["ok"], found[2]["text"], found[2]["attempts"]) == (False, "", 2)
    assert found[2]["error"]["type"] == "EmptyReplyError"
    assert found[2]["previous_error_types"] == ["EmptyReplyError"]
    assert found[2]["error"]["message"].endswith("(earlier attempts: empty reply)")
    assert (found[5]["ok"], found[5]["attempts"]) == (True, 2)  # retried, then whole
    assert found[5]["previous_error_types"] == ["EmptyReplyError"]
    assert found[5]["ttft"] > 0
    assert all(row["ok"] and row["text"] for key, row in found.items() if key != 2)


def test_a_batch_over_several_servers_names_the_server_of_each_row(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"prompt": "p{n}"}}\n' for n in range(40)), encoding="utf-8")
    with serving(ReferenceServer()) as first, serving(ReferenceServer()) as second:
        urls = [first.base_url, second.base_url]
        for n, (args, env) in enumerate(
            [
                (["--base-url", urls[0], "--base-url", urls[1]], None),
                ([], {"AURA_BASE_URL": f"{urls[0]}, {urls[1]}"}),
            ]
        ):
            output = tmp_path / f"out{n}.jsonl"
            done = aura(
                "batch", str(source), "-o", str(output), "--concurrency", "4", *args, env=env
            )
            assert done.returncode == 0, done.stderr
            written = rows(output)
            assert all(row["ok"] for row in written)
            assert sorted(row["text"] for row in written) == sorted(
                REPLY.format(f"p{n}") for n in range(40)
            )
            by_server = collections.Counter(row["endpoint"] for row in written)
            assert set(by_server) == set(urls)
            assert min(by_server.values()) >= 10  # both served a fair share
        assert len(first.requests) + len(second.requests) == 80
    chat = aura("chat", "--base-url", urls[0], "--base-url", urls[0], "hi")
    assert chat.returncode == 2
    assert "base_url[1] repeats base_url[0]" in chat.stderr
