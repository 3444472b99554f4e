"""The fault catalogue and the cells that cross it: each fault says how it is produced and what
the client must do about it; a cell is one fault (or error class, or thread scenario) called one
way."""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from haufe_copilot import errors

from ..servers import RawRequest, RawServer, reply

Mode = Literal["blocking", "streaming"]
Flavor = Literal["sync", "async"]
Layer = Literal[
    "core", "langchain", "llama_index", "core-thread", "langchain-thread", "llama_index-thread", "platform"
]
ServerKind = Literal[
    "emulator",
    "refused",
    "reset",
    "malformed",
    "gzip_bomb",
    "html_bomb",
    "deep_json",
    "huge_detail",
    "empty",
    "blank_lines",
]

MODES: tuple[Mode, ...] = ("blocking", "streaming")
FLAVORS: tuple[Flavor, ...] = ("sync", "async")
ADAPTERS = ("langchain", "llama_index")
RETRY_AFTER_MS = 30
READ_TIMEOUT = 0.1
STALL = 0.6


# -- the faults ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class How:
    """How a fault is produced in one mode, and what the client does about it there."""

    server: ServerKind = "emulator"
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The client retries it (nothing had reached the caller, and the error is retryable).
    retried: bool = False
    #: Deltas the caller receives before the fault (their text must be the error's `partial`).
    partial_deltas: int = 0


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    error: type[errors.HaufeCopilotError]
    error_code: str | None
    status: int | None
    blocking: How | None
    streaming: How | None
    #: What the server asks to wait (Retry-After / retry-after-ms); None: the client's backoff.
    retry_after: float | None = None
    max_retries: int = 2
    read_timeout: float | None = None
    #: Retried even when the request continues a thread (SPEC §2: refused before sending, 429).
    retried_on_thread: bool = False
    #: The client's max_response_bytes and max_line_bytes for this fault (None: the defaults).
    limit: int | None = None
    #: Bounds on what the call may cost: peak RSS it adds (MB), its wall time (s).
    max_rss_mb: float | None = None
    max_call_seconds: float | None = None
    deadline: float | None = None

    def how(self, mode: Mode) -> How | None:
        return self.blocking if mode == "blocking" else self.streaming

    @property
    def expected(self) -> str:
        code = f" [{self.error_code}]" if self.error_code else ""
        status = f" {self.status}" if self.status else ""
        return f"{self.error.__name__}{status}{code}"


def _status_fault(
    name: str, error: type[errors.APIStatusError], status: int, *, code: str | None, summary: str = ""
) -> Fault:
    retried = error.retryable or status == 408
    headers = {"x-emulator-fault": name, "x-emulator-retry-after-ms": str(RETRY_AFTER_MS)}
    how = How(headers=headers, retried=retried)
    return Fault(
        name=name,
        summary=summary or f"{status} {{error_code: {name}}}",
        error=error,
        error_code=code,
        status=status,
        blocking=how,
        streaming=how,
        retry_after=RETRY_AFTER_MS / 1000 if retried else None,
        retried_on_thread=status == 429,
    )


_CATALOGUE: list[tuple[str, type[errors.APIStatusError], int]] = [
    ("incorrect_stack_ending", errors.BadRequestError, 400),
    ("unauthorized", errors.AuthenticationError, 401),
    ("attachment_access_forbidden", errors.PermissionDeniedError, 403),
    ("assistant_not_available", errors.PermissionDeniedError, 403),
    ("assistant_not_found", errors.NotFoundError, 404),
    ("resource_not_found", errors.NotFoundError, 404),
    ("conflict", errors.ConflictError, 409),
    ("attachment_not_unique", errors.ConflictError, 409),
    ("validation_error", errors.UnprocessableEntityError, 422),
    ("rate_limit_gateway", errors.RateLimitError, 429),
    ("internal_server_error", errors.InternalServerError, 500),
    ("attachment_document_not_reachable", errors.ServiceUnavailableError, 502),
    ("internal_service_error", errors.ServiceUnavailableError, 503),
    ("api_timeout_error", errors.GatewayTimeoutError, 504),
]


