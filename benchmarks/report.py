"""The report: the rows of a run, printed as they are recorded, as a Markdown table in
benchmarks/RESULTS.md (with the notes on the misses) and in the README between
`<!-- bench:start -->` and `<!-- bench:end -->`."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import ROOT

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"


@dataclass(frozen=True)
class Row:
    what: str
    figure: str
    target: str = ""
    met: bool | None = None


@dataclass
class Table:
    """The rows of one run, each printed as it is recorded (unless `quiet`)."""

    quiet: bool = False
    rows: list[Row] = field(default_factory=list)

    def record(self, what: str, figure: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(what, figure, target, met))
        if not self.quiet:
            mark = "" if met is None else ("  ok" if met else "  MISSED")
            print(f"{what:<62} {figure:>22}  {target}{mark}", flush=True)


def markdown(rows: Sequence[Row]) -> str:
    lines = ["| measure | figure | target | |", "|---|---|---|---|"]
    for row in rows:
        status = "" if row.met is None else ("met" if row.met else "**missed**")
        lines.append(f"| {row.what} | {row.figure} | {row.target} | {status} |")
    return "\n".join(lines)


def replace_block(text: str, start: str, end: str, block: str) -> str:
    """`text` with everything from `start` to `end` (both included) replaced by `block`."""
    return re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.DOTALL)


NOTES = """## Reading the misses

- **Long streams through LangChain (20k deltas).** `BaseChatModel.stream` keeps every chunk
  until the stream ends (it merges them for `on_llm_end`). Once a stream has produced some
  100,000 container objects, Python's cyclic collector runs full collections, each of which walks
  every live object, including all the chunks kept so far; the "profile of one 20k stream" rows
  count them. Every LangChain model pays this: floor B, which does no I/O, grows as
  ChatHaufeCopilot does, and ChatOpenAI spends about as many milliseconds in the collector. The
  chunk we build is already as small as `AIMessageChunk` allows (a copy of a validated
  prototype), so our part of the cost is the framework's. With the collector's time left out,
  ChatHaufeCopilot costs the same fraction of ChatOpenAI at 20k as at 1k and 5k. The core
  client and the LlamaIndex adapter, which keep nothing per delta, stay flat.
- **Imports.** A `BaseChatModel` or `FunctionCallingLLM` subclass cannot import faster than its
  base class: the "its floor" rows show langchain-core (most of it langsmith, which
  `langchain_core.tracers` imports) and llama-index-core alone already cost more than the 0.3x
  targets. What the adapters add above their floors is the difference (httpx is most of it).
  Our packages' bytecode is written before the timing, as installing a wheel does.
- **Floor A** yields chunk objects built before the timing, so it measures LangChain's stream
  machinery without the chunk every real model must build; floor B builds one per delta, without
  I/O; floor C builds floor B's chunk for every line of the same answer as ChatHaufeCopilot
  reads, over raw httpx (`iter_lines` + `json.loads`): the least a LangChain integration of this
  stream does.
- **ChatHaufeCopilot over floor B at 1k.** A stream's request costs its round trip to the
  emulator (two to three milliseconds for raw httpx with a one-delta answer), which at 1,000
  deltas is two to three microseconds a delta: a quarter of floor B, which sends nothing. Our
  chunk is a copy of a validated prototype (about 2 us, against 6 us for the validated chunk
  floor B builds), which pays for our reading and decoding from 5k deltas on, not for the round
  trip at 1k. Against floor C, which pays the same round trip, ours is below 1.1x at every size.
- **invoke over LangChain's own invoke around the raw HTTP call.** The "without the network"
  rows run the same calls on an `httpx.MockTransport`: the gap is CPU. Ours sends the documented
  request (checked ids, no control characters), reads the answer into the typed `AssistantAnswer`,
  plans the thread (history digests, the record of thread heads) and returns an `AIMessage`
  with the answer's sources and thread metadata; the floor posts a dict and wraps the text.
  Measured apart (2026-12-02), the core adds 40-50 us a call over raw httpx, the thread plan
  and metadata some 40 us, the adapter and LangChain's handling of the richer answer some
  50 us.
"""


def write_results(rows: Sequence[Row], path: Path | None, *, quick: bool) -> None:
    """The table (and the notes) to `path`; by default to benchmarks/RESULTS.md and the README."""
    table = markdown(rows)
    how = "a quick run (too small for the figures to mean anything)" if quick else "`make bench`"
    header = (
        f"Measured by {how} on {time.strftime('%Y-%m-%d')}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores, against the emulator in bulk mode on loopback.\n\n"
    )
    results = path or ROOT / "benchmarks" / "RESULTS.md"
    results.write_text("# Benchmark results\n\n" + header + table + "\n\n" + NOTES, encoding="utf-8")
    print(f"\nwrote {results}")
    if path is not None:
        return
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    pointer = "\n\nWhy the missed rows are missed, with their profiles: `benchmarks/RESULTS.md`."
    if START in text:
        readme.write_text(
            replace_block(text, START, END, f"{START}\n{header}{table}{pointer}\n{END}"), encoding="utf-8"
        )
