"""`client.streams`: background completions observed as resumable SSE streams (docs/contract.md)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Generator, Mapping, Sequence
from contextlib import aclosing, closing
from typing import TYPE_CHECKING, Any

from haufe_copilot.errors import APIConnectionError, ConflictError, InvalidRequestError
from haufe_copilot.protocol.assistant import RequestSpec
from haufe_copilot.protocol.attempt import Call, Opened
from haufe_copilot.protocol.deadline import Deadline
from haufe_copilot.protocol.platform import (
    build_stream_cancel,
    build_stream_events,
    build_stream_start,
    build_stream_status,
    check_event_id,
    new_stream_id,
    parse_stream_handle,
    parse_stream_status,
    stream_events_after,
)
from haufe_copilot.protocol.retry import backoff_seconds
from haufe_copilot.resources.base import (
    CallOptions,
    Flow,
    Resource,
    arun_flow,
    call_of,
    run_flow,
)
from haufe_copilot.transport.base_client import BaseClient
from haufe_copilot.transport.streaming import AsyncStream, Stream
from haufe_copilot.types.streams import DoneEvent, StreamEvent, StreamHandle, StreamStatus

if TYPE_CHECKING:
    from typing_extensions import Required, Unpack

    from haufe_copilot.transport.async_client import AsyncHaufeCopilotClient
    from haufe_copilot.transport.client import HaufeCopilotClient

__all__ = ["AsyncStreams", "Streams"]

#: Re-attachments in a row without a new event before `events()` gives up.
DEFAULT_MAX_REATTACH = 5

_START_FIELDS = (
    "model",
    "stream",
    "tools",
    "tool_choice",
    "tool_context",
    "mcp_servers",
    "response_format",
    "system",
    "thinking",
    "priority",
    "seed",
    "min_p",
    "top_p",
    "temperature",
    "top_k",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "max_tokens",
    "correlation_id",
)


def _start_fields(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(_START_FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"streams.start() does not take {sorted(unknown)}: the API documents {list(_START_FIELDS)}; "
            "send anything else with extra_body=."
        )
    return dict(options)


def _started_by_this_call(error: ConflictError, chosen_here: bool) -> bool:
    """Whether a 409 on a start means the stream this call started exists: always for an id the
    client chose (a fresh UUID), and for the caller's id when an earlier attempt of this call
    went out (its 202 lost to a reset or a timeout)."""
    return chosen_here or bool(error.retries_done)


def _existing_handle(error: ConflictError, status: StreamStatus) -> StreamHandle:
    return StreamHandle(
        stream_id=status.stream_id,
        status=status.status,
        message=(
            "The stream already exists: an earlier attempt of this start reached the server "
            f"({error.message})."
        ),
    )


def _gave_up(stream_id: str, attempts: int, error: APIConnectionError | None) -> APIConnectionError:
    reason = f": {error.message}" if error is not None else " (it ended without its done event)"
    gave_up = APIConnectionError(
        f"Lost the async stream {stream_id!r} {attempts} times in a row without a new event{reason}. "
        "It still runs on the server: call events() again to resume, or status() to check it."
    )
    gave_up.__cause__ = error
    return gave_up


def _check_reattach(
    stream_id: str,
    failures: int,
    max_reattach: int,
    error: APIConnectionError | None,
    deadline: Deadline | None,
) -> None:
    """Raise if the stream may not be re-attached again: too many failures in a row, or the
    call's deadline passed (its own error says so; it is never re-attached)."""
    if deadline is not None and error is not None and deadline.expired:
        raise error
    if failures > max_reattach:
        raise _gave_up(stream_id, failures, error)


def _pause(failures: int, deadline: Deadline | None) -> float:
    """The backoff before a re-attachment, never past the deadline (which then ends the call)."""
    pause = backoff_seconds(failures - 2)
    return pause if deadline is None else max(0.0, min(pause, deadline.remaining()))


