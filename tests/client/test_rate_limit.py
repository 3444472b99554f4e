"""The rate limiter (haufe_copilot.rate_limit): the reservation rule, the in-process limiter, and
one quota shared through a real `redis-server` by several processes against the emulator's
gateway quota: held across processes, a 429 anywhere pausing everyone, Redis stopped mid-run,
sync and async, and no caller starving."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import pickle
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.redis_server import RedisServer
from haufe_copilot import (
    AsyncHaufeCopilotClient,
    ConfigurationError,
    HaufeCopilotClient,
    InProcessRateLimiter,
    RateLimitError,
    RateLimiterUnavailableError,
    RedisRateLimiter,
)
from haufe_copilot.rate_limit import Window, next_slot, parse_rate_limit
from haufe_emulator import EmulatorConfig, EmulatorServer
from tests.conftest import ASSISTANT_ID, SESSION_API_KEY, user, wait_for

ROOT = Path(__file__).resolve().parents[2]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def quota_key() -> str:
    """A quota of this test's own in the shared Redis."""
    return "test-" + secrets.token_hex(6)


def gateway(rate_limit: str | None) -> EmulatorServer:
    config = EmulatorConfig(
        api_keys=frozenset({SESSION_API_KEY}), rate_limit=parse_rate_limit(rate_limit) if rate_limit else ()
    )
    return EmulatorServer(config)


