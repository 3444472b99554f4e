"""`client.streams`: background completions observed as resumable SSE streams (docs/contract.md)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Generator, Mapping, Sequence
from contextlib import aclosing, closing
from typing import TYPE_CHECKING, Any

import httpx

from .._platform_protocol import (
    STREAM_EVENTS,
    build_stream_cancel,
    build_stream_events,
    build_stream_start,
    build_stream_status,
    check_event_id,
    parse_stream_handle,
    parse_stream_status,
)
from .._retry import backoff_seconds
from .._streaming import AsyncStream, Stream
from ..errors import APIConnectionError, InvalidRequestError
from ..types.streams import DoneEvent, StreamEvent, StreamHandle, StreamStatus
from .assistant import _timeout

if TYPE_CHECKING:
    from .._async_client import AsyncHaufeCopilotClient
    from .._client import HaufeCopilotClient

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


def _gave_up(stream_id: str, attempts: int, error: APIConnectionError | None) -> APIConnectionError:
    reason = f": {error.message}" if error is not None else " (it ended without its done event)"
    gave_up = APIConnectionError(
        f"Lost the async stream {stream_id!r} {attempts} times in a row without a new event{reason}. "
        "It still runs on the server: call events() again to resume, or status() to check it."
    )
    gave_up.__cause__ = error
    return gave_up


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
        **fields: Any,
    ) -> StreamHandle:
        """`POST /api/v1/messages/async`: returns the handle (`stream_id`, `status`, `message`).

        `fields` are the documented ones (docs/contract.md): model, stream, tools, tool_choice, tool_context,
        mcp_servers, response_format, system, thinking, priority, seed, min_p, top_p,
        temperature, top_k, repetition_penalty, presence_penalty, frequency_penalty, max_tokens,
        correlation_id. `stream_id` is optional: the server makes one when it is left out.
        """
        spec = build_stream_start(
            messages=messages,
            stream_id=stream_id,
            fields=_start_fields(fields),
            extra_body=extra_body,
            extra_headers=extra_headers,
        )
        return self._client._request(spec, parse_stream_handle, _timeout(timeout))

    def status(self, stream_id: str, *, timeout: float | httpx.Timeout | None = None) -> StreamStatus:
        return self._client._request(build_stream_status(stream_id), parse_stream_status, _timeout(timeout))

    def cancel(self, stream_id: str, *, timeout: float | httpx.Timeout | None = None) -> StreamStatus:
        return self._client._request(build_stream_cancel(stream_id), parse_stream_status, _timeout(timeout))

    def events(
        self,
        stream_id: str,
        *,
        last_event_id: int = 0,
        max_reattach: int = DEFAULT_MAX_REATTACH,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> Stream[StreamEvent]:
        """The stream's typed events after `last_event_id`, each exactly once, up to `done`.

        A dropped connection is re-attached with `Last-Event-ID`: at once the first time, then
        backing off (0.5 s x 2^n), at most `max_reattach` times in a row without a new event;
        so nothing is lost or repeated.
        """
        return Stream(
            self._events(
                stream_id, check_event_id(last_event_id), max_reattach, extra_headers, _timeout(timeout)
            )
        )

    def _events(
        self,
        stream_id: str,
        last: int,
        max_reattach: int,
        extra_headers: Mapping[str, str] | None,
        timeout: httpx.Timeout | None,
    ) -> Generator[StreamEvent, None, None]:
        failures = 0
        while True:
            error: APIConnectionError | None = None
            try:
                with closing(
                    self._client._iterate(
                        build_stream_events(stream_id, last, extra_headers), STREAM_EVENTS, timeout
                    )
                ) as events:
                    for event in events:
                        if event.id <= last:
                            continue  # a server that resends is not the caller's problem
                        last, failures = event.id, 0
                        yield event
                        if isinstance(event, DoneEvent):
                            return
            except APIConnectionError as exc:
                error = exc
            failures += 1
            if failures > max_reattach:
                raise _gave_up(stream_id, failures, error)
            if failures > 1:  # the first re-attach is immediate: the connection had been fine
                time.sleep(backoff_seconds(failures - 2))


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
        **fields: Any,
    ) -> StreamHandle:
        """See `Streams.start`."""
        spec = build_stream_start(
            messages=messages,
            stream_id=stream_id,
            fields=_start_fields(fields),
            extra_body=extra_body,
            extra_headers=extra_headers,
        )
        return await self._client._request(spec, parse_stream_handle, _timeout(timeout))

    async def status(self, stream_id: str, *, timeout: float | httpx.Timeout | None = None) -> StreamStatus:
        return await self._client._request(
            build_stream_status(stream_id), parse_stream_status, _timeout(timeout)
        )

    async def cancel(self, stream_id: str, *, timeout: float | httpx.Timeout | None = None) -> StreamStatus:
        return await self._client._request(
            build_stream_cancel(stream_id), parse_stream_status, _timeout(timeout)
        )

    def events(
        self,
        stream_id: str,
        *,
        last_event_id: int = 0,
        max_reattach: int = DEFAULT_MAX_REATTACH,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> AsyncStream[StreamEvent]:
        """See `Streams.events`: `async for event in client.streams.events(id)`."""
        return AsyncStream(
            self._events(
                stream_id, check_event_id(last_event_id), max_reattach, extra_headers, _timeout(timeout)
            )
        )

    async def _events(
        self,
        stream_id: str,
        last: int,
        max_reattach: int,
        extra_headers: Mapping[str, str] | None,
        timeout: httpx.Timeout | None,
    ) -> AsyncGenerator[StreamEvent, None]:
        failures = 0
        while True:
            error: APIConnectionError | None = None
            try:
                async with aclosing(
                    self._client._iterate(
                        build_stream_events(stream_id, last, extra_headers), STREAM_EVENTS, timeout
                    )
                ) as events:
                    async for event in events:
                        if event.id <= last:
                            continue
                        last, failures = event.id, 0
                        yield event
                        if isinstance(event, DoneEvent):
                            return
            except APIConnectionError as exc:
                error = exc
            failures += 1
            if failures > max_reattach:
                raise _gave_up(stream_id, failures, error)
            if failures > 1:
                import asyncio  # here, not at the top: a sync user never loads asyncio

                await asyncio.sleep(backoff_seconds(failures - 2))
