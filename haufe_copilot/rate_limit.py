"""One quota for every caller of a key: an in-process limiter, and one shared through Redis.

The service counts a key's requests per second and per minute (for instance 15 and 60) and
answers over-quota requests with 429. A limiter makes callers wait for their turn instead:

- `InProcessRateLimiter`: the callers of one process (threads and event loops); needs nothing.
- `RedisRateLimiter`: every process on every machine that names the same Redis and `key`.

Both hand out *reservations*: `acquire()` takes the earliest moment at which one more request
fits into every window (counting every reservation made before it, by anyone) and sleeps until
then. Reservations are handed out in the order they are asked for, so no caller starves, and
each call gets exactly one (the limiter only gates a request; it never sends or repeats one).
`block_until(seconds)` records a 429's Retry-After: no reservation is given before it, in any
process. On Redis the decision is one Lua script, so the read and the write are one atomic step.

Pass a limiter to the clients (`HaufeCopilotClient(rate_limiter=...)`): they acquire before
every attempt, retries included, and report every 429. See docs/scaling.md.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import contextvars
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from haufe_copilot.errors import ConfigurationError, RateLimiterUnavailableError, parse_retry_after
from haufe_copilot.log import logger
from haufe_copilot.types.quota import Window, next_slot, parse_rate_limit

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = [
    "InProcessRateLimiter",
    "RateLimiter",
    "RateLimiterStats",
    "RedisRateLimiter",
    "Window",
    "next_slot",
    "parse_rate_limit",
]

#: A 429 without Retry-After still pauses every caller this long (the service sends one).
DEFAULT_BLOCK_SECONDS = 1.0
#: Added to every window: a request reaches the server a little after its reservation (the
#: event loop, the connection), and two that land closer than the window would be one too many.
DEFAULT_MARGIN_SECONDS = 0.1
#: After Redis failed, how long to go without it before trying again (not a timeout per call).
REDIS_RETRY_INTERVAL_SECONDS = 1.0
OnRedisError = Literal["open", "closed"]


def windows_for(per_second: int | None, per_minute: int | None) -> tuple[Window, ...]:
    """The windows of a quota, checked: at least one limit, each a positive whole number."""
    windows = []
    for name, limit, seconds in (("per_second", per_second, 1.0), ("per_minute", per_minute, 60.0)):
        if limit is None:
            continue
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise ConfigurationError(f"{name} must be a whole number of requests > 0 or None, not {limit!r}.")
        windows.append(Window(limit, seconds))
    if not windows:
        raise ConfigurationError("A rate limiter needs per_second=, per_minute= or both.")
    return tuple(windows)


def retry_after_seconds(headers: Mapping[str, str]) -> float:
    """How long a 429 pauses every caller: its Retry-After, else `DEFAULT_BLOCK_SECONDS`."""
    seconds = parse_retry_after(headers)
    return DEFAULT_BLOCK_SECONDS if seconds is None else seconds


@dataclass
class RateLimiterStats:
    """What a limiter did in this process (a snapshot: `limiter.stats`)."""

    #: Reservations handed out.
    acquired: int = 0
    #: Seconds callers spent waiting for their turn, summed.
    waited_seconds: float = 0.0
    #: 429s reported with `block_until`.
    blocks: int = 0
    #: Calls to Redis that failed (connection refused, timed out, ...).
    redis_errors: int = 0
    #: Requests let through without the shared quota because Redis could not be reached.
    passed_without_redis: int = 0


# A turn taken with `acquire()` (by LangChain or LlamaIndex before a model call) is held for the
# client's next request in the same context, if it comes soon: the request must go close to the
# moment the windows counted it. A held turn not used by then is left unused (never overshoots).
HELD_TURN_SECONDS = 0.5
_held: contextvars.ContextVar[tuple[RateLimiter, float] | None] = contextvars.ContextVar(
    "haufe_copilot_held_turn", default=None
)


def _hold(limiter: RateLimiter) -> None:
    _held.set((limiter, time.monotonic()))


class RateLimiter(abc.ABC):
    """What the clients and adapters need of a limiter; thread-safe, usable from any event loop."""

    def __init__(self) -> None:
        self._stats_lock = threading.Lock()
        self._stats = RateLimiterStats()

    @abc.abstractmethod
    def _reserve(self, *, only_if_free: bool) -> tuple[float, Any] | None:
        """Take a reservation: seconds to wait for it and a ticket naming it (None:
        `only_if_free` and none is free now)."""

    @abc.abstractmethod
    async def _areserve(self, *, only_if_free: bool) -> tuple[float, Any] | None: ...

    @abc.abstractmethod
    def _confirm(self, ticket: Any) -> float:
        """At the reserved moment: the request goes now (the windows count it from now, if it
        woke late). Returns the seconds a 429 reported meanwhile still blocks (0: go)."""

    @abc.abstractmethod
    async def _aconfirm(self, ticket: Any) -> float: ...

    @abc.abstractmethod
    def block_until(self, retry_after_seconds: float) -> None:
        """Give no reservation for the next `retry_after_seconds`, to anyone (a 429's Retry-After)."""

    @abc.abstractmethod
    async def ablock_until(self, retry_after_seconds: float) -> None: ...

    def acquire(self) -> None:
        """Wait for this caller's turn (a reservation taken now, kept in order). A framework
        that gates each model call this way (LangChain's and LlamaIndex's `rate_limiter`)
        holds the turn for the model's first request: the client sends it without a second."""
        self._take_turn()
        _hold(self)

    async def aacquire(self) -> None:
        """`acquire` for coroutines: waits without blocking the event loop."""
        await self._atake_turn()
        _hold(self)

    async def async_acquire(self) -> None:
        """`aacquire` by LlamaIndex's name (`llama_index.core.rate_limiter.BaseRateLimiter`)."""
        await self.aacquire()

    def try_acquire(self) -> bool:
        """Take a turn only if one is free now; never waits."""
        if self._reserve(only_if_free=True) is None:
            return False
        self._count_acquired(0.0)
        _hold(self)
        return True

    async def atry_acquire(self) -> bool:
        if await self._areserve(only_if_free=True) is None:
            return False
        self._count_acquired(0.0)
        _hold(self)
        return True

    def _take_turn(self) -> None:
        while True:
            wait, ticket = self._reserve(only_if_free=False) or (0.0, None)
            self._count_acquired(wait)
            if wait <= 0:
                return
            time.sleep(wait)
            # A 429 reported while this caller slept moves it behind the block.
            if self._confirm(ticket) <= 0:
                return

    async def _atake_turn(self) -> None:
        while True:
            wait, ticket = await self._areserve(only_if_free=False) or (0.0, None)
            self._count_acquired(wait)
            if wait <= 0:
                return
            await asyncio.sleep(wait)
            if await self._aconfirm(ticket) <= 0:
                return

    @property
    def stats(self) -> RateLimiterStats:
        with self._stats_lock:
            return RateLimiterStats(**vars(self._stats))

    def _count_acquired(self, waited: float) -> None:
        with self._stats_lock:
            self._stats.acquired += 1
            self._stats.waited_seconds += max(waited, 0.0)

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, n in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + n)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_stats_lock", None)
        state["_stats"] = RateLimiterStats()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._stats_lock = threading.Lock()


