"""The emulator's gateway quota: at most so many requests per key in every window
(`--rate-limit 15/s,60/min`, `EmulatorConfig(rate_limit=...)`).

A request over the quota is answered as the service's gateway does: 429 with
`{"error_code": "rate_limit_gateway", ...}` (or `{"message": "Rate limit exceeded!"}` with
`rate_limit_answer="rate_limit_message"`), `Retry-After` in whole seconds and `retry-after-ms`
exactly: when the oldest request of the full window leaves it. Refused requests do not count
against the quota. The windows slide (any stretch of the window's length, not calendar
seconds), which is the strictest reading of "15 per second".
"""

from __future__ import annotations

import collections
import hashlib
import math
import threading
import time
from collections.abc import Mapping, Sequence

from haufe_copilot.types.quota import Window, next_slot

__all__ = ["QuotaLedger", "quota_key"]


def quota_key(headers: Mapping[str, str]) -> str | None:
    """Whose quota a request counts against: its `api-key`, else its bearer token (as a digest:
    the ledger never holds a credential); None for a request without either."""
    credential = headers.get("api-key")
    if credential is None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        credential = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    if credential is None:
        return None
    return hashlib.sha256(credential.encode("utf-8", "replace")).hexdigest()[:16]


class QuotaLedger:
    """Arrival times per key and what was admitted and refused (an `EmulatorState` holds one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: dict[str, collections.deque[float]] = {}
        self.admitted = 0
        self.refused = 0

    def admit(self, key: str, windows: Sequence[Window], now: float | None = None) -> float | None:
        """None if the request fits into every window of its key (and is counted), else the
        seconds until it would."""
        now = time.monotonic() if now is None else now
        with self._lock:
            arrivals = self._arrivals.get(key)
            if arrivals is None:
                arrivals = self._arrivals[key] = collections.deque(maxlen=max(w.limit for w in windows))
            fits_at = next_slot(arrivals, now, 0.0, windows)
            if fits_at > now:
                self.refused += 1
                return fits_at - now
            arrivals.append(now)
            self.admitted += 1
            return None

    def reset(self) -> None:
        with self._lock:
            self._arrivals.clear()
            self.admitted = self.refused = 0


def retry_after_headers(seconds: float) -> dict[str, str]:
    """`Retry-After` in whole seconds (at least 1, as HTTP has it) and `retry-after-ms` exactly."""
    return {
        "Retry-After": str(max(1, math.ceil(seconds))),
        "retry-after-ms": str(max(1, math.ceil(seconds * 1000))),
    }
