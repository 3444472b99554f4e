"""The one switch that records cassettes from the real service: the usual environment picks the
target, and what is recorded holds neither the key nor the assistant id, yet replays for any id."""

from __future__ import annotations

import json

import pytest
from vcr.request import Request

from tests.conftest import (
    ASSISTANT_ID,
    _before_record_request,
    _before_record_response,
    _match_api_path,
    _match_body,
    service_from_environment,
)
from tests.targets import ASSISTANT_PLACEHOLDER

ENVIRONMENT = (
    "HAUFE_COPILOT_API_KEY",
    "HAUFE_COPILOT_BASE_URL",
    "HAUFE_COPILOT_ASSISTANT_ID",
    "HAUFE_COPILOT_PLATFORM_BASE_URL",
    "HAUFE_COPILOT_PLATFORM_API_KEY",
)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_a_key_the_emulator_is_used(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("HAUFE_COPILOT_BASE_URL", "https://gateway.example")
    assert service_from_environment() is None


def test_a_key_names_the_service(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("HAUFE_COPILOT_API_KEY", "sk-live-key-for-this-test")
    clean_environment.setenv("HAUFE_COPILOT_ASSISTANT_ID", "tenant-assistant")
    target = service_from_environment()
    assert target is not None and not target.is_emulator
    assert target.base_url == "https://api.haufe.ai" and target.platform_base_url == target.base_url
    assert target.assistant_id == "tenant-assistant"
    assert target.platform_api_key == target.api_key == "sk-live-key-for-this-test"
    assert "sk-live-key-for-this-test" not in repr(target)
    clean_environment.setenv("HAUFE_COPILOT_BASE_URL", "https://gateway.example/haufe")
    clean_environment.setenv("HAUFE_COPILOT_PLATFORM_BASE_URL", "https://platform.example")
    target = service_from_environment()
    assert target is not None
    assert (target.base_url, target.platform_base_url) == (
        "https://gateway.example/haufe",
        "https://platform.example",
    )


def test_a_key_without_an_assistant_is_a_usage_error(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("HAUFE_COPILOT_API_KEY", "sk-live-key-for-this-test")
    with pytest.raises(pytest.UsageError, match="HAUFE_COPILOT_ASSISTANT_ID"):
        service_from_environment()


def request(body: dict[str, object], url: str = "https://api.haufe.ai/agents/v1/chat/completions") -> Request:
    headers = {"api-key": "sk-live-key", "Authorization": "Bearer t", "x-auth-token": "t", "accept": "*/*"}
    return Request("POST", url, json.dumps(body).encode(), headers)


def test_what_is_recorded_holds_no_credential_and_no_assistant_id() -> None:
    recorded = _before_record_request(request({"assistant_id": "tenant-assistant", "messages": []}))
    assert all(
        recorded.headers[name] == "<redacted>" for name in ("api-key", "Authorization", "x-auth-token")
    )
    assert recorded.headers["accept"] == "*/*"
    assert json.loads(recorded.body)["assistant_id"] == ASSISTANT_PLACEHOLDER
    response = _before_record_response(
        {"status": {"code": 200}, "headers": {"set-cookie": ["session=abc"], "x-request-id": ["r1"]}}
    )
    assert response["headers"] == {"set-cookie": ["<redacted>"], "x-request-id": ["r1"]}


def test_a_cassette_replays_for_any_assistant_and_base_path() -> None:
    recorded = _before_record_request(
        request({"assistant_id": "tenant-assistant", "messages": [{"role": "user", "content": "Frage"}]})
    )
    replayed = request(
        {"assistant_id": ASSISTANT_ID, "messages": [{"role": "user", "content": "Frage"}]},
        url="http://127.0.0.1:9/agents/v1/chat/completions",
    )
    _match_body(recorded, _before_record_request(replayed))
    _match_api_path(
        request({}, url="https://gateway.example/haufe/agents/v1/chat/completions"),
        request({}, url="http://127.0.0.1:9/agents/v1/chat/completions"),
    )
    other_question = request(
        {"assistant_id": ASSISTANT_ID, "messages": [{"role": "user", "content": "Andere"}]}
    )
    with pytest.raises(AssertionError):
        _match_body(recorded, other_question)
    with pytest.raises(AssertionError):
        _match_api_path(recorded, request({}, url="http://127.0.0.1:9/agents/v1/chat/completions/stream"))
