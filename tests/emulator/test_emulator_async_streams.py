"""The emulator's async-streams API (seed 003) on the wire, with plain httpx and a tiny SSE parser.

What the emulator *sent* on each observation connection is read from
`server.app.state.async_streams` (an `AsyncStreamRegistry`): `observations_for(stream_id)` or the
`observations` deque, one `Observation(stream_id, last_event_id, sent, request_id, record)` per
connection, matched here by the response's `x-request-id`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema
import pytest

from haufe_emulator import EmulatorConfig, EmulatorServer
from haufe_emulator.async_streams import AsyncStreamRegistry, Observation
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY, user, wait_for

ASYNC = "/api/v1/messages/async"
BEARER = {"Authorization": f"Bearer {SESSION_API_KEY}"}
FINISHED = {"completed", "failed", "cancelled", "error"}


# -- helpers ----------------------------------------------------------------------------------


@dataclass
class Event:
    id: int | None
    event: str | None
    data: Any


@dataclass
class Parsed:
    events: list[Event]
    comments: list[str]


def parse_sse(text: str) -> Parsed:
    """Complete events (a blank line ends one) and comment lines; an unfinished tail is dropped."""
    events: list[Event] = []
    comments: list[str] = []
    fields: dict[str, list[str]] = {}
    for line in text.split("\n"):
        if line == "":
            if fields:
                raw_id = fields.get("id", [None])[-1]
                data = "\n".join(fields.get("data", []))
                events.append(
                    Event(
                        int(raw_id) if raw_id is not None else None,
                        fields.get("event", [None])[-1],
                        json.loads(data) if data else None,
                    )
                )
            fields = {}
        elif line.startswith(":"):
            comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
    return Parsed(events, comments)


def registry(server: EmulatorServer) -> AsyncStreamRegistry:
    found: AsyncStreamRegistry = server.app.state.async_streams
    return found


def observation_of(server: EmulatorServer, response: httpx.Response) -> Observation:
    """The emulator's record of the observation that `response` was, once the connection ended."""
    request_id = response.headers["x-request-id"]
    found: Observation = wait_for(
        lambda: next(
            (
                o
                for o in list(registry(server).observations)
                if o.request_id == request_id and o.record.ended_at is not None
            ),
            None,
        )
    )
    return found


def body(question: str = QUESTION, **fields: Any) -> dict[str, Any]:
    return {"messages": user(question), **fields}


def start(
    http: httpx.Client,
    payload: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    stream_id: str | None = None,
) -> str:
    params = {"stream_id": stream_id} if stream_id else {}
    response = http.post(ASYNC, params=params, json=payload or body(), headers=headers or {})
    assert response.status_code == 202, response.text
    stream_id_: str = response.json()["stream_id"]
    return stream_id_


def status(http: httpx.Client, stream_id: str) -> dict[str, Any]:
    response = http.get(f"{ASYNC}/{stream_id}/status")
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    return payload


def wait_finished(http: httpx.Client, stream_id: str, timeout: float = 5.0) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        now = status(http, stream_id)
        return now if now["status"] in FINISHED else None

    found: dict[str, Any] = wait_for(finished, timeout)
    return found


