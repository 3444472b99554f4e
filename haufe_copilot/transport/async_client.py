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
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from haufe_copilot import rate_limit
from haufe_copilot.errors import APIError
from haufe_copilot.protocol.assistant import Decoder, RequestSpec, StreamFormat, check_stream_end
from haufe_copilot.protocol.content_decoding import aiter_decoded
from haufe_copilot.protocol.deadline import Deadline, ReadGuard
from haufe_copilot.resources.assistant import AsyncAssistant
from haufe_copilot.resources.completions import AsyncCompletions
from haufe_copilot.resources.streams import AsyncStreams
from haufe_copilot.transport.base_client import MAX_ERROR_BODY_BYTES, BaseClient, WholeBody, check_body_size
from haufe_copilot.transport.options import ASYNC_DEFAULT_LIMITS, ClientOptions

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

T = TypeVar("T")
R = TypeVar("R")

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


#: A read may outlast the nearest limit by this much before it is cut short: below it, httpx's
#: own read timeout (which restarts with every piece) is close enough, and the hot path (content
#: in every piece, no deadline) runs without a timer per read.
_CUT_SLACK = 0.05

if sys.version_info >= (3, 11):

    async def _within(awaitable: Awaitable[T], seconds: float) -> T:
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # pragma: no cover - Python 3.10

    async def _within(awaitable: Awaitable[T], seconds: float) -> T:
        return await asyncio.wait_for(awaitable, seconds)


