"""Assembling streamed tool calls from their fragments, sans I/O.

A streamed tool call arrives in pieces: the first fragment of a call carries its `index`, `id`
and name, later ones only more of the arguments' JSON text, and the fragments of parallel calls
are interleaved, told apart by `index`. OpenAI-compatible chunks nest this
(`{"index", "id", "function": {"name", "arguments"}}`). Servers differ in the details (a
missing index, a name repeated in every fragment, no id at all), so the accumulator tolerates
them, and it refuses only what cannot be a fragment, with the package's typed error.
`partial_arguments()` shows the arguments while their JSON is still incomplete.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from haufe_copilot.errors import APIResponseValidationError

__all__ = ["AssembledToolCall", "ToolCallAccumulator", "partial_arguments"]

_loads = json.loads


@dataclass(frozen=True)
class AssembledToolCall:
    """One tool call, complete: `arguments` is the JSON text exactly as the model wrote it."""

    index: int
    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict ("" is {}); `APIResponseValidationError` if not a JSON object."""
        if not self.arguments.strip():
            return {}
        try:
            value = _loads(self.arguments)
        except (ValueError, RecursionError):
            raise APIResponseValidationError(
                f"The arguments of the tool call {self.name!r} ({self.id}) are not valid JSON: "
                f"{_preview(self.arguments)}"
            ) from None
        if not isinstance(value, dict):
            raise APIResponseValidationError(
                f"The arguments of the tool call {self.name!r} ({self.id}) are not a JSON object: "
                f"{_preview(self.arguments)}"
            )
        return value


@dataclass
class _PendingCall:
    id: str | None = None
    name: str = ""
    # The argument fragments, joined once in calls(): appending stays linear for long arguments.
    arguments: list[str] = field(default_factory=list)


class ToolCallAccumulator:
    """Collects tool-call fragments; `calls()` gives the calls assembled so far, by index.

    Tolerated:

    - a fragment without `index` belongs to the most recent call (index 0 if there is none yet),
      unless it brings an `id` different from that call's: then it starts a new call after the
      highest index so far (servers that stream whole calls without an index);
    - `id` and name may arrive in any fragment; the first id of a call wins (a repeated id is
      ignored); a call whose id never arrives gets `call_<index>`;
    - a name fragment that repeats the call's whole name so far is ignored (servers that repeat
      the name in every fragment); other name fragments are appended, as pieces of a long name;
    - empty or null `arguments`, and (in the OpenAI shape) arguments sent as a JSON object
      rather than as text.
    """

    __slots__ = ("_calls", "_last_index")

    def __init__(self) -> None:
        self._calls: dict[int, _PendingCall] = {}
        self._last_index: int | None = None

    def add(
        self,
        *,
        index: int | None,
        id: str | None = None,
        name: str | None = None,
        arguments: str | None = None,
    ) -> None:
        """Add one fragment, already taken apart."""
        if index is None:
            if self._last_index is None:
                index = 0
            else:
                index = self._last_index
                current = self._calls[index].id
                if id and current is not None and id != current:
                    index = max(self._calls) + 1
        call = self._calls.get(index)
        if call is None:
            call = self._calls[index] = _PendingCall()
        self._last_index = index
        if id and call.id is None:
            call.id = id
        if name and name != call.name:
            call.name += name
        if arguments:
            call.arguments.append(arguments)

    def add_openai_delta(self, delta: Mapping[str, Any]) -> None:
        """Add one element of `choices[].delta.tool_calls` of a `chat.completion.chunk`."""
        if not isinstance(delta, Mapping):
            raise APIResponseValidationError(f"A tool call fragment is not a JSON object: {_preview(delta)}")
        function = delta.get("function")
        if function is None:
            function = {}
        elif not isinstance(function, Mapping):
            raise APIResponseValidationError(
                f"The `function` of a tool call fragment is not a JSON object: {_preview(delta)}"
            )
        self.add(
            index=_index(delta),
            id=_text(delta, delta, "id"),
            name=_text(function, delta, "name"),
            arguments=_arguments(function, delta),
        )

    def calls(self) -> list[AssembledToolCall]:
        """The calls so far, ordered by index (a call's `name` is "" if none has arrived)."""
        return [
            AssembledToolCall(
                index=index,
                id=call.id if call.id is not None else f"call_{index}",
                name=call.name,
                arguments="".join(call.arguments),
            )
            for index, call in sorted(self._calls.items())
        ]