def observe(
    http: httpx.Client,
    stream_id: str,
    last_event_id: int | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[httpx.Response, Parsed]:
    sent_headers = dict(headers or {})
    if last_event_id is not None:
        sent_headers["Last-Event-ID"] = str(last_event_id)
    response = http.get(f"{ASYNC}/{stream_id}/stream", headers=sent_headers)
    assert response.status_code == 200, response.text
    return response, parse_sse(response.text)


def deltas(events: list[Event]) -> str:
    return "".join(e.data["content"] for e in events if e.event == "delta")


@pytest.fixture
def http(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, headers=BEARER, timeout=20) as client:
        yield client


@pytest.fixture
def custom() -> Iterator[Any]:
    """Start an emulator of one's own config: `custom(async_stream_ttl=0.2)` -> (server, http)."""
    servers: list[EmulatorServer] = []
    clients: list[httpx.Client] = []

    def make(**config: Any) -> tuple[EmulatorServer, httpx.Client]:
        server = EmulatorServer(EmulatorConfig(api_keys=frozenset({SESSION_API_KEY}), **config)).start()
        servers.append(server)
        clients.append(httpx.Client(base_url=server.url, headers=BEARER, timeout=20))
        return server, clients[-1]

    yield make
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


# -- initiating -------------------------------------------------------------------------------


def test_initiate_answers_202_pending_with_the_seed_fields(http: httpx.Client) -> None:
    response = http.post(ASYNC, json=body())
    assert response.status_code == 202
    payload = response.json()
    assert set(payload) == {"stream_id", "status", "message"}
    assert payload["status"] == "pending"
    assert payload["message"] == "Chat stream initiated successfully"
    assert isinstance(payload["stream_id"], str) and payload["stream_id"]
    assert response.headers["x-request-id"]
    other = start(http)
    assert other != payload["stream_id"]


def test_a_caller_chosen_stream_id_is_used_and_a_second_use_conflicts(http: httpx.Client) -> None:
    chosen = f"Mein.Strom_{secrets.token_hex(4)}-1"
    assert start(http, stream_id=chosen) == chosen
    assert status(http, chosen)["stream_id"] == chosen
    again = http.post(ASYNC, params={"stream_id": chosen}, json=body())
    assert again.status_code == 409
    assert again.json() == {"error_code": "conflict", "detail": "A stream with this stream_id already exists"}
    longest = "x" * 127 + secrets.token_hex(1)[:1]
    assert start(http, stream_id=longest) == longest


@pytest.mark.parametrize("bad", ["with space", "slash/inside", "ümlaut", "x" * 129, "semi;colon"])
def test_a_stream_id_with_other_characters_or_too_long_is_422(http: httpx.Client, bad: str) -> None:
    response = http.post(ASYNC, params={"stream_id": bad}, json=body())
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["query", "stream_id"]
    assert "128" in problem["msg"] and "A-Z" in problem["msg"]


# -- the event sequence -----------------------------------------------------------------------


def test_statuses_over_time_pending_processing_completed(http: httpx.Client) -> None:
    stream_id = start(http, headers={"x-emulator-delta-delay": "0.05", "x-emulator-delta-count": "10"})
    seen = [status(http, stream_id)["status"]]
    assert seen == ["pending"]  # the first event comes only after one delay
    while seen[-1] not in FINISHED:
        now = status(http, stream_id)["status"]
        if now != seen[-1]:
            seen.append(now)
        time.sleep(0.005)
    assert seen == ["pending", "processing", "completed"]
    assert status(http, stream_id) == {"stream_id": stream_id, "status": "completed"}


def test_the_full_event_sequence(emulator: EmulatorServer, http: httpx.Client) -> None:
    stream_id = start(http)
    assert wait_finished(http, stream_id)["status"] == "completed"
    response, parsed = observe(http, stream_id)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in response.headers
    events = parsed.events
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[0].event == "status" and events[0].data == {"status": "processing"}
    assert all(e.event == "delta" for e in events[1:-1]) and len(events) > 10
    assert all(set(e.data) == {"content"} for e in events[1:-1])
    assert events[-1].event == "done"
    done = events[-1].data
    assert set(done) == {"status", "usage"} and done["status"] == "completed"
    usage = done["usage"]
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] == len(QUESTION.split())
    # The same answer as the assistant API gives for the question on its own.
    blocking = http.post(
        "/agents/v1/chat/completions",
        headers={"api-key": SESSION_API_KEY},
        json={"assistant_id": ASSISTANT_ID, "messages": user()},
    ).json()
    assert deltas(events) == blocking["content"]
    assert observation_of(emulator, response).sent == [e.id for e in events]


def test_an_observer_attached_early_gets_the_live_events_and_the_end(http: httpx.Client) -> None:
    stream_id = start(http, headers={"x-emulator-delta-delay": "0.01", "x-emulator-delta-count": "15"})
    _, parsed = observe(http, stream_id)  # attaches while pending; ends after done
    assert [e.id for e in parsed.events] == list(range(1, 18))
    assert [e.event for e in parsed.events] == ["status"] + ["delta"] * 15 + ["done"]


def test_thinking_comes_before_the_answer_only_when_enabled(http: httpx.Client) -> None:
    for thinking in ({"enabled": True}, {"type": "enabled", "budget_tokens": 4000}):
        stream_id = start(http, body(thinking=thinking))
        wait_finished(http, stream_id)
        events = observe(http, stream_id)[1].events
        kinds = [e.event for e in events]
        first_delta = kinds.index("delta")
        assert kinds[0] == "status"
        assert set(kinds[1:first_delta]) == {"thinking"}
        assert "thinking" not in kinds[first_delta:]
        thought = "".join(e.data["content"] for e in events if e.event == "thinking")
        assert "§" in thought and QUESTION in thought
    budget = start(http, body(thinking={"enabled": True, "budget_tokens": 3}))
    wait_finished(http, budget)
    assert [e.event for e in observe(http, budget)[1].events].count("thinking") == 3
    for off in (None, {"enabled": False}, {"type": "disabled"}):
        plain = start(http, body(thinking=off) if off else body())
        wait_finished(http, plain)
        assert "thinking" not in [e.event for e in observe(http, plain)[1].events]


