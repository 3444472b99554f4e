"""Wire types of the async-streams API (docs/contract.md, Async streams)."""

from __future__ import annotations

from typing import Any, Literal

from haufe_copilot.types._base import WireModel
from haufe_copilot.types.completions import Usage

__all__ = [
    "DeltaEvent",
    "DoneEvent",
    "ErrorEvent",
    "StatusEvent",
    "StreamEvent",
    "StreamHandle",
    "StreamStatus",
    "ThinkingEvent",
    "ToolCallEvent",
]

#: The statuses after which a stream produces nothing more.
FINISHED_STATES = frozenset({"completed", "failed", "cancelled", "error"})


class StreamHandle(WireModel):
    """The answer to initiating a stream (202)."""

    stream_id: str
    status: str = "pending"
    message: str | None = None


class StreamStatus(WireModel):
    stream_id: str
    status: str
    error: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATES


class StreamEvent(WireModel):
    """An event of an async stream: `id` counts from 1 per stream; unknown kinds keep their data."""

    id: int
    event: str


class StatusEvent(StreamEvent):
    event: Literal["status"] = "status"
    status: str


class DeltaEvent(StreamEvent):
    event: Literal["delta"] = "delta"
    content: str = ""


class ThinkingEvent(StreamEvent):
    event: Literal["thinking"] = "thinking"
    content: str = ""


class ToolCallEvent(StreamEvent):
    """A fragment of a tool call: the first of a call carries `id` and `name`."""

    event: Literal["tool_call"] = "tool_call"
    index: int | None = None
    tool_call_id: str | None = None
    name: str | None = None
    arguments: str | None = None


class ErrorEvent(StreamEvent):
    event: Literal["error"] = "error"
    error_code: str | None = None
    detail: Any = None


class DoneEvent(StreamEvent):
    event: Literal["done"] = "done"
    status: str
    usage: Usage | None = None


EVENT_TYPES: dict[str, type[StreamEvent]] = {
    "status": StatusEvent,
    "delta": DeltaEvent,
    "thinking": ThinkingEvent,
    "tool_call": ToolCallEvent,
    "error": ErrorEvent,
    "done": DoneEvent,
}
