"""`client.completions`: the OpenAI-compatible chat completions API (docs/contract.md, Completions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from haufe_copilot.protocol.attempt import Call
from haufe_copilot.protocol.platform import (
    COMPLETION_STREAM,
    build_completion_request,
    completion_from_chunks,
    parse_completion,
)
from haufe_copilot.resources.base import RequestOptions, Resource, call_of
from haufe_copilot.transport.base_client import BaseClient
from haufe_copilot.transport.streaming import AsyncStream, Stream
from haufe_copilot.types.completions import ChatCompletion, ChatCompletionChunk

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from haufe_copilot.transport.async_client import AsyncHaufeCopilotClient
    from haufe_copilot.transport.client import HaufeCopilotClient

__all__ = ["AsyncCompletions", "CompletionOptions", "Completions"]


class CompletionOptions(RequestOptions, total=False):
    """The optional fields of the completions API (docs/contract.md), and per-call transport options."""

    model: str | None
    temperature: float | None
    top_p: float | None
    n: int | None
    stop: str | Sequence[str] | None
    max_tokens: int | None
    presence_penalty: float | None
    frequency_penalty: float | None
    tools: Sequence[Mapping[str, Any]] | None
    tool_choice: Any
    session_id: str | None


def completion_call(
    client: BaseClient, messages: Sequence[Any], stream: bool, options: CompletionOptions
) -> Call[Any]:
    """The one description of the endpoint. Tool calls come only over SSE (docs/contract.md,
    Completions): with tools, a blocking call streams too (and is assembled by the caller)."""
    fields: dict[str, Any] = {k: v for k, v in options.items() if k not in ("timeout", "deadline")}
    spec = build_completion_request(messages=messages, stream=stream or bool(fields.get("tools")), **fields)
    if spec.stream:
        return call_of(client, spec, options, fmt=COMPLETION_STREAM)
    return call_of(client, spec, options, parse=parse_completion)


class Completions(Resource):
    """Chat completions with tools, OpenAI-compatible; no assistant, threads or sources."""

    __slots__ = ()
    blocking = ("create",)
    _client: HaufeCopilotClient

    @overload
    def create(
        self, *, messages: Sequence[Any], stream: Literal[False] = False, **options: Unpack[CompletionOptions]
    ) -> ChatCompletion: ...
    @overload
    def create(
        self, *, messages: Sequence[Any], stream: Literal[True], **options: Unpack[CompletionOptions]
    ) -> Stream[ChatCompletionChunk]: ...

    def create(
        self, *, messages: Sequence[Any], stream: bool = False, **options: Unpack[CompletionOptions]
    ) -> ChatCompletion | Stream[ChatCompletionChunk]:
        """`POST /api/v1/chat/completions` (Bearer auth).

        Options are the documented fields (docs/contract.md: `model`, `temperature`, `top_p`, `n`, `stop`,
        `max_tokens`, `presence_penalty`, `frequency_penalty`, `tools`, `tool_choice`,
        `session_id`) plus `extra_body`, `extra_headers`, `extra_query`, `timeout` and
        `deadline` (the most the whole call may take, in seconds; default the client's).
        `stream=True` returns the SSE chunks (the last before `[DONE]` carries `usage`), the
        request sent and answered (docs/errors.md).
        The service calls tools only over SSE, so with `tools` and `stream=False` this streams
        and assembles the answer for you: the result is the same `ChatCompletion`, tool calls
        included; like every answer, it is bounded by `max_response_bytes`. A missing
        `session_id` gets a new one, returned on the answer; the request's messages are the
        whole conversation (the server prepends nothing). A completion is retried only where
        the server cannot have run it (a 429, or a connection that failed before the request
        was sent), and a stream that ends before `[DONE]` is an `APIConnectionError` carrying
        `.partial` (docs/reliability.md).
        """
        call = completion_call(self._client, messages, stream, options)
        if call.fmt is None:
            completion: ChatCompletion = self._client._request(call)
            return completion
        chunks: Stream[ChatCompletionChunk] = Stream(self._client._iterate(call, batches=True), batched=True)
        if stream:
            return chunks
        with chunks:
            return completion_from_chunks(list(chunks))


class AsyncCompletions(Resource):
    """Chat completions, asynchronously (see `Completions`)."""

    __slots__ = ()
    blocking = ("create",)
    _client: AsyncHaufeCopilotClient

    @overload
    async def create(
        self, *, messages: Sequence[Any], stream: Literal[False] = False, **options: Unpack[CompletionOptions]
    ) -> ChatCompletion: ...
    @overload
    async def create(
        self, *, messages: Sequence[Any], stream: Literal[True], **options: Unpack[CompletionOptions]
    ) -> AsyncStream[ChatCompletionChunk]: ...

    async def create(
        self, *, messages: Sequence[Any], stream: bool = False, **options: Unpack[CompletionOptions]
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        """See `Completions.create`; with `stream=True`, `await` it for the async iterator (the
        request sent and answered)."""
        call = completion_call(self._client, messages, stream, options)
        if call.fmt is None:
            completion: ChatCompletion = await self._client._request(call)
            return completion
        chunks: AsyncStream[ChatCompletionChunk] = await AsyncStream(self._client._iterate(call))
        if stream:
            return chunks
        async with chunks:
            return completion_from_chunks([chunk async for chunk in chunks])
