"""What a cell observed, and the judges that decide whether it passed: the error, the attempts,
the waits, the partial text, the connections left open, asyncio's complaints, and the bounds a
hostile server must not break."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..servers import RawRequest
from .faults import Cell, Fault, How, PlatformFault, ThreadScenario, max_retries

# A measured wait may exceed the announced one by scheduling; it may never be shorter.
WAIT_SLACK = 0.3


# -- what a cell observed ---------------------------------------------------------------------


@dataclass
class Observed:
    error: str | None = None
    error_code: str | None = None
    status: int | None = None
    message: str = ""
    attempts: int = 0  # on the server (on the client where nothing listens)
    client_attempts: int = 0
    announced: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    delivered: str = ""
    partial: str = ""
    open: int = 0
    connections: str = ""
    sockets_after_close: int = 0
    complaints: list[str] = field(default_factory=list)
    thread_action: str | None = None
    thread_reason: str | None = None
    old_thread_attempts: int = 0
    new_thread_attempts: int = 0
    new_thread_messages: int = 0
    rss_growth_mb: float = 0.0
    call_seconds: float = 0.0
    log_lines: list[str] = field(default_factory=list)
    cause_headers: str = ""


@dataclass
class CellResult:
    cell: Cell
    passed: bool
    problems: list[str]
    observed: Observed
    seconds: float

    def explain(self) -> str:
        o = self.observed
        return (
            f"{self.cell.id}: {'pass' if self.passed else 'FAIL'} "
            + ("; ".join(self.problems) if self.problems else "")
            + f"\n  observed: {o.error} code={o.error_code} status={o.status} attempts={o.attempts} "
            f"(client {o.client_attempts}) announced={ms(o.announced)} waits={ms(o.waits)} "
            f"delivered={len(o.delivered)} partial={len(o.partial)} {o.connections} "
            f"thread={o.thread_action} old/new={o.old_thread_attempts}/{o.new_thread_attempts}"
            f"\n  message: {o.message[:300]}"
        )


def ms(values: Sequence[float]) -> str:
    """Seconds as whole milliseconds joined by "/" ("-" for none)."""
    return "/".join(f"{v * 1000:.0f}" for v in values) or "-"


# -- judging -----------------------------------------------------------------------------------


def expected_attempts(cell: Cell, fault: Fault, how: How) -> int:
    retried = fault.retried_on_thread if cell.layer == "core-thread" else how.retried
    return 1 + max_retries(cell) if retried else 1


def judge(cell: Cell, fault: Fault, how: How, o: Observed) -> list[str]:
    problems: list[str] = []
    if o.error != fault.error.__name__:
        problems.append(f"raised {o.error}, expected {fault.error.__name__}")
    if o.error_code != fault.error_code:
        problems.append(f"error_code {o.error_code!r}, expected {fault.error_code!r}")
    if o.status != fault.status:
        problems.append(f"status {o.status}, expected {fault.status}")
    attempts = expected_attempts(cell, fault, how)
    if o.attempts != attempts:
        problems.append(f"{o.attempts} attempts reached the server, expected {attempts}")
    if o.client_attempts != attempts:
        problems.append(f"the client sent {o.client_attempts} attempts, expected {attempts}")
    problems += _judge_waits(fault, attempts - 1, o)
    problems += _judge_partial(cell, how, o)
    problems += _judge_connections(o)
    problems += _judge_hostile(fault, o)
    return problems


def _judge_hostile(fault: Fault, o: Observed) -> list[str]:
    """What every cell must hold against a hostile server: bounded cost, inert text, no credential."""
    problems = []
    if fault.max_rss_mb is not None and o.rss_growth_mb > fault.max_rss_mb:
        problems.append(f"peak RSS grew by {o.rss_growth_mb:.0f} MB, bound {fault.max_rss_mb} MB")
    if fault.max_call_seconds is not None and o.call_seconds > fault.max_call_seconds:
        problems.append(f"the call took {o.call_seconds:.2f} s, bound {fault.max_call_seconds} s")
    for where, lines in (("message", [o.message]), ("log", o.log_lines)):
        if any(len(line) > 2000 or any(ord(c) < 32 for c in line) for line in lines):
            problems.append(f"the {where} quotes server text unbounded or with control characters")
    if o.cause_headers and "<redacted>" not in o.cause_headers:
        problems.append(f"the credential is on the httpx cause's request: {o.cause_headers[:200]}")
    return problems


def _judge_waits(fault: Fault, retries: int, o: Observed) -> list[str]:
    problems = []
    if len(o.announced) != retries or len(o.waits) != retries:
        return [f"{len(o.announced)} waits announced and {len(o.waits)} measured, expected {retries}"]
    for n, (announced, measured) in enumerate(zip(o.announced, o.waits, strict=True)):
        if fault.retry_after is not None:
            if abs(announced - fault.retry_after) > 1e-6:
                problems.append(
                    f"wait {n + 1}: {announced:.3f} s announced, the server asked {fault.retry_after} s"
                )
        else:
            low, high = 0.5 * 2**n * 0.75, 0.5 * 2**n
            if not low - 1e-9 <= announced <= high + 1e-9:
                problems.append(f"wait {n + 1}: {announced:.3f} s is not the backoff {low:.3f}-{high:.3f} s")
        if not announced - 0.003 <= measured <= announced + WAIT_SLACK:
            problems.append(f"wait {n + 1}: measured {measured:.3f} s for {announced:.3f} s announced")
    return problems


def _judge_partial(cell: Cell, how: How, o: Observed) -> list[str]:
    problems = []
    if o.partial != o.delivered:
        problems.append(f"partial holds {len(o.partial)} characters, the caller got {len(o.delivered)}")
    if cell.mode == "streaming" and how.partial_deltas and not o.delivered:
        problems.append(f"nothing was delivered before a fault after {how.partial_deltas} deltas")
    if not how.partial_deltas and o.delivered:
        problems.append(f"{len(o.delivered)} characters delivered before a fault that comes first")
    return problems


def _judge_connections(o: Observed) -> list[str]:
    problems = []
    if o.open:
        problems.append(f"connections left open after the call: {o.connections}")
    if o.sockets_after_close:
        problems.append(f"{o.sockets_after_close} sockets still open after the client was closed")
    if o.complaints:
        problems.append(f"asyncio complained: {o.complaints}")
    return problems


def judge_thread_scenario(cell: Cell, scenario: ThreadScenario, fault: Fault, o: Observed) -> list[str]:
    problems: list[str] = []
    if o.old_thread_attempts != 1:
        problems.append(
            f"the continuation was sent {o.old_thread_attempts} times on its thread, expected once"
        )
    if o.new_thread_attempts != scenario.new_thread_attempts:
        problems.append(
            f"{o.new_thread_attempts} requests on a new thread, expected {scenario.new_thread_attempts}"
        )
    if o.new_thread_messages != 3:
        problems.append(
            f"the new thread got {o.new_thread_messages} messages, expected the whole history (3)"
        )
    if scenario.error is None:
        if o.error is not None:
            problems.append(f"raised {o.error}: {o.message[:200]}")
        if o.thread_action != "new" or not (o.thread_reason or "").startswith("thread_failed"):
            problems.append(
                f"thread_action {o.thread_action!r} ({o.thread_reason!r}), expected new/thread_failed"
            )
        if o.announced:
            problems.append(f"waits announced {ms(o.announced)} where nothing was retried")
        if cell.mode == "streaming" and not o.delivered:
            problems.append("the new thread's answer was not streamed")
    else:
        if o.error != scenario.error.__name__:
            problems.append(f"raised {o.error}, expected {scenario.error.__name__}")
        if o.error_code != fault.error_code:
            problems.append(f"error_code {o.error_code!r}, expected {fault.error_code!r}")
        problems += _judge_waits(fault, scenario.new_thread_attempts - 1, o)
        if o.partial != o.delivered or o.delivered:
            problems.append(
                f"delivered {len(o.delivered)} / partial {len(o.partial)} characters, expected none"
            )
    problems += _judge_connections(o)
    return problems


def judge_platform(
    cell: Cell, fault: PlatformFault, o: Observed, requests: Sequence[RawRequest]
) -> list[str]:
    """A platform cell: the error, the requests the scripted server received, the text delivered."""
    problems = []
    if o.error != (fault.error.__name__ if fault.error else None):
        problems.append(f"raised {o.error}, expected {fault.expected}: {o.message[:200]}")
    if tuple(r.method for r in requests) != fault.requests:
        problems.append(
            f"the server received {[r.method for r in requests]}, expected {list(fault.requests)}"
        )
    if fault.call == "start" and len({r.target for r in requests if r.method == "POST"}) != 1:
        problems.append(f"the starts named different streams: {[r.target for r in requests]}")
    if cell.mode == "streaming" and o.error and o.partial != o.delivered:
        problems.append(f"partial holds {len(o.partial)} characters, the caller got {len(o.delivered)}")
    if fault.text is not None and o.delivered != fault.text:
        problems.append(f"the caller got {o.delivered!r}, expected {fault.text!r}")
    return problems
