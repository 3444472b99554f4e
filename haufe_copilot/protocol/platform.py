"""Requests and answers of the platform APIs (docs/contract.md, Completions and Async streams) as
pure functions shared by both clients, like `_protocol` for the Assistant API."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from haufe_copilot.errors import (
    APIResponseValidationError,
    InvalidRequestError,
    error_from_stream_object,
    is_error_object,
)
from haufe_copilot.protocol.assistant import (
    RequestSpec,
    StreamFormat,
    check_extra_headers,
    check_identifier,
    check_question,
    decode_json_body,
)
from haufe_copilot.protocol.sse import ServerSentEvent, SSEDecoder
from haufe_copilot.protocol.tool_calls import ToolCallAccumulator
from haufe_copilot.types.completions import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    CompletionMessage,
    FunctionCall,
    ToolCall,
    Usage,
)
from haufe_copilot.types.streams import EVENT_TYPES, StreamEvent, StreamHandle, StreamStatus

COMPLETIONS_PATH = "/api/v1/chat/completions"
ASYNC_STREAMS_PATH = "/api/v1/messages/async"

# Message fields the completions API documents (docs/contract.md); others are refused, not silently sent.
_MESSAGE_FIELDS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id"})
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOOL_CHOICES = ("none", "auto", "required")
_RESPONSE_FORMATS = ("text", "json_schema", "tool_call")


def _drop_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _headers(extra_headers: Mapping[str, str] | None) -> dict[str, str]:
    return check_extra_headers(extra_headers)


def _completion_messages(messages: Sequence[Any]) -> list[dict[str, Any]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InvalidRequestError("messages must be a list of {'role': ..., 'content': ...} mappings.")
    if not messages:
        raise InvalidRequestError("messages must hold at least one message.")
    out = []
    for index, message in enumerate(messages):
        if isinstance(message, BaseModel):
            message = message.model_dump(exclude_none=True)
        if not isinstance(message, Mapping):
            raise InvalidRequestError(
                f"messages[{index}] must be a mapping like {{'role': 'user', 'content': '...'}}, "
                f"not {type(message).__name__}."
            )
        unknown = set(message) - _MESSAGE_FIELDS
        if unknown:
            raise InvalidRequestError(
                f"messages[{index}] has fields the API does not document: {sorted(unknown)}; "
                f"a message takes {sorted(_MESSAGE_FIELDS)}."
            )
        if not isinstance(message.get("role"), str):
            raise InvalidRequestError(f"messages[{index}].role must be a string such as 'user'.")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise InvalidRequestError(
                f"messages[{index}].content must be a string (or None beside tool_calls), "
                f"not {type(content).__name__}."
            )
        check_question(message["role"], content, where=f"messages[{index}] (a user message)")
        out.append(dict(message))
    return out


def check_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Function tools as the completions API takes them (docs/contract.md); each needs a JSON schema."""
    checked = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or tool.get("type", "function") != "function":
            raise InvalidRequestError(
                f"{where} must be {{'type': 'function', 'function': {{'name': ..., 'parameters': {{...}}}}}}."
            )
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise InvalidRequestError(
                f"{where}.function.name must be 1-64 letters, digits, '_' or '-', not {name!r}."
            )
        parameters = function.get("parameters")
        if not isinstance(parameters, Mapping) or parameters.get("type") != "object":
            raise InvalidRequestError(
                f"{where} ({name}) has no JSON schema: give function.parameters as an object schema, "
                "e.g. {'type': 'object', 'properties': {}} for a tool without arguments."
            )
        checked.append({"type": "function", "function": dict(function)})
    return checked