def _canned(kind: str) -> Fault:
    """A hostile server's answer (a raw `canned` server, see `CANNED`), the same in both modes."""
    retried = HOSTILE[kind][0] >= 500
    return Fault(
        name=kind,
        summary=HOSTILE[kind][1],
        error=HOSTILE[kind][2],
        error_code="internal_server_error" if kind == "huge_detail" else None,
        status=HOSTILE[kind][0] if retried else None,
        blocking=How(server=kind, retried=retried),  # type: ignore[arg-type]
        streaming=How(server=kind, retried=retried),  # type: ignore[arg-type]
        retry_after=RETRY_AFTER_MS / 1000 if retried else None,
        max_retries=1,
        limit=4 << 20 if kind == "gzip_bomb" else None,
        max_rss_mb=40 if kind == "gzip_bomb" else None,
        max_call_seconds=1.0 if kind == "html_bomb" else None,
    )


#: Hostile servers: status, summary, the error. Decoding as httpx does turns the bomb's first 64 KB
#: read into 64 MB at once; the old `<title>` expression took 23 s for 112 KB of this page.
HOSTILE: dict[str, tuple[int, str, type[errors.HaufeCopilotError]]] = {
    "gzip_bomb": (200, "200 gzip of 128 MiB zeros (128 KB sent), limits 4 MiB", errors.ResponseTooLargeError),
    "html_bomb": (502, "502 HTML: 1 MiB of `<title>` repeated", errors.ServiceUnavailableError),
    "deep_json": (200, "200 JSON (a line) nested 200k deep", errors.APIResponseValidationError),
    "huge_detail": (500, "500 with a 900 KB detail holding line breaks", errors.InternalServerError),
}
HOSTILE_FAULTS = [_canned(kind) for kind in HOSTILE]


