"""The openai-like surface over real HTTP: raw answers and request ids on success, and the one rule
for when a stream sends its request (at its creation: a 401 surfaces there)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient, Limits, RawResponse, Timeout, errors
from haufe_copilot.types import DoneEvent
from haufe_emulator import EmulatorServer
from tests.conftest import ASSISTANT_ID, SESSION_API_KEY, attempts, user


def test_timeout_and_limits_are_httpx_s() -> None:
    import httpx

    assert Timeout is httpx.Timeout and Limits is httpx.Limits


def _check_raw(raw: RawResponse[Any], parsed_type: type) -> None:
    assert raw.status_code // 100 == 2 and raw.request_id and raw.request_id == raw.headers["x-request-id"]
    assert raw.http_response.headers is raw.headers and raw.content.startswith(b"{")
    assert isinstance(raw.parse(), parsed_type)
    assert raw.request_id in repr(raw)


def test_the_raw_answer_and_request_id_of_each_blocking_call(client: HaufeCopilotClient) -> None:
    from haufe_copilot.types import AssistantAnswer, ChatCompletion, StreamHandle, StreamStatus

    raw = client.assistant.with_raw_response.chat(assistant_id=ASSISTANT_ID, messages=user())
    _check_raw(raw, AssistantAnswer)
    assert "§ 622" in raw.parse().content
    _check_raw(client.completions.with_raw_response.create(messages=user()), ChatCompletion)
    started = client.streams.with_raw_response.start(messages=user())
    _check_raw(started, StreamHandle)
    stream_id = started.parse().stream_id
    _check_raw(client.streams.with_raw_response.status(stream_id), StreamStatus)
    # Outside with_raw_response nothing is kept: the plain call returns the answer only.
    assert isinstance(client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user()), AssistantAnswer)


async def test_the_raw_answer_and_request_id_async(async_client: AsyncHaufeCopilotClient) -> None:
    from haufe_copilot.types import AssistantAnswer, ChatCompletion, StreamHandle, StreamStatus

    _check_raw(
        await async_client.assistant.with_raw_response.chat(assistant_id=ASSISTANT_ID, messages=user()),
        AssistantAnswer,
    )
    _check_raw(await async_client.completions.with_raw_response.create(messages=user()), ChatCompletion)
    started = await async_client.streams.with_raw_response.start(messages=user())
    _check_raw(started, StreamHandle)
    _check_raw(await async_client.streams.with_raw_response.status(started.parse().stream_id), StreamStatus)


def test_a_stream_has_its_response_and_request_id(client: HaufeCopilotClient) -> None:
    with client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()) as stream:
        assert stream.response.status_code == 200 and stream.request_id
        assert "§ 622" in "".join(chunk.delta.content for chunk in stream)
    with client.completions.create(messages=user(), stream=True) as chunks:
        assert chunks.request_id and chunks.response.headers["content-type"].startswith("text/event-stream")
        assert list(chunks)
    handle = client.streams.start(messages=user())
    events = client.streams.events(handle.stream_id)
    assert events.request_id and isinstance(list(events)[-1], DoneEvent)


def test_a_sync_stream_sends_at_creation_and_a_401_surfaces_there(emulator: EmulatorServer) -> None:
    marker = secrets.token_hex(6)
    with HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url) as client:
        stream = client.assistant.stream(
            assistant_id=ASSISTANT_ID, messages=user(), extra_headers={"x-test-marker": marker}
        )
        assert attempts(emulator, "x-test-marker", marker) == 1  # sent before the first next()
        stream.close()
    wrong = HaufeCopilotClient(api_key="sk-wrong", platform_api_key="sk-wrong", base_url=emulator.url)
    with wrong:
        with pytest.raises(errors.AuthenticationError):
            wrong.assistant.stream(assistant_id=ASSISTANT_ID, messages=user())
        with pytest.raises(errors.AuthenticationError):
            wrong.completions.create(messages=user(), stream=True)
        with pytest.raises(errors.AuthenticationError):
            wrong.streams.events("no-such-stream")


async def test_an_async_stream_sends_when_awaited_or_entered(emulator: EmulatorServer) -> None:
    marker = secrets.token_hex(6)
    async with AsyncHaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url) as client:
        stream = client.assistant.stream(
            assistant_id=ASSISTANT_ID, messages=user(), extra_headers={"x-test-marker": marker}
        )
        assert attempts(emulator, "x-test-marker", marker) == 0  # a plain call cannot wait for the network
        with pytest.raises(RuntimeError, match="not sent its request yet"):
            stream.response  # noqa: B018 - the property's refusal is the point
        assert await stream is stream and attempts(emulator, "x-test-marker", marker) == 1
        assert stream.request_id
        await stream.aclose()
    async with AsyncHaufeCopilotClient(
        api_key="sk-wrong", platform_api_key="sk-wrong", base_url=emulator.url
    ) as wrong:
        with pytest.raises(errors.AuthenticationError):
            await wrong.completions.create(messages=user(), stream=True)  # at the await of create
        with pytest.raises(errors.AuthenticationError):
            await wrong.assistant.stream(assistant_id=ASSISTANT_ID, messages=user())
        entered = False
        with pytest.raises(errors.AuthenticationError):
            async with wrong.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()):
                entered = True
        assert not entered  # raised on entering, before the block
