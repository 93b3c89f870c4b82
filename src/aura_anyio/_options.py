"""Checking the client's connection options: URLs, headers and cookies; pure, no I/O.

Headers and cookies are secrets as often as not (cookies, ``Authorization``), so no error
raised here repeats a value: it names the field and what is wrong with it.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from urllib.parse import SplitResult, urlsplit, urlunsplit

from ._exceptions import InvalidRequestError
from ._http11 import TOKEN

if typing.TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "PROXY_SCHEMES",
    "build_headers",
    "check_base_url",
    "check_base_urls",
    "check_proxy",
    "environment_proxy",
    "redact_url",
]

PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
# RFC 9110 section 5.6.2 (token) and 5.5 (field values: visible ASCII, space and tab).
_TOKEN = re.compile(TOKEN)
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")
# Headers that say where a request goes and how its bytes are framed: the transport's own.
_FRAMING = frozenset(
    (
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "upgrade",
        "trailer",
        "expect",
    )
)
# RFC 6265 section 4.1.1: cookie-octet, optionally in double quotes.
_COOKIE_VALUE = re.compile(
    r'[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*|"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"'
)


def redact_url(url: str) -> str:
    """Return ``url`` with any user name and password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        has_credentials = parts.username is not None or parts.password is not None
        port = parts.port
    except ValueError:
        return "<malformed URL>"
    if not has_credentials:
        return url
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal regains its brackets
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _split(field: str, url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsing the port is what can fail)
    except ValueError as exc:
        raise InvalidRequestError(f"{field} is not a valid URL ({exc})") from None
    return parts


def check_base_url(base_url: object, field: str = "base_url") -> str:
    """Return ``base_url`` without a trailing slash, or raise if it is not a usable URL."""
    if not isinstance(base_url, str):
        raise InvalidRequestError(f"{field} must be a str, got {type(base_url).__name__}")
    if any(char.isspace() or not char.isprintable() for char in base_url):
        raise InvalidRequestError(
            f"{field} must not contain spaces or control characters, got {redact_url(base_url)!r}"
        )
    parts = _split(field, base_url)
    if parts.port == 0:
        raise InvalidRequestError(f"{field}'s port must be from 1 to 65535, got 0")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(
            f"{field} must be an http:// or https:// URL with a host, got {redact_url(base_url)!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidRequestError(
            f"{field} must not carry credentials; pass the key with key= instead"
        )
    if parts.query or parts.fragment:
        raise InvalidRequestError(
            f"{field} must not have a query or fragment, got {redact_url(base_url)!r}"
        )
    return base_url.rstrip("/")


def check_base_urls(base_url: object) -> tuple[str, ...]:
    """Return the servers' root URLs: ``base_url`` itself, or each of a sequence of them.

    Each is checked as by :func:`check_base_url`; a sequence must hold at least one, and
    none twice.
    """
    if isinstance(base_url, str):
        return (check_base_url(base_url),)
    if not isinstance(base_url, (list, tuple)):
        raise InvalidRequestError(
            f"base_url must be a str or a list of them, got {type(base_url).__name__}"
        )
    given = typing.cast("Sequence[object]", base_url)
    urls = tuple(check_base_url(url, f"base_url[{index}]") for index, url in enumerate(given))
    if not urls:
        raise InvalidRequestError("base_url is an empty list; give at least one URL")
    seen: dict[str, int] = {}
    for index, url in enumerate(urls):
        if url in seen:
            raise InvalidRequestError(
                f"base_url[{index}] repeats base_url[{seen[url]}] ({redact_url(url)!r}); "
                "give each server once"
            )
        seen[url] = index
    return urls


def check_proxy(proxy: object, *, field: str = "proxy") -> str | None:
    """Return ``proxy``, or raise if it is neither ``None`` nor a proxy URL.

    Args:
        field: What the error calls the value (where it came from).
    """
    if proxy is None:
        return None
    if not isinstance(proxy, str):
        raise InvalidRequestError(f"{field} must be a URL str or None, got {type(proxy).__name__}")
    parts = _split(field, proxy)
    if parts.scheme not in PROXY_SCHEMES or not parts.hostname:
        raise InvalidRequestError(
            f"{field} must be a URL with scheme {', '.join(PROXY_SCHEMES)} and a host, "
            f"got {redact_url(proxy)!r}"
        )
    return proxy


def environment_proxy(url: str, environ: Mapping[str, str]) -> str | None:
    """Return the proxy that ``environ`` names for ``url``, as curl and httpx read it.

    ``{scheme}_proxy``, else ``all_proxy`` (lower-case names first, then upper-case); none
    when ``no_proxy`` lists the URL's host, a domain it belongs to, or ``*``. A proxy given
    without a scheme is an ``http://`` one.
    """

    def variable(name: str) -> str:
        return (environ.get(name) or environ.get(name.upper()) or "").strip()

    parts = urlsplit(url)
    proxy = variable(f"{parts.scheme}_proxy") or variable("all_proxy")
    if not proxy:
        return None
    host = (parts.hostname or "").lower()
    for entry in variable("no_proxy").split(","):
        name = entry.strip().lower().lstrip(".")
        if name.startswith("["):  # an IPv6 literal, with or without a port
            name = name[1:].partition("]")[0]
        elif name.count(":") == 1:  # a host and a port
            name = name.partition(":")[0]
        if name == "*" or (name and (host == name or host.endswith(f".{name}"))):
            return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _str_items(field: str, value: object) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise InvalidRequestError(
            f"{field} must be a mapping of str to str or None, got {type(value).__name__}"
        )
    items: list[tuple[str, str]] = []
    for name, item in typing.cast("Mapping[object, object]", value).items():
        if not isinstance(name, str) or not isinstance(item, str):
            raise InvalidRequestError(f"{field} must map str to str; the entry {name!r} does not")
        if not _TOKEN.fullmatch(name):
            raise InvalidRequestError(f"{field} has an invalid name {name!r}")
        items.append((name, item))
    return items


def build_headers(
    defaults: Mapping[str, str], headers: object = None, cookies: object = None
) -> dict[str, str]:
    """Merge request headers case-insensitively; ``cookies`` join any ``Cookie`` header.

    Returns:
        The headers under lower-case names: ``defaults``, then ``headers`` over them.

    Raises:
        InvalidRequestError: A name or value cannot travel in an HTTP/1.1 header (the error
            names the entry, never its value).
    """
    merged = {name.lower(): value for name, value in defaults.items()}
    for name, value in _str_items("headers", headers):
        if name.lower() in _FRAMING:
            raise InvalidRequestError(
                f"headers[{name!r}] is set by the client itself; it cannot be overridden"
            )
        if not _FIELD_VALUE.fullmatch(value):
            raise InvalidRequestError(
                f"headers[{name!r}] must be printable ASCII without line breaks"
            )
        merged[name.lower()] = value
    pairs = [merged["cookie"]] if merged.get("cookie") else []
    for name, value in _str_items("cookies", cookies):
        if not _COOKIE_VALUE.fullmatch(value):
            raise InvalidRequestError(
                f"cookies[{name!r}] has characters a cookie value cannot carry "
                "(RFC 6265: no spaces, quotes inside, commas, semicolons or backslashes)"
            )
        pairs.append(f"{name}={value}")
    if pairs:
        merged["cookie"] = "; ".join(pairs)
    return merged
