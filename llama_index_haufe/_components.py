"""What the retriever and the engines share: an `llm=` or the adapter's own keyword fields."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from .base import HaufeCopilot


def resolve_llm(llm: HaufeCopilot | None, fields: dict[str, Any], owner: str) -> HaufeCopilot:
    """`llm` as given, or a `HaufeCopilot` built from `fields`; not both."""
    if llm is not None:
        if fields:
            raise TypeError(
                f"{owner} takes either llm= or HaufeCopilot's keyword fields, not both "
                f"(got llm= and {sorted(fields)})."
            )
        if not isinstance(llm, HaufeCopilot):
            raise TypeError(f"{owner}(llm=...) needs a HaufeCopilot, not {type(llm).__name__}.")
        return llm
    return HaufeCopilot(**fields)


def question(llm: HaufeCopilot, text: str) -> list[ChatMessage]:
    """A question as a conversation of its own (with the LLM's system prompt, if it has one)."""
    return llm._extend_messages([ChatMessage(role=MessageRole.USER, content=text)])
