"""The emulator's error catalogue and fault injection.

Every error body is the documented one (docs/contract.md, Errors), sent with its status. Faults are set
for the whole server (`FaultPlan` in `EmulatorConfig`, CLI flags) or per request with headers,
which win over the server's plan:

- `x-emulator-fault: <name>`: answer with that error: any `error_code` of the catalogue, or
  `rate_limit_message` (429 `{"message": ...}`), `proxy_html` (502 HTML page), `empty_503`
  (503, no body), `status_<NNN>` (status NNN, no code);
- `x-emulator-fault-times: <n>`: only the first n requests with the same `x-emulator-fault-id`
  (or fault name) get the plan's faults (the error, and the stream faults below: a cut, a
  malformed line, an error line); later ones are served normally;
- `x-emulator-retry-after: <value>` / `x-emulator-retry-after-ms: <ms>`: send `Retry-After` /
  `retry-after-ms` with the error;
- `x-emulator-delay: <seconds>`: wait before the first byte (the status line);
- `x-emulator-delta-delay: <seconds>`: wait before each streamed delta (a slow stream);
- `x-emulator-cut-after: <n>`: after n deltas close the connection abruptly, with no terminating
  chunk (a blocking answer: after half its body);
- `x-emulator-malformed-after: <n>`: after n deltas send a line that is not JSON;
- `x-emulator-stream-error: <error_code>`: after `x-emulator-stream-error-after` (default 0)
  deltas send that `{error_code, detail}` line and end the stream;
- `x-emulator-stall: <seconds>` with `x-emulator-stall-after: <n>`: after n deltas the stream
  sends nothing for that long, then goes on (a stalled answer: a client's read timeout fires).

Not a fault but a switch for benchmarks: `x-emulator-bulk: <n>` makes a streamed answer n
deltas of one word, prepared in advance and written in large writes, so that a benchmark
measures the client and not the server; on the completions endpoint,
`x-emulator-bulk-tool-fragments: <m>` then adds one tool call (where the question asks for one)
whose arguments come in m fragments; `x-emulator-bulk-delta-chars: <k>` makes each assistant
delta k characters long (default 5, one word).

Every parameter has a range (`FAULT_BOUNDS`): a value that is not a number is a 400
`emulator_bad_fault_header`, a number outside its range a 422 naming the header and its range,
so that one request cannot make the emulator sleep forever or build an answer of gigabytes. The
bounds are far above what the tests and benchmarks use.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

#: error_code -> (status, detail), as the service documents them (docs/contract.md, Errors).
ERROR_CATALOGUE: dict[str, tuple[int, Any]] = {
    "incorrect_stack_ending": (400, "The last message in the stack must be a user, tool, or system message."),
    "unauthorized": (401, "Missing or invalid API key"),
    "attachment_access_forbidden": (403, "You do not have permission to access this attachment."),
    "assistant_not_available": (403, "Assistant not available to your tenant"),
    "assistant_not_found": (404, "Assistant not found"),
    "resource_not_found": (404, "Resource not found"),
    "conflict": (409, "Conflict - File is infected with a virus or it's still being processed"),
    "attachment_not_unique": (409, "A thread can contain only a single attachment."),
    "validation_error": (
        422,
        [{"loc": ["body", "assistant_id"], "message": "Field required", "type": "missing"}],
    ),
    "rate_limit_gateway": (429, "Rate limit exceeded"),
    "internal_server_error": (500, "Internal Server Error"),
    "attachment_document_not_reachable": (
        502,
        "The file attachment service does not respond as expected. Please try again later.",
    ),
    "internal_service_error": (
        503,
        "An internal service required for processing the request is currently unavailable. "
        "Please try again later.",
    ),
    "api_timeout_error": (504, "OpenAI API request timed out."),
}

#: Faults that are not an error_code of the catalogue.
SPECIAL_FAULTS = ("rate_limit_message", "proxy_html", "empty_503", "status_<NNN>")

_PROXY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    b"</center><hr><center>nginx</center></body></html>"
)


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    body: bytes
    content_type: str = "application/json"


def error_body(error_code: str, detail: Any = None) -> dict[str, Any]:
    status_detail = ERROR_CATALOGUE[error_code][1]
    return {"error_code": error_code, "detail": status_detail if detail is None else detail}


def error_answer(name: str, detail: Any = None) -> ErrorAnswer:
    """The answer for a catalogue error or a special fault (see the module's table)."""
    if name in ERROR_CATALOGUE:
        status = ERROR_CATALOGUE[name][0]
        return ErrorAnswer(status, _json(error_body(name, detail)))
    if name == "rate_limit_message":
        return ErrorAnswer(429, _json({"message": "Rate limit exceeded!"}))
    if name == "proxy_html":
        return ErrorAnswer(502, _PROXY_PAGE, "text/html")
    if name == "empty_503":
        return ErrorAnswer(503, b"", "text/plain")
    if name.startswith("status_") and name[7:].isdigit() and 400 <= int(name[7:]) <= 599:
        return ErrorAnswer(int(name[7:]), _json({"detail": f"Emulated status {name[7:]}"}))
    raise ValueError(f"unknown fault {name!r}; known: {sorted(ERROR_CATALOGUE)} and {SPECIAL_FAULTS}")


def is_known_fault(name: str) -> bool:
    try:
        error_answer(name)
    except ValueError:
        return False
    return True


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Bound:
    """The accepted range of one fault parameter: numbers from `low` to `high`; text of at most
    `high` characters (`low` unused)."""

    low: float
    high: float
    unit: str = ""

    def describe(self) -> str:
        if self.unit == "characters":
            return f"at most {self.high:,.0f} characters"
        unit = f" {self.unit}" if self.unit else ""
        return f"from {self.low:g} to {self.high:,.0f}{unit}"


#: The range of every `x-emulator-*` parameter, by `FaultPlan` field.
FAULT_BOUNDS: dict[str, Bound] = {
    "fault": Bound(0, 64, "characters"),
    "fault_times": Bound(0, 1_000_000),
    "fault_id": Bound(0, 256, "characters"),
    "retry_after": Bound(0, 64, "characters"),
    "retry_after_ms": Bound(0, 64, "characters"),
    "delay": Bound(0, 60, "seconds"),
    "delta_delay": Bound(0, 10, "seconds"),
    "cut_after": Bound(0, 1_000_000),
    "malformed_after": Bound(0, 1_000_000),
    "stream_error": Bound(0, 64, "characters"),
    "stream_error_after": Bound(0, 1_000_000),
    "stall": Bound(0, 60, "seconds"),
    "stall_after": Bound(0, 1_000_000),
    # an async stream's events are kept in its log: 10k of them are a few MB
    "delta_count": Bound(0, 10_000),
    # bulk answers are generated as they are sent, in 64 KiB writes: only their length grows
    "bulk": Bound(0, 1_000_000),
    "bulk_tool_fragments": Bound(0, 100_000),
    "bulk_delta_chars": Bound(1, 1_048_576),
}


def header_name(field_name: str) -> str:
    return "x-emulator-" + field_name.replace("_", "-")


class FaultHeaderOutOfRange(ValueError):
    """A fault parameter outside its `FAULT_BOUNDS` range (the emulator answers 422)."""

    def __init__(self, header: str, raw: str, bound: Bound) -> None:
        self.header = header
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        super().__init__(f"{header} must be {bound.describe()}, not {shown!r}")


def _checked(field_name: str, kind: str, raw: str) -> Any:
    """The header's value as its field's type, within its bound."""
    header = header_name(field_name)
    bound = FAULT_BOUNDS[field_name]
    if kind.startswith(("float", "int")):
        try:
            number: float = float(raw) if kind.startswith("float") else int(raw)
        except ValueError:
            raise ValueError(f"{header} must be a number, not {raw!r}") from None
        if not (math.isfinite(number) and bound.low <= number <= bound.high):
            raise FaultHeaderOutOfRange(header, raw, bound)
        return number
    if len(raw) > bound.high:
        raise FaultHeaderOutOfRange(header, raw, bound)
    return raw


@dataclass(frozen=True)
class FaultPlan:
    """What to break in one answer; every field off by default."""

    fault: str | None = None
    fault_times: int | None = None
    fault_id: str | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    delay: float = 0.0
    delta_delay: float = 0.0
    cut_after: int | None = None
    malformed_after: int | None = None
    stream_error: str | None = None
    stream_error_after: int = 0
    stall: float = 0.0
    stall_after: int | None = None
    bulk: int | None = None
    bulk_tool_fragments: int = 0
    bulk_delta_chars: int = 5
    #: Async streams only: the answer is exactly this many delta events.
    delta_count: int | None = None

    def without_faults(self) -> FaultPlan:
        """This plan with its errors and stream faults off (delays are kept)."""
        return replace(self, fault=None, cut_after=None, malformed_after=None, stream_error=None)

    def pause_before(self, delta: int) -> float:
        """Seconds to wait before sending the delta with this index (from 0): `delta_delay`,
        and the stall where it comes."""
        return self.delta_delay + (self.stall if delta == self.stall_after else 0.0)

    def with_headers(self, headers: Mapping[str, str]) -> FaultPlan:
        """This plan with the request's `x-emulator-*` headers applied on top.

        `FaultHeaderOutOfRange` for a value outside its bound, `ValueError` for one that is not
        a number or not a known fault."""
        changes: dict[str, Any] = {}
        for spec in fields(self):
            raw = headers.get(header_name(spec.name))
            if raw is None:
                continue
            kind = spec.type if isinstance(spec.type, str) else str(spec.type)
            changes[spec.name] = _checked(spec.name, kind, raw)
        plan = replace(self, **changes) if changes else self
        if plan.fault is not None and not is_known_fault(plan.fault):
            raise ValueError(f"unknown fault {plan.fault!r}")
        if plan.stream_error is not None and plan.stream_error not in ERROR_CATALOGUE:
            raise ValueError(
                f"a stream error must be an error_code of the catalogue, not {plan.stream_error!r}"
            )
        return plan
