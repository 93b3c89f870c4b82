"""Start the reference server in-process and stream a reply from it, on asyncio and on Trio.

Runs offline: the server is aura_anyio.testing.ReferenceServer on a free loopback port.
"""

from __future__ import annotations

from contextlib import aclosing

import anyio

from aura_anyio import Aura, AuraClient
from aura_anyio.testing import ReferenceServer

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


if __name__ == "__main__":
    for backend in ("asyncio", "trio"):
        try:
            anyio.run(main, backend, backend=backend)
        except ModuleNotFoundError as exc:  # trio is the optional extra
            print(f"--- {backend}: skipped ({exc}); pip install 'aura_anyio[trio]'")