async def _decoded(
    decoder: Decoder[R], chunks: AsyncIterator[bytes], guard: ReadGuard, limit: int, read: float | None
) -> AsyncGenerator[R, None]:
    """The items of a body: what each piece completes, then what its end completes; each piece
    checked against the call's limits first (deadline, stall, `max_response_bytes`). A read that
    would outlast the nearest limit (`read`: the attempt's read timeout) is cut short at it."""
    received = 0
    while True:
        budget = guard.budget()
        try:
            if budget is not None and (read is None or budget < read - _CUT_SLACK):
                data = await _within(anext(chunks), max(budget, 0.0))
            else:
                data = await anext(chunks)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise guard.error() from None
        guard.check()
        received += len(data)
        check_body_size(received, limit)
        for item in decoder.feed(data):
            yield item
    for item in decoder.close():
        yield item


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
        timeout_config = self._config.timeout
        proxy_url = self._config.proxy
        tls: list[ssl.SSLContext] = []

        def make_shard(limits: httpx.Limits) -> httpx.AsyncClient:
            # One TLS context for every shard of every loop: building one loads the CA bundle,
            # which costs more than everything else about a new pool.
            if not tls:
                tls.append(httpx.create_ssl_context())
            return httpx.AsyncClient(
                timeout=timeout_config,
                follow_redirects=False,
                verify=tls[0],
                proxy=proxy_url,
                limits=limits,
            )

        self._pools = _PoolPerLoop(make_shard, self._config.limits or ASYNC_DEFAULT_LIMITS)

    # The resources are made on each access rather than kept: kept, they would tie the client
    # into a reference cycle, and a client dropped without close() would then wait for the
    # cyclic garbage collector, which may finalise its sockets before the client closes them.
    @property
    def assistant(self) -> AsyncAssistant:
        """The Assistant API: answers with sources, threads (docs/contract.md, Assistant API)."""
        return AsyncAssistant(self)

    @property
    def completions(self) -> AsyncCompletions:
        """The OpenAI-compatible completions API, with tools over SSE (docs/contract.md, Completions)."""
        return AsyncCompletions(self)

    @property
    def streams(self) -> AsyncStreams:
        """Background completions observed as resumable streams (docs/contract.md, Async streams)."""
        return AsyncStreams(self)

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

    # -- I/O --------------------------------------------------------------------------------

    async def _http(self) -> httpx.AsyncClient:
        return self._given_http if self._given_http is not None else await self._pools.get()

    async def _open(self, spec: RequestSpec, timeout: httpx.Timeout | None) -> httpx.Response:
        """Send one attempt; a response with a 2xx status, its body not yet read. A 401 on the
        platform API with a `token_provider` asks it once more for a fresh token."""
        http = await self._http()
        token = await self._bearer_token(spec)
        response = await self._send(http, spec, timeout, token)
        if response.status_code == 401 and token is not None and self._config.token_provider is not None:
            await response.aclose()
            response = await self._send(http, spec, timeout, await self._bearer_token(spec))
        if response.is_success:
            return response
        try:
            body = bytearray()
            async for data in aiter_decoded(response):
                body += data
                if len(body) >= MAX_ERROR_BODY_BYTES:
                    break
        finally:
            await response.aclose()
        raise self._status_error(response, bytes(body))

    async def _send(
        self, http: httpx.AsyncClient, spec: RequestSpec, timeout: httpx.Timeout | None, token: str | None
    ) -> httpx.Response:
        await rate_limit.abefore_attempt(self._rate_limiter)  # every attempt waits its turn
        request = self._build_request(http, spec, timeout, token)
        started = self._log_request(request)
        # Never follow a redirect, even with an `http_client` that would: httpx strips
        # Authorization on a cross-origin redirect but not `api-key` (docs/contract.md, Base URLs).
        response = await http.send(request, stream=True, follow_redirects=False)
        self._log_response(request, response, started)
        await rate_limit.aafter_response(self._rate_limiter, response.status_code, response.headers)
        return response

    async def _bearer_token(self, spec: RequestSpec) -> str | None:
        provider = self._config.token_provider
        if spec.api != "platform" or provider is None:
            return self._static_bearer(spec)
        token = provider()
        if inspect.isawaitable(token):
            token = await token
        return self._checked_token(token)

    async def _request(
        self,
        spec: RequestSpec,
        parse: Callable[[bytes], T],
        timeout: httpx.Timeout | None,
        deadline: Deadline | None = None,
    ) -> T:
        """A blocking call with retries: retried only before a 2xx status (docs/contract.md, Retries)."""
        retries_done = 0
        if deadline is not None:
            deadline.start()
        while True:
            answered = False  # a 2xx status arrived: the server took the request
            try:
                attempt_timeout = self._attempt_timeout(timeout, deadline)
                response = await self._open_within(spec, attempt_timeout, deadline)
                answered = True
                try:
                    body = WholeBody()
                    guard = ReadGuard(deadline, None, self._url(spec))
                    raws = _decoded(
                        body,
                        aiter_decoded(response),
                        guard,
                        self._config.max_response_bytes,
                        attempt_timeout.read,
                    )
                    async with aclosing(raws):
                        async for _ in raws:
                            pass
                finally:
                    await response.aclose()
                return parse(bytes(body.data))
            except httpx.TransportError as exc:
                error: APIError = self._transport_error(exc, spec, deadline)
            except APIError as exc:
                error = exc
            delay = self._retry_delay(error, spec, retries_done, answered=answered, deadline=deadline)
            if delay is None:
                raise error
            await asyncio.sleep(delay)
            retries_done += 1

    async def _open_within(
        self, spec: RequestSpec, timeout: httpx.Timeout, deadline: Deadline | None
    ) -> httpx.Response:
        """`_open`, cut short when the deadline passes (the capped httpx timeouts bound each
        operation of it, not their sum)."""
        if deadline is None:
            return await self._open(spec, timeout)
        try:
            return await _within(self._open(spec, timeout), max(deadline.remaining(), 0.0))
        except asyncio.TimeoutError:
            raise deadline.error(self._url(spec)) from None

    async def _iterate(
        self,
        spec: RequestSpec,
        fmt: StreamFormat[Any, T],
        timeout: httpx.Timeout | None,
        deadline: Deadline | None = None,
    ) -> AsyncGenerator[T, None]:
        """Stream items; retried only before a 2xx status, so never after an item reached the
        caller; a body that ends short of its format's end is an error (`check_stream_end`); the
        time limits as in `HaufeCopilotClient._iterate`."""
        retries_done = 0
        delivered: list[str] = []  # the partial text an error carries, up to max_partial_chars
        kept, cap, more = 0, self._config.max_partial_chars, False
        convert, text_of, is_final = fmt.convert, fmt.text_of, fmt.is_final
        stall = (timeout or self._config.timeout).read
        if deadline is not None:
            deadline.start()
        while True:
            response: httpx.Response | None = None
            answered = finished = False
            items = 0
            try:
                attempt_timeout = self._attempt_timeout(timeout, deadline)
                response = await self._open_within(spec, attempt_timeout, deadline)
                answered = True  # from here on nothing is retried: the server took the request
                guard = ReadGuard(deadline, stall, self._url(spec))
                raws = _decoded(
                    fmt.decoder(self._config.max_line_bytes),
                    aiter_decoded(response),
                    guard,
                    self._config.max_response_bytes,
                    attempt_timeout.read,
                )
                async with aclosing(raws):  # closed here, not left to the loop's finaliser
                    async for raw in raws:
                        item = convert(raw)
                        if is_final is not None and not finished:
                            finished = is_final(raw, item)
                        if item is not None:
                            items += 1
                            if kept < cap:
                                text = text_of(item)
                                delivered.append(text)
                                kept += len(text)
                            else:
                                more = True
                            yield item
                            guard.content()  # the stall clock restarts when the caller hands back
                check_stream_end(fmt, finished=finished, items=items)
                return
            except httpx.TransportError as exc:
                error: APIError = self._transport_error(exc, spec, deadline)
            except APIError as exc:
                error = exc
            finally:
                if response is not None:
                    await response.aclose()
            if delivered:
                partial = "".join(delivered)
                error.partial = partial[:cap]
                error.partial_truncated = more or len(partial) > cap
            delay = self._retry_delay(error, spec, retries_done, answered=answered, deadline=deadline)
            if delay is None:
                raise error
            await asyncio.sleep(delay)
            retries_done += 1