def canned_server(kind: str) -> RawServer:
    retry = {"retry-after-ms": str(RETRY_AFTER_MS)}
    if kind == "gzip_bomb":
        zeros, packer = bytes(1 << 20), zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        bomb = b"".join(packer.compress(zeros) for _ in range(128)) + packer.flush()
        head = {"content-type": "application/json", "content-encoding": "gzip"}
        return RawServer("canned", head=head, payload=bomb)
    if kind == "html_bomb":
        page = b"<html><title>" + b"<title>" * ((1 << 20) // 7)
        return RawServer("canned", status=502, head={"content-type": "text/html", **retry}, payload=page)
    if kind == "deep_json":
        return RawServer("canned", head={"content-type": "application/json"}, payload=b"[" * 200_000 + b"\n")
    detail = "Fehler\nINFO haufe_copilot: forged\r\n" + "x" * 900_000
    body = json.dumps({"error_code": "internal_server_error", "detail": detail}).encode()
    return RawServer("canned", status=500, head={"content-type": "application/json", **retry}, payload=body)


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in [
        *(_status_fault(code, cls, status, code=code) for code, cls, status in _CATALOGUE),
        Fault(
            name="rate_limit_message",
            summary='429 {"message": ...} with Retry-After in seconds',
            error=errors.RateLimitError,
            error_code=None,
            status=429,
            blocking=How(
                headers={"x-emulator-fault": "rate_limit_message", "x-emulator-retry-after": "0.05"},
                retried=True,
            ),
            streaming=How(
                headers={"x-emulator-fault": "rate_limit_message", "x-emulator-retry-after": "0.05"},
                retried=True,
            ),
            retry_after=0.05,
            retried_on_thread=True,
        ),
        _status_fault("proxy_html", errors.ServiceUnavailableError, 502, code=None, summary="502 HTML page"),
        _status_fault("empty_503", errors.ServiceUnavailableError, 503, code=None, summary="503, no body"),
        _status_fault("status_408", errors.APIStatusError, 408, code=None, summary="408, no code"),
        _status_fault("status_413", errors.APIStatusError, 413, code=None, summary="413, no code"),
        Fault(
            name="error_line",
            summary="an {error_code} line after 3 deltas (HTTP 200)",
            error=errors.ServiceUnavailableError,
            error_code="internal_service_error",
            status=503,
            blocking=None,
            streaming=How(
                headers={
                    "x-emulator-stream-error": "internal_service_error",
                    "x-emulator-stream-error-after": "3",
                },
                partial_deltas=3,
            ),
        ),
        # An error inside a 200 body is the answer: the server took the request, so a retry could
        # store the turn twice. Not retried, on a thread or not.
        Fault(
            name="error_line_first",
            summary="an {error_code} line before the first delta (HTTP 200): not retried",
            error=errors.InternalServerError,
            error_code="internal_server_error",
            status=500,
            blocking=None,
            streaming=How(headers={"x-emulator-stream-error": "internal_server_error"}),
            max_retries=1,
        ),
        Fault(
            name="rate_limit_line_first",
            summary="a rate_limit_gateway line before the first delta (HTTP 200): not retried",
            error=errors.RateLimitError,
            error_code="rate_limit_gateway",
            status=429,
            blocking=None,
            streaming=How(headers={"x-emulator-stream-error": "rate_limit_gateway"}),
        ),
        Fault(
            name="cut_after_200",
            summary="HTTP 200, then the connection closed before the first delta: not retried",
            error=errors.APIConnectionError,
            error_code=None,
            status=None,
            blocking=None,
            streaming=How(headers={"x-emulator-cut-after": "0"}),
        ),
        Fault(
            name="empty_200",
            summary="HTTP 200 with an empty body (no answer, no chunk): an error, not ''",
            error=errors.APIResponseValidationError,
            error_code=None,
            status=None,
            blocking=How(server="empty"),
            streaming=How(server="empty"),
        ),
        Fault(
            name="connection_refused",
            summary="nothing listens on the port",
            error=errors.APIConnectionError,
            error_code=None,
            status=None,
            blocking=How(server="refused", retried=True),
            streaming=How(server="refused", retried=True),
            max_retries=1,
            retried_on_thread=True,
        ),
        Fault(
            name="reset_before_headers",
            summary="RST (SO_LINGER 0) after the request, before the status line",
            error=errors.APIConnectionError,
            error_code=None,
            status=None,
            blocking=How(server="reset", retried=True),
            streaming=How(server="reset", retried=True),
            max_retries=1,
        ),
        Fault(
            name="cut_mid_body",
            summary="connection closed mid-body (blocking: half the JSON; stream: after 3 deltas)",
            error=errors.APIConnectionError,
            error_code=None,
            status=None,
            blocking=How(headers={"x-emulator-cut-after": "0"}),
            streaming=How(headers={"x-emulator-cut-after": "3"}, partial_deltas=3),
        ),
        Fault(
            name="stall_past_read_timeout",
            summary=f"no first byte for {STALL} s, read timeout {READ_TIMEOUT} s",
            error=errors.APITimeoutError,
            error_code=None,
            status=None,
            blocking=How(headers={"x-emulator-delay": str(STALL)}, retried=True),
            streaming=How(headers={"x-emulator-delay": str(STALL)}, retried=True),
            max_retries=1,
            read_timeout=READ_TIMEOUT,
        ),
        *HOSTILE_FAULTS,
        Fault(
            name="malformed",
            summary="blocking: a 200 body that is not JSON; stream: a broken line after 3 deltas",
            error=errors.APIResponseValidationError,
            error_code=None,
            status=None,
            blocking=How(server="malformed"),
            streaming=How(headers={"x-emulator-malformed-after": "3"}, partial_deltas=3),
        ),
        Fault(
            name="stall_blank_lines",
            summary="2 deltas, then a blank line every 0.1 s forever; read timeout 0.5 s",
            error=errors.APITimeoutError,
            error_code=None,
            status=None,
            blocking=None,
            streaming=How(server="blank_lines", partial_deltas=2),
            read_timeout=0.5,
            max_call_seconds=0.5 + 1.0,
        ),
        Fault(
            name="deadline_passes",
            summary="deadline 0.6 s; blocking: no first byte for 2 s; stream: a delta every 0.1 s",
            error=errors.APITimeoutError,
            error_code=None,
            status=None,
            blocking=How(headers={"x-emulator-delay": "2"}),
            streaming=How(headers={"x-emulator-delta-delay": "0.1"}, partial_deltas=1),
            deadline=0.6,
            max_call_seconds=0.6 + 1.0,
        ),
    ]
}

