"""Batches that outgrow one machine: a Ray Data stage (DESIGN section 8; extra ``ray``).

::

    import ray
    from aura_anyio.ray import Chat

    ds = ray.data.read_json("prompts.jsonl")
    ds = ds.map_batches(
        Chat,
        fn_constructor_kwargs={"base_url": ["http://gpu1:8000", "http://gpu2:8000"],
                               "wire": "openai", "requests_per_second": 50},
        concurrency=4,
        batch_size=256,
    )
    ds.write_parquet("replies")

Each actor keeps one :class:`AuraClient` (one connection pool) for its life, on an event
loop of its own, and runs each batch through a fan-out. ``requests_per_second`` and
``tokens_per_minute`` hold for the whole job: every actor reserves each attempt from one
keeper, a named Ray actor, which is also where a 429 seen by one actor pauses them all.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import time
import typing

import anyio
import anyio.from_thread
import anyio.to_thread
import ray
from ray.exceptions import RayActorError

from ._client import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_BYTES,
    AuraClient,
)
from ._exceptions import InvalidRequestError
from ._fanout import DEFAULT_MAX_CONCURRENCY, FanOutLimits
from ._models import Timeouts
from ._reservations import Reservations
from ._retry import DEFAULT_MAX_RETRIES, RetryPolicy
from ._rows import OUTPUT_FIELDS, OUTPUT_TYPES, dataset_request, output_fields

if typing.TYPE_CHECKING:
    import contextlib
    from collections.abc import Mapping, Sequence

    from anyio.from_thread import BlockingPortal
    from ray.actor import ActorHandle

    from ._models import ChatRequest, ChatResult
    from ._wire import WireName

__all__ = ["Chat"]

# Without a limit to reserve from, an actor asks the keeper whether a pause is on at most
# this often: a 429 elsewhere holds it back within this long, at one call per interval.
PAUSE_POLL = 0.2


class _Keeper:
    """The job-wide limits and pause, in one Ray actor that every :class:`Chat` shares."""

    def __init__(self, requests_per_second: float | None, tokens_per_minute: float | None) -> None:
        self._reservations = Reservations(requests_per_second, tokens_per_minute)

    def reserve(self, tokens: int) -> float:
        return self._reservations.reserve(time.monotonic(), tokens)

    def pause(self, seconds: float) -> None:
        self._reservations.pause(time.monotonic(), seconds)

    def paused_for(self) -> float:
        return self._reservations.paused_for(time.monotonic())

    def correct(self, estimated: int, used: int) -> None:
        self._reservations.correct(time.monotonic(), estimated, used)


# No CPU of its own: it only does arithmetic, and must never wait for a free core.
_RemoteKeeper = ray.remote(num_cpus=0)(_Keeper)


@typing.final
class _SharedGate:
    """A limiter whose limits and pause are the keeper's: the whole job's."""

    def __init__(
        self,
        name: str,
        requests_per_second: float | None,
        tokens_per_minute: float | None,
    ) -> None:
        self._name = name
        self._settings = (requests_per_second, tokens_per_minute)
        self.tokens_per_minute = tokens_per_minute
        self._limited = requests_per_second is not None or tokens_per_minute is not None
        self._keeper = self._find_keeper()
        self._resume_at = -math.inf  # a pause known here, in this actor's clock
        self._checked_at = -math.inf

    def _find_keeper(self) -> ActorHandle[_Keeper]:
        # The first actor makes it, the others find it; if the one that made it dies, it
        # goes too, and the next to need it makes it again.
        handle = _RemoteKeeper.options(name=self._name, get_if_exists=True).remote(*self._settings)
        return typing.cast("ActorHandle[_Keeper]", handle)

    async def _ask(self, method: str, *args: object) -> float:
        try:
            return await anyio.to_thread.run_sync(_call, self._keeper, method, args)
        except RayActorError:
            # The keeper went with the actor that made it: make it again, and ask that one.
            self._keeper = self._find_keeper()
            return await anyio.to_thread.run_sync(_call, self._keeper, method, args)

    async def admit(self, tokens: int = 0) -> None:
        await anyio.lowlevel.checkpoint()
        now = anyio.current_time()
        if self._limited:
            wait = await self._ask("reserve", tokens)
        elif now - self._checked_at >= PAUSE_POLL:
            self._checked_at = now
            wait = await self._ask("paused_for")
        else:
            wait = 0.0
        self._resume_at = max(self._resume_at, now + wait)
        while (left := self._resume_at - anyio.current_time()) > 0:  # noqa: ASYNC110
            await anyio.sleep(left)  # a pause seen here meanwhile pushes it back

    def pause(self, seconds: float) -> None:
        self._resume_at = max(self._resume_at, anyio.current_time() + seconds)
        _method(self._keeper, "pause").remote(seconds)  # for the other actors: no wait

    def correct(self, estimated: int, used: int) -> None:
        if self.tokens_per_minute is not None:
            _method(self._keeper, "correct").remote(estimated, used)


def _call(keeper: ActorHandle[_Keeper], method: str, args: tuple[object, ...]) -> float:
    """Call one of the keeper's methods and wait for its answer (in a worker thread)."""
    answer: object = ray.get(_method(keeper, method).remote(*args))
    return float(typing.cast("float", answer))


