"""`docs/reliability.md`: each generator (`matrix`, `soak`) rewrites only its own section."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"

HEADER = """# Reliability

How the client holds up under faults, bad input, load and cancellation, with the figures measured
on the local emulator. The sections below are generated: `make faults` rewrites the fault matrix,
`make soak` the load, soak and resume figures. The checks themselves run in `make test`
(`tests/test_reliability_*.py`); only the load and soak rounds are left to `make soak`.
"""


#: The generated sections, in the order the document shows them.
SECTIONS = ["matrix", "soak"]


def write_section(path: Path, key: str, body: str) -> None:
    """Replace the section marked `key` in `path` (appended after the others when it is new)."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        later = (
            [k for k in SECTIONS[SECTIONS.index(key) + 1 :] if f"<!-- {k}:begin -->" in text]
            if key in SECTIONS
            else []
        )
        if later:  # keep the sections in their order: before the first one that comes after it
            at = text.index(f"<!-- {later[0]}:begin -->")
            text = text[:at] + block + "\n" + text[at:]
        else:
            text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, header)), *[list(map(str, row)) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    out = []
    for n, row in enumerate(cells):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)
