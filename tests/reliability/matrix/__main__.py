"""The fault matrix: every error of SPEC §2 and every transport fault, crossed with the ways to call.

`python -m tests.reliability.matrix [--write PATH] [-k TEXT]` (`make faults`) runs the cells against
an emulator of its own, prints the table with its totals and writes it into the document.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from haufe_emulator import EmulatorConfig, EmulatorServer

from ..report import DOC, write_section
from .faults import CELLS, Cell
from .judges import CellResult
from .report import markdown_report, text_report
from .runner import Env, run_cell


def run_all(env: Env, cells: Sequence[Cell] = CELLS, *, progress: bool = False) -> list[CellResult]:
    results = []
    for cell in cells:
        result = run_cell(cell, env)
        results.append(result)
        if progress:
            sys.stderr.write("." if result.passed else "F")
            sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, metavar="PATH", help=f"write the matrix into PATH (e.g. {DOC})")
    parser.add_argument("-k", metavar="TEXT", help="only the cells whose id contains TEXT")
    args = parser.parse_args(argv)
    cells = [c for c in CELLS if args.k is None or args.k in c.id]
    api_key = "sk-matrix-" + secrets.token_hex(16)
    started = time.monotonic()
    with (
        EmulatorServer(EmulatorConfig(api_keys=frozenset({api_key}))) as emulator,
        Env(emulator, api_key) as env,
    ):
        results = run_all(env, cells, progress=True)
    seconds = time.monotonic() - started
    print(text_report(results))
    print(f"({seconds:.1f} s)")
    if args.write is not None:
        write_section(args.write, "matrix", markdown_report(results, seconds))
        print(f"written to {args.write}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