def test_response_format_json_schema_gives_json_valid_against_the_schema(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "frist_wochen": {"type": "integer", "minimum": 0},
            "gesetz": {"type": "string"},
            "gilt_in_probezeit": {"type": "boolean"},
            "paragraphen": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["frist_wochen", "gesetz", "gilt_in_probezeit", "paragraphen"],
        "additionalProperties": False,
    }
    payload = body(
        "Gilt im BGB eine Frist von 2 Wochen in der Probezeit?",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "frist", "schema": schema, "strict": True},
        },
    )
    stream_id = start(http, payload)
    assert wait_finished(http, stream_id)["status"] == "completed"
    events = observe(http, stream_id)[1].events
    assert sum(e.event == "delta" for e in events) > 1  # streamed in pieces, like text
    value = json.loads(deltas(events))
    jsonschema.validate(value, schema)


def test_response_format_takes_what_the_question_leaves_open_from_the_cited_passages(
    http: httpx.Client,
) -> None:
    schema = {
        "type": "object",
        "properties": {"frist": {"type": "string"}, "wochen": {"type": "integer"}},
        "required": ["frist", "wochen"],
    }
    payload = body(
        "Welche Kündigungsfrist gilt in der Probezeit?",
        response_format={"type": "json_schema", "json_schema": {"name": "Frist", "schema": schema}},
    )
    stream_id = start(http, payload)
    assert wait_finished(http, stream_id)["status"] == "completed"
    # § 622 Abs. 3 BGB: "mit einer Frist von zwei Wochen" (issue 17: it was wochen=0)
    assert json.loads(deltas(observe(http, stream_id)[1].events)) == {"frist": "zwei Wochen", "wochen": 2}


def test_stream_false_sends_the_answer_as_one_delta_and_max_tokens_caps_it(http: httpx.Client) -> None:
    whole = start(http, body(stream=False))
    wait_finished(http, whole)
    events = observe(http, whole)[1].events
    assert [e.event for e in events] == ["status", "delta", "done"]
    capped = start(http, body(max_tokens=5))
    wait_finished(http, capped)
    events = observe(http, capped)[1].events
    assert [e.event for e in events].count("delta") == 5
    assert events[-1].data["usage"]["completion_tokens"] == 5


# -- Last-Event-ID: every cut point -----------------------------------------------------------


def test_every_last_event_id_gets_exactly_the_events_after_it(
    emulator: EmulatorServer, http: httpx.Client
) -> None:
    stream_id = start(http, headers={"x-emulator-delta-count": "50"})
    assert wait_finished(http, stream_id)["status"] == "completed"
    whole_response, whole = observe(http, stream_id)
    total = len(whole.events)
    assert total == 52  # status, 50 deltas, done
    assert [e.event for e in whole.events] == ["status"] + ["delta"] * 50 + ["done"]
    assert observation_of(emulator, whole_response).sent == list(range(1, total + 1))
    for k in range(total + 1):
        response, parsed = observe(http, stream_id, last_event_id=k)
        recorded = observation_of(emulator, response)
        assert recorded.stream_id == stream_id and recorded.last_event_id == k
        assert recorded.sent == list(range(k + 1, total + 1)), k
        assert recorded.record.outcome == "complete"
        assert parsed.events == whole.events[k:], k
    # An id beyond the end of a finished stream: nothing, and the response ends.
    response, parsed = observe(http, stream_id, last_event_id=total + 10)
    assert parsed.events == [] and observation_of(emulator, response).sent == []


def test_last_event_id_as_query_parameter_and_a_bad_one(emulator: EmulatorServer, http: httpx.Client) -> None:
    stream_id = start(http, headers={"x-emulator-delta-count": "3"})
    wait_finished(http, stream_id)
    response = http.get(f"{ASYNC}/{stream_id}/stream", params={"last_event_id": "2"})
    assert [e.id for e in parse_sse(response.text).events] == [3, 4, 5]
    assert observation_of(emulator, response).last_event_id == 2
    for bad in ("-1", "drei"):
        refused = http.get(f"{ASYNC}/{stream_id}/stream", headers={"Last-Event-ID": bad})
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]


