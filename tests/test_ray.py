"""The Ray Data stage (``aura_anyio.ray``) on a local Ray cluster, against reference servers.

One cluster for the run (conftest's ``ray_cluster``: ``ray.init(num_cpus=2)``, no dashboard),
shared with the Ray example's test: starting one takes seconds. The servers run in this
process, on an event loop in a thread (an AnyIO blocking portal), and the Ray actors, in
processes of their own, reach them over loopback. The stage's own code is also run here, in
this process, so that coverage sees it.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import os
import threading
import time
import typing

import pytest

ray = pytest.importorskip("ray", reason="the Ray stage needs the ray extra")
pytest.importorskip("ray.data", reason="the Ray stage needs the ray extra")

from aura_anyio import AuraClient, InvalidRequestError  # noqa: E402
from aura_anyio.ray import Chat, _Keeper  # noqa: E402
from aura_anyio.testing import Fault, ReceivedRequest, ReferenceServer, default_reply  # noqa: E402

from .helpers import REPLY, served_in_thread  # noqa: E402

if typing.TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# Ray's own deprecations, warned inside Ray: not ours to fix.
pytestmark = [
    pytest.mark.ray,
    pytest.mark.usefixtures("ray_cluster"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray[.].*"),
    # A generous guard against a hang, not a speed target: a job starts actors first.
    pytest.mark.timeout(300),
]

# The columns every row gains, in this order (DESIGN section 8).
OUTPUT = (
    "text",
    "ok",
    "error",
    "error_type",
    "attempts",
    "elapsed",
    "ttft",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "endpoint",
    "reasoning",
)


class Serving:
    """A reference server on a thread's event loop, with the time each reply started and the
    prompt it answered."""

    def __init__(self, **options: typing.Any) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self.server = ReferenceServer(reply=self._reply, **options)

    def _reply(self, request: ReceivedRequest) -> str:
        with self._lock:
            self.arrivals.append((time.monotonic(), str(request.kept_messages[-1]["content"])))
        return default_reply(request)


@contextlib.contextmanager
def serving(**options: typing.Any) -> Iterator[Serving]:
    made = Serving(**options)
    with served_in_thread(made.server):
        yield made


class Table(typing.Protocol):
    def to_pydict(self) -> dict[str, list[object]]: ...


def table(batch: object) -> dict[str, list[object]]:
    """A batch the stage returned (a pyarrow Table), as columns."""
    return typing.cast("Table", batch).to_pydict()


def prompts(count: int) -> list[dict[str, object]]:
    return [{"id": n, "prompt": f"p{n}"} for n in range(count)]


def assert_each_row_once(rows: list[dict[str, typing.Any]], count: int) -> None:
    assert sorted(row["id"] for row in rows) == list(range(count))
    for row in rows:
        assert row["ok"], row["error"]
        assert row["text"] == REPLY.format(row["prompt"])


def run_stage(
    rows: list[dict[str, object]], actors: int = 2, batch_size: int = 50, **options: object
) -> list[dict[str, typing.Any]]:
    dataset = ray.data.from_items(rows).map_batches(
        Chat,
        fn_constructor_kwargs=options,
        compute=ray.data.ActorPoolStrategy(size=actors),
        batch_size=batch_size,
    )
    return typing.cast("list[dict[str, typing.Any]]", dataset.take_all())


def test_a_thousand_rows_over_two_actors_each_once_within_the_shared_limit() -> None:
    rows = prompts(1000)
    rows[7] = {"id": 7, "promt": "a typo"}  # a bad row is an error row, not a failed job
    with serving() as running:
        started = time.monotonic()
        out = run_stage(rows, base_url=running.server.base_url, requests_per_second=100)
        elapsed = time.monotonic() - started
        received = len(running.server.requests)
    bad = next(row for row in out if row["id"] == 7)
    assert (bad["ok"], bad["error_type"], bad["attempts"]) == (False, "InvalidRequestError", 0)
    assert "exactly one of" in bad["error"]
    good = [row for row in out if row["id"] != 7]
    assert sorted(row["id"] for row in good) == [n for n in range(1000) if n != 7]
    for row in good:
        assert row["ok"], row["error"]
        assert row["text"] == REPLY.format(row["prompt"])
        assert row["endpoint"] == running.server.base_url
        assert row["attempts"] == 1
    assert set(out[0]) >= {*OUTPUT, "id", "prompt"}
    assert received == 999
    # 100 a second for the job, whatever the actors: a second's burst, then 899 more.
    assert elapsed >= 8.9


def test_a_429_seen_by_one_actor_pauses_every_actor() -> None:
    rows = prompts(400)
    marker = Fault(status=429, retry_after="3", times=1).marker()
    rows[60] = {"id": 60, "prompt": f"p60 {marker}"}
    with serving(delay=0.005) as running:
        out = run_stage(rows, base_url=running.server.base_url, max_concurrency=4)
        arrivals = list(running.arrivals)
    assert sorted(row["id"] for row in out) == list(range(400))
    assert all(row["ok"] for row in out)
    limited = next(row for row in out if row["id"] == 60)
    assert limited["attempts"] == 2
    # Both actors had rows left, yet between the 429 and the retry no request reached the
    # server for at least half of the 3 s pause: the other half leaves time, on a loaded
    # machine, for the keeper to hear of the pause and for requests already sent to arrive.
    first, *_, retried = sorted(when for when, prompt in arrivals if prompt.startswith("p60 "))
    during = sorted(when for when, _ in arrivals if first <= when <= retried)
    assert retried - first >= 3.0
    assert max(later - earlier for earlier, later in itertools.pairwise(during)) >= 1.5


def test_an_actor_killed_mid_batch_still_gives_every_row_once(tmp_path: Path) -> None:
    flag = str(tmp_path / "killed")

    class DyingChat(Chat):
        """The first actor to take a batch dies while its requests are in flight."""

        def __call__(self, batch: object) -> object:
            try:
                os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return super().__call__(batch)
            threading.Timer(0.3, os._exit, (1,)).start()
            return super().__call__(batch)

    with serving(delay=0.01) as running:
        dataset = ray.data.from_items(prompts(300)).map_batches(
            DyingChat,
            fn_constructor_kwargs={"base_url": running.server.base_url, "max_concurrency": 4},
            compute=ray.data.ActorPoolStrategy(size=2),
            batch_size=50,
        )
        out = typing.cast("list[dict[str, typing.Any]]", dataset.take_all())
        sent = len(running.server.requests)
    assert os.path.exists(flag)
    assert_each_row_once(out, 300)
    assert sent > 300  # the dead actor's batch was sent again, from its first row


# --- the stage's code, run in this process -------------------------------------------------


def test_a_batch_of_columns_gains_the_output_columns() -> None:
    import numpy as np

    with serving() as running:
        chat = Chat(
            running.server.base_url, wire="openai", tokens_per_minute=100_000, limiter="tokens"
        )
        try:
            batch = {
                "id": np.array(["a", "b", "c"], dtype=object),
                "messages": np.array(
                    [
                        np.array([{"role": "user", "content": "one"}], dtype=object),
                        None,
                        np.array([{"role": "user", "content": "three"}], dtype=object),
                    ],
                    dtype=object,
                ),
                "prompt": np.array([None, "two", None], dtype=object),
                "max_tokens": np.array([np.nan, 3.0, 50.0]),
                "temperature": np.array([0.1, np.nan, 0.3]),
                "extra": np.array([1, 2, 3]),
            }
            out = table(chat(batch))
        finally:
            chat.close()
            chat.close()
    assert list(out)[:6] == list(batch)
    assert tuple(out)[6:] == OUTPUT
    assert out["text"] == [REPLY.format("one"), "Hello from the ", REPLY.format("three")]
    assert out["finish_reason"] == ["stop", "length", "stop"]
    assert out["ok"] == [True, True, True]
    assert all(isinstance(tokens, int) for tokens in out["prompt_tokens"])
    sent = running.server.requests
    assert sorted(str(request.token_limit) for request in sent) == ["3", "50", "None"]


def test_a_pandas_batch_on_trio_with_a_bad_id() -> None:
    pd = pytest.importorskip("pandas")

    with serving() as running:
        # The OpenAI wire reports usage: with no token budget, nothing to settle.
        chat = Chat(
            [running.server.base_url], backend="trio", wire="openai", limiter="in-process-trio"
        )
        try:
            out = table(chat(pd.DataFrame({"id": [1.5, 2.0], "prompt": ["x", "y"]})))
        finally:
            chat.close()
    assert out["ok"] == [False, True]
    assert out["error"][0] == "id must be a string or an integer"
    assert out["text"] == ["", REPLY.format("y")]


def test_bad_arguments_are_refused_before_any_row() -> None:
    with pytest.raises(InvalidRequestError, match="max_concurrency"):
        Chat("http://127.0.0.1:9", max_concurrency=0)
    with pytest.raises(InvalidRequestError, match="requests_per_second"):
        Chat("http://127.0.0.1:9", requests_per_second=-1)
    with pytest.raises(InvalidRequestError, match="backend"):
        Chat("http://127.0.0.1:9", backend="curio")
    with pytest.raises(InvalidRequestError, match="base_url"):
        Chat("ftp://127.0.0.1:9")


def test_the_stage_takes_the_clients_options_as_the_client_does() -> None:
    # Chat repeats AuraClient's options (Ray pickles them to each actor); they must not drift.
    client = inspect.signature(AuraClient).parameters
    stage = inspect.signature(Chat).parameters
    # An actor makes its own client: no cache, transport or httpx client can be handed over.
    not_carried = {"cache", "transport", "http_client"}
    for name, option in client.items():
        if name in not_carried:
            assert name not in stage
            continue
        assert stage[name].default == option.default, name
        assert stage[name].kind == option.kind, name
        if name == "verify":
            # An ssl.SSLContext does not pickle, so an actor can only be told whether to verify.
            assert stage[name].annotation == "bool"
            assert option.annotation == "bool | ssl.SSLContext"
        else:
            assert stage[name].annotation == option.annotation, name


def test_the_shared_limit_outlives_its_keeper_and_a_429_pauses_through_it() -> None:
    marker = Fault(status=429, retry_after="0.3", times=1).marker()
    with serving() as running:
        chat = Chat(running.server.base_url, requests_per_second=1000, limiter="mortal")
        try:
            assert table(chat({"prompt": ["a"]}))["ok"] == [True]
            ray.kill(ray.get_actor("mortal"))
            assert table(chat({"prompt": ["b"]}))["ok"] == [True]  # a new keeper, on demand
            out = table(chat({"prompt": [f"c {marker}"]}))
            assert (out["ok"], out["attempts"]) == ([True], [2])
            assert typing.cast("float", out["elapsed"][0]) >= 0.25
            assert ray.get(ray.get_actor("mortal").paused_for.remote()) == 0.0  # over
        finally:
            chat.close()


def test_without_a_limit_a_429_pauses_the_actor_and_others_only_poll() -> None:
    # No limit: the keeper is asked about a pause at most every PAUSE_POLL; a 429 pauses this
    # actor at once, and the rows still to go wait the pause out.
    marker = Fault(status=429, retry_after="1", times=1).marker()
    with serving(delay=0.005) as running:
        chat = Chat(running.server.base_url, max_concurrency=2, limiter="unlimited")
        try:
            out = table(chat({"prompt": [f"a {marker}", *"bcdefghijkl"]}))
        finally:
            chat.close()
        arrivals = sorted(when for when, _ in running.arrivals)
    assert out["ok"] == [True] * 12
    assert out["attempts"] == [2] + [1] * 11
    # Replies take some 0.1 s each: a gap of 0.8 s is the pause, which held the other rows too.
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert max(gaps) >= 0.8
    assert arrivals[-1] - arrivals[0] >= 1.0


def test_the_keeper_keeps_the_job_s_limits() -> None:
    keeper = _Keeper(requests_per_second=1, tokens_per_minute=60)
    assert keeper.reserve(0) == 0.0
    assert keeper.reserve(0) > 0.5  # the second of the same second waits
    keeper.pause(5)
    assert 4 < keeper.paused_for() <= 5
    keeper.correct(10, 1)
