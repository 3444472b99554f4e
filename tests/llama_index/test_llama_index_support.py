"""Helpers of the LlamaIndex tests (no tests here): an LLM pointed at the emulator whose requests
carry a marker header, the requests the emulator received with that marker, and a recorder of
instrumentation events."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.memory import Memory
from pydantic import ConfigDict, Field
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from haufe_emulator import EmulatorServer
from haufe_emulator.state import RecordedRequest
from llama_index_haufe import HaufeCopilot
from tests.conftest import ASSISTANT_ID, SESSION_API_KEY

ASSISTANT = "/agents/v1/chat/completions"
ASSISTANT_STREAM = "/agents/v1/chat/completions/stream"
COMPLETIONS = "/api/v1/chat/completions"
ASYNC_STREAMS = "/api/v1/messages/async"


def make_llm(emulator: EmulatorServer, marker: str | None = None, **fields: Any) -> HaufeCopilot:
    """A `HaufeCopilot` for the emulator; its requests carry `x-test-marker: marker`."""
    headers = {"x-test-marker": marker} if marker else None
    options: dict[str, Any] = {
        "api_key": SESSION_API_KEY,
        "base_url": emulator.url,
        "assistant_id": ASSISTANT_ID,
        "default_headers": headers,
        **fields,
    }
    return HaufeCopilot(**options)


def received(emulator: EmulatorServer, marker: str, path: str | None = None) -> list[RecordedRequest]:
    """The requests carrying the marker, oldest first (on `path` only, if given)."""
    return [
        r
        for r in list(emulator.state.requests)
        if r.headers.get("x-test-marker") == marker and (path is None or r.path == path)
    ]


def bodies(emulator: EmulatorServer, marker: str, path: str) -> list[Any]:
    return [r.body for r in received(emulator, marker, path)]


def file_memory(directory: Path, session_id: str) -> Memory:
    """A LlamaIndex `Memory` for one session in an SQLite file. (Its default, an in-memory
    database, leaves its aiosqlite connection to the garbage collector: a ResourceWarning.)"""
    engine = create_async_engine(f"sqlite+aiosqlite:///{directory / 'memory.db'}", poolclass=NullPool)
    return Memory.from_defaults(session_id=session_id, async_engine=engine)


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


class EventRecorder(BaseEventHandler):
    """Every instrumentation event, in order."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "EventRecorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)

    def count(self, kind: type[BaseEvent]) -> int:
        return sum(1 for event in self.events if isinstance(event, kind))

    def of(self, kind: type[BaseEvent]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


@contextlib.contextmanager
def recording() -> Iterator[EventRecorder]:
    """Record the events of LlamaIndex's root dispatcher for the duration of the block."""
    dispatcher = get_dispatcher()
    recorder = EventRecorder()
    dispatcher.add_event_handler(recorder)
    try:
        yield recorder
    finally:
        dispatcher.event_handlers.remove(recorder)
