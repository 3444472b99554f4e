"""`client.assistant`: the Assistant API, blocking and NDJSON streaming (docs/contract.md, Assistant API)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from haufe_copilot.protocol.assistant import (
    ASSISTANT_STREAM,
    MessageInput,
    build_assistant_request,
    parse_answer,
)
from haufe_copilot.transport.base_client import validate_timeout
from haufe_copilot.transport.streaming import AsyncStream, Stream
from haufe_copilot.types.assistant import AssistantAnswer, StreamChunk, answer_from_chunks

if TYPE_CHECKING:
    from haufe_copilot.transport.async_client import AsyncHaufeCopilotClient
    from haufe_copilot.transport.client import HaufeCopilotClient

__all__ = ["Assistant", "AssistantStream", "AsyncAssistant", "AsyncAssistantStream"]


class AssistantStream(Stream[StreamChunk]):
    """The chunks of a streamed answer: `for chunk in stream: chunk.delta.content`."""

    __slots__ = ()

    def get_final_answer(self) -> AssistantAnswer:
        """Read the whole stream and assemble it into the blocking answer's shape."""
        self._require_unstarted("get_final_answer()")
        return answer_from_chunks(list(self._items))


class AsyncAssistantStream(AsyncStream[StreamChunk]):
    """The chunks of a streamed answer: `async for chunk in stream: chunk.delta.content`."""

    __slots__ = ()

    async def get_final_answer(self) -> AssistantAnswer:
        """Read the whole stream and assemble it into the blocking answer's shape."""
        self._require_unstarted("get_final_answer()")
        return answer_from_chunks([chunk async for chunk in self._items])


class Assistant:
    """The Assistant API: answers with sources, conversations kept on the server as threads."""

    def __init__(self, client: HaufeCopilotClient) -> None:
        self._client = client

    def chat(
        self,
        *,
        assistant_id: str,
        messages: Sequence[MessageInput],
        user_id: str | None = None,
        thread_id: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        deadline: float | None = None,
    ) -> AssistantAnswer:
        """Ask and wait for the whole answer (`POST /agents/v1/chat/completions`).

        Without `thread_id` the server opens a new thread (its id is on the answer); with it,
        `messages` are the new turns of that thread. Fields some assistants require beyond the
        documented ones (e.g. `user_data`) go in `extra_body`. `timeout` bounds each network
        operation, `deadline` (seconds; default the client's) the whole call, retries included.
        """
        spec = build_assistant_request(
            assistant_id=assistant_id,
            messages=messages,
            user_id=user_id,
            thread_id=thread_id,
            stream=False,
            extra_body=extra_body,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )
        return self._client._request(
            spec, parse_answer, _timeout(timeout), self._client._call_deadline(deadline)
        )

    def stream(
        self,
        *,
        assistant_id: str,
        messages: Sequence[MessageInput],
        user_id: str | None = None,
        thread_id: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        deadline: float | None = None,
    ) -> AssistantStream:
        """Ask and stream the answer as NDJSON chunks (`POST /agents/v1/chat/completions/stream`).

        Returns an iterator that is also a context manager; nothing is sent until it is
        iterated. Sources may come on any chunk (the service sends them on the last). The
        stream ends with `APITimeoutError` (`.partial`: the text so far) once no chunk has come
        for the read timeout (keep-alives do not count) or once `deadline` has passed, counted
        from the first iteration and including your code's time between chunks.
        """
        spec = build_assistant_request(
            assistant_id=assistant_id,
            messages=messages,
            user_id=user_id,
            thread_id=thread_id,
            stream=True,
            extra_body=extra_body,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )
        return AssistantStream(
            self._client._iterate(
                spec, ASSISTANT_STREAM, _timeout(timeout), self._client._call_deadline(deadline)
            )
        )


class AsyncAssistant:
    """The Assistant API, asynchronously (see `Assistant`)."""

    def __init__(self, client: AsyncHaufeCopilotClient) -> None:
        self._client = client

    async def chat(
        self,
        *,
        assistant_id: str,
        messages: Sequence[MessageInput],
        user_id: str | None = None,
        thread_id: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        deadline: float | None = None,
    ) -> AssistantAnswer:
        """Ask and wait for the whole answer (see `Assistant.chat`)."""
        spec = build_assistant_request(
            assistant_id=assistant_id,
            messages=messages,
            user_id=user_id,
            thread_id=thread_id,
            stream=False,
            extra_body=extra_body,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )
        return await self._client._request(
            spec, parse_answer, _timeout(timeout), self._client._call_deadline(deadline)
        )

    def stream(
        self,
        *,
        assistant_id: str,
        messages: Sequence[MessageInput],
        user_id: str | None = None,
        thread_id: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        deadline: float | None = None,
    ) -> AsyncAssistantStream:
        """Stream the answer: `async for chunk in client.assistant.stream(...)`, no `await`."""
        spec = build_assistant_request(
            assistant_id=assistant_id,
            messages=messages,
            user_id=user_id,
            thread_id=thread_id,
            stream=True,
            extra_body=extra_body,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )
        return AsyncAssistantStream(
            self._client._iterate(
                spec, ASSISTANT_STREAM, _timeout(timeout), self._client._call_deadline(deadline)
            )
        )


def _timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout | None:
    return validate_timeout(timeout)
