"""A throwaway `redis-server` on a free loopback port, for the tests and the quota benchmark.

Nothing is persisted (`--save ''`, `--appendonly no`, a temporary directory) and it listens on
127.0.0.1 only. `make test` installs the server (scripts/system-packages).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from haufe_emulator.server import ServerForABlock

if TYPE_CHECKING:
    from typing_extensions import Self


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        raise RuntimeError(
            "redis-server is not installed: run `make system-packages` (or install Debian's "
            "redis-server package) to run the shared rate limiter's tests and benchmark."
        )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer(ServerForABlock):
    """`with RedisServer() as redis: redis.url`; `stop()` and `start()` again keep the port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._directory = tempfile.TemporaryDirectory(prefix="haufe-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> Self:
        command = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", self._directory.name]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._process = None

    def __exit__(self, *exc_info: Any) -> None:
        super().__exit__(*exc_info)
        self._directory.cleanup()
