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
from aura_anyio._cli.batch import BatchStats, run_batch, until_signalled
from aura_anyio._cli.commands import Failed, Interrupted, finish_batch, main
from aura_anyio.testing import ReferenceServer

if typing.TYPE_CHECKING:
    from pathlib import Path


def rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


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
    assert capsys.readouterr().err == "aura: 3 done, 0 failed, 0 retries\n"
    with pytest.raises(Failed, match="1 of 3 requests failed"):
        finish_batch(BatchStats(total=3, done=3, failed=1, skipped=2), output, None)
    assert "2 skipped (done before)" in capsys.readouterr().err
    finish_batch(BatchStats(total=9, done=4, failed=1), output, Interrupted())
    err = capsys.readouterr().err
    assert err.startswith("aura: interrupted: 4 done, 1 failed")
    assert "--resume finishes it" in err
    finish_batch(BatchStats(), output, Failed("bad URL"))  # the error speaks for itself
    assert capsys.readouterr().err == ""


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
