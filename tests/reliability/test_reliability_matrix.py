"""The fault matrix of `tests.reliability.matrix`, one pytest case per cell, and proof that its
checks would catch what they look for: a leaked connection, a skipped wait, a wrong retry."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient, errors
from haufe_emulator import EmulatorServer
from haufe_emulator.faults import ERROR_CATALOGUE
from tests.conftest import ASSISTANT_ID, SESSION_API_KEY, user
from tests.reliability import probes
from tests.reliability.matrix.__main__ import main as matrix_main
from tests.reliability.matrix.faults import ADAPTER_FAULTS, CELLS, FAULTS, Cell
from tests.reliability.matrix.runner import Env, run_cell


@pytest.fixture(scope="module")
def env(emulator: EmulatorServer) -> Iterator[Env]:
    with Env(emulator, SESSION_API_KEY) as environment:
        yield environment


@pytest.mark.parametrize("cell", CELLS, ids=lambda cell: cell.id)
def test_cell(cell: Cell, env: Env) -> None:
    result = run_cell(cell, env)
    assert result.passed, result.explain()


# -- the matrix covers what it claims ---------------------------------------------------------


def test_the_matrix_covers_every_error_of_spec_section_2() -> None:
    assert set(ERROR_CATALOGUE) <= set(FAULTS)
    assert {"rate_limit_message", "proxy_html", "empty_503", "status_408", "status_413"} <= set(FAULTS)
    transport = {"connection_refused", "reset_before_headers", "cut_mid_body", "stall_past_read_timeout"}
    assert transport | {"malformed"} <= set(FAULTS)
    classes = {
        cls.__name__
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.APIError) and cls is not errors.APIError
    }
    assert classes - {"ResponseTooLargeError"} == set(
        ADAPTER_FAULTS
    )  # too large: tests/test_reliability_secrets
    core = [c for c in CELLS if c.layer == "core"]
    stream_only = {name for name, fault in FAULTS.items() if fault.blocking is None}
    assert stream_only == {
        "error_line",
        "error_line_first",
        "rate_limit_line_first",
        "cut_after_200",
        "stall_blank_lines",
    }
    assert len(core) == 2 * (2 * len(FAULTS) - len(stream_only))  # sync/async x modes
    assert {"stall_blank_lines", "deadline_passes"} <= set(FAULTS)  # calls end in bounded time
    assert len(CELLS) == len({c.id for c in CELLS})


# -- the connection check catches a leak -----------------------------------------------------


def test_the_connection_check_sees_a_stream_left_open(emulator: EmulatorServer) -> None:
    with HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url) as client:
        assert probes.connections(emulator.port, probes.sync_pool(client)).leaked == 0
        stream = client.assistant.stream(
            assistant_id=ASSISTANT_ID, messages=user(), extra_headers={"x-emulator-delta-delay": "0.02"}
        )
        next(stream)  # a stream begun and left open: a leak until it is closed
        state = probes.connections(emulator.port, probes.sync_pool(client))
        assert state.leaked == 1 and state.sockets == ("ESTABLISHED",) and state.pool.busy == 1
        stream.close()
        state = probes.settle(emulator.port, probes.sync_pool(client))
        assert state.leaked == 0 and state.pool.idle <= 1  # at most a keep-alive connection


async def test_the_connection_check_sees_an_async_stream_left_open(emulator: EmulatorServer) -> None:
    async with AsyncHaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url) as client:
        stream = client.assistant.stream(
            assistant_id=ASSISTANT_ID, messages=user(), extra_headers={"x-emulator-delta-delay": "0.02"}
        )
        await stream.__anext__()
        assert (await probes.asettle(emulator.port, probes.async_pool(client), timeout=0.05)).leaked == 1
        await stream.aclose()
        assert (await probes.asettle(emulator.port, probes.async_pool(client))).leaked == 0


def test_the_connection_check_sees_a_socket_outside_the_pool_and_a_half_closed_one(
    emulator: EmulatorServer,
) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port)) as raw:
        assert probes.connections(emulator.port, None).leaked == 1
        assert raw.fileno() >= 0
    assert probes.settle(emulator.port, None).leaked == 0
    # The server cuts; a client that never closes its response keeps a CLOSE_WAIT socket.
    with httpx.Client() as http:
        request = http.build_request(
            "POST",
            emulator.url + "/agents/v1/chat/completions/stream",
            json={"assistant_id": ASSISTANT_ID, "messages": user()},
            headers={"api-key": SESSION_API_KEY, "x-emulator-cut-after": "0"},
        )
        response = http.send(request, stream=True)
        deadline = time.monotonic() + 2
        while probes.client_sockets(emulator.port) != ["CLOSE_WAIT"] and time.monotonic() < deadline:
            time.sleep(0.005)
        state = probes.connections(emulator.port, http)
        assert state.sockets == ("CLOSE_WAIT",) and state.leaked == 1
        response.close()
        assert probes.settle(emulator.port, http).leaked == 0


# -- mutants: a client that breaks a rule fails its cells --------------------------------------


def _cell(cell_id: str) -> Cell:
    return next(c for c in CELLS if c.id == cell_id)


@pytest.mark.parametrize(
    "cell_id", ["core:internal_server_error:blocking:sync", "core:malformed:streaming:async"]
)
def test_a_client_that_leaves_responses_open_fails_its_cell(
    env: Env, monkeypatch: pytest.MonkeyPatch, cell_id: str
) -> None:
    async def aclose(self: httpx.Response) -> None:
        return None

    monkeypatch.setattr(httpx.Response, "close", lambda self: None)
    monkeypatch.setattr(httpx.Response, "aclose", aclose)
    result = run_cell(_cell(cell_id), env)
    assert not result.passed
    assert any("connections left open" in p for p in result.problems), result.explain()


def test_a_client_that_does_not_wait_fails_its_cell(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import haufe_copilot.transport.client as sync_client

    monkeypatch.setattr(sync_client.time, "sleep", lambda seconds: None)
    result = run_cell(_cell("core:rate_limit_gateway:streaming:sync"), env)
    assert not result.passed
    assert any("measured" in p for p in result.problems), result.explain()


def test_a_client_that_retries_a_continuation_fails_its_cell(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    import haufe_copilot.protocol.retry as retry

    original = retry.is_retryable
    monkeypatch.setattr(
        retry, "is_retryable", lambda error, replay_unsafe: original(error, replay_unsafe=False)
    )
    result = run_cell(_cell("core-thread:internal_server_error:blocking:sync"), env)
    assert not result.passed
    assert any("attempts" in p for p in result.problems), result.explain()


@pytest.mark.parametrize(
    "cell_id",
    ["core-thread:rate_limit_line_first:streaming:sync", "core:cut_after_200:streaming:async"],
)
def test_a_client_that_retries_after_a_200_fails_its_cell(
    env: Env, monkeypatch: pytest.MonkeyPatch, cell_id: str
) -> None:
    from haufe_copilot.transport.base_client import BaseClient

    original = BaseClient._retry_delay
    monkeypatch.setattr(
        BaseClient,
        "_retry_delay",
        lambda self, error, spec, retries_done, answered, deadline=None: original(
            self, error, spec, retries_done, answered=False, deadline=deadline
        ),
    )
    result = run_cell(_cell(cell_id), env)
    assert not result.passed
    assert any("attempts" in p for p in result.problems), result.explain()


@pytest.mark.parametrize("cell_id", ["core:empty_200:streaming:sync", "core:empty_200:streaming:async"])
def test_a_client_that_takes_an_empty_stream_for_an_answer_fails_its_cell(
    env: Env, monkeypatch: pytest.MonkeyPatch, cell_id: str
) -> None:
    import haufe_copilot.protocol.attempt as attempt  # the one flow both clients drive

    monkeypatch.setattr(attempt, "check_stream_end", lambda fmt, finished, items: None)
    result = run_cell(_cell(cell_id), env)
    assert not result.passed
    assert any("raised None" in p for p in result.problems), result.explain()


def _old_event_filter(last: int) -> Any:
    """The filter before SSE's rule: every event at or below the last id dropped, id-less ones too."""
    from haufe_copilot.protocol.platform import StreamFormat, parse_stream_event, stream_event_text
    from haufe_copilot.protocol.sse import SSEDecoder

    seen = [last]

    def convert(sse: Any) -> Any:
        event = parse_stream_event(sse)
        if event.id <= seen[0]:
            return None
        seen[0] = event.id
        return event

    return StreamFormat(SSEDecoder, convert, stream_event_text)


