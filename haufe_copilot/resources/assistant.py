"""`client.assistant`: the Assistant API, blocking and NDJSON streaming (docs/contract.md, Assistant API)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from haufe_copilot.protocol.assistant import (
    ASSISTANT_STREAM,
    MessageInput,
    build_assistant_request,
    parse_answer,
)
from haufe_copilot.protocol.attempt import Call
from haufe_copilot.resources.base import RequestOptions, Resource, call_of
from haufe_copilot.transport.base_client import BaseClient
from haufe_copilot.transport.streaming import AsyncStream, Stream
from haufe_copilot.types.assistant import AssistantAnswer, StreamChunk, answer_from_chunks

if TYPE_CHECKING:
    from typing_extensions import Required, Unpack

    from haufe_copilot.transport.async_client import AsyncHaufeCopilotClient
    from haufe_copilot.transport.client import HaufeCopilotClient

__all__ = ["Assistant", "AssistantRequest", "AssistantStream", "AsyncAssistant", "AsyncAssistantStream"]


class AssistantRequest(RequestOptions, total=False):
    """The arguments of `chat()` and `stream()`.

    Without `thread_id` the server opens a new thread (its id is on the answer); with it,
    `messages` are the new turns of that thread. Fields some assistants require beyond the
    documented ones (e.g. `user_data`) go in `extra_body`. `timeout` bounds each network
    operation, `deadline` (seconds; default the client's) the whole call, retries and a stream's
    reading included (your code's time between chunks too)."""

    assistant_id: Required[str]
    messages: Required[Sequence[MessageInput]]
    user_id: str | None
    thread_id: str | None


def assistant_call(client: BaseClient, request: Mapping[str, Any], *, stream: bool) -> Call[Any]:
    """The one description of the endpoint, blocking or streamed."""
    fields: dict[str, Any] = dict.fromkeys(
        ("user_id", "thread_id", "extra_body", "extra_headers", "extra_query")
    )
    fields.update((k, v) for k, v in request.items() if k not in ("timeout", "deadline"))
    spec = build_assistant_request(**fields, stream=stream)
    if stream:
        return call_of(client, spec, request, fmt=ASSISTANT_STREAM)
    return call_of(client, spec, request, parse=parse_answer)


class AssistantStream(Stream[StreamChunk]):
    """The chunks of a streamed answer: `for chunk in stream: chunk.delta.content`."""

    __slots__ = ()

    def get_final_answer(self) -> AssistantAnswer:
        """Read the whole stream and assemble it into the blocking answer's shape."""
        self._require_unstarted("get_final_answer()")
        return answer_from_chunks(list(self))


class AsyncAssistantStream(AsyncStream[StreamChunk]):
    """The chunks of a streamed answer: `async for chunk in stream: chunk.delta.content`."""

    __slots__ = ()

    async def get_final_answer(self) -> AssistantAnswer:
        """Read the whole stream and assemble it into the blocking answer's shape."""
        self._require_unstarted("get_final_answer()")
        return answer_from_chunks([chunk async for chunk in self])


class Assistant(Resource):
    """The Assistant API: answers with sources, conversations kept on the server as threads."""

    __slots__ = ()
    blocking = ("chat",)
    _client: HaufeCopilotClient

    def chat(self, **request: Unpack[AssistantRequest]) -> AssistantAnswer:
        """Ask and wait for the whole answer (`POST /agents/v1/chat/completions`); the arguments
        are `AssistantRequest`'s."""
        answer: AssistantAnswer = self._client._request(assistant_call(self._client, request, stream=False))
        return answer

    def stream(self, **request: Unpack[AssistantRequest]) -> AssistantStream:
        """Ask and stream the answer as NDJSON chunks (`POST /agents/v1/chat/completions/stream`).

        Returns an iterator that is also a context manager; the request has been sent and
        answered when it returns (docs/errors.md). Sources may come on any chunk (the
        service sends them on the last). The stream ends with `APITimeoutError` (`.partial`:
        the text so far) once no chunk has come for the read timeout (keep-alives do not count)
        or once `deadline` has passed.
        """
        call = assistant_call(self._client, request, stream=True)
        return AssistantStream(self._client._iterate(call, batches=True), batched=True)


class AsyncAssistant(Resource):
    """The Assistant API, asynchronously (see `Assistant`)."""

    __slots__ = ()
    blocking = ("chat",)
    _client: AsyncHaufeCopilotClient

    async def chat(self, **request: Unpack[AssistantRequest]) -> AssistantAnswer:
        """Ask and wait for the whole answer (see `Assistant.chat`)."""
        answer: AssistantAnswer = await self._client._request(
            assistant_call(self._client, request, stream=False)
        )
        return answer

    def stream(self, **request: Unpack[AssistantRequest]) -> AsyncAssistantStream:
        """Stream the answer: `async for chunk in client.assistant.stream(...)`; `await` it to
        send the request first (docs/errors.md)."""
        return AsyncAssistantStream(self._client._iterate(assistant_call(self._client, request, stream=True)))