def check_tool_choice(tool_choice: Any, tools: Sequence[Mapping[str, Any]] | None) -> Any:
    if tool_choice is None or tool_choice in _TOOL_CHOICES:
        if tool_choice in ("auto", "required") and not tools:
            raise InvalidRequestError(f"tool_choice={tool_choice!r} needs tools.")
        return tool_choice
    name = None
    if isinstance(tool_choice, Mapping) and isinstance(tool_choice.get("function"), Mapping):
        name = tool_choice["function"].get("name")
    names = [t["function"]["name"] for t in tools or ()]
    if name is None or name not in names:
        raise InvalidRequestError(
            f"tool_choice must be 'none', 'auto', 'required' or "
            f"{{'type': 'function', 'function': {{'name': <one of {names}>}}}}, not {tool_choice!r}."
        )
    return {"type": "function", "function": {"name": name}}


def build_completion_request(
    *,
    messages: Sequence[Any],
    stream: bool,
    model: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    n: int | None = None,
    stop: str | Sequence[str] | None = None,
    max_tokens: int | None = None,
    presence_penalty: float | None = None,
    frequency_penalty: float | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: Any = None,
    session_id: str | None = None,
    extra_body: Mapping[str, Any] | None = None,
    extra_headers: Mapping[str, str] | None = None,
    extra_query: Mapping[str, str] | None = None,
) -> RequestSpec:
    """`POST /api/v1/chat/completions`: SSE when `stream`, else one JSON completion (docs/contract.md)."""
    check_identifier("session_id", session_id)
    checked_tools = check_tools(tools) if tools else None
    if checked_tools and not stream:
        raise InvalidRequestError(
            "Tool calling needs streaming (tools are called only over SSE): call with stream=True."
        )
    body = _drop_none(
        {
            "model": model,
            "messages": _completion_messages(messages),
            "temperature": temperature,
            "top_p": top_p,
            "n": n,
            "stream": True if stream else None,
            "stop": list(stop) if isinstance(stop, Sequence) and not isinstance(stop, str) else stop,
            "max_tokens": max_tokens,
            "presence_penalty": presence_penalty,
            "frequency_penalty": frequency_penalty,
            "tools": checked_tools,
            "tool_choice": check_tool_choice(tool_choice, checked_tools),
            "session_id": session_id,
        }
    )
    body.update(extra_body or {})
    headers = {"Accept": "text/event-stream" if stream else "application/json", **_headers(extra_headers)}
    return RequestSpec(
        method="POST",
        path=COMPLETIONS_PATH,
        api="platform",
        body=body,
        params=dict(extra_query or {}),
        headers=headers,
        stream=stream,
        # A replay runs (and bills) the completion again and may add to its session.
        replay_unsafe=True,
    )