def _retries_after_a_200(
    self: Any, error: Any, spec: Any, retries_done: int, answered: bool, deadline: Any = None
) -> Any:
    from haufe_copilot.protocol.retry import retry_delay

    return retry_delay(error, retries_done=retries_done, max_retries=2, replay_unsafe=spec.replay_unsafe)


#: A platform cell, and a client whose one function breaks the rule it checks.
PLATFORM_MUTANTS = [
    (
        "completion_error_event_first:streaming:sync",
        "transport.base_client",
        "BaseClient",
        "_retry_delay",
        _retries_after_a_200,
    ),
    (
        "completion_without_done:streaming:async",
        "protocol.attempt",
        None,
        "check_stream_end",
        lambda *a, **k: None,
    ),
    (
        "completion_reset_after_sending:blocking:sync",
        "protocol.retry",
        None,
        "is_retryable",
        lambda *a, **k: True,
    ),
    (
        "start_202_lost_to_a_reset:blocking:async",
        "resources.streams",
        None,
        "_started_by_this_call",
        lambda *a: False,
    ),
    (
        "events_without_id_lines:streaming:sync",
        "resources.streams",
        None,
        "stream_events_after",
        _old_event_filter,
    ),
]


@pytest.mark.parametrize(
    ("cell", "module", "owner", "name", "mutant"), PLATFORM_MUTANTS, ids=[m[0] for m in PLATFORM_MUTANTS]
)
def test_a_client_that_breaks_a_platform_rule_fails_its_cell(
    env: Env,
    monkeypatch: pytest.MonkeyPatch,
    cell: str,
    module: str,
    owner: str | None,
    name: str,
    mutant: Any,
) -> None:
    import importlib

    target: Any = importlib.import_module(f"haufe_copilot.{module}")
    monkeypatch.setattr(getattr(target, owner) if owner else target, name, mutant)
    result = run_cell(_cell(f"platform:{cell}"), env)
    assert not result.passed, result.explain()


