"""One process of a fleet sharing a quota, for tests/client/test_rate_limit.py:
`python -m tests.quota_workers '<json job>'` prints a JSON report on its last line.

The job names the emulator, the limiter (Redis, in-process or none), how many callers run at
once (threads or tasks), and either how many questions each asks or for how long it keeps
asking. Every question is unique (`tag`, caller, number), so the test can count at the emulator
that each was answered exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import threading
import time
from typing import Any

from haufe_copilot import (
    AsyncHaufeCopilotClient,
    HaufeCopilotClient,
    HaufeCopilotError,
    InProcessRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)


def limiter_for(job: dict[str, Any]) -> RateLimiter | None:
    # The margin covers the spread between a reservation and the gateway counting the request:
    # on a shared 2-core machine that also runs the emulator, up to a few hundred milliseconds.
    quota = {
        "per_second": job.get("per_second"),
        "per_minute": job.get("per_minute"),
        "margin_seconds": job.get("margin_seconds", 0.5),
    }
    if job["limiter"] == "redis":
        return RedisRateLimiter(
            job["redis_url"], key=job["key"], on_redis_error=job.get("on_redis_error", "open"), **quota
        )
    if job["limiter"] == "in-process":
        return InProcessRateLimiter(**quota)
    return None


def question(job: dict[str, Any], caller: int, n: int) -> str:
    return f"Wie viele Urlaubstage stehen mir zu? ({job['tag']} {caller}-{n})"


def wait_for_start(job: dict[str, Any]) -> None:
    # Every process of the fleet begins at the same moment (time.monotonic is system-wide).
    time.sleep(max(job["start_at"] - time.monotonic(), 0.0))
    job["began"] = time.monotonic()


def keeps_asking(job: dict[str, Any], n: int) -> bool:
    if "duration" in job:
        # `own_duration`: the window counts from when this process began, however late a busy
        # machine started it; otherwise every process of the fleet stops at the same moment.
        began = job["began"] if job.get("own_duration") else job["start_at"]
        return time.monotonic() < began + job["duration"]
    return bool(n < job["calls"])


def run_sync(job: dict[str, Any], limiter: RateLimiter | None) -> dict[str, Any]:
    answered: list[str] = []
    errors: list[str] = []
    per_caller = [0] * job["callers"]
    lock = threading.Lock()
    client = HaufeCopilotClient(
        api_key=job["api_key"],
        base_url=job["url"],
        max_retries=job.get("max_retries", 0),
        rate_limiter=limiter,
    )

    def caller(index: int) -> None:
        n = 0
        while keeps_asking(job, n):
            text = question(job, index, n)
            n += 1
            try:
                client.assistant.chat(
                    assistant_id=job["assistant_id"], messages=[{"role": "user", "content": text}]
                )
            except HaufeCopilotError as exc:
                with lock:
                    errors.append(type(exc).__name__)
                continue
            with lock:
                answered.append(text)
                per_caller[index] += 1

    wait_for_start(job)
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(job["callers"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    return {"answered": answered, "errors": errors, "per_caller": per_caller}


async def run_async(job: dict[str, Any], limiter: RateLimiter | None) -> dict[str, Any]:
    answered: list[str] = []
    errors: list[str] = []
    per_caller = [0] * job["callers"]
    client = AsyncHaufeCopilotClient(
        api_key=job["api_key"],
        base_url=job["url"],
        max_retries=job.get("max_retries", 0),
        rate_limiter=limiter,
    )

    async def caller(index: int) -> None:
        n = 0
        while keeps_asking(job, n):
            text = question(job, index, n)
            n += 1
            try:
                await client.assistant.chat(
                    assistant_id=job["assistant_id"], messages=[{"role": "user", "content": text}]
                )
            except HaufeCopilotError as exc:
                errors.append(type(exc).__name__)
                continue
            answered.append(text)
            per_caller[index] += 1

    await asyncio.sleep(max(job["start_at"] - time.monotonic(), 0.0))
    job["began"] = time.monotonic()
    await asyncio.gather(*(caller(i) for i in range(job["callers"])))
    await client.aclose()
    if isinstance(limiter, RedisRateLimiter):
        await limiter.aclose()
    return {"answered": answered, "errors": errors, "per_caller": per_caller}


def main() -> None:
    job = json.loads(sys.argv[1])
    limiter = limiter_for(job)
    report = run_sync(job, limiter) if job["mode"] == "sync" else asyncio.run(run_async(job, limiter))
    report["stats"] = dataclasses.asdict(limiter.stats) if limiter is not None else {}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
