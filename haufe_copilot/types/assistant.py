"""Wire types of the Assistant API (docs/contract.md, Assistant API), as pydantic v2 models.

Every model keeps the fields the server sends that it does not name (`extra="allow"`), so a new
field on the server is never lost on the way to the caller: it is in `model_extra` and in
`model_dump()`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from haufe_copilot.errors import APIResponseValidationError
from haufe_copilot.types._base import WireModel

__all__ = [
    "AnswerAssembler",
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


class AnswerAssembler:
    """Gathers what a stream says besides its text, chunk by chunk: the ids and time, the
    sources in order (they may come on any chunk), and a `meta_data` a chunk carries as an
    extra key (the stream has none of its own)."""

    __slots__ = ("first", "meta_data", "sources", "thread_id")

    def __init__(self) -> None:
        self.first: StreamChunk | None = None
        self.thread_id = ""
        self.sources: list[Source] = []
        self.meta_data: Any = None

    def add(self, chunk: StreamChunk) -> None:
        if self.first is None:
            self.first = chunk
        self.thread_id = chunk.thread_id
        if sources := chunk.delta.sources:  # most chunks have none: this runs for every delta
            self.sources.extend(sources)
        extra = chunk.__pydantic_extra__
        if extra and "meta_data" in extra:
            self.meta_data = extra["meta_data"]

    @property
    def message_id(self) -> str:
        return self.first.message_id if self.first else ""

    def answer(self, content: str) -> AssistantAnswer:
        """The streamed answer in the shape of the blocking one."""
        first = self.first
        return AssistantAnswer(
            id=self.message_id,
            role=(first.delta.role if first else None) or "assistant",
            content=content,
            created_at=first.created_at if first else None,
            thread_id=self.thread_id,
            sources=self.sources,
            meta_data=AnswerMetaData.model_validate(self.meta_data or {}),
        )


def answer_from_chunks(chunks: list[StreamChunk]) -> AssistantAnswer:
    """Assemble a streamed answer into the shape of the blocking one (sources in order)."""
    if not chunks:
        raise APIResponseValidationError(
            "The stream held no chunk, so there is no answer to assemble (and no thread)."
        )
    assembler = AnswerAssembler()
    for chunk in chunks:
        assembler.add(chunk)
    return assembler.answer("".join(chunk.delta.content for chunk in chunks))