def test_a_client_that_drops_the_partial_fails_its_cell(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors.HaufeCopilotError, "partial", property(lambda self: "", lambda self, v: None))
    result = run_cell(_cell("core:malformed:streaming:sync"), env)
    assert not result.passed
    assert any("partial" in p for p in result.problems), result.explain()


def _quadratic_title(content: bytes) -> str:
    """The `<title>` expression the linear scan replaced (on the page's first 40 KB: enough to be
    slow, short enough for a check)."""
    match = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL).search(content[: 40 * 1024])
    return match.group(1).decode("utf-8", errors="replace") if match else ""


def _unbounded_json(line: bytes) -> Any:
    return json.loads(line)


@pytest.mark.parametrize(
    ("mutant", "cell_id", "problem"),
    [
        ("httpx decodes", "core:gzip_bomb:blocking:sync", "peak RSS"),
        ("quadratic title", "core:html_bomb:blocking:sync", "the call took"),
        ("RecursionError untyped", "core:deep_json:streaming:sync", "raised RecursionError"),
        ("server text quoted raw", "core:huge_detail:blocking:sync", "quotes server text"),
        (
            "credential on the cause",
            "core:connection_refused:blocking:sync",
            "credential is on the httpx cause",
        ),
    ],
)
def test_a_client_that_a_hostile_server_defeats_fails_its_cell(
    env: Env, monkeypatch: pytest.MonkeyPatch, mutant: str, cell_id: str, problem: str
) -> None:
    import haufe_copilot.protocol.assistant as protocol
    import haufe_copilot.transport.base_client as base
    import haufe_copilot.transport.client as sync_client

    if mutant == "httpx decodes":
        # httpx decoding the whole body (as `response.read()` does): chunk by chunk, how much it
        # holds at once depends on how the bytes arrive, which a busy machine changes.
        monkeypatch.setattr(sync_client, "iter_decoded", lambda response: iter([response.read()]))
    elif mutant == "quadratic title":
        monkeypatch.setattr(errors, "_html_title", _quadratic_title)
    elif mutant == "RecursionError untyped":
        monkeypatch.setattr(protocol, "parse_object", _unbounded_json)
    elif mutant == "server text quoted raw":
        monkeypatch.setattr(errors, "inert", lambda text, limit=0: text)
        monkeypatch.setattr(base, "inert", lambda text, limit=0: text)
    else:
        monkeypatch.setattr(base, "redacted_request", lambda request: request)
    result = run_cell(_cell(cell_id), env)
    assert not result.passed
    assert any(problem in p for p in result.problems), result.explain()


def test_a_client_whose_stall_guard_counts_keep_alives_fails_its_cell(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from haufe_copilot.protocol.deadline import ReadGuard

    original = ReadGuard.check

    def counts_every_byte(self: ReadGuard) -> None:
        self.content()  # any piece received restarts the stall clock, as a plain read timeout does
        original(self)

    monkeypatch.setattr(ReadGuard, "check", counts_every_byte)
    result = run_cell(_cell("core:stall_blank_lines:streaming:async"), env)
    assert not result.passed
    assert any("raised None" in p for p in result.problems), result.explain()


def test_a_client_without_a_deadline_fails_its_cell(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from haufe_copilot.protocol.deadline import Deadline

    monkeypatch.setattr(Deadline, "remaining", lambda self: float("inf"))
    result = run_cell(_cell("core:deadline_passes:blocking:sync"), env)
    assert not result.passed
    assert any("took" in p for p in result.problems), result.explain()


def test_an_event_loop_complaint_fails_its_cell() -> None:
    with probes.loop_complaints() as complaints:

        async def leave_a_task_behind() -> None:
            asyncio.get_running_loop().create_task(asyncio.sleep(10))

        loop = asyncio.new_event_loop()
        loop.run_until_complete(leave_a_task_behind())
        loop.close()  # the pending task is destroyed with the loop
        import gc

        gc.collect()
    assert any("Task was destroyed" in m for m in complaints.relevant)


# -- the command ------------------------------------------------------------------------------


def test_the_command_prints_the_table_and_writes_the_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "reliability.md"
    target.write_text("# Reliability\n\nintro\n\n<!-- soak:begin -->\nkept\n<!-- soak:end -->\n")
    assert matrix_main(["-k", "core:conflict:", "--write", str(target)]) == 0
    out = capsys.readouterr().out
    assert "Totals: 4 of 4 cells pass" in out and "conflict" in out
    text = target.read_text()
    assert "## Fault matrix" in text and "4 of 4 cells pass" in text
    assert "<!-- soak:begin -->\nkept\n<!-- soak:end -->" in text and "intro" in text
    assert matrix_main(["-k", "core:conflict:blocking:sync", "--write", str(target)]) == 0
    assert target.read_text().count("## Fault matrix") == 1  # the section is replaced, not appended
