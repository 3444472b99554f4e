"""When to retry and how long to wait (docs/contract.md, Retries): pure functions for both clients."""

from __future__ import annotations

import random
from collections.abc import Callable

from .errors import APIConnectionError, APIError, APIStatusError

INITIAL_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0


def backoff_seconds(retry_index: int, *, random_fraction: Callable[[], float] = random.random) -> float:
    """0.5 s x 2^n, capped at 8 s, less up to a quarter of jitter so clients spread out."""
    base = min(INITIAL_BACKOFF_SECONDS * float(2**retry_index), MAX_BACKOFF_SECONDS)
    return base * (1.0 - 0.25 * random_fraction())


def is_retryable(error: APIError, *, continues_thread: bool) -> bool:
    """Whether the server may be asked again without risking a duplicate in its thread."""
    if isinstance(error, APIStatusError):
        if continues_thread:
            return error.status_code == 429
        return error.retryable_status
    if isinstance(error, APIConnectionError):
        return not (continues_thread and error.request_sent)
    return False


def retry_delay(
    error: APIError, *, retries_done: int, max_retries: int, continues_thread: bool
) -> float | None:
    """Seconds to wait before the next attempt, or None to give up and raise `error`."""
    if retries_done >= max_retries or not is_retryable(error, continues_thread=continues_thread):
        return None
    if isinstance(error, APIStatusError) and error.retry_after is not None:
        return error.retry_after
    return backoff_seconds(retries_done)