# -- what the clients call ---------------------------------------------------------------------


def _use_held_turn(limiter: RateLimiter) -> bool:
    held = _held.get()
    if held is None or held[0] is not limiter:
        return False
    _held.set(None)
    return time.monotonic() - held[1] <= HELD_TURN_SECONDS


def before_attempt(limiter: RateLimiter | None) -> None:
    """Before each request a client sends (retries included): wait for its turn."""
    if limiter is not None and not _use_held_turn(limiter):
        limiter._take_turn()


async def abefore_attempt(limiter: RateLimiter | None) -> None:
    if limiter is not None and not _use_held_turn(limiter):
        await limiter._atake_turn()


def after_response(limiter: RateLimiter | None, status_code: int, headers: Mapping[str, str]) -> None:
    """After each answer's status line: a 429 pauses every caller of the limiter."""
    if limiter is not None and status_code == 429:
        limiter.block_until(retry_after_seconds(headers))


async def aafter_response(limiter: RateLimiter | None, status_code: int, headers: Mapping[str, str]) -> None:
    if limiter is not None and status_code == 429:
        await limiter.ablock_until(retry_after_seconds(headers))


def core_limiter_of(component: object) -> RateLimiter | None:
    """The core limiter behind a component's `rate_limiter` field: the limiter itself, or the one
    a framework adapter wraps (`haufe_limiter`); None for another framework's own limiter."""
    value = getattr(component, "rate_limiter", None)
    if isinstance(value, RateLimiter):
        return value
    wrapped = getattr(value, "haufe_limiter", None)
    return wrapped if isinstance(wrapped, RateLimiter) else None