class _Arrow(typing.Protocol):
    """The little of pyarrow (which comes with Ray Data, and has no types) used here."""

    def array(self, values: list[object], type: object = None) -> object: ...

    def table(self, columns: Mapping[str, object]) -> object: ...


class _Method(typing.Protocol):
    """One of an actor's methods, as its handle gives it."""

    def remote(self, *args: object) -> ray.ObjectRef[object]: ...


def _method(keeper: ActorHandle[_Keeper], name: str) -> _Method:
    return typing.cast("_Method", getattr(keeper, name))


class Chat:
    """A Ray Data stage that asks for a reply to each row: ``ds.map_batches(Chat, ...)``.

    A row holds ``messages`` (a list of ``{role, content}``) or ``prompt`` (and optionally
    ``system``), and optionally ``id``, ``model``, ``temperature`` and ``max_tokens``. It
    comes out with every column it had, plus ``text``, ``ok``, ``error`` (the message, or
    null), ``error_type``, ``attempts``, ``elapsed``, ``ttft`` (seconds to the first text, or
    null), ``finish_reason``, ``prompt_tokens``, ``completion_tokens``, ``endpoint`` and
    ``reasoning`` (a reasoning model's thinking, or null). A bad row, or a request that
    fails, becomes an error row: it never fails the job.

    Args:
        base_url: The server's root URL, or a list of several servers of one model.
        max_concurrency: The most requests in flight at once in each actor.
        requests_per_second: A limit on attempts a second for the whole job, every actor
            together; ``None`` for none.
        tokens_per_minute: A budget of tokens a minute for the whole job (see
            :meth:`AuraClient.fan_out`); ``None`` for none.
        request_timeout: Seconds each request may take, retries included.
        backend: The event loop each actor runs its client on: ``"asyncio"`` or ``"trio"``.
        limiter: The name of the keeper the actors share; stages of one job with the same
            name share their limits. By default one per job and settings.
        key, proxy, verify, timeout, max_retries, headers, cookies, max_response_bytes,
            max_connections, wire, include_usage: As for :class:`AuraClient`, for each
            actor's client (``max_connections`` per server).

    Raises:
        InvalidRequestError: An argument is invalid (raised in the actor, before any row).
    """

    def __init__(
        self,
        base_url: str | Sequence[str] = DEFAULT_BASE_URL,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        requests_per_second: float | None = None,
        tokens_per_minute: float | None = None,
        request_timeout: float | None = None,
        backend: str = "asyncio",
        limiter: str | None = None,
        key: str = "",
        proxy: str | None = None,
        verify: bool = True,
        timeout: Timeouts = Timeouts(),  # noqa: B008 (immutable)
        max_retries: int | RetryPolicy = DEFAULT_MAX_RETRIES,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        wire: WireName = "aura",
        include_usage: bool = True,
    ) -> None:
        # Checked before Ray is asked for anything.
        limits = FanOutLimits(
            max_concurrency, requests_per_second, request_timeout, tokens_per_minute
        )
        if backend not in ("asyncio", "trio"):
            raise InvalidRequestError(f"backend must be 'asyncio' or 'trio', got {backend!r}")
        if limiter is None:
            job = ray.get_runtime_context().get_job_id()
            limiter = f"aura_anyio:{job}:{requests_per_second}:{tokens_per_minute}"
        # The rate and the token budget are the job's, kept by the keeper.
        gate = _SharedGate(limiter, requests_per_second, tokens_per_minute)
        self._limits = dataclasses.replace(
            limits, requests_per_second=None, tokens_per_minute=None, limiter=gate
        )
        self._client = AuraClient(
            base_url,
            key=key,
            proxy=proxy,
            verify=verify,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            cookies=cookies,
            max_response_bytes=max_response_bytes,
            max_connections=max_connections,
            wire=wire,
            include_usage=include_usage,
        )
        # The actor's own event loop, in a thread, for its whole life: the client's pool
        # lives on it from one batch to the next.
        self._portal_context: contextlib.AbstractContextManager[BlockingPortal] | None
        self._portal_context = anyio.from_thread.start_blocking_portal(backend)
        self._portal = self._portal_context.__enter__()

    def __call__(self, batch: object) -> object:
        """Ask for the replies of one batch; return its columns with the output columns added,
        as a ``pyarrow.Table``.

        ``batch`` is a dict of columns (NumPy arrays or lists, as Ray Data hands them) or a
        pandas DataFrame. The output columns have the same types in every batch (a column
        of errors is a column of strings even when no row failed), so that the files a
        dataset is written to read back as one table.
        """
        columns = {
            name: [_plain(value) for value in values] for name, values in _columns(batch).items()
        }
        size = len(next(iter(columns.values()), ()))
        requests = [
            dataset_request({name: values[i] for name, values in columns.items()}, i)
            for i in range(size)
        ]
        outcomes = self._portal.call(self._ask, requests)
        arrow = typing.cast("_Arrow", importlib.import_module("pyarrow"))
        out = {name: arrow.array(values) for name, values in columns.items()}
        fields = list(zip(*(output_fields(outcome) for outcome in outcomes), strict=True))
        for index, (name, kind) in enumerate(zip(OUTPUT_FIELDS, OUTPUT_TYPES, strict=True)):
            values = list(fields[index]) if fields else []
            out[name] = arrow.array(values, type=getattr(arrow, kind)())
        return arrow.table(out)

    async def _ask(self, requests: list[ChatRequest | str]) -> list[ChatResult | str]:
        outcomes = typing.cast("list[ChatResult | str]", list(requests))
        sent = [index for index, request in enumerate(requests) if not isinstance(request, str)]
        chosen = [typing.cast("ChatRequest", requests[index]) for index in sent]
        limits = self._limits
        async with self._client.fan_out(
            chosen,
            max_concurrency=limits.max_concurrency,
            request_timeout=limits.request_timeout,
            limiter=limits.limiter,
        ) as results:
            async for result in results:
                outcomes[sent[result.index]] = result
        return outcomes

    def close(self) -> None:
        """Close the client and stop the actor's event loop; idempotent."""
        if self._portal_context is not None:
            self._portal.call(self._client.aclose)
            context, self._portal_context = self._portal_context, None
            context.__exit__(None, None, None)


def _columns(batch: object) -> dict[str, Sequence[object]]:
    """A batch as columns by name, whatever its format: a dict of NumPy arrays or lists (Ray
    Data's default), or a pandas DataFrame."""
    to_dict = getattr(batch, "to_dict", None)
    if to_dict is not None and not isinstance(batch, dict):  # pandas
        return typing.cast("dict[str, Sequence[object]]", to_dict("list"))
    return dict(typing.cast("Mapping[str, Sequence[object]]", batch))


def _plain(value: object) -> object:
    """A value as plain Python: NumPy arrays and scalars (as Ray Data hands them) become
    lists and numbers, inside lists and dicts too."""
    if isinstance(value, (str, bytes)):
        return value
    to_list = getattr(value, "tolist", None)
    if to_list is not None:
        value = to_list()
    if isinstance(value, dict):
        return {
            key: _plain(item) for key, item in typing.cast("dict[object, object]", value).items()
        }
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in typing.cast("list[object]", value)]
    return value
