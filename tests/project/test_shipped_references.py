"""What ships points users at pages they have: no "SPEC §N" or "seed 00N" (the project's internal
source documents), but docs/ pages, and every docs/ page a shipped file points at exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [
    "haufe_copilot",
    "haufe_emulator",
    "langchain_haufe",
    "llama_index_haufe",
    "llama_index",
    "docs",
    "examples",
]
SHIPPED_FILES = ["README.md", "CHANGELOG.md"]
INTERNAL = re.compile(r"SPEC §|seeds? 00\d|the seeds\b", re.IGNORECASE)


def shipped_files() -> list[Path]:
    files = [ROOT / name for name in SHIPPED_FILES]
    for folder in SHIPPED:
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".txt", ".json")]
    return [p for p in files if p.is_file() and "__pycache__" not in p.parts]


def test_no_shipped_file_cites_the_internal_documents() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in shipped_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if INTERNAL.search(line)
    ]
    assert not found, "point at docs/ pages instead:\n" + "\n".join(found)


def test_every_docs_page_pointed_at_exists() -> None:
    pointed = {
        match
        for path in shipped_files()
        for match in re.findall(r"docs/([\w-]+\.md)", path.read_text(encoding="utf-8"))
    }
    assert "contract.md" in pointed
    assert not [name for name in pointed if not (ROOT / "docs" / name).is_file()]


def test_the_contract_page_has_the_sections_the_code_points_at() -> None:
    headings = set(re.findall(r"^#+ (.+)$", (ROOT / "docs" / "contract.md").read_text(), re.MULTILINE))
    pointers = {
        section.strip()
        for path in shipped_files()
        for section in re.findall(r"docs/contract\.md[,:]? \(?([A-Z][\w -]+?)[).:;]", path.read_text())
    }
    sections = {part for pointer in pointers for part in pointer.split(" and ")}
    assert sections, "no pointer names a section"
    missing = {s for s in sections if not any(h.startswith(s) for h in headings)}
    assert not missing, f"docs/contract.md has no section {sorted(missing)}"


def test_the_architecture_page_quotes_the_import_contracts_as_they_are() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    quoted = re.search(r"```toml\n(\[tool\.importlinter\].*?)```", page, re.DOTALL)
    assert quoted, "docs/architecture.md quotes no [tool.importlinter] block"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    start = pyproject.index("[tool.importlinter]")
    following = re.search(r"^\[(?!\[?tool\.importlinter)", pyproject[start:], re.MULTILINE)
    section = pyproject[start : start + following.start()] if following else pyproject[start:]
    assert quoted.group(1).strip() == section.strip()