def _validated(model: type[Any], data: Any, what: str) -> Any:
    if is_error_object(data):
        raise error_from_stream_object(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise APIResponseValidationError(f"{what} does not have the documented shape: {problems}") from None


def parse_completion(content: bytes) -> ChatCompletion:
    result: ChatCompletion = _validated(ChatCompletion, decode_json_body(content), "The completion")
    return result


def parse_completion_event(event: ServerSentEvent) -> ChatCompletionChunk | None:
    """One SSE event of a completion stream; None for the `[DONE]` sentinel."""
    if event.data == "[DONE]":
        return None
    if event.event == "message":
        try:  # the hot path: parse straight into the model
            return ChatCompletionChunk.model_validate_json(event.data)
        except ValidationError:
            pass  # read it again below, to say what it is
    data = event.json()
    if event.event == "error":
        if not isinstance(data, Mapping):
            raise APIResponseValidationError(
                f"The stream sent an error event without a body: {event.data[:200]!r}"
            )
        raise error_from_stream_object(data)
    chunk: ChatCompletionChunk = _validated(ChatCompletionChunk, data, "A completion chunk")
    return chunk


def completion_chunk_text(chunk: ChatCompletionChunk) -> str:
    if chunk.choices:
        return chunk.choices[0].delta.content or ""
    return ""


def completion_stream_ended(event: ServerSentEvent, chunk: ChatCompletionChunk | None) -> bool:
    """The `[DONE]` sentinel, or a chunk that finishes a choice (some servers send no `[DONE]`)."""
    if chunk is None:
        return event.data == "[DONE]"
    return any(choice.finish_reason is not None for choice in chunk.choices)


COMPLETION_STREAM: StreamFormat[ServerSentEvent, ChatCompletionChunk] = StreamFormat(
    SSEDecoder, parse_completion_event, completion_chunk_text, is_final=completion_stream_ended
)


def completion_from_chunks(chunks: Sequence[ChatCompletionChunk]) -> ChatCompletion:
    """Assemble a streamed completion (text and tool calls, per choice) into one `ChatCompletion`."""
    if not chunks:
        raise APIResponseValidationError("The completion stream ended without a single chunk.")
    texts: dict[int, list[str]] = {}
    calls: dict[int, ToolCallAccumulator] = {}
    finish: dict[int, str | None] = {}
    roles: dict[int, str] = {}
    usage: Usage | None = None
    for chunk in chunks:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            delta = choice.delta
            texts.setdefault(choice.index, [])
            if delta.role:
                roles[choice.index] = delta.role
            if delta.content:
                texts[choice.index].append(delta.content)
            for call in delta.tool_calls or ():
                calls.setdefault(choice.index, ToolCallAccumulator()).add_openai_delta(
                    call.model_dump(exclude_none=True)
                )
            if choice.finish_reason is not None:
                finish[choice.index] = choice.finish_reason
    choices = []
    for index in sorted(texts):
        assembled = calls[index].calls() if index in calls else []
        tool_calls = [
            ToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments)) for c in assembled
        ]
        text = "".join(texts[index])
        message = CompletionMessage(
            role=roles.get(index, "assistant"),
            content=text or (None if tool_calls else ""),
            tool_calls=tool_calls or None,
        )
        choices.append(Choice(index=index, message=message, finish_reason=finish.get(index)))
    first = chunks[0]
    return ChatCompletion(
        id=first.id,
        created=first.created,
        model=first.model,
        choices=choices,
        usage=usage,
        session_id=next((c.session_id for c in chunks if c.session_id), None),
    )


# -- async streams ------------------------------------------------------------------------------


def check_response_format(response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind not in _RESPONSE_FORMATS:
        raise InvalidRequestError(
            f"response_format must be {{'type': one of {list(_RESPONSE_FORMATS)}, ...}}, "
            f"not {response_format!r}."
        )
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping) or schema.get("type") != "object":
            raise InvalidRequestError(
                "response_format of type json_schema needs {'json_schema': {'name': ..., 'schema': "
                "{'type': 'object', 'properties': {...}}}}: the schema must be an object schema."
            )
    return dict(response_format)


def _stream_path(stream_id: str, suffix: str) -> str:
    check_identifier("stream_id", stream_id, optional=False)
    segment = quote(stream_id, safe="")
    if segment in (".", ".."):  # a dot segment would be resolved away: /async/../cancel is /cancel
        segment = segment.replace(".", "%2E")
    return f"{ASYNC_STREAMS_PATH}/{segment}/{suffix}"


def new_stream_id() -> str:
    """A stream id the client chooses when the caller gives none, so that a retried start
    names the same stream (in the shape the service makes its own: a UUID)."""
    return str(uuid.uuid4())


def build_stream_start(
    *,
    messages: Sequence[Any],
    stream_id: str,
    fields: Mapping[str, Any],
    extra_body: Mapping[str, Any] | None,
    extra_headers: Mapping[str, str] | None,
) -> RequestSpec:
    """`POST /api/v1/messages/async?stream_id=` with the fields of docs/contract.md, Async
    streams. The id is always sent: a retry of the same id cannot start a second stream."""
    check_identifier("stream_id", stream_id, optional=False)
    body = _drop_none({"messages": _completion_messages(messages), **fields})
    if "tools" in body:
        body["tools"] = check_tools(body["tools"])
    if "tool_choice" in body:
        body["tool_choice"] = check_tool_choice(body["tool_choice"], body.get("tools"))
    if "response_format" in body:
        body["response_format"] = check_response_format(body["response_format"])
    body.update(extra_body or {})
    return RequestSpec(
        method="POST",
        path=ASYNC_STREAMS_PATH,
        api="platform",
        body=body,
        params={"stream_id": stream_id},
        headers=_headers(extra_headers),
    )


