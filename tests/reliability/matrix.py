"""The fault matrix: every error of SPEC §2 and every transport fault, crossed with the ways to call.

The matrix is data. `FAULTS` says how each fault is produced (by the emulator's `x-emulator-*`
headers, or by a small raw-socket server for what the emulator cannot do: a reset before the
status line, a blocking answer that is not JSON; or a port where nothing listens) and what the
client must do about it (the exception class, `error_code`, status, whether it is retried, what
the server asks to wait). `CELLS` crosses it:

- core: every fault x {blocking, streaming} x {sync, async} on the assistant API;
- adapters: for each error class, one propagation check per adapter (LangChain
  `ChatHaufeCopilot`, LlamaIndex `HaufeCopilot`) x {blocking, streaming} x {sync, async};
- the thread rule: a core request that continues a thread is retried only where the server
  cannot have taken it (a refused connection, 429); an adapter whose continuation fails opens a
  new thread with the whole history, once.

`run_cell(cell, env)` runs one cell against a running emulator and returns a `CellResult`: pass
or fail, the problems, and what was observed: the exception's class, `error_code` and status, the
attempts (counted on the server; on the client where nothing listens), the waits between them
(announced by the client and measured with `time.monotonic()`), the text delivered before the
error and the error's `partial`, the connections left open (sockets and pool, see `probes`),
and asyncio's complaints. `tests/reliability/test_reliability_matrix.py` parametrizes pytest over `CELLS`;
`python -m tests.reliability.matrix --write docs/reliability.md` runs them all, prints the table
with its totals and writes it into the document.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import secrets
import statistics
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient, errors
from haufe_emulator import DEFAULT_ASSISTANT_ID, EmulatorConfig, EmulatorServer

from . import probes
from .report import DOC, markdown_table, text_table, write_section
from .servers import RawRequest, RawServer, refused_port, reply

QUESTION = "Welche Kündigungsfristen gelten während der Probezeit?"
FOLLOW_UP = "Gilt das auch für Teilzeitkräfte?"
ASSISTANT_ID = DEFAULT_ASSISTANT_ID

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
# A measured wait may exceed the announced one by scheduling; it may never be shorter.
WAIT_SLACK = 0.3


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
    return cells


CELLS: list[Cell] = _cells()


# -- what a cell observed ---------------------------------------------------------------------


@dataclass
class Observed:
    error: str | None = None
    error_code: str | None = None
    status: int | None = None
    message: str = ""
    attempts: int = 0  # on the server (on the client where nothing listens)
    client_attempts: int = 0
    announced: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    delivered: str = ""
    partial: str = ""
    open: int = 0
    connections: str = ""
    sockets_after_close: int = 0
    complaints: list[str] = field(default_factory=list)
    thread_action: str | None = None
    thread_reason: str | None = None
    old_thread_attempts: int = 0
    new_thread_attempts: int = 0
    new_thread_messages: int = 0
    rss_growth_mb: float = 0.0
    call_seconds: float = 0.0
    log_lines: list[str] = field(default_factory=list)
    cause_headers: str = ""


@dataclass
class CellResult:
    cell: Cell
    passed: bool
    problems: list[str]
    observed: Observed
    seconds: float

    def explain(self) -> str:
        o = self.observed
        return (
            f"{self.cell.id}: {'pass' if self.passed else 'FAIL'} "
            + ("; ".join(self.problems) if self.problems else "")
            + f"\n  observed: {o.error} code={o.error_code} status={o.status} attempts={o.attempts} "
            f"(client {o.client_attempts}) announced={_ms(o.announced)} waits={_ms(o.waits)} "
            f"delivered={len(o.delivered)} partial={len(o.partial)} {o.connections} "
            f"thread={o.thread_action} old/new={o.old_thread_attempts}/{o.new_thread_attempts}"
            f"\n  message: {o.message[:300]}"
        )


def _ms(values: Sequence[float]) -> str:
    return "/".join(f"{v * 1000:.0f}" for v in values) or "-"


# -- the environment: the emulator and the raw servers ---------------------------------------


def _empty_200(request: RawRequest) -> bytes:
    kind = "application/x-ndjson" if request.target.split("?")[0].endswith("/stream") else "application/json"
    return reply(200, kind, b"", chunked=True)


class Env:
    """The servers the cells run against; a context manager (it owns the raw servers)."""

    def __init__(self, emulator: EmulatorServer, api_key: str) -> None:
        self.emulator = emulator
        self.api_key = api_key
        self.reset = RawServer("reset")
        self.malformed = RawServer("malformed")
        self.canned = {kind: canned_server(kind) for kind in HOSTILE}
        self.canned["empty"] = RawServer("scripted", script=[_empty_200])
        prelude = b"".join(
            b'{"message_id": "m-1", "thread_id": "t-1", "delta": {"content": "%s "}}\n' % word
            for word in (b"Die", b"Probezeit")
        )
        self.blank_lines = RawServer("trickle", prelude=prelude, piece=b"\n", interval=0.1, give_up=3.0)
        self.refused = refused_port()
        #: The thread core continuation cells continue: a real one, since stream faults fire
        #: after the emulator has looked it up.
        self.thread_id = ""

    def __enter__(self) -> Env:
        self.reset.__enter__()
        self.malformed.__enter__()
        for server in self.canned.values():
            server.__enter__()
        with HaufeCopilotClient(api_key=self.api_key, base_url=self.emulator.url) as client:
            self.thread_id = client.assistant.chat(assistant_id=ASSISTANT_ID, messages=_messages()).thread_id
        self.blank_lines.__enter__()
        # Each async cell collects garbage so that a task or connection it left behind complains
        # in that cell. With both frameworks loaded a full collection takes ~0.15 s: freeze what
        # exists now (imports, the servers) so that a collection scans only what a cell made.
        import langchain_haufe  # noqa: F401
        import llama_index_haufe  # noqa: F401

        gc.collect()
        gc.freeze()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        gc.unfreeze()
        self.reset.close()
        self.malformed.close()
        for server in self.canned.values():
            server.close()
        self.blank_lines.close()

    def target(self, kind: ServerKind) -> tuple[str, int, Callable[[str], int] | None]:
        """base URL, port, and how to count the attempts carrying a marker (None: nothing listens)."""
        if kind == "emulator":
            state = self.emulator.state
            return (
                self.emulator.url,
                self.emulator.port,
                lambda marker: sum(
                    1 for r in list(state.requests) if r.headers.get("x-test-marker") == marker
                ),
            )
        if kind == "refused":
            return f"http://127.0.0.1:{self.refused}", self.refused, None
        raw = {"reset": self.reset, "blank_lines": self.blank_lines}
        server = raw[kind] if kind in raw else self.canned.get(kind, self.malformed)
        start = server.request_count()
        return server.url, server.port, lambda _marker: server.request_count() - start

    def requests_with(self, marker: str) -> list[Any]:
        return [r for r in list(self.emulator.state.requests) if r.headers.get("x-test-marker") == marker]


# -- running one cell -------------------------------------------------------------------------


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": QUESTION}]


@dataclass
class _Call:
    """One call's outcome as the caller saw it."""

    delivered: list[str] = field(default_factory=list)
    error: BaseException | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _record_error(call: _Call, exc: BaseException, observed: Observed) -> None:
    call.error = exc
    observed.error = type(exc).__name__
    observed.error_code = getattr(exc, "error_code", None)
    observed.status = getattr(exc, "status_code", None)
    observed.message = str(exc)
    observed.partial = getattr(exc, "partial", "") or ""
    cause = exc.__cause__
    if isinstance(cause, httpx.RequestError):
        observed.cause_headers = repr(cause.request.headers.multi_items())


