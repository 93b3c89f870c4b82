"""Client CPU per server-sent event on the OpenAI wire, for replies of 500 events.

A fast asyncio server in its own process answers ``POST /v1/chat/completions`` (and
``/chat/completions``) with the reply the last message asks for: ``events N PER GAP`` is a
``text/event-stream`` of realistic ``chat.completion.chunk`` events, namely an opening role
event, N content events (short pieces like tokens, multi-byte UTF-8 and JSON escapes
among them), a closing event with ``"finish_reason":"stop"``, a usage event
(``"choices":[]``) and ``data: [DONE]``. Each event is an HTTP chunk of its own; PER of them go
in one write, GAP microseconds apart (0: the whole reply in one write). The server reads
nothing else of the request, so fields it does not know (``stream_options``...) are ignored.

- **Paced**: the events arrive a few at a time, as a model sends tokens.
- **Burst**: the whole reply arrives at once, as fast as the server can send it.

The figure is the client process's CPU time for a whole reply on a warm connection, divided by
its N content events; the median of interleaved rounds, reported as a ratio against
openai-python measured in the same run. Every client checks the exact text of every reply,
its finish reason and its completion-token count.

    nox -s bench -- events --rounds 3
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    # one(events, per_write, gap_us) streams one reply: (text, finish reason, completion tokens)
    Reply = tuple[str, str | None, int | None]
    One = Callable[[int, int, int], Awaitable[Reply]]

MODEL = "gpt-4o-mini"
# Token-sized pieces, cycled to make a reply: accents, CJK, emoji (four UTF-8 bytes), and a
# quote and newlines that JSON escapes.
TOKENS = [
    "Struct", "ured", " concurrency", " keeps", " every", " task", " inside", " a", " scope",
    ",", " na", "ïve", " café", " déjà", " vu", ":", " 日本", "語", "の", "テキスト", " 😀",
    "👋", " \"", "await", "\"", " ≈", " 4", "2", "%", ".", "\n\n", "-", " Ω",
]  # fmt: skip
PROMPT_TOKENS = 12
_BASE = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion.chunk",
    "created": 1741569952,
    "model": "gpt-4o-mini-2024-07-18",
    "service_tier": "default",
    "system_fingerprint": "fp_06737a9306",
}


def pieces(events: int) -> list[str]:
    """The text of each content event of a reply of ``events`` content events."""
    return list(itertools.islice(itertools.cycle(TOKENS), events))


@functools.cache
def expected(events: int) -> str:
    return "".join(pieces(events))


def _event(choices: list[dict[str, object]], usage: dict[str, object] | None = None) -> bytes:
    chunk = {**_BASE, "choices": choices, "usage": usage}
    data = json.dumps(chunk, ensure_ascii=False, separators=(",", ":"))
    return b"data: " + data.encode() + b"\n\n"


def _choice(delta: dict[str, object], finish_reason: str | None = None) -> dict[str, object]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def reply_events(events: int) -> list[bytes]:
    """Every event of a reply, as the server writes it (before HTTP chunk framing)."""
    usage = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": events,
        "total_tokens": PROMPT_TOKENS + events,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    return [
        _event([_choice({"role": "assistant", "content": "", "refusal": None})]),
        *(_event([_choice({"content": piece})]) for piece in pieces(events)),
        _event([_choice({}, "stop")]),
        _event([], usage),
        b"data: [DONE]\n\n",
    ]


def framed_events(events: int) -> list[bytes]:
    """The reply's events, each framed as an HTTP chunk of its own."""
    return [b"%x\r\n%s\r\n" % (len(event), event) for event in reply_events(events)]


SERVER = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from events import framed_events

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
PATHS = (b"/v1/chat/completions", b"/chat/completions")
replies = {}

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            if method != b"POST" or target not in PATHS:
                writer.write(NOT_FOUND)
                continue
            # Only the last message is read: any other field of the request is ignored.
            words = json.loads(body)["messages"][-1]["content"].split()
            events, per_write, gap = map(int, words[1:4])
            if events not in replies:
                replies[events] = framed_events(events)
            framed = replies[events]
            writer.write(HEAD)
            if gap == 0:
                writer.write(b"".join(framed))
            else:
                for start in range(0, len(framed), per_write):
                    writer.write(b"".join(framed[start : start + per_write]))
                    await writer.drain()
                    await asyncio.sleep(gap / 1e6)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


def prompt(events: int, per_write: int, gap_us: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"events {events} {per_write} {gap_us}"}]


# Each session runs ``job(one)`` with a client of its own (one warm connection).


async def _aura(port: int, job: Callable[[One], Awaitable[None]]) -> None:
    from aura_anyio import AuraClient

    async with AuraClient(f"http://127.0.0.1:{port}", wire="openai") as client:

        async def one(events: int, per_write: int, gap_us: int) -> Reply:
            parts = []
            async with client.stream(prompt(events, per_write, gap_us), model=MODEL) as reply:
                async for text in reply:
                    parts.append(text)
            usage = reply.usage or {}
            return "".join(parts), reply.finish_reason, usage.get("completion_tokens")

        await job(one)


async def _openai(port: int, job: Callable[[One], Awaitable[None]]) -> None:
    import openai

    async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none") as client:

        async def one(events: int, per_write: int, gap_us: int) -> Reply:
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=prompt(events, per_write, gap_us),
                stream=True,
                stream_options={"include_usage": True},
            )
            parts = []
            finish_reason = tokens = None
            async for chunk in stream:
                if chunk.choices:
                    choice = chunk.choices[0]
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
                if chunk.usage:
                    tokens = chunk.usage.completion_tokens
            return "".join(parts), finish_reason, tokens

        await job(one)