#: For each error class, the fault that shows it through an adapter.
ADAPTER_FAULTS: dict[str, str] = {
    "AuthenticationError": "unauthorized",
    "PermissionDeniedError": "assistant_not_available",
    "NotFoundError": "assistant_not_found",
    "ConflictError": "conflict",
    "BadRequestError": "incorrect_stack_ending",
    "UnprocessableEntityError": "validation_error",
    "RateLimitError": "rate_limit_gateway",
    "InternalServerError": "internal_server_error",
    "ServiceUnavailableError": "internal_service_error",
    "GatewayTimeoutError": "api_timeout_error",
    "APIStatusError": "status_413",
    "APIConnectionError": "cut_mid_body",
    "APITimeoutError": "stall_past_read_timeout",
    "APIResponseValidationError": "malformed",
}

#: Core requests that continue a thread: retried only where the server cannot have taken them.
THREAD_FAULTS = (
    "internal_server_error",
    "internal_service_error",
    "api_timeout_error",
    "stall_past_read_timeout",
    "reset_before_headers",
    "rate_limit_gateway",
    "connection_refused",
    "error_line_first",
    "rate_limit_line_first",
    "cut_after_200",
)


@dataclass(frozen=True)
class ThreadScenario:
    """An adapter continues a thread and the continuation fails."""

    name: str
    summary: str
    fault: str
    #: Only the continuation fails (`x-emulator-fault-times: 1`); else every request does.
    once: bool
    error: type[errors.HaufeCopilotError] | None  # None: the answer comes from a new thread
    new_thread_attempts: int


THREAD_SCENARIOS: dict[str, ThreadScenario] = {
    s.name: s
    for s in [
        ThreadScenario(
            "reopen_after_500",
            "500 on the continuation: a new thread",
            "internal_server_error",
            True,
            None,
            1,
        ),
        ThreadScenario(
            "reopen_after_404", "the thread is gone (404): a new thread", "resource_not_found", True, None, 1
        ),
        ThreadScenario(
            "reopen_after_504", "504 on the continuation: a new thread", "api_timeout_error", True, None, 1
        ),
        ThreadScenario(
            "reopen_only_once",
            "500 on every request: one new thread (retried as a new request), then the error",
            "internal_server_error",
            False,
            errors.InternalServerError,
            3,
        ),
    ]
}


# -- the platform APIs: replays and ends of streams, against scripted raw servers -------------
#
# Completions and async streams, where a replay would run a completion twice or start a second
# stream, and where a stream must reach its end: each fault is a script of raw answers
# (`servers.RawServer("scripted")`), and a cell checks the error and the requests received.


