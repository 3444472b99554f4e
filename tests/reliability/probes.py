"""What the reliability checks measure with: this process's sockets and file descriptors (from
`/proc`), a client's connection pool, the core's own log of attempts and waits, and the warnings
asyncio prints when a task or a loop is mishandled.

"Open connections" are counted twice over, so that a leak cannot hide: the TCP sockets this
process holds to a server's port (the client's ends; the in-process emulator's ends have the port
as their *local* port and are not counted), and the connections of the client's httpx pool that
are not idle. A connection kept alive in the pool for the next request is not a leak; any socket
beyond those, or any pool connection still busy after a call has ended, is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

# -- sockets and file descriptors --------------------------------------------------------------


def _socket_fds() -> list[int]:
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed since listdir
            continue
        if target.startswith("socket:["):
            fds.append(int(name))
    return fds


#: tcpi_state, the first byte of `struct tcp_info` (linux/tcp.h), for messages.
TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 10: "LISTEN"}


def _tcp_sockets() -> list[tuple[int | None, str]]:
    """(remote port, state) of every TCP socket this process holds (None: not connected)."""
    found = []
    for fd in _socket_fds():
        try:
            dup = os.dup(fd)
        except OSError:
            continue
        try:
            sock = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            continue
        with sock:
            if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
                continue
            try:
                state = TCP_STATES.get(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0], "?")
            except OSError:
                state = "?"
            try:
                remote: int | None = sock.getpeername()[1]
            except OSError:
                remote = None
            found.append((remote, state))
    return found


def client_sockets(port: int) -> list[str]:
    """The states of the TCP sockets this process holds open towards `port` (client ends: the
    in-process emulator's own ends have `port` as their local port, not their remote one)."""
    return [state for remote, state in _tcp_sockets() if remote == port]


def tcp_connections() -> int:
    """Every connected TCP socket this process holds (both ends of an in-process loopback call)."""
    return sum(1 for remote, state in _tcp_sockets() if remote is not None and state != "LISTEN")


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# -- a client's pool ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolState:
    idle: int
    busy: int

    def __str__(self) -> str:
        return f"{self.idle} idle, {self.busy} busy"


#: A client's httpx pool(s): one client, several (the async client keeps shards per loop), or none.
Pools = httpx.Client | httpx.AsyncClient | Sequence[httpx.Client | httpx.AsyncClient] | None


def pool_state(http: Pools) -> PoolState:
    """The connections of httpx pools: kept alive (idle) or still in use (busy)."""
    if http is None:
        return PoolState(0, 0)
    if isinstance(http, Sequence):
        states = [pool_state(one) for one in http]
        return PoolState(sum(s.idle for s in states), sum(s.busy for s in states))
    pool = getattr(http._transport, "_pool", None)
    connections = list(getattr(pool, "connections", ()) or ())
    idle = busy = 0
    for connection in connections:
        if connection.is_closed():
            continue
        if connection.is_idle():
            idle += 1
        else:
            busy += 1
    return PoolState(idle, busy)


def sync_pool(client: Any) -> httpx.Client:
    """The httpx pool of a `HaufeCopilotClient`."""
    http: httpx.Client = client._http
    return http


def async_pool(client: Any) -> Pools:
    """The httpx pool(s) an `AsyncHaufeCopilotClient` uses on the running loop (None: none yet)."""
    if client._given_http is not None:
        given: httpx.AsyncClient = client._given_http
        return given
    pool = client._pools.pool_of(asyncio.get_running_loop())
    if pool is None:
        return None
    shards = getattr(pool, "shards", None)  # several small pools per loop, used in turn
    return list(shards) if shards is not None else pool  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Connections:
    """What is open towards a server after a call has ended."""

    sockets: tuple[str, ...]
    pool: PoolState

    @property
    def leaked(self) -> int:
        """Sockets beyond the pool's idle keep-alive connections (a busy pool connection is one of
        them; a socket outside the pool too), and at least the busy pool connections."""
        return max(len(self.sockets) - self.pool.idle, self.pool.busy)

    def __str__(self) -> str:
        return f"{self.leaked} open ({len(self.sockets)} sockets, pool {self.pool})"


def connections(port: int | None, http: Pools) -> Connections:
    sockets = tuple(client_sockets(port)) if port is not None else ()
    return Connections(sockets, pool_state(http))


def settle(port: int | None, http: Pools, timeout: float = 0.5) -> Connections:
    """`connections()` once nothing is leaked, or as it is after `timeout` (a sync check)."""
    deadline = time.monotonic() + timeout
    while True:
        state = connections(port, http)
        if state.leaked == 0 or time.monotonic() > deadline:
            return state
        time.sleep(0.005)


async def asettle(port: int | None, http: Pools, timeout: float = 0.5) -> Connections:
    """`settle()` for a coroutine: lets the loop run the closes it has scheduled."""
    deadline = time.monotonic() + timeout
    while True:
        state = connections(port, http)
        if state.leaked == 0 or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.005)


