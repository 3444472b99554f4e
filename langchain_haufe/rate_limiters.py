"""A LangChain `BaseRateLimiter` over the core's limiters: one quota for any chat model.

`HaufeRateLimiter` goes wherever LangChain takes `rate_limiter=` (ours or another provider's
chat model). With Redis it holds across every process and machine that names the same Redis and
key; LangChain's own `InMemoryRateLimiter` holds only inside one process.

On `ChatHaufeCopilot` it does more than gate each model call: the core client the model uses
waits its turn before every retry too, and reports every 429 so that all callers pause for its
Retry-After. The model call's first request uses the reservation LangChain took for it, so no
call is counted twice. See docs/scaling.md.
"""

from __future__ import annotations

from typing import Any

from langchain_core.rate_limiters import BaseRateLimiter

from haufe_copilot.rate_limit import (
    DEFAULT_MARGIN_SECONDS,
    InProcessRateLimiter,
    OnRedisError,
    RateLimiter,
    RedisRateLimiter,
)

__all__ = ["HaufeRateLimiter"]


class HaufeRateLimiter(BaseRateLimiter):
    """A LangChain rate limiter backed by a `haufe_copilot.rate_limit.RateLimiter`.

    >>> limiter = HaufeRateLimiter.redis("redis://redis:6379/0", key="haufe-prod", per_minute=60)
    >>> model = ChatHaufeCopilot(rate_limiter=limiter)    # or ChatOpenAI(rate_limiter=limiter)
    """

    def __init__(self, limiter: RateLimiter) -> None:
        if not isinstance(limiter, RateLimiter):
            from haufe_copilot.errors import ConfigurationError

            raise ConfigurationError(
                "HaufeRateLimiter wraps a haufe_copilot.rate_limit limiter (InProcessRateLimiter or "
                f"RedisRateLimiter), not {type(limiter).__name__}; or use HaufeRateLimiter.redis(...)."
            )
        #: The core limiter; `ChatHaufeCopilot` hands it to its core clients.
        self.haufe_limiter = limiter

    @classmethod
    def redis(
        cls,
        redis_url: str | None = None,
        *,
        key: str = "haufe-copilot",
        per_second: int | None = 15,
        per_minute: int | None = 60,
        on_redis_error: OnRedisError = "open",
        margin_seconds: float = DEFAULT_MARGIN_SECONDS,
        **clients: Any,
    ) -> HaufeRateLimiter:
        """A limiter shared through Redis (`client=` / `async_client=` instead of a URL work too)."""
        return cls(
            RedisRateLimiter(
                redis_url,
                key=key,
                per_second=per_second,
                per_minute=per_minute,
                on_redis_error=on_redis_error,
                margin_seconds=margin_seconds,
                **clients,
            )
        )

    @classmethod
    def in_process(
        cls,
        *,
        per_second: int | None = 15,
        per_minute: int | None = 60,
        margin_seconds: float = DEFAULT_MARGIN_SECONDS,
    ) -> HaufeRateLimiter:
        """A limiter for the callers of this process only, with per-second and per-minute limits."""
        return cls(
            InProcessRateLimiter(per_second=per_second, per_minute=per_minute, margin_seconds=margin_seconds)
        )

    def acquire(self, *, blocking: bool = True) -> bool:
        if not blocking:
            return self.haufe_limiter.try_acquire()
        self.haufe_limiter.acquire()  # held for the model's first request (see the module)
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        if not blocking:
            return await self.haufe_limiter.atry_acquire()
        await self.haufe_limiter.aacquire()
        return True

    def __repr__(self) -> str:
        return f"HaufeRateLimiter({self.haufe_limiter!r})"
