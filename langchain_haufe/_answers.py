"""A planned call's answer as LangChain's objects, per route (`haufe_copilot.conversation.routing`).

- the assistant API: the answer as an `AIMessage`, or its pieces as chunks with the metadata
  of docs/threads.md on the last;
- the completions endpoint: text and tool-call chunks, then a last chunk with `usage_metadata`,
  `finish_reason` and `session_id`;
- the async-streams API: text and tool-call chunks from its typed events, then the last chunk.

Loaded with a model's first call, not with `langchain_haufe`: it brings the wire types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient
from haufe_copilot.conversation.routing import CallPlan, TokenUsage, finish_reason, token_usage
from haufe_copilot.conversation.turns import (
    AnswerResult,
    aanswer,
    answer,
    astream_answer,
    stream_answer,
)
from haufe_copilot.errors import error_from_stream_object
from haufe_copilot.protocol.model_copy import prepared_copy
from haufe_copilot.types.completions import ChatCompletionChunk
from haufe_copilot.types.streams import DeltaEvent, DoneEvent, ErrorEvent, StreamEvent, ToolCallEvent

from ._messages import PROVIDER

__all__ = ["aanswer_message", "achunks", "answer_message", "chunks", "usage_metadata"]


# -- the assistant API ---------------------------------------------------------------------------


def _metadata(result: AnswerResult, model_name: str) -> dict[str, Any]:
    return {
        **result.metadata,
        "finish_reason": "stop",
        "model_provider": PROVIDER,
        # The assistant answers with its own model; this names the one asked for, if any.
        "model_name": model_name,
    }


def _message(result: AnswerResult, model_name: str) -> AIMessage:
    return AIMessage(
        content=result.text, id=result.metadata["message_id"], response_metadata=_metadata(result, model_name)
    )


def answer_message(client: HaufeCopilotClient, plan: CallPlan, model_name: str) -> AIMessage:
    """The route `answer`: one blocking answer."""
    assert plan.turn is not None
    return _message(answer(plan.client(client), plan.turn), model_name)


async def aanswer_message(client: AsyncHaufeCopilotClient, plan: CallPlan, model_name: str) -> AIMessage:
    assert plan.turn is not None
    return _message(await aanswer(plan.client(client), plan.turn), model_name)


def _last_piece(result: AnswerResult, model_name: str) -> ChatGenerationChunk:
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content="",
            id=result.metadata["message_id"],
            response_metadata=_metadata(result, model_name),
            chunk_position="last",
        )
    )


# -- every streamed route -----------------------------------------------------------------------


def chunks(client: HaufeCopilotClient, plan: CallPlan, model_name: str) -> Iterator[ChatGenerationChunk]:
    """A planned call's chunks, whatever its route (all but `answer` stream)."""
    client = plan.client(client)
    if plan.route == "completions":
        state = _CompletionState(model_name, first_call_only=plan.first_tool_call_only)
        with client.completions.create(messages=plan.messages, stream=True, **plan.options) as stream:
            for chunk in stream:
                generation = state.feed(chunk)
                if generation is not None:
                    yield generation
        yield state.last()
    elif plan.route == "async_stream":
        handle = client.streams.start(messages=plan.messages, **plan.options)
        partial: list[str] = []
        with client.streams.events(handle.stream_id) as events:
            for event in events:
                generation = _event_chunk(event, handle.stream_id, partial, model_name)
                if generation is not None:
                    yield generation
    else:
        assert plan.turn is not None
        for item in stream_answer(client, plan.turn, piece=_text_chunk):
            yield item if type(item) is ChatGenerationChunk else _last_piece(item, model_name)


async def achunks(
    client: AsyncHaufeCopilotClient, plan: CallPlan, model_name: str
) -> AsyncIterator[ChatGenerationChunk]:
    client = plan.client(client)
    if plan.route == "completions":
        state = _CompletionState(model_name, first_call_only=plan.first_tool_call_only)
        async with await client.completions.create(
            messages=plan.messages, stream=True, **plan.options
        ) as stream:
            async for chunk in stream:
                generation = state.feed(chunk)
                if generation is not None:
                    yield generation
        yield state.last()
    elif plan.route == "async_stream":
        handle = await client.streams.start(messages=plan.messages, **plan.options)
        partial: list[str] = []
        async with client.streams.events(handle.stream_id) as events:
            async for event in events:
                generation = _event_chunk(event, handle.stream_id, partial, model_name)
                if generation is not None:
                    yield generation
    else:
        assert plan.turn is not None
        async for item in astream_answer(client, plan.turn, piece=_text_chunk):
            yield item if type(item) is ChatGenerationChunk else _last_piece(item, model_name)


# -- the completions endpoint (tools) -----------------------------------------------------------


