"""The emulator's knowledge base: German employment-law excerpts bundled as corpus.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib.resources import files
from typing import Any

_TEXT_FIELDS = ("id", "law", "document_title", "section", "content", "summary")
#: The legal position every excerpt states, unless an entry names its own `as_of` (ISO date).
LEGAL_POSITION = date(2026, 1, 1)
_MONTH_NAMES = "Januar Februar März April Mai Juni Juli August September Oktober November Dezember"
_MONTHS = _MONTH_NAMES.split()


def german_date(day: date) -> str:
    """1. Januar 2026."""
    return f"{day.day}. {_MONTHS[day.month - 1]} {day.year}"


@dataclass(frozen=True, slots=True)
class Excerpt:
    """One paragraph (Absatz) of a statute, with a plain-language summary."""

    id: str
    law: str
    document_title: str
    section: str
    content: str
    summary: str
    keywords: tuple[str, ...]
    as_of: date = LEGAL_POSITION

    @property
    def citation(self) -> str:
        """The provision as cited in answers, e.g. "§ 622 Abs. 3 BGB"."""
        return f"{self.section} {self.law}"

    @property
    def marked_content(self) -> str:
        """The wording as a source carries it: marked as an excerpt, with the date of its legal
        position. A source has no field for either (docs/contract.md), so its text says it."""
        return f"{self.content} (Auszug, Stand: {german_date(self.as_of)})"

    def to_source(self) -> dict[str, Any]:
        """The excerpt in the shape of a source of the real service's answers."""
        return {
            "content": self.marked_content,
            "meta_data": {
                "document_title": self.document_title,
                "section": self.section,
                "law": self.law,
                "excerpt_id": self.id,
            },
        }


def _parse_entry(position: int, entry: object) -> Excerpt:
    if not isinstance(entry, dict):
        raise ValueError(f"corpus entry #{position} is not an object")
    name = f"corpus entry #{position} ({entry.get('id', '<no id>')!r})"
    for field in (*_TEXT_FIELDS, "keywords"):
        if field not in entry:
            raise ValueError(f"{name}: missing field {field!r}")
    for field in _TEXT_FIELDS:
        if not isinstance(entry[field], str) or not entry[field].strip():
            raise ValueError(f"{name}: field {field!r} must be a non-empty string")
    keywords = entry["keywords"]
    if not isinstance(keywords, list) or not all(isinstance(k, str) and k for k in keywords):
        raise ValueError(f"{name}: field 'keywords' must be a list of non-empty strings")
    try:
        as_of = date.fromisoformat(entry.get("as_of", LEGAL_POSITION.isoformat()))
    except (TypeError, ValueError):
        raise ValueError(f"{name}: field 'as_of' must be an ISO date (YYYY-MM-DD)") from None
    excerpt = Excerpt(
        id=entry["id"],
        law=entry["law"],
        document_title=entry["document_title"],
        section=entry["section"],
        content=entry["content"],
        summary=entry["summary"],
        keywords=tuple(keywords),
        as_of=as_of,
    )
    # Sources of the real service always open with the citation ("§ 622 Abs. 3 BGB: ...").
    if not excerpt.content.startswith(f"{excerpt.citation}: "):
        raise ValueError(f"{name}: content must start with {excerpt.citation + ':'!r}")
    return excerpt


def parse_corpus(data: object) -> tuple[Excerpt, ...]:
    """Validate decoded corpus JSON and turn it into excerpts (raises ValueError)."""
    if not isinstance(data, list):
        raise ValueError("corpus must be a JSON list of excerpt objects")
    excerpts = tuple(_parse_entry(position, entry) for position, entry in enumerate(data))
    seen: set[str] = set()
    for excerpt in excerpts:
        if excerpt.id in seen:
            raise ValueError(f"corpus entry {excerpt.id!r}: duplicate id")
        seen.add(excerpt.id)
    return excerpts


@cache
def load_corpus() -> tuple[Excerpt, ...]:
    """The bundled corpus, read once per process."""
    resource = files("haufe_emulator").joinpath("corpus.json")
    return parse_corpus(json.loads(resource.read_text(encoding="utf-8")))
