"""`make bench`: what each integration adds on top of the network, side by side in one run.

Starts the emulator in its own process (bulk mode: prepared answers in large writes, so the
server is not what is measured), then measures, best of several repetitions:

1. streaming cost per delta at 1,000, 5,000 and 20,000 deltas: raw httpx, our core client,
   `ChatHaufeCopilot.stream`, `ChatOpenAI.stream`, our LlamaIndex `stream_chat`,
   `OpenAILike.stream_chat`, and LangChain's own floor (a model yielding prepared chunks);
2. the same SSE body for both: `ChatHaufeCopilot` with tools bound against `ChatOpenAI`, text
   and then a tool call whose arguments come in 200 fragments;
3. blocking overhead over raw httpx: `invoke` against `ChatOpenAI.invoke`, LlamaIndex `chat`
   against `OpenAILike.chat`;
4. 1,000 concurrent `astream` calls of 100 deltas on one event loop: wall time, errors, peak
   open connections, against `ChatOpenAI.astream`;
5. import time of what a user writes, each in a fresh interpreter;
6. peak memory while the core client streams a 20 MB answer without keeping it;
7. one quota shared by a fleet of processes through Redis, against `InMemoryRateLimiter` in
   each process (benchmarks/quota.py, also runnable alone).

Prints one table of figures and targets and writes it to benchmarks/RESULTS.md and the README.
What is measured is `cases`, what each figure must meet `targets`, the timing, the repetitions
and the floors `harness`, the table and where it is written `report`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks import cases, quota, targets
from benchmarks.harness import FULL, QUICK, Run, emulator
from benchmarks.report import Table, write_results


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, one repetition: shows the harness works; the figures mean nothing",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="write the table here instead of benchmarks/RESULTS.md and the README",
    )
    args = parser.parse_args(argv)
    if args.quick and args.results is None:
        parser.error("--quick needs --results: quick figures must not replace the published table")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    scale = QUICK if args.quick else FULL
    from haufe_emulator.app import DEFAULT_ASSISTANT_ID  # its web stack only once the arguments hold

    table = Table()
    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} cores\n")
    with emulator() as url:
        run = Run(url, DEFAULT_ASSISTANT_ID, scale)
        targets.streaming(table, scale, *cases.streaming(run))
        targets.tools(table, *cases.tools_same_endpoint(run))
        targets.blocking(table, cases.blocking(run))
        targets.concurrency(table, scale, cases.concurrency(run))
        targets.memory(table, *cases.memory(run))
    targets.imports(table, cases.import_times(scale))
    targets.leaks(table, cases.loaded_packages())
    # The shared quota runs its own emulator (with the gateway quota), redis-server and fleet.
    quota_rows = quota.measure(args.quick)
    write_results(table.rows, args.results, quick=args.quick)
    quota.write_section(quota_rows, args.results, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
