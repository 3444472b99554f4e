"""Small real servers for what the emulator cannot do, on loopback sockets (real over fake).

`RawServer(behaviour)` accepts TCP connections in a thread and, for every request it reads whole,
does one of:

- `reset`: close at once with SO_LINGER 0, so the kernel answers with RST: a reset before the
  status line;
- `malformed`: `200 application/json` with a body that is not JSON;
- `huge_error`: `500 text/html` with a body of `size` bytes (a proxy's giant page);
- `big_body`: `200 application/json` with a body of `size` bytes;
- `endless_line`: `200 application/x-ndjson`, chunked, bytes without a newline until the client
  leaves;
- `redirect`: `307` to `location` + the request's path (a redirect to another host);
- `canned`: `status` with `head` (extra header lines) and `payload` as it is: a compression
  bomb, an adversarial error page, JSON nested 200k deep;
- `scripted`: the n-th request gets `script[n]` (the last one once the script runs out): the
  bytes to send, after which the connection closes (see `reply()`), or None for a reset; a
  callable gets the request and returns either;
- `trickle`: `200 content_type`, chunked: `prelude` (some content, or nothing), then `piece`
  every `interval` seconds until the client leaves or `give_up` seconds have passed (then the
  body ends): blank NDJSON lines, SSE `: keep-alive` comments, one byte at a time of a line or
  body that never ends, or content too slow to ever finish.

It records each request's head (`requests`, header names lower-cased) so tests can see what a
client sent, and counts connections. `refused_port()` gives a port where nothing listens, and
`emulator_child()` runs the emulator in a process of its own (so that its memory, or this
process's sockets and descriptors, are measured alone).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

Behaviour = Literal[
    "reset",
    "malformed",
    "huge_error",
    "big_body",
    "endless_line",
    "redirect",
    "canned",
    "scripted",
    "trickle",
]


@dataclass
class RawRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


#: One step of a `scripted` server: the bytes to send (None: a reset), or how to make them.
Scripted = bytes | None | Callable[[RawRequest], "bytes | None"]


@dataclass
class RawServer:
    behaviour: Behaviour
    host: str = "127.0.0.1"
    size: int = 8 * 1024 * 1024
    location: str = ""
    status: int = 200
    head: dict[str, str] = field(default_factory=dict)
    payload: bytes = b""
    script: Sequence[Scripted] = ()
    content_type: str = "application/x-ndjson"
    prelude: bytes = b""
    piece: bytes = b"\n"
    interval: float = 0.2
    give_up: float = 30.0
    requests: list[RawRequest] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, 0))
        self._listener.listen(128)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"raw-{self.behaviour}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for worker in list(self._workers):
            worker.join(timeout=5)
        self._listener.close()

    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    # -- serving ---------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._workers = [w for w in self._workers if w.is_alive()]
            self._workers.append(worker)
            worker.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            while not self._stop.is_set():
                request = _read_request(conn)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                if not self._answer(conn, request):
                    return
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _answer(self, conn: socket.socket, request: RawRequest) -> bool:
        """Answer one request; False when the connection is over."""
        if self.behaviour == "scripted":
            with self._lock:
                step = self.script[min(len(self.requests), len(self.script)) - 1]
            answer = step(request) if callable(step) else step
            if answer is None:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                conn.sendall(answer)
            return False
        if self.behaviour == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if self.behaviour == "malformed":
            body = b'{"content": "Die Antwort bricht hier ab'
            conn.sendall(_head(200, "application/json", len(body)) + body)
            return True
        if self.behaviour in ("huge_error", "big_body"):
            status, kind = (500, "text/html") if self.behaviour == "huge_error" else (200, "application/json")
            conn.sendall(_head(status, kind, self.size))
            block = (b"<p>" + b"x" * 1021) if kind == "text/html" else b'{"content": "' + b"y" * 1011
            sent = 0
            while sent < self.size and not self._stop.is_set():
                piece = block[: self.size - sent]
                conn.sendall(piece)
                sent += len(piece)
            return True
        if self.behaviour == "endless_line":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            chunk = b"z" * 16384
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            while not self._stop.is_set():
                conn.sendall(frame)  # raises once the client has gone
            return False
        if self.behaviour == "trickle":
            head = f"HTTP/1.1 200 OK\r\ncontent-type: {self.content_type}\r\ntransfer-encoding: chunked\r\n"
            conn.sendall(head.encode() + b"\r\n")
            if self.prelude:
                conn.sendall(_chunk(self.prelude))
            ends = time.monotonic() + self.give_up
            while not self._stop.wait(self.interval) and time.monotonic() < ends:
                conn.sendall(_chunk(self.piece))  # raises once the client has gone
            conn.sendall(b"0\r\n\r\n")
            return False
        if self.behaviour == "redirect":
            conn.sendall(
                b"HTTP/1.1 307 Temporary Redirect\r\nlocation: "
                + (self.location + request.target).encode()
                + b"\r\ncontent-length: 0\r\n\r\n"
            )
            return True
        if self.behaviour == "canned":
            lines = "".join(f"{name}: {value}\r\n" for name, value in self.head.items())
            status = f"HTTP/1.1 {self.status} Canned\r\ncontent-length: {len(self.payload)}\r\n"
            conn.sendall(f"{status}{lines}\r\n".encode() + self.payload)
            return True
        raise ValueError(self.behaviour)


def reply(status: int, content_type: str, body: bytes, *, chunked: bool = False) -> bytes:
    """A whole answer for a `scripted` server: a complete body (Content-Length, or chunked with
    its terminating chunk), so that a client sees the body end cleanly, not a cut."""
    reason = {200: "OK", 202: "Accepted", 409: "Conflict", 429: "Too Many Requests"}.get(status, "Status")
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\nconnection: close\r\n"
    if not chunked:
        return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body
    framed = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    return f"{head}transfer-encoding: chunked\r\n\r\n".encode() + framed


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _head(status: int, content_type: str, length: int) -> bytes:
    reason = {200: "OK", 500: "Internal Server Error"}[status]
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {length}\r\n"
        "x-request-id: raw-server\r\n\r\n"
    ).encode()


def _read_request(conn: socket.socket) -> RawRequest | None:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return None
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            break
        body += piece
    return RawRequest(method, target, headers, body[:length])


def refused_port() -> int:
    """A loopback port where nothing listens (bound, then closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


#: The child's whole program: the emulator on a free port, which it prints, until its stdin closes.
_SERVE = """
import sys
from haufe_emulator import EmulatorConfig, EmulatorServer
server = EmulatorServer(EmulatorConfig(api_keys=frozenset({sys.argv[1]})))
server.start()
print(server.port, flush=True)
sys.stdin.read()  # until the parent closes our stdin
server.stop()
"""


@contextlib.contextmanager
def emulator_child(api_key: str, *, quiet: bool = False) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The emulator accepting `api_key` in a child process on a loopback port: the process and
    the port. At the end its stdin is closed (it stops) and it is reaped; `quiet` drops what it
    writes to stderr."""
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVE, api_key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else None,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield child, int(child.stdout.readline())
    finally:
        if child.stdin is not None:
            child.stdin.close()
        reap(child)


def reap(child: subprocess.Popen[str]) -> None:
    """Wait for a child that was asked to stop (killed after 10 s), and close its stdout."""
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    if child.stdout is not None:
        child.stdout.close()