def test_re_attaching_mid_stream_gets_the_rest_then_the_live_events(
    emulator: EmulatorServer, http: httpx.Client
) -> None:
    stream_id = start(http, headers={"x-emulator-delta-delay": "0.01", "x-emulator-delta-count": "30"})
    wait_for(lambda: status(http, stream_id)["status"] == "processing")
    response, parsed = observe(http, stream_id, last_event_id=5)
    assert [e.id for e in parsed.events] == list(range(6, 33))
    assert parsed.events[-1].event == "done"
    assert observation_of(emulator, response).sent == list(range(6, 33))


def test_cut_after_closes_the_observation_abruptly_after_exactly_n_events(
    emulator: EmulatorServer, http: httpx.Client
) -> None:
    stream_id = start(http, headers={"x-emulator-delta-count": "20"})
    wait_finished(http, stream_id)
    for n, after in ((0, None), (7, None), (4, 10)):
        headers = {"x-emulator-cut-after": str(n)}
        if after is not None:
            headers["Last-Event-ID"] = str(after)
        received = b""
        with (
            pytest.raises(httpx.RemoteProtocolError),
            http.stream("GET", f"{ASYNC}/{stream_id}/stream", headers=headers) as response,
        ):
            assert response.status_code == 200
            for chunk in response.iter_raw():
                received += chunk
        recorded = observation_of(emulator, response)
        first = (after or 0) + 1
        assert recorded.sent == list(range(first, first + n))
        assert recorded.record.outcome == "cut"
        assert [e.id for e in parse_sse(received.decode()).events] == recorded.sent


def test_malformed_after_sends_a_frame_that_is_not_json(emulator: EmulatorServer, http: httpx.Client) -> None:
    stream_id = start(http, headers={"x-emulator-delta-count": "5"})
    wait_finished(http, stream_id)
    response = http.get(f"{ASYNC}/{stream_id}/stream", headers={"x-emulator-malformed-after": "2"})
    with pytest.raises(json.JSONDecodeError):
        parse_sse(response.text)
    recorded = observation_of(emulator, response)
    assert recorded.sent == [1, 2] and recorded.record.outcome == "malformed"


def test_delay_on_an_observation_delays_its_first_byte(http: httpx.Client) -> None:
    stream_id = start(http, headers={"x-emulator-delta-count": "1"})
    wait_finished(http, stream_id)
    began = time.monotonic()
    _, parsed = observe(http, stream_id, headers={"x-emulator-delay": "0.3"})
    assert time.monotonic() - began >= 0.3
    assert len(parsed.events) == 3


async def test_two_observers_at_once_see_the_same_events(emulator: EmulatorServer) -> None:
    async with httpx.AsyncClient(base_url=emulator.url, headers=BEARER, timeout=20) as http:
        response = await http.post(
            ASYNC, json=body(), headers={"x-emulator-delta-delay": "0.01", "x-emulator-delta-count": "25"}
        )
        stream_id = response.json()["stream_id"]

        async def watch() -> tuple[httpx.Response, Parsed]:
            answer = await http.get(f"{ASYNC}/{stream_id}/stream")
            return answer, parse_sse(answer.text)

        (first, a), (second, b) = await asyncio.gather(watch(), watch())
    assert a.events == b.events
    assert [e.id for e in a.events] == list(range(1, 28)) and a.events[-1].data["status"] == "completed"
    recorded = [observation_of(emulator, first), observation_of(emulator, second)]
    assert recorded[0].sent == recorded[1].sent == list(range(1, 28))
    assert recorded[0].request_id != recorded[1].request_id
    assert {o.request_id for o in registry(emulator).observations_for(stream_id)} >= {
        first.headers["x-request-id"],
        second.headers["x-request-id"],
    }


def test_a_keep_alive_comment_while_no_event_comes(custom: Any) -> None:
    server, http = custom()
    registry(server).keep_alive_interval = 0.05
    stream_id = start(http, headers={"x-emulator-delta-delay": "0.3", "x-emulator-delta-count": "1"})
    response, parsed = observe(http, stream_id)
    assert "keep-alive" in parsed.comments
    assert [e.event for e in parsed.events] == ["status", "delta", "done"]
    assert ": keep-alive\n\n" in response.text


# -- cancelling, failing, expiring ------------------------------------------------------------


