"""Requests and answers of the Assistant API as pure functions, shared by both clients.

Nothing here does I/O: a call is described by a `RequestSpec` (which the sync and the async
client both turn into an httpx request), and answers are decoded from bytes or decoded JSON.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from haufe_copilot.errors import (
    APIConnectionError,
    APIResponseValidationError,
    EmptyMessageError,
    HaufeCopilotError,
    InvalidRequestError,
    error_from_stream_object,
    is_error_object,
)
from haufe_copilot.protocol.ndjson import NDJSONLines, parse_object
from haufe_copilot.types.assistant import AssistantAnswer, ChatMessage, StreamChunk

R = TypeVar("R")
T = TypeVar("T")

__all__ = [
    "ASSISTANT_CHAT_PATH",
    "ASSISTANT_STREAM",
    "ASSISTANT_STREAM_PATH",
    "MessageInput",
    "RequestSpec",
    "StreamFormat",
    "build_assistant_request",
    "check_extra_headers",
    "check_header_value",
    "check_identifier",
    "check_question",
    "check_stream_end",
    "chunk_text",
    "decode_json_body",
    "parse_answer",
    "parse_chunk",
]

ASSISTANT_CHAT_PATH = "/agents/v1/chat/completions"
ASSISTANT_STREAM_PATH = "/agents/v1/chat/completions/stream"

Api = Literal["assistant", "platform"]
MessageInput = Mapping[str, Any] | ChatMessage


#: allow_nan=False: NaN and Infinity are not JSON, and a server would refuse them. (One encoder,
#: not one per request as `json.dumps` with options makes.)
_BODY_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One API call, before transport: what both clients send and how they may retry it."""

    method: str
    path: str
    api: Api
    body: Mapping[str, Any] | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False
    #: A request whose replay would duplicate what the server did with it (a turn on a thread,
    #: a completion) is retried only where the server cannot have taken it: see the retry table
    #: in docs/reliability.md (and docs/contract.md, Retries).
    replay_unsafe: bool = False

    def content(self) -> bytes | None:
        if self.body is None:
            return None
        try:
            text = _BODY_ENCODER.encode(self.body)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidRequestError(
                f"The request cannot be sent as JSON ({exc}); extra_body and the other fields may hold "
                "only dicts, lists, str, int, float (finite), bool and None: convert sets, tuples of "
                "objects, dates and the like first."
            ) from None
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequestError(
                "The request holds text that is not valid Unicode "
                f"({exc.object[exc.start : exc.end]!r}, a lone surrogate, as left by decoding bytes with "
                "errors='surrogateescape'); clean the text first."
            ) from None


def check_identifier(name: str, value: object, *, optional: bool = True) -> str | None:
    """A thread, user or assistant id: a non-empty string with no control characters."""
    if value is None:
        if optional:
            return None
        raise InvalidRequestError(f"{name} is required.")
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} must be a string, not {type(value).__name__}.")
    if not value.strip():
        raise InvalidRequestError(f"{name} must not be empty; leave it out (None) instead.")
    if _has_control_character(value):
        raise InvalidRequestError(
            f"{name} contains a control character (such as CR or LF): {value!r}. "
            "Pass the id exactly as the API returned it."
        )
    return value


#: Headers the client computes itself (framing) or from its credentials: given as extra or
#: default headers they broke the request (h11 refused a wrong Content-Length) or sent a second
#: key header next to the configured one.
_RESERVED_HEADERS = {
    "content-length": "the client computes it from the body",
    "transfer-encoding": "the client frames the body itself",
    "api-key": "the client sends the key given as api_key= (use another client for another key)",
    "authorization": "the client sends the platform key or token_provider's token as the Bearer token",
}


def check_extra_headers(
    headers: Mapping[str, object] | None,
    setting: str = "extra_headers",
    *,
    error: type[HaufeCopilotError] = InvalidRequestError,
) -> dict[str, str]:
    """Caller-given headers, each checked (`check_header_value`); the client's own are refused."""
    checked: dict[str, str] = {}
    for name, value in (headers or {}).items():
        reason = _RESERVED_HEADERS.get(str(name).lower())
        if reason is not None:
            raise error(f"{setting} must not set {name!r}: {reason}.")
        checked[str(name)] = check_header_value(str(name), value)
    return checked


