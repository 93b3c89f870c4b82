"""Start the reference server in-process and stream a reply from it, on asyncio and on Trio.

Runs offline: the server is aura_anyio.testing.ReferenceServer on a free loopback port. The
last part makes the server misbehave on purpose (aura_anyio.testing.Fault) to show what the
client does about it.
"""

from __future__ import annotations

from contextlib import aclosing

import anyio

from aura_anyio import Aura, AuraClient, IncompleteStreamError, RetryPolicy, Timeouts
from aura_anyio.testing import Fault, ReferenceServer

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Say hello in three languages: こんにちは, привет, 👋"},
]


async def main(backend: str) -> None:
    async with ReferenceServer(delay=0.02) as server, AuraClient(server.base_url) as client:
        print(f"--- {backend}: AuraClient.stream() from {server.base_url}")
        async with client.stream(MESSAGES) as reply:
            async for text in reply:
                print(text, end="", flush=True)
        print(f"\n({len(reply.text)} characters, attempts: {reply.attempts})")

        print(f"--- {backend}: the gpt4free-compatible Aura provider")
        # aclosing() closes the generator, and so the response, even on an early break.
        async with aclosing(Aura.create_async_generator("", MESSAGES, client=client)) as pieces:
            async for text in pieces:
                print(text, end="", flush=True)
        print()

    print(f"--- {backend}: surviving a faulty server")
    patient = RetryPolicy(max_retries=2, initial_delay=0.05)
    async with (
        ReferenceServer() as server,
        AuraClient(server.base_url, max_retries=patient, timeout=Timeouts(read=0.5)) as client,
    ):
        busy = Fault(status=503, reason="Upstream busy", times=1)
        async with client.stream([{"role": "user", "content": f"hi {busy.marker()}"}]) as reply:
            async for _ in reply:
                pass
        print(f"a 503, then the reply: attempts {reply.attempts}, {len(reply.text)} characters")
        stalled = Fault(stall_after=20)
        try:
            await client.complete([{"role": "user", "content": f"hi {stalled.marker()}"}])
        except IncompleteStreamError as error:
            print(f"a reply that stalls: {type(error).__name__}, kept {error.partial_text!r}")


if __name__ == "__main__":
    for backend in ("asyncio", "trio"):
        try:
            anyio.run(main, backend, backend=backend)
        except ModuleNotFoundError as exc:  # trio is the optional extra
            print(f"--- {backend}: skipped ({exc}); pip install 'aura_anyio[trio]'")