def fleet(jobs: list[dict[str, Any]], timeout: float = 60) -> list[tuple[dict[str, Any], str]]:
    """Run one worker process per job (tests/quota_workers.py); their reports and stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.quota_workers", json.dumps(job)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in jobs
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err[-3000:]
        results.append((json.loads(out.strip().splitlines()[-1]), err))
    return results


def job(emulator: EmulatorServer, **fields: Any) -> dict[str, Any]:
    return {
        "url": emulator.url,
        "api_key": SESSION_API_KEY,
        "assistant_id": ASSISTANT_ID,
        "tag": secrets.token_hex(4),
        "mode": "sync",
        **fields,
    }


def received(emulator: EmulatorServer, tag: str) -> collections.Counter[str]:
    """How often the emulator received each question carrying `tag` (refused ones included)."""
    counts: collections.Counter[str] = collections.Counter()
    for record in list(emulator.state.requests):
        body = record.body if isinstance(record.body, dict) else {}
        for message in body.get("messages") or []:
            if tag in str(message.get("content")):
                counts[str(message["content"])] += 1
    return counts


# -- the rule ---------------------------------------------------------------------------------


def test_next_slot_fits_every_window_and_keeps_the_order() -> None:
    windows = (Window(2, 1.0), Window(3, 60.0))
    assert next_slot([], 10.0, 0.0, windows) == 10.0
    assert next_slot([10.0], 10.0, 0.0, windows) == 10.0
    assert next_slot([10.0, 10.0], 10.2, 0.0, windows) == 11.0  # the second per second
    assert next_slot([10.0, 10.0, 11.0], 11.0, 0.0, windows) == 70.0  # the third per minute
    assert next_slot([10.0, 10.0], 10.2, 0.0, windows, margin=0.1) == pytest.approx(11.1)
    assert next_slot([], 10.0, 12.5, windows) == 12.5  # blocked by a 429
    assert next_slot([15.0], 10.0, 0.0, windows) == 15.0  # never before an earlier reservation


def test_parse_rate_limit_and_the_limits_are_checked() -> None:
    assert parse_rate_limit("15/s,60/min") == (Window(15, 1.0), Window(60, 60.0))
    assert parse_rate_limit(" 100/hour ") == (Window(100, 3600.0),)
    for bad in ("15", "0/s", "15/day", "x/s", ""):
        with pytest.raises(ConfigurationError, match="such as 15/s,60/min"):
            parse_rate_limit(bad)
    with pytest.raises(ConfigurationError, match="per_second="):
        InProcessRateLimiter(per_second=None, per_minute=None)
    with pytest.raises(ConfigurationError, match="per_minute must be a whole number"):
        InProcessRateLimiter(per_minute=0)
    with pytest.raises(ConfigurationError, match="on_redis_error must be 'open' or 'closed'"):
        RedisRateLimiter("redis://127.0.0.1:1/0", on_redis_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="redis_url=, client= or async_client="):
        RedisRateLimiter()
    with pytest.raises(ConfigurationError, match="rate_limiter must be"):
        HaufeCopilotClient(api_key="k", rate_limiter=object())  # type: ignore[arg-type]


def test_the_limiter_never_shows_a_redis_password() -> None:
    limiter = RedisRateLimiter("redis://user:s3cret-pw@127.0.0.1:1/0", key="k", on_redis_error="closed")
    with pytest.raises(RateLimiterUnavailableError) as caught:
        limiter.acquire()
    for text in (repr(limiter), str(caught.value)):
        assert "s3cret-pw" not in text and "127.0.0.1:1" in text
    assert "nothing was sent" in str(caught.value) and "on_redis_error='open'" in str(caught.value)


# -- in one process ---------------------------------------------------------------------------


def test_in_process_limiter_holds_the_quota_across_threads() -> None:
    limiter = InProcessRateLimiter(per_second=10, per_minute=None, margin_seconds=0.0)
    taken: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(5):
            limiter.acquire()
            with lock:
                taken.append(time.monotonic())

    threads = [threading.Thread(target=take) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken.sort()
    assert len(taken) == 25
    # never more than 10 in any second (a little slack for the clock read after the wake-up)
    assert all(later - earlier >= 0.98 for earlier, later in zip(taken, taken[10:], strict=False))
    assert limiter.stats.acquired == 25


def test_the_client_acquires_before_every_attempt_and_a_429_pauses_the_limiter(
    emulator: EmulatorServer, fault_id: str
) -> None:
    limiter = InProcessRateLimiter(per_second=100, per_minute=None)
    headers = {
        "x-emulator-fault": "rate_limit_gateway",
        "x-emulator-fault-times": "1",
        "x-emulator-fault-id": fault_id,
        "x-emulator-retry-after-ms": "400",
    }
    with HaufeCopilotClient(
        api_key=SESSION_API_KEY, base_url=emulator.url, rate_limiter=limiter, default_headers=headers
    ) as client:
        client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
        assert (limiter.stats.acquired, limiter.stats.blocks) == (2, 1)  # the retry waited its turn too
        started = time.monotonic()
        client.with_options(max_retries=0).assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
        assert limiter.stats.acquired == 3  # with_options keeps the limiter
    assert time.monotonic() - started < 5


async def test_the_async_client_acquires_and_reports_429s(emulator: EmulatorServer, fault_id: str) -> None:
    limiter = InProcessRateLimiter(per_second=100, per_minute=None)
    headers = {
        "x-emulator-fault": "rate_limit_message",
        "x-emulator-fault-times": "1",
        "x-emulator-fault-id": fault_id,
        "x-emulator-retry-after-ms": "300",
    }
    async with AsyncHaufeCopilotClient(
        api_key=SESSION_API_KEY, base_url=emulator.url, rate_limiter=limiter, default_headers=headers
    ) as client:
        await client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    assert (limiter.stats.acquired, limiter.stats.blocks) == (2, 1)


def test_limiters_pickle_as_their_configuration(redis_server: RedisServer, quota_key: str) -> None:
    local = pickle.loads(pickle.dumps(InProcessRateLimiter(per_second=3, per_minute=30)))
    assert repr(local) == "InProcessRateLimiter(per_second=3, per_minute=30)"
    shared = RedisRateLimiter(redis_server.url, key=quota_key, per_second=3, per_minute=None)
    shared.acquire()
    copy = pickle.loads(pickle.dumps(shared))
    assert (copy.key, copy.windows, copy.stats.acquired) == (quota_key, shared.windows, 0)
    assert copy.try_acquire() and copy.try_acquire() and not copy.try_acquire()  # the same quota
    shared.close()
    copy.close()


# -- one quota for every process --------------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_quota_holds_across_processes(redis_server: RedisServer, quota_key: str, mode: str) -> None:
    with gateway("20/s") as emulator:
        start_at = time.monotonic() + 2.5
        jobs = [
            job(
                emulator,
                mode=mode,
                limiter="redis",
                redis_url=redis_server.url,
                key=quota_key,
                per_second=20,
                per_minute=None,
                callers=4,
                calls=4,
                start_at=start_at,
            )
            for _ in range(3)
        ]
        reports = fleet(jobs)
        elapsed = time.monotonic() - start_at
        assert emulator.state.quota.refused == 0
        for (report, _), sent in zip(reports, jobs, strict=True):
            assert report["errors"] == [] and len(report["answered"]) == 16
            assert set(received(emulator, sent["tag"]).values()) == {1}  # each question once
        assert emulator.state.quota.admitted == 48
    assert elapsed >= 2.0  # 48 requests at 20 per (1 s + margin): the limiter did hold them back


@pytest.mark.timeout(90)
def test_a_limiter_per_process_lets_the_fleet_overshoot(redis_server: RedisServer) -> None:
    """The control: the same fleet with a limiter in each process meets the gateway's 429s."""
    with gateway("20/s") as emulator:
        start_at = time.monotonic() + 2.5
        jobs = [
            job(
                emulator,
                limiter="in-process",
                per_second=20,
                per_minute=None,
                callers=4,
                calls=4,
                start_at=start_at,
            )
            for _ in range(3)
        ]
        reports = fleet(jobs)
        assert emulator.state.quota.refused > 0
        assert sum(len(report["errors"]) for report, _ in reports) == emulator.state.quota.refused


