"""The async-streams API of the emulator (docs/contract.md, Async streams).

- `POST /api/v1/messages/async?stream_id=` starts a generation in the background and answers 202;
- `GET /api/v1/messages/async/{id}/status` tells where it is;
- `GET /api/v1/messages/async/{id}/stream` observes it as Server-Sent Events, from
  `Last-Event-ID` (header, or `?last_event_id=`) on, then live, ending after `done`;
- `POST /api/v1/messages/async/{id}/cancel` stops it.

**The event log.** Every stream is an `AsyncStream` in the app's `AsyncStreamRegistry`
(`app.state.async_streams`): an append-only list of `LoggedEvent`s with ids 1, 2, 3, ..., written
by one background task per stream. An observer reads the list from its `Last-Event-ID` on and, when
it has caught up, waits on the stream's *waker*, an `asyncio.Event` that every append sets and
replaces; so any number of observers follow one stream, each at its own pace, and a late or
re-attaching observer gets exactly the events it has not seen. `done` is always the last event:
the task appends it when the answer is complete, failed or cancelled (the cancel endpoint appends
it itself, then cancels the task). Finished streams expire `EmulatorConfig.async_stream_ttl`
seconds after they finish; at most `max_streams` are kept, the oldest finished dropped first.

**What tests read.** Every observation connection appends an `Observation` to
`registry.observations`: the stream id, the `Last-Event-ID` it asked for and the ids of the
events it actually sent, in order (an id is recorded once its frame was handed to the server, so
an injected cut or a client leaving shows as a shorter list), with the connection's
`StreamRecord` (`ended_at`, `outcome`: "complete", "cut", "disconnected", "malformed"). From a
running `EmulatorServer`: `server.app.state.async_streams.observations_for(stream_id)`.

**Faults.** On the initiating POST: `x-emulator-delta-delay` is the pause before each produced
event (the first one, `status: processing`, included, so `pending` can be seen);
`x-emulator-stream-error: <code>` (+ `x-emulator-stream-error-after: n`) sends an `error` event
after n deltas (after the last one where the answer has fewer), then `done {"status": "failed"}`;
and the emulator-only `x-emulator-delta-count: n` makes the answer exactly n delta events (its
words repeated or truncated). On an observation: `x-emulator-delay` (before the first byte),
`x-emulator-cut-after: n` (close abruptly after sending n events on this connection; also at the
end where fewer came), `x-emulator-malformed-after: n` (after n events a frame whose data is not
JSON, then the end).

**Readings where the documentation is silent.** `system` is an object; `prompt` (str), `use_default_prompt`
(bool) and `citations` (bool) are type-checked where present, other keys are accepted, since the
documentation names none; none of it changes the answer. `thinking` is `{"enabled": bool}` or Anthropic's
`{"type": "enabled" | "disabled"}`, with an optional `budget_tokens` (int >= 1) capping the thinking
words; other keys are accepted. `stream: false` sends the answer (and the thinking) as one event
each. `max_tokens` caps a text answer's delta events (never a JSON answer, which must stay valid).
`priority`, `seed` and `top_k` are integers, the other sampling parameters numbers, all accepted
and otherwise ignored. `tool_choice` is "none" | "auto" | "required" | `{"type": "function",
"function": {"name"}}`; `response_format {"type": "tool_call"}` needs tools and forces a call.
Messages may carry `name`, `tool_calls` (assistant) and `tool_call_id` (tool) as on the completions API; a
conversation that ends with tool results is answered (using them), not met with another call.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .app import EmulatorConfig, FunctionEntry, FunctionName, Knowledge, RequestContext, begin, parse_body
from .assistant import split_deltas
from .compose import tool_results_in
from .faults import error_body
from .responses import StreamingBody, sse_frame
from .schema_values import UnsupportedSchema, value_for_schema
from .scripts import Asked, scripted_answer
from .state import EmulatorState, StreamRecord
from .tool_intent import calls_after_tool_results, split_fragments, tool_calls_for

if TYPE_CHECKING:
    from .app import ComposedAnswer

__all__ = ["AsyncStream", "AsyncStreamRegistry", "LoggedEvent", "Observation", "add_async_stream_routes"]

PREFIX = "/api/v1/messages/async"
MAX_STREAMS = 10_000
MAX_OBSERVATIONS = 10_000
KEEP_ALIVE_SECONDS = 15.0
#: Characters per `tool_call` arguments fragment.
ARGUMENT_FRAGMENT_SIZE = 12
STREAM_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
FINISHED = frozenset({"completed", "failed", "cancelled", "error"})
INITIATED = "Chat stream initiated successfully"
_FORMAT_TYPES = ("text", "json_schema", "tool_call")

Role = Literal["user", "assistant", "system", "tool"]


# -- the request body (docs/contract.md, Async streams) ----------------------------------------


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str | None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> _Message:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError("content must be a string (null only for an assistant message with tool_calls)")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if self.tool_call_id is not None and self.role != "tool":
            raise ValueError("only tool messages carry a tool_call_id")
        return self


class _Function(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class _Tool(FunctionEntry[_Function]):
    """A tool: `{"type": "function", "function": {"name", "description"?, "parameters"?, "strict"?}}`."""


class _ChosenTool(FunctionEntry[FunctionName]):
    """A `tool_choice` naming the one function to call."""


class _JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class _ResponseFormat(BaseModel):
    """`{"type": "text"}`, `{"type": "json_schema", "json_schema": {"name"?, "schema", "strict"?}}`
    or `{"type": "tool_call"}`; what is wrong with anything else is said in words."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_schema", "tool_call"]
    json_schema: _JsonSchemaFormat | None = None

    @model_validator(mode="before")
    @classmethod
    def _explain(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError('response_format must be an object, e.g. {"type": "text"}')
        kind = value.get("type")
        if kind not in _FORMAT_TYPES:
            raise ValueError(
                f"response_format.type must be one of 'text', 'json_schema', 'tool_call', not {kind!r}"
            )
        if kind != "json_schema":
            if value.get("json_schema") is not None:
                raise ValueError(
                    f"response_format of type {kind!r} takes no json_schema; use type 'json_schema'"
                )
            return value
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            raise ValueError(
                "response_format of type 'json_schema' needs a json_schema object: "
                '{"name": ..., "schema": {"type": "object", ...}, "strict": true}'
            )
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise ValueError(
                "response_format.json_schema.schema must be a JSON Schema object, "
                'e.g. {"type": "object", "properties": {...}}'
            )
        if schema.get("type") != "object":
            raise ValueError(
                'response_format.json_schema.schema must describe a JSON object ("type": "object"), '
                f"not type {schema.get('type')!r}"
            )
        return value

    @property
    def target_schema(self) -> dict[str, Any] | None:
        """The schema a `json_schema` answer must satisfy (None for the other types)."""
        return self.json_schema.schema_ if self.json_schema is not None else None


class _System(BaseModel):
    """The documentation names no keys: these are type-checked where present, others are accepted."""

    model_config = ConfigDict(extra="allow")
    prompt: str | None = None
    use_default_prompt: bool | None = None
    citations: bool | None = None


class _Thinking(BaseModel):
    model_config = ConfigDict(extra="allow")
    enabled: bool | None = None
    type: Literal["enabled", "disabled"] | None = None
    budget_tokens: int | None = Field(default=None, ge=1)

    @property
    def on(self) -> bool:
        return bool(self.enabled) or self.type == "enabled"


class _AsyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: list[_Message] = Field(min_length=1)
    model: str | None = None
    stream: bool | None = None
    tools: list[_Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | _ChosenTool | None = None
    tool_context: Any = None
    mcp_servers: list[dict[str, Any]] | None = None
    response_format: _ResponseFormat | None = None
    system: _System | None = None
    thinking: _Thinking | None = None
    priority: int | None = None
    seed: int | None = None
    min_p: float | None = None
    top_p: float | None = None
    temperature: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    correlation_id: str | None = None

    @model_validator(mode="after")
    def _tools_agree(self) -> _AsyncRequest:
        names = [tool.function.name for tool in self.tools or []]
        if isinstance(self.tool_choice, _ChosenTool) and self.tool_choice.function.name not in names:
            raise ValueError(
                f"tool_choice names the function {self.tool_choice.function.name!r}, which tools lack"
            )
        if self.tool_choice == "required" and not names:
            raise ValueError("tool_choice 'required' needs tools")
        if self.response_format is not None and self.response_format.type == "tool_call" and not names:
            raise ValueError('response_format {"type": "tool_call"} needs tools')
        return self


class _LenientMessage(_Message):
    model_config = ConfigDict(extra="ignore")


class _LenientFunction(_Function):
    model_config = ConfigDict(extra="ignore")


class _LenientTool(_Tool):
    model_config = ConfigDict(extra="ignore")
    function: _LenientFunction


class _LenientJsonSchemaFormat(_JsonSchemaFormat):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _LenientResponseFormat(_ResponseFormat):
    model_config = ConfigDict(extra="ignore")
    json_schema: _LenientJsonSchemaFormat | None = None


class _LenientAsyncRequest(_AsyncRequest):
    model_config = ConfigDict(extra="ignore")
    messages: list[_LenientMessage] = Field(min_length=1)  # type: ignore[assignment]
    tools: list[_LenientTool] | None = None  # type: ignore[assignment]
    response_format: _LenientResponseFormat | None = None


# -- the event log ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedEvent:
    id: int
    event: str
    data: dict[str, Any]

    def frame(self) -> bytes:
        return sse_frame(json.dumps(self.data, ensure_ascii=False), event=self.event, id=self.id)


@dataclass
class Observation:
    """One observation connection, as the emulator served it."""

    stream_id: str
    #: The `Last-Event-ID` the request asked for (None: from the start).
    last_event_id: int | None
    #: The ids of the events this connection sent, in order.
    sent: list[int]
    request_id: str
    record: StreamRecord


class AsyncStream:
    """One stream: its status and its append-only event log."""

    def __init__(self, stream_id: str, on_finish: Callable[[AsyncStream], None]) -> None:
        self.id = stream_id
        self.status = "pending"
        self.error: dict[str, Any] | None = None
        self.events: list[LoggedEvent] = []
        self.created_at = time.monotonic()
        self.finished_at: float | None = None
        self.task: asyncio.Task[None] | None = None
        self._waker = asyncio.Event()
        self._on_finish = on_finish

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def append(self, event: str, data: dict[str, Any]) -> LoggedEvent:
        logged = LoggedEvent(len(self.events) + 1, event, data)
        self.events.append(logged)
        waker, self._waker = self._waker, asyncio.Event()
        waker.set()
        return logged

    def finish(self, status: str, *, usage: dict[str, int] | None = None) -> bool:
        """Append `done` and settle the status; False when the stream had already finished."""
        if self.finished:
            return False
        data: dict[str, Any] = {"status": status}
        if usage is not None:
            data["usage"] = usage
        self.status = status
        self.finished_at = time.monotonic()
        self.append("done", data)
        self._on_finish(self)
        return True

    def fail(self, status: str, error: dict[str, Any]) -> None:
        if self.finished:
            return
        self.error = error
        self.append("error", error)
        self.finish(status)

    async def wait_after(self, seen: int, timeout: float) -> bool:
        """Wait until the log holds more than `seen` events or the stream finished; False when
        `timeout` seconds passed with neither."""
        if len(self.events) > seen or self.finished:
            return True
        waker = self._waker
        try:
            await asyncio.wait_for(waker.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True


class StreamsFull(Exception):
    """Every kept stream is still running: no room for another."""


class AsyncStreamRegistry:
    """The app's streams (`app.state.async_streams`), their tasks and the observation records.

    Streams are created, run and finished on the server's event loop; the bookkeeping takes a
    lock, so a test may also call `get`, `observations_for` or `running_tasks` from its thread.
    """

    def __init__(self, ttl: float, *, max_streams: int = MAX_STREAMS) -> None:
        self.ttl = ttl
        self.max_streams = max_streams
        self.keep_alive_interval = KEEP_ALIVE_SECONDS
        self.observations: collections.deque[Observation] = collections.deque(maxlen=MAX_OBSERVATIONS)
        self._streams: OrderedDict[str, AsyncStream] = OrderedDict()
        #: stream id -> finished_at, in the order the streams finished (so also of expiry).
        self._finished: OrderedDict[str, float] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()

    def observations_for(self, stream_id: str) -> list[Observation]:
        return [o for o in list(self.observations) if o.stream_id == stream_id]

    def running_tasks(self) -> list[asyncio.Task[None]]:
        with self._lock:
            tasks = list(self._tasks)
        return [task for task in tasks if not task.done()]

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._streams)

    def get(self, stream_id: str) -> AsyncStream | None:
        """The stream, unless unknown or expired."""
        with self._lock:
            self._expire()
            return self._streams.get(stream_id)

    def create(self, stream_id: str) -> AsyncStream:
        """A new pending stream (KeyError: the id exists; StreamsFull: no room)."""
        with self._lock:
            self._expire()
            if stream_id in self._streams:
                raise KeyError(stream_id)
            while len(self._streams) >= self.max_streams:
                if not self._finished:
                    raise StreamsFull
                oldest, _ = self._finished.popitem(last=False)
                self._streams.pop(oldest, None)
            stream = AsyncStream(stream_id, self._finished_now)
            self._streams[stream_id] = stream
            return stream

    def start(self, stream: AsyncStream, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        stream.task = task
        with self._lock:
            self._tasks.add(task)
        task.add_done_callback(self._forget)

    async def shutdown(self) -> None:
        """Cancel every running generation and wait for it (a server's lifespan may call this;
        without one, the event loop's own shutdown cancels the tasks the same way)."""
        tasks = self.running_tasks()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _forget(self, task: asyncio.Task[None]) -> None:
        with self._lock:
            self._tasks.discard(task)

    def _finished_now(self, stream: AsyncStream) -> None:
        with self._lock:
            if stream.finished_at is not None and self._streams.get(stream.id) is stream:
                self._finished[stream.id] = stream.finished_at

    def _expire(self) -> None:
        deadline = time.monotonic() - self.ttl
        while self._finished:
            stream_id, finished_at = next(iter(self._finished.items()))
            if finished_at > deadline:
                break
            del self._finished[stream_id]
            self._streams.pop(stream_id, None)


# -- what a stream produces ------------------------------------------------------------------


@dataclass
class _Generation:
    """The events of one answer, worked out when the stream is initiated."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)


def _words(text: str) -> int:
    return len(text.split())


def _repeat_to(pieces: list[str], count: int) -> list[str]:
    if count <= len(pieces):
        return pieces[:count]
    source = pieces or ["…"]
    out = []
    for index in range(count):
        piece = source[index % len(source)]
        out.append(piece if piece[-1:].isspace() else piece + " ")
    return out


def _question_and_history(messages: list[dict[str, Any]]) -> tuple[str, list[str]]:
    turns = [m["content"] for m in messages if m["role"] == "user" and m["content"]]
    if turns:
        return turns[-1], turns[:-1]
    last = next((m["content"] for m in reversed(messages) if m["content"]), "")
    return last, []


def _tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool messages that end the conversation (answer them rather than calling again)."""
    results: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        results.insert(0, message)
    return results


def _tool_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """tool_call_id -> function name, from the assistant messages' tool_calls."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(call.get("id"), str):
                names[call["id"]] = str(function.get("name", ""))
    return names


def _thinking_text(question: str, answer_sources: Iterable[Any]) -> str:
    citations = [source.citation for source in answer_sources]
    found = f"Einschlägig sind {', '.join(citations)}." if citations else "Keine Vorschrift passt genau."
    return (
        f"Die Frage lautet: {question.strip()} Ich suche die passenden arbeitsrechtlichen Vorschriften. "
        f"{found} Ich fasse die wichtigste Regel zusammen und nenne die übrigen Fundstellen."
    )


def plan_generation(
    body: _AsyncRequest,
    knowledge: Knowledge,
    config: EmulatorConfig,
    delta_count: int | None,
    scripted: ComposedAnswer | None = None,
) -> _Generation:
    """Every event the stream will produce after `status: processing` and before `done` (a
    `scripted` answer's text and tool calls where a test scripted one); `UnsupportedSchema` where
    a tool's or the response format's schema is beyond the emulator."""
    messages = [m.model_dump() for m in body.messages]
    question, history = _question_and_history(messages)
    answer = scripted or knowledge.answer(question, history)
    whole = body.stream is False
    generation = _Generation()
    completion = 0

    def pieces_of(text: str) -> list[str]:
        return [text] if whole else split_deltas(text, config.words_per_delta)

    if body.thinking is not None and body.thinking.on:
        thinking = pieces_of(_thinking_text(question, answer.sources))
        if body.thinking.budget_tokens is not None and not whole:
            thinking = thinking[: body.thinking.budget_tokens]
        generation.events += [("thinking", {"content": piece}) for piece in thinking]
        completion += sum(_words(piece) for piece in thinking)

    results = _tool_results(messages)
    calls = []
    if scripted is not None:
        calls = list(scripted.tool_calls)
    elif body.tools and not results and body.tool_choice != "none":
        choice: Any = body.tool_choice
        if isinstance(choice, _ChosenTool):
            choice = choice.model_dump()
        elif body.response_format is not None and body.response_format.type == "tool_call":
            choice = "required"
        tools = [tool.model_dump(exclude_none=True) for tool in body.tools]
        try:
            calls = tool_calls_for(question, tools, choice, evidence=knowledge.evidence(question, history))
        except UnsupportedSchema as exc:
            raise exc.at("body", "tools") from None
    elif body.tools and results:
        tools = [tool.model_dump(exclude_none=True) for tool in body.tools]
        choice = body.tool_choice
        if isinstance(choice, _ChosenTool):
            choice = choice.model_dump()
        try:
            calls = calls_after_tool_results(
                question,
                tools,
                choice,
                _tool_names(messages).values(),
                evidence=knowledge.evidence(question, history),
            )
        except UnsupportedSchema as exc:
            raise exc.at("body", "tools") from None
    for index, call in enumerate(calls):
        arguments = json.dumps(call.arguments, ensure_ascii=False)
        fragments = split_fragments(arguments, ARGUMENT_FRAGMENT_SIZE) or [""]
        call_id = "call_" + uuid.uuid4().hex[:24]
        for position, fragment in enumerate(fragments):
            data: dict[str, Any] = {"index": index}
            if position == 0:
                data.update(id=call_id, name=call.name)
            data["arguments"] = fragment
            generation.events.append(("tool_call", data))
        completion += len(fragments)

    if not calls:
        schema = body.response_format.target_schema if body.response_format is not None else None
        if schema is not None and scripted is None:
            try:
                value = value_for_schema(schema, question, evidence=knowledge.evidence(question, history))
            except UnsupportedSchema as exc:
                raise exc.at("body", "response_format", "json_schema", "schema") from None
            deltas = pieces_of(json.dumps(value, ensure_ascii=False))
        else:
            text = answer.text
            if results and scripted is None:
                text = knowledge.answer_after_tool_results(question, history, tool_results_in(messages))
            deltas = pieces_of(text)
            if body.max_tokens is not None:
                deltas = deltas[: body.max_tokens]
        if delta_count is not None:
            deltas = _repeat_to(split_deltas("".join(deltas), 1), delta_count)
        generation.events += [("delta", {"content": piece}) for piece in deltas]
        completion += sum(max(1, _words(piece)) for piece in deltas)

    prompt = sum(_words(str(m["content"] or "")) for m in messages)
    generation.usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return generation


async def _run(stream: AsyncStream, generation: _Generation, context: RequestContext) -> None:
    """The background task: the events, paced by `x-emulator-delta-delay`, then `done`."""
    plan = context.plan

    async def pause(before_delta: int | None = None) -> None:
        delay = plan.delta_delay if before_delta is None else plan.pause_before(before_delta)
        await asyncio.sleep(delay)  # 0: still lets observers and a cancel in

    try:
        await pause()
        stream.status = "processing"
        stream.append("status", {"status": "processing"})
        deltas = 0
        for event, data in generation.events:
            if event == "delta" and plan.stream_error is not None and deltas >= plan.stream_error_after:
                break
            await pause(deltas if event == "delta" else None)
            stream.append(event, data)
            deltas += event == "delta"
        await pause()
        if plan.stream_error is not None:
            stream.fail("failed", error_body(plan.stream_error))
        else:
            stream.finish("completed", usage=generation.usage)
    except asyncio.CancelledError:
        stream.finish("cancelled")  # nothing when the cancel endpoint did it first
        raise
    except Exception as exc:  # a bug of the emulator: the stream says so, as the service would
        stream.fail("error", error_body("internal_server_error", f"{type(exc).__name__}: {exc}"))


async def _observe(
    stream: AsyncStream,
    after: int,
    context: RequestContext,
    observation: Observation,
    registry: AsyncStreamRegistry,
) -> AsyncIterator[bytes | None]:
    """The events with id > `after`, then the live ones, ending after `done`."""
    plan = context.plan
    position = after  # events[position] is the event with id position + 1
    sent = 0
    while True:
        if plan.cut_after is not None and sent >= plan.cut_after:
            yield None
            return
        if position < len(stream.events):
            logged = stream.events[position]
            position += 1
            if plan.malformed_after is not None and sent >= plan.malformed_after:
                observation.record.outcome = "malformed"
                yield f'id: {logged.id}\nevent: {logged.event}\ndata: {{"content": "unterbro\n\n'.encode()
                return
            # Recorded as the frame is handed to the server, not after: a client that closes on
            # `done` may get the server to cancel this generator before it would resume.
            observation.sent.append(logged.id)
            observation.record.deltas_sent += 1
            sent += 1
            yield logged.frame()
            continue
        if stream.finished:
            break
        if not await stream.wait_after(position, registry.keep_alive_interval):
            yield b": keep-alive\n\n"
    if plan.cut_after is not None:  # asked to cut after more events than there were
        yield None


# -- the routes ------------------------------------------------------------------------------


def add_async_stream_routes(
    app: FastAPI, config: EmulatorConfig, state: EmulatorState, knowledge: Knowledge
) -> None:
    registry = AsyncStreamRegistry(config.async_stream_ttl)
    app.state.async_streams = registry

    async def authorised(request: Request) -> RequestContext | Response:
        return await begin(request, state, config, platform=True)

    def invalid(context: RequestContext, loc: list[Any], msg: str, kind: str = "value_error") -> Response:
        return context.json({"detail": [{"loc": loc, "msg": msg, "type": kind}]}, status_code=422)

    async def existing(stream_id: str, request: Request) -> tuple[RequestContext, AsyncStream] | Response:
        """The authorised request and its stream, or the answer that ends it (401, 404)."""
        context = await authorised(request)
        if isinstance(context, Response):
            return context
        stream = registry.get(stream_id)
        if stream is None:
            return context.error("resource_not_found", "Stream not found")
        return context, stream

    @app.post(PREFIX, status_code=202)
    async def initiate(request: Request) -> Response:
        context = await authorised(request)
        if isinstance(context, Response):
            return context
        stream_id = request.query_params.get("stream_id")
        if stream_id is not None and not STREAM_ID.fullmatch(stream_id):
            return invalid(
                context,
                ["query", "stream_id"],
                "stream_id must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
                "string_pattern_mismatch",
            )
        parsed = parse_body(context, _AsyncRequest, _LenientAsyncRequest, config, platform=True)
        if isinstance(parsed, Response):
            return parsed
        offered = tuple(tool.function.name for tool in parsed.tools or [])
        question = _question_and_history([m.model_dump() for m in parsed.messages])[0]
        scripted = await scripted_answer(
            context, state, Asked("async_stream", question, True, offered, PREFIX)
        )
        if isinstance(scripted, Response):
            return scripted
        try:
            generation = plan_generation(parsed, knowledge, config, context.plan.delta_count, scripted)
        except UnsupportedSchema as exc:
            return invalid(context, list(exc.loc), str(exc))
        try:
            stream = registry.create(stream_id or str(uuid.uuid4()))
        except KeyError:
            return context.error("conflict", "A stream with this stream_id already exists")
        except StreamsFull:
            return context.error("rate_limit_gateway", "Too many async streams are running")
        registry.start(stream, _run(stream, generation, context))
        return context.json({"stream_id": stream.id, "status": "pending", "message": INITIATED}, 202)

    @app.get(PREFIX + "/{stream_id}/status")
    async def status(stream_id: str, request: Request) -> Response:
        found = await existing(stream_id, request)
        if isinstance(found, Response):
            return found
        context, stream = found
        payload: dict[str, Any] = {"stream_id": stream.id, "status": stream.status}
        if stream.error is not None:
            payload["error"] = stream.error
        return context.json(payload)

    @app.get(PREFIX + "/{stream_id}/stream")
    async def observe(stream_id: str, request: Request) -> Response:
        found = await existing(stream_id, request)
        if isinstance(found, Response):
            return found
        context, stream = found
        header = request.headers.get("last-event-id")
        raw = header if header is not None else request.query_params.get("last_event_id")
        after: int | None = None
        if raw is not None and raw.strip() != "":
            try:
                after = int(raw)
            except ValueError:
                after = -1
            if after < 0:
                loc = ["header", "Last-Event-ID"] if header is not None else ["query", "last_event_id"]
                return invalid(context, loc, "Last-Event-ID must be a whole number >= 0", "int_parsing")
        record = state.start_stream(context.request_id)
        observation = Observation(stream.id, after, [], context.request_id, record)
        registry.observations.append(observation)
        return StreamingBody(
            _observe(stream, after or 0, context, observation, registry),
            media_type="text/event-stream",
            record=record,
            headers={**context.headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post(PREFIX + "/{stream_id}/cancel")
    async def cancel(stream_id: str, request: Request) -> Response:
        found = await existing(stream_id, request)
        if isinstance(found, Response):
            return found
        context, stream = found
        if not stream.finish("cancelled"):
            return context.error("conflict", "The stream has already finished")
        if stream.task is not None:
            stream.task.cancel()
            await asyncio.wait({stream.task})
        return context.json({"stream_id": stream.id, "status": "cancelled"})
