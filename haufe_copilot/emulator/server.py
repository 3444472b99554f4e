"""Serving the emulator: on a free loopback port in a background thread (tests, the demo), or in
the foreground (the CLI)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

import uvicorn

from .app import DEFAULT_API_KEY, DEFAULT_ASSISTANT_ID, EmulatorConfig, create_app
from .state import EmulatorState

if TYPE_CHECKING:
    from typing_extensions import Self


class EmulatorServer:
    """The emulator on `127.0.0.1:<free port>`, in a daemon thread.

    >>> with EmulatorServer() as emulator:
    ...     client = HaufeCopilotClient(api_key=emulator.api_key, base_url=emulator.url)
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or EmulatorConfig()
        self.state = EmulatorState()
        self.app = create_app(self.config, self.state)
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(config: EmulatorConfig, host: str, port: int) -> None:
    """Serve in the foreground until interrupted (`haufe-copilot emulator`)."""
    uvicorn.run(create_app(config), host=host, port=port, log_level="info", lifespan="off")