@pytest.mark.timeout(60)
def test_a_429_in_one_process_pauses_another(redis_server: RedisServer, quota_key: str) -> None:
    with gateway(None) as emulator:
        other = job(
            emulator,
            mode="async",
            limiter="redis",
            redis_url=redis_server.url,
            key=quota_key,
            per_second=50,
            per_minute=None,
            callers=1,
            calls=1,
            start_at=time.monotonic() + 3.0,
        )
        process = threading.Thread(target=lambda: results.extend(fleet([other])))
        results: list[tuple[dict[str, Any], str]] = []
        process.start()
        time.sleep(1.0)
        limiter = RedisRateLimiter(redis_server.url, key=quota_key, per_second=50, per_minute=None)
        # A long block (6 s) so that the other process, asking from 3 s on, is still held by it
        # even when a busy machine starts it late.
        faulted = {"x-emulator-fault": "rate_limit_gateway", "x-emulator-retry-after": "6"}
        with HaufeCopilotClient(
            api_key=SESSION_API_KEY, base_url=emulator.url, rate_limiter=limiter, max_retries=0
        ) as client:
            with pytest.raises(RateLimitError):
                client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), extra_headers=faulted)
        refused_at = time.monotonic()
        limiter.close()
        process.join(60)
        ((report, _),) = results
        assert report["errors"] == [] and len(report["answered"]) == 1
        arrived = [r.at for r in list(emulator.state.requests) if other["tag"] in json.dumps(r.body)]
        # Without the shared block the other process would have asked at 2 s after the 429.
        assert arrived and arrived[0] - refused_at >= 5.8
        # ... and it was held by the block, not merely late: its limiter made it wait.
        assert report["stats"]["waited_seconds"] >= 0.5


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_redis_stopped_mid_run_fails_open_and_loses_nothing(mode: str) -> None:
    with RedisServer() as redis, gateway(None) as emulator:
        start_at = time.monotonic() + 2.5
        jobs = [
            job(
                emulator,
                mode=mode,
                limiter="redis",
                redis_url=redis.url,
                key="mid-run",
                per_second=10,
                per_minute=None,
                callers=3,
                duration=6.0,
                own_duration=True,
                start_at=start_at,
            )
            for _ in range(2)
        ]
        results: list[tuple[dict[str, Any], str]] = []
        runner = threading.Thread(target=lambda: results.extend(fleet(jobs)))
        runner.start()
        time.sleep(max(start_at + 1.0 - time.monotonic(), 0))
        # Mid-run means after both processes asked through Redis: a busy machine starts them late.
        assert wait_for(lambda: all(received(emulator, sent["tag"]) for sent in jobs), timeout=30)
        redis.stop()
        time.sleep(2.5)  # long enough that even a busy process asks while Redis is away
        redis.start()  # the same port: the limiters find it again
        runner.join(60)
        for (report, stderr), sent in zip(results, jobs, strict=True):
            assert report["errors"] == []
            counts = received(emulator, sent["tag"])
            assert sorted(counts) == sorted(report["answered"])  # none lost: every sent one answered
            assert set(counts.values()) == {1}  # none duplicated
            assert report["stats"]["passed_without_redis"] > 0 and report["stats"]["redis_errors"] >= 1
            assert "is unreachable" in stderr and "letting requests through" in stderr
            assert "answers again" in stderr