def check_header_value(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidRequestError(f"The header {name!r} must be a string, not {type(value).__name__}.")
    if _has_control_character(value) or _has_control_character(name):
        raise InvalidRequestError(
            f"The header {name!r} contains a control character (such as CR or LF); "
            "header names and values must be single-line text."
        )
    if not _HEADER_NAME.fullmatch(name):
        raise InvalidRequestError(
            f"{name!r} is not an HTTP header name: use letters, digits and !#$%&'*+-.^_`|~ only."
        )
    if value != value.strip(" \t"):  # h11 refuses it, as a connection error quoting the value
        raise InvalidRequestError(
            f"The header {name!r} starts or ends with whitespace; HTTP does not allow that in a value."
        )
    if not (value.isascii() and name.isascii()):
        # httpx would raise a bare UnicodeEncodeError carrying the whole value (a secret, maybe).
        raise InvalidRequestError(
            f"The header {name!r} holds a character that is not ASCII; HTTP header names and values "
            "must be ASCII (percent-encode other text)."
        )
    return value


#: An HTTP header name (RFC 9110 token).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

#: C0 and C1 control characters (CR, LF, NUL, NEL, ...), DEL, and the line and paragraph
#: separators (not Cc, but line breaks to `str.splitlines` and many log readers).
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _has_control_character(text: str) -> bool:
    return _CONTROL_CHARACTER.search(text) is not None


def _message_dict(index: int, message: object) -> dict[str, Any]:
    if isinstance(message, BaseModel):
        data = message.model_dump(exclude_none=True)
    elif isinstance(message, Mapping):
        data = dict(message)
    else:
        raise InvalidRequestError(
            f"messages[{index}] must be a mapping like {{'role': 'user', 'content': '...'}}, "
            f"not {type(message).__name__}."
        )
    for key in ("role", "content"):
        if not isinstance(data.get(key), str):
            problem = "is missing" if key not in data else f"must be a string, not {type(data[key]).__name__}"
            raise InvalidRequestError(f"messages[{index}].{key} {problem}.")
    check_question(data["role"], data["content"], where=f"messages[{index}] (a user message)")
    return data


def check_question(role: object, content: object, *, where: str) -> None:
    """Refuse an empty or blank user message before it is sent: the service answers it with
    `message_content_empty`, and in a thread it would be stored as a turn."""
    if role == "user" and isinstance(content, str) and not content.strip():
        raise EmptyMessageError(
            f"{where} is empty or only whitespace ({content[:20]!r}): ask a question with some text."
        )


def build_assistant_request(
    *,
    assistant_id: str,
    messages: Sequence[MessageInput],
    user_id: str | None,
    thread_id: str | None,
    stream: bool,
    extra_body: Mapping[str, Any] | None,
    extra_headers: Mapping[str, str] | None,
    extra_query: Mapping[str, str] | None,
) -> RequestSpec:
    """`POST /agents/v1/chat/completions[/stream]`: only the documented fields (docs/contract.md)."""
    check_identifier("assistant_id", assistant_id, optional=False)
    check_identifier("user_id", user_id)
    check_identifier("thread_id", thread_id)
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InvalidRequestError("messages must be a list of {'role': ..., 'content': ...} mappings.")
    if not messages:
        raise InvalidRequestError("messages must hold at least one message.")
    body: dict[str, Any] = {
        "assistant_id": assistant_id,
        "messages": [_message_dict(i, m) for i, m in enumerate(messages)],
    }
    if user_id is not None:
        body["user_id"] = user_id
    if extra_body:
        body.update(extra_body)
    params: dict[str, str] = {}
    if thread_id is not None:
        params["thread_id"] = thread_id
    if extra_query:
        params.update({str(k): str(v) for k, v in extra_query.items()})
    headers = check_extra_headers(extra_headers)
    if stream:
        headers.setdefault("Accept", "application/x-ndjson")
    return RequestSpec(
        method="POST",
        path=ASSISTANT_STREAM_PATH if stream else ASSISTANT_CHAT_PATH,
        api="assistant",
        body=body,
        params=params,
        headers=headers,
        stream=stream,
        # A new thread is safe to replay: a request the server took without our seeing the answer
        # leaves a thread nobody continues, never a second turn in the caller's conversation.
        replay_unsafe=thread_id is not None,
    )


def decode_json_body(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        raise APIResponseValidationError(
            f"The server answered 2xx with a body that is not JSON: {content[:200]!r}"
        ) from None
    except RecursionError:
        raise APIResponseValidationError(
            f"The server answered 2xx with JSON nested too deeply to read: {content[:60]!r}..."
        ) from None


def parse_answer(content: bytes) -> AssistantAnswer:
    try:  # the common case in one step: pydantic's JSON parser straight into the model
        answer = AssistantAnswer.model_validate_json(content)
    except ValidationError:
        pass
    else:
        extra = answer.__pydantic_extra__
        if not extra or "error_code" not in extra:
            return answer
    # Read again as plain JSON to say what it is: an error object, not JSON, not an answer.
    data = decode_json_body(content)
    if is_error_object(data):
        raise error_from_stream_object(data)
    try:
        return AssistantAnswer.model_validate(data)
    except ValidationError as exc:
        raise APIResponseValidationError(
            f"The answer does not have the documented shape: {_validation_summary(exc)}"
        ) from None


def parse_chunk(obj: dict[str, Any]) -> StreamChunk:
    """One NDJSON object of an assistant stream; an `{error_code, detail}` line is its error."""
    if is_error_object(obj):
        raise error_from_stream_object(obj)
    try:
        return StreamChunk.model_validate(obj)
    except ValidationError as exc:
        raise APIResponseValidationError(
            f"A stream line does not have the documented shape: {_validation_summary(exc)}"
        ) from None


def parse_chunk_line(line: bytes) -> StreamChunk:
    """One NDJSON line of an assistant stream, parsed straight into the model (the hot path);
    anything else is read again as a plain object to say what it is: an error line, or not a chunk."""
    try:
        return StreamChunk.model_validate_json(line)
    except ValidationError:
        pass
    return parse_chunk(parse_object(line))


_CHUNK_LIST = TypeAdapter(list[StreamChunk])


def parse_chunk_lines(lines: list[bytes]) -> list[StreamChunk] | None:
    """Several NDJSON lines of an assistant stream parsed in one call, as an array of them joined
    by a newline and a comma: they are as many chunks when the array holds as many. A line that
    ends inside a string cannot run on into the next (a JSON string holds no newline). None when
    the array or its count is not that, for `parse_chunk_line` to read the lines one by one and
    say which is what. (A line of two objects beside an object broken over two lines between its
    strings make as many chunks as lines, and are read as them: the server's own bytes anyway.)"""
    try:
        chunks = _CHUNK_LIST.validate_json(b"[" + b"\n,".join(lines) + b"]")
    except ValidationError:
        return None
    return chunks if len(chunks) == len(lines) else None


#: A chunk's text (an attribute getter: it runs for every delta).
chunk_text: Callable[[StreamChunk], str] = operator.attrgetter("delta.content")


def _validation_summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()[:5]
    )


class Decoder(Protocol[R]):
    """Bytes in, wire items (JSON objects, SSE events) out; `close()` at the end of the body."""

    def feed(self, data: bytes) -> list[R]: ...

    def close(self) -> list[R]: ...


@dataclass(frozen=True, slots=True)
class StreamFormat(Generic[R, T]):
    """How a streamed body becomes the caller's items: decode, convert, and the text of each
    (which an interrupted stream's error carries as `partial`); and how a complete body ends."""

    decoder: Callable[[int], Decoder[R]]  # given the size bound of one line or event
    convert: Callable[[R], T | None]  # None: nothing for the caller (a [DONE] sentinel, ...)
    text_of: Callable[[T], str]
    #: Whether this wire item (and the caller's item made of it) ends a complete body; a body
    #: that stops before one was cut. None: the format has no end marker.
    is_final: Callable[[R, T | None], bool] | None = None
    #: Whether a body must give the caller at least one item (an answer with no chunk is none).
    needs_items: bool = False
    #: `convert` for a run of wire items at once (one call instead of one per item, which is most
    #: of a delta's cost), or None where any of them needs `convert` on its own: an error line, a
    #: malformed one. Only for a format without `is_final`, and never yielding None.
    convert_many: Callable[[list[R]], list[T] | None] | None = None


def check_stream_end(fmt: StreamFormat[Any, Any], *, finished: bool, items: int) -> None:
    """At the end of a 2xx body: an interrupted stream or an empty answer is an error, not an answer."""
    if fmt.is_final is not None and not finished:
        raise APIConnectionError(
            "The stream ended before its end marker ([DONE] or a chunk with finish_reason): the "
            "connection closed early and the answer is incomplete."
        )
    if fmt.needs_items and items == 0:
        raise APIResponseValidationError(
            "The server answered 200 with a stream that holds no chunk: there is no answer (and no thread)."
        )


ASSISTANT_STREAM: StreamFormat[bytes, StreamChunk] = StreamFormat(
    NDJSONLines, parse_chunk_line, chunk_text, needs_items=True, convert_many=parse_chunk_lines
)