async def _by_hand(port: int, job: Callable[[One], Awaitable[None]]) -> None:
    """A keep-alive client on AnyIO streams, with the least work that reads the events."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        buffer = bytearray()

        async def more() -> None:
            buffer.extend(await stream.receive())

        async def one(events: int, per_write: int, gap_us: int) -> Reply:
            body = json.dumps(
                {"model": MODEL, "messages": prompt(events, per_write, gap_us), "stream": True}
            ).encode()
            await stream.send(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                b"content-type: application/json\r\naccept: text/event-stream\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            parts = []
            finish_reason = tokens = None
            sse = bytearray()  # the body's bytes not yet split into events
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                await more()
            del buffer[: end + 4]
            while True:
                while (end := buffer.find(b"\r\n")) < 0:
                    await more()
                size = int(buffer[:end], 16)
                while len(buffer) < end + 2 + size + 2:
                    await more()
                sse += buffer[end + 2 : end + 2 + size]
                del buffer[: end + 2 + size + 2]
                if not size:
                    break
                # An event ends at a blank line; "\n" never occurs inside a UTF-8 character.
                while (end := sse.find(b"\n\n")) >= 0:
                    data = sse[6:end]  # after "data: "
                    del sse[: end + 2]
                    if data == b"[DONE]":
                        continue
                    chunk = json.loads(data)
                    if chunk["choices"]:
                        choice = chunk["choices"][0]
                        if content := choice["delta"].get("content"):
                            parts.append(content)
                        finish_reason = choice["finish_reason"] or finish_reason
                    if chunk["usage"]:
                        tokens = chunk["usage"]["completion_tokens"]
            return "".join(parts), finish_reason, tokens

        await job(one)


# (label, session, backend, backend options)
CLIENTS: list[tuple[str, Callable[..., Awaitable[None]], str, dict[str, object]]] = [
    ("aura_anyio (asyncio)", _aura, "asyncio", {}),
    ("aura_anyio (uvloop)", _aura, "asyncio", {"use_uvloop": True}),
    ("aura_anyio (trio)", _aura, "trio", {}),
    ("openai-python (asyncio)", _openai, "asyncio", {}),
    ("by hand on anyio (asyncio)", _by_hand, "asyncio", {}),
    ("by hand on anyio (trio)", _by_hand, "trio", {}),
]
BASELINE = "openai-python (asyncio)"


def _check(reply: Reply, events: int) -> None:
    text, finish_reason, tokens = reply
    if text != expected(events):
        raise AssertionError(f"wrong reply: {text[:60]!r}")
    if (finish_reason, tokens) != ("stop", events):
        raise AssertionError(f"wrong end of reply: {finish_reason!r}, {tokens!r} tokens")


def cpu_per_event(
    session: Callable[..., Awaitable[None]],
    backend: str,
    options: dict[str, object],
    port: int,
    *,
    events: int,
    replies: int,
    per_write: int,
    gap_us: int,
) -> float:
    """Client CPU seconds per content event, over ``replies`` sequential replies."""
    cost: list[float] = []

    async def job(one: One) -> None:
        _check(await one(events, per_write, 0), events)  # warm the connection
        started = time.process_time()
        for _ in range(replies):
            _check(await one(events, per_write, gap_us), events)
        cost.append((time.process_time() - started) / (replies * events))

    anyio.run(session, port, job, backend=backend, backend_options=options)
    return cost[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500, help="content events per reply")
    parser.add_argument("--replies", type=int, default=8, help="replies per measurement")
    parser.add_argument("--per-write", type=int, default=3, help="events per paced write")
    parser.add_argument("--gap-us", type=int, default=1000, help="between paced writes")
    parser.add_argument("--burst-replies", type=int, default=40, help="replies per burst figure")
    parser.add_argument(
        "--modes", default="paced,burst", help="paced, burst or both (comma-separated)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    modes = [mode for mode in ("paced", "burst") if mode in args.modes.split(",")]
    if not modes:
        parser.error("--modes must name paced, burst or both")

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, sys.path[0]], stdout=subprocess.PIPE, text=True
    )
    figures: dict[tuple[str, str], list[float]] = {}
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        for _ in range(args.rounds):
            for label, session, backend, options in CLIENTS:
                for mode in modes:
                    paced = mode == "paced"
                    cost = cpu_per_event(
                        session,
                        backend,
                        options,
                        port,
                        events=args.events,
                        replies=args.replies if paced else args.burst_replies,
                        per_write=args.per_write,
                        gap_us=args.gap_us if paced else 0,
                    )
                    figures.setdefault((label, mode), []).append(cost)
    finally:
        server.terminate()
        server.wait()

    def median(label: str, mode: str) -> float:
        return statistics.median(figures[label, mode])

    described = {
        "paced": f"{args.per_write} events per write, {args.gap_us} µs apart, "
        f"{args.replies} replies per figure",
        "burst": f"the whole reply in one write, {args.burst_replies} replies per figure",
    }
    print(
        f"## CPU per server-sent event, OpenAI wire (replies of {args.events} content events, "
        f"median of {args.rounds} interleaved rounds)\n\n"
        + "".join(f"{mode.capitalize()}: {described[mode]}. " for mode in modes)
        + f"Ratios are to {BASELINE}.\n"
    )
    header = "".join(f" {mode}, CPU per event (µs) | ratio |" for mode in modes)
    print(f"| client |{header}")
    print("|---|" + "---|---|" * len(modes))
    for label, *_ in CLIENTS:
        cells = ""
        for mode in modes:
            cost = median(label, mode)
            cells += f" {cost * 1e6:.1f} | {cost / median(BASELINE, mode):.2f} |"
        print(f"| {label} |{cells}")


if __name__ == "__main__":
    main()
