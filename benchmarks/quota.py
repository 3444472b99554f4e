"""The shared quota under load: `python -m benchmarks.quota [--quick] [--results PATH]`, and a
part of `make bench`.

A fleet of processes (8 x 50 concurrent callers at full size) asks `ChatHaufeCopilot.ainvoke`
as fast as it is let through, for 60 s, against the emulator with the gateway quota
15/s,60/min per key, twice:

1. with `HaufeRateLimiter.redis(...)`: one quota in a real redis-server for the whole fleet;
2. with LangChain's `InMemoryRateLimiter` in each process set to the same rate (1 request per
   second, bursts of 15): the anchor, the only limiter LangChain ships.

It counts what reached the callers (answers, 429s after the client's retries), the 429s the
gateway sent and the retries they caused, and the answers against what the quota allows in
the time. Then the limiter's own cost per acquire (a quota too large to ever wait) at 1 and at
8 processes at once. Prints its table and writes it as a section of benchmarks/RESULTS.md and
the README (or of `--results`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import ROOT
from benchmarks.report import Row, Table, markdown, replace_block

KEY = "sk-bench-quota-" + secrets.token_hex(8)
START = "<!-- bench-quota:start -->"
END = "<!-- bench-quota:end -->"


@dataclass(frozen=True)
class QuotaScale:
    processes: int = 8
    callers: int = 50
    seconds: float = 60.0
    per_second: int = 15
    per_minute: int = 60
    acquires: int = 3_000  # per process, for the cost per acquire
    #: The spread between a turn and the gateway counting the request (docs/scaling.md): the
    #: emulator shares this machine's cores with the whole fleet.
    margin_seconds: float = 0.5

    @property
    def quota(self) -> str:
        return f"{self.per_second}/s,{self.per_minute}/min"


FULL = QuotaScale()
QUICK = QuotaScale(processes=2, callers=5, seconds=2.0, per_second=10, per_minute=120, acquires=200)


def allowed(scale: QuotaScale) -> int:
    """How many requests the quota lets through in the run's time, at best (the same rule the
    gateway applies, every request at the earliest moment it fits)."""
    from haufe_copilot.rate_limit import Window, next_slot

    windows = (Window(scale.per_second, 1.0), Window(scale.per_minute, 60.0))
    taken: list[float] = []
    while (at := next_slot(taken, 0.0, 0.0, windows)) < scale.seconds:
        taken.append(at)
    return len(taken)


# -- one process of the fleet ------------------------------------------------------------------


class _RetryCounter(logging.Handler):
    """Counts the core client's "Retrying in ..." lines: the retries the 429s caused."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Retrying in"):
            self.retries += 1


async def _fleet_member(job: dict[str, Any]) -> dict[str, Any]:
    from langchain_core.rate_limiters import InMemoryRateLimiter

    from haufe_copilot import RateLimitError
    from langchain_haufe import ChatHaufeCopilot, HaufeRateLimiter

    counter = _RetryCounter()
    core_logger = logging.getLogger("haufe_copilot")
    core_logger.addHandler(counter)
    core_logger.setLevel(logging.INFO)
    core_logger.propagate = False
    if job["limiter"] == "redis":
        limiter: Any = HaufeRateLimiter.redis(
            job["redis_url"],
            key=job["key"],
            per_second=job["per_second"],
            per_minute=job["per_minute"],
            margin_seconds=job["margin_seconds"],
        )
    else:  # the anchor: the quota's rate in each process, its burst as the bucket
        limiter = InMemoryRateLimiter(
            requests_per_second=job["per_minute"] / 60.0,
            check_every_n_seconds=0.05,
            max_bucket_size=job["per_second"],
        )
    model = ChatHaufeCopilot(
        api_key=job["api_key"], base_url=job["url"], assistant_id=job["assistant_id"], rate_limiter=limiter
    )
    answered = limited = failed = 0
    deadline = job["start_at"] + job["seconds"]

    async def caller(index: int) -> None:
        nonlocal answered, limited, failed
        n = 0
        while time.monotonic() < deadline:
            n += 1
            try:
                await model.ainvoke(f"Wie viele Urlaubstage stehen mir zu? ({index}-{n})")
            except RateLimitError:
                limited += 1
                continue
            except Exception:
                failed += 1
                continue
            if time.monotonic() <= deadline:
                answered += 1

    await asyncio.sleep(max(job["start_at"] - time.monotonic(), 0.0))
    tasks = [asyncio.ensure_future(caller(i)) for i in range(job["callers"])]
    await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 0.0))
    for task in tasks:  # the callers still waiting for their turn at the end
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if job["limiter"] == "redis":
        await limiter.haufe_limiter.aclose()
        limiter.haufe_limiter.close()
    return {"answered": answered, "limited": limited, "failed": failed, "retries": counter.retries}