def _sse_chunk(content: str) -> bytes:
    chunk = {"id": "c-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    chunk["choices"] = [{"index": 0, "delta": {"content": content}, "finish_reason": None}]
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _sse(body: bytes) -> bytes:
    return reply(200, "text/event-stream", body, chunked=True)


def _conflict_409(request: RawRequest) -> bytes:
    return reply(409, "application/json", b'{"error_code": "conflict", "detail": "exists"}')


def _status_of(request: RawRequest) -> bytes:
    stream_id = request.target.split("/")[-2]
    return reply(
        200, "application/json", json.dumps({"stream_id": stream_id, "status": "processing"}).encode()
    )


_RATE_LIMITED = b'{"error_code": "rate_limit_gateway", "detail": "slow down"}'
_NO_ID_EVENTS = (
    b'id: 1\nevent: status\ndata: {"status": "processing"}\n\n'
    b'event: delta\ndata: {"content": "ohne "}\n\n'
    b'id: 2\nevent: delta\ndata: {"content": "mit Id"}\n\n'
    b'id: 3\nevent: done\ndata: {"status": "completed"}\n\n'
)


@dataclass(frozen=True)
class PlatformFault:
    summary: str
    call: Literal["completion", "start", "events"]
    script: tuple[Any, ...]
    modes: tuple[Mode, ...]
    error: type[errors.HaufeCopilotError] | None
    #: The methods of the requests the server must receive, in order.
    requests: tuple[str, ...]
    #: The text the caller must receive (the deltas).
    text: str | None = None

    @property
    def expected(self) -> str:
        return self.error.__name__ if self.error else "an answer"


PLATFORM_FAULTS: dict[str, PlatformFault] = {
    "completion_error_event_first": PlatformFault(
        "HTTP 200, then an SSE `error` event (rate_limit_gateway): not retried",
        "completion",
        (_sse(b"event: error\ndata: " + _RATE_LIMITED + b"\n\n"),),
        ("blocking", "streaming"),
        errors.RateLimitError,
        ("POST",),
    ),
    "completion_error_chunk_first": PlatformFault(
        "HTTP 200, then a data chunk that is an {error_code} object: not retried",
        "completion",
        (_sse(b"data: " + _RATE_LIMITED + b"\n\n"),),
        ("blocking", "streaming"),
        errors.RateLimitError,
        ("POST",),
    ),
    "completion_without_done": PlatformFault(
        "two chunks, then the body ends without [DONE] or a finish_reason",
        "completion",
        (_sse(_sse_chunk("Die Frist ") + _sse_chunk("beträgt ")),),
        ("blocking", "streaming"),
        errors.APIConnectionError,
        ("POST",),
    ),
    "completion_reset_after_sending": PlatformFault(
        "RST after the request was sent: the completion may have run, so it is not re-sent",
        "completion",
        (None,),
        ("blocking", "streaming"),
        errors.APIConnectionError,
        ("POST",),
    ),
    "start_202_lost_to_a_reset": PlatformFault(
        "the start is taken and reset; the retry (same stream_id) gets 409: its handle, one stream",
        "start",
        (None, _conflict_409, _status_of),
        ("blocking",),
        None,
        ("POST", "POST", "GET"),
    ),
    "events_without_id_lines": PlatformFault(
        "async-stream events without an `id:` line between numbered ones: all delivered",
        "events",
        (_sse(_NO_ID_EVENTS),),
        ("streaming",),
        None,
        ("GET",),
        text="ohne mit Id",
    ),
}


# -- the cells ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    layer: Layer
    row: str  # a fault, an error class (adapters) or a thread scenario
    mode: Mode
    flavor: Flavor

    @property
    def id(self) -> str:
        return f"{self.layer}:{self.row}:{self.mode}:{self.flavor}"

    @property
    def fault(self) -> Fault:
        if self.layer in ADAPTERS:
            return FAULTS[ADAPTER_FAULTS[self.row]]
        if self.layer in ("langchain-thread", "llama_index-thread"):
            return FAULTS[THREAD_SCENARIOS[self.row].fault]
        return FAULTS[self.row]


def _cells() -> list[Cell]:
    cells = [
        Cell("core", fault.name, mode, flavor)
        for fault in FAULTS.values()
        for mode in MODES
        if fault.how(mode) is not None
        for flavor in FLAVORS
    ]
    for adapter in ADAPTERS:
        cells += [
            Cell(adapter, cls, mode, flavor)  # type: ignore[arg-type]
            for cls in ADAPTER_FAULTS
            for mode in MODES
            for flavor in FLAVORS
        ]
    cells += [
        Cell("core-thread", name, mode, flavor)
        for name in THREAD_FAULTS
        for mode in MODES
        if FAULTS[name].how(mode) is not None
        for flavor in FLAVORS
    ]
    for adapter in ADAPTERS:
        cells += [
            Cell(f"{adapter}-thread", name, mode, flavor)  # type: ignore[arg-type]
            for name in THREAD_SCENARIOS
            for mode in MODES
            for flavor in FLAVORS
        ]
    cells += [
        Cell("platform", name, mode, flavor)
        for name, fault in PLATFORM_FAULTS.items()
        for mode in fault.modes
        for flavor in FLAVORS
    ]
    return cells


CELLS: list[Cell] = _cells()


def max_retries(cell: Cell) -> int:
    """The cell's `max_retries`: the fault's, except that an adapter cell whose fault waits the
    client's backoff (no Retry-After) runs with 0: the backoff is measured in the core's cells."""
    fault = cell.fault
    how = fault.how(cell.mode)
    if cell.layer in ADAPTERS and how is not None and how.retried and fault.retry_after is None:
        return 0
    return fault.max_retries
