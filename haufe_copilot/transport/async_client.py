"""The asynchronous client: `AsyncHaufeCopilotClient`."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import ssl
import sys
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx

from haufe_copilot import rate_limit
from haufe_copilot.protocol import attempt
from haufe_copilot.protocol.assistant import RequestSpec
from haufe_copilot.protocol.content_decoding import aiter_decoded
from haufe_copilot.resources.assistant import AsyncAssistant
from haufe_copilot.resources.base import made_on_access
from haufe_copilot.resources.completions import AsyncCompletions
from haufe_copilot.resources.streams import AsyncStreams
from haufe_copilot.transport.base_client import STANDING_HEADERS, BaseClient
from haufe_copilot.transport.options import ASYNC_DEFAULT_LIMITS, ClientOptions

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

T = TypeVar("T")

__all__ = ["AsyncHaufeCopilotClient"]


#: The most connections one httpx pool of a loop holds; `limits` is split into pools this small.
CONNECTIONS_PER_SHARD = 10


def _share(total: int | None, shards: int, index: int) -> int | None:
    return None if total is None else total // shards + (1 if index < total % shards else 0)


def shard_limits(limits: httpx.Limits) -> list[httpx.Limits]:
    """`limits` split over pools of at most `CONNECTIONS_PER_SHARD` connections, adding up to it.

    httpcore's pool does work proportional to (waiting requests x connections) whenever a
    connection frees up, so one pool of 100 connections serving 1,000 concurrent streams spends
    most of its time there (13 s against 1 s for ten pools of ten, measured on loopback). Without
    a connection limit nothing waits: one pool."""
    total = limits.max_connections
    shards = 1 if total is None else max(1, -(-total // CONNECTIONS_PER_SHARD))
    return [
        httpx.Limits(
            max_connections=_share(total, shards, index),
            max_keepalive_connections=_share(limits.max_keepalive_connections, shards, index),
            keepalive_expiry=limits.keepalive_expiry,
        )
        for index in range(shards)
    ]


class _ShardedPool:
    """Several small httpx pools used in turn, holding the client's `limits` between them."""

    def __init__(self, make: Callable[[httpx.Limits], httpx.AsyncClient], limits: httpx.Limits) -> None:
        self.shards = [make(shard) for shard in shard_limits(limits)]
        self._turn = itertools.cycle(self.shards)

    def next(self) -> httpx.AsyncClient:
        return next(self._turn)

    @property
    def is_closed(self) -> bool:
        return any(shard.is_closed for shard in self.shards)

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()


async def _close_with_loop(pool: _ShardedPool, forget: Callable[[], object]) -> AsyncGenerator[None, None]:
    """Parked at its `yield` while its loop runs; the loop's `shutdown_asyncgens()` (which
    `asyncio.run` and `asyncio.Runner` call before closing the loop) closes it, and with it the
    pool, while the loop can still run the sockets' close."""
    try:
        yield
    finally:
        forget()
        await pool.aclose()


#: How long the timer that keeps a loop's pool alive waits before it re-arms (it never does work).
_KEEPER_SECONDS = 24 * 3600.0


class _LoopPool:
    """One loop's pool and what ends it.

    Only the loop holds it strongly, through a timer that never does anything (`keeper`): the
    client's registry holds it weakly. So the pool lives exactly as long as its loop is open.
    `shutdown_asyncgens()` closes it properly (`closer`); a loop closed without that (by hand:
    `new_event_loop()`, `run_until_complete()`, `close()`) drops its timers, and with them this
    pool, whose sockets its transports then close; a loop dropped without being closed is
    collected with its pool. Nothing here refers to the loop, so the registry never keeps one
    alive (a registry value that referred to its own weak key would)."""

    __slots__ = ("__weakref__", "closer", "keeper", "pool")

    def __init__(self, pool: _ShardedPool, closer: AsyncGenerator[None, None]) -> None:
        self.pool = pool
        self.closer = closer
        # Weakly: the timer holds this object, so a strong reference back would make a cycle,
        # and a loop closed by hand would then free the pool only at the next cyclic collection.
        self.keeper: weakref.ref[asyncio.TimerHandle] | None = None

    def keep_with(self, loop: asyncio.AbstractEventLoop) -> None:
        self.keeper = weakref.ref(loop.call_later(_KEEPER_SECONDS, _LoopPool.keep_with, self, loop))

    def release(self) -> None:
        keeper = self.keeper() if self.keeper is not None else None
        if keeper is not None:
            keeper.cancel()
        self.keeper = None