class StartRequest(CallOptions, total=False):
    """The arguments of `start()`: `messages`, `stream_id`, `extra_body`, `extra_headers`, the
    transport options, and the documented fields (`_START_FIELDS`), each as the API takes it."""

    messages: Required[Sequence[Any]]
    stream_id: str | None
    extra_body: Mapping[str, Any] | None
    extra_headers: Mapping[str, str] | None
    model: str
    stream: bool
    tools: Any
    tool_choice: Any
    tool_context: Any
    mcp_servers: Any
    response_format: Any
    system: Any
    thinking: Any
    priority: Any
    seed: int
    min_p: float
    top_p: float
    temperature: float
    top_k: int
    repetition_penalty: float
    presence_penalty: float
    frequency_penalty: float
    max_tokens: int
    correlation_id: str


class EventsOptions(CallOptions, total=False):
    """The options of `events()`: `last_event_id` (0: from the first event), `max_reattach`,
    `extra_headers`, and the transport options."""

    last_event_id: int
    max_reattach: int
    extra_headers: Mapping[str, str] | None


_OWN_START_ARGUMENTS = ("messages", "stream_id", "extra_body", "extra_headers", "timeout", "deadline")


def _start_flow(client: BaseClient, request: Mapping[str, Any]) -> Flow[StreamHandle]:
    """A start, and where a 409 says this call's stream exists already, its status."""
    stream_id = request.get("stream_id")
    chosen_here = stream_id is None
    spec = build_stream_start(
        messages=request["messages"],
        stream_id=new_stream_id() if stream_id is None else stream_id,
        fields=_start_fields({k: v for k, v in request.items() if k not in _OWN_START_ARGUMENTS}),
        extra_body=request.get("extra_body"),
        extra_headers=request.get("extra_headers"),
    )
    try:
        handle: StreamHandle = yield call_of(client, spec, request, parse=parse_stream_handle)
    except ConflictError as error:
        if not _started_by_this_call(error, chosen_here):
            raise
        status = yield from _status_call(client, build_stream_status(spec.params["stream_id"]), request)
        return _existing_handle(error, status)
    return handle


def _status_call(client: BaseClient, spec: RequestSpec, options: Mapping[str, Any]) -> Flow[StreamStatus]:
    status: StreamStatus = yield call_of(client, spec, options, parse=parse_stream_status)
    return status


class _Attachments:
    """The re-attachment rule of `events()`, without I/O: which request the next attachment
    sends, what of its items reaches the caller, and how long to wait before the next.

    A dropped connection is re-attached with `Last-Event-ID`: at once the first time, then
    backing off, at most `max_reattach` times in a row without a new event."""

    __slots__ = (
        "call_options",
        "client",
        "deadline",
        "done",
        "extra_headers",
        "failures",
        "last",
        "max_reattach",
        "opened",
        "stream_id",
        "timeout",
    )

    def __init__(self, client: BaseClient, stream_id: str, options: Mapping[str, Any]) -> None:
        self.client, self.stream_id = client, stream_id
        self.last = check_event_id(options.get("last_event_id", 0))
        self.max_reattach: int = options.get("max_reattach", DEFAULT_MAX_REATTACH)
        self.extra_headers: Mapping[str, str] | None = options.get("extra_headers")
        # One timeout and one deadline for every attachment: checked and started once.
        first = call_of(client, None, options)
        self.timeout, self.deadline = first.timeout, first.deadline
        self.failures, self.opened, self.done = 0, False, False

    def call(self) -> Call[StreamEvent]:
        spec = build_stream_events(self.stream_id, self.last, self.extra_headers)
        return Call(spec, self.timeout, self.deadline, fmt=stream_events_after(self.last))

    def passes(self, item: StreamEvent | Opened) -> bool:
        """Whether the caller gets this item: each event (resends are dropped by the format),
        and the first attachment's `Opened` only."""
        if isinstance(item, Opened):
            opened, self.opened = self.opened, True
            return not opened
        self.last, self.failures, self.done = item.id, 0, isinstance(item, DoneEvent)
        return True

    def pause(self, error: APIConnectionError | None) -> float:
        """After a lost attachment: the seconds to wait before the next, or raise."""
        self.failures += 1
        _check_reattach(self.stream_id, self.failures, self.max_reattach, error, self.deadline)
        # The first re-attach is immediate: the connection had been fine.
        return _pause(self.failures, self.deadline) if self.failures > 1 else 0.0


