"""The core's answers as LlamaIndex `ChatResponse`s, for each of the three paths.

Every builder here is pure (no I/O), shared by the sync and async methods of `HaufeCopilot`:

- the assistant API: `assistant_delta` for each streamed piece (the cumulative message and the
  new delta) and `assistant_final` for the answer with the metadata of docs/threads.md in
  `message.additional_kwargs` (on a stream, on the final response only, whose delta is "");
- the completions endpoint: `CompletionAssembler` for a stream of chunks (text and tool-call
  fragments, tool calls shown with their arguments so far), `completion_response` for an
  assembled `ChatCompletion`; both put `finish_reason`, `session_id`, `usage` and `model` in
  `message.additional_kwargs` and the token counts in `ChatResponse.additional_kwargs`;
- the async-streams API (`response_format`): `EventAssembler` for its typed events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ContentBlock,
    MessageRole,
    TextBlock,
)

from haufe_copilot.conversation.routing import finish_reason as finish_reason_of
from haufe_copilot.conversation.routing import token_usage
from haufe_copilot.conversation.turns import AnswerDelta, AnswerResult
from haufe_copilot.errors import APIError, error_from_stream_object
from haufe_copilot.protocol.model_copy import copier
from haufe_copilot.protocol.stop import StopFilter
from haufe_copilot.protocol.tool_calls import AssembledToolCall, ToolCallAccumulator
from haufe_copilot.types.completions import ChatCompletion, ChatCompletionChunk, Usage
from haufe_copilot.types.streams import DeltaEvent, DoneEvent, ErrorEvent, StreamEvent

from ._messages import openai_tool_calls, tool_call_blocks

__all__ = [
    "CompletionAssembler",
    "EventAssembler",
    "assistant_delta",
    "assistant_final",
    "completion_response",
]


# Validated once; every response is a copy of these (validating a ChatResponse per streamed
# delta was most of the adapter's cost per delta: see haufe_copilot/protocol/model_copy.py).
_TEXT = TextBlock(text="")
_ASSISTANT = ChatMessage(role=MessageRole.ASSISTANT, blocks=[])
_RESPONSE = ChatResponse(message=_ASSISTANT)
_copy = copier(
    [
        (_TEXT, {"text": "x"}),
        (_ASSISTANT, {"blocks": [], "additional_kwargs": {}}),
        (_RESPONSE, {"message": _ASSISTANT, "delta": "x", "raw": {}, "additional_kwargs": {}}),
    ]
)


def _message(
    text: str,
    calls: Sequence[AssembledToolCall] = (),
    *,
    complete: bool = True,
    metadata: dict[str, Any] | None = None,
) -> ChatMessage:
    blocks: list[ContentBlock] = [_copy(_TEXT, {"text": text})] if text or not calls else []
    blocks.extend(tool_call_blocks(calls, complete=complete))
    additional_kwargs = dict(metadata or {})
    if calls:
        # Also where llama-index-llms-openai keeps them: llama-index-core's streaming structured
        # output (`process_streaming_objects`) looks for tool calls there, not in the blocks.
        additional_kwargs["tool_calls"] = openai_tool_calls(calls)
    return _copy(_ASSISTANT, {"blocks": blocks, "additional_kwargs": additional_kwargs})


def _response(
    message: ChatMessage,
    *,
    delta: str | None = None,
    raw: Any = None,
    additional_kwargs: dict[str, Any] | None = None,
) -> ChatResponse:
    return _copy(
        _RESPONSE,
        {"message": message, "delta": delta, "raw": raw, "additional_kwargs": additional_kwargs or {}},
    )


def _token_counts(usage: Usage | None) -> dict[str, Any]:
    """The server's token counts under OpenAI's names, as llama-index-llms-openai puts them in
    `ChatResponse.additional_kwargs` (empty when the API reports none: nothing is estimated)."""
    counts = token_usage(usage)
    return counts.as_openai() if counts is not None else {}


# -- the assistant API -----------------------------------------------------------------------


def assistant_delta(text_so_far: str, delta: AnswerDelta) -> ChatResponse:
    """One streamed piece: the cumulative message, the new delta, no metadata yet."""
    return _response(
        message=_message(text_so_far),
        delta=delta.text,
        raw={"message_id": delta.message_id, "delta": delta.text},
    )


def assistant_final(result: AnswerResult, *, streamed: bool) -> ChatResponse:
    """The whole answer with the metadata of docs/threads.md (on a stream: the final response, delta "")."""
    extra = {"stopped": True} if result.stopped else {}
    return _response(
        message=_message(result.text, metadata=dict(result.metadata)),
        delta="" if streamed else None,
        raw=dict(result.metadata),
        additional_kwargs=extra,
    )


# -- the completions endpoint ----------------------------------------------------------------


def _completion_metadata(
    finish_reason: str | None, session_id: str | None, usage: Usage | None, model: str | None
) -> dict[str, Any]:
    return {
        # LangChain's words (stop, length, tool_calls, content_filter), as the LangChain adapter
        # says them; the server's own beside it.
        "finish_reason": finish_reason_of(finish_reason),
        "raw_finish_reason": finish_reason,
        "session_id": session_id,
        "usage": usage.model_dump() if usage is not None else None,
        "model": model,
    }


def completion_response(completion: ChatCompletion, *, parallel_tool_calls: bool = True) -> ChatResponse:
    """An assembled completion (tool calls included) as one `ChatResponse`."""
    choice = completion.choices[0] if completion.choices else None
    text = (choice.message.content or "") if choice is not None else ""
    calls = [
        AssembledToolCall(index=index, id=call.id, name=call.function.name, arguments=call.function.arguments)
        for index, call in enumerate((choice.message.tool_calls or []) if choice is not None else [])
    ]
    if not parallel_tool_calls:
        calls = calls[:1]
    metadata = _completion_metadata(
        choice.finish_reason if choice is not None else None,
        completion.session_id,
        completion.usage,
        completion.model,
    )
    return _response(
        message=_message(text, calls, metadata=metadata),
        raw=completion.model_dump(),
        additional_kwargs=_token_counts(completion.usage),
    )


class CompletionAssembler:
    """Turns a completion's SSE chunks into `ChatResponse`s: one per chunk that brings text or a
    tool-call fragment (the cumulative message, tool calls with their arguments so far), then a
    final one (delta "") with the assembled calls and the answer's metadata.

    `parallel_tool_calls=False` keeps only the first call (the completions API does not take the flag)."""

    def __init__(self, *, parallel_tool_calls: bool = True) -> None:
        self._parallel = parallel_tool_calls
        self._accumulator = ToolCallAccumulator()
        self.text = ""
        self._usage: Usage | None = None
        self._finish_reason: str | None = None
        self._session_id: str | None = None
        self._model: str | None = None
        self._last: dict[str, Any] | None = None

    def _calls(self) -> list[AssembledToolCall]:
        calls = self._accumulator.calls()
        return calls if self._parallel else calls[:1]

    def feed(self, chunk: ChatCompletionChunk) -> ChatResponse | None:
        self._usage = chunk.usage or self._usage
        self._session_id = chunk.session_id or self._session_id
        self._model = chunk.model or self._model
        raw = chunk.model_dump()
        self._last = raw
        piece = ""
        fragments = False
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # n > 1 is not asked for; the first choice is the answer
            piece += choice.delta.content or ""
            for call in choice.delta.tool_calls or ():
                self._accumulator.add_openai_delta(call.model_dump(exclude_none=True))
                fragments = True
            if choice.finish_reason is not None:
                self._finish_reason = choice.finish_reason
        if not piece and not fragments:
            return None
        self.text += piece
        return _response(_message(self.text, self._calls(), complete=False), delta=piece, raw=raw)

    def final(self) -> ChatResponse:
        metadata = _completion_metadata(self._finish_reason, self._session_id, self._usage, self._model)
        return _response(
            message=_message(self.text, self._calls(), metadata=metadata),
            delta="",
            raw=self._last,
            additional_kwargs=_token_counts(self._usage),
        )


# -- the async-streams API -------------------------------------------------------------------


class EventAssembler:
    """Turns an async stream's typed events into `ChatResponse`s: one per delta (stop sequences
    applied on the client, since the async-streams API takes none), then a final one with `stream_id`,
    `status` and `usage` in `message.additional_kwargs`. An `error` event raises its typed
    error; a stream that ends other than `completed` raises `APIError`."""

    def __init__(self, stream_id: str, stop: Sequence[str] = (), model: str | None = None) -> None:
        self.stream_id = stream_id
        self.model = model
        self.text = ""
        self._filter = StopFilter(stop)
        self.done: DoneEvent | None = None

    @property
    def finished(self) -> bool:
        """Nothing more to read: `done` arrived, or a stop sequence ended the answer."""
        return self.done is not None or self._filter.stopped

    def _piece(self, piece: str) -> ChatResponse | None:
        if not piece:
            return None
        self.text += piece
        return _response(_message(self.text), delta=piece, raw={"stream_id": self.stream_id})

    def feed(self, event: StreamEvent) -> ChatResponse | None:
        if isinstance(event, DeltaEvent):
            return self._piece(self._filter.feed(event.content))
        if isinstance(event, ErrorEvent):
            raise error_from_stream_object(
                {"error_code": event.error_code, "detail": event.detail}, partial=self.text
            )
        if isinstance(event, DoneEvent):
            self.done = event
        return None

    def finish(self) -> list[ChatResponse]:
        """What is left: a held-back tail (if any), then the final response."""
        if not self._filter.stopped and (self.done is None or self.done.status != "completed"):
            status = self.done.status if self.done is not None else "unknown"
            raise APIError(
                f"The async stream {self.stream_id!r} ended with status {status!r} instead of completing.",
                partial=self.text,
            )
        responses = []
        tail = self._piece(self._filter.flush())
        if tail is not None:
            responses.append(tail)
        usage = self.done.usage if self.done is not None else None
        status = self.done.status if self.done is not None else "stopped"
        metadata = {
            "stream_id": self.stream_id,
            "status": status,
            "finish_reason": "stop" if self._filter.stopped else finish_reason_of(status),
            "raw_finish_reason": status,
            "usage": usage.model_dump() if usage is not None else None,
            "model": (self.done.model_extra or {}).get("model") if self.done is not None else None,
        }
        metadata["model"] = metadata["model"] or self.model
        extra = {"stopped": True, **_token_counts(usage)} if self._filter.stopped else _token_counts(usage)
        responses.append(
            _response(
                message=_message(self.text, metadata=metadata),
                delta="",
                raw=dict(metadata),
                additional_kwargs=extra,
            )
        )
        return responses
