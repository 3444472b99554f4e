"""Serving the emulator: on a free loopback port in a background thread (tests, the demo), or in
the foreground (the CLI).

Connections are bounded in time: a connection must complete each request's headers within
`HEADER_TIMEOUT_SECONDS` of opening (or of its previous answer), else it is closed; an idle
keep-alive connection is closed after `KEEP_ALIVE_SECONDS`; a request's body must arrive within
`app.BODY_TIMEOUT_SECONDS` (a 408). uvicorn times out only idle keep-alive connections, so the
header deadline is added to its h11 protocol here. Headers are capped at h11's 16 KiB.
"""

from __future__ import annotations

import abc
import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import DEFAULT_API_KEY, DEFAULT_ASSISTANT_ID, EmulatorConfig, create_app
from .state import EmulatorState

if TYPE_CHECKING:
    from typing_extensions import Self


#: Seconds a connection has to send a request's headers (from opening, or its previous answer).
HEADER_TIMEOUT_SECONDS = 10.0
#: Seconds an idle keep-alive connection stays open between requests.
KEEP_ALIVE_SECONDS = 5.0


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request headers.

    While the client's side of the connection is idle (before its request line, or between
    requests) a timer runs; a request whose headers complete in time stops it, and it restarts
    for the next request. A connection still without complete headers at the deadline (a
    slowloris, or a client that connected and said nothing) is closed. Streamed answers and
    slow bodies are not affected: the client's side is then past its headers."""

    header_timeout: ClassVar[float] = HEADER_TIMEOUT_SECONDS
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._follow_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _follow_header_deadline(self) -> None:
        waiting_for_headers = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if not waiting_for_headers:
            self._stop_header_timer()
        elif self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_deadline_passed)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(header_timeout: float) -> type[HeaderDeadlineProtocol]:
    """`HeaderDeadlineProtocol` with its own deadline (uvicorn builds protocols from a class)."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout": header_timeout})


def _bounded_connections(header_timeout: float, keep_alive: float) -> dict[str, Any]:
    """The uvicorn settings that bound a connection's time (see the module's docstring)."""
    return {"http": guarded_protocol(header_timeout), "timeout_keep_alive": keep_alive}


class ServerForABlock(abc.ABC):
    """A server that serves for a `with` block: `start()` on entering it, `stop()` on leaving it
    (the emulator here; the benchmarks' throwaway Redis too)."""

    @abc.abstractmethod
    def start(self, timeout: float = 10.0) -> Self:
        """Serve, once ready within `timeout` seconds."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop serving (a stopped server may be started again)."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class EmulatorServer(ServerForABlock):
    """The emulator on `127.0.0.1:<free port>`, in a daemon thread.

    >>> with EmulatorServer() as emulator:
    ...     client = HaufeCopilotClient(api_key=emulator.api_key, base_url=emulator.url)

    `header_timeout` / `keep_alive`: see `HEADER_TIMEOUT_SECONDS`, `KEEP_ALIVE_SECONDS`.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        header_timeout: float = HEADER_TIMEOUT_SECONDS,
        keep_alive: float = KEEP_ALIVE_SECONDS,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.state = EmulatorState()
        self.app = create_app(self.config, self.state)
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._connection_limits = _bounded_connections(header_timeout, keep_alive)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def api_key(self) -> str:
        """A key the emulator accepts (the development key where it is configured)."""
        keys = self.config.api_keys
        return DEFAULT_API_KEY if DEFAULT_API_KEY in keys else sorted(keys)[0]

    @property
    def assistant_id(self) -> str:
        ids = self.config.assistant_ids
        return DEFAULT_ASSISTANT_ID if DEFAULT_ASSISTANT_ID in ids else sorted(ids)[0]

    def start(self, timeout: float = 10.0) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
            limit_concurrency=None,
            backlog=4096,
            **self._connection_limits,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="haufe-copilot-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.005)
        self._socket = sock  # uvicorn serves on this very socket: close it only after stopping
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._server = None
        self._thread = None


def serve(config: EmulatorConfig, host: str, port: int) -> None:
    """Serve in the foreground until interrupted (`haufe-copilot emulator`)."""
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level="info",
        lifespan="off",
        **_bounded_connections(HEADER_TIMEOUT_SECONDS, KEEP_ALIVE_SECONDS),
    )
