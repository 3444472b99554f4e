"""The matrix as tables: printed with its failures and totals, and as the "Fault matrix" section
of docs/reliability.md."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Mapping, Sequence

from ..report import markdown_table, text_table
from .faults import (
    ADAPTER_FAULTS,
    ADAPTERS,
    FAULTS,
    FLAVORS,
    MODES,
    PLATFORM_FAULTS,
    THREAD_FAULTS,
    THREAD_SCENARIOS,
)
from .judges import CellResult, ms


def _mark(result: CellResult | None) -> str:
    if result is None:
        return "—"
    return "pass" if result.passed else "FAIL"


COLUMNS = [(mode, flavor) for mode in MODES for flavor in FLAVORS]


def _sections(results: Mapping[str, CellResult]) -> list[tuple[str, list[str], list[list[str]]]]:
    def get(layer: str, row: str, mode: str, flavor: str) -> CellResult | None:
        return results.get(f"{layer}:{row}:{mode}:{flavor}")

    core_rows = [
        [name, fault.summary, fault.expected, *(_mark(get("core", name, m, f)) for m, f in COLUMNS)]
        for name, fault in FAULTS.items()
    ]
    adapter_rows = [
        [
            cls,
            ADAPTER_FAULTS[cls],
            *(_mark(get(adapter, cls, m, f)) for adapter in ADAPTERS for m, f in COLUMNS),
        ]
        for cls in ADAPTER_FAULTS
    ]
    thread_rows = [
        [
            name,
            "retried" if FAULTS[name].retried_on_thread else "not retried",
            *(_mark(get("core-thread", name, m, f)) for m, f in COLUMNS),
        ]
        for name in THREAD_FAULTS
    ]
    scenario_rows = [
        [name, s.summary, *(_mark(get(f"{a}-thread", name, m, f)) for a in ADAPTERS for m, f in COLUMNS)]
        for name, s in THREAD_SCENARIOS.items()
    ]
    cols = [f"{m} {f}" for m, f in COLUMNS]
    both = [f"{a} {m[0]}/{f[0]}" for a in ("LC", "LI") for m, f in COLUMNS]
    return [
        ("Core client (assistant API)", ["fault", "how", "expected", *cols], core_rows),
        ("Adapters: each error class propagates", ["error class", "fault", *both], adapter_rows),
        (
            "Thread rule, core: a continuation is retried only where the server cannot have it",
            ["fault", "on a thread", *cols],
            thread_rows,
        ),
        (
            "Thread rule, adapters: a failed continuation reopens once",
            ["scenario", "what", *both],
            scenario_rows,
        ),
        (
            "Platform APIs: no replay runs a completion twice or starts a second stream; streams end",
            ["fault", "what", "expected", *cols],
            [
                [name, f.summary, f.expected, *(_mark(get("platform", name, m, fl)) for m, fl in COLUMNS)]
                for name, f in PLATFORM_FAULTS.items()
            ],
        ),
    ]


def totals(results: Sequence[CellResult]) -> str:
    passed = sum(r.passed for r in results)
    by_layer = Counter(r.cell.layer for r in results)
    failed_by_layer = Counter(r.cell.layer for r in results if not r.passed)
    parts = ", ".join(
        f"{layer} {by_layer[layer] - failed_by_layer[layer]}/{by_layer[layer]}" for layer in by_layer
    )
    return f"{passed} of {len(results)} cells pass ({parts})"


def waits_summary(results: Sequence[CellResult]) -> str:
    """How the waits between attempts went: what was asked, announced and measured."""
    asked: list[float] = []
    backoff: list[tuple[float, float]] = []
    for result in results:
        if result.cell.layer == "platform":  # nothing there is retried
            continue
        o = result.observed
        server_asked = result.cell.fault.retry_after is not None
        for announced, measured in zip(o.announced, o.waits, strict=False):
            if server_asked:
                asked.append(measured - announced)
            else:
                backoff.append((announced, measured - announced))
    parts = []
    if asked:
        low, high, median = (f"{v * 1000:+.1f}" for v in (min(asked), max(asked), statistics.median(asked)))
        parts.append(
            f"{len(asked)} waits the server asked for (Retry-After 0.05 s, retry-after-ms 30): each "
            f"announced exactly as asked, measured {low} to {high} ms from it (median {median} ms)"
        )
    if backoff:
        first = [a for a, _ in backoff if a <= 0.5]
        late = [d for _, d in backoff]
        parts.append(
            f"{len(backoff)} backoff waits (no Retry-After): {min(first):.3f}-{max(first):.3f} s for the "
            f"first retry (0.5 s less up to 25 % jitter), measured {min(late) * 1000:+.1f} to "
            f"{max(late) * 1000:+.1f} ms from the announced wait"
        )
    return "; ".join(parts) + "."


def text_report(results: Sequence[CellResult]) -> str:
    by_id = {r.cell.id: r for r in results}
    out = []
    for title, header, rows in _sections(by_id):
        out += [title, text_table(header, rows), ""]
    failures = [r for r in results if not r.passed]
    if failures:
        out.append("Failures:")
        out += [r.explain() for r in failures]
        out.append("")
    out.append("Waits: " + waits_summary(results))
    out.append("Totals: " + totals(results))
    return "\n".join(out)


def markdown_report(results: Sequence[CellResult], seconds: float) -> str:
    by_id = {r.cell.id: r for r in results}
    out = [
        "## Fault matrix",
        "",
        f"`make faults` on {time.strftime('%Y-%m-%d')}: **{totals(results)}**, in {seconds:.0f} s.",
        "",
        "Each cell calls the client against the emulator (or a raw socket server, for a reset before "
        "the status line, a blocking answer that is not JSON and an empty 200; or a port where nothing "
        "listens; the platform rows run against scripted raw answers and check the error and the "
        "requests the server received) "
        "and checks: the exception's class, `error_code` and status; the attempts that reached the "
        "server (and that the client sent); the waits between them, announced by the client and "
        "measured (`Retry-After` / `retry-after-ms` honoured, else the 0.5 s x 2^n backoff); that "
        "the text delivered before an interrupted stream is the error's `partial`; that no "
        "connection is left open (this process's sockets to the server beyond the pool's idle "
        "keep-alive connections, and busy pool connections); and that asyncio complains of "
        "nothing. Retried faults fire on every attempt, so each cell ends in its error after "
        "`max_retries` (2; 1 for faults that wait the backoff, and 0 in the adapters' cells for those: "
        "the backoff is measured in the core's).",
        "",
        "Columns: blocking (`chat`) or streaming (`stream`), sync or async client. Adapters: LC = "
        "LangChain `ChatHaufeCopilot` (`invoke`/`stream`, `ainvoke`/`astream`), LI = LlamaIndex "
        "`HaufeCopilot` (`chat`/`stream_chat`, `achat`/`astream_chat`); b/s = blocking/streaming, "
        "s/a = sync/async.",
        "",
        f"Waits: {waits_summary(results)}",
        "",
    ]
    for title, header, rows in _sections(by_id):
        out += [f"### {title}", "", markdown_table(header, rows), ""]
    detail_rows = [
        [
            r.cell.id,
            "pass" if r.passed else "FAIL",
            r.observed.error or f"answer ({r.observed.thread_action})",
            r.observed.error_code or "",
            r.observed.status or "",
            r.observed.attempts,
            ms(r.observed.announced),
            ms(r.observed.waits),
            f"{len(r.observed.delivered)}/{len(r.observed.partial)}",
            r.observed.open,
            f"{r.seconds:.2f}",
        ]
        for r in results
    ]
    out += [
        "### Every cell, as observed",
        "",
        "<details><summary>attempts, waits (ms, announced and measured), delivered/partial "
        "characters, connections left open</summary>",
        "",
        markdown_table(
            [
                "cell",
                "result",
                "raised",
                "error_code",
                "status",
                "attempts",
                "announced",
                "measured",
                "delivered/partial",
                "open",
                "s",
            ],
            detail_rows,
        ),
        "",
        "</details>",
    ]
    failures = [r for r in results if not r.passed]
    if failures:
        out += ["", "### Failures", "", "```", *(r.explain() for r in failures), "```"]
    return "\n".join(out)