class _PoolPerLoop:
    """One pool per event loop: a pool is never shared across loops, and each is closed when
    its loop shuts down, so `asyncio.run` many times over leaves nothing open (see `_LoopPool`
    for loops that end otherwise)."""

    def __init__(self, make: Callable[[httpx.Limits], httpx.AsyncClient], limits: httpx.Limits) -> None:
        self._make = make
        self._limits = limits
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.ref[_LoopPool]] = (
            weakref.WeakKeyDictionary()
        )

    def _current(self, loop: asyncio.AbstractEventLoop) -> _LoopPool | None:
        ref = self._pools.get(loop)
        return ref() if ref is not None else None

    def pool_of(self, loop: asyncio.AbstractEventLoop) -> _ShardedPool | None:
        """The pool `loop` uses, if it has one (for tests and probes)."""
        entry = self._current(loop)
        return entry.pool if entry is not None else None

    async def get(self) -> httpx.AsyncClient:
        """The httpx client for the next request on the running loop."""
        loop = asyncio.get_running_loop()
        entry = self._current(loop)
        if entry is not None and not entry.pool.is_closed:
            return entry.pool.next()
        pool = _ShardedPool(self._make, self._limits)
        # The closer refers to the registry and the loop weakly: strongly, the registry's value
        # would keep its own key (the loop) alive, and a client dropped without aclose() would
        # keep its pool until the cyclic collector.
        registry, loop_ref = weakref.ref(self._pools), weakref.ref(loop)
        holder: list[weakref.ref[_LoopPool]] = []  # weakly too: the holder holds this closer

        def forget() -> None:
            pools, ended, entry = registry(), loop_ref(), holder[0]() if holder else None
            if entry is not None:
                entry.release()
            if pools is not None and ended is not None:
                pools.pop(ended, None)

        closer = _close_with_loop(pool, forget)
        await closer.__anext__()  # registers it with the loop's async-generator shutdown
        entry = _LoopPool(pool, closer)
        holder.append(weakref.ref(entry))
        entry.keep_with(loop)
        self._pools[loop] = weakref.ref(entry)
        return pool.next()

    async def aclose_current(self) -> None:
        entry = self._current(asyncio.get_running_loop())
        if entry is not None:
            await entry.closer.aclose()


if sys.version_info >= (3, 11):

    async def _within(awaitable: Awaitable[T], seconds: float) -> T:
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # pragma: no cover - Python 3.10

    async def _within(awaitable: Awaitable[T], seconds: float) -> T:
        return await asyncio.wait_for(awaitable, seconds)