def _cost_member(job: dict[str, Any]) -> dict[str, Any]:
    from haufe_copilot import InProcessRateLimiter, RedisRateLimiter
    from haufe_copilot.rate_limit import RateLimiter

    huge = 10**9  # never waits: what is measured is the limiter's own work
    limiter: RateLimiter
    if job["limiter"] == "redis":
        limiter = RedisRateLimiter(job["redis_url"], key=job["key"], per_second=huge, per_minute=None)
    else:
        limiter = InProcessRateLimiter(per_second=huge, per_minute=None)
    limiter.acquire()  # connected before the clock starts
    time.sleep(max(job["start_at"] - time.monotonic(), 0.0))
    started = time.perf_counter()
    for _ in range(job["acquires"]):
        limiter.acquire()
    elapsed = time.perf_counter() - started
    if isinstance(limiter, RedisRateLimiter):
        limiter.close()
    return {"per_acquire": elapsed / job["acquires"]}


def _worker(job: dict[str, Any]) -> None:
    report = asyncio.run(_fleet_member(job)) if job["kind"] == "fleet" else _cost_member(job)
    print(json.dumps(report), flush=True)


def _run_fleet(jobs: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.quota", "--worker", json.dumps(job)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in jobs
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        if process.returncode != 0:
            raise RuntimeError(f"a benchmark process failed:\n{err[-3000:]}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


# -- the measures ------------------------------------------------------------------------------


def measure(quick: bool = False, *, print_rows: bool = True) -> list[Row]:
    from benchmarks.redis_server import RedisServer
    from haufe_copilot.rate_limit import parse_rate_limit
    from haufe_emulator import DEFAULT_ASSISTANT_ID, EmulatorConfig, EmulatorServer

    scale = QUICK if quick else FULL
    table = Table(quiet=not print_rows)
    best = allowed(scale)
    fleet_label = f"{scale.processes} x {scale.callers} callers, {scale.seconds:g} s, {scale.quota}"
    startup = 8.0 if not quick else 3.0  # the processes import LangChain before the start
    with RedisServer() as redis:
        for limiter in ("redis", "anchor"):
            config = EmulatorConfig(api_keys=frozenset({KEY}), rate_limit=parse_rate_limit(scale.quota))
            with EmulatorServer(config) as emulator:
                start_at = time.monotonic() + startup
                job = {
                    "kind": "fleet",
                    "limiter": limiter,
                    "url": emulator.url,
                    "api_key": KEY,
                    "assistant_id": DEFAULT_ASSISTANT_ID,
                    "redis_url": redis.url,
                    "key": "bench-" + secrets.token_hex(4),
                    "per_second": scale.per_second,
                    "per_minute": scale.per_minute,
                    "margin_seconds": scale.margin_seconds,
                    "callers": scale.callers,
                    "seconds": scale.seconds,
                    "start_at": start_at,
                }
                reports = _run_fleet([job] * scale.processes, timeout=startup + scale.seconds + 120)
                refused = emulator.state.quota.refused
            answered = sum(r["answered"] for r in reports)
            limited = sum(r["limited"] for r in reports)
            retries = sum(r["retries"] for r in reports)
            failed = sum(r["failed"] for r in reports)
            share = answered / best
            if limiter == "redis":
                name = "quota: HaufeRateLimiter.redis"
                table.record(
                    f"{name}, {fleet_label}: answered",
                    f"{answered} of {best} = {share:.0%}",
                    ">= 95%",
                    share >= 0.95,
                )
                table.record(
                    f"{name}: 429s reaching the callers", f"{limited}", "0", limited == 0 and failed == 0
                )
                table.record(f"{name}: 429s at the gateway, retries", f"{refused}, {retries}")
            else:
                name = "quota: InMemoryRateLimiter per process (anchor)"
                table.record(f"{name}: answered", f"{answered} of {best} = {share:.0%}")
                table.record(f"{name}: 429s reaching the callers", f"{limited}")
                table.record(f"{name}: 429s at the gateway, retries", f"{refused}, {retries}")
            if failed:
                table.record(f"{name}: other errors", f"{failed}")

        for processes in (1, scale.processes):
            start_at = time.monotonic() + startup / 2
            job = {
                "kind": "cost",
                "limiter": "redis",
                "redis_url": redis.url,
                "key": "cost-" + secrets.token_hex(4),
                "acquires": scale.acquires,
                "start_at": start_at,
            }
            reports = _run_fleet([job] * processes, timeout=startup + 120)
            mean = sum(r["per_acquire"] for r in reports) / len(reports)
            table.record(
                f"limiter cost per acquire: Redis, {processes} process(es) at once", f"{mean * 1e6:.0f} us"
            )
        job = {"kind": "cost", "limiter": "in-process", "acquires": scale.acquires * 10, "start_at": 0.0}
        (report,) = _run_fleet([job], timeout=120)
        table.record("limiter cost per acquire: in-process", f"{report['per_acquire'] * 1e6:.1f} us")
    return table.rows


NOTES = """Every caller asks again as soon as it has its answer, so the fleet always wants more than the
quota. The quota allows its 15 per second for four seconds and then nothing until the minute is
over: "answered" counts the answers that arrived within the run against the most the gateway's
sliding windows let through in that time, so both sides reach it; what differs is the way
there. With the shared limiter every request the gateway sees fits (no 429, no retry). The
anchor's limiter cannot know about the other processes: the fleet asks for 8 times the quota,
the gateway refuses the excess, and every refusal is a retry that holds its caller for the
Retry-After (up to a minute) and goes out again with the rest at the next window; a run longer
than the client's `max_retries=2` rounds turns those into 429s at the callers. The margin
(0.5 s here) covers the spread between a turn and the gateway counting the request on this
shared 2-core machine, which also runs the emulator and the whole fleet (docs/scaling.md). The
cost per acquire is one Redis round trip and script; at 8 processes on 2 cores the processes
queue for the CPU, not for Redis (8 processes together still do more acquires per second than
one)."""


def section(rows: list[Row], quick: bool) -> str:
    how = (
        "a quick run (too small for the figures to mean anything)"
        if quick
        else "`python -m benchmarks.quota` (a part of `make bench`)"
    )
    header = (
        f"### The shared quota\n\nMeasured by {how} on {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores, a local redis-server and the emulator's gateway quota.\n\n"
    )
    return f"{START}\n{header}" + markdown(rows) + f"\n\n{NOTES}\n{END}"


def _put(path: Path, block: str, *, after: str | None = None) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if START in text:
        text = replace_block(text, START, END, block)
    elif after is not None and after in text:
        text = text.replace(after, after + "\n\n" + block, 1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def write_section(rows: list[Row], path: Path | None, quick: bool) -> None:
    """The section into `path`, or into benchmarks/RESULTS.md and the README's benchmarks."""
    block = section(rows, quick)
    if path is not None:
        _put(path, block)
        return
    _put(ROOT / "benchmarks" / "RESULTS.md", block)
    _put(ROOT / "README.md", block, after="<!-- bench:end -->")
    print(f"\nwrote the shared-quota section to {ROOT / 'benchmarks' / 'RESULTS.md'} and README.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quota", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny fleet for a few seconds")
    parser.add_argument("--results", type=Path, default=None, help="write the section here instead")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        _worker(json.loads(args.worker))
        return 0
    if args.quick and args.results is None:
        parser.error("--quick needs --results: quick figures must not replace the published table")
    write_section(measure(args.quick), args.results, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