def _index(fragment: Mapping[str, Any]) -> int | None:
    index = fragment.get("index")
    if index is None or (isinstance(index, int) and not isinstance(index, bool) and index >= 0):
        return index
    raise APIResponseValidationError(
        f"The `index` of a tool call fragment is not a non-negative integer: {_preview(fragment)}"
    )


def _text(source: Mapping[str, Any], fragment: Mapping[str, Any], key: str) -> str | None:
    value = source.get(key)
    if value is None or isinstance(value, str):
        return value
    raise APIResponseValidationError(
        f"The `{key}` of a tool call fragment is not a string: {_preview(fragment)}"
    )


def _arguments(source: Mapping[str, Any], fragment: Mapping[str, Any]) -> str | None:
    value = source.get("arguments")
    if isinstance(value, Mapping):  # some servers send the whole arguments as an object
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, str):
        return value
    raise APIResponseValidationError(
        f"The `arguments` of a tool call fragment are not a string: {_preview(fragment)}"
    )


def _preview(value: object) -> str:
    text = value.strip() if isinstance(value, str) else repr(value)
    return repr(text[:120] + ("…" if len(text) > 120 else ""))


# partial_arguments: a tolerant recursive-descent parser for a prefix of a JSON object.

_WHITESPACE = re.compile(r"[ \t\n\r]*")
# As much of a number as a prefix can hold, and a complete JSON number.
_NUMBER_PREFIX = re.compile(r"-?(?:0|[1-9][0-9]*)?(?:\.[0-9]*)?(?:[eE][-+]?[0-9]*)?")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
# The characters and whole escapes of a string's text (up to its closing quote), and an escape that
# the end of the text cut short.
_STRING_PART = re.compile(r'(?:[^"\\]+|\\u[0-9a-fA-F]{4}|\\[^u])*')
_CUT_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{0,3})?")
_LITERALS = {"true": True, "false": False, "null": None}
_MAX_DEPTH = 100
_scanstring: Any = json.decoder.scanstring  # type: ignore[attr-defined]


class _Stop(Exception):
    """Nothing more can be read: the text ended, or it is not JSON from here on."""


def partial_arguments(text: str) -> dict[str, Any]:
    """The arguments an incomplete JSON object text holds so far, best effort; never raises.

    For showing arguments while they stream: `{"city": "Ber` gives `{"city": "Ber"}` and
    `{"a": 1, "b": [1, 2` gives `{"a": 1, "b": [1, 2]}`. A key whose value has not begun is left
    out, as are an unfinished `true`/`false`/`null` and a number with no digit yet; an unfinished
    number counts as far as it goes. A complete object gives what `json.loads` gives. Text that is
    not the start of a JSON object gives {}, and text that stops being JSON gives what came before.
    """
    parser = _PartialParser(text)
    try:
        parser.skip_whitespace()
        if not text.startswith("{", parser.pos):
            return {}
        parser.object_into(parser.top, 0)
        return parser.top
    except _Stop:
        return parser.top
    except (ValueError, RecursionError):  # not reachable by design; the promise is "never raises"
        return parser.top


