"""Where each test runs (DESIGN section 7), and the fixtures shared by the test modules.

An async test runs where its code differs, and only there:

- unmarked, over ``MockTransport`` or memory streams: asyncio and trio (the code is the same on
  every asyncio loop);
- ``@pytest.mark.network``, over real loopback sockets: asyncio, asyncio+uvloop and trio (each
  has a transport of its own);
- ``@pytest.mark.debug``, a guard of cancellation, leaks, the transports or the streams: asyncio
  in debug mode as well, which reports coroutines never awaited, slow callbacks and calls from
  the wrong thread, as AnyIO's own suite runs it;
- ``@pytest.mark.loops("asyncio")`` (or ``"trio"``): code written for one event loop, run on
  that loop's backends alone.

Sync tests run once. ``--backends=asyncio,trio`` narrows any of these to the backends named
(``nox -s quick``). ``subprocess`` and ``ray`` mark the tests that start processes or the Ray
local cluster: the Ray tests run first, together on one xdist worker (loadgroup), with one
cluster. A socket opened by an async test that is not marked ``network`` fails the test, so
that the marker cannot fall out of step with the code (see ``_SocketWatch``). No test looks up
a name beyond loopback (``tests/offline.py``).
"""

from __future__ import annotations

import importlib.util
import os
import ssl
import sys
import typing

import pytest
import trustme

from . import offline

if typing.TYPE_CHECKING:
    from collections.abc import Iterator

    from aura_anyio._wire import WireName

Backend = tuple[str, dict[str, object]]