def test_cancel_mid_answer_stops_the_stream_with_a_cancelled_done(
    emulator: EmulatorServer, http: httpx.Client
) -> None:
    stream_id = start(http, headers={"x-emulator-delta-delay": "0.02", "x-emulator-delta-count": "200"})
    wait_for(lambda: len(registry(emulator).get(stream_id).events) >= 6)  # type: ignore[union-attr]
    cancelled = http.post(f"{ASYNC}/{stream_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json() == {"stream_id": stream_id, "status": "cancelled"}
    assert status(http, stream_id) == {"stream_id": stream_id, "status": "cancelled"}
    events = observe(http, stream_id)[1].events
    assert events[-1].event == "done" and events[-1].data == {"status": "cancelled"}
    assert 5 <= sum(e.event == "delta" for e in events) < 200
    time.sleep(0.1)  # the task has stopped producing: nothing after done
    assert observe(http, stream_id)[1].events == events
    assert registry(emulator).get(stream_id).task.done()  # type: ignore[union-attr]


def test_cancel_while_observed_ends_the_observation(emulator: EmulatorServer, http: httpx.Client) -> None:
    stream_id = start(http, headers={"x-emulator-delta-delay": "0.02", "x-emulator-delta-count": "500"})
    result: dict[str, Any] = {}

    def watch() -> None:
        with httpx.Client(base_url=emulator.url, headers=BEARER, timeout=20) as other:
            result["parsed"] = observe(other, stream_id)[1]

    watcher = threading.Thread(target=watch)
    watcher.start()
    wait_for(lambda: registry(emulator).observations_for(stream_id))
    time.sleep(0.1)
    assert http.post(f"{ASYNC}/{stream_id}/cancel").status_code == 200
    watcher.join(timeout=5)
    assert not watcher.is_alive()
    assert result["parsed"].events[-1].data == {"status": "cancelled"}


def test_cancelling_a_finished_stream_is_409(http: httpx.Client) -> None:
    stream_id = start(http, headers={"x-emulator-delta-count": "2"})
    assert wait_finished(http, stream_id)["status"] == "completed"
    response = http.post(f"{ASYNC}/{stream_id}/cancel")
    assert response.status_code == 409
    assert response.json() == {"error_code": "conflict", "detail": "The stream has already finished"}
    again = start(http, headers={"x-emulator-delta-delay": "0.05"})
    assert http.post(f"{ASYNC}/{again}/cancel").status_code == 200  # while pending
    assert http.post(f"{ASYNC}/{again}/cancel").status_code == 409


def test_unknown_streams_are_404_everywhere(http: httpx.Client) -> None:
    for method, suffix in (("GET", "status"), ("GET", "stream"), ("POST", "cancel")):
        response = http.request(method, f"{ASYNC}/no-such-stream/{suffix}")
        assert response.status_code == 404, suffix
        assert response.json() == {"error_code": "resource_not_found", "detail": "Stream not found"}


def test_a_stream_error_sends_an_error_event_and_fails(http: httpx.Client) -> None:
    stream_id = start(
        http,
        headers={
            "x-emulator-stream-error": "internal_service_error",
            "x-emulator-stream-error-after": "3",
            "x-emulator-delta-count": "10",
        },
    )
    final = wait_finished(http, stream_id)
    assert final["status"] == "failed"
    assert final["error"]["error_code"] == "internal_service_error"
    assert isinstance(final["error"]["detail"], str)
    events = observe(http, stream_id)[1].events
    assert [e.event for e in events] == ["status", "delta", "delta", "delta", "error", "done"]
    assert events[-2].data == final["error"]
    assert events[-1].data == {"status": "failed"}
    # More deltas asked for than the answer has: the error still comes, after the last delta.
    late = start(
        http,
        headers={"x-emulator-stream-error": "api_timeout_error", "x-emulator-stream-error-after": "99"},
    )
    assert wait_finished(http, late)["status"] == "failed"
    assert [e.event for e in observe(http, late)[1].events][-2:] == ["error", "done"]


def test_finished_streams_expire_after_the_ttl(custom: Any) -> None:
    ttl = 0.3
    _, http = custom(async_stream_ttl=ttl)
    # Long enough (3 s) to be still running when the finished one has expired, on a busy machine too.
    running = start(http, headers={"x-emulator-delta-delay": "0.2", "x-emulator-delta-count": "15"})
    started_at = time.monotonic()
    done = start(http, headers={"x-emulator-delta-count": "1"})
    wait_finished(http, done)
    assert observe(http, done)[1].events
    wait_for(lambda: http.get(f"{ASYNC}/{done}/status").status_code == 404, timeout=10)
    assert time.monotonic() - started_at >= ttl  # not before its time
    for method, suffix in (("GET", "status"), ("GET", "stream"), ("POST", "cancel")):
        assert http.request(method, f"{ASYNC}/{done}/{suffix}").status_code == 404
    # Started before `done`, so older than the TTL by now: a running stream never expires.
    assert status(http, running)["status"] == "processing"
    assert wait_finished(http, running, timeout=15)["status"] == "completed"
    wait_for(lambda: http.get(f"{ASYNC}/{running}/status").status_code == 404, timeout=10)


def test_the_number_of_kept_streams_is_bounded_oldest_finished_first(custom: Any) -> None:
    server, http = custom()
    registry(server).max_streams = 3
    first, second = start(http, stream_id="s1"), start(http, stream_id="s2")
    wait_finished(http, first)
    wait_finished(http, second)
    slow = start(http, stream_id="slow", headers={"x-emulator-delta-delay": "0.2"})
    start(http, stream_id="s4")  # drops s1, the oldest finished
    assert http.get(f"{ASYNC}/s1/status").status_code == 404
    assert status(http, "s2")["status"] == "completed"
    wait_finished(http, "s4")
    start(http, stream_id="s5")  # drops s2
    assert http.get(f"{ASYNC}/s2/status").status_code == 404
    assert status(http, slow)["status"] in {"pending", "processing"}
    assert http.post(f"{ASYNC}/{slow}/cancel").status_code == 200


def test_a_full_registry_of_running_streams_is_429(custom: Any) -> None:
    server, http = custom()
    registry(server).max_streams = 2
    for name in ("r1", "r2"):
        start(http, stream_id=name, headers={"x-emulator-delta-delay": "0.5"})
    response = http.post(ASYNC, json=body(), params={"stream_id": "r3"})
    assert response.status_code == 429 and response.json()["error_code"] == "rate_limit_gateway"
    assert http.get(f"{ASYNC}/r3/status").status_code == 404
    for name in ("r1", "r2"):
        assert http.post(f"{ASYNC}/{name}/cancel").status_code == 200


def test_no_task_outlives_its_stream_or_the_server(custom: Any, caplog: pytest.LogCaptureFixture) -> None:
    server, http = custom()
    finished = start(http, headers={"x-emulator-delta-count": "3"})
    wait_finished(http, finished)
    cancelled = start(http, headers={"x-emulator-delta-delay": "0.05"})
    http.post(f"{ASYNC}/{cancelled}/cancel")
    assert wait_for(lambda: registry(server).running_tasks() == [])
    streams = registry(server)
    running = start(http, headers={"x-emulator-delta-delay": "5"})
    task = streams.get(running).task  # type: ignore[union-attr]
    assert task is not None and not task.done()
    with caplog.at_level(logging.WARNING):
        server.stop()
    assert task.done() and task.cancelled()
    assert streams.get(running).status == "cancelled"  # type: ignore[union-attr]
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]