def check_rate_limiter(value: object) -> RateLimiter | None:
    if value is None or isinstance(value, RateLimiter):
        return value
    wrapped = getattr(value, "haufe_limiter", None)
    if isinstance(wrapped, RateLimiter):
        return wrapped
    raise ConfigurationError(
        f"rate_limiter must be a haufe_copilot.rate_limit.RateLimiter (InProcessRateLimiter or "
        f"RedisRateLimiter), not {type(value).__name__}."
    )


# -- in one process ----------------------------------------------------------------------------


class InProcessRateLimiter(RateLimiter):
    """The quota for the callers of this process: threads, tasks and event loops alike.

    >>> limiter = InProcessRateLimiter(per_second=15, per_minute=60)
    >>> client = HaufeCopilotClient(rate_limiter=limiter)
    """

    def __init__(
        self,
        *,
        per_second: int | None = 15,
        per_minute: int | None = 60,
        margin_seconds: float = DEFAULT_MARGIN_SECONDS,
    ) -> None:
        super().__init__()
        self.windows = windows_for(per_second, per_minute)
        self.margin_seconds = _check_margin(margin_seconds)
        self._lock = threading.Lock()  # held for microseconds, never across a wait
        self._reserved: deque[float] = deque(maxlen=max(w.limit for w in self.windows))
        self._blocked_until = 0.0

    def _reserve(self, *, only_if_free: bool) -> tuple[float, Any] | None:
        with self._lock:
            now = time.monotonic()
            at = next_slot(self._reserved, now, self._blocked_until, self.windows, self.margin_seconds)
            if only_if_free and at > now:
                return None
            self._reserved.append(at)
            return at - now, None

    async def _areserve(self, *, only_if_free: bool) -> tuple[float, Any] | None:
        return self._reserve(only_if_free=only_if_free)

    def _confirm(self, ticket: Any) -> float:
        with self._lock:
            return max(self._blocked_until - time.monotonic(), 0.0)

    async def _aconfirm(self, ticket: Any) -> float:
        return self._confirm(ticket)

    def block_until(self, retry_after_seconds: float) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, time.monotonic() + max(retry_after_seconds, 0.0))
        self._count(blocks=1)

    async def ablock_until(self, retry_after_seconds: float) -> None:
        self.block_until(retry_after_seconds)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_lock", None)  # a copy in another process counts its own requests from zero
        state["_reserved"] = deque(maxlen=self._reserved.maxlen)
        state["_blocked_until"] = 0.0
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InProcessRateLimiter({_describe(self.windows)})"


def _check_margin(margin: float) -> float:
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 60:
        raise ConfigurationError(f"margin_seconds must be a number of seconds in [0, 60), not {margin!r}.")
    return float(margin)


def _describe(windows: Sequence[Window]) -> str:
    names = {1.0: "per_second", 60.0: "per_minute"}
    return ", ".join(f"{names.get(w.seconds, f'per_{w.seconds:g}s')}={w.limit}" for w in windows)


# -- shared through Redis ----------------------------------------------------------------------

# KEYS: the reservations (a sorted set: a ticket per request, scored by when it goes), the
# blocked-until (a string), the last reservation's time and the ticket counter (a hash).
# ARGV: mode, then per mode: "reserve"/"try": the margin, then for each window its limit and
# length; "confirm": the ticket; "block": the block's length. All times in microseconds of the
# Redis server's own clock (TIME): the machines' clocks never have to agree. A reservation is
# the earliest moment at which the request fits into every window, never before the one handed
# out last (first come, first served); "confirm" moves it to the moment the caller really goes
# (it may wake late), and answers how long a 429 reported meanwhile still blocks. Numbers go
# into Redis through string.format("%.0f"): a plain tostring would round them.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if mode == 'block' then
  local until_ = now + tonumber(ARGV[2])
  if until_ > blocked then
    redis.call('SET', KEYS[2], string.format('%.0f', until_), 'PX', math.ceil((until_ - now) / 1000) + 1000)
  end
  return 0