#: Every backend, by its test id; uvloop and trio only when installed.
BACKENDS: dict[str, Backend] = {
    "asyncio": ("asyncio", {}),
    "asyncio-debug": ("asyncio", {"debug": True}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}
_INSTALLED = {
    "uvloop": importlib.util.find_spec("uvloop") is not None,
    "trio": importlib.util.find_spec("trio") is not None,
}

_CHOSEN = pytest.StashKey[set[str]]()
_WATCH = pytest.StashKey["_SocketWatch"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends",
        default=",".join(BACKENDS),
        help="run async tests only on these backends (comma-separated: "
        f"{', '.join(BACKENDS)}), within what each test's markers allow",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "network: the test uses real loopback sockets: it runs on asyncio, uvloop and trio",
        "debug: the test guards cancellation, leaks, a transport or a stream: it runs on "
        "asyncio in debug mode too",
        "loops(*names): the code under test is one event loop's own: only those loops' backends",
        "ray: the test starts or uses the Ray local cluster (one worker runs them all, first)",
        "subprocess: the test runs the aura command or an example in a process of its own",
    ):
        config.addinivalue_line("markers", line)
    chosen = {name.strip() for name in config.getoption("--backends").split(",") if name.strip()}
    if unknown := chosen - BACKENDS.keys():
        raise pytest.UsageError(f"--backends: unknown {sorted(unknown)}; known: {list(BACKENDS)}")
    config.stash[_CHOSEN] = chosen
    config.stash[_WATCH] = watch = _SocketWatch()
    sys.addaudithook(watch.audit)
    if not offline.GUARD.installed:  # pytester's inner runs configure again
        offline.GUARD.installed = True
        sys.addaudithook(offline.GUARD.audit)


def backends_for(metafunc: pytest.Metafunc) -> list[str]:
    """The ids of the backends an async test runs on, from its markers."""
    marked = metafunc.definition.get_closest_marker
    names = ["asyncio", "trio"]
    if marked("network") is not None:
        names.insert(1, "uvloop")
    if marked("debug") is not None:
        names.insert(1, "asyncio-debug")
    if (loops := marked("loops")) is not None:
        names = [name for name in names if BACKENDS[name][0] in loops.args]
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "anyio_backend" not in metafunc.fixturenames:
        return
    chosen = metafunc.config.stash[_CHOSEN]
    params = []
    for name in backends_for(metafunc):
        if name not in chosen:
            continue
        marks = []
        if not _INSTALLED.get(name, True):
            marks.append(pytest.mark.skip(reason=f"{name} is not installed"))
        params.append(pytest.param(BACKENDS[name], id=name, marks=marks))
    if not params:
        skip = pytest.mark.skip(reason="--backends left none")
        params.append(pytest.param(None, id="no-backend", marks=skip))
    metafunc.parametrize("anyio_backend", params, indirect=True)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The Ray tests go first, and to one worker (xdist's loadgroup): the local cluster then
    # starts once, while the other workers run the rest.
    for item in items:
        if item.get_closest_marker("ray") is not None:
            item.add_marker(pytest.mark.xdist_group("ray"))
    items.sort(key=lambda item: item.get_closest_marker("ray") is None)


class _SocketWatch:
    """Which sockets the running test opened, seen through the interpreter's audit events.

    Only the asyncio and Trio backends are watched (their sockets are Python's own), which
    is every unmarked test: a socket there means the test belongs on uvloop too.
    """

    def __init__(self) -> None:
        self.watching = False
        self.seen: list[str] = []

    def audit(self, event: str, args: tuple[object, ...]) -> None:
        if self.watching and event in ("socket.bind", "socket.connect"):
            self.seen.append(f"{event} {args[1]!r}")

    @staticmethod
    def applies(item: pytest.Item) -> bool:
        return isinstance(item, pytest.Function) and "anyio_backend" in item.fixturenames


@pytest.fixture(autouse=True)
def _sockets_agree_with_the_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail an async test that opens a socket unless it is marked ``network``."""
    watch = request.config.stash[_WATCH]
    if not _SocketWatch.applies(request.node) or request.node.get_closest_marker("network"):
        yield
        return
    watch.watching, watch.seen = True, []
    try:
        yield
    finally:
        watch.watching = False
    if watch.seen:
        pytest.fail(
            f"{request.node.nodeid} opened sockets ({', '.join(watch.seen[:3])}) but is not "
            "marked network: mark it @pytest.mark.network, so that it runs on uvloop too",
            pytrace=False,
        )


@pytest.fixture
def ray_cluster() -> str:
    """The address of the Ray local cluster the ``ray`` tests share, started by the first.

    ``pytest_runtest_teardown`` stops it after the last of them, so that its processes do not
    run on beside the rest of the suite.
    """
    ray = pytest.importorskip("ray", reason="the Ray stage needs the ray extra")
    pytest.importorskip("ray.data", reason="the Ray stage needs the ray extra")
    if not ray.is_initialized():
        # Ray's daemons and actors inherit the environment: without coverage's variable they
        # run untraced. The stage's code is measured here, in this process (test_ray).
        traced = os.environ.pop("COVERAGE_PROCESS_CONFIG", None)
        try:
            ray.init(
                num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False
            )
        finally:
            if traced is not None:
                os.environ["COVERAGE_PROCESS_CONFIG"] = traced
    return typing.cast("str", ray.get_runtime_context().gcs_address)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if item.get_closest_marker("ray") is None:
        return
    if nextitem is None or nextitem.get_closest_marker("ray") is None:
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            ray.shutdown()


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> Backend:
    """The AnyIO backend (and its options) an async test runs on: see the module docstring."""
    return typing.cast("Backend", request.param)


@pytest.fixture(params=["aura", "openai"])
def wire(request: pytest.FixtureRequest) -> WireName:
    """The wire a test speaks, for behaviour that must be the same on both."""
    return typing.cast("WireName", request.param)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A certificate authority no system trusts."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """For servers and proxies on loopback, and for the names tunnels lead to."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    names = ("127.0.0.1", "::1", "localhost", "chat.example", "xn--bcher-kva.example")
    ca.issue_cert(*names).configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts :func:`ca`, and nothing else."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context
