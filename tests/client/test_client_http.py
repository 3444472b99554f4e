"""The core client against the emulator over real HTTP: answers, errors, retries, cuts, early exits."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient, errors
from haufe_emulator import EmulatorServer
from haufe_emulator.faults import ERROR_CATALOGUE
from tests.conftest import (
    ASSISTANT_ID,
    SESSION_API_KEY,
    arrival_gaps,
    attempts,
    stream_record,
    user,
    wait_for,
)
from tests.protocol.test_errors import EXPECTED

MODES = ["blocking", "stream"]


def run_sync(client: HaufeCopilotClient, mode: str, **kwargs: Any) -> str:
    if mode == "blocking":
        return client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), **kwargs).content
    return "".join(
        c.delta.content for c in client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user(), **kwargs)
    )


async def run_async(client: AsyncHaufeCopilotClient, mode: str, **kwargs: Any) -> str:
    if mode == "blocking":
        return (await client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), **kwargs)).content
    return "".join(
        [
            c.delta.content
            async for c in client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user(), **kwargs)
        ]
    )


# -- answers ---------------------------------------------------------------------------------


def test_blocking_answer_has_the_documented_shape(client: HaufeCopilotClient) -> None:
    answer = client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), user_id="u-1")
    assert answer.role == "assistant" and answer.id and answer.thread_id and answer.created_at
    assert "§ 622 Abs. 3 BGB" in answer.content
    assert 3 <= len(answer.sources) <= 5
    assert answer.sources[0].meta_data.section == "§ 622 Abs. 3"
    assert answer.sources[0].meta_data.document_title == "Bürgerliches Gesetzbuch (BGB)"
    assert answer.meta_data.legal_advice is False and answer.meta_data.intent


def test_stream_arrives_delta_by_delta_with_sources_on_the_last(client: HaufeCopilotClient) -> None:
    blocking = client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    chunks = list(client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()))
    assert len(chunks) > 10  # word-sized deltas, one by one
    assert "".join(c.delta.content for c in chunks) == blocking.content
    assert all(not c.delta.sources for c in chunks[:-1])
    assert [s.content for s in chunks[-1].delta.sources] == [s.content for s in blocking.sources]
    assert len({c.message_id for c in chunks}) == 1 and len({c.thread_id for c in chunks}) == 1


def test_deltas_reach_the_caller_before_the_stream_ends(
    client: HaufeCopilotClient, emulator: EmulatorServer
) -> None:
    arrivals = []
    started = time.monotonic()
    for _ in client.assistant.stream(
        assistant_id=ASSISTANT_ID, messages=user(), extra_headers={"x-emulator-delta-delay": "0.02"}
    ):
        arrivals.append(time.monotonic() - started)
    assert len(arrivals) > 10
    # the first delta came long before the last: nothing was buffered to the end
    assert arrivals[-1] - arrivals[0] > 0.02 * (len(arrivals) - 2) * 0.8


def test_get_final_answer_assembles_the_stream(client: HaufeCopilotClient) -> None:
    blocking = client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    final = client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()).get_final_answer()
    assert final.content == blocking.content
    assert [s.meta_data.section for s in final.sources] == [s.meta_data.section for s in blocking.sources]
    stream = client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user())
    next(stream)
    with pytest.raises(RuntimeError, match="before iterating"):
        stream.get_final_answer()
    stream.close()


async def test_async_answers(async_client: AsyncHaufeCopilotClient) -> None:
    answer = await async_client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    text = await run_async(async_client, "stream")
    assert text == answer.content and "§ 622" in text
    final = await async_client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()).get_final_answer()
    assert final.content == answer.content and final.thread_id


def test_a_thread_continues(client: HaufeCopilotClient, emulator: EmulatorServer) -> None:
    first = client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    second = client.assistant.chat(
        assistant_id=ASSISTANT_ID, thread_id=first.thread_id, messages=user("Und wie lange gilt das danach?")
    )
    assert second.thread_id == first.thread_id
    request = list(emulator.state.requests)[-1]
    assert request.query == {"thread_id": first.thread_id}
    assert request.body == {"assistant_id": ASSISTANT_ID, "messages": user("Und wie lange gilt das danach?")}


def test_headers_sent(client: HaufeCopilotClient, emulator: EmulatorServer) -> None:
    client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), extra_headers={"x-test-marker": "h"})
    request = next(r for r in reversed(emulator.state.requests) if r.headers.get("x-test-marker") == "h")
    assert request.headers["user-agent"].startswith("haufe-copilot-python/")
    assert request.headers["api-key"] == "<redacted>"  # sent (the emulator redacts its record)
    assert request.headers["content-type"] == "application/json"


def test_extra_body_goes_through_and_the_emulator_refuses_undocumented_fields(
    client: HaufeCopilotClient,
) -> None:
    with pytest.raises(errors.UnprocessableEntityError) as info:
        client.assistant.chat(
            assistant_id=ASSISTANT_ID, messages=user(), extra_body={"user_data": {"plan": "pro"}}
        )
    assert info.value.error_code == "validation_error"
    assert info.value.detail[0]["loc"] == ["body", "user_data"]
    assert "body.user_data" in str(info.value)


# -- the error catalogue ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("code", sorted(ERROR_CATALOGUE))
def test_every_error_code_sync(client: HaufeCopilotClient, mode: str, code: str) -> None:
    status, cls = EXPECTED[code]
    with pytest.raises(cls) as info:
        run_sync(client.with_options(max_retries=0), mode, extra_headers={"x-emulator-fault": code})
    assert type(info.value) is cls
    assert (info.value.error_code, info.value.status_code) == (code, status)
    assert info.value.request_id  # the emulator sends x-request-id


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("code", sorted(ERROR_CATALOGUE))
async def test_every_error_code_async(async_client: AsyncHaufeCopilotClient, mode: str, code: str) -> None:
    status, cls = EXPECTED[code]
    with pytest.raises(cls) as info:
        await run_async(
            async_client.with_options(max_retries=0), mode, extra_headers={"x-emulator-fault": code}
        )
    assert type(info.value) is cls
    assert (info.value.error_code, info.value.status_code) == (code, status)


@pytest.mark.parametrize(
    ("fault", "cls", "status"),
    [
        ("rate_limit_message", errors.RateLimitError, 429),
        ("proxy_html", errors.ServiceUnavailableError, 502),
        ("empty_503", errors.ServiceUnavailableError, 503),
        ("status_408", errors.APIStatusError, 408),
        ("status_413", errors.APIStatusError, 413),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_undocumented_bodies_still_classify(
    client: HaufeCopilotClient, mode: str, fault: str, cls: type[errors.APIStatusError], status: int
) -> None:
    with pytest.raises(cls) as info:
        run_sync(client.with_options(max_retries=0), mode, extra_headers={"x-emulator-fault": fault})
    assert type(info.value) is cls and info.value.status_code == status and info.value.error_code is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("code", ["internal_server_error", "rate_limit_gateway", "unauthorized", "conflict"])
def test_an_error_line_inside_the_stream(
    client: HaufeCopilotClient, emulator: EmulatorServer, code: str, mode: str
) -> None:
    status, cls = EXPECTED[code]
    headers = {"x-emulator-stream-error": code, "x-emulator-stream-error-after": "2"}
    received = []
    with pytest.raises(cls) as info:
        for chunk in client.assistant.stream(
            assistant_id=ASSISTANT_ID, messages=user(), extra_headers=headers
        ):
            received.append(chunk.delta.content)
    assert len(received) == 2 and info.value.partial == "".join(received)
    assert info.value.status_code == status and info.value.error_code == code


def test_real_errors_not_injected(client: HaufeCopilotClient, emulator: EmulatorServer) -> None:
    with pytest.raises(errors.AuthenticationError, match="HAUFE_COPILOT_API_KEY"):
        HaufeCopilotClient(api_key="sk-wrong", base_url=emulator.url).assistant.chat(
            assistant_id=ASSISTANT_ID, messages=user()
        )
    with pytest.raises(errors.NotFoundError) as not_found:
        client.assistant.chat(assistant_id="no-such-assistant", messages=user())
    assert not_found.value.error_code == "assistant_not_found"
    with pytest.raises(errors.NotFoundError) as no_thread:
        client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), thread_id="no-such-thread")
    assert no_thread.value.error_code == "resource_not_found"
    with pytest.raises(errors.BadRequestError) as stack:
        client.assistant.chat(
            assistant_id=ASSISTANT_ID, messages=[*user(), {"role": "assistant", "content": "x"}]
        )
    assert stack.value.error_code == "incorrect_stack_ending"


# -- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_rate_limit_is_retried_honouring_retry_after_ms(
    client: HaufeCopilotClient, emulator: EmulatorServer, fault_id: str, mode: str
) -> None:
    headers = {
        "x-emulator-fault": "rate_limit_gateway",
        "x-emulator-fault-times": "2",
        "x-emulator-fault-id": fault_id,
        "x-emulator-retry-after-ms": "150",
    }
    text = run_sync(client, mode, extra_headers=headers)
    assert "§ 622" in text
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 3
    # The waits as the server saw them (its receive times), so a busy machine cannot shift them:
    # each at least the 150 ms asked for; together below the backoff's shortest 0.375 + 0.75 s.
    waits = arrival_gaps(emulator, "x-emulator-fault-id", fault_id)
    assert all(wait >= 0.15 for wait in waits), waits
    assert sum(waits) < 1.125, waits


def test_retry_after_in_seconds_is_honoured(
    client: HaufeCopilotClient, emulator: EmulatorServer, fault_id: str
) -> None:
    headers = {
        "x-emulator-fault": "rate_limit_message",
        "x-emulator-fault-times": "1",
        "x-emulator-fault-id": fault_id,
        "x-emulator-retry-after": "1",
    }
    run_sync(client, "blocking", extra_headers=headers)
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 2
    [wait] = arrival_gaps(emulator, "x-emulator-fault-id", fault_id)
    assert 1.0 <= wait < 2.5, wait  # the second asked for; generous above for a loaded machine


async def test_async_retries_then_gives_up(
    async_client: AsyncHaufeCopilotClient, emulator: EmulatorServer, fault_id: str
) -> None:
    headers = {
        "x-emulator-fault": "internal_service_error",
        "x-emulator-fault-id": fault_id,
        "x-emulator-retry-after-ms": "50",
    }
    started = time.monotonic()
    with pytest.raises(errors.ServiceUnavailableError):
        await run_async(async_client.with_options(max_retries=3), "stream", extra_headers=headers)
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 4  # max_retries counts after the first
    assert time.monotonic() - started >= 0.15


def test_the_backoff_without_retry_after(
    client: HaufeCopilotClient, emulator: EmulatorServer, fault_id: str
) -> None:
    headers = {
        "x-emulator-fault": "internal_server_error",
        "x-emulator-fault-times": "1",
        "x-emulator-fault-id": fault_id,
    }
    run_sync(client, "blocking", extra_headers=headers)
    [wait] = arrival_gaps(emulator, "x-emulator-fault-id", fault_id)
    assert 0.375 <= wait < 1.5, wait  # 0.5 s less at most 25 % jitter; generous above for a busy machine


@pytest.mark.parametrize("code", ["bad", "internal_server_error", "api_timeout_error", "unauthorized"])
def test_not_retried(client: HaufeCopilotClient, emulator: EmulatorServer, fault_id: str, code: str) -> None:
    if code == "bad":
        code = "incorrect_stack_ending"
    headers = {"x-emulator-fault": code, "x-emulator-fault-id": fault_id, "x-emulator-retry-after-ms": "10"}
    retried = code in ("internal_server_error", "api_timeout_error")
    with pytest.raises(errors.APIStatusError):
        run_sync(client.with_options(max_retries=1), "blocking", extra_headers=headers)
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == (2 if retried else 1)


@pytest.mark.parametrize("mode", MODES)
def test_a_thread_continuation_is_retried_only_on_429(
    client: HaufeCopilotClient, emulator: EmulatorServer, fault_id: str, mode: str
) -> None:
    thread_id = client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user()).thread_id
    server_error = {
        "x-emulator-fault": "internal_server_error",
        "x-emulator-fault-id": fault_id,
        "x-emulator-retry-after-ms": "10",
    }
    with pytest.raises(errors.InternalServerError):
        run_sync(client, mode, thread_id=thread_id, extra_headers=server_error)
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 1
    rate_limited = {
        "x-emulator-fault": "rate_limit_gateway",
        "x-emulator-fault-times": "1",
        "x-emulator-fault-id": fault_id + "-429",
        "x-emulator-retry-after-ms": "10",
    }
    run_sync(client, mode, thread_id=thread_id, extra_headers=rate_limited)
    assert attempts(emulator, "x-emulator-fault-id", fault_id + "-429") == 2


def test_a_refused_connection_is_retried_even_on_a_thread() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: nothing listens
    client = HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=1)
    started = time.monotonic()
    with pytest.raises(errors.APIConnectionError) as info:
        client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), thread_id="t-1")
    assert info.value.request_sent is False
    assert time.monotonic() - started >= 0.375  # one backoff: it was retried
    assert SESSION_API_KEY not in str(info.value)


def test_a_stream_is_retried_before_its_first_delta(
    client: HaufeCopilotClient, emulator: EmulatorServer, fault_id: str
) -> None:
    headers = {
        "x-emulator-fault": "attachment_document_not_reachable",
        "x-emulator-fault-times": "1",
        "x-emulator-fault-id": fault_id,
        "x-emulator-retry-after-ms": "10",
    }
    assert "§ 622" in run_sync(client, "stream", extra_headers=headers)
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 2


# -- cuts, malformed lines, timeouts ----------------------------------------------------------


def test_a_cut_after_the_first_delta_keeps_the_partial_and_is_not_retried(
    client: HaufeCopilotClient, emulator: EmulatorServer, fault_id: str
) -> None:
    received = []
    with pytest.raises(errors.APIConnectionError) as info:
        for chunk in client.assistant.stream(
            assistant_id=ASSISTANT_ID,
            messages=user(),
            extra_headers={"x-emulator-cut-after": "1", "x-emulator-fault-id": fault_id},
        ):
            received.append(chunk.delta.content)
    assert len(received) == 1 and info.value.partial == received[0] != ""
    assert not isinstance(info.value, errors.APITimeoutError)
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 1
    assert "characters of the answer were delivered" in str(info.value)


async def test_a_cut_after_the_first_delta_async(
    async_client: AsyncHaufeCopilotClient, emulator: EmulatorServer, fault_id: str
) -> None:
    received = []
    with pytest.raises(errors.APIConnectionError) as info:
        async for chunk in async_client.assistant.stream(
            assistant_id=ASSISTANT_ID,
            messages=user(),
            extra_headers={"x-emulator-cut-after": "5", "x-emulator-fault-id": fault_id},
        ):
            received.append(chunk.delta.content)
    assert len(received) == 5 and info.value.partial == "".join(received)
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 1


def test_a_cut_after_the_200_before_the_first_delta_is_not_retried(
    client: HaufeCopilotClient, emulator: EmulatorServer, fault_id: str
) -> None:
    # The 200 says the server took the request (it stores the turn): a retry would answer twice.
    with pytest.raises(errors.APIConnectionError):
        run_sync(
            client.with_options(max_retries=1),
            "stream",
            extra_headers={"x-emulator-cut-after": "0", "x-emulator-fault-id": fault_id},
        )
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 1


def test_a_cut_mid_body_of_a_blocking_answer(
    client: HaufeCopilotClient, emulator: EmulatorServer, fault_id: str
) -> None:
    with pytest.raises(errors.APIConnectionError):
        run_sync(
            client.with_options(max_retries=2),
            "blocking",
            extra_headers={"x-emulator-cut-after": "0", "x-emulator-fault-id": fault_id},
        )
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 1  # the body had begun: not retried


@pytest.mark.parametrize("after", ["0", "3"])
def test_a_malformed_line(client: HaufeCopilotClient, after: str) -> None:
    received = []
    with pytest.raises(errors.APIResponseValidationError, match="not valid JSON") as info:
        for chunk in client.with_options(max_retries=0).assistant.stream(
            assistant_id=ASSISTANT_ID, messages=user(), extra_headers={"x-emulator-malformed-after": after}
        ):
            received.append(chunk.delta.content)
    assert len(received) == int(after) and info.value.partial == "".join(received)


def test_no_answer_within_the_timeout(
    client: HaufeCopilotClient, emulator: EmulatorServer, fault_id: str
) -> None:
    started = time.monotonic()
    with pytest.raises(errors.APITimeoutError):
        run_sync(
            client.with_options(max_retries=1, timeout=0.2),
            "blocking",
            extra_headers={"x-emulator-delay": "5", "x-emulator-fault-id": fault_id},
        )
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 2
    # Two attempts cut at 0.2 s and one backoff (<= 0.5 s): far less than one wait for the server
    # (5 s), with room for a loaded machine.
    assert time.monotonic() - started < 3.0


def test_a_stalled_stream_hits_the_read_timeout(client: HaufeCopilotClient) -> None:
    """The read timeout is the stall guard: a stream that stops sending fails, it does not hang."""
    received = []
    started = time.monotonic()
    with pytest.raises(errors.APITimeoutError) as stall:
        for chunk in client.with_options(max_retries=0).assistant.stream(
            assistant_id=ASSISTANT_ID,
            messages=user(),
            timeout=0.2,
            extra_headers={"x-emulator-delta-delay": "5"},
        ):
            received.append(chunk)
    assert received == [] and stall.value.partial == ""
    assert time.monotonic() - started < 2.5  # cut at the 0.2 s timeout, not after the 5 s delta


# -- leaving early ---------------------------------------------------------------------------


def _slow(marker: str) -> dict[str, str]:
    return {"x-emulator-delta-delay": "0.05", "x-test-marker": marker}


@pytest.mark.parametrize("how", ["break", "with-block", "close"])
def test_leaving_a_sync_stream_early_closes_the_connection_at_once(
    client: HaufeCopilotClient, emulator: EmulatorServer, how: str, fault_id: str
) -> None:
    if how == "break":
        for _ in client.assistant.stream(
            assistant_id=ASSISTANT_ID, messages=user(), extra_headers=_slow(fault_id)
        ):
            break
    elif how == "with-block":
        with client.assistant.stream(
            assistant_id=ASSISTANT_ID, messages=user(), extra_headers=_slow(fault_id)
        ) as s:
            next(s)
    else:
        s = client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user(), extra_headers=_slow(fault_id))
        next(s)
        s.close()
    left = time.monotonic()
    record = wait_for(lambda: (r := stream_record(emulator, fault_id)) and r.ended_at and r)
    assert record.outcome == "disconnected"
    assert record.ended_at - left < 0.1
    assert record.deltas_sent < 5
    assert "§ 622" in run_sync(client, "blocking")  # the client stays open


@pytest.mark.parametrize("how", ["break", "cancel"])
async def test_leaving_an_async_stream_early_closes_the_connection_at_once(
    async_client: AsyncHaufeCopilotClient, emulator: EmulatorServer, how: str, fault_id: str
) -> None:
    if how == "break":
        async with async_client.assistant.stream(
            assistant_id=ASSISTANT_ID, messages=user(), extra_headers=_slow(fault_id)
        ) as stream:
            async for _ in stream:
                break
    else:
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in async_client.assistant.stream(
                assistant_id=ASSISTANT_ID, messages=user(), extra_headers=_slow(fault_id)
            ):
                first.set()

        task = asyncio.create_task(consume())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    left = time.monotonic()
    for _ in range(200):
        record = stream_record(emulator, fault_id)
        if record is not None and record.ended_at is not None:
            break
        await asyncio.sleep(0.002)
    assert record is not None and record.outcome == "disconnected"
    assert record.ended_at - left < 0.1
    assert "§ 622" in await run_async(async_client, "blocking")


async def test_a_dropped_async_stream_is_closed_by_the_loop(
    async_client: AsyncHaufeCopilotClient, emulator: EmulatorServer, fault_id: str
) -> None:
    async for _ in async_client.assistant.stream(
        assistant_id=ASSISTANT_ID, messages=user(), extra_headers=_slow(fault_id)
    ):
        break  # no `async with`: asyncio's async-generator finaliser closes it
    left = time.monotonic()
    for _ in range(200):
        record = stream_record(emulator, fault_id)
        if record is not None and record.ended_at is not None:
            break
        await asyncio.sleep(0.002)
    assert record is not None and record.outcome == "disconnected"
    assert record.ended_at - left < 0.1


# -- configuration and bad input --------------------------------------------------------------


def test_configuration_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer
) -> None:
    monkeypatch.setenv("HAUFE_COPILOT_API_KEY", SESSION_API_KEY)
    monkeypatch.setenv("HAUFE_COPILOT_BASE_URL", emulator.url + "/")
    with HaufeCopilotClient() as client:
        assert client.base_url == emulator.url
        assert "§ 622" in run_sync(client, "blocking")


def test_configuration_errors_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HAUFE_COPILOT_API_KEY", raising=False)
    monkeypatch.delenv("HAUFE_COPILOT_BASE_URL", raising=False)
    with pytest.raises(errors.ConfigurationError, match="HAUFE_COPILOT_API_KEY"):
        HaufeCopilotClient()
    with pytest.raises(errors.ConfigurationError, match="allow_insecure_http"):
        HaufeCopilotClient(api_key="k", base_url="http://api.example.com")
    assert HaufeCopilotClient(api_key="k", base_url="http://api.example.com", allow_insecure_http=True)
    assert HaufeCopilotClient(api_key="k", base_url="http://localhost:8765")
    assert HaufeCopilotClient(api_key="k", base_url="http://[::1]:8765")
    with pytest.raises(errors.ConfigurationError, match="http"):
        HaufeCopilotClient(api_key="k", base_url="ftp://x")
    with pytest.raises(errors.ConfigurationError, match="max_retries"):
        HaufeCopilotClient(api_key="k", max_retries=-1)
    with pytest.raises(errors.ConfigurationError, match="timeout"):
        HaufeCopilotClient(api_key="k", timeout=0)
    with pytest.raises(errors.InvalidRequestError, match="control character"):
        HaufeCopilotClient(api_key="k", default_headers={"x-a": "b\r\nInjected: 1"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"thread_id": "abc\r\nx-evil: 1"}, "thread_id contains a control character"),
        ({"user_id": "u\n"}, "user_id contains a control character"),
        ({"thread_id": ""}, "thread_id must not be empty"),
        ({"messages": []}, "at least one message"),
        ({"messages": "Hallo"}, "must be a list"),
        ({"messages": [{"role": "user"}]}, r"messages\[0\].content is missing"),
        ({"messages": [{"role": "user", "content": 3}]}, r"messages\[0\].content must be a string"),
        ({"messages": ["Hallo"]}, r"messages\[0\] must be a mapping"),
        ({"assistant_id": ""}, "assistant_id must not be empty"),
        ({"extra_headers": {"x-a": "1\n2"}}, "control character"),
    ],
)
def test_bad_input_is_refused_before_sending(
    client: HaufeCopilotClient, kwargs: dict[str, Any], message: str
) -> None:
    call: dict[str, Any] = {"assistant_id": ASSISTANT_ID, "messages": user(), **kwargs}
    with pytest.raises(errors.InvalidRequestError, match=message):
        client.assistant.chat(**call)
    with pytest.raises(errors.InvalidRequestError, match=message):
        client.assistant.stream(**call)


def test_a_blocking_answer_over_the_bound_is_refused(emulator: EmulatorServer) -> None:
    small = HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url, max_response_bytes=200)
    with small, pytest.raises(errors.ResponseTooLargeError, match="max_response_bytes"):
        small.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())


def test_a_stream_line_over_the_bound_is_refused(emulator: EmulatorServer) -> None:
    small = HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url, max_line_bytes=100)
    with small, pytest.raises(errors.ResponseTooLargeError, match="100 bytes"):
        list(small.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()))


def test_the_client_does_not_pickle(client: HaufeCopilotClient) -> None:
    import pickle

    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(client)


def test_a_given_http_client_is_used_and_not_closed(emulator: EmulatorServer) -> None:
    import httpx

    with httpx.Client() as http:
        client = HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url, http_client=http)
        assert "§ 622" in run_sync(client, "stream")
        client.close()
        assert not http.is_closed
    with pytest.raises(TypeError, match="AsyncHaufeCopilotClient"):
        HaufeCopilotClient(api_key="k", http_client=httpx.AsyncClient())  # type: ignore[arg-type]


def test_one_async_client_across_many_event_loops(
    emulator: EmulatorServer, recwarn: pytest.WarningsRecorder
) -> None:
    import gc

    client = AsyncHaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url)

    async def ask() -> str:
        return await run_async(client, "stream" if ask.calls % 2 else "blocking")  # type: ignore[attr-defined]

    ask.calls = 0  # type: ignore[attr-defined]
    for _ in range(20):
        ask.calls += 1  # type: ignore[attr-defined]
        assert "§ 622" in asyncio.run(ask())
    gc.collect()
    assert not [w for w in recwarn if issubclass(w.category, ResourceWarning)]
    assert len(client._pools._pools) == 0  # every loop's pool was dropped with its loop


@pytest.mark.parametrize("ending", ["closed-by-hand", "dropped-unclosed", "asyncio.run"])
def test_no_pool_outlives_its_event_loop(emulator: EmulatorServer, ending: str) -> None:
    """Loops that end without `shutdown_asyncgens()` (closed by hand, or dropped) leave no
    connection and are collected; the client stays usable and is not dropped meanwhile."""
    import gc
    import warnings
    import weakref

    from tests.reliability import probes

    client = AsyncHaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def ask() -> str:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return await run_async(client, "stream" if len(loops) % 2 else "blocking")

    # asyncio complains (ResourceWarning) of the loops and transports a caller left unclosed:
    # that is the caller's doing; what is checked here is what the client keeps.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(6):
            if ending == "asyncio.run":
                assert "§ 622" in asyncio.run(ask())
                continue
            loop = asyncio.new_event_loop()
            assert "§ 622" in loop.run_until_complete(ask())
            if ending == "closed-by-hand":
                loop.close()
            del loop
        collections = 0
        while collections < 20 and (
            probes.client_sockets(emulator.port) or any(ref() is not None for ref in loops)
        ):
            gc.collect()
            collections += 1
            time.sleep(0.01)
    assert probes.client_sockets(emulator.port) == []
    assert [ref() for ref in loops if ref() is not None] == []
    assert len(client._pools._pools) == 0
    assert collections <= 1  # freed by the first collection (asyncio's transports are cyclic)
    assert "§ 622" in asyncio.run(ask())  # the client still works


def test_the_partial_of_a_long_interrupted_stream_is_bounded_and_says_so(emulator: EmulatorServer) -> None:
    small = HaufeCopilotClient(
        api_key=SESSION_API_KEY, base_url=emulator.url, max_partial_chars=10, max_retries=0
    )
    received = []
    with small, pytest.raises(errors.APIConnectionError) as info:
        for chunk in small.assistant.stream(
            assistant_id=ASSISTANT_ID, messages=user(), extra_headers={"x-emulator-cut-after": "8"}
        ):
            received.append(chunk.delta.content)
    assert len(received) == 8 and info.value.partial_truncated
    assert info.value.partial == "".join(received)[:10]
    assert "raise max_partial_chars" in str(info.value)
