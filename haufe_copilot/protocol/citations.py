"""An answer with the sections of law it cites, as text a model reads as a tool's result.

Both adapters' `HaufeCopilotTool`s return this as the tool's content: an agent's model sees the
answer and, on a line of its own, what it rests on, so its own reply can cite it. The sources
themselves travel beside it (as `Document`s / source nodes), never only as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["answer_with_citations", "cited_section"]


def cited_section(meta_data: Mapping[str, Any]) -> str | None:
    """`§ 622 Abs. 3 BGB` from a source's `meta_data` (its `section` and `law`), else its title."""
    section = meta_data.get("section")
    law = meta_data.get("law")
    if isinstance(section, str) and section.strip():
        text = section.strip()
        if isinstance(law, str) and law.strip() and law.strip() not in text:
            text = f"{text} {law.strip()}"
        return text
    title = meta_data.get("document_title")
    return title.strip() if isinstance(title, str) and title.strip() else None


def answer_with_citations(answer: str, sources_meta_data: Iterable[Mapping[str, Any]]) -> str:
    """The answer, then `Quellen: [1] § 622 Abs. 3 BGB; [2] ...` in citation order (each section
    once); the answer alone when it cites nothing."""
    sections: list[str] = []
    for meta_data in sources_meta_data:
        section = cited_section(meta_data)
        if section and section not in sections:
            sections.append(section)
    if not sections:
        return answer
    listed = "; ".join(f"[{rank}] {section}" for rank, section in enumerate(sections, start=1))
    return f"{answer.rstrip()}\n\nQuellen: {listed}"
