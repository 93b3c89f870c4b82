"""Which transport a client gets: the one place that reads ``proxy=``, ``http_client=`` and the
environment's proxy settings.

A borrowed ``httpx.AsyncClient`` brings its own transport; a SOCKS proxy needs httpx (the
``socks`` extra); everything else goes through the default transport, directly or through
an HTTP proxy, given or named by the environment (as curl and httpx read it).
"""

from __future__ import annotations

import os
import typing
from urllib.parse import urlsplit

from .._exceptions import InvalidRequestError
from .._options import check_proxy, environment_proxy, redact_url
from .default import AnyIOTransport

if typing.TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence

    import httpx

    from .base import Transport

__all__ = ["check_lent", "choose_transport"]


def check_lent(
    transport: object, http_client: object, *, proxy: str | None, verify: object
) -> None:
    """Check that a lent ``transport`` or ``http_client`` comes alone: it has its own proxy
    and TLS settings.

    Raises:
        InvalidRequestError: Both were lent, or one with ``proxy`` or ``verify``.
    """
    if transport is not None and http_client is not None:
        raise InvalidRequestError("pass transport or http_client, not both")
    if transport is None and http_client is None:
        return
    lent = "transport" if transport is not None else "http_client"
    for name, value, default in (("proxy", proxy, None), ("verify", verify, True)):
        if value is not default:
            raise InvalidRequestError(
                f"{name} cannot be combined with {lent}; configure it on the {lent} you pass in"
            )


def choose_transport(
    urls: Sequence[str],
    *,
    proxy: str | None,
    verify: bool | ssl.SSLContext,
    max_idle: int,
    http_client: httpx.AsyncClient | None,
) -> Transport:
    """The transport for requests to ``urls`` (the full URLs the client posts to).

    Raises:
        InvalidRequestError: The environment sends some of ``urls`` through a proxy and not
            others, names an invalid proxy, or a SOCKS proxy needs the missing extra.
    """
    if http_client is not None:
        from .httpx import HttpxTransport

        return HttpxTransport(http_client, owned=False)
    if proxy is None:
        proxy = _environment_proxy(urls)
    if proxy is not None and urlsplit(proxy).scheme not in ("http", "https"):
        from .httpx import socks_transport

        try:
            return socks_transport(proxy, verify=verify, max_idle=max_idle)
        except ImportError as exc:  # socksio
            raise InvalidRequestError(
                f"proxy {redact_url(proxy)!r} needs the socks extra: "
                f"pip install 'aura_anyio[socks]' ({exc})"
            ) from None
    return AnyIOTransport(verify=verify, max_idle=max_idle, proxy=proxy)


def _environment_proxy(urls: Sequence[str]) -> str | None:
    """The proxy the environment names for ``urls``: one transport serves them all."""
    proxies = {environment_proxy(url, os.environ) for url in urls}
    if len(proxies) > 1:
        raise InvalidRequestError(
            "base_url: the environment's proxy settings (HTTP_PROXY, HTTPS_PROXY, "
            "ALL_PROXY, NO_PROXY) send some of its URLs through a proxy and not others; "
            "one client uses one way for all: set the variables to agree, or pass proxy="
        )
    return check_proxy(
        proxies.pop(),
        field="the proxy from the environment (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY)",
    )
