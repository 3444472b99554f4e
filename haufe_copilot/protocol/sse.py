"""Incremental Server-Sent Events decoding, sans I/O.

The OpenAI-compatible endpoints stream `text/event-stream`. This follows the WHATWG HTML
algorithm "Interpreting an event stream" to the letter, because proxies and servers do use its
corners: CR, LF and CRLF line ends (a CRLF may be split between two reads), a leading BOM,
comments as keep-alives, multi-line `data`, `id` and `retry`. Bytes go in split anywhere; events
come out once their blank line has arrived.

It sits on the hot path of streaming, so lines are found and split as bytes (CR and LF never
occur inside a multi-byte UTF-8 character) and each event's data is decoded once, at dispatch;
decoding whole lines with U+FFFD replacement gives exactly what the spec's incremental UTF-8
decoder gives. An event or a line that grows beyond the bound is refused as soon as the buffer
passes it, so a server that never ends an event cannot make the client eat memory.
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, NoReturn

from haufe_copilot.errors import APIResponseValidationError, ConfigurationError, ResponseTooLargeError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "ServerSentEvent"]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_loads = json.loads


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event.

    `id` is the stream's last event ID when the event was dispatched, as the spec's
    `MessageEvent.lastEventId`: it carries over from earlier events until the server sets another.
    `retry` is the reconnection time (ms) the server set within this event's block, if any.
    `own_id` says whether this event's block had an `id` field of its own (an event without one
    is a new event that keeps the last id, not a resend of it).
    """

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    # Not compared: two events are the same event whether or not the id came with it.
    own_id: bool = field(default=False, compare=False)

    def json(self) -> Any:
        """The data parsed as JSON; `APIResponseValidationError` if it is not JSON."""
        try:
            return _loads(self.data)
        except (ValueError, RecursionError):
            raise APIResponseValidationError(
                f"The stream sent an event ({self.event!r}) whose data is not valid JSON: "
                f"{_preview(self.data)}"
            ) from None


class SSEDecoder:
    """Feed bytes, get the events completed so far.

    One decoder may serve several connections of one logical stream: `close()` ends a connection
    (dropping what was unfinished) but keeps the last event ID, which the next connection's
    events carry as their `id`.
    """

    __slots__ = (
        "_at_start",
        "_block_has_id",
        "_data",
        "_data_size",
        "_event",
        "_event_retry",
        "_last_event_id",
        "_line",
        "_max_event_bytes",
        "_pending_id",
        "_skip_lf",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes <= 0:
            raise ConfigurationError("max_event_bytes must be positive")
        self._max_event_bytes = max_event_bytes
        # The bytes of an unfinished line. A bytearray, so that a long line arriving in many small
        # pieces is appended in place.
        self._line = bytearray()
        self._at_start = True  # before the first bytes that are not a prefix of a BOM
        self._skip_lf = False  # the previous chunk ended with CR: a leading LF ends no line
        # The event being built: its data lines (raw bytes, joined and decoded once at dispatch).
        self._data: list[bytes] = []
        self._data_size = 0
        self._event = ""
        self._event_retry: int | None = None
        self._block_has_id = False
        # The spec's "last event ID buffer" (set by `id`) and "last event ID string" (set from the
        # buffer by every blank line, whether or not its block had data, and kept until another
        # `id`; an empty `id` resets it, one containing NUL is ignored); "" in the spec is None here.
        self._pending_id: str | None = None
        self._last_event_id: str | None = None

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """The events that `data` completes (in order); raises `ResponseTooLargeError`."""
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 0x0A:
                data = data[1:]
                if not data:
                    return []
        if self._at_start:
            head = bytes(self._line) + data
            if len(head) < 3 and _BOM.startswith(head):
                self._line = bytearray(head)  # wait for the rest of a possible BOM
                return []
            self._at_start = False
            self._line = bytearray()
            data = head[3:] if head.startswith(_BOM) else head
        if b"\r" in data:
            # The unfinished line holds no CR or LF, so normalising this chunk alone is enough;
            # a CR at its very end may be the first half of a CRLF.
            self._skip_lf = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = data.rfind(b"\n")
        if end < 0:
            self._line += data
            if len(self._line) + self._data_size > self._max_event_bytes:
                self._refuse(len(self._line) + self._data_size)
            return []
        if len(data) - end - 1 > self._max_event_bytes:  # the unfinished line alone is too long
            self._refuse(len(data) - end - 1)
        lines: list[bytes] | list[bytearray]
        if self._line:
            self._line += data[:end]
            lines = self._line.split(b"\n")
        else:
            lines = data[:end].split(b"\n")
        self._line = bytearray(data[end + 1 :])
        events = self._process(lines)
        if len(self._line) + self._data_size > self._max_event_bytes:
            self._refuse(len(self._line) + self._data_size)
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of the stream: always [].

        Every complete event was returned by `feed()`. Per the spec, an event whose blank line
        never arrived is incomplete and is discarded, not dispatched (a cut connection must not
        look like a finished event); so is an `id` in that unfinished block. The decoder is ready
        for the next connection of the same stream.
        """
        self._line = bytearray()
        self._at_start = True
        self._skip_lf = False
        self._reset_event()
        self._pending_id = self._last_event_id
        return []

    def _process(self, lines: list[bytes] | list[bytearray]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        append = events.append
        max_bytes = self._max_event_bytes
        data = self._data
        for line in lines:
            if not line:
                # A blank line: dispatch.
                self._last_event_id = self._pending_id
                if data:
                    text = (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace")
                    append(
                        ServerSentEvent(
                            self._event or "message",
                            text,
                            self._pending_id,
                            self._event_retry,
                            self._block_has_id,
                        )
                    )
                    data.clear()
                    self._data_size = 0
                self._event = ""
                self._event_retry = None
                self._block_has_id = False
                continue
            if len(line) > max_bytes:
                self._refuse(len(line))
            if line.startswith(b"data:"):
                value = line[6:] if line[5:6] == b" " else line[5:]
                data.append(bytes(value))
                self._data_size += len(value) + 1
                if self._data_size > max_bytes:
                    self._refuse(self._data_size)
                continue
            colon = line.find(b":")
            if colon == 0:
                continue  # a comment
            if colon < 0:
                name, value = line, b""
            else:
                name = line[:colon]
                value = line[colon + 2 :] if line[colon + 1 : colon + 2] == b" " else line[colon + 1 :]
            if name == b"data":  # "data" with no colon: an empty data line
                data.append(b"")
                self._data_size += 1
                if self._data_size > max_bytes:
                    self._refuse(self._data_size)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
            elif name == b"id":
                if b"\0" not in value:
                    self._pending_id = value.decode("utf-8", "replace") or None
                    self._block_has_id = True
            elif name == b"retry" and value.isdigit():  # bytes.isdigit(): ASCII digits, not empty
                with suppress(ValueError):  # more digits than int() takes: no sensible time anyway
                    self._event_retry = int(value)
            # any other field is ignored
        return events

    def _reset_event(self) -> None:
        self._data.clear()
        self._data_size = 0
        self._event = ""
        self._event_retry = None
        self._block_has_id = False

    def _refuse(self, pending: int) -> NoReturn:
        self._line = bytearray()
        self._skip_lf = False
        self._reset_event()
        raise ResponseTooLargeError(
            f"A stream event exceeded max_event_bytes={self._max_event_bytes} "
            f"(at least {pending} bytes pending before its end)."
        )


def _preview(text: str) -> str:
    text = text.strip()
    return repr(text[:120] + ("…" if len(text) > 120 else ""))