end
if mode == 'confirm' then
  local planned = redis.call('ZSCORE', KEYS[1], ARGV[2])
  if planned and tonumber(planned) < now then
    redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', now), ARGV[2])
  end
  if blocked > now then return blocked - now end
  return 0
end
local margin = tonumber(ARGV[2])
local at = now
if blocked > at then at = blocked end
local last = tonumber(redis.call('HGET', KEYS[3], 'last') or '0')
if last > at then at = last end
local count = redis.call('ZCARD', KEYS[1])
local keep = 1
local longest = 0
for i = 3, #ARGV, 2 do
  local limit = tonumber(ARGV[i])
  local window = tonumber(ARGV[i + 1])
  if limit > keep then keep = limit end
  if window > longest then longest = window end
  if count >= limit then
    local nth = redis.call('ZREVRANGE', KEYS[1], limit - 1, limit - 1, 'WITHSCORES')
    local free_at = tonumber(nth[2]) + window + margin
    if free_at > at then at = free_at end
  end
end
if mode == 'try' and at > now then return {-1, 0} end
local ticket = redis.call('HINCRBY', KEYS[3], 'tickets', 1)
redis.call('ZADD', KEYS[1], string.format('%.0f', at), ticket)
redis.call('HSET', KEYS[3], 'last', string.format('%.0f', at))
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(keep + 1))
local ttl = math.ceil((at - now + longest + margin) / 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return {at - now, ticket}
"""


class RedisRateLimiter(RateLimiter):
    """The quota shared by every process and machine that names the same Redis and `key`.

    >>> limiter = RedisRateLimiter("redis://redis:6379/0", key="haufe-prod", per_second=15, per_minute=60)
    >>> client = HaufeCopilotClient(rate_limiter=limiter)

    `key` names the quota (use one per Haufe key; never the API key itself: it is stored in
    Redis as it is). Give `redis_url`, or `client` (a `redis.Redis`) and/or `async_client` (a
    `redis.asyncio.Redis`); from a URL both are built on first use, the async one per event loop.
    When Redis cannot be reached, `on_redis_error="open"` (the default) lets requests through
    without the shared quota, logging a WARNING and counting them in `stats`, and
    `"closed"` raises `RateLimiterUnavailableError` before anything is sent. Either way the
    limiter tries Redis again after a second, and never sends or repeats a request itself.
    The limiter pickles (as its configuration: the copy connects anew).
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        client: redis.Redis | None = None,
        async_client: redis.asyncio.Redis | None = None,
        key: str = "haufe-copilot",
        per_second: int | None = 15,
        per_minute: int | None = 60,
        on_redis_error: OnRedisError = "open",
        margin_seconds: float = DEFAULT_MARGIN_SECONDS,
        socket_timeout: float = 1.0,
    ) -> None:
        super().__init__()
        try:
            import redis  # noqa: F401 - an optional dependency: say so at construction
        except ImportError as exc:
            raise ConfigurationError(
                "RedisRateLimiter needs redis-py: pip install 'haufe-copilot[redis]'."
            ) from exc
        if redis_url is None and client is None and async_client is None:
            raise ConfigurationError("RedisRateLimiter needs redis_url=, client= or async_client=.")
        if on_redis_error not in ("open", "closed"):
            raise ConfigurationError(f"on_redis_error must be 'open' or 'closed', not {on_redis_error!r}.")
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"key must be a non-empty string naming the quota, not {key!r}.")
        self.windows = windows_for(per_second, per_minute)
        self.margin_seconds = _check_margin(margin_seconds)
        self.key = key
        self.on_redis_error: OnRedisError = on_redis_error
        self._redis_url = redis_url
        self._socket_timeout = socket_timeout
        # `{key}` is a Redis Cluster hash tag: both keys of one quota live on one shard.
        self._keys = [
            f"haufe-copilot:{{{key}}}:reservations",
            f"haufe-copilot:{{{key}}}:blocked-until",
            f"haufe-copilot:{{{key}}}:order",
        ]
        self._window_args = [round(self.margin_seconds * 1e6)]
        for window in self.windows:
            self._window_args += [window.limit, round(window.seconds * 1e6)]
        self._start(client, async_client)

    def _start(self, client: redis.Redis | None, async_client: redis.asyncio.Redis | None) -> None:
        self._lock = threading.Lock()
        self._client = client
        self._async_client = async_client
        self._script: Any = None
        self._async_scripts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._async_clients: list[redis.asyncio.Redis] = []
        self._down_until = 0.0  # after a failure, go without Redis until then (monotonic)
        self._down_since: float | None = None
        self._blocked_until = 0.0  # the last block known here: kept while Redis is away

    # -- the connections --

    def _where(self) -> str:
        """Host and port of the Redis, for messages (never the URL: it may hold a password)."""
        source = self._client or self._async_client
        if source is not None:
            kwargs = source.connection_pool.connection_kwargs
        else:
            parts = urlsplit(self._redis_url or "")
            kwargs = {"host": parts.hostname, "port": parts.port or 6379}
            if parts.scheme == "unix":
                kwargs["path"] = parts.path
        if "path" in kwargs:
            return f"unix:{kwargs['path']}"
        return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"

    def _connection_options(self) -> dict[str, Any]:
        # No retries inside redis-py: the limiter decides what an outage means, at once.
        return {"socket_timeout": self._socket_timeout, "socket_connect_timeout": self._socket_timeout}

    def _sync_script(self) -> Any:
        if self._script is None:
            with self._lock:
                if self._script is None:
                    if self._client is None:
                        import redis
                        from redis.backoff import NoBackoff
                        from redis.retry import Retry

                        if self._redis_url is None:
                            raise ConfigurationError(
                                "This RedisRateLimiter has only an async_client: use aacquire(), or "
                                "pass client= or redis_url= for sync calls."
                            )
                        self._client = redis.Redis.from_url(
                            self._redis_url, retry=Retry(NoBackoff(), 0), **self._connection_options()
                        )
                    self._script = self._client.register_script(_SCRIPT)
        return self._script

    def _async_script(self) -> Any:
        loop = asyncio.get_running_loop()
        script = self._async_scripts.get(loop)
        if script is None:
            client = self._async_client
            if client is None:
                import redis.asyncio
                from redis.asyncio.retry import Retry
                from redis.backoff import NoBackoff

                if self._redis_url is None:
                    raise ConfigurationError(
                        "This RedisRateLimiter has only a sync client: use acquire(), or pass "
                        "async_client= or redis_url= for async calls."
                    )
                # redis.asyncio connections belong to one event loop: one client per loop.
                client = redis.asyncio.Redis.from_url(
                    self._redis_url, retry=Retry(NoBackoff(), 0), **self._connection_options()
                )
                self._async_clients.append(client)
            script = client.register_script(_SCRIPT)
            self._async_scripts[loop] = script
        return script

    def close(self) -> None:
        """Close the connections this limiter opened from `redis_url` (not those passed in)."""
        if self._redis_url is not None and self._client is not None:
            self._client.close()
            self._client, self._script = None, None

    def __del__(self) -> None:
        # A limiter dropped without close() must not leave its sync connections open (the
        # async ones belong to their event loops: aclose() there).
        with contextlib.suppress(Exception):  # a half-built limiter, or interpreter shutdown
            self.close()

    async def aclose(self) -> None:
        """Close the async connections this limiter opened on the running event loop."""
        loop = asyncio.get_running_loop()
        script = self._async_scripts.pop(loop, None)
        if script is not None and script.registered_client in self._async_clients:
            self._async_clients.remove(script.registered_client)
            await script.registered_client.aclose()

    # -- the script, and what an outage means --

    def _reserve_args(self, only_if_free: bool) -> list[Any]:
        return ["try" if only_if_free else "reserve", *self._window_args]

    def _redis_available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _went_well(self) -> None:
        if self._down_since is not None:
            with self._lock:
                since, self._down_since = self._down_since, None
            if since is not None:
                logger.warning(
                    "Rate limiter: Redis at %s answers again after %.1f s; the shared quota holds again.",
                    self._where(),
                    time.monotonic() - since,
                )

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._count(redis_errors=1)
        with self._lock:
            self._down_until = now + REDIS_RETRY_INTERVAL_SECONDS
            first = self._down_since is None
            if first:
                self._down_since = now
        if first:
            what = (
                "letting requests through without the shared quota (on_redis_error='open')"
                if self.on_redis_error == "open"
                else "refusing requests until it answers (on_redis_error='closed')"
            )
            logger.warning(
                "Rate limiter: Redis at %s is unreachable (%s: %s); %s.",
                self._where(),
                type(exc).__name__,
                exc,
                what,
            )

    def _without_redis(
        self, exc: BaseException | None, *, only_if_free: bool = False
    ) -> tuple[float, Any] | None:
        """What a reservation is worth while Redis is away: the local block, or a refusal."""
        if self.on_redis_error == "closed":
            error = RateLimiterUnavailableError(
                f"The rate limiter's Redis at {self._where()} is unreachable, so nothing was sent "
                f"(on_redis_error='closed'). Retry when Redis is back, or pass on_redis_error='open' "
                "to let requests through without the shared quota while it is away."
            )
            raise error from exc
        wait = self._local_block()
        if only_if_free and wait > 0:
            return None
        self._count(passed_without_redis=1)
        return wait, None

    def _local_block(self) -> float:
        return max(self._blocked_until - time.monotonic(), 0.0)

    @staticmethod
    def _redis_errors() -> tuple[type[BaseException], ...]:
        import redis.exceptions

        return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

    def _reserve(self, *, only_if_free: bool) -> tuple[float, Any] | None:
        if not self._redis_available():
            return self._without_redis(None, only_if_free=only_if_free)
        try:
            result = self._sync_script()(keys=self._keys, args=self._reserve_args(only_if_free))
        except self._redis_errors() as exc:
            self._failed(exc)
            return self._without_redis(exc, only_if_free=only_if_free)
        self._went_well()
        return _reservation(result)

    async def _areserve(self, *, only_if_free: bool) -> tuple[float, Any] | None:
        if not self._redis_available():
            return self._without_redis(None, only_if_free=only_if_free)
        try:
            result = await self._async_script()(keys=self._keys, args=self._reserve_args(only_if_free))
        except self._redis_errors() as exc:
            self._failed(exc)
            return self._without_redis(exc, only_if_free=only_if_free)
        self._went_well()
        return _reservation(result)

    def _confirm(self, ticket: Any) -> float:
        if ticket is None or not self._redis_available():
            return self._local_block()
        try:
            result = self._sync_script()(keys=self._keys, args=["confirm", ticket])
        except self._redis_errors() as exc:
            self._failed(exc)
            return self._local_block()
        return max(int(result) / 1e6, self._local_block())

    async def _aconfirm(self, ticket: Any) -> float:
        if ticket is None or not self._redis_available():
            return self._local_block()
        try:
            result = await self._async_script()(keys=self._keys, args=["confirm", ticket])
        except self._redis_errors() as exc:
            self._failed(exc)
            return self._local_block()
        return max(int(result) / 1e6, self._local_block())

    def _block_locally(self, retry_after_seconds: float) -> int:
        seconds = max(float(retry_after_seconds), 0.0)
        with self._lock:
            self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)
        self._count(blocks=1)
        return math.ceil(seconds * 1e6)

    def block_until(self, retry_after_seconds: float) -> None:
        block_us = self._block_locally(retry_after_seconds)
        if not self._redis_available():
            return
        try:
            self._sync_script()(keys=self._keys, args=["block", block_us])
        except self._redis_errors() as exc:
            self._failed(exc)

    async def ablock_until(self, retry_after_seconds: float) -> None:
        block_us = self._block_locally(retry_after_seconds)
        if not self._redis_available():
            return
        try:
            await self._async_script()(keys=self._keys, args=["block", block_us])
        except self._redis_errors() as exc:
            self._failed(exc)

    def reset(self) -> None:
        """Forget every reservation and block of this quota, in Redis (for tests and tools)."""
        client = self._sync_script().registered_client
        client.delete(*self._keys)

    def __getstate__(self) -> dict[str, Any]:
        if self._redis_url is None:
            raise TypeError(
                "A RedisRateLimiter built from a client object cannot be pickled; build it from "
                "redis_url= to send it to other processes."
            )
        state = super().__getstate__()
        for name in ("_lock", "_client", "_async_client", "_script", "_async_scripts", "_async_clients"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._start(None, None)

    def __repr__(self) -> str:
        return (
            f"RedisRateLimiter(redis={self._where()}, key={self.key!r}, {_describe(self.windows)}, "
            f"on_redis_error={self.on_redis_error!r})"
        )


def _reservation(result: Any) -> tuple[float, Any] | None:
    """The script's answer to "reserve"/"try": [microseconds to wait, ticket] ([-1, 0]: none free)."""
    wait_us, ticket = int(result[0]), int(result[1])
    return None if wait_us < 0 else (wait_us / 1e6, ticket)