# core ----------------------------------------------------------------------------------------


def _core_kwargs(cell: Cell, env: Env, headers: Mapping[str, str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"assistant_id": ASSISTANT_ID, "messages": _messages(), "extra_headers": headers}
    if cell.layer == "core-thread":
        kwargs["thread_id"] = env.thread_id
    return kwargs


def max_retries(cell: Cell) -> int:
    """The cell's `max_retries`: the fault's, except that an adapter cell whose fault waits the
    client's backoff (no Retry-After) runs with 0: the backoff is measured in the core's cells."""
    fault = cell.fault
    how = fault.how(cell.mode)
    if cell.layer in ADAPTERS and how is not None and how.retried and fault.retry_after is None:
        return 0
    return fault.max_retries


def _client_options(env: Env, base_url: str, cell: Cell) -> dict[str, Any]:
    fault = cell.fault
    timeout = httpx.Timeout(fault.read_timeout, connect=2.0) if fault.read_timeout else None
    limits = {"max_response_bytes": fault.limit, "max_line_bytes": fault.limit} if fault.limit else {}
    return {
        "api_key": env.api_key,
        "base_url": base_url,
        "max_retries": max_retries(cell),
        "timeout": timeout,
        **limits,
        "deadline": fault.deadline,
    }


def _core_sync(
    cell: Cell, env: Env, base_url: str, port: int, headers: Mapping[str, str], o: Observed
) -> _Call:
    call = _Call()
    client = HaufeCopilotClient(**_client_options(env, base_url, cell))
    try:
        try:
            if cell.mode == "blocking":
                client.assistant.chat(**_core_kwargs(cell, env, headers))
            else:
                for chunk in client.assistant.stream(**_core_kwargs(cell, env, headers)):
                    call.delivered.append(chunk.delta.content)
        except Exception as exc:
            _record_error(call, exc, o)
        state = probes.connections(port, probes.sync_pool(client))
        o.open, o.connections = state.leaked, str(state)
    finally:
        client.close()
    return call


async def _core_async(
    cell: Cell, env: Env, base_url: str, port: int, headers: Mapping[str, str], o: Observed
) -> _Call:
    call = _Call()
    async with AsyncHaufeCopilotClient(**_client_options(env, base_url, cell)) as client:
        try:
            if cell.mode == "blocking":
                await client.assistant.chat(**_core_kwargs(cell, env, headers))
            else:
                async for chunk in client.assistant.stream(**_core_kwargs(cell, env, headers)):
                    call.delivered.append(chunk.delta.content)
        except Exception as exc:
            _record_error(call, exc, o)
        state = probes.connections(port, probes.async_pool(client))
        o.open, o.connections = state.leaked, str(state)
    return call


# adapters ------------------------------------------------------------------------------------


def _adapter(cell: Cell, env: Env, base_url: str) -> Any:
    options = _client_options(env, base_url, cell)
    if cell.layer.startswith("langchain"):
        from langchain_haufe import ChatHaufeCopilot

        return ChatHaufeCopilot(assistant_id=ASSISTANT_ID, **options)
    from llama_index_haufe import HaufeCopilot

    return HaufeCopilot(assistant_id=ASSISTANT_ID, **options)


def _history(layer: str, first: Any) -> list[Any]:
    """[question, the first answer (with its thread metadata), follow-up] in the adapter's types."""
    if first is None:
        if layer.startswith("langchain"):
            return [("human", QUESTION)]
        from llama_index.core.llms import ChatMessage

        return [ChatMessage(role="user", content=QUESTION)]
    if layer.startswith("langchain"):
        from langchain_core.messages import HumanMessage

        return [HumanMessage(QUESTION), first, HumanMessage(FOLLOW_UP)]
    from llama_index.core.llms import ChatMessage

    return [ChatMessage(role="user", content=QUESTION), first, ChatMessage(role="user", content=FOLLOW_UP)]


def _langchain_metadata(message: Any) -> dict[str, Any]:
    return dict(message.response_metadata)


def _adapter_sync(
    model: Any, cell: Cell, history: list[Any], headers: Mapping[str, str], call: _Call
) -> None:
    langchain = cell.layer.startswith("langchain")
    if cell.mode == "blocking":
        if langchain:
            call.metadata = _langchain_metadata(model.invoke(history, extra_headers=dict(headers)))
        else:
            call.metadata = dict(model.chat(history, extra_headers=dict(headers)).message.additional_kwargs)
        return
    if langchain:
        for chunk in model.stream(history, extra_headers=dict(headers)):
            call.delivered.append(str(chunk.content))
            call.metadata.update(chunk.response_metadata)
    else:
        for response in model.stream_chat(history, extra_headers=dict(headers)):
            call.delivered.append(response.delta or "")
            call.metadata.update(response.message.additional_kwargs)


async def _adapter_async(
    model: Any, cell: Cell, history: list[Any], headers: Mapping[str, str], call: _Call
) -> None:
    langchain = cell.layer.startswith("langchain")
    if cell.mode == "blocking":
        if langchain:
            call.metadata = _langchain_metadata(await model.ainvoke(history, extra_headers=dict(headers)))
        else:
            response = await model.achat(history, extra_headers=dict(headers))
            call.metadata = dict(response.message.additional_kwargs)
        return
    if langchain:
        async for chunk in model.astream(history, extra_headers=dict(headers)):
            call.delivered.append(str(chunk.content))
            call.metadata.update(chunk.response_metadata)
    else:
        async for response in await model.astream_chat(history, extra_headers=dict(headers)):
            call.delivered.append(response.delta or "")
            call.metadata.update(response.message.additional_kwargs)


def _first_answer(model: Any, layer: str) -> Any:
    """A first answer on a new thread, as the adapter's message type (sync)."""
    if layer.startswith("langchain"):
        return model.invoke(QUESTION)
    return model.chat(_history(layer, None)).message


async def _afirst_answer(model: Any, layer: str) -> Any:
    if layer.startswith("langchain"):
        return await model.ainvoke(QUESTION)
    return (await model.achat(_history(layer, None))).message


def _adapter_run_sync(
    cell: Cell, env: Env, base_url: str, port: int, headers: Mapping[str, str], o: Observed
) -> _Call:
    call = _Call()
    model = _adapter(cell, env, base_url)
    try:
        history = _history(cell.layer, None)
        if cell.layer.endswith("-thread"):
            history = _history(cell.layer, _first_answer(model, cell.layer))
        try:
            _adapter_sync(model, cell, history, headers, call)
        except Exception as exc:
            _record_error(call, exc, o)
        state = probes.connections(port, probes.sync_pool(model.client))
        o.open, o.connections = state.leaked, str(state)
    finally:
        model.client.close()
    return call


async def _adapter_run_async(
    cell: Cell, env: Env, base_url: str, port: int, headers: Mapping[str, str], o: Observed
) -> _Call:
    call = _Call()
    model = _adapter(cell, env, base_url)
    try:
        history = _history(cell.layer, None)
        if cell.layer.endswith("-thread"):
            history = _history(cell.layer, await _afirst_answer(model, cell.layer))
        try:
            await _adapter_async(model, cell, history, headers, call)
        except Exception as exc:
            _record_error(call, exc, o)
        state = probes.connections(port, probes.async_pool(model.async_client))
        o.open, o.connections = state.leaked, str(state)
    finally:
        await model.async_client.aclose()
    return call


# the runner ------------------------------------------------------------------------------------


def run_cell(cell: Cell, env: Env) -> CellResult:
    """Run one cell against `env` and judge it."""
    if cell.layer == "platform":
        return run_platform_cell(cell)
    started = time.monotonic()
    fault = cell.fault
    thread_scenario = THREAD_SCENARIOS.get(cell.row) if cell.layer.endswith("-thread") else None
    how = fault.how(cell.mode) if thread_scenario is None else How(headers={"x-emulator-fault": fault.name})
    assert how is not None, cell
    base_url, port, count = env.target(how.server)
    marker = secrets.token_hex(8)
    headers = {
        **how.headers,
        "x-emulator-retry-after-ms": str(RETRY_AFTER_MS),
        "x-emulator-fault-id": marker,
        "x-test-marker": marker,
    }
    if "x-emulator-retry-after" in how.headers:  # this fault asks in seconds
        del headers["x-emulator-retry-after-ms"]
    if thread_scenario is not None and thread_scenario.once:
        headers["x-emulator-fault-times"] = "1"
    o = Observed()
    adapter = cell.layer not in ("core", "core-thread")
    rss_before = probes.reset_peak_rss()
    call_started = time.monotonic()
    with probes.client_log() as log, probes.loop_complaints() as complaints:
        if cell.flavor == "sync":
            runner = _adapter_run_sync if adapter else _core_sync
            call = runner(cell, env, base_url, port, headers, o)
        else:
            arunner = _adapter_run_async if adapter else _core_async
            call = asyncio.run(arunner(cell, env, base_url, port, headers, o))
            gc.collect()  # a task or generator left behind complains when it is collected
    o.call_seconds = time.monotonic() - call_started
    o.rss_growth_mb = (probes.peak_rss_kb() - rss_before) / 1024 if rss_before else 0.0
    o.log_lines = [record.getMessage() for _, record in log.records]
    o.complaints = complaints.relevant
    o.delivered = "".join(call.delivered)
    o.sockets_after_close = len(probes.client_sockets(port))
    o.client_attempts = len(log.attempts)
    o.announced = log.announced_waits
    o.waits = log.measured_waits
    if thread_scenario is not None:
        requests = env.requests_with(marker)
        old = [r for r in requests if r.query.get("thread_id")]
        new = [r for r in requests if not r.query.get("thread_id")]
        o.old_thread_attempts, o.new_thread_attempts = len(old), len(new)
        o.new_thread_messages = len(new[-1].body.get("messages", [])) if new else 0
        o.attempts = len(requests)
        o.thread_action = call.metadata.get("thread_action")
        o.thread_reason = call.metadata.get("thread_reason")
        problems = _judge_thread_scenario(cell, thread_scenario, fault, o)
    else:
        o.attempts = count(marker) if count is not None else o.client_attempts
        problems = _judge(cell, fault, how, o)
    return CellResult(cell, not problems, problems, o, time.monotonic() - started)


# -- judging -----------------------------------------------------------------------------------


def expected_attempts(cell: Cell, fault: Fault, how: How) -> int:
    retried = fault.retried_on_thread if cell.layer == "core-thread" else how.retried
    return 1 + max_retries(cell) if retried else 1


def _judge(cell: Cell, fault: Fault, how: How, o: Observed) -> list[str]:
    problems: list[str] = []
    if o.error != fault.error.__name__:
        problems.append(f"raised {o.error}, expected {fault.error.__name__}")
    if o.error_code != fault.error_code:
        problems.append(f"error_code {o.error_code!r}, expected {fault.error_code!r}")
    if o.status != fault.status:
        problems.append(f"status {o.status}, expected {fault.status}")
    attempts = expected_attempts(cell, fault, how)
    if o.attempts != attempts:
        problems.append(f"{o.attempts} attempts reached the server, expected {attempts}")
    if o.client_attempts != attempts:
        problems.append(f"the client sent {o.client_attempts} attempts, expected {attempts}")
    problems += _judge_waits(fault, attempts - 1, o)
    problems += _judge_partial(cell, how, o)
    problems += _judge_connections(o)
    problems += _judge_hostile(fault, o)
    return problems


def _judge_hostile(fault: Fault, o: Observed) -> list[str]:
    """What every cell must hold against a hostile server: bounded cost, inert text, no credential."""
    problems = []
    if fault.max_rss_mb is not None and o.rss_growth_mb > fault.max_rss_mb:
        problems.append(f"peak RSS grew by {o.rss_growth_mb:.0f} MB, bound {fault.max_rss_mb} MB")
    if fault.max_call_seconds is not None and o.call_seconds > fault.max_call_seconds:
        problems.append(f"the call took {o.call_seconds:.2f} s, bound {fault.max_call_seconds} s")
    for where, lines in (("message", [o.message]), ("log", o.log_lines)):
        if any(len(line) > 2000 or any(ord(c) < 32 for c in line) for line in lines):
            problems.append(f"the {where} quotes server text unbounded or with control characters")
    if o.cause_headers and "<redacted>" not in o.cause_headers:
        problems.append(f"the credential is on the httpx cause's request: {o.cause_headers[:200]}")
    return problems


def _judge_waits(fault: Fault, retries: int, o: Observed) -> list[str]:
    problems = []
    if len(o.announced) != retries or len(o.waits) != retries:
        return [f"{len(o.announced)} waits announced and {len(o.waits)} measured, expected {retries}"]
    for n, (announced, measured) in enumerate(zip(o.announced, o.waits, strict=True)):
        if fault.retry_after is not None:
            if abs(announced - fault.retry_after) > 1e-6:
                problems.append(
                    f"wait {n + 1}: {announced:.3f} s announced, the server asked {fault.retry_after} s"
                )
        else:
            low, high = 0.5 * 2**n * 0.75, 0.5 * 2**n
            if not low - 1e-9 <= announced <= high + 1e-9:
                problems.append(f"wait {n + 1}: {announced:.3f} s is not the backoff {low:.3f}-{high:.3f} s")
        if not announced - 0.003 <= measured <= announced + WAIT_SLACK:
            problems.append(f"wait {n + 1}: measured {measured:.3f} s for {announced:.3f} s announced")
    return problems


def _judge_partial(cell: Cell, how: How, o: Observed) -> list[str]:
    problems = []
    if o.partial != o.delivered:
        problems.append(f"partial holds {len(o.partial)} characters, the caller got {len(o.delivered)}")
    if cell.mode == "streaming" and how.partial_deltas and not o.delivered:
        problems.append(f"nothing was delivered before a fault after {how.partial_deltas} deltas")
    if not how.partial_deltas and o.delivered:
        problems.append(f"{len(o.delivered)} characters delivered before a fault that comes first")
    return problems


def _judge_connections(o: Observed) -> list[str]:
    problems = []
    if o.open:
        problems.append(f"connections left open after the call: {o.connections}")
    if o.sockets_after_close:
        problems.append(f"{o.sockets_after_close} sockets still open after the client was closed")
    if o.complaints:
        problems.append(f"asyncio complained: {o.complaints}")
    return problems


def _judge_thread_scenario(cell: Cell, scenario: ThreadScenario, fault: Fault, o: Observed) -> list[str]:
    problems: list[str] = []
    if o.old_thread_attempts != 1:
        problems.append(
            f"the continuation was sent {o.old_thread_attempts} times on its thread, expected once"
        )
    if o.new_thread_attempts != scenario.new_thread_attempts:
        problems.append(
            f"{o.new_thread_attempts} requests on a new thread, expected {scenario.new_thread_attempts}"
        )
    if o.new_thread_messages != 3:
        problems.append(
            f"the new thread got {o.new_thread_messages} messages, expected the whole history (3)"
        )
    if scenario.error is None:
        if o.error is not None:
            problems.append(f"raised {o.error}: {o.message[:200]}")
        if o.thread_action != "new" or not (o.thread_reason or "").startswith("thread_failed"):
            problems.append(
                f"thread_action {o.thread_action!r} ({o.thread_reason!r}), expected new/thread_failed"
            )
        if o.announced:
            problems.append(f"waits announced {_ms(o.announced)} where nothing was retried")
        if cell.mode == "streaming" and not o.delivered:
            problems.append("the new thread's answer was not streamed")
    else:
        if o.error != scenario.error.__name__:
            problems.append(f"raised {o.error}, expected {scenario.error.__name__}")
        if o.error_code != fault.error_code:
            problems.append(f"error_code {o.error_code!r}, expected {fault.error_code!r}")
        problems += _judge_waits(fault, scenario.new_thread_attempts - 1, o)
        if o.partial != o.delivered or o.delivered:
            problems.append(
                f"delivered {len(o.delivered)} / partial {len(o.partial)} characters, expected none"
            )
    problems += _judge_connections(o)
    return problems


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

_TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


def _platform_sync(fault: PlatformFault, mode: Mode, client: HaufeCopilotClient, call: _Call) -> None:
    if fault.call == "start":
        client.streams.start(messages=_messages())
    elif fault.call == "events":
        for event in client.streams.events("s-1"):
            call.delivered.append(getattr(event, "content", "") if event.event == "delta" else "")
    elif mode == "blocking":  # with tools a blocking completion streams and assembles
        client.completions.create(messages=_messages(), tools=[_TOOL] if fault.script[0] else None)
    else:
        for chunk in client.completions.create(messages=_messages(), stream=True):
            call.delivered.append(chunk.choices[0].delta.content or "" if chunk.choices else "")


async def _platform_async(
    fault: PlatformFault, mode: Mode, client: AsyncHaufeCopilotClient, call: _Call
) -> None:
    if fault.call == "start":
        await client.streams.start(messages=_messages())
    elif fault.call == "events":
        async for event in client.streams.events("s-1"):
            call.delivered.append(getattr(event, "content", "") if event.event == "delta" else "")
    elif mode == "blocking":
        await client.completions.create(messages=_messages(), tools=[_TOOL] if fault.script[0] else None)
    else:
        async for chunk in await client.completions.create(messages=_messages(), stream=True):
            call.delivered.append(chunk.choices[0].delta.content or "" if chunk.choices else "")


def run_platform_cell(cell: Cell) -> CellResult:
    started = time.monotonic()
    fault = PLATFORM_FAULTS[cell.row]
    o, call = Observed(), _Call()
    with RawServer("scripted", script=fault.script) as server:
        options = {"api_key": "sk-matrix-platform", "base_url": server.url, "max_retries": 2}
        try:
            if cell.flavor == "sync":
                with HaufeCopilotClient(**options) as client:
                    _platform_sync(fault, cell.mode, client, call)
            else:

                async def run() -> None:
                    async with AsyncHaufeCopilotClient(**options) as client:
                        await _platform_async(fault, cell.mode, client, call)

                asyncio.run(run())
        except errors.HaufeCopilotError as exc:
            _record_error(call, exc, o)
        requests = list(server.requests)
    o.attempts, o.delivered = len(requests), "".join(call.delivered)
    problems = []
    if o.error != (fault.error.__name__ if fault.error else None):
        problems.append(f"raised {o.error}, expected {fault.expected}: {o.message[:200]}")
    if tuple(r.method for r in requests) != fault.requests:
        problems.append(
            f"the server received {[r.method for r in requests]}, expected {list(fault.requests)}"
        )
    if fault.call == "start" and len({r.target for r in requests if r.method == "POST"}) != 1:
        problems.append(f"the starts named different streams: {[r.target for r in requests]}")
    if cell.mode == "streaming" and o.error and o.partial != o.delivered:
        problems.append(f"partial holds {len(o.partial)} characters, the caller got {len(o.delivered)}")
    if fault.text is not None and o.delivered != fault.text:
        problems.append(f"the caller got {o.delivered!r}, expected {fault.text!r}")
    return CellResult(cell, not problems, problems, o, time.monotonic() - started)


CELLS += [
    Cell("platform", name, mode, flavor)
    for name, fault in PLATFORM_FAULTS.items()
    for mode in fault.modes
    for flavor in FLAVORS
]


# -- the table ---------------------------------------------------------------------------------


def _mark(result: CellResult | None) -> str:
    if result is None:
        return "—"
    return "pass" if result.passed else "FAIL"


COLUMNS = [(mode, flavor) for mode in MODES for flavor in FLAVORS]


def _sections(results: Mapping[str, CellResult]) -> list[tuple[str, list[str], list[list[str]]]]:
    def get(layer: str, row: str, mode: str, flavor: str) -> CellResult | None:
        return results.get(f"{layer}:{row}:{mode}:{flavor}")

    core_rows = [
        [name, fault.summary, fault.expected, *(_mark(get("core", name, m, f)) for m, f in COLUMNS)]
        for name, fault in FAULTS.items()
    ]
    adapter_rows = [
        [
            cls,
            ADAPTER_FAULTS[cls],
            *(_mark(get(adapter, cls, m, f)) for adapter in ADAPTERS for m, f in COLUMNS),
        ]
        for cls in ADAPTER_FAULTS
    ]
    thread_rows = [
        [
            name,
            "retried" if FAULTS[name].retried_on_thread else "not retried",
            *(_mark(get("core-thread", name, m, f)) for m, f in COLUMNS),
        ]
        for name in THREAD_FAULTS
    ]
    scenario_rows = [
        [name, s.summary, *(_mark(get(f"{a}-thread", name, m, f)) for a in ADAPTERS for m, f in COLUMNS)]
        for name, s in THREAD_SCENARIOS.items()
    ]
    cols = [f"{m} {f}" for m, f in COLUMNS]
    both = [f"{a} {m[0]}/{f[0]}" for a in ("LC", "LI") for m, f in COLUMNS]
    return [
        ("Core client (assistant API)", ["fault", "how", "expected", *cols], core_rows),
        ("Adapters: each error class propagates", ["error class", "fault", *both], adapter_rows),
        (
            "Thread rule, core: a continuation is retried only where the server cannot have it",
            ["fault", "on a thread", *cols],
            thread_rows,
        ),
        (
            "Thread rule, adapters: a failed continuation reopens once",
            ["scenario", "what", *both],
            scenario_rows,
        ),
        (
            "Platform APIs: no replay runs a completion twice or starts a second stream; streams end",
            ["fault", "what", "expected", *cols],
            [
                [name, f.summary, f.expected, *(_mark(get("platform", name, m, fl)) for m, fl in COLUMNS)]
                for name, f in PLATFORM_FAULTS.items()
            ],
        ),
    ]


def totals(results: Sequence[CellResult]) -> str:
    passed = sum(r.passed for r in results)
    by_layer = Counter(r.cell.layer for r in results)
    failed_by_layer = Counter(r.cell.layer for r in results if not r.passed)
    parts = ", ".join(
        f"{layer} {by_layer[layer] - failed_by_layer[layer]}/{by_layer[layer]}" for layer in by_layer
    )
    return f"{passed} of {len(results)} cells pass ({parts})"


def waits_summary(results: Sequence[CellResult]) -> str:
    """How the waits between attempts went: what was asked, announced and measured."""
    asked: list[float] = []
    backoff: list[tuple[float, float]] = []
    for result in results:
        if result.cell.layer == "platform":  # nothing there is retried
            continue
        o = result.observed
        server_asked = result.cell.fault.retry_after is not None
        for announced, measured in zip(o.announced, o.waits, strict=False):
            if server_asked:
                asked.append(measured - announced)
            else:
                backoff.append((announced, measured - announced))
    parts = []
    if asked:
        low, high, median = (f"{v * 1000:+.1f}" for v in (min(asked), max(asked), statistics.median(asked)))
        parts.append(
            f"{len(asked)} waits the server asked for (Retry-After 0.05 s, retry-after-ms 30): each "
            f"announced exactly as asked, measured {low} to {high} ms from it (median {median} ms)"
        )
    if backoff:
        first = [a for a, _ in backoff if a <= 0.5]
        late = [d for _, d in backoff]
        parts.append(
            f"{len(backoff)} backoff waits (no Retry-After): {min(first):.3f}-{max(first):.3f} s for the "
            f"first retry (0.5 s less up to 25 % jitter), measured {min(late) * 1000:+.1f} to "
            f"{max(late) * 1000:+.1f} ms from the announced wait"
        )
    return "; ".join(parts) + "."


def text_report(results: Sequence[CellResult]) -> str:
    by_id = {r.cell.id: r for r in results}
    out = []
    for title, header, rows in _sections(by_id):
        out += [title, text_table(header, rows), ""]
    failures = [r for r in results if not r.passed]
    if failures:
        out.append("Failures:")
        out += [r.explain() for r in failures]
        out.append("")
    out.append("Waits: " + waits_summary(results))
    out.append("Totals: " + totals(results))
    return "\n".join(out)


def markdown_report(results: Sequence[CellResult], seconds: float) -> str:
    by_id = {r.cell.id: r for r in results}
    out = [
        "## Fault matrix",
        "",
        f"`make faults` on {time.strftime('%Y-%m-%d')}: **{totals(results)}**, in {seconds:.0f} s.",
        "",
        "Each cell calls the client against the emulator (or a raw socket server, for a reset before "
        "the status line, a blocking answer that is not JSON and an empty 200; or a port where nothing "
        "listens; the platform rows run against scripted raw answers and check the error and the "
        "requests the server received) "
        "and checks: the exception's class, `error_code` and status; the attempts that reached the "
        "server (and that the client sent); the waits between them, announced by the client and "
        "measured (`Retry-After` / `retry-after-ms` honoured, else the 0.5 s x 2^n backoff); that "
        "the text delivered before an interrupted stream is the error's `partial`; that no "
        "connection is left open (this process's sockets to the server beyond the pool's idle "
        "keep-alive connections, and busy pool connections); and that asyncio complains of "
        "nothing. Retried faults fire on every attempt, so each cell ends in its error after "
        "`max_retries` (2; 1 for faults that wait the backoff, and 0 in the adapters' cells for those: "
        "the backoff is measured in the core's).",
        "",
        "Columns: blocking (`chat`) or streaming (`stream`), sync or async client. Adapters: LC = "
        "LangChain `ChatHaufeCopilot` (`invoke`/`stream`, `ainvoke`/`astream`), LI = LlamaIndex "
        "`HaufeCopilot` (`chat`/`stream_chat`, `achat`/`astream_chat`); b/s = blocking/streaming, "
        "s/a = sync/async.",
        "",
        f"Waits: {waits_summary(results)}",
        "",
    ]
    for title, header, rows in _sections(by_id):
        out += [f"### {title}", "", markdown_table(header, rows), ""]
    detail_rows = [
        [
            r.cell.id,
            "pass" if r.passed else "FAIL",
            r.observed.error or f"answer ({r.observed.thread_action})",
            r.observed.error_code or "",
            r.observed.status or "",
            r.observed.attempts,
            _ms(r.observed.announced),
            _ms(r.observed.waits),
            f"{len(r.observed.delivered)}/{len(r.observed.partial)}",
            r.observed.open,
            f"{r.seconds:.2f}",
        ]
        for r in results
    ]
    out += [
        "### Every cell, as observed",
        "",
        "<details><summary>attempts, waits (ms, announced and measured), delivered/partial "
        "characters, connections left open</summary>",
        "",
        markdown_table(
            [
                "cell",
                "result",
                "raised",
                "error_code",
                "status",
                "attempts",
                "announced",
                "measured",
                "delivered/partial",
                "open",
                "s",
            ],
            detail_rows,
        ),
        "",
        "</details>",
    ]
    failures = [r for r in results if not r.passed]
    if failures:
        out += ["", "### Failures", "", "```", *(r.explain() for r in failures), "```"]
    return "\n".join(out)


# -- the command -----------------------------------------------------------------------------


def run_all(env: Env, cells: Sequence[Cell] = CELLS, *, progress: bool = False) -> list[CellResult]:
    results = []
    for cell in cells:
        result = run_cell(cell, env)
        results.append(result)
        if progress:
            sys.stderr.write("." if result.passed else "F")
            sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, metavar="PATH", help=f"write the matrix into PATH (e.g. {DOC})")
    parser.add_argument("-k", metavar="TEXT", help="only the cells whose id contains TEXT")
    args = parser.parse_args(argv)
    cells = [c for c in CELLS if args.k is None or args.k in c.id]
    api_key = "sk-matrix-" + secrets.token_hex(16)
    started = time.monotonic()
    with (
        EmulatorServer(EmulatorConfig(api_keys=frozenset({api_key}))) as emulator,
        Env(emulator, api_key) as env,
    ):
        results = run_all(env, cells, progress=True)
    seconds = time.monotonic() - started
    print(text_report(results))
    print(f"({seconds:.1f} s)")
    if args.write is not None:
        write_section(args.write, "matrix", markdown_report(results, seconds))
        print(f"written to {args.write}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
