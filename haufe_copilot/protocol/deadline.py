"""A call's time limits, sans I/O: a total deadline, and a stream's stall guard that counts content.

httpx's timeouts bound each network operation: its read timeout restarts with every byte, so a
server that sends a blank line, a `: keep-alive` comment or one byte every second keeps a call
alive forever. Two limits on top of it, shared by both clients:

- `Deadline`: the call's total time, from its first request to its end, across every attempt,
  wait between attempts and re-attachment (a stream's time includes the caller's between items).
- `ReadGuard`: one attempt's watch over its body. It raises once the deadline has passed, and,
  on a stream, once no content (an item for the caller) has arrived for longer than the read
  timeout: keep-alives, blank lines and a drip of bytes that completes nothing are not content.
"""

from __future__ import annotations

import math
import time

import httpx

from haufe_copilot.errors import APITimeoutError, ConfigurationError, HaufeCopilotError

__all__ = ["Deadline", "ReadGuard", "check_deadline"]

_monotonic = time.monotonic


def check_deadline(
    value: object, error: type[HaufeCopilotError] = ConfigurationError, name: str = "deadline"
) -> float | None:
    """A deadline in seconds (a positive, finite number) or None (no deadline)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise error(
        f"{name} must be a positive number of seconds (the most a whole call may take), or None "
        f"for no deadline; not {value!r}."
    )


class Deadline:
    """A call's total time budget. It starts when the call sends its first request (a stream's
    first iteration, not its creation), and one object is shared by everything the call does."""

    __slots__ = ("_ends_at", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends_at: float | None = None

    def start(self) -> Deadline:
        """Start the clock (once: a later call keeps the first start)."""
        if self._ends_at is None:
            self._ends_at = _monotonic() + self.seconds
        return self

    def remaining(self) -> float:
        return self.start()._ends_at - _monotonic()  # type: ignore[operator]

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def capped(self, timeout: httpx.Timeout) -> httpx.Timeout:
        """`timeout` with no phase longer than what is left, so that no single network
        operation outlasts the deadline."""
        left = max(self.remaining(), 0.001)

        def cap(value: float | None) -> float:
            return left if value is None else min(value, left)

        return httpx.Timeout(
            connect=cap(timeout.connect),
            read=cap(timeout.read),
            write=cap(timeout.write),
            pool=cap(timeout.pool),
        )

    def error(self, where: str) -> APITimeoutError:
        error = APITimeoutError(
            f"The call to {where} did not finish within its deadline of {self.seconds:g} s."
        )
        error.deadline = self.seconds
        return error


class ReadGuard:
    """Watches one attempt's body: `check()` after each piece received, `content()` when an item
    has reached the caller (and the caller has handed control back), `budget()` for how long
    the next read may wait."""

    __slots__ = ("_deadline", "_since", "_stall", "_where")

    def __init__(self, deadline: Deadline | None, stall: float | None, where: str) -> None:
        self._deadline = deadline
        self._stall = stall
        self._where = where
        self._since = _monotonic()

    def content(self) -> None:
        self._since = _monotonic()

    def budget(self) -> float | None:
        """Seconds until the nearest limit (may be <= 0), or None without limits."""
        budget = None if self._stall is None else self._since + self._stall - _monotonic()
        if self._deadline is not None:
            left = self._deadline.remaining()
            budget = left if budget is None else min(budget, left)
        return budget

    def check(self) -> None:
        """Raise `APITimeoutError` if a limit has passed."""
        if self._deadline is not None and self._deadline.expired:
            raise self._deadline.error(self._where)
        if self._stall is not None and _monotonic() - self._since > self._stall:
            raise self.stall_error()

    def error(self) -> APITimeoutError:
        """The error of whichever limit has passed (a read cut short at `budget()`)."""
        if self._deadline is not None and self._deadline.remaining() <= 0.001:
            return self._deadline.error(self._where)
        return self.stall_error()

    def stall_error(self) -> APITimeoutError:
        return APITimeoutError(
            f"The stream from {self._where} delivered no content for {self._stall:g} s (the read "
            "timeout, which is a stream's stall guard; keep-alives, blank lines and bytes that "
            "complete nothing do not count)."
        )