# -- refused requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [
        {},
        {"Authorization": "Bearer sk-wrong"},
        {"Authorization": f"Basic {SESSION_API_KEY}"},
        {"api-key": SESSION_API_KEY},
    ],
)
def test_every_endpoint_needs_a_bearer_key(
    emulator: EmulatorServer, http: httpx.Client, auth: dict[str, str]
) -> None:
    stream_id = start(http, headers={"x-emulator-delta-count": "1"})
    with httpx.Client(base_url=emulator.url, headers=auth) as anonymous:
        for method, path in (
            ("POST", ASYNC),
            ("GET", f"{ASYNC}/{stream_id}/status"),
            ("GET", f"{ASYNC}/{stream_id}/stream"),
            ("POST", f"{ASYNC}/{stream_id}/cancel"),
        ):
            response = anonymous.request(method, path, json=body() if method == "POST" else None)
            assert response.status_code == 401, path
            assert response.json()["error_code"] == "unauthorized"


def test_an_undocumented_field_is_422_unless_lenient(http: httpx.Client, custom: Any) -> None:
    response = http.post(ASYNC, json=body(user_data={"x": 1}))
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "user_data"] and problem["type"] == "extra_forbidden"
    assert set(problem) == {"loc", "msg", "type"}
    _, lenient = custom(lenient=True)
    assert lenient.post(ASYNC, json=body(user_data={"x": 1})).status_code == 202


def test_every_documented_field_is_accepted(http: httpx.Client) -> None:
    payload = body(
        model="haufe-copilot-default",
        stream=True,
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        tool_choice="none",
        tool_context={"documents": ["Arbeitsvertrag.pdf"]},
        mcp_servers=[{"url": "https://mcp.example.com", "name": "law"}],
        response_format={"type": "text"},
        system={"prompt": "Antworte knapp.", "use_default_prompt": False, "citations": True},
        thinking={"enabled": False},
        priority=1,
        seed=42,
        min_p=0.05,
        top_p=0.9,
        temperature=0.2,
        top_k=40,
        repetition_penalty=1.1,
        presence_penalty=0.0,
        frequency_penalty=0.0,
        max_tokens=500,
        correlation_id="corr-123",
    )
    stream_id = start(http, payload)
    assert wait_finished(http, stream_id)["status"] == "completed"