class _CompletionState:
    """What a completion stream says besides its deltas, gathered for the last chunk."""

    __slots__ = (
        "default_model",
        "finish_reason",
        "first_call_only",
        "first_index",
        "id",
        "model",
        "session_id",
        "usage",
    )

    def __init__(self, default_model: str, *, first_call_only: bool) -> None:
        self.default_model = default_model
        self.first_call_only = first_call_only
        self.first_index: int | None = None
        self.usage: UsageMetadata | None = None
        self.finish_reason: str | None = None
        self.id: str | None = None
        self.model: str | None = None
        self.session_id: str | None = None

    def feed(self, chunk: ChatCompletionChunk) -> ChatGenerationChunk | None:
        if chunk.usage is not None:
            self.usage = usage_metadata(token_usage(chunk.usage))
        self.id = self.id or chunk.id
        self.model = chunk.model or self.model
        self.session_id = chunk.session_id or self.session_id
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        self.finish_reason = choice.finish_reason or self.finish_reason
        delta = choice.delta
        tool_call_chunks = []
        for call in delta.tool_calls or ():
            index = call.index if call.index is not None else 0
            if self.first_call_only:
                self.first_index = index if self.first_index is None else self.first_index
                if index != self.first_index:
                    continue
            function = call.function
            tool_call_chunks.append(
                {
                    "name": function.name if function else None,
                    "args": function.arguments if function else None,
                    "id": call.id,
                    "index": index,
                    "type": "tool_call_chunk",
                }
            )
        if not tool_call_chunks:
            return _text_chunk(delta.content, chunk.id) if delta.content else None
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=delta.content or "", tool_call_chunks=tool_call_chunks, id=chunk.id
            )
        )

    def last(self) -> ChatGenerationChunk:
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                id=self.id,
                usage_metadata=self.usage,
                response_metadata={
                    "finish_reason": finish_reason(self.finish_reason),
                    "raw_finish_reason": self.finish_reason,
                    "model_name": self.model or self.default_model,
                    "session_id": self.session_id,
                    "model_provider": PROVIDER,
                },
                chunk_position="last",
            )
        )


# -- the async-streams API (response_format) ----------------------------------------------------


def _tool_call_event_chunk(event: ToolCallEvent, stream_id: str) -> AIMessageChunk:
    """A `tool_call` event of an async stream (a fragment of one call: the first carries its id
    and name) as LangChain's tool-call chunk; `+` assembles the calls."""
    return AIMessageChunk(
        content="",
        id=stream_id,
        tool_call_chunks=[
            {
                "name": event.name,
                "args": event.arguments,
                "id": event.tool_call_id,
                "index": event.index if event.index is not None else 0,
                "type": "tool_call_chunk",
            }
        ],
    )


def _event_chunk(
    event: StreamEvent, stream_id: str, partial: list[str], default_model: str
) -> ChatGenerationChunk | None:
    if isinstance(event, DeltaEvent):
        partial.append(event.content)
        return ChatGenerationChunk(message=AIMessageChunk(content=event.content, id=stream_id))
    if isinstance(event, ToolCallEvent):
        return ChatGenerationChunk(message=_tool_call_event_chunk(event, stream_id))
    if isinstance(event, ErrorEvent):
        raise error_from_stream_object(
            {"error_code": event.error_code, "detail": event.detail}, partial="".join(partial)
        )
    if isinstance(event, DoneEvent):
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                id=stream_id,
                usage_metadata=usage_metadata(token_usage(event.usage)),
                response_metadata={
                    "finish_reason": finish_reason(event.status),
                    "raw_finish_reason": event.status,
                    "stream_id": stream_id,
                    "model_name": (event.model_extra or {}).get("model") or default_model,
                    "model_provider": PROVIDER,
                },
                chunk_position="last",
            )
        )
    return None


# -- shared ---------------------------------------------------------------------------------------

_MESSAGE_PROTOTYPE = AIMessageChunk(content="")
_GENERATION_PROTOTYPE = ChatGenerationChunk(message=_MESSAGE_PROTOTYPE)
_message_copy = prepared_copy(
    _MESSAGE_PROTOTYPE,
    {
        "content": "x",
        "id": "run-1",
        "additional_kwargs": {},
        "response_metadata": {},
        "tool_calls": [],
        "invalid_tool_calls": [],
        "tool_call_chunks": [],
    },
)
_generation_copy = prepared_copy(_GENERATION_PROTOTYPE, {"message": _MESSAGE_PROTOTYPE, "text": "x"})


def _text_chunk(text: str, message_id: str) -> ChatGenerationChunk:
    """A text delta as LangChain's chunk: a copy of a validated prototype with the text and id
    set (and fresh containers, so no two chunks share one); validating each delta again would
    cost more than everything else the adapter does for it."""
    message = _message_copy(
        {
            "content": text,
            "id": message_id,
            "additional_kwargs": {},
            "response_metadata": {},
            "tool_calls": [],
            "invalid_tool_calls": [],
            "tool_call_chunks": [],
        }
    )
    return _generation_copy({"message": message, "text": text})


def usage_metadata(usage: TokenUsage | None) -> UsageMetadata | None:
    if usage is None:
        return None
    return UsageMetadata(
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, total_tokens=usage.total_tokens
    )
