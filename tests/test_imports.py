"""What importing and using aura_anyio loads: httpx and httpcore only with the httpx adapter.

Each check runs in a fresh interpreter (``sys.executable -c``), since this process has long
imported everything.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

BACKENDS = [
    pytest.param("asyncio", {}, id="asyncio"),
    pytest.param(
        "asyncio",
        {"use_uvloop": True},
        id="uvloop",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"
        ),
    ),
    pytest.param("trio", {}, id="trio"),
]


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter, without proxies from the environment; its stdout."""
    env = {name: value for name, value in os.environ.items() if "proxy" not in name.lower()}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(("backend", "options"), BACKENDS)
def test_a_request_on_the_default_transport_loads_neither_httpx_nor_httpcore(
    backend: str, options: dict[str, object]
) -> None:
    out = run_python(
        f"""
        import sys

        import anyio

        import aura_anyio
        from aura_anyio import AuraClient
        from aura_anyio.testing import ReferenceServer, default_reply

        async def main():
            async with ReferenceServer() as server:
                async with AuraClient(server.base_url) as client:
                    text = await client.complete([{{"role": "user", "content": "hi"}}])
                    assert text == default_reply(server.requests[-1]), text
                    async with client.stream([{{"role": "user", "content": "more"}}]) as reply:
                        assert "".join([piece async for piece in reply]) == default_reply(
                            server.requests[-1]
                        )
            return text

        text = anyio.run(main, backend={backend!r}, backend_options={options!r})
        assert text
        loaded = sorted(
            name for name in ("httpx", "httpcore", "aura_anyio._transports.httpx")
            if name in sys.modules
        )
        print("loaded:", loaded)
        """
    )
    assert out == "loaded: []\n"


def test_importing_aura_anyio_loads_no_http_library_and_no_trio() -> None:
    out = run_python(
        """
        import sys

        import aura_anyio
        import aura_anyio.testing

        print(sorted(
            name for name in ("httpx", "httpcore", "trio", "aura_anyio._transports.httpx")
            if name in sys.modules
        ))
        """
    )
    assert out == "[]\n"


def test_a_request_on_asyncio_does_not_load_trio() -> None:
    out = run_python(
        """
        import sys

        import anyio

        from aura_anyio import AuraClient
        from aura_anyio.testing import ReferenceServer

        async def main():
            async with ReferenceServer() as server, AuraClient(server.base_url) as client:
                return await client.complete([{"role": "user", "content": "hi"}])

        assert anyio.run(main, backend="asyncio")
        print("trio" in sys.modules)
        """
    )
    assert out == "False\n"


@pytest.mark.parametrize(("backend", "options"), BACKENDS)
def test_a_lent_httpx_client_loads_the_adapter_and_works(
    backend: str, options: dict[str, object]
) -> None:
    out = run_python(
        f"""
        import sys

        import anyio

        from aura_anyio import AuraClient
        from aura_anyio.testing import ReferenceServer, default_reply

        assert "aura_anyio._transports.httpx" not in sys.modules

        async def main():
            import httpx

            async with ReferenceServer() as server:
                async with httpx.AsyncClient(trust_env=False) as http:
                    async with AuraClient(server.base_url, http_client=http) as client:
                        assert "aura_anyio._transports.httpx" in sys.modules
                        text = await client.complete([{{"role": "user", "content": "hi"}}])
                        assert text == default_reply(server.requests[-1]), text
                    assert not http.is_closed  # lent, never closed

        anyio.run(main, backend={backend!r}, backend_options={options!r})
        print("ok")
        """
    )
    assert out == "ok\n"


def test_a_socks_proxy_loads_the_adapter() -> None:
    out = run_python(
        """
        import sys

        from aura_anyio import AuraClient

        AuraClient("http://127.0.0.1:9")
        before = sorted(name for name in ("httpx", "httpcore") if name in sys.modules)
        client = AuraClient("http://127.0.0.1:9", proxy="socks5://user:pw@127.0.0.1:1080")
        after = sorted(name for name in ("httpx", "httpcore") if name in sys.modules)
        assert "pw" not in repr(client)
        print(before, after, "aura_anyio._transports.httpx" in sys.modules)
        """
    )
    assert out == "[] ['httpcore', 'httpx'] True\n"


def test_an_http_proxy_stays_on_the_default_transport() -> None:
    """HTTP proxies are spoken by the AnyIO transport itself (CONNECT): no httpx."""
    out = run_python(
        """
        import sys

        from aura_anyio import AuraClient

        AuraClient("https://example.test", proxy="http://user:pw@127.0.0.1:3128")
        AuraClient("https://example.test", proxy="https://127.0.0.1:3129")
        print(sorted(name for name in ("httpx", "httpcore") if name in sys.modules))
        """
    )
    assert out == "[]\n"