@pytest.mark.parametrize(
    ("response_format", "hint"),
    [
        ({"type": "xml"}, "'text', 'json_schema', 'tool_call'"),
        ("json", "must be an object"),
        ({"type": "json_schema"}, "needs a json_schema object"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "must be a JSON Schema object"),
        ({"type": "json_schema", "json_schema": {"schema": "object"}}, "must be a JSON Schema object"),
        ({"type": "json_schema", "json_schema": {"schema": {"type": "array"}}}, '"type": "object"'),
        ({"type": "text", "json_schema": {"schema": {"type": "object"}}}, "use type 'json_schema'"),
        ({"type": "tool_call"}, "needs tools"),
    ],
)
def test_a_malformed_response_format_is_422_saying_what_to_fix(
    http: httpx.Client, response_format: Any, hint: str
) -> None:
    response = http.post(ASYNC, json=body(response_format=response_format))
    assert response.status_code == 422
    messages = [problem["msg"] for problem in response.json()["detail"]]
    assert any(hint in message for message in messages), messages


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"messages": []},
        {"messages": [{"role": "robot", "content": "Hallo"}]},
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "user", "content": None}]},
        {"messages": [{"role": "user", "content": "Hallo", "mood": "gut"}]},
        {"messages": user(), "thinking": {"enabled": True, "budget_tokens": 0}},
        {"messages": user(), "temperature": "warm"},
        {"messages": user(), "tool_choice": "sometimes"},
        {"messages": user(), "tool_choice": "required"},
        {"messages": user(), "tools": [{"type": "retrieval"}]},
        {"messages": user(), "system": "Antworte knapp."},
    ],
)
def test_malformed_bodies_are_422(http: httpx.Client, payload: dict[str, Any]) -> None:
    response = http.post(ASYNC, json=payload)
    assert response.status_code == 422, payload
    for problem in response.json()["detail"]:
        assert set(problem) == {"loc", "msg", "type"} and problem["loc"][0] == "body"


def test_a_bad_delta_count_header_is_400(http: httpx.Client) -> None:
    response = http.post(ASYNC, json=body(), headers={"x-emulator-delta-count": "viele"})
    assert response.status_code == 400
    assert response.json()["error_code"] == "emulator_bad_fault_header"


def test_fault_headers_answer_the_initiating_request(http: httpx.Client) -> None:
    response = http.post(ASYNC, json=body(), headers={"x-emulator-fault": "rate_limit_gateway"})
    assert response.status_code == 429


# -- tool calls -------------------------------------------------------------------------------

FRIST_SCHEMA = {
    "type": "object",
    "properties": {
        "jahre": {"type": "integer", "minimum": 0},
        "arbeitgeber": {"type": "string", "minLength": 1},
        "probezeit": {"type": "boolean"},
    },
    "required": ["jahre", "arbeitgeber"],
    "additionalProperties": False,
}
FRIST_TOOL = {
    "type": "function",
    "function": {
        "name": "kuendigungsfrist_berechnen",
        "description": "Berechnet die gesetzliche Kündigungsfrist nach § 622 BGB",
        "parameters": FRIST_SCHEMA,
    },
}
URLAUB_TOOL = {
    "type": "function",
    "function": {
        "name": "urlaubsanspruch",
        "description": "Ermittelt den gesetzlichen Mindesturlaub",
        "parameters": {
            "type": "object",
            "properties": {"arbeitstage_pro_woche": {"type": "integer", "minimum": 1, "maximum": 7}},
            "required": ["arbeitstage_pro_woche"],
        },
    },
}
ASKS_FOR_TOOL = 'Bitte kuendigungsfrist_berechnen: 12 Jahre bei "Haufe Group".'
#: Names no tool and matches no tool's description.
ASKS_FOR_NONE = "Wie lange darf ich täglich höchstens arbeiten?"


def tool_calls(events: list[Event]) -> list[dict[str, Any]]:
    """The tool_call fragments assembled into calls, checking the fragments' shape on the way."""
    calls: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.event != "tool_call":
            continue
        index = event.data["index"]
        if index not in calls:
            assert set(event.data) == {"index", "id", "name", "arguments"}, event.data
            calls[index] = {"id": event.data["id"], "name": event.data["name"], "arguments": ""}
        else:
            assert set(event.data) == {"index", "arguments"}, event.data
        calls[index]["arguments"] += event.data["arguments"]
    assert list(calls) == list(range(len(calls)))
    return [calls[index] for index in sorted(calls)]


