"""The wire contract (docs/contract.md), checked against a running server: `pytest -m live`.

Within `make test` these run against the session's emulator. With the usual environment set
(HAUFE_COPILOT_API_KEY, HAUFE_COPILOT_ASSISTANT_ID, and HAUFE_COPILOT_BASE_URL where it is not
https://api.haufe.ai; tests/targets.py) and the marker selected explicitly,

    pytest -m live

runs them against that server instead: a pass says the emulator still speaks what the service
speaks. The checks are on the wire (plain httpx, status codes, headers, JSON shapes, SSE frames)
and through the client's own models, never on what an answer says: the real assistant words
and cites differently from the emulator's corpus.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from haufe_copilot import HaufeCopilotClient
from haufe_copilot.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from haufe_copilot.types import AssistantAnswer, StreamChunk
from haufe_emulator import EmulatorServer
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY
from tests.targets import Target, emulator_target, service_from_environment

pytestmark = pytest.mark.live

FOLLOW_UP = "Gilt das auch für Teilzeitkräfte?"
TOOL_QUESTION = "Wie ist das Wetter in Berlin? Nutze get_weather."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Das aktuelle Wetter einer Stadt.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "die Stadt"}},
            "required": ["city"],
        },
    },
}
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
STATUSES = {"pending", "processing", "completed", "failed", "cancelled", "error"}
EVENTS = {"status", "delta", "thinking", "tool_call", "error", "done"}


def _live_selected(config: pytest.Config) -> bool:
    """Whether this run asked for the live suite by name (`-m live`), not just ran everything."""
    return "live" in (config.getoption("markexpr", default="") or "")


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest) -> Target:
    service = service_from_environment() if _live_selected(request.config) else None
    if service is not None:
        return service
    server: EmulatorServer = request.getfixturevalue("emulator")
    return emulator_target(server.url, SESSION_API_KEY, ASSISTANT_ID)


@pytest.fixture(scope="module")
def assistant_http(target: Target) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=target.base_url, headers={"api-key": target.api_key}, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def platform_http(target: Target) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {target.platform_api_key}"}
    with httpx.Client(base_url=target.platform_base_url, headers=headers, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def live_client(target: Target) -> Iterator[HaufeCopilotClient]:
    with HaufeCopilotClient(**target.connection()) as client:
        yield client


def ask(target: Target, text: str = QUESTION) -> dict[str, Any]:
    return {"assistant_id": target.assistant_id, "messages": [{"role": "user", "content": text}]}


def assert_timestamp(value: Any) -> None:
    assert isinstance(value, str)
    datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_sources(sources: Any) -> None:
    assert isinstance(sources, list)
    for source in sources:
        assert isinstance(source["content"], str) and source["content"]
        assert isinstance(source["meta_data"], dict)
        for key in ("document_title", "section"):
            assert isinstance(source["meta_data"].get(key, ""), (str, type(None)))


def assert_error_body(response: httpx.Response, status: int, codes: set[str]) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] in codes, body
    assert isinstance(body["detail"], (str, list)) and body["detail"]
    return dict(body)


def ndjson_objects(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def sse_frames(response: httpx.Response) -> list[dict[str, str]]:
    """The frames of an SSE body: each a dict of its fields (`data` lines joined)."""
    frames: list[dict[str, str]] = []
    for block in response.text.replace("\r\n", "\n").split("\n\n"):
        frame: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            frame[name] = frame[name] + "\n" + value if name in frame else value
        if frame:
            frames.append(frame)
    return frames


# -- the assistant API ------------------------------------------------------------------------


def test_a_whole_answer_has_the_documented_shape(target: Target, assistant_http: httpx.Client) -> None:
    response = assistant_http.post("/agents/v1/chat/completions", json=ask(target))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert answer["role"] == "assistant" and isinstance(answer["content"], str) and answer["content"]
    assert isinstance(answer["id"], str) and isinstance(answer["thread_id"], str)
    assert_timestamp(answer["created_at"])
    assert_sources(answer["sources"])
    meta = answer["meta_data"]
    assert isinstance(meta["intent"], str) and isinstance(meta["legal_advice"], bool)
    assert isinstance(meta["type"], str)
    AssistantAnswer.model_validate(answer)  # and the client's model reads it


def test_a_streamed_answer_is_ndjson_deltas(target: Target, assistant_http: httpx.Client) -> None:
    response = assistant_http.post(
        "/agents/v1/chat/completions/stream", json=ask(target), headers={"Accept": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    chunks = ndjson_objects(response)
    assert len(chunks) > 1
    assert len({c["message_id"] for c in chunks}) == 1 and len({c["thread_id"] for c in chunks}) == 1
    for chunk in chunks:
        assert_timestamp(chunk["created_at"])
        assert isinstance(chunk["delta"]["content"], str)
        assert_sources(chunk["delta"].get("sources", []))
        StreamChunk.model_validate(chunk)
    assert "".join(c["delta"]["content"] for c in chunks).strip()
    assert any(c["delta"].get("sources") for c in chunks), "no delta carried the sources"


@pytest.mark.parametrize("stream", [False, True], ids=["blocking", "streaming"])
def test_a_thread_continues_with_only_the_new_turn(
    live_client: HaufeCopilotClient, target: Target, stream: bool
) -> None:
    first = live_client.assistant.chat(assistant_id=target.assistant_id, messages=ask(target)["messages"])
    follow_up_messages = ask(target, FOLLOW_UP)["messages"]
    if stream:
        follow_up = live_client.assistant.stream(
            assistant_id=target.assistant_id, messages=follow_up_messages, thread_id=first.thread_id
        ).get_final_answer()
    else:
        follow_up = live_client.assistant.chat(
            assistant_id=target.assistant_id, messages=follow_up_messages, thread_id=first.thread_id
        )
    assert follow_up.thread_id == first.thread_id and follow_up.id != first.id
    assert follow_up.content


def test_a_wrong_key_is_401_unauthorized(target: Target, assistant_http: httpx.Client) -> None:
    response = assistant_http.post(
        "/agents/v1/chat/completions",
        json=ask(target),
        headers={"api-key": "sk-wrong-" + secrets.token_hex(8)},
    )
    assert_error_body(response, 401, {"unauthorized"})


def test_an_unknown_assistant_is_refused(assistant_http: httpx.Client) -> None:
    body = {"assistant_id": str(uuid.uuid4()), "messages": [{"role": "user", "content": QUESTION}]}
    response = assistant_http.post("/agents/v1/chat/completions", json=body)
    if response.status_code == 403:
        assert_error_body(response, 403, {"assistant_not_available"})
    else:
        assert_error_body(response, 404, {"assistant_not_found"})


def test_an_unknown_thread_is_404(target: Target, assistant_http: httpx.Client) -> None:
    response = assistant_http.post(
        "/agents/v1/chat/completions", params={"thread_id": str(uuid.uuid4())}, json=ask(target, FOLLOW_UP)
    )
    assert_error_body(response, 404, {"resource_not_found", "thread_not_found"})


def test_a_missing_field_is_a_422_validation_error(target: Target, assistant_http: httpx.Client) -> None:
    response = assistant_http.post("/agents/v1/chat/completions", json={"messages": ask(target)["messages"]})
    body = assert_error_body(response, 422, {"validation_error"})
    (problem,) = [p for p in body["detail"] if p["loc"] == ["body", "assistant_id"]]
    assert isinstance(problem["message"], str) and isinstance(problem["type"], str)


def test_a_stack_ending_with_the_assistant_is_400(target: Target, assistant_http: httpx.Client) -> None:
    body = ask(target)
    body["messages"].append({"role": "assistant", "content": "Zwei Wochen."})
    assert_error_body(
        assistant_http.post("/agents/v1/chat/completions", json=body), 400, {"incorrect_stack_ending"}
    )


def test_the_client_types_the_documented_errors(target: Target, live_client: HaufeCopilotClient) -> None:
    with pytest.raises((NotFoundError, PermissionDeniedError)):
        live_client.assistant.chat(assistant_id=str(uuid.uuid4()), messages=ask(target)["messages"])
    with pytest.raises(BadRequestError) as stack:
        live_client.assistant.chat(
            assistant_id=target.assistant_id,
            messages=[*ask(target)["messages"], {"role": "assistant", "content": "Zwei Wochen."}],
        )
    assert stack.value.error_code == "incorrect_stack_ending" and stack.value.status_code == 400
    with HaufeCopilotClient(**{**target.connection(), "api_key": "sk-wrong-key"}, max_retries=0) as wrong:
        with pytest.raises(AuthenticationError):
            wrong.assistant.chat(assistant_id=target.assistant_id, messages=ask(target)["messages"])


# -- completions --------------------------------------------------------------------------------


def completion_body(**fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": QUESTION}], **fields}


def test_a_json_completion_has_session_and_usage(platform_http: httpx.Client) -> None:
    response = platform_http.post(
        "/api/v1/chat/completions", json=completion_body(), headers={"Accept": "application/json"}
    )
    assert response.status_code == 200, response.text
    completion = response.json()
    assert completion["object"] == "chat.completion" and isinstance(completion["id"], str)
    assert isinstance(completion["created"], int) and isinstance(completion["model"], str)
    (choice,) = completion["choices"]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["finish_reason"] == "stop"
    assert isinstance(completion["session_id"], str) and completion["session_id"]
    usage = completion["usage"]
    assert all(isinstance(usage[k], int) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))


def test_a_session_id_given_is_kept(platform_http: httpx.Client) -> None:
    session_id = str(uuid.uuid4())
    response = platform_http.post(
        "/api/v1/chat/completions",
        json=completion_body(session_id=session_id),
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["session_id"] == session_id


def test_an_sse_completion_ends_with_usage_then_done(platform_http: httpx.Client) -> None:
    response = platform_http.post(
        "/api/v1/chat/completions", json=completion_body(stream=True), headers={"Accept": "text/event-stream"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    data = [frame["data"] for frame in sse_frames(response) if "data" in frame]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"] == [] and isinstance(chunks[-1]["usage"]["total_tokens"], int)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1] if c["choices"])
    assert text.strip()


def test_sse_tool_calls_come_as_fragments(platform_http: httpx.Client) -> None:
    body = completion_body(stream=True, tools=[WEATHER_TOOL], tool_choice=FORCE_WEATHER)
    body["messages"] = [{"role": "user", "content": TOOL_QUESTION}]
    response = platform_http.post(
        "/api/v1/chat/completions", json=body, headers={"Accept": "text/event-stream"}
    )
    assert response.status_code == 200, response.text
    data = [frame["data"] for frame in sse_frames(response) if "data" in frame]
    assert data[-1] == "[DONE]"
    fragments = [
        call
        for chunk in map(json.loads, data[:-1])
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or []
    ]
    assert fragments, "no tool call"
    first = fragments[0]
    assert isinstance(first["id"], str) and first["function"]["name"] == "get_weather"
    arguments = "".join(
        f["function"].get("arguments") or "" for f in fragments if f["index"] == first["index"]
    )
    assert isinstance(json.loads(arguments)["city"], str)
    finishes = [c["finish_reason"] for chunk in map(json.loads, data[:-1]) for c in chunk["choices"]]
    assert "tool_calls" in finishes


def test_the_client_reads_a_tool_call(live_client: HaufeCopilotClient) -> None:
    completion = live_client.completions.create(
        messages=[{"role": "user", "content": TOOL_QUESTION}], tools=[WEATHER_TOOL], tool_choice=FORCE_WEATHER
    )
    (call, *_) = completion.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)


def test_tools_over_json_are_a_400(platform_http: httpx.Client) -> None:
    response = platform_http.post(
        "/api/v1/chat/completions",
        json=completion_body(tools=[WEATHER_TOOL]),
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400, response.text


def test_platform_validation_errors_have_fastapi_shape(platform_http: httpx.Client) -> None:
    response = platform_http.post(
        "/api/v1/chat/completions", json={"model": "x"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    assert all(isinstance(p["loc"], list) and "msg" in p and "type" in p for p in detail)
    assert any(p["loc"][-1] == "messages" for p in detail)


def test_a_wrong_bearer_is_401(target: Target) -> None:
    with httpx.Client(base_url=target.platform_base_url, timeout=60) as http:
        response = http.post(
            "/api/v1/chat/completions",
            json=completion_body(),
            headers={
                "Accept": "application/json",
                "Authorization": "Bearer sk-wrong-" + secrets.token_hex(8),
            },
        )
    assert response.status_code == 401, response.text


# -- async streams ---------------------------------------------------------------------------


def start_stream(platform_http: httpx.Client, **fields: Any) -> str:
    stream_id = "contract-" + secrets.token_hex(8)
    response = platform_http.post(
        "/api/v1/messages/async",
        params={"stream_id": stream_id},
        json={"messages": [{"role": "user", "content": QUESTION}], **fields},
    )
    assert response.status_code == 202, response.text
    handle = response.json()
    assert handle["stream_id"] == stream_id and handle["status"] == "pending"
    assert isinstance(handle["message"], str)
    return stream_id


def observe(
    platform_http: httpx.Client, stream_id: str, last_event_id: int | None = None
) -> list[dict[str, Any]]:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    response = platform_http.get(f"/api/v1/messages/async/{stream_id}/stream", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for frame in sse_frames(response):
        if "data" not in frame:
            continue
        assert frame.get("event") in EVENTS, frame
        events.append({"id": int(frame["id"]), "event": frame["event"], "data": json.loads(frame["data"])})
    return events


def test_an_async_stream_starts_reports_and_streams_numbered_events(platform_http: httpx.Client) -> None:
    stream_id = start_stream(platform_http)
    status = platform_http.get(f"/api/v1/messages/async/{stream_id}/status")
    assert status.status_code == 200 and status.json()["stream_id"] == stream_id
    assert status.json()["status"] in STATUSES
    events = observe(platform_http, stream_id)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["event"] == "done" and events[-1]["data"]["status"] == "completed"
    deltas = [e["data"]["content"] for e in events if e["event"] == "delta"]
    assert deltas and "".join(deltas).strip()
    for event in events:
        if event["event"] == "status":
            assert event["data"]["status"] in STATUSES
    final = platform_http.get(f"/api/v1/messages/async/{stream_id}/status").json()
    assert final["status"] == "completed"


def test_an_async_stream_resumes_after_last_event_id(platform_http: httpx.Client) -> None:
    stream_id = start_stream(platform_http)
    everything = observe(platform_http, stream_id)
    assert len(everything) >= 3
    middle = everything[len(everything) // 2]["id"]
    assert observe(platform_http, stream_id, last_event_id=middle) == everything[middle:]
    assert observe(platform_http, stream_id, last_event_id=everything[-1]["id"]) == []


def test_async_tool_calls_are_events(platform_http: httpx.Client) -> None:
    stream_id = "contract-" + secrets.token_hex(8)
    response = platform_http.post(
        "/api/v1/messages/async",
        params={"stream_id": stream_id},
        json={
            "messages": [{"role": "user", "content": TOOL_QUESTION}],
            "tools": [WEATHER_TOOL],
            "tool_choice": FORCE_WEATHER,
        },
    )
    assert response.status_code == 202, response.text
    calls = [e["data"] for e in observe(platform_http, stream_id) if e["event"] == "tool_call"]
    assert calls, "no tool_call event"
    first = calls[0]
    assert first["name"] == "get_weather" and isinstance(first["id"], str)
    arguments = "".join(c.get("arguments") or "" for c in calls if c["index"] == first["index"])
    assert isinstance(json.loads(arguments)["city"], str)


def test_an_async_stream_cancels_or_says_it_finished(platform_http: httpx.Client) -> None:
    stream_id = start_stream(platform_http)
    response = platform_http.post(f"/api/v1/messages/async/{stream_id}/cancel")
    if response.status_code == 409:  # it finished first
        assert_error_body(response, 409, {"conflict"})
        return
    assert response.status_code == 200, response.text
    assert response.json() == {"stream_id": stream_id, "status": "cancelled"}
    assert platform_http.get(f"/api/v1/messages/async/{stream_id}/status").json()["status"] == "cancelled"
    assert observe(platform_http, stream_id)[-1]["event"] == "done"


def test_an_unknown_async_stream_is_404(platform_http: httpx.Client) -> None:
    response = platform_http.get(f"/api/v1/messages/async/unknown-{secrets.token_hex(8)}/status")
    assert_error_body(response, 404, {"resource_not_found"})


def test_the_client_resumes_an_async_stream(
    live_client: HaufeCopilotClient, platform_http: httpx.Client
) -> None:
    stream_id = start_stream(platform_http)
    everything = list(live_client.streams.events(stream_id))
    assert everything[-1].event == "done"
    middle = everything[len(everything) // 2]
    resumed = list(live_client.streams.events(stream_id, last_event_id=middle.id))
    assert [e.id for e in resumed] == [e.id for e in everything if e.id > middle.id]


def test_an_invalid_async_body_is_a_422(platform_http: httpx.Client) -> None:
    response = platform_http.post("/api/v1/messages/async", json={"model": "x"})
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
