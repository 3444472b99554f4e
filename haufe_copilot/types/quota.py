"""The service's quota, as its gateway counts it: at most so many requests per key in every window
(for instance 15 per second and 60 per minute), written as `"15/s,60/min"`.

The rule of when one more request fits is wire knowledge shared by both sides: the clients' rate
limiters wait for it (`haufe_copilot.rate_limit`, whose Redis script computes the same), and the
emulator's gateway refuses by it (`haufe_emulator.quota`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from haufe_copilot.errors import ConfigurationError

__all__ = ["Window", "next_slot", "parse_rate_limit"]


@dataclass(frozen=True)
class Window:
    """At most `limit` requests in any `seconds`-long stretch."""

    limit: int
    seconds: float


def parse_rate_limit(text: str) -> tuple[Window, ...]:
    """`"15/s,60/min"` as windows (units: s, sec, second; m, min, minute; h, hour)."""
    units = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
    units.update({"h": 3600.0, "hour": 3600.0})
    windows = []
    for part in text.split(","):
        count, _, unit = part.strip().partition("/")
        try:
            limit = int(count)
        except ValueError:
            limit = 0
        if limit <= 0 or unit.strip().lower() not in units:
            raise ConfigurationError(
                f"A rate limit is a list such as 15/s,60/min (requests per s, min or hour), not {text!r}."
            )
        windows.append(Window(limit, units[unit.strip().lower()]))
    return tuple(windows)


def next_slot(
    reserved: Sequence[float],
    now: float,
    blocked_until: float,
    windows: Sequence[Window],
    margin: float = 0.0,
) -> float:
    """The earliest moment >= now at which one more request fits into every window, given the
    earlier reservations in order (the last `limit` of each window are enough) and a shared
    "blocked until". Never before the last reservation: the order of asking is the order of
    going. The Redis script computes the same; the emulator's quota uses it to refuse."""
    at = max(now, blocked_until, reserved[-1] if reserved else now)
    for window in windows:
        if len(reserved) >= window.limit:
            at = max(at, reserved[-window.limit] + window.seconds + margin)
    return at
