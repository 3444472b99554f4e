"""What the emulator remembers: its threads, and a record of what it received and did.

The record is what tests assert on (the request bodies a client really sent, when a client
disconnected), so it is kept for every request, bounded in count and in bytes so that a soak run
or a client sending large bodies does not grow it without end. A request the emulator refused
before reading its body (a bad key, a bad fault header, a body over the cap) is recorded without
its body.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from haufe_copilot.types.headers import redacted_headers

from .quota import QuotaLedger
from .scripts import ScriptBook, api_of

MAX_RECORDS = 10_000
#: The recorded bodies (as received) and headers together stay under this many bytes.
MAX_RECORD_BYTES = 64 * 1024 * 1024
MAX_THREADS = 10_000
#: Distinct `x-emulator-fault-id`s counted; the oldest is forgotten beyond.
MAX_FAULT_IDS = 100_000


def decode_body(raw: bytes | None) -> Any:
    """A request body as the endpoints see it: its JSON, the text where it is not JSON (or
    nests deeper than the parser goes), None where there is none."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw.decode("utf-8", errors="replace")


@dataclass
class Thread:
    id: str
    assistant_id: str
    user_id: str | None
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RecordedRequest:
    request_id: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # credentials redacted
    #: The body as received; None where the emulator refused the request before reading it.
    raw_body: bytes | None
    at: float  # time.monotonic()

    @property
    def body(self) -> Any:
        """The body's JSON (decoded on each access: the record keeps only the bytes)."""
        return decode_body(self.raw_body)

    @property
    def api(self) -> str | None:
        """The API family of the request (`scripts.APIS`), None for other paths."""
        return api_of(self.path)

    @property
    def question(self) -> str | None:
        """The content of the last user message the request sent (None where it sent none)."""
        body = self.body
        messages = body.get("messages") if isinstance(body, dict) else None
        users = [m for m in messages or () if isinstance(m, dict) and m.get("role") == "user"]
        content = users[-1].get("content") if users else None
        return content if isinstance(content, str) else None

    @property
    def size(self) -> int:
        """What this record counts against `MAX_RECORD_BYTES`."""
        headers = sum(len(name) + len(value) for name, value in self.headers.items())
        return len(self.raw_body or b"") + headers + len(self.path) + 200


@dataclass
class StreamRecord:
    """One streamed answer, as the emulator sent it."""

    request_id: str
    started_at: float
    deltas_sent: int = 0
    ended_at: float | None = None
    #: "complete", "disconnected" (the client went away), "cut" (an injected abrupt close),
    #: "error" (an injected error line), "malformed".
    outcome: str | None = None


class EmulatorState:
    """Threads and records; safe to read from a test's thread while the server runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: OrderedDict[str, Thread] = OrderedDict()
        self.requests: collections.deque[RecordedRequest] = collections.deque()
        self.recorded_bytes = 0
        self.streams: collections.deque[StreamRecord] = collections.deque(maxlen=MAX_RECORDS)
        self.fault_counts: OrderedDict[str, int] = OrderedDict()
        #: Requests per key against `EmulatorConfig.rate_limit`: admitted, refused (429).
        self.quota = QuotaLedger()
        #: What tests scripted: answers and faults by API (scripts.py).
        self.scripts = ScriptBook()

    # threads -------------------------------------------------------------------------------

    def new_thread(self, assistant_id: str, user_id: str | None) -> Thread:
        thread = Thread(id=str(uuid.uuid4()), assistant_id=assistant_id, user_id=user_id)
        with self._lock:
            self._threads[thread.id] = thread
            while len(self._threads) > MAX_THREADS:
                self._threads.popitem(last=False)
        return thread

    def thread(self, thread_id: str) -> Thread | None:
        with self._lock:
            return self._threads.get(thread_id)

    # records -------------------------------------------------------------------------------

    def record_request(
        self,
        request_id: str,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        raw_body: bytes | None,
    ) -> None:
        safe = redacted_headers(headers.items())
        record = RecordedRequest(request_id, method, path, query, safe, raw_body, time.monotonic())
        with self._lock:
            self.requests.append(record)
            self.recorded_bytes += record.size
            # the newest record always stays: a body is capped far below MAX_RECORD_BYTES
            while len(self.requests) > 1 and (
                len(self.requests) > MAX_RECORDS or self.recorded_bytes > MAX_RECORD_BYTES
            ):
                self.recorded_bytes -= self.requests.popleft().size

    def start_stream(self, request_id: str) -> StreamRecord:
        record = StreamRecord(request_id=request_id, started_at=time.monotonic())
        self.streams.append(record)
        return record

    def count_fault(self, key: str) -> int:
        """How many times this fault has fired before, counting this one."""
        with self._lock:
            count = self.fault_counts.pop(key, 0) + 1
            self.fault_counts[key] = count  # now the newest
            while len(self.fault_counts) > MAX_FAULT_IDS:
                self.fault_counts.popitem(last=False)
            return count

    def bodies(self, path: str) -> list[Any]:
        """The JSON bodies received on a path, oldest first (for tests)."""
        return [r.body for r in list(self.requests) if r.path == path]

    def reset(self) -> None:
        with self._lock:
            self._threads.clear()
            self.requests.clear()
            self.recorded_bytes = 0
            self.streams.clear()
            self.fault_counts.clear()
        self.quota.reset()
        self.scripts.reset()
