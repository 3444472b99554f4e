"""Wire types of the Assistant API (seeds 000 and 001), as pydantic v2 models.

Every model keeps the fields the server sends that it does not name (`extra="allow"`), so a new
field on the server is never lost on the way to the caller: it is in `model_extra` and in
`model_dump()`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ._base import WireModel

__all__ = [
    "AnswerMetaData",
    "AssistantAnswer",
    "ChatMessage",
    "Delta",
    "Source",
    "SourceMetaData",
    "StreamChunk",
    "answer_from_chunks",
]


class SourceMetaData(WireModel):
    """Where a cited passage comes from; any further keys the server sends are kept."""

    document_title: str | None = None
    section: str | None = None


class Source(WireModel):
    """A passage the assistant cites for its answer."""

    content: str = ""
    meta_data: SourceMetaData = Field(default_factory=SourceMetaData)


class AnswerMetaData(WireModel):
    intent: str | None = None
    legal_advice: bool | None = None
    type: str | None = None


class ChatMessage(WireModel):
    """One message of a request: `role` is user, assistant, system or tool."""

    role: str
    content: str


class AssistantAnswer(WireModel):
    """The blocking answer of `POST /agents/v1/chat/completions`."""

    id: str
    role: str = "assistant"
    content: str
    created_at: str | None = None
    thread_id: str
    sources: list[Source] = Field(default_factory=list)
    meta_data: AnswerMetaData = Field(default_factory=AnswerMetaData)


class Delta(WireModel):
    role: str | None = None
    content: str = ""
    sources: list[Source] = Field(default_factory=list)


class StreamChunk(WireModel):
    """One NDJSON line of `POST /agents/v1/chat/completions/stream`."""

    created_at: str | None = None
    message_id: str
    thread_id: str
    delta: Delta


def answer_from_chunks(chunks: list[StreamChunk]) -> AssistantAnswer:
    """Assemble a streamed answer into the shape of the blocking one (sources in order).

    The stream has no `meta_data` of its own; one sent on any chunk as an extra key is kept.
    """
    if not chunks:
        raise ValueError("a stream with no chunks has no answer")
    sources: list[Source] = []
    meta_data: Any = None
    for chunk in chunks:
        sources.extend(chunk.delta.sources)
        meta_data = (chunk.model_extra or {}).get("meta_data", meta_data)
    first = chunks[0]
    return AssistantAnswer(
        id=first.message_id,
        role=first.delta.role or "assistant",
        content="".join(chunk.delta.content for chunk in chunks),
        created_at=first.created_at,
        thread_id=chunks[-1].thread_id,
        sources=sources,
        meta_data=AnswerMetaData.model_validate(meta_data or {}),
    )
