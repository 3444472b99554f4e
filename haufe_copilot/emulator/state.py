"""What the emulator remembers: its threads, and a record of what it received and did.

The record is what tests assert on (the request bodies a client really sent, when a client
disconnected), so it is kept for every request, bounded so that a soak run does not grow it
without end.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .._logging import redacted_headers
from .quota import QuotaLedger

MAX_RECORDS = 10_000
MAX_THREADS = 10_000


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
    body: Any
    at: float  # time.monotonic()


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
        self.requests: collections.deque[RecordedRequest] = collections.deque(maxlen=MAX_RECORDS)
        self.streams: collections.deque[StreamRecord] = collections.deque(maxlen=MAX_RECORDS)
        self.fault_counts: collections.Counter[str] = collections.Counter()
        #: Requests per key against `EmulatorConfig.rate_limit`: admitted, refused (429).
        self.quota = QuotaLedger()

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
        body: Any,
    ) -> None:
        safe = redacted_headers(headers.items())
        self.requests.append(RecordedRequest(request_id, method, path, query, safe, body, time.monotonic()))

    def start_stream(self, request_id: str) -> StreamRecord:
        record = StreamRecord(request_id=request_id, started_at=time.monotonic())
        self.streams.append(record)
        return record

    def count_fault(self, key: str) -> int:
        """How many times this fault has fired before, counting this one."""
        with self._lock:
            self.fault_counts[key] += 1
            return self.fault_counts[key]

    def bodies(self, path: str) -> list[Any]:
        """The JSON bodies received on a path, oldest first (for tests)."""
        return [r.body for r in list(self.requests) if r.path == path]

    def reset(self) -> None:
        with self._lock:
            self._threads.clear()
            self.requests.clear()
            self.streams.clear()
            self.fault_counts.clear()
        self.quota.reset()
