"""Running one cell: the servers it runs against (`Env`), the call made the cell's way (core or
adapter, blocking or streaming, sync or async), what it observed, then its judges' verdict."""

from __future__ import annotations

import asyncio
import gc
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient, errors
from haufe_emulator import DEFAULT_ASSISTANT_ID, EmulatorServer

from .. import probes
from ..servers import RawRequest, RawServer, refused_port, reply
from .faults import (
    HOSTILE,
    PLATFORM_FAULTS,
    RETRY_AFTER_MS,
    THREAD_SCENARIOS,
    Cell,
    How,
    Mode,
    PlatformFault,
    ServerKind,
    canned_server,
    max_retries,
)
from .judges import CellResult, Observed, judge, judge_platform, judge_thread_scenario

QUESTION = "Welche Kündigungsfristen gelten während der Probezeit?"
FOLLOW_UP = "Gilt das auch für Teilzeitkräfte?"
ASSISTANT_ID = DEFAULT_ASSISTANT_ID


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


def _note_connections(o: Observed, port: int, pool: Any) -> None:
    """The connections the call left open, right after it (see `probes.connections`)."""
    state = probes.connections(port, pool)
    o.open, o.connections = state.leaked, str(state)


# core ----------------------------------------------------------------------------------------


def _core_kwargs(cell: Cell, env: Env, headers: Mapping[str, str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"assistant_id": ASSISTANT_ID, "messages": _messages(), "extra_headers": headers}
    if cell.layer == "core-thread":
        kwargs["thread_id"] = env.thread_id
    return kwargs


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
        _note_connections(o, port, probes.sync_pool(client))
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
        _note_connections(o, port, probes.async_pool(client))
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
        thread = cell.layer.endswith("-thread")
        history = _history(cell.layer, _first_answer(model, cell.layer) if thread else None)
        try:
            _adapter_sync(model, cell, history, headers, call)
        except Exception as exc:
            _record_error(call, exc, o)
        _note_connections(o, port, probes.sync_pool(model.client))
    finally:
        model.client.close()
    return call


async def _adapter_run_async(
    cell: Cell, env: Env, base_url: str, port: int, headers: Mapping[str, str], o: Observed
) -> _Call:
    call = _Call()
    model = _adapter(cell, env, base_url)
    try:
        thread = cell.layer.endswith("-thread")
        history = _history(cell.layer, await _afirst_answer(model, cell.layer) if thread else None)
        try:
            await _adapter_async(model, cell, history, headers, call)
        except Exception as exc:
            _record_error(call, exc, o)
        _note_connections(o, port, probes.async_pool(model.async_client))
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
        problems = judge_thread_scenario(cell, thread_scenario, fault, o)
    else:
        o.attempts = count(marker) if count is not None else o.client_attempts
        problems = judge(cell, fault, how, o)
    return CellResult(cell, not problems, problems, o, time.monotonic() - started)


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
    problems = judge_platform(cell, fault, o, requests)
    return CellResult(cell, not problems, problems, o, time.monotonic() - started)