class Streams(Resource):
    """Start a completion in the background, observe it, resume after a drop, cancel it."""

    __slots__ = ()
    blocking = ("start", "status", "cancel")
    _client: HaufeCopilotClient

    def start(self, **request: Unpack[StartRequest]) -> StreamHandle:
        """`POST /api/v1/messages/async`: returns the handle (`stream_id`, `status`, `message`).

        The fields are the documented ones (docs/contract.md): model, stream, tools, tool_choice,
        tool_context,
        mcp_servers, response_format, system, thinking, priority, seed, min_p, top_p,
        temperature, top_k, repetition_penalty, presence_penalty, frequency_penalty, max_tokens,
        correlation_id. `stream_id` is optional: without it the client chooses one (a UUID), so
        that a start retried after its answer was lost finds the stream the first attempt
        started instead of starting a second; a 409 for a stream this call started returns its
        handle (status as the server reports it now). Give your own `stream_id` to be able to
        look the stream up (`status()`) after a start that failed once its request was sent.
        """
        return run_flow(self._client, _start_flow(self._client, request))

    def status(self, stream_id: str, **options: Unpack[CallOptions]) -> StreamStatus:
        return run_flow(self._client, _status_call(self._client, build_stream_status(stream_id), options))

    def cancel(self, stream_id: str, **options: Unpack[CallOptions]) -> StreamStatus:
        return run_flow(self._client, _status_call(self._client, build_stream_cancel(stream_id), options))

    def events(self, stream_id: str, **options: Unpack[EventsOptions]) -> Stream[StreamEvent]:
        """The stream's typed events after `last_event_id`, each exactly once, up to `done`.

        A dropped connection is re-attached with `Last-Event-ID`: at once the first time, then
        backing off (0.5 s x 2^n), at most `max_reattach` times in a row without a new event;
        so nothing is lost or repeated. A connection that brings no event for the read timeout
        (keep-alives do not count) is re-attached the same way; `deadline` (seconds; default
        the client's) bounds the whole, re-attachments included, and ends it with
        `APITimeoutError`. The first attachment is made when this returns (docs/errors.md).
        """
        return Stream(self._events(_Attachments(self._client, stream_id, options)))

    def _events(self, plan: _Attachments) -> Generator[StreamEvent | Opened, None, None]:
        while True:
            attachment = self._client._iterate(plan.call())
            try:
                with closing(attachment) as events:
                    for event in events:  # resends dropped, events without an id line kept
                        if plan.passes(event):
                            yield event
                        if plan.done:
                            return
            except APIConnectionError as exc:
                time.sleep(plan.pause(exc))
            else:
                time.sleep(plan.pause(None))


class AsyncStreams(Resource):
    """Background completions, asynchronously (see `Streams`)."""

    __slots__ = ()
    blocking = ("start", "status", "cancel")
    _client: AsyncHaufeCopilotClient

    async def start(self, **request: Unpack[StartRequest]) -> StreamHandle:
        """See `Streams.start`."""
        return await arun_flow(self._client, _start_flow(self._client, request))

    async def status(self, stream_id: str, **options: Unpack[CallOptions]) -> StreamStatus:
        return await arun_flow(
            self._client, _status_call(self._client, build_stream_status(stream_id), options)
        )

    async def cancel(self, stream_id: str, **options: Unpack[CallOptions]) -> StreamStatus:
        return await arun_flow(
            self._client, _status_call(self._client, build_stream_cancel(stream_id), options)
        )

    def events(self, stream_id: str, **options: Unpack[EventsOptions]) -> AsyncStream[StreamEvent]:
        """See `Streams.events`: `async for event in client.streams.events(id)`; `await` it to
        make the first attachment at once."""
        return AsyncStream(self._events(_Attachments(self._client, stream_id, options)))

    async def _events(self, plan: _Attachments) -> AsyncGenerator[StreamEvent | Opened, None]:
        import asyncio  # here, not at the top: a sync user never loads asyncio

        while True:
            attachment = self._client._iterate(plan.call())
            try:
                async with aclosing(attachment) as events:
                    async for event in events:
                        if plan.passes(event):
                            yield event
                        if plan.done:
                            return
            except APIConnectionError as exc:
                await asyncio.sleep(plan.pause(exc))
            else:
                await asyncio.sleep(plan.pause(None))
