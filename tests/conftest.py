"""Shared fixtures: the emulator on a free loopback port, clients pointed at it, and a random API
key for the whole session, so any place it leaks to can be searched for it."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient
from haufe_copilot.log import is_secret_header
from haufe_emulator import DEFAULT_ASSISTANT_ID, EmulatorConfig, EmulatorServer
from haufe_emulator.state import StreamRecord

from .targets import ASSISTANT_PLACEHOLDER, Target, emulator_target, service_from_environment

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
    return [later - earlier for earlier, later in itertools.pairwise(times)]


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
#
# Replay is the default (`--record-mode=none`), against a port where nothing listens. Recording
# (`--record-mode=rewrite`, or any other mode) talks to the emulator, or to the server the usual
# environment variables name (tests/targets.py): one switch, no code edit.

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
#: Where replay sends requests: nothing listens there, so only a cassette can answer.
REPLAY_URL = "http://127.0.0.1:9"


def _normalised_body(body: Any) -> Any:
    """A request body as VCR compares it: JSON parsed, the assistant id replaced."""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(raw) if raw else raw
    except ValueError:
        return raw
    if isinstance(data, dict) and "assistant_id" in data:
        data = {**data, "assistant_id": ASSISTANT_PLACEHOLDER}
    return data


def _match_body(recorded: Any, live: Any) -> None:
    assert _normalised_body(recorded.body) == _normalised_body(live.body)


def _api_path(path: str) -> str:
    """The endpoint's path without the base URL's prefix (a service behind `/gateway/...`)."""
    cut = min((i for i in (path.find("/agents/"), path.find("/api/")) if i >= 0), default=0)
    return path[cut:]


def _match_api_path(recorded: Any, live: Any) -> None:
    assert _api_path(recorded.path) == _api_path(live.path)


def _before_record_request(request: Any) -> Any:
    for name in list(request.headers):
        if is_secret_header(name):
            request.headers[name] = "<redacted>"
    body = _normalised_body(request.body)
    if isinstance(body, dict):
        request.body = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return request


def _before_record_response(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers", {})
    for name in list(headers):
        if is_secret_header(name):
            headers[name] = ["<redacted>"]
    return response


def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    vcr.register_matcher("json_body", _match_body)
    vcr.register_matcher("api_path", _match_api_path)


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    return {
        "before_record_request": _before_record_request,
        "before_record_response": _before_record_response,
        # The host and port differ from run to run, and replay runs against a dead address.
        "match_on": ["method", "api_path", "query", "json_body"],
        "decode_compressed_response": True,
        "allow_playback_repeats": True,  # test_stream_time replays one answer many times
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    return str(CASSETTES / request.module.__name__.rsplit(".", 1)[-1])


def replaying(config: pytest.Config) -> bool:
    return config.getoption("--record-mode", default=None) in (None, "none")


@pytest.fixture(scope="session")
def recording_target() -> Iterator[Target]:
    """What a recording talks to: the server the environment names, else a fresh emulator."""
    service = service_from_environment()
    if service is not None:
        yield service
        return
    with EmulatorServer(EmulatorConfig(api_keys=frozenset({SESSION_API_KEY}))) as server:
        yield emulator_target(server.url, SESSION_API_KEY, ASSISTANT_ID)


@pytest.fixture
def recorded(request: pytest.FixtureRequest) -> Target:
    """The recording target while recording; while replaying, a port where nothing listens."""
    if replaying(request.config):
        return Target(REPLAY_URL, SESSION_API_KEY, ASSISTANT_ID, REPLAY_URL, SESSION_API_KEY)
    target: Target = request.getfixturevalue("recording_target")
    return target


@pytest.fixture
def recorded_base_url(recorded: Target) -> str:
    return recorded.base_url


@pytest.fixture
def recorded_client(recorded: Target) -> Iterator[HaufeCopilotClient]:
    with HaufeCopilotClient(**recorded.connection(), max_retries=0) as c:
        yield c


@pytest.fixture
async def recorded_async_client(recorded: Target) -> AsyncIterator[AsyncHaufeCopilotClient]:
    async with AsyncHaufeCopilotClient(**recorded.connection(), max_retries=0) as c:
        yield c