@pytest.mark.timeout(60)
def test_redis_stopped_with_on_redis_error_closed_sends_nothing() -> None:
    with RedisServer() as redis, gateway(None) as emulator:
        limiter = RedisRateLimiter(
            redis.url, key="closed", per_second=50, per_minute=None, on_redis_error="closed"
        )
        with HaufeCopilotClient(
            api_key=SESSION_API_KEY, base_url=emulator.url, rate_limiter=limiter
        ) as client:
            client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user("Urlaub? closed-1"))
            redis.stop()
            with pytest.raises(RateLimiterUnavailableError, match="nothing was sent"):
                client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user("Urlaub? closed-2"))
            redis.start()
            time.sleep(1.1)  # the limiter tries Redis again a second after it failed
            client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user("Urlaub? closed-3"))
        counts = received(emulator, "closed-")
        assert counts == {"Urlaub? closed-1": 1, "Urlaub? closed-3": 1}
        assert limiter.stats.redis_errors >= 1 and limiter.stats.passed_without_redis == 0
        limiter.close()


# -- fairness ---------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_no_caller_starves_among_greedy_ones(redis_server: RedisServer, quota_key: str) -> None:
    """Reservations go in the order they are asked for: a caller arriving amid ten greedy ones
    (two limiter objects: two processes' worth of connections) waits about one round, and the
    greedy ones take turns."""
    limiters = [
        RedisRateLimiter(redis_server.url, key=quota_key, per_second=20, per_minute=None) for _ in range(2)
    ]
    saturated, stop = time.monotonic() + 1.2, time.monotonic() + 3.5
    counts = [0] * 10

    def greedy(index: int) -> None:
        while time.monotonic() < stop:
            asked = time.monotonic()
            limiters[index % 2].acquire()
            # Once the queue is full each caller holds one reservation at a time: count from then
            # (before, whoever runs first takes the free slots of the first second).
            counts[index] += asked > saturated

    threads = [threading.Thread(target=greedy, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    time.sleep(1.2)
    asked = time.monotonic()
    limiters[0].acquire()
    latecomer_wait = time.monotonic() - asked
    for thread in threads:
        thread.join()
    for limiter in limiters:
        limiter.close()
    assert latecomer_wait < 1.3  # ten ahead of it at 20 per 1.1 s: within about one window
    # 2.3 s of turns at 20 per 1.1 s among ten: about four each; a thread the machine woke late
    # may lose a turn, none loses them all
    assert min(counts) >= 2 and max(counts) <= 8, counts


async def test_async_callers_are_served_in_the_order_they_ask(
    redis_server: RedisServer, quota_key: str
) -> None:
    limiter = RedisRateLimiter(
        redis_server.url, key=quota_key, per_second=4, per_minute=None, margin_seconds=0.0
    )
    finished: list[tuple[int, float]] = []

    async def ask(index: int) -> None:
        await asyncio.sleep(index * 0.01)
        await limiter.aacquire()
        finished.append((index, time.monotonic()))

    await asyncio.gather(*(ask(i) for i in range(12)))
    await limiter.aclose()
    order = [index for index, _ in sorted(finished, key=lambda item: item[1])]
    rounds = [sorted(order[i : i + 4]) for i in range(0, 12, 4)]
    assert rounds == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]  # first come, first served
