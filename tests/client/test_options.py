"""The one list of client options (`ClientOptions`) and what derives from it; `limits=` over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import httpx
import pytest

from haufe_copilot import AsyncHaufeCopilotClient, ClientOptions, HaufeCopilotClient, errors
from haufe_copilot.conversation.holder import ADAPTER_OPTION_FIELDS
from haufe_copilot.transport.base_client import ClientConfig
from haufe_copilot.transport.options import CLIENT_OPTIONS, COPY_OPTIONS
from haufe_emulator import EmulatorServer
from tests.conftest import ASSISTANT_ID, SESSION_API_KEY, user
from tests.reliability import probes


def test_every_option_is_listed_once_and_documented() -> None:
    assert list(CLIENT_OPTIONS) == list(ClientOptions.__annotations__)
    assert [f.name for f in dataclasses.fields(ClientConfig)] == list(CLIENT_OPTIONS)
    for name, option in CLIENT_OPTIONS.items():
        assert f"`{name}` (default {option.default!r}): {option.meaning}" in (ClientOptions.__doc__ or "")
    assert {
        "timeout",
        "deadline",
        "max_retries",
        "default_headers",
        "max_line_bytes",
        "max_response_bytes",
        "max_partial_chars",
    } == COPY_OPTIONS
    assert ADAPTER_OPTION_FIELDS == (
        "api_key",
        "base_url",
        "platform_api_key",
        "platform_base_url",
        "token_provider",
        "timeout",
        "deadline",
        "max_retries",
        "default_headers",
        "allow_insecure_http",
        "proxy",
    )


def test_an_unknown_option_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_retry'"):
        HaufeCopilotClient(api_key="k", max_retry=3)  # type: ignore[call-arg]
    with pytest.raises(errors.ConfigurationError, match=r"with_options\(\) takes only"):
        HaufeCopilotClient(api_key="k").with_options(limits=httpx.Limits(max_connections=1))


@pytest.mark.parametrize("limits", [10, httpx.Limits(max_connections=0)])
def test_limits_must_allow_a_connection(limits: object) -> None:
    with pytest.raises(errors.ConfigurationError, match=r"limits must be an httpx\.Limits"):
        HaufeCopilotClient(api_key="k", limits=limits)  # type: ignore[arg-type]


def test_limits_do_not_go_with_a_given_http_client() -> None:
    with httpx.Client() as http, pytest.raises(errors.ConfigurationError, match="set the limits on your"):
        HaufeCopilotClient(api_key="k", http_client=http, limits=httpx.Limits(max_connections=1))


def _hold(client: HaufeCopilotClient, peak: list[int], port: int) -> None:
    """Open a stream, read its first chunk, note the sockets open now, dwell, read the rest."""
    with client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()) as chunks:
        next(chunks)
        peak.append(len(probes.client_sockets(port)))
        time.sleep(0.2)
        for _ in chunks:
            pass


def test_the_sync_client_keeps_to_its_limits(emulator: EmulatorServer) -> None:
    peak: list[int] = []
    with HaufeCopilotClient(
        api_key=SESSION_API_KEY, base_url=emulator.url, limits=httpx.Limits(max_connections=2)
    ) as client:
        callers = [threading.Thread(target=_hold, args=(client, peak, emulator.port)) for _ in range(6)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(30)
    assert len(peak) == 6  # every stream was answered, two at a time
    assert max(peak) <= 2, peak


async def test_the_async_client_keeps_to_its_limits(emulator: EmulatorServer) -> None:
    peak: list[int] = []

    async def hold(client: AsyncHaufeCopilotClient) -> None:
        async with client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()) as chunks:
            await chunks.__anext__()
            peak.append(len(probes.client_sockets(emulator.port)))
            await asyncio.sleep(0.2)
            async for _ in chunks:
                pass

    async with AsyncHaufeCopilotClient(
        api_key=SESSION_API_KEY, base_url=emulator.url, limits=httpx.Limits(max_connections=3)
    ) as client:
        await asyncio.gather(*(hold(client) for _ in range(8)))
    assert len(peak) == 8
    assert max(peak) <= 3, peak
