"""Developer tasks: ``nox -s tests g4f_newest lint typecheck`` is what CI runs; ``nox -s bench``
measures."""

from __future__ import annotations

import nox

nox.needs_version = ">=2025.2.9"  # dependency_groups() and session(default=False)
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "g4f_newest", "lint", "typecheck"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def install_groups(session: nox.Session, *groups: str) -> None:
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


# Three workers on the two cores: many tests wait on timers and peers. The Ray tests stay
# together on one worker, which starts with them (loadgroup).
PARALLEL = ("-n", "3", "--dist", "loadgroup")
# The suite starts Python often (xdist's workers, the aura command's tests, Ray's workers):
# without bytecode each one would compile every module it imports anew.
WRITE_BYTECODE = {"PYTHONDONTWRITEBYTECODE": None}


@nox.session
def tests(session: nox.Session) -> None:
    """Run the suite on both cores, under coverage; each async test runs on the backends its
    code differs on (tests/conftest.py)."""
    session.install(".[trio,socks,cli,ray,g4f]")
    install_groups(session, "test")
    session.run("coverage", "erase")
    session.run(
        "coverage",
        "run",
        "-m",
        "pytest",
        *PARALLEL,
        "--durations=25",
        *session.posargs,
        env=WRITE_BYTECODE,
    )
    # xdist's workers, and the aura command's subprocesses, each write a data file of their own.
    session.run("coverage", "combine", "--quiet")
    if not session.posargs:  # a partial run (-k ...) cannot reach full coverage
        session.run("coverage", "report")


#: The newest gpt4free tried; the test group pins 0.3.3.3, the last release that shipped Aura.
G4F_NEWEST = "8.8.6"


@nox.session
def g4f_newest(session: nox.Session) -> None:
    """gpt4free's own entry points driving the provider, on the newest gpt4free tried (``nox -s
    tests`` runs the same tests on 0.3.3.3), on one core."""
    session.install(".[trio]", f"g4f=={G4F_NEWEST}")
    session.install(
        *[req for req in nox.project.dependency_groups(PYPROJECT, "test") if "g4f" not in req]
    )
    session.run("pytest", "tests/test_g4f.py", *session.posargs)


@nox.session
def quick(session: nox.Session) -> None:
    """The inner loop, in about half a minute: the pure tests and those over MockTransport or
    memory streams, on asyncio alone, on both cores, without coverage; stops at the first
    failure. Loopback sockets, subprocesses and Ray are for ``nox -s tests``."""
    session.install(".[trio,socks,cli]")
    install_groups(session, "test")
    session.run(
        "pytest",
        *PARALLEL,
        "-x",
        "--backends=asyncio",
        "-m",
        "not network and not subprocess and not ray",
        *session.posargs,
        env=WRITE_BYTECODE,
    )


@nox.session
def tests_asyncio_only(session: nox.Session) -> None:
    """Run the suite without trio installed: nothing may import it by accident."""
    session.install(".")
    session.install(
        *[req for req in nox.project.dependency_groups(PYPROJECT, "test") if "trio" not in req]
    )
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    install_groups(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check: mypy --strict on the package and tests, pyright strict, --verifytypes."""
    session.install(".[trio,cli,ray]")
    install_groups(session, "typing")
    session.run("mypy", "--strict", "src", "tests")
    session.run("pyright")
    session.run("pyright", "--verifytypes", "aura_anyio", "--ignoreexternal")


BENCHMARKS = {
    "overhead": "run.py",
    "fanout": "fanout.py",
    "stream": "stream.py",
    "events": "events.py",
    "paced": "paced.py",
    "cache": "cache.py",
    "endpoints": "endpoints.py",
    "ray": "ray_job.py",
    "fidelity": "fidelity.py",
    "chunked": "chunked.py",
    "tokens": "tokens.py",
    "ab": "ab.py",  # two source trees to compare: run by name only
}


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmarks (not part of the tests): all of them, or ``-- NAME [ARGS]``.

    NAME is overhead (complete() and fan_out() against raw httpx), fanout (against aiohttp,
    httpx, httpx2, openai-python and a hand-written client), stream (time to first chunk,
    and cost per chunk of a long stream), events (cost per server-sent event of a
    500-event reply on the OpenAI wire, against openai-python) or paced (500 streams at once,
    200 chunks each 20 ms apart, on both wires: CPU per chunk and peak memory, against aiohttp,
    openai-python and a hand-written client), cache (a response cache lookup against a
    loopback round trip), endpoints (one client over 1, 2 and 4 paced servers), ray (a Ray
    Data job against one ``aura batch`` of the same rows), fidelity (``aura bench`` and a
    vLLM-style aiohttp client against the paced server's own record, at 50, 200 and 500
    streams), chunked (the chunked body's parse against h11's), tokens (the client's own CPU
    per token above the socket, against an aiohttp client's own work) or ab (``-- ab BEFORE/src
    AFTER/src``: the fan-out's CPU per request of two source trees, in one run).
    """
    session.install(".[trio,fast,cli,ray]")
    install_groups(session, "bench")
    if session.posargs and session.posargs[0] in BENCHMARKS:
        name, *args = session.posargs
        session.run("python", f"benchmarks/{BENCHMARKS[name]}", *args)
        return
    for name, script in BENCHMARKS.items():
        if name != "ab":
            session.run("python", f"benchmarks/{script}", *session.posargs)
