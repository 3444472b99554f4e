"""The emulator on the wire, checked with plain httpx against the seeds (no client of ours)."""

from __future__ import annotations

import itertools
import json
import time

import httpx
import pytest

from haufe_emulator import EmulatorConfig, EmulatorServer
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY, user

CHAT = "/agents/v1/chat/completions"
STREAM = "/agents/v1/chat/completions/stream"


@pytest.fixture
def http(emulator: EmulatorServer) -> httpx.Client:
    with httpx.Client(base_url=emulator.url, headers={"api-key": SESSION_API_KEY}) as client:
        yield client  # type: ignore[misc]


def ask(http: httpx.Client, question: str, thread_id: str | None = None) -> dict:  # type: ignore[type-arg]
    params = {"thread_id": thread_id} if thread_id else {}
    response = http.post(CHAT, params=params, json={"assistant_id": ASSISTANT_ID, "messages": user(question)})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_blocking_answer_has_exactly_the_seed_fields(http: httpx.Client) -> None:
    body = ask(http, QUESTION)
    assert set(body) == {"content", "created_at", "id", "meta_data", "role", "sources", "thread_id"}
    assert set(body["meta_data"]) == {"intent", "legal_advice", "type"}
    assert body["role"] == "assistant" and body["created_at"].endswith("Z")
    for source in body["sources"]:
        assert set(source) == {"content", "meta_data"}
        assert {"document_title", "section"} <= set(source["meta_data"])


def test_stream_lines_have_exactly_the_seed_fields(http: httpx.Client) -> None:
    response = http.post(STREAM, json={"assistant_id": ASSISTANT_ID, "messages": user(QUESTION)})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert "content-length" not in response.headers  # chunked: one line at a time
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    assert len(lines) > 10
    for line in lines:
        assert set(line) == {"created_at", "delta", "message_id", "thread_id"}
        assert set(line["delta"]) == {"content", "role", "sources"}
    assert all(line["delta"]["sources"] == [] for line in lines[:-1])
    assert 3 <= len(lines[-1]["delta"]["sources"]) <= 5


@pytest.mark.parametrize(
    ("question", "section", "law"),
    [
        ("Welche Kündigungsfristen gelten während der Probezeit?", "§ 622 Abs. 3", "BGB"),
        ("Wie viele Urlaubstage stehen mir gesetzlich zu?", "§ 3", "BUrlG"),
        ("Wann ist eine Kündigung sozial ungerechtfertigt?", "§ 1 Abs. 2", "KSchG"),
        ("Wie lange darf ich täglich höchstens arbeiten?", "§ 3", "ArbZG"),
        ("Bekomme ich Lohn weiter, wenn ich krank bin?", "§ 3", "EntgFG"),
    ],
)
def test_five_questions_cite_the_statute_a_lawyer_would(
    http: httpx.Client, question: str, section: str, law: str
) -> None:
    body = ask(http, question)
    first = body["sources"][0]
    assert first["meta_data"]["section"].startswith(section)
    assert f"({law})" in first["meta_data"]["document_title"]
    assert (
        f"{section} {law}" in body["content"] or f"{first['meta_data']['section']} {law}" in body["content"]
    )
    assert 3 <= len(body["sources"]) <= 5


def test_a_follow_up_is_ranked_with_its_thread(http: httpx.Client) -> None:
    follow_up = "Gilt das auch für Teilzeitkräfte?"
    first = ask(http, QUESTION)
    in_thread = ask(http, follow_up, thread_id=first["thread_id"])
    alone = ask(http, follow_up)
    sections_in_thread = [s["meta_data"]["section"] for s in in_thread["sources"]]
    sections_alone = [s["meta_data"]["section"] for s in alone["sources"]]
    assert sections_in_thread != sections_alone
    assert any(s.startswith("§ 622") for s in sections_in_thread)
    assert in_thread["thread_id"] == first["thread_id"] != alone["thread_id"]


def test_follow_ups_in_a_thread_cite_what_answers_them_first(http: httpx.Client) -> None:
    first = ask(http, QUESTION)
    thread = first["thread_id"]
    part_time = ask(http, "Gilt das auch für Teilzeitkräfte?", thread_id=thread)
    mini_job = ask(http, "Und für Minijobber?", thread_id=thread)
    assert first["sources"][0]["meta_data"]["section"] == "§ 622 Abs. 3"
    assert part_time["sources"][0]["meta_data"]["section"] == "§ 4 Abs. 1"
    assert mini_job["sources"][0]["meta_data"]["section"] == "§ 2 Abs. 2"
    assert part_time["content"] != mini_job["content"]  # not the same Probezeit paragraph again
    # the same questions in a second thread: the same answers, word for word
    again = ask(http, QUESTION)
    assert (
        ask(http, "Gilt das auch für Teilzeitkräfte?", thread_id=again["thread_id"])["content"]
        == (part_time["content"])
    )
    for source in part_time["sources"]:
        assert source["content"].endswith("(Auszug, Stand: 1. Januar 2026)")


