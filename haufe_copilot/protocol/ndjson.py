"""Incremental NDJSON decoding, sans I/O.

Bytes go in split anywhere (inside a line, inside a UTF-8 character, between CR and LF); lines
come out once complete, and `parse_object` reads one as a JSON object. Blank lines are skipped. A
line longer than the bound is refused as soon as the buffer passes it, so a server that never
sends a newline cannot make the client eat memory.
"""

from __future__ import annotations

import json
from typing import Any

from haufe_copilot.errors import APIResponseValidationError, ResponseTooLargeError

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024

_loads = json.loads


class NDJSONLines:
    """Feed bytes, get every non-blank line completed so far (bytes, line ending removed).

    For callers that parse a line straight into a model (pydantic's JSON parser is faster than
    `json.loads` and then validating the dict)."""

    __slots__ = ("_buffer", "_max_line_bytes")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes <= 0:
            raise ValueError("max_line_bytes must be positive")
        # A bytearray, so that a long line arriving in many small pieces is appended in place.
        self._buffer = bytearray()
        self._max_line_bytes = max_line_bytes

    def feed(self, data: bytes) -> list[bytes]:
        if type(data) is not bytes:  # a transport may hand over a bytearray or a memoryview
            data = bytes(data)
        end = data.rfind(b"\n")
        if end < 0:
            if data:
                self._buffer += data
                self._check_pending()
            return []
        if self._buffer:
            self._buffer += data[:end]
            complete = bytes(self._buffer)
        else:
            complete = data[:end]
        self._buffer = bytearray(data[end + 1 :])
        self._check_pending()
        lines = complete.split(b"\n")
        if len(complete) > self._max_line_bytes:
            for line in lines:
                self._check_line(line)
        return list(filter(bytes.strip, lines))  # blank lines are skipped

    def close(self) -> list[bytes]:
        """A last line that had no newline, if any."""
        line, self._buffer = bytes(self._buffer), bytearray()
        self._check_line(line)
        return [line] if line.strip() else []

    def _check_pending(self) -> None:
        if len(self._buffer) > self._max_line_bytes:
            size = len(self._buffer)
            self._buffer = bytearray()
            raise ResponseTooLargeError(
                f"A stream line exceeded {self._max_line_bytes} bytes ({size} bytes with no newline yet)."
            )

    def _check_line(self, line: bytes) -> None:
        if len(line) > self._max_line_bytes:
            raise ResponseTooLargeError(
                f"A stream line of {len(line)} bytes exceeded the bound of {self._max_line_bytes} bytes."
            )


def parse_object(line: bytes) -> dict[str, Any]:
    """One NDJSON line as a JSON object, or the typed error saying what is wrong with it."""
    try:
        obj = _loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        raise APIResponseValidationError(
            f"The stream sent a line that is not valid JSON: {_preview(line)}"
        ) from None
    except RecursionError:
        raise APIResponseValidationError(
            f"The stream sent a line of JSON nested too deeply to read: {_preview(line)}"
        ) from None
    if not isinstance(obj, dict):
        raise APIResponseValidationError(
            f"The stream sent a line that is not a JSON object: {_preview(line)}"
        )
    return obj


def _preview(line: bytes | bytearray) -> str:
    text = line.decode("utf-8", errors="replace").strip()
    return repr(text[:120] + ("…" if len(text) > 120 else ""))