# -- peak memory ------------------------------------------------------------------------------


def reset_peak_rss() -> int:
    """Reset this process's peak RSS to its RSS now (Linux: clear_refs 5) and return it in KB;
    0 where that is not possible (then no growth is measured)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return _status_kb("VmRSS")
    except OSError:
        return 0


def peak_rss_kb() -> int:
    return _status_kb("VmHWM")


def _status_kb(name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


# -- the core's log: attempts and waits --------------------------------------------------------


@dataclass
class ClientLog:
    """The `haufe_copilot` log records of one call, each stamped with `time.monotonic()`."""

    records: list[tuple[float, logging.LogRecord]] = field(default_factory=list)

    @property
    def attempts(self) -> list[float]:
        """When each request was sent (the core logs every attempt at DEBUG just before sending)."""
        return [at for at, r in self.records if r.levelno == logging.DEBUG and "headers=" in r.msg]

    @property
    def announced_waits(self) -> list[float]:
        """The waits the core announced ("Retrying in ... s"), exactly as it computed them."""
        return [float(r.args[0]) for _, r in self.records if r.msg.startswith("Retrying in")]  # type: ignore[index]

    @property
    def measured_waits(self) -> list[float]:
        """From each "Retrying" record to the next attempt: the wait as it really happened."""
        waits = []
        retry_at: float | None = None
        for at, record in self.records:
            if record.msg.startswith("Retrying in"):
                retry_at = at
            elif retry_at is not None and record.levelno == logging.DEBUG and "headers=" in record.msg:
                waits.append(at - retry_at)
                retry_at = None
        return waits

    def text(self) -> str:
        return "\n".join(record.getMessage() for _, record in self.records)


class _Stamp(logging.Handler):
    def __init__(self, log: ClientLog) -> None:
        super().__init__(logging.DEBUG)
        self.log = log
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:  # this call's records, not the emulator thread's
            self.log.records.append((time.monotonic(), record))


@contextmanager
def client_log() -> Iterator[ClientLog]:
    """Capture the core's log records (DEBUG on for the duration)."""
    logger = logging.getLogger("haufe_copilot")
    log = ClientLog()
    handler = _Stamp(log)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield log
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# -- asyncio's complaints --------------------------------------------------------------------


#: What asyncio and the interpreter say when a task, a generator or a loop is left behind.
LOOP_COMPLAINTS = (
    "Task was destroyed",
    "Event loop is closed",
    "was never awaited",
    "Task exception was never retrieved",
    "asynchronous generator",
    "unclosed",
)


@dataclass
class Complaints:
    messages: list[str] = field(default_factory=list)

    @property
    def relevant(self) -> list[str]:
        return [m for m in self.messages if any(c in m for c in LOOP_COMPLAINTS)]


class _Collect(logging.Handler):
    def __init__(self, complaints: Complaints) -> None:
        super().__init__(logging.WARNING)
        self.complaints = complaints

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r}"
        self.complaints.messages.append(text)


@contextmanager
def loop_complaints() -> Iterator[Complaints]:
    """Collect asyncio's error log and unraisable exceptions (a `__del__` on a closed loop)."""
    complaints = Complaints()
    handler = _Collect(complaints)
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    previous_hook = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        complaints.messages.append(f"unraisable: {unraisable.exc_value!r} in {unraisable.object!r}")

    sys.unraisablehook = hook
    # A ResourceWarning is an exception in a __del__ (unraisable) where warnings are errors, as in
    # this project's pytest configuration, and a plain warning elsewhere: hear it either way.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield complaints
        finally:
            sys.unraisablehook = previous_hook
            logger.removeHandler(handler)
            complaints.messages += [f"warning: {w.category.__name__}: {w.message}" for w in caught]
