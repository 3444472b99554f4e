"""Async streams cut at random points, resumed by the client with `Last-Event-ID`.

Each stream is started with a random number of deltas (`x-emulator-delta-count`), some generated
live (a small `x-emulator-delta-delay`) and some already finished when observed; its observation
is cut after a random number of events, on one to three connections in a row
(`x-emulator-cut-after` with `x-emulator-fault-times`). The client's `streams.events()` must
deliver every event of the emulator's own log exactly once, in order, by re-attaching.

Both sides are checked. The client's view: the ids 1..N with nothing missing or repeated, each
event the same as the log's. The server's view (which the client's own de-duplication cannot
hide): each re-attachment asked for exactly the last id the previous connection delivered, and
the ids sent over all of a stream's connections, joined, are 1..N with no id sent twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from haufe_copilot import AsyncHaufeCopilotClient
from haufe_copilot.types import DeltaEvent, DoneEvent, StreamEvent

QUESTION = "Welche Kündigungsfristen gelten während der Probezeit?"


@dataclass
class ResumeReport:
    streams: int = 0
    events: int = 0
    connections: int = 0
    lost: int = 0
    duplicated: int = 0  # delivered twice to the caller
    resent: int = 0  # sent twice by the server (hidden from the caller by the client's dedup)
    wrong_resume_point: int = 0
    mismatched: int = 0  # an event that differs from the server's log
    failed: int = 0  # a stream whose events() raised
    uncut: int = 0  # a stream observed on one connection only (the cut did not happen)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def cuts(self) -> int:
        return self.connections - self.streams

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.resent
            or self.wrong_resume_point
            or self.mismatched
            or self.failed
        )

    def summary(self) -> str:
        return (
            f"{self.streams} streams, {self.events} events over {self.connections} connections "
            f"({self.cuts} cuts resumed) in {self.seconds:.1f} s: {self.lost} lost, "
            f"{self.duplicated} duplicated, {self.resent} re-sent by the server, "
            f"{self.wrong_resume_point} wrong resume points, {self.mismatched} mismatched, "
            f"{self.failed} failed, {self.uncut} not cut"
        )


def _same(event: StreamEvent, logged: Any) -> bool:
    if event.id != logged.id or event.event != logged.event:
        return False
    if isinstance(event, DeltaEvent):
        return bool(event.content == logged.data["content"])
    if isinstance(event, DoneEvent):
        return bool(event.status == logged.data["status"])
    return True


async def resume_streams(
    client: AsyncHaufeCopilotClient,
    registry: Any,
    *,
    count: int = 1000,
    concurrency: int = 100,
    seed: int = 0,
    max_reattach: int = 5,
) -> ResumeReport:
    """Start `count` streams, observe each through random cuts, and check every event."""
    rng = random.Random(seed)
    plans = []
    for _ in range(count):
        deltas = rng.randint(3, 40)  # events: status, the deltas, done
        plans.append(
            {
                "deltas": deltas,
                "cut_after": rng.randint(1, deltas),  # inside the stream, before its `done`
                "times": rng.randint(1, 3),
                "live": rng.random() < 0.3,
            }
        )
    report = ResumeReport(streams=count)
    gate = asyncio.Semaphore(concurrency)
    results: list[tuple[str, dict[str, Any], list[StreamEvent] | BaseException]] = []

    async def one(plan: dict[str, Any]) -> None:
        async with gate:
            start_headers = {"x-emulator-delta-count": str(plan["deltas"])}
            if plan["live"]:
                start_headers["x-emulator-delta-delay"] = "0.002"
            handle = await client.streams.start(
                messages=[{"role": "user", "content": QUESTION}], extra_headers=start_headers
            )
            cut = {
                "x-emulator-cut-after": str(plan["cut_after"]),
                "x-emulator-fault-times": str(plan["times"]),
                "x-emulator-fault-id": f"{handle.stream_id}-cut",
            }
            try:
                events = [
                    e
                    async for e in client.streams.events(
                        handle.stream_id, extra_headers=cut, max_reattach=max_reattach
                    )
                ]
            except Exception as exc:
                results.append((handle.stream_id, plan, exc))
                return
            results.append((handle.stream_id, plan, events))

    started = time.monotonic()
    await asyncio.gather(*(one(plan) for plan in plans))
    report.seconds = time.monotonic() - started
    for stream_id, _plan, outcome in results:
        if isinstance(outcome, BaseException):
            report.failed += 1
            report.problems.append(f"{stream_id}: {outcome!r}")
            continue
        _check(report, registry, stream_id, outcome)
    return report


def _check(report: ResumeReport, registry: Any, stream_id: str, events: list[StreamEvent]) -> None:
    stream = registry.get(stream_id)
    if stream is None:
        report.problems.append(f"{stream_id}: expired before it could be checked")
        report.failed += 1
        return
    log = list(stream.events)
    report.events += len(events)
    ids = [e.id for e in events]
    expected = [logged.id for logged in log]
    lost = len(set(expected) - set(ids))
    duplicated = len(ids) - len(set(ids))
    report.lost += lost
    report.duplicated += duplicated
    if not lost and not duplicated:
        mismatched = sum(not _same(e, logged) for e, logged in zip(events, log, strict=True))
        report.mismatched += mismatched
        if ids != expected:
            report.mismatched += 1
    observations = registry.observations_for(stream_id)
    report.connections += len(observations)
    if len(observations) < 2:
        report.uncut += 1
    sent = [i for o in observations for i in o.sent]
    report.resent += len(sent) - len(set(sent))
    previous = 0
    for observation in observations:
        if (observation.last_event_id or 0) != previous:
            report.wrong_resume_point += 1
        previous = observation.sent[-1] if observation.sent else previous
    if sorted(set(sent)) != expected:
        report.problems.append(
            f"{stream_id}: the server sent {sorted(set(sent))[:5]}..., the log has {len(expected)}"
        )
    if lost or duplicated:
        report.problems.append(f"{stream_id}: {lost} lost, {duplicated} duplicated")
