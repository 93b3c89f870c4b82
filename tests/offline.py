"""The suite stays on this machine: name lookups of anything but loopback fail, and are noted.

Installed once per process by ``tests/conftest.py`` as an interpreter audit hook, so it sees
every lookup made through Python's ``socket.getaddrinfo`` (asyncio's, Trio's, requests' and
aiohttp's among them) on every thread, from the first import on. A refused lookup fails as it
would on a machine with no network (``socket.gaierror``). Tests of code that may reach for
the internet on its own (gpt4free checks PyPI for a newer version of itself) assert that
:attr:`DnsGuard.refused` did not grow.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["GUARD", "DnsGuard"]

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _is_local(host: str) -> bool:
    if host.lower().rstrip(".") in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a name: resolving it would ask a DNS server
    return address.is_loopback or address.is_unspecified


class DnsGuard:
    """An audit hook that refuses name lookups beyond loopback, and notes each one."""

    def __init__(self) -> None:
        self.installed = False
        self.refused: list[str] = []

    def audit(self, event: str, args: tuple[object, ...]) -> None:
        if event != "socket.getaddrinfo":
            return
        host = args[0]
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if not isinstance(host, str) or not host or _is_local(host):
            return
        self.refused.append(host)
        raise socket.gaierror(
            socket.EAI_NONAME, f"the tests stay offline: no lookup of {host!r} (tests/offline.py)"
        )


#: The one guard of this process.
GUARD = DnsGuard()
