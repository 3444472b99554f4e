"""`client.streams`: background completions observed as resumable SSE streams (docs/contract.md)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Generator, Mapping, Sequence
from contextlib import aclosing, closing
from typing import TYPE_CHECKING, Any

import httpx

from haufe_copilot.errors import APIConnectionError, ConflictError, InvalidRequestError
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
from haufe_copilot.resources.assistant import _timeout
from haufe_copilot.transport.streaming import AsyncStream, Stream
from haufe_copilot.types.streams import DoneEvent, StreamEvent, StreamHandle, StreamStatus

if TYPE_CHECKING:
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


class Streams:
    """Start a completion in the background, observe it, resume after a drop, cancel it."""

    def __init__(self, client: HaufeCopilotClient) -> None:
        self._client = client

    def start(
        self,
        *,
        messages: Sequence[Any],
        stream_id: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        deadline: float | None = None,
        **fields: Any,
    ) -> StreamHandle:
        """`POST /api/v1/messages/async`: returns the handle (`stream_id`, `status`, `message`).

        `fields` are the documented ones (docs/contract.md): model, stream, tools, tool_choice, tool_context,
        mcp_servers, response_format, system, thinking, priority, seed, min_p, top_p,
        temperature, top_k, repetition_penalty, presence_penalty, frequency_penalty, max_tokens,
        correlation_id. `stream_id` is optional: without it the client chooses one (a UUID), so
        that a start retried after its answer was lost finds the stream the first attempt
        started instead of starting a second; a 409 for a stream this call started returns its
        handle (status as the server reports it now). Give your own `stream_id` to be able to
        look the stream up (`status()`) after a start that failed once its request was sent.
        """
        chosen_here = stream_id is None
        spec = build_stream_start(
            messages=messages,
            stream_id=new_stream_id() if stream_id is None else stream_id,
            fields=_start_fields(fields),
            extra_body=extra_body,
            extra_headers=extra_headers,
        )
        try:
            return self._client._request(
                spec, parse_stream_handle, _timeout(timeout), self._client._call_deadline(deadline)
            )
        except ConflictError as error:
            if not _started_by_this_call(error, chosen_here):
                raise
            status = self.status(spec.params["stream_id"], timeout=timeout, deadline=deadline)
            return _existing_handle(error, status)

    def status(
        self, stream_id: str, *, timeout: float | httpx.Timeout | None = None, deadline: float | None = None
    ) -> StreamStatus:
        return self._client._request(
            build_stream_status(stream_id),
            parse_stream_status,
            _timeout(timeout),
            self._client._call_deadline(deadline),
        )

    def cancel(
        self, stream_id: str, *, timeout: float | httpx.Timeout | None = None, deadline: float | None = None
    ) -> StreamStatus:
        return self._client._request(
            build_stream_cancel(stream_id),
            parse_stream_status,
            _timeout(timeout),
            self._client._call_deadline(deadline),
        )

    def events(
        self,
        stream_id: str,
        *,
        last_event_id: int = 0,
        max_reattach: int = DEFAULT_MAX_REATTACH,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        deadline: float | None = None,
    ) -> Stream[StreamEvent]:
        """The stream's typed events after `last_event_id`, each exactly once, up to `done`.

        A dropped connection is re-attached with `Last-Event-ID`: at once the first time, then
        backing off (0.5 s x 2^n), at most `max_reattach` times in a row without a new event;
        so nothing is lost or repeated. A connection that brings no event for the read timeout
        (keep-alives do not count) is re-attached the same way; `deadline` (seconds; default
        the client's) bounds the whole, re-attachments included, and ends it with
        `APITimeoutError`.
        """
        return Stream(
            self._events(
                stream_id,
                check_event_id(last_event_id),
                max_reattach,
                extra_headers,
                _timeout(timeout),
                self._client._call_deadline(deadline),
            )
        )

    def _events(
        self,
        stream_id: str,
        last: int,
        max_reattach: int,
        extra_headers: Mapping[str, str] | None,
        timeout: httpx.Timeout | None,
        deadline: Deadline | None,
    ) -> Generator[StreamEvent, None, None]:
        failures = 0
        while True:
            error: APIConnectionError | None = None
            try:
                with closing(
                    self._client._iterate(
                        build_stream_events(stream_id, last, extra_headers),
                        stream_events_after(last),
                        timeout,
                        deadline,
                    )
                ) as events:
                    for event in events:  # resends dropped, events without an id line kept
                        last, failures = event.id, 0
                        yield event
                        if isinstance(event, DoneEvent):
                            return
            except APIConnectionError as exc:
                error = exc
            failures += 1
            _check_reattach(stream_id, failures, max_reattach, error, deadline)
            if failures > 1:  # the first re-attach is immediate: the connection had been fine
                time.sleep(_pause(failures, deadline))


class AsyncStreams:
    """Background completions, asynchronously (see `Streams`)."""

    def __init__(self, client: AsyncHaufeCopilotClient) -> None:
        self._client = client

    async def start(
        self,
        *,
        messages: Sequence[Any],
        stream_id: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        deadline: float | None = None,
        **fields: Any,
    ) -> StreamHandle:
        """See `Streams.start`."""
        chosen_here = stream_id is None
        spec = build_stream_start(
            messages=messages,
            stream_id=new_stream_id() if stream_id is None else stream_id,
            fields=_start_fields(fields),
            extra_body=extra_body,
            extra_headers=extra_headers,
        )
        try:
            return await self._client._request(
                spec, parse_stream_handle, _timeout(timeout), self._client._call_deadline(deadline)
            )
        except ConflictError as error:
            if not _started_by_this_call(error, chosen_here):
                raise
            status = await self.status(spec.params["stream_id"], timeout=timeout, deadline=deadline)
            return _existing_handle(error, status)

    async def status(
        self, stream_id: str, *, timeout: float | httpx.Timeout | None = None, deadline: float | None = None
    ) -> StreamStatus:
        return await self._client._request(
            build_stream_status(stream_id),
            parse_stream_status,
            _timeout(timeout),
            self._client._call_deadline(deadline),
        )

    async def cancel(
        self, stream_id: str, *, timeout: float | httpx.Timeout | None = None, deadline: float | None = None
    ) -> StreamStatus:
        return await self._client._request(
            build_stream_cancel(stream_id),
            parse_stream_status,
            _timeout(timeout),
            self._client._call_deadline(deadline),
        )

    def events(
        self,
        stream_id: str,
        *,
        last_event_id: int = 0,
        max_reattach: int = DEFAULT_MAX_REATTACH,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
        deadline: float | None = None,
    ) -> AsyncStream[StreamEvent]:
        """See `Streams.events`: `async for event in client.streams.events(id)`."""
        return AsyncStream(
            self._events(
                stream_id,
                check_event_id(last_event_id),
                max_reattach,
                extra_headers,
                _timeout(timeout),
                self._client._call_deadline(deadline),
            )
        )

    async def _events(
        self,
        stream_id: str,
        last: int,
        max_reattach: int,
        extra_headers: Mapping[str, str] | None,
        timeout: httpx.Timeout | None,
        deadline: Deadline | None,
    ) -> AsyncGenerator[StreamEvent, None]:
        failures = 0
        while True:
            error: APIConnectionError | None = None
            try:
                async with aclosing(
                    self._client._iterate(
                        build_stream_events(stream_id, last, extra_headers),
                        stream_events_after(last),
                        timeout,
                        deadline,
                    )
                ) as events:
                    async for event in events:
                        last, failures = event.id, 0
                        yield event
                        if isinstance(event, DoneEvent):
                            return
            except APIConnectionError as exc:
                error = exc
            failures += 1
            _check_reattach(stream_id, failures, max_reattach, error, deadline)
            if failures > 1:
                import asyncio  # here, not at the top: a sync user never loads asyncio

                await asyncio.sleep(_pause(failures, deadline))