def finished_events(http: httpx.Client, payload: dict[str, Any]) -> list[Event]:
    stream_id = start(http, payload)
    assert wait_finished(http, stream_id)["status"] == "completed"
    return observe(http, stream_id)[1].events


def test_tool_call_fragments_assemble_to_schema_valid_arguments(http: httpx.Client) -> None:
    events = finished_events(http, body(ASKS_FOR_TOOL, tools=[URLAUB_TOOL, FRIST_TOOL]))
    kinds = [e.event for e in events]
    assert kinds[0] == "status" and kinds[-1] == "done" and "delta" not in kinds
    assert kinds.count("tool_call") > 2  # the arguments come in several fragments
    (call,) = tool_calls(events)
    assert call["name"] == "kuendigungsfrist_berechnen" and call["id"].startswith("call_")
    arguments = json.loads(call["arguments"])
    jsonschema.validate(arguments, FRIST_SCHEMA)
    assert arguments["jahre"] == 12 and arguments["arbeitgeber"] == "Haufe Group"
    assert events[-1].data["status"] == "completed" and events[-1].data["usage"]["completion_tokens"] > 0


def test_two_named_tools_give_two_calls(http: httpx.Client) -> None:
    question = "Erst kuendigungsfrist_berechnen für 3 Jahre, dann urlaubsanspruch bei 5 Tagen."
    calls = tool_calls(finished_events(http, body(question, tools=[FRIST_TOOL, URLAUB_TOOL])))
    assert [c["name"] for c in calls] == ["kuendigungsfrist_berechnen", "urlaubsanspruch"]
    assert calls[0]["id"] != calls[1]["id"]
    jsonschema.validate(json.loads(calls[0]["arguments"]), FRIST_SCHEMA)
    jsonschema.validate(json.loads(calls[1]["arguments"]), URLAUB_TOOL["function"]["parameters"])  # type: ignore[index]


@pytest.mark.parametrize(
    ("question", "fields", "expected"),
    [
        (ASKS_FOR_TOOL, {"tool_choice": "none"}, None),
        (ASKS_FOR_NONE, {}, None),  # auto, and the question asks for no tool: a text answer
        (ASKS_FOR_NONE, {"tool_choice": "auto"}, None),
        (ASKS_FOR_NONE, {"tool_choice": "required"}, "any"),
        (
            QUESTION,
            {"tool_choice": {"type": "function", "function": {"name": "urlaubsanspruch"}}},
            "urlaubsanspruch",
        ),
        (ASKS_FOR_NONE, {"response_format": {"type": "tool_call"}}, "any"),
    ],
)
def test_tool_choice_decides_between_a_call_and_text(
    http: httpx.Client, question: str, fields: dict[str, Any], expected: str | None
) -> None:
    events = finished_events(http, body(question, tools=[FRIST_TOOL, URLAUB_TOOL], **fields))
    calls = tool_calls(events)
    if expected is None:
        assert calls == [] and deltas(events)
        return
    assert len(calls) == 1 and not deltas(events)
    if expected != "any":
        assert calls[0]["name"] == expected
    tool = next(t for t in (FRIST_TOOL, URLAUB_TOOL) if t["function"]["name"] == calls[0]["name"])  # type: ignore[index]
    jsonschema.validate(json.loads(calls[0]["arguments"]), tool["function"]["parameters"])  # type: ignore[index]


def test_a_conversation_ending_with_tool_results_is_answered_with_them(http: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "Du bist ein Assistent für Arbeitsrecht."},
        {"role": "user", "content": ASKS_FOR_TOOL},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "kuendigungsfrist_berechnen", "arguments": '{"jahre": 12}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "5 Monate zum Ende eines Kalendermonats"},
    ]
    events = finished_events(http, {"messages": messages, "tools": [FRIST_TOOL]})
    assert "tool_call" not in [e.event for e in events]
    text = deltas(events)
    assert "kuendigungsfrist_berechnen" in text and "5 Monate zum Ende eines Kalendermonats" in text


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": "Hallo", "tool_calls": []},
        {"role": "user", "content": "Hallo", "tool_call_id": "call_1"},
        {"role": "assistant", "content": None},
    ],
)
def test_tool_fields_only_on_their_roles(http: httpx.Client, message: dict[str, Any]) -> None:
    response = http.post(ASYNC, json={"messages": [*user(), message]})
    assert response.status_code == 422