def build_stream_status(stream_id: str) -> RequestSpec:
    return RequestSpec(method="GET", path=_stream_path(stream_id, "status"), api="platform")


def build_stream_cancel(stream_id: str) -> RequestSpec:
    return RequestSpec(method="POST", path=_stream_path(stream_id, "cancel"), api="platform")


def check_event_id(value: object) -> int:
    """`last_event_id` as the API counts it: a whole number >= 0 (an event's `id`), or its digits."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InvalidRequestError(
        f"last_event_id must be the id of the last event received (a whole number >= 0, such as "
        f"event.id), not {value!r}; 0 or leaving it out starts at the first event."
    )


def build_stream_events(
    stream_id: str, last_event_id: int, extra_headers: Mapping[str, str] | None = None
) -> RequestSpec:
    last_event_id = check_event_id(last_event_id)
    headers = {"Accept": "text/event-stream", **_headers(extra_headers)}
    if last_event_id:
        headers["Last-Event-ID"] = str(last_event_id)
    return RequestSpec(
        method="GET", path=_stream_path(stream_id, "stream"), api="platform", headers=headers, stream=True
    )


def parse_stream_handle(content: bytes) -> StreamHandle:
    handle: StreamHandle = _validated(StreamHandle, decode_json_body(content), "The stream handle")
    return handle


def parse_stream_status(content: bytes) -> StreamStatus:
    status: StreamStatus = _validated(StreamStatus, decode_json_body(content), "The stream status")
    return status


def parse_stream_event(event: ServerSentEvent, last_id: int | None = None) -> StreamEvent:
    """One async-stream event. Given `last_id` (the id of the event before it), an event without
    an `id` value of its own keeps that id, as SSE says; without it, the id carried over."""
    if last_id is not None and not (event.own_id and event.id is not None):
        event_id = last_id  # no id of its own: it keeps the last one
    else:
        try:
            event_id = int(event.id or "")
        except ValueError:
            raise APIResponseValidationError(
                f"An async-stream event has no numeric id (id={event.id!r}, event={event.event!r})."
            ) from None
    data = event.json()
    if not isinstance(data, Mapping):
        raise APIResponseValidationError(
            f"An async-stream event's data is not a JSON object: {event.data[:200]!r}"
        )
    fields = dict(data)
    if event.event == "tool_call" and "id" in fields:
        fields["tool_call_id"] = fields.pop("id")  # `id` is the event's
    fields.pop("event", None)
    model = EVENT_TYPES.get(event.event, StreamEvent)
    parsed: StreamEvent = _validated(
        model, {**fields, "id": event_id, "event": event.event}, "An async-stream event"
    )
    return parsed


def stream_event_text(event: StreamEvent) -> str:
    return getattr(event, "content", "") if event.event == "delta" else ""


def stream_events_after(last_event_id: int) -> StreamFormat[ServerSentEvent, StreamEvent]:
    """The events of one observation that resumes after `last_event_id`, each new one once: an
    event whose own id is at or below the last one delivered is a resend and is dropped; an
    event without an `id` line is a new event that keeps the last id (SSE), and is delivered."""
    last = last_event_id

    def convert(sse: ServerSentEvent) -> StreamEvent | None:
        nonlocal last
        event = parse_stream_event(sse, last)
        if sse.own_id and sse.id is not None:
            if event.id <= last:
                return None
            last = event.id
        return event

    return StreamFormat(SSEDecoder, convert, stream_event_text)