class AsyncHaufeCopilotClient(BaseClient):
    """An asynchronous client for Haufe Copilot (configuration as `HaufeCopilotClient`).

    >>> async with AsyncHaufeCopilotClient(api_key="sk-...") as client:
    ...     answer = await client.assistant.chat(assistant_id="...", messages=[...])
    ...     async for chunk in client.assistant.stream(assistant_id="...", messages=[...]):
    ...         print(chunk.delta.content, end="")

    One client may serve several event loops (one after the other or in several threads): it
    keeps one connection pool per loop and closes each when its loop shuts down. An
    `http_client` passed in is used as it is, on the loop it belongs to, and never closed here.
    """

    def __init__(
        self, *, http_client: httpx.AsyncClient | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        super().__init__(options)
        self._check_given_http(http_client, httpx.AsyncClient, "HaufeCopilotClient for an httpx.Client")
        self._given_http = http_client
        self._http_sends_standing_headers = http_client is None
        timeout_config = self._config.timeout
        proxy_url = self._config.proxy
        tls: list[ssl.SSLContext] = []

        def make_shard(limits: httpx.Limits) -> httpx.AsyncClient:
            # One TLS context for every shard of every loop: building one loads the CA bundle,
            # which costs more than everything else about a new pool.
            if not tls:
                tls.append(httpx.create_ssl_context())
            return httpx.AsyncClient(
                headers=STANDING_HEADERS,
                timeout=timeout_config,
                follow_redirects=False,
                verify=tls[0],
                proxy=proxy_url,
                limits=limits,
            )

        self._pools = _PoolPerLoop(make_shard, self._config.limits or ASYNC_DEFAULT_LIMITS)

    #: The Assistant API: answers with sources, threads (docs/contract.md, Assistant API).
    assistant = made_on_access(AsyncAssistant)
    #: The OpenAI-compatible completions API, with tools over SSE (docs/contract.md, Completions).
    completions = made_on_access(AsyncCompletions)
    #: Background completions observed as resumable streams (docs/contract.md, Async streams).
    streams = made_on_access(AsyncStreams)

    def with_options(self, **changes: Any) -> AsyncHaufeCopilotClient:
        """A client with some options changed (`timeout`, `max_retries`, ...)."""
        copy = AsyncHaufeCopilotClient(**self._config.copy_options(changes), http_client=self._given_http)
        copy._pools = self._pools  # share the pools: same loops, same connections
        return copy

    async def aclose(self) -> None:
        """Close this event loop's connection pool (other loops close theirs when they end)."""
        await self._pools.aclose_current()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- I/O: all this client adds to the flow of a call (haufe_copilot.protocol.attempt) ------

    async def _http(self) -> httpx.AsyncClient:
        return self._given_http if self._given_http is not None else await self._pools.get()

    async def _request(self, call: attempt.Call[T]) -> T:
        """A blocking call: its result."""
        async with aclosing(self._drive(call)) as steps:
            async for raw in steps:
                if isinstance(raw, attempt.Raw):
                    return cast("T", self._parsed(raw))
        raise AssertionError("the flow of a blocking call ended without its result")  # pragma: no cover

    def _iterate(self, call: attempt.Call[T]) -> AsyncGenerator[T | attempt.Opened, None]:
        """A stream: `Opened` once its 2xx status has arrived, then its items."""
        return self._drive(call)

    async def _drive(self, call: attempt.Call[Any]) -> AsyncGenerator[Any, None]:
        """Run the call's flow: do each step it yields (cut short at its `within`), hand on
        everything else."""
        exchange = _AsyncExchange(self, call.spec)
        stepper = attempt.Stepper(attempt.call_flow(self, call, cuts=True))
        try:
            while (step := stepper.next()) is not attempt.FINISHED:
                if type(step) is attempt.Items:
                    for item in step:
                        yield item
                    continue
                if not isinstance(step, attempt.Step):
                    yield step
                    continue
                within = getattr(step, "within", None)
                try:
                    if within is not None:
                        stepper.reply = await _within(exchange.do(step), within)
                    elif type(step) is attempt.Read:  # the hot path of a stream, inline
                        stepper.reply = await exchange.read()
                    else:
                        stepper.reply = await exchange.do(step)
                except asyncio.TimeoutError as exc:  # a step cut short at its `within`
                    stepper.failure = attempt.CutShort() if within is not None else exc
                except Exception as exc:  # the flow decides: it raises what it does not handle
                    stepper.failure = exc
        finally:
            stepper.flow.close()
            await exchange.close()

    async def _send(
        self, http: httpx.AsyncClient, spec: RequestSpec, timeout: httpx.Timeout, token: str | None
    ) -> httpx.Response:
        await rate_limit.abefore_attempt(self._rate_limiter)  # every attempt waits its turn
        request = self._build_request(http, spec, timeout, token)
        started = self._log_request(request)
        # Never follow a redirect (see HaufeCopilotClient._send).
        response = await http.send(request, stream=True, follow_redirects=False)
        self._log_response(request, response, started)
        await rate_limit.aafter_response(self._rate_limiter, response.status_code, response.headers)
        return response

    async def _provided_token(self) -> object:
        token = self._config.token_provider()  # type: ignore[misc]  # a Token step: a provider is set
        return await token if inspect.isawaitable(token) else token


class _AsyncExchange:
    """The I/O of one call: the response open now and the pieces of its body."""

    __slots__ = ("chunks", "client", "response", "spec")

    def __init__(self, client: AsyncHaufeCopilotClient, spec: RequestSpec) -> None:
        self.client, self.spec = client, spec
        self.response: httpx.Response | None = None
        self.chunks: AsyncIterator[bytes] | None = None

    async def do(self, step: attempt.Step) -> Any:
        kind = type(step)
        if kind is attempt.Read:
            return await self.read()
        if kind is attempt.Send:
            assert isinstance(step, attempt.Send)
            await self.close()
            http = await self.client._http()
            self.response = await self.client._send(http, self.spec, step.timeout, step.token)
            self.chunks = aiter_decoded(self.response)
            return self.response
        if kind is attempt.Close:
            await self.close()
        elif isinstance(step, attempt.Sleep):
            await asyncio.sleep(step.seconds)
        else:
            return await self.client._provided_token()
        return None

    async def read(self) -> bytes | None:
        try:
            return await anext(self.chunks)  # type: ignore[arg-type]  # a Read follows a Send
        except StopAsyncIteration:
            return None

    async def close(self) -> None:
        response, self.response, self.chunks = self.response, None, None
        if response is not None:
            await response.aclose()
