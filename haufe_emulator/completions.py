"""The OpenAI-compatible completions endpoint of the emulator: `POST /api/v1/chat/completions`
(docs/contract.md, Completions; docs/threads.md, "With tools: no threads").

- Auth: `Authorization: Bearer <key>`; faults through `begin()` as everywhere.
- The body takes exactly the documented fields (422 in FastAPI's shape otherwise; `--lenient`
  ignores unknown fields). The answer's format follows the `Accept` header: `text/event-stream`
  gives SSE `chat.completion.chunk` frames, anything else one `chat.completion` JSON object.
  Tools, or `"stream": true`, with a JSON `Accept` are a 400 that says what to send.
- The request's messages are the whole conversation (nothing is stored); a missing
  `session_id` gets a new one. It is returned in the body, on every chunk and as `x-session-id`.
- The question is the last user message; earlier user messages rank with it. With tools, a
  question that asks for one (see `tool_intent`) is answered with tool calls; after `role: "tool"`
  results the answer quotes them, followed by the corpus answer where the question matches one,
  unless `tool_choice` is "required" or names a function: then it calls a tool again.
- `stop` ends the text before the first stop sequence; `max_tokens` counts whitespace-separated
  words (finish_reason "length"); `n` > 1 gives n identical choices; `usage` counts words.
- Faults (`x-emulator-*`, see `faults`): the SSE deltas counted by `cut-after`,
  `malformed-after` (a `data: {broken` frame) and `stream-error-after` (an `event: error` frame
  with `{error_code, detail}`) are the content and tool-call chunks after the role chunk; a
  count beyond the answer applies after its last delta. A JSON answer is cut after half its body.
- Other sampling fields (`temperature`, `top_p`, `presence_penalty`, `frequency_penalty`) are
  accepted and have no effect: the emulator is deterministic.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .app import EmulatorConfig, FunctionEntry, FunctionName, Knowledge, RequestContext, begin, parse_body
from .assistant import split_deltas
from .compose import tool_results_in
from .faults import error_body
from .responses import StreamingBody, sse_frame
from .schema_values import UnsupportedSchema
from .scripts import Asked, scripted_answer
from .state import EmulatorState, StreamRecord
from .tool_intent import (
    PlannedToolCall,
    calls_after_tool_results,
    split_fragments,
    tool_calls_for,
)

if TYPE_CHECKING:
    from .app import ComposedAnswer

PATH = "/api/v1/chat/completions"
#: Characters per streamed tool-call argument fragment.
ARGUMENT_FRAGMENT_SIZE = 8
TOOL_CHOICES = ("none", "auto", "required")
Role = Literal["system", "developer", "user", "assistant", "tool"]

TOOLS_REQUIRE_STREAMING = (
    "Tool calling requires streaming mode: send the request with 'Accept: text/event-stream'."
)
STREAMING_REQUIRES_EVENT_STREAM = (
    "Streaming requires Server-Sent Events: send the request with 'Accept: text/event-stream', "
    'or set "stream": false (or leave it out) to receive one JSON answer.'
)
_TOOL_CHOICE_HELP = (
    'tool_choice must be "none", "auto", "required" or '
    '{"type": "function", "function": {"name": "<the name of one of the tools>"}}'
)


# -- the request ------------------------------------------------------------------------------


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class _Function(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Validated even when missing, so that the message says what to send.
    name: str = Field(default="", validate_default=True)
    description: str | None = None
    parameters: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _name_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                "every tool needs function.name: a non-empty name the model calls it by, "
                'e.g. {"type": "function", "function": {"name": "get_weather", "parameters": {...}}}'
            )
        return value

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameters_are_an_object_schema(cls, value: Any) -> Any:
        if value is None:
            return value
        problem = _object_schema_problem(value)
        if problem is not None:
            raise ValueError(
                f"function.parameters must be a JSON Schema for an object, "
                f'e.g. {{"type": "object", "properties": {{"city": {{"type": "string"}}}}, '
                f'"required": ["city"]}}, or {{}} for a function without arguments: {problem}'
            )
        return value


def _object_schema_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"got {type(value).__name__} instead of a JSON object"
    if not value:
        return None
    if value.get("type") != "object":
        return f'"type" must be "object", not {json.dumps(value.get("type"))}'
    properties = value.get("properties", {})
    if not isinstance(properties, dict) or not all(isinstance(p, dict) for p in properties.values()):
        return '"properties" must map each argument name to a JSON Schema object'
    required = value.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        return '"required" must be a list of argument names'
    undefined = [name for name in required if name not in properties]
    if undefined:
        return f'"required" names arguments that "properties" does not define: {", ".join(undefined)}'
    return None


class _Tool(FunctionEntry[_Function]):
    """A tool: `{"type": "function", "function": {"name", "description"?, "parameters"?}}`."""


class _NamedToolChoice(FunctionEntry[FunctionName]):
    """A `tool_choice` naming the one function to call."""


class _CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    messages: list[_Message] = Field(min_length=1)
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    stream: bool | None = None
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(default=None, ge=0)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[_Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | _NamedToolChoice | None = None
    session_id: str | None = None

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice_shape(cls, value: Any) -> Any:
        if value is None or value in TOOL_CHOICES:
            return value
        if isinstance(value, dict) and value.get("type") == "function":
            function = value.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str) and function["name"]:
                return value
        raise ValueError(_TOOL_CHOICE_HELP)


class _LenientMessage(_Message):
    model_config = ConfigDict(extra="ignore")


class _LenientFunction(_Function):
    model_config = ConfigDict(extra="ignore")


class _LenientTool(_Tool):
    model_config = ConfigDict(extra="ignore")
    function: _LenientFunction


class _LenientFunctionName(FunctionName):
    model_config = ConfigDict(extra="ignore")


class _LenientNamedToolChoice(_NamedToolChoice):
    model_config = ConfigDict(extra="ignore")
    function: _LenientFunctionName


class _LenientCompletionRequest(_CompletionRequest):
    model_config = ConfigDict(extra="ignore")
    messages: list[_LenientMessage] = Field(min_length=1)  # type: ignore[assignment]
    tools: list[_LenientTool] | None = None  # type: ignore[assignment]
    tool_choice: Literal["none", "auto", "required"] | _LenientNamedToolChoice | None = None


def _tool_problems(parsed: _CompletionRequest) -> list[dict[str, Any]]:
    """What pydantic cannot see field by field: duplicate tool names, a tool_choice that does
    not fit the tools. FastAPI-style `{loc, msg, type}` items."""
    problems: list[dict[str, Any]] = []
    tools = parsed.tools or []
    names = [tool.function.name for tool in tools]
    for index, name in enumerate(names):
        if name in names[:index]:
            problems.append(
                {
                    "loc": ["body", "tools", index, "function", "name"],
                    "msg": f"Value error, tool names must be unique: {name!r} is defined twice; "
                    "rename or remove one of them",
                    "type": "value_error",
                }
            )
    choice = parsed.tool_choice
    if isinstance(choice, _NamedToolChoice) and choice.function.name not in names:
        known = ", ".join(repr(name) for name in names) or "none, since tools is empty"
        problems.append(
            {
                "loc": ["body", "tool_choice", "function", "name"],
                "msg": f"Value error, tool_choice names the function {choice.function.name!r}, which is "
                f"not in tools; name one of the tools ({known}) or add it to tools",
                "type": "value_error",
            }
        )
    elif choice == "required" and not tools:
        problems.append(
            {
                "loc": ["body", "tool_choice"],
                "msg": 'Value error, tool_choice "required" needs at least one tool in tools; '
                'add tools or use "auto"',
                "type": "value_error",
            }
        )
    return problems


# -- the answer -------------------------------------------------------------------------------


@dataclass
class _Answer:
    text: str | None
    calls: list[PlannedToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0  # for one choice


def _words(text: str | None) -> int:
    return len(text.split()) if text else 0


def _question_and_history(messages: Sequence[_Message]) -> tuple[str, list[str]]:
    """The last user message and the user messages before it; without any user message, the
    last message with content."""
    users = [index for index, message in enumerate(messages) if message.role == "user"]
    if not users:
        last = next((m.content for m in reversed(messages) if m.content), "")
        return last or "", []
    question = messages[users[-1]].content or ""
    history = [messages[i].content or "" for i in users[:-1] if messages[i].content]
    return question, history


def _answer_tool_results(
    messages: Sequence[_Message], question: str, history: list[str], knowledge: Knowledge
) -> str:
    """A German answer that uses the trailing tool results, then the provisions related to them."""
    results = tool_results_in(message.model_dump() for message in messages)
    return knowledge.answer_after_tool_results(question, history, results)


_WORD_PIECES = re.compile(r"\S+\s*")


def _limit(text: str, stop: str | list[str] | None, max_tokens: int | None) -> tuple[str, str]:
    """The text cut at the first stop sequence, then to max_tokens words; and its finish_reason."""
    sequences = [stop] if isinstance(stop, str) else list(stop or [])
    cuts = [text.find(s) for s in sequences if s and s in text]
    if cuts:
        text = text[: min(cuts)]
    if max_tokens is not None and _words(text) > max_tokens:
        leading = text[: len(text) - len(text.lstrip())]
        pieces = _WORD_PIECES.findall(text.lstrip())
        return (leading + "".join(pieces[:max_tokens])).rstrip(), "length"
    return text, "stop"


def _compose(parsed: _CompletionRequest, knowledge: Knowledge, scripted: ComposedAnswer | None) -> _Answer:
    messages = parsed.messages
    question, history = _question_and_history(messages)
    prompt_tokens = sum(_words(message.content) for message in messages)
    tools = [tool.model_dump() for tool in parsed.tools or []]
    choice: Any = parsed.tool_choice
    if isinstance(choice, _NamedToolChoice):
        choice = choice.model_dump()
    calls: list[PlannedToolCall] = []
    evidence = knowledge.evidence(question, history) if tools and scripted is None else ""
    if scripted is not None:
        calls = list(scripted.tool_calls)
    elif tools and messages[-1].role == "user" and choice != "none":
        calls = tool_calls_for(question, tools, choice, evidence=evidence)
    elif tools and messages[-1].role == "tool":
        called = [
            str((call.get("function") or {}).get("name"))
            for message in messages
            for call in message.tool_calls or []
            if isinstance(call, dict)
        ]
        calls = calls_after_tool_results(question, tools, choice, called, evidence=evidence)
    if calls:
        tokens = sum(_words(call.name) + _words(call.arguments_json) for call in calls)
        return _Answer(None, calls, "tool_calls", prompt_tokens, tokens)
    if scripted is not None:
        text = scripted.text
    elif messages[-1].role == "tool":
        text = _answer_tool_results(messages, question, history, knowledge)
    else:
        text = knowledge.answer(question, history).text
    text, finish_reason = _limit(text, parsed.stop, parsed.max_tokens)
    return _Answer(text, [], finish_reason, prompt_tokens, _words(text))


@dataclass(frozen=True)
class _Meta:
    completion_id: str
    created: int
    model: str
    session_id: str
    n: int

    def usage(self, answer: _Answer) -> dict[str, int]:
        completion = answer.completion_tokens * self.n
        return {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": answer.prompt_tokens + completion,
        }


def _call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def _completion(meta: _Meta, answer: _Answer) -> dict[str, Any]:
    choices = []
    for index in range(meta.n):
        message: dict[str, Any] = {"role": "assistant", "content": answer.text}
        if answer.calls:
            message["tool_calls"] = [
                {
                    "id": _call_id(),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for call in answer.calls
            ]
        choices.append(
            {"index": index, "message": message, "finish_reason": answer.finish_reason, "logprobs": None}
        )
    return {
        "id": meta.completion_id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": choices,
        "usage": meta.usage(answer),
        "session_id": meta.session_id,
    }


def _deltas(answer: _Answer, config: EmulatorConfig) -> list[dict[str, Any]]:
    """The content or tool-call deltas of one choice, in order (fresh call ids per choice)."""
    if not answer.calls:
        return [{"content": piece} for piece in split_deltas(answer.text or "", config.words_per_delta)]
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(answer.calls):
        head = {
            "index": index,
            "id": _call_id(),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        deltas.append({"tool_calls": [head]})
        for fragment in split_fragments(call.arguments_json, ARGUMENT_FRAGMENT_SIZE):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    return deltas


async def _event_stream(
    context: RequestContext, meta: _Meta, answer: _Answer, config: EmulatorConfig, record: StreamRecord
) -> AsyncIterator[bytes | None]:
    plan = context.plan

    def frame(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": meta.completion_id,
            "object": "chat.completion.chunk",
            "created": meta.created,
            "model": meta.model,
            "choices": choices,
            **extra,
            "session_id": meta.session_id,
        }
        return sse_frame(json.dumps(chunk, ensure_ascii=False))

    def choice(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}

    if plan.bulk is not None:
        async for block in _bulk_frames(
            frame, choice, plan.bulk, plan.bulk_tool_fragments, answer, meta, record
        ):
            yield block
        return
    first = {"role": "assistant", "content": None if answer.calls else ""}
    for index in range(meta.n):
        yield frame([choice(index, first)])
    per_choice = [_deltas(answer, config) for _ in range(meta.n)]
    # n choices interleaved, one delta of each in turn, as OpenAI streams them
    steps = [(i, per_choice[i][position]) for position in range(len(per_choice[0])) for i in range(meta.n)]
    for sent, (index, delta) in enumerate(steps):
        if plan.cut_after is not None and sent >= plan.cut_after:
            yield None
            return
        if plan.malformed_after is not None and sent >= plan.malformed_after:
            record.outcome = "malformed"
            yield b"data: {broken\n\n"
            return
        if plan.stream_error is not None and sent >= plan.stream_error_after:
            record.outcome = "error"
            yield sse_frame(json.dumps(error_body(plan.stream_error), ensure_ascii=False), event="error")
            return
        if pause := plan.pause_before(sent):
            await asyncio.sleep(pause)
        yield frame([choice(index, delta)])
        record.deltas_sent += 1
    if plan.cut_after is not None:  # asked to cut after more deltas than the answer has
        yield None
        return
    if plan.malformed_after is not None:  # ... or to break after more deltas than it has
        record.outcome = "malformed"
        yield b"data: {broken\n\n"
        return
    if plan.stream_error is not None:
        record.outcome = "error"
        yield sse_frame(json.dumps(error_body(plan.stream_error), ensure_ascii=False), event="error")
        return
    for index in range(meta.n):
        yield frame([choice(index, {}, answer.finish_reason)])
    yield frame([], usage=meta.usage(answer))
    yield sse_frame("[DONE]")


BULK_WRITE_BYTES = 64 * 1024


async def _bulk_frames(
    frame: Any,
    choice: Any,
    count: int,
    tool_fragments: int,
    answer: _Answer,
    meta: _Meta,
    record: StreamRecord,
) -> AsyncIterator[bytes | None]:
    """Benchmarks: `count` one-word content chunks, then (with `tool_fragments`, when the answer
    calls a tool) one tool call whose arguments come in that many fragments; prepared up front
    and written in large writes, so that the client is what gets measured."""
    frames = [frame([choice(0, {"role": "assistant", "content": ""})])]
    frames += [frame([choice(0, {"content": "Wort "})])] * count
    finish = "stop"
    if tool_fragments and answer.calls:
        call = answer.calls[0]
        arguments = call.arguments_json.ljust(tool_fragments)  # JSON allows trailing blanks
        size = -(-len(arguments) // tool_fragments)
        head = {
            "index": 0,
            "id": _call_id(),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        frames.append(frame([choice(0, {"tool_calls": [head]})]))
        for start in range(0, len(arguments), size):
            fragment = {"index": 0, "function": {"arguments": arguments[start : start + size]}}
            frames.append(frame([choice(0, {"tool_calls": [fragment]})]))
        finish = "tool_calls"
    frames.append(frame([choice(0, {}, finish)]))
    frames.append(
        frame(
            [],
            usage={
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": count,
                "total_tokens": answer.prompt_tokens + count,
            },
        )
    )
    frames.append(sse_frame("[DONE]"))
    block: list[bytes] = []
    size_now = 0
    for item in frames:
        block.append(item)
        size_now += len(item)
        if size_now >= BULK_WRITE_BYTES:
            yield b"".join(block)
            block, size_now = [], 0
    if block:
        yield b"".join(block)
    record.deltas_sent += count


async def _cut_in_half(body: bytes) -> AsyncIterator[bytes | None]:
    yield body[: len(body) // 2]
    yield None


def _wants_event_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "").lower()


def add_completions_routes(
    app: FastAPI, config: EmulatorConfig, state: EmulatorState, knowledge: Knowledge
) -> None:
    """Register `POST /api/v1/chat/completions`."""

    @app.post(PATH)
    async def chat_completions(request: Request) -> Response:
        context = await begin(request, state, config, platform=True)
        if isinstance(context, Response):
            return context
        parsed = parse_body(context, _CompletionRequest, _LenientCompletionRequest, config, platform=True)
        if isinstance(parsed, Response):
            return parsed
        problems = _tool_problems(parsed)
        if problems:
            return context.json({"detail": problems}, status_code=422)
        streaming = _wants_event_stream(request)
        if not streaming and parsed.tools:
            return context.json(
                {"error_code": "tools_require_streaming", "detail": TOOLS_REQUIRE_STREAMING}, status_code=400
            )
        if not streaming and parsed.stream:
            return context.json(
                {"error_code": "streaming_requires_event_stream", "detail": STREAMING_REQUIRES_EVENT_STREAM},
                status_code=400,
            )
        offered = tuple(tool.function.name for tool in parsed.tools or [])
        asked = Asked("completions", _question_and_history(parsed.messages)[0], streaming, offered, PATH)
        scripted = await scripted_answer(context, state, asked)
        if isinstance(scripted, Response):
            return scripted
        try:
            answer = _compose(parsed, knowledge, scripted)
        except UnsupportedSchema as exc:
            problem = {"loc": ["body", "tools"], "msg": str(exc), "type": "value_error"}
            return context.json({"detail": [problem]}, status_code=422)
        meta = _Meta(
            completion_id="chatcmpl-" + uuid.uuid4().hex,
            created=int(time.time()),
            model=parsed.model or config.default_model,
            session_id=parsed.session_id or str(uuid.uuid4()),
            n=parsed.n or 1,
        )
        headers = {**context.headers, "x-session-id": meta.session_id}
        if streaming:
            record = state.start_stream(context.request_id)
            return StreamingBody(
                _event_stream(context, meta, answer, config, record),
                media_type="text/event-stream",
                record=record,
                headers={**headers, "cache-control": "no-cache"},
            )
        body = json.dumps(_completion(meta, answer), ensure_ascii=False).encode("utf-8")
        if context.plan.cut_after is not None:
            record = state.start_stream(context.request_id)
            return StreamingBody(
                _cut_in_half(body), media_type="application/json", record=record, headers=headers
            )
        return Response(body, media_type="application/json", headers=headers)
