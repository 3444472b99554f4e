"""When to retry and how long to wait, as pure functions shared by both clients.

The rule per endpoint is the table "What is retried" in docs/reliability.md (the wire contract in
docs/contract.md, Retries). Nothing is retried once a 2xx status has arrived (the server took
the request; the clients stop there); before that, an error is retried if it is retryable and,
for a request whose replay would duplicate what the server did (`replay_unsafe`), only where the
server cannot have taken it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from haufe_copilot.errors import APIConnectionError, APIError, APIStatusError

INITIAL_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0


def backoff_seconds(retry_index: int, *, random_fraction: Callable[[], float] = random.random) -> float:
    """0.5 s x 2^n, capped at 8 s, less up to a quarter of jitter so clients spread out."""
    base = min(INITIAL_BACKOFF_SECONDS * float(2**retry_index), MAX_BACKOFF_SECONDS)
    return base * (1.0 - 0.25 * random_fraction())


def is_retryable(error: APIError, *, replay_unsafe: bool) -> bool:
    """Whether the server may be asked again without risking a duplicate (a turn on a thread, a
    completion): a replay-unsafe request only after a 429 (refused, not taken) or a connection
    that failed before the request was sent."""
    if isinstance(error, APIStatusError):
        if replay_unsafe:
            return error.status_code == 429
        return error.retryable_status
    if isinstance(error, APIConnectionError):
        return not (replay_unsafe and error.request_sent)
    return False


def retry_delay(error: APIError, *, retries_done: int, max_retries: int, replay_unsafe: bool) -> float | None:
    """Seconds to wait before the next attempt, or None to give up and raise `error`."""
    if retries_done >= max_retries or not is_retryable(error, replay_unsafe=replay_unsafe):
        return None
    if isinstance(error, APIStatusError) and error.retry_after is not None:
        return error.retry_after
    return backoff_seconds(retries_done)
