"""Shared fixtures: the emulator on a free loopback port, clients pointed at it, and a random API
key for the whole session, so any place it leaks to can be searched for it."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient
from haufe_copilot.emulator import DEFAULT_ASSISTANT_ID, EmulatorConfig, EmulatorServer
from haufe_copilot.emulator.state import StreamRecord

#: A fresh key per test session: the secret-scanning tests look for exactly this string.
SESSION_API_KEY = "sk-test-" + secrets.token_hex(16)
ASSISTANT_ID = DEFAULT_ASSISTANT_ID
QUESTION = "Welche Kündigungsfristen gelten während der Probezeit?"


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(api_keys=frozenset({SESSION_API_KEY}))) as server:
        yield server


@pytest.fixture
def client(emulator: EmulatorServer) -> Iterator[HaufeCopilotClient]:
    with HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url) as c:
        yield c


@pytest.fixture
async def async_client(emulator: EmulatorServer) -> AsyncIterator[AsyncHaufeCopilotClient]:
    async with AsyncHaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url) as c:
        yield c


@pytest.fixture
def fault_id() -> str:
    """A unique id, so `x-emulator-fault-times` counts only this test's attempts."""
    return secrets.token_hex(8)


def user(text: str = QUESTION) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def attempts(emulator: EmulatorServer, header: str, value: str) -> int:
    """How many requests the emulator received carrying this header value."""
    return sum(1 for r in list(emulator.state.requests) if r.headers.get(header) == value)


def arrival_gaps(emulator: EmulatorServer, header: str, value: str) -> list[float]:
    """Seconds between the emulator's receipts of the requests carrying this header value."""
    times = [r.at for r in list(emulator.state.requests) if r.headers.get(header) == value]
    return [later - earlier for earlier, later in zip(times, times[1:])]


def wait_for(condition: Callable[[], Any], timeout: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.002)
    raise AssertionError("condition not met in time")


def stream_record(emulator: EmulatorServer, marker: str) -> StreamRecord | None:
    """The stream the emulator served for the request carrying `x-test-marker: marker`."""
    ids = {r.request_id for r in list(emulator.state.requests) if r.headers.get("x-test-marker") == marker}
    return next((s for s in list(emulator.state.streams) if s.request_id in ids), None)


# -- VCR --------------------------------------------------------------------------------------

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
SECRET_HEADERS = ["api-key", "authorization", "cookie", "set-cookie"]


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    return {
        "filter_headers": [(name, "<redacted>") for name in SECRET_HEADERS],
        # The port differs from run to run, and replay runs against a dead address.
        "match_on": ["method", "path", "query", "body"],
        "decode_compressed_response": True,
        "allow_playback_repeats": True,  # test_stream_time replays one answer many times
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    return str(CASSETTES / request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture
def recorded_base_url(request: pytest.FixtureRequest) -> str:
    """The emulator while recording; a port where nothing listens while replaying."""
    if request.config.getoption("--record-mode") in (None, "none"):
        return "http://127.0.0.1:9"
    server: EmulatorServer = request.getfixturevalue("recording_emulator")
    return server.url


@pytest.fixture(scope="session")
def recording_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(api_keys=frozenset({SESSION_API_KEY}))) as server:
        yield server


@pytest.fixture
def recorded_client(recorded_base_url: str) -> Iterator[HaufeCopilotClient]:
    with HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=recorded_base_url, max_retries=0) as c:
        yield c


@pytest.fixture
async def recorded_async_client(recorded_base_url: str) -> AsyncIterator[AsyncHaufeCopilotClient]:
    async with AsyncHaufeCopilotClient(
        api_key=SESSION_API_KEY, base_url=recorded_base_url, max_retries=0
    ) as c:
        yield c