class _PartialParser:
    """Each method reads one value into its container, and raises `_Stop` where the text ends."""

    __slots__ = ("pos", "text", "top")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.top: dict[str, Any] = {}

    def skip_whitespace(self) -> None:
        match = _WHITESPACE.match(self.text, self.pos)
        self.pos = match.end() if match else self.pos
        if self.pos >= len(self.text):
            raise _Stop

    def object_into(self, result: dict[str, Any], depth: int) -> None:
        self.pos += 1  # the {
        self.skip_whitespace()
        if self.text[self.pos] == "}":
            self.pos += 1
            return
        while True:
            if self.text[self.pos] != '"':
                raise _Stop
            key, complete = self.string()
            if not complete:
                raise _Stop
            self.skip_whitespace()
            if self.text[self.pos] != ":":
                raise _Stop
            self.pos += 1
            self.skip_whitespace()
            self.value(result, key, depth)
            self.skip_whitespace()
            char = self.text[self.pos]
            self.pos += 1
            if char == "}":
                return
            if char != ",":
                raise _Stop
            self.skip_whitespace()

    def array_into(self, result: list[Any], depth: int) -> None:
        self.pos += 1  # the [
        self.skip_whitespace()
        if self.text[self.pos] == "]":
            self.pos += 1
            return
        while True:
            self.value(result, None, depth)
            self.skip_whitespace()
            char = self.text[self.pos]
            self.pos += 1
            if char == "]":
                return
            if char != ",":
                raise _Stop
            self.skip_whitespace()

    def value(self, parent: dict[str, Any] | list[Any], key: str | None, depth: int) -> None:
        """Read the value at `pos` into `parent` (at `key` of an object), before reading on if it
        is a container.

        A container is stored first and filled in place, so that what was read of it survives a
        `_Stop` from deeper down. Raises `_Stop` after storing an unfinished string or number.
        """
        text = self.text
        char = text[self.pos]

        def store(value: Any) -> None:
            if isinstance(parent, list):
                parent.append(value)
            elif key is not None:
                parent[key] = value

        if char == "{":
            if depth >= _MAX_DEPTH:
                raise _Stop
            obj: dict[str, Any] = {}
            store(obj)
            self.object_into(obj, depth + 1)
        elif char == "[":
            if depth >= _MAX_DEPTH:
                raise _Stop
            items: list[Any] = []
            store(items)
            self.array_into(items, depth + 1)
        elif char == '"':
            string, complete = self.string()
            store(string)
            if not complete:
                raise _Stop
        elif char == "-" or "0" <= char <= "9":
            self.number(store)
        else:
            for word, literal in _LITERALS.items():
                if text.startswith(word, self.pos):
                    self.pos += len(word)
                    store(literal)
                    return
            raise _Stop  # an unfinished literal, or not JSON

    def string(self) -> tuple[str, bool]:
        """The string at `pos` (at its quote), and whether it was complete."""
        text = self.text
        try:
            value, self.pos = _scanstring(text, self.pos + 1)
            return value, True
        except ValueError:
            pass
        # Unterminated (or invalid): if the text ends inside it, read what is there, leaving out
        # an escape cut short and a high surrogate still waiting for its pair.
        body = text[self.pos + 1 :]
        complete = _STRING_PART.match(body)
        end = complete.end() if complete else 0
        if end < len(body) and not _CUT_ESCAPE.fullmatch(body, end):
            raise _Stop  # a closing quote after something invalid, or a bad escape: not JSON
        try:
            value, _ = _scanstring(body[:end] + '"', 0)
        except ValueError:
            raise _Stop from None
        if value and "\ud800" <= value[-1] <= "\udbff":
            value = value[:-1]
        self.pos = len(text)
        return value, False

    def number(self, store: Callable[[Any], None]) -> None:
        text = self.text
        prefix = _NUMBER_PREFIX.match(text, self.pos)
        end = prefix.end() if prefix else self.pos
        match = _NUMBER.match(text, self.pos)
        if match is None:
            raise _Stop  # "-" alone, or not a number
        literal = match.group()
        try:
            value = float(literal) if any(c in literal for c in ".eE") else int(literal)
        except ValueError:  # more digits than int() accepts
            raise _Stop from None
        if end >= len(text):  # the number may go on: show what there is
            store(value)
            raise _Stop
        if match.end() != end:
            raise _Stop  # e.g. "1." followed by more text: not JSON
        self.pos = end
        store(value)