def test_validation_errors_in_the_seed_shape(http: httpx.Client) -> None:
    response = http.post(CHAT, json={"messages": user(QUESTION)})
    assert response.status_code == 422
    assert response.json() == {
        "error_code": "validation_error",
        "detail": [{"loc": ["body", "assistant_id"], "message": "Field required", "type": "missing"}],
    }
    bad_role = http.post(
        CHAT, json={"assistant_id": ASSISTANT_ID, "messages": [{"role": "bot", "content": "x"}]}
    )
    assert bad_role.status_code == 422
    assert bad_role.json()["detail"][0]["loc"] == ["body", "messages", 0, "role"]
    not_json = http.post(CHAT, content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and not_json.json()["error_code"] == "validation_error"


def test_undocumented_fields_are_refused_unless_lenient(http: httpx.Client) -> None:
    body = {"assistant_id": ASSISTANT_ID, "messages": user(QUESTION), "temperature": 0.2}
    refused = http.post(CHAT, json=body)
    assert refused.status_code == 422
    assert refused.json()["detail"][0] == {
        "loc": ["body", "temperature"],
        "message": "Extra inputs are not permitted",
        "type": "extra_forbidden",
    }
    with EmulatorServer(EmulatorConfig(api_keys=frozenset({SESSION_API_KEY}), lenient=True)) as lenient:
        accepted = httpx.post(lenient.url + CHAT, json=body, headers={"api-key": SESSION_API_KEY})
        assert accepted.status_code == 200


def test_keys_are_checked(emulator: EmulatorServer) -> None:
    for headers in ({}, {"api-key": "sk-wrong"}, {"Authorization": f"Bearer {SESSION_API_KEY}"}):
        response = httpx.post(
            emulator.url + CHAT, json={"assistant_id": ASSISTANT_ID, "messages": user()}, headers=headers
        )
        assert response.status_code == 401
        assert response.json() == {"error_code": "unauthorized", "detail": "Missing or invalid API key"}


def test_every_answer_has_a_request_id(http: httpx.Client) -> None:
    assert http.post(CHAT, json={}).headers["x-request-id"]
    assert http.post(CHAT, json={"assistant_id": ASSISTANT_ID, "messages": user()}).headers["x-request-id"]


def test_server_wide_faults_and_a_bad_fault_header(emulator: EmulatorServer) -> None:
    config = EmulatorConfig(api_keys=frozenset({"k"}))
    from haufe_emulator.faults import FaultPlan

    with EmulatorServer(
        EmulatorConfig(api_keys=config.api_keys, faults=FaultPlan(fault="conflict", fault_times=1))
    ) as faulty:
        body = {"assistant_id": ASSISTANT_ID, "messages": user()}
        first = httpx.post(faulty.url + CHAT, json=body, headers={"api-key": "k"})
        second = httpx.post(faulty.url + CHAT, json=body, headers={"api-key": "k"})
        assert (first.status_code, second.status_code) == (409, 200)
        bad = httpx.post(
            faulty.url + CHAT, json=body, headers={"api-key": "k", "x-emulator-fault": "nonsense"}
        )
        assert bad.status_code == 400 and "unknown fault" in bad.json()["detail"]


def test_deltas_join_to_the_blocking_answer_and_are_word_sized(http: httpx.Client) -> None:
    blocking = ask(http, QUESTION)["content"]
    response = http.post(STREAM, json={"assistant_id": ASSISTANT_ID, "messages": user(QUESTION)})
    pieces = [json.loads(line)["delta"]["content"] for line in response.text.splitlines() if line.strip()]
    assert "".join(pieces) == blocking
    assert all(len(piece.split()) == 1 for piece in pieces)


def test_a_stall_header_pauses_the_stream_after_n_deltas(http: httpx.Client) -> None:
    body = {"assistant_id": ASSISTANT_ID, "messages": user(QUESTION)}
    stalled = {"x-emulator-stall": "0.6", "x-emulator-stall-after": "2"}
    arrivals: list[float] = []
    with http.stream("POST", STREAM, json=body, headers=stalled) as response:
        for line in response.iter_lines():
            if line.strip():
                arrivals.append(time.monotonic())
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(gaps) > 3
    assert gaps[1] >= 0.5  # between the second delta and the third
    assert max(gaps) == gaps[1]  # and only there: then the rest goes on
    too_long = http.post(STREAM, json=body, headers={"x-emulator-stall": "61"})
    assert too_long.status_code == 422 and "x-emulator-stall must be from 0 to 60 seconds" in too_long.text
