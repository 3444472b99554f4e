"""Load and soak: `python -m tests.reliability.soak` (`make soak`), loopback only, bounded.

Five rounds of 1,000 concurrent streamed answers (`AsyncHaufeCopilotClient.assistant.stream`)
against the emulator running in a process of its own (so that this process's sockets, file
descriptors and memory are the client's alone), with 10 % of the calls given an injected fault:

- a 500 on the first attempt only (retried: must still give the full answer);
- a 429 on every attempt (a typed RateLimitError after the retries);
- a cut, a malformed line, or an error line after a few deltas (a typed error with `partial`);
- no first byte within the call's timeout (a typed APITimeoutError after the retries).

Every call must end in the full answer (the same text as a call without faults) or a typed
`HaufeCopilotError`; nothing else. Each round uses a fresh client, closed at its end; before and
after each round the file descriptors and TCP connections of this process are counted (they must
come back to where they started) and the resident memory is read after a collection (rounds 2
to 5 must stay within 10 % of each other). Then the resume check of
`tests.reliability.resume` runs once more (1,000 async streams cut at random points, against an
in-process emulator whose event log it compares with). The figures are printed and written to
`docs/reliability.md` under "Soak" (`--no-write` to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import secrets
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotError
from haufe_emulator import DEFAULT_ASSISTANT_ID, EmulatorConfig, EmulatorServer

from . import probes
from .report import DOC, markdown_table, text_table, write_section
from .resume import ResumeReport, resume_streams
from .servers import emulator_child

QUESTION = "Welche Kündigungsfristen gelten während der Probezeit?"
CALL_TIMEOUT = 20.0  # per attempt; the stall fault uses its own short one


# -- one call ------------------------------------------------------------------------------------

FAULTS: list[tuple[str, dict[str, str]]] = [
    ("500 once, retried", {"x-emulator-fault": "internal_server_error", "x-emulator-fault-times": "1"}),
    ("429 every time", {"x-emulator-fault": "rate_limit_gateway"}),
    ("cut after 5 deltas", {"x-emulator-cut-after": "5"}),
    ("malformed line after 5", {"x-emulator-malformed-after": "5"}),
    (
        "error line after 5",
        {"x-emulator-stream-error": "internal_service_error", "x-emulator-stream-error-after": "5"},
    ),
    ("stall past the timeout", {"x-emulator-delay": "2"}),
]


@dataclass
class CallResult:
    fault: str | None
    seconds: float
    outcome: str  # "full", "partial-answer" (wrong), an error class name, or "untyped: ..."
    typed: bool
    full: bool


async def one_call(
    client: AsyncHaufeCopilotClient, fault: tuple[str, dict[str, str]] | None, expected: str
) -> CallResult:
    headers: dict[str, str] = {"x-emulator-retry-after-ms": "20"}
    timeout: float | None = None
    if fault is not None:
        headers.update(fault[1])
        headers["x-emulator-fault-id"] = secrets.token_hex(8)
        if "x-emulator-delay" in fault[1]:
            timeout = 0.5
    started = time.monotonic()
    text: list[str] = []
    try:
        async for chunk in client.assistant.stream(
            assistant_id=DEFAULT_ASSISTANT_ID,
            messages=[{"role": "user", "content": QUESTION}],
            extra_headers=headers,
            timeout=timeout,
        ):
            text.append(chunk.delta.content)
    except HaufeCopilotError as error:
        return CallResult(fault and fault[0], time.monotonic() - started, type(error).__name__, True, False)
    except Exception as error:  # anything but a typed error is a failure of the client
        return CallResult(fault and fault[0], time.monotonic() - started, f"untyped: {error!r}", False, False)
    full = "".join(text) == expected
    return CallResult(
        fault and fault[0], time.monotonic() - started, "full" if full else "wrong answer", full, full
    )


# -- one round -------------------------------------------------------------------------------


@dataclass
class Round:
    number: int
    calls: int = 0
    results: list[CallResult] = field(default_factory=list)
    seconds: float = 0.0
    fds_before: int = 0
    fds_after: int = 0
    conns_before: int = 0
    conns_peak: int = 0
    conns_after: int = 0
    rss_after: int = 0

    @property
    def latencies(self) -> list[float]:
        return sorted(r.seconds for r in self.results)

    def percentile(self, q: float) -> float:
        values = self.latencies
        return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(r.outcome for r in self.results)

    @property
    def untyped(self) -> int:
        return sum(not r.typed for r in self.results)

    @property
    def clean_but_not_full(self) -> int:
        """Calls without a fault (or with a fault the retry cures) that did not give the answer."""
        return sum(1 for r in self.results if r.fault in (None, "500 once, retried") and not r.full)


async def run_round(
    number: int,
    base_url: str,
    port: int,
    api_key: str,
    concurrency: int,
    fault_rate: float,
    expected: str,
    rng: random.Random,
    connections: int | None = None,
) -> Round:
    gc.collect()
    result = Round(number, calls=concurrency)
    result.fds_before, result.conns_before = probes.fd_count(), len(probes.client_sockets(port))
    plan = [rng.choice(FAULTS) if rng.random() < fault_rate else None for _ in range(concurrency)]
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            result.conns_peak = max(result.conns_peak, len(probes.client_sockets(port)))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    http = None
    if connections:  # a pool of the caller's, with this many connections, instead of the default
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        http = httpx.AsyncClient(limits=limits, timeout=CALL_TIMEOUT)
    async with AsyncHaufeCopilotClient(
        api_key=api_key, base_url=base_url, max_retries=1, timeout=CALL_TIMEOUT, http_client=http
    ) as client:
        result.results = list(await asyncio.gather(*(one_call(client, fault, expected) for fault in plan)))
    if http is not None:
        await http.aclose()
    result.seconds = time.monotonic() - started
    done.set()
    await sampler
    await asyncio.sleep(0.05)  # let the loop run the sockets' close callbacks
    gc.collect()
    result.fds_after, result.conns_after = probes.fd_count(), len(probes.client_sockets(port))
    result.rss_after = probes.rss_bytes()
    return result


async def reference_answer(base_url: str, api_key: str) -> str:
    async with AsyncHaufeCopilotClient(api_key=api_key, base_url=base_url) as client:
        return (
            await client.assistant.chat(
                assistant_id=DEFAULT_ASSISTANT_ID, messages=[{"role": "user", "content": QUESTION}]
            )
        ).content


# -- the report ------------------------------------------------------------------------------


@dataclass
class Verdict:
    name: str
    ok: bool
    detail: str


def verdicts(rounds: Sequence[Round], resume: ResumeReport | None) -> list[Verdict]:
    checks = [
        Verdict(
            "every call ends in the full answer or a typed error",
            all(r.untyped == 0 and "wrong answer" not in r.outcomes for r in rounds),
            f"{sum(r.untyped for r in rounds)} untyped, "
            f"{sum(r.outcomes['wrong answer'] for r in rounds)} wrong answers",
        ),
        Verdict(
            "calls without a lasting fault all get the full answer",
            all(r.clean_but_not_full == 0 for r in rounds),
            f"{sum(r.clean_but_not_full for r in rounds)} did not",
        ),
        Verdict(
            "file descriptors return to their starting level",
            all(r.fds_after <= r.fds_before for r in rounds),
            ", ".join(f"{r.fds_before}->{r.fds_after}" for r in rounds),
        ),
        Verdict(
            "connections return to their starting level",
            all(r.conns_after <= r.conns_before for r in rounds),
            ", ".join(f"{r.conns_before}->{r.conns_after}" for r in rounds),
        ),
    ]
    later = [r.rss_after for r in rounds[1:]]
    if later:
        spread = max(later) / min(later) - 1
        checks.append(
            Verdict(
                "memory within 10 % from round 2 on",
                spread <= 0.10,
                f"{spread * 100:.1f} % ({', '.join(f'{v / 2**20:.0f}' for v in later)} MiB)",
            )
        )
    if resume is not None:
        checks.append(Verdict("resumed streams: nothing lost or duplicated", resume.ok, resume.summary()))
    return checks


def _rows(rounds: Sequence[Round]) -> list[list[object]]:
    return [
        [
            r.number,
            r.calls,
            r.outcomes["full"],
            sum(v for k, v in r.outcomes.items() if k != "full"),
            r.untyped,
            f"{r.percentile(0.5) * 1000:.0f}",
            f"{r.percentile(0.95) * 1000:.0f}",
            f"{r.latencies[-1] * 1000:.0f}" if r.results else "-",
            f"{r.seconds:.1f}",
            f"{r.fds_before}->{r.fds_after}",
            f"{r.conns_before}->{r.conns_peak}->{r.conns_after}",
            f"{r.rss_after / 2**20:.0f}",
        ]
        for r in rounds
    ]


HEADER = [
    "round",
    "calls",
    "full",
    "typed errors",
    "untyped",
    "p50 ms",
    "p95 ms",
    "max ms",
    "s",
    "fds",
    "conns (peak)",
    "RSS MiB",
]


def errors_by_class(rounds: Sequence[Round]) -> list[list[object]]:
    by: Counter[tuple[str, str]] = Counter()
    for r in rounds:
        for call in r.results:
            by[(call.fault or "none", call.outcome)] += 1
    return [[fault, outcome, count] for (fault, outcome), count in sorted(by.items())]


def markdown(
    rounds: Sequence[Round], resume: ResumeReport | None, args: argparse.Namespace, seconds: float
) -> str:
    pool = f"an httpx pool of {args.connections} connections" if args.connections else "its default pool"
    out = [
        "## Soak",
        "",
        f"`make soak` on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}), {seconds:.0f} s: {args.rounds} rounds of {args.concurrency} concurrent "
        f"streamed answers, {args.fault_rate:.0%} with an injected fault, against the emulator in a "
        "process of its own on loopback; a fresh `AsyncHaufeCopilotClient` per round (`max_retries=1`, "
        f"{pool}). Latency: from the call to its last chunk or its error. fds and connections: "
        "this process's, before and after each round (connections: before, peak, after). RSS: after "
        "each round and a collection.",
        "",
        markdown_table(HEADER, _rows(rounds)),
        "",
        "Outcomes by injected fault:",
        "",
        markdown_table(["fault", "outcome", "calls"], errors_by_class(rounds)),
        "",
    ]
    if resume is not None:
        out += [
            "### Resume",
            "",
            f"{resume.summary()}. Each stream was cut after a random number of events on one to "
            "three connections in a row; the client re-attached with `Last-Event-ID`. Checked against "
            "the emulator's own event log and its record of what each connection sent.",
            "",
        ]
    out += [
        "### Verdicts",
        "",
        markdown_table(
            ["check", "result", "figures"],
            [[v.name, "pass" if v.ok else "FAIL", v.detail] for v in verdicts(rounds, resume)],
        ),
    ]
    return "\n".join(out)


# -- the command -----------------------------------------------------------------------------


async def soak(args: argparse.Namespace) -> tuple[list[Round], ResumeReport | None]:
    rng = random.Random(args.seed)
    api_key = "sk-soak-" + secrets.token_hex(16)
    rounds: list[Round] = []
    with emulator_child(api_key, quiet=True) as (_, port):
        base_url = f"http://127.0.0.1:{port}"
        expected = await reference_answer(base_url, api_key)
        for number in range(1, args.rounds + 1):
            result = await run_round(
                number,
                base_url,
                port,
                api_key,
                args.concurrency,
                args.fault_rate,
                expected,
                rng,
                connections=args.connections,
            )
            rounds.append(result)
            print(
                text_table(HEADER, _rows([result])).splitlines()[-1]
                if number > 1
                else text_table(HEADER, _rows([result])),
                flush=True,
            )
    resume = None
    if args.resume:
        with EmulatorServer(EmulatorConfig(api_keys=frozenset({api_key}))) as server:
            async with AsyncHaufeCopilotClient(api_key=api_key, base_url=server.url) as client:
                resume = await resume_streams(
                    client, server.app.state.async_streams, count=args.resume, seed=args.seed
                )
        print(resume.summary(), flush=True)
    return rounds, resume


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--fault-rate", type=float, default=0.10)
    parser.add_argument(
        "--resume", type=int, default=1000, metavar="N", help="streams for the resume check (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=20251122)
    parser.add_argument(
        "--connections",
        type=int,
        metavar="N",
        help="give the client an httpx pool of N connections (default: the client's own pool)",
    )
    parser.add_argument(
        "--write", type=Path, default=DOC, metavar="PATH", help=f"the document to write (default {DOC})"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rounds, resume = asyncio.run(soak(args))
    seconds = time.monotonic() - started
    print()
    print("Outcomes by injected fault:")
    print(text_table(["fault", "outcome", "calls"], errors_by_class(rounds)))
    print()
    results = verdicts(rounds, resume)
    print(
        text_table(
            ["check", "result", "figures"], [[v.name, "pass" if v.ok else "FAIL", v.detail] for v in results]
        )
    )
    print(f"({seconds:.0f} s)")
    if not args.no_write:
        write_section(args.write, "soak", markdown(rounds, resume, args, seconds))
        print(f"written to {args.write}")
    return 0 if all(v.ok for v in results) else 1


if __name__ == "__main__":
    sys.exit(main())
