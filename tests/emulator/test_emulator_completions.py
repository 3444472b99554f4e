"""The emulator's OpenAI-compatible completions endpoint (seed 002) on the wire, with plain httpx
and with the official `openai` package, plus unit tests of `haufe_emulator.schema_values` and
`haufe_emulator.tool_intent`."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

import httpx
import jsonschema
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from haufe_emulator import ERROR_CATALOGUE, EmulatorConfig, EmulatorServer
from haufe_emulator.regex_strings import string_for_pattern
from haufe_emulator.schema_values import value_for_schema
from haufe_emulator.tool_intent import (
    PlannedToolCall,
    ToolSpec,
    arguments_for,
    best_tool,
    split_fragments,
    tool_calls_for,
    tool_spec,
    tools_asked_for,
)
from tests.conftest import QUESTION, SESSION_API_KEY, stream_record, user, wait_for

COMPLETIONS = "/api/v1/chat/completions"
SSE = {"Accept": "text/event-stream"}
CHUNK_KEYS = {"id", "object", "created", "model", "choices", "session_id"}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Gibt das aktuelle Wetter für eine Stadt zurück",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "Name der Stadt"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
LEAVE = {
    "type": "function",
    "function": {
        "name": "resturlaub",
        "description": "Berechnet den Resturlaub eines Mitarbeiters",
        "parameters": {
            "type": "object",
            "properties": {
                "mitarbeiter": {"type": "string"},
                "jahr": {"type": "integer", "minimum": 2000, "maximum": 2100},
                "halbe_tage": {"type": "boolean", "default": False},
            },
            "required": ["mitarbeiter", "jahr"],
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "current_time", "description": "Die aktuelle Uhrzeit"}}
#: The tools as the openai package's parameter (its TypedDicts do not take plain dicts).
OPENAI_TOOLS: Any = [WEATHER, LEAVE]
LEAVE_QUESTION = "Wie viele Urlaubstage hat Anna Schmidt im Jahr 2024 noch? Bitte mit resturlaub berechnen."


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def http(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {SESSION_API_KEY}"}
    with httpx.Client(base_url=emulator.url, headers=headers, timeout=10) as client:
        yield client


def frames(text: str) -> list[tuple[str | None, str]]:
    """The complete SSE events of a body: (event name, data)."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        events.append((event, "\n".join(data)))
    return events


def chunks(text: str) -> list[dict[str, Any]]:
    """The JSON chunks of a complete SSE answer (which must end with `data: [DONE]`)."""
    events = frames(text)
    assert events[-1] == (None, "[DONE]")
    return [json.loads(data) for event, data in events[:-1]]


def post(http: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    return http.post(COMPLETIONS, json=body, headers=headers)


def stream(http: httpx.Client, body: dict[str, Any], **headers: str) -> list[dict[str, Any]]:
    response = http.post(COMPLETIONS, json=body, headers={**SSE, **headers})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return chunks(response.text)


def text_of(stream_chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for chunk in stream_chunks
        for choice in chunk["choices"]
        if choice["index"] == index
    )


def tool_calls_of(stream_chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool-call deltas of choice 0 assembled as a client does."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in stream_chunks:
        for choice in chunk["choices"]:
            for delta in choice["delta"].get("tool_calls") or []:
                call = calls.setdefault(delta["index"], {"function": {"name": "", "arguments": ""}})
                for key in ("id", "type"):
                    if key in delta:
                        call[key] = delta[key]
                call["function"]["name"] += delta.get("function", {}).get("name", "")
                call["function"]["arguments"] += delta.get("function", {}).get("arguments", "")
    return [calls[index] for index in sorted(calls)]


def finish_reasons(stream_chunks: list[dict[str, Any]]) -> list[str]:
    return [c["finish_reason"] for chunk in stream_chunks for c in chunk["choices"] if c["finish_reason"]]


def schema_of(tool: dict[str, Any]) -> dict[str, Any]:
    return tool["function"]["parameters"]  # type: ignore[no-any-return]


def words(messages: list[dict[str, Any]]) -> int:
    return sum(len((m.get("content") or "").split()) for m in messages)


# -- JSON answers ---------------------------------------------------------------------------


def test_json_answer_has_exactly_the_documented_keys(http: httpx.Client) -> None:
    messages = user(QUESTION)
    before = int(time.time())
    response = post(http, {"model": "haufe-pro", "messages": messages}, Accept="application/json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"id", "object", "created", "model", "choices", "usage", "session_id"}
    assert re.fullmatch(r"chatcmpl-[0-9a-f]+", body["id"])
    assert body["object"] == "chat.completion" and body["model"] == "haufe-pro"
    assert isinstance(body["created"], int) and before - 1 <= body["created"] <= time.time() + 1
    [choice] = body["choices"]
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": choice["message"]["content"]},
        "finish_reason": "stop",
        "logprobs": None,
    }
    content = choice["message"]["content"]
    assert "§ 622 Abs. 3 BGB" in content
    assert "sources" not in json.dumps(body)
    assert body["usage"] == {
        "prompt_tokens": words(messages),
        "completion_tokens": len(content.split()),
        "total_tokens": words(messages) + len(content.split()),
    }
    assert response.headers["x-session-id"] == body["session_id"]
    assert uuid.UUID(body["session_id"]).version == 4
    assert response.headers["x-request-id"]


def test_default_model_and_any_accept_answer_json(http: httpx.Client, emulator: EmulatorServer) -> None:
    body = post(http, {"messages": user(QUESTION)}).json()  # httpx sends Accept: */*
    assert body["object"] == "chat.completion"
    assert body["model"] == emulator.config.default_model


def test_session_id_is_echoed_and_history_is_not_stored(http: httpx.Client) -> None:
    follow_up = "Gilt das auch für Teilzeitkräfte?"
    first = post(http, {"messages": user(QUESTION), "session_id": "sess-42"})
    assert first.json()["session_id"] == "sess-42" == first.headers["x-session-id"]
    # Same session, only the follow-up: the server prepends nothing, so this is the follow-up alone.
    alone = post(http, {"messages": user(follow_up), "session_id": "sess-42"}).json()
    fresh = post(http, {"messages": user(follow_up)}).json()
    assert fresh["session_id"] != "sess-42"
    assert alone["choices"][0]["message"]["content"] == fresh["choices"][0]["message"]["content"]
    assert alone["usage"]["prompt_tokens"] == len(follow_up.split())
    # The history the request carries is used: earlier user messages rank with the question.
    conversation = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first.json()["choices"][0]["message"]["content"]},
        {"role": "user", "content": follow_up},
    ]
    with_history = post(http, {"messages": conversation, "session_id": "sess-42"}).json()
    assert with_history["choices"][0]["message"]["content"] != alone["choices"][0]["message"]["content"]
    assert "§ 622" in with_history["choices"][0]["message"]["content"]
    assert with_history["usage"]["prompt_tokens"] == words(conversation)
    # ... and every SSE chunk carries the session id.
    stream_chunks = stream(http, {"messages": user(QUESTION), "session_id": "sess-43"})
    assert {chunk["session_id"] for chunk in stream_chunks} == {"sess-43"}


def test_n_gives_identical_choices(http: httpx.Client) -> None:
    body = post(http, {"messages": user(QUESTION), "n": 3}).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert len({c["message"]["content"] for c in body["choices"]}) == 1
    one = len(body["choices"][0]["message"]["content"].split())
    assert body["usage"]["completion_tokens"] == 3 * one
    stream_chunks = stream(http, {"messages": user(QUESTION), "n": 2})
    assert text_of(stream_chunks, 0) == text_of(stream_chunks, 1) == body["choices"][0]["message"]["content"]
    assert finish_reasons(stream_chunks) == ["stop", "stop"]


# -- SSE answers ----------------------------------------------------------------------------


def test_sse_chunks_are_openai_chunks(http: httpx.Client) -> None:
    blocking = post(http, {"messages": user(QUESTION)}).json()
    response = http.post(COMPLETIONS, json={"messages": user(QUESTION), "model": "m1"}, headers=SSE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in response.headers
    stream_chunks = chunks(response.text)
    first, *middle, finish, usage = stream_chunks
    session_id = first["session_id"]
    assert response.headers["x-session-id"] == session_id
    assert first == {
        "id": first["id"],
        "object": "chat.completion.chunk",
        "created": first["created"],
        "model": "m1",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "finish_reason": None,
                "logprobs": None,
            }
        ],
        "session_id": session_id,
    }
    assert re.fullmatch(r"chatcmpl-[0-9a-f]+", first["id"])
    for chunk in [*middle, finish]:
        assert set(chunk) == CHUNK_KEYS
        assert (chunk["id"], chunk["created"], chunk["model"]) == (first["id"], first["created"], "m1")
    for chunk in middle:
        [choice] = chunk["choices"]
        assert set(choice) == {"index", "delta", "finish_reason", "logprobs"}
        assert set(choice["delta"]) == {"content"} and choice["finish_reason"] is None
        assert len(choice["delta"]["content"].split()) == 1  # word-sized
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}]
    assert set(usage) == CHUNK_KEYS | {"usage"} and usage["choices"] == []
    text = text_of(stream_chunks)
    assert text == blocking["choices"][0]["message"]["content"]
    assert usage["usage"] == blocking["usage"]
    assert response.text.endswith("data: [DONE]\n\n")


def test_the_accept_header_decides_the_format(http: httpx.Client) -> None:
    assert finish_reasons(stream(http, {"messages": user(QUESTION), "stream": True})) == ["stop"]
    assert finish_reasons(stream(http, {"messages": user(QUESTION), "stream": False})) == ["stop"]
    both = http.post(
        COMPLETIONS,
        json={"messages": user(QUESTION)},
        headers={"Accept": "application/json, text/event-stream"},
    )
    assert both.headers["content-type"].startswith("text/event-stream")
    empty_tools = post(http, {"messages": user(QUESTION), "tools": []}, Accept="application/json")
    assert empty_tools.status_code == 200 and empty_tools.json()["object"] == "chat.completion"


# -- stop and max_tokens ------------------------------------------------------------------


@pytest.mark.parametrize("stop", ["BGB", ["Ergänzend", "zwei"], ["nicht-im-text", "Wochen"]])
def test_stop_ends_the_text_before_the_first_stop_sequence(http: httpx.Client, stop: str | list[str]) -> None:
    full = post(http, {"messages": user(QUESTION)}).json()["choices"][0]["message"]["content"]
    sequences = [stop] if isinstance(stop, str) else stop
    expected = full[: min(full.find(s) for s in sequences if s in full)]
    body = post(http, {"messages": user(QUESTION), "stop": stop}).json()
    assert body["choices"][0]["message"]["content"] == expected
    assert body["choices"][0]["finish_reason"] == "stop"
    assert not any(s in expected for s in sequences)
    assert body["usage"]["completion_tokens"] == len(expected.split())
    stream_chunks = stream(http, {"messages": user(QUESTION), "stop": stop})
    assert text_of(stream_chunks) == expected
    assert finish_reasons(stream_chunks) == ["stop"]


@pytest.mark.parametrize("max_tokens", [0, 1, 7])
def test_max_tokens_counts_words_and_finishes_with_length(http: httpx.Client, max_tokens: int) -> None:
    full = post(http, {"messages": user(QUESTION)}).json()["choices"][0]["message"]["content"]
    body = post(http, {"messages": user(QUESTION), "max_tokens": max_tokens}).json()
    content = body["choices"][0]["message"]["content"]
    assert content.split() == full.split()[:max_tokens]
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == max_tokens
    stream_chunks = stream(http, {"messages": user(QUESTION), "max_tokens": max_tokens})
    assert text_of(stream_chunks) == content
    assert finish_reasons(stream_chunks) == ["length"]


def test_max_tokens_above_the_answer_length_finishes_with_stop(http: httpx.Client) -> None:
    body = post(http, {"messages": user(QUESTION), "max_tokens": 10_000}).json()
    assert body["choices"][0]["finish_reason"] == "stop"


# -- tool calls -----------------------------------------------------------------------------


def test_tool_call_end_to_end(http: httpx.Client) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Du bist ein HR-Assistent."},
        {"role": "user", "content": LEAVE_QUESTION},
    ]
    stream_chunks = stream(http, {"messages": messages, "tools": [WEATHER, LEAVE], "session_id": "s-tools"})
    assert stream_chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert finish_reasons(stream_chunks) == ["tool_calls"]
    # Header chunk then fragments of 1 to 8 characters.
    deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in stream_chunks[1:-2]]
    head, *fragments = deltas
    assert set(head) == {"index", "id", "type", "function"} and head["function"]["arguments"] == ""
    assert re.fullmatch(r"call_[0-9a-f]+", head["id"]) and head["type"] == "function"
    assert fragments and all(set(f) == {"index", "function"} for f in fragments)
    assert all(1 <= len(f["function"]["arguments"]) <= 8 for f in fragments)
    [call] = tool_calls_of(stream_chunks)
    assert call["function"]["name"] == "resturlaub"
    arguments = json.loads(call["function"]["arguments"])
    jsonschema.validate(arguments, schema_of(LEAVE))
    assert arguments == {"mitarbeiter": "Anna Schmidt", "jahr": 2024}
    usage = stream_chunks[-1]["usage"]
    assert usage["prompt_tokens"] == words(messages)
    assert usage["completion_tokens"] == len(call["function"]["arguments"].split()) + 1

    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Anna Schmidt hat noch 12 Tage Resturlaub."},
    ]
    final = stream(http, {"messages": messages, "tools": [WEATHER, LEAVE], "session_id": "s-tools"})
    text = text_of(final)
    assert finish_reasons(final) == ["stop"]
    # Issue 17: a sentence that uses the result and names the call, not "… lieferte: „…“".
    assert (
        "Das Werkzeug resturlaub (mitarbeiter: Anna Schmidt, jahr: 2024) meldet: "
        "Anna Schmidt hat noch 12 Tage Resturlaub." in text
    )
    assert "BUrlG" in text  # the original question matches the corpus, so its answer follows
    assert not tool_calls_of(final)


def test_results_of_parallel_calls_are_each_quoted(http: httpx.Client) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Wie ist das Wetter in Berlin und München?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Berlin: 21 Grad, sonnig"},
        {"role": "tool", "tool_call_id": "call_2", "content": "München: 18 Grad, Regen"},
    ]
    text = text_of(stream(http, {"messages": messages, "tools": [WEATHER]}))
    assert "„Berlin: 21 Grad, sonnig“" in text and "„München: 18 Grad, Regen“" in text
    # Tool results need no tools in the request, and then JSON is fine too.
    body = post(http, {"messages": messages}).json()
    assert "„München: 18 Grad, Regen“" in body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "stop"


def test_a_notice_period_from_a_tool_cites_only_the_provisions_behind_it(http: httpx.Client) -> None:
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": "Wie lang ist meine Kündigungsfrist nach 15 Jahren? Nutze kuendigungsfrist.",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "kuendigungsfrist", "arguments": '{"jahre": 15}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "6 Monate zum Ende eines Kalendermonats"},
    ]
    text = post(http, {"messages": messages}).json()["choices"][0]["message"]["content"]
    # Issue 17: it opened "Auf Grundlage der Werkzeugergebnisse: …" and cited § 613a BGB and § 14 TzBfG.
    assert text.startswith("Das Werkzeug kuendigungsfrist (jahre: 15) ergibt: „6 Monate zum Ende")
    assert "§ 622 Abs. 2 BGB" in text
    assert "§ 613a" not in text and "TzBfG" not in text


def test_parallel_calls_for_two_named_tools(http: httpx.Client) -> None:
    question = "Bitte get_weather für Köln und current_time aufrufen."
    stream_chunks = stream(http, {"messages": user(question), "tools": [WEATHER, CLOCK, LEAVE]})
    calls = tool_calls_of(stream_chunks)
    assert [c["function"]["name"] for c in calls] == ["get_weather", "current_time"]
    assert len({c["id"] for c in calls}) == 2
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Köln"}
    assert calls[1]["function"]["arguments"] == "{}"


def test_parallel_calls_for_several_values(http: httpx.Client) -> None:
    question = "Wie ist das Wetter in Berlin, Hamburg und München in Fahrenheit?"
    calls = tool_calls_of(stream(http, {"messages": user(question), "tools": [WEATHER]}))
    arguments = [json.loads(c["function"]["arguments"]) for c in calls]
    for value in arguments:
        jsonschema.validate(value, schema_of(WEATHER))
    assert arguments == [
        {"city": "Berlin", "unit": "fahrenheit"},
        {"city": "Hamburg", "unit": "fahrenheit"},
        {"city": "München", "unit": "fahrenheit"},
    ]


@pytest.mark.parametrize(
    "function",
    [
        {"name": "current_time"},
        {"name": "current_time", "parameters": {}},
        {"name": "current_time", "parameters": {"type": "object", "properties": {}}},
    ],
)
def test_a_tool_without_arguments_gets_an_empty_object(http: httpx.Client, function: dict[str, Any]) -> None:
    tool = {"type": "function", "function": function}
    stream_chunks = stream(http, {"messages": user("Wie spät ist es? Nutze current_time."), "tools": [tool]})
    [call] = tool_calls_of(stream_chunks)
    assert call["function"] == {"name": "current_time", "arguments": "{}"}


def test_a_question_that_asks_for_no_tool_gets_text(http: httpx.Client) -> None:
    stream_chunks = stream(http, {"messages": user(QUESTION), "tools": [WEATHER, LEAVE]})
    assert not tool_calls_of(stream_chunks)
    assert "§ 622 Abs. 3 BGB" in text_of(stream_chunks)
    assert finish_reasons(stream_chunks) == ["stop"]


def test_tool_choice_required_named_and_none(http: httpx.Client) -> None:
    required = tool_calls_of(
        stream(http, {"messages": user(QUESTION), "tools": [CLOCK, LEAVE], "tool_choice": "required"})
    )
    assert [c["function"]["name"] for c in required] == ["current_time"]  # nothing matches: the first
    named = stream(
        http,
        {
            "messages": user("Wie ist das Wetter in Berlin?"),
            "tools": [WEATHER, LEAVE],
            "tool_choice": {"type": "function", "function": {"name": "resturlaub"}},
        },
    )
    [call] = tool_calls_of(named)
    assert call["function"]["name"] == "resturlaub"
    jsonschema.validate(json.loads(call["function"]["arguments"]), schema_of(LEAVE))
    assert finish_reasons(named) == ["tool_calls"]
    none = stream(http, {"messages": user(LEAVE_QUESTION), "tools": [LEAVE], "tool_choice": "none"})
    assert not tool_calls_of(none) and "BUrlG" in text_of(none)
    assert finish_reasons(none) == ["stop"]


def test_required_picks_the_best_matching_tool(http: httpx.Client) -> None:
    calls = tool_calls_of(
        stream(
            http,
            {
                "messages": user("Wie viel Resturlaub hat Müller?"),
                "tools": [CLOCK, WEATHER, LEAVE],
                "tool_choice": "required",
            },
        )
    )
    assert [c["function"]["name"] for c in calls] == ["resturlaub"]
    arguments = json.loads(calls[0]["function"]["arguments"])
    jsonschema.validate(arguments, schema_of(LEAVE))
    assert arguments["mitarbeiter"] == "Müller"


# -- bad requests ---------------------------------------------------------------------------


def detail_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"detail"}
    for item in body["detail"]:
        assert set(item) == {"loc", "msg", "type"}
    return body["detail"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("tools", "tool_choice", "loc", "says"),
    [
        (
            [{"type": "function", "function": {"description": "x"}}],
            None,
            ["tools", 0, "function", "name"],
            "function.name",
        ),
        (
            [{"type": "function", "function": {"name": " "}}],
            None,
            ["tools", 0, "function", "name"],
            "function.name",
        ),
        (
            [{"type": "function", "function": {"name": "f", "parameters": "city: str"}}],
            None,
            ["tools", 0, "function", "parameters"],
            "JSON Schema for an object",
        ),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}],
            None,
            ["tools", 0, "function", "parameters"],
            '"type" must be "object"',
        ),
        (
            [
                {
                    "type": "function",
                    "function": {"name": "f", "parameters": {"type": "object", "required": ["a"]}},
                }
            ],
            None,
            ["tools", 0, "function", "parameters"],
            "does not define: a",
        ),
        ([WEATHER, WEATHER], None, ["tools", 1, "function", "name"], "must be unique"),
        (
            [WEATHER],
            {"type": "function", "function": {"name": "get_time"}},
            ["tool_choice", "function", "name"],
            "not in tools; name one of the tools ('get_weather')",
        ),
        ([WEATHER], "always", ["tool_choice"], 'tool_choice must be "none", "auto", "required" or'),
        ([WEATHER], {"type": "function"}, ["tool_choice"], '{"type": "function", "function": {"name"'),
        (None, "required", ["tool_choice"], 'needs at least one tool in tools; add tools or use "auto"'),
    ],
)
def test_bad_tools_are_422_saying_what_to_fix(
    http: httpx.Client, tools: Any, tool_choice: Any, loc: list[Any], says: str
) -> None:
    body: dict[str, Any] = {"messages": user(QUESTION), "tools": tools}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    detail = detail_of(http.post(COMPLETIONS, json=body, headers=SSE))
    assert any(item["loc"] == ["body", *loc] and says in item["msg"] for item in detail), detail


@pytest.mark.parametrize(
    ("body", "loc", "msg"),
    [
        ({}, ["body", "messages"], "Field required"),
        ({"messages": []}, ["body", "messages"], "at least 1 item"),
        ({"messages": [{"role": "bot", "content": "x"}]}, ["body", "messages", 0, "role"], "Input should be"),
        ({"messages": user(), "n": 0}, ["body", "n"], "greater than or equal to 1"),
        ({"messages": user(), "max_tokens": -1}, ["body", "max_tokens"], "greater than or equal to 0"),
        ({"messages": user(), "stream": "sometimes"}, ["body", "stream"], "valid boolean"),
    ],
)
def test_bad_bodies_are_fastapi_422(
    http: httpx.Client, body: dict[str, Any], loc: list[Any], msg: str
) -> None:
    detail = detail_of(post(http, body))
    assert any(item["loc"] == loc and msg in item["msg"] for item in detail), detail


def test_a_body_that_is_not_json_is_422(http: httpx.Client) -> None:
    response = http.post(COMPLETIONS, content=b"{nope", headers={"content-type": "application/json"})
    assert detail_of(response) == [
        {"loc": ["body"], "msg": "Input should be a valid JSON object", "type": "model_type"}
    ]


def test_tools_with_a_json_accept_are_400(http: httpx.Client) -> None:
    for accept in ("application/json", "*/*"):
        response = post(http, {"messages": user(QUESTION), "tools": [WEATHER]}, Accept=accept)
        assert response.status_code == 400
        assert response.json() == {
            "error_code": "tools_require_streaming",
            "detail": "Tool calling requires streaming mode: "
            "send the request with 'Accept: text/event-stream'.",
        }


def test_stream_true_with_a_json_accept_is_400(http: httpx.Client) -> None:
    response = post(http, {"messages": user(QUESTION), "stream": True}, Accept="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "streaming_requires_event_stream"
    assert "Accept: text/event-stream" in body["detail"] and '"stream": false' in body["detail"]


def test_undocumented_fields_are_422_unless_lenient(http: httpx.Client) -> None:
    body = {"messages": user(QUESTION), "user": "u-1"}
    assert detail_of(post(http, body)) == [
        {"loc": ["body", "user"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
    ]
    strict_tool = {"type": "function", "function": {**WEATHER["function"], "strict": True}}  # type: ignore[dict-item]
    tool_body = {"messages": user("Wetter in Berlin?"), "tools": [strict_tool]}
    nested = detail_of(http.post(COMPLETIONS, json=tool_body, headers=SSE))
    assert nested[0]["loc"] == ["body", "tools", 0, "function", "strict"]
    message_extra = {"messages": [{"role": "user", "content": QUESTION, "refusal": None}]}
    assert detail_of(post(http, message_extra))[0]["loc"] == ["body", "messages", 0, "refusal"]
    with EmulatorServer(EmulatorConfig(api_keys=frozenset({SESSION_API_KEY}), lenient=True)) as lenient:
        headers = {"Authorization": f"Bearer {SESSION_API_KEY}"}
        assert httpx.post(lenient.url + COMPLETIONS, json=body, headers=headers).status_code == 200
        assert httpx.post(lenient.url + COMPLETIONS, json=message_extra, headers=headers).status_code == 200
        answer = httpx.post(lenient.url + COMPLETIONS, json=tool_body, headers={**headers, **SSE})
        assert answer.status_code == 200
        assert tool_calls_of(chunks(answer.text))[0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-wrong"},
        {"Authorization": SESSION_API_KEY},
        {"api-key": SESSION_API_KEY},
    ],
)
def test_bearer_is_required(emulator: EmulatorServer, headers: dict[str, str]) -> None:
    response = httpx.post(emulator.url + COMPLETIONS, json={"messages": user()}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error_code": "unauthorized", "detail": "Missing or invalid API key"}


# -- faults on the wire ---------------------------------------------------------------------


def raw_until_cut(http: httpx.Client, body: dict[str, Any], headers: dict[str, str]) -> str:
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", COMPLETIONS, json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        for piece in response.iter_raw():
            received += piece
    return received.decode("utf-8")


@pytest.mark.parametrize("n", [0, 3])
def test_a_cut_closes_the_stream_after_n_deltas(http: httpx.Client, emulator: EmulatorServer, n: int) -> None:
    marker = uuid.uuid4().hex
    text = raw_until_cut(
        http, {"messages": user(QUESTION)}, {**SSE, "x-emulator-cut-after": str(n), "x-test-marker": marker}
    )
    events = frames(text)
    assert len(events) == 1 + n  # the role chunk, then n content chunks; no finish, usage or [DONE]
    assert all(json.loads(data)["choices"][0]["finish_reason"] is None for _, data in events)
    assert "[DONE]" not in text
    record = wait_for(lambda: stream_record(emulator, marker))
    assert wait_for(lambda: record.outcome) == "cut" and record.deltas_sent == n


def test_a_cut_inside_tool_call_arguments(http: httpx.Client) -> None:
    body = {"messages": user(LEAVE_QUESTION), "tools": [LEAVE]}
    text = raw_until_cut(http, body, {**SSE, "x-emulator-cut-after": "2"})
    calls = tool_calls_of([json.loads(data) for _, data in frames(text)])
    assert calls[0]["function"]["name"] == "resturlaub"
    assert len(calls[0]["function"]["arguments"]) <= 8  # one fragment arrived


def test_a_cut_json_answer_stops_mid_body(http: httpx.Client) -> None:
    text = raw_until_cut(http, {"messages": user(QUESTION)}, {"x-emulator-cut-after": "0"})
    assert text.startswith('{"id": "chatcmpl-') and not text.rstrip().endswith("}")


def test_a_stream_error_is_an_error_event(http: httpx.Client, emulator: EmulatorServer) -> None:
    marker = uuid.uuid4().hex
    headers = {
        **SSE,
        "x-emulator-stream-error": "internal_service_error",
        "x-emulator-stream-error-after": "2",
        "x-test-marker": marker,
    }
    response = http.post(COMPLETIONS, json={"messages": user(QUESTION)}, headers=headers)
    assert response.status_code == 200
    events = frames(response.text)
    assert [event for event, _ in events] == [None, None, None, "error"]
    assert json.loads(events[-1][1]) == {
        "error_code": "internal_service_error",
        "detail": ERROR_CATALOGUE["internal_service_error"][1],
    }
    assert "[DONE]" not in response.text
    record = wait_for(lambda: stream_record(emulator, marker))
    assert record.outcome == "error" and record.deltas_sent == 2


def test_a_malformed_frame(http: httpx.Client) -> None:
    response = http.post(
        COMPLETIONS, json={"messages": user(QUESTION)}, headers={**SSE, "x-emulator-malformed-after": "1"}
    )
    events = frames(response.text)
    assert len(events) == 3 and events[-1] == (None, "{broken")


def test_a_slow_stream(http: httpx.Client) -> None:
    started = time.monotonic()
    stream_chunks = stream(
        http, {"messages": user(QUESTION), "max_tokens": 4}, **{"x-emulator-delta-delay": "0.1"}
    )
    assert time.monotonic() - started >= 0.4
    assert len(text_of(stream_chunks).split()) == 4


def test_request_faults_apply(http: httpx.Client) -> None:
    response = post(
        http,
        {"messages": user(QUESTION)},
        **{"x-emulator-fault": "rate_limit_gateway", "x-emulator-retry-after": "2"},
    )
    assert response.status_code == 429 and response.headers["retry-after"] == "2"
    assert response.json()["error_code"] == "rate_limit_gateway"


# -- the openai package ---------------------------------------------------------------------


@pytest.fixture
def oai(emulator: EmulatorServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=emulator.url + "/api/v1",
        api_key=SESSION_API_KEY,
        _strict_response_validation=True,
        max_retries=0,
    ) as client:
        yield client


def test_openai_create_json(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="haufe-pro", messages=[{"role": "user", "content": QUESTION}]
    )
    assert completion.model == "haufe-pro"
    assert "§ 622 Abs. 3 BGB" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert (completion.model_extra or {})["session_id"]


def test_openai_create_stream(oai: openai.OpenAI) -> None:
    blocking = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": QUESTION}])
    pieces, usage = [], None
    for chunk in oai.chat.completions.create(
        model="m", messages=[{"role": "user", "content": QUESTION}], stream=True, extra_headers=SSE
    ):
        pieces += [choice.delta.content or "" for choice in chunk.choices]
        usage = chunk.usage or usage
    assert "".join(pieces) == blocking.choices[0].message.content
    assert usage is not None and usage.completion_tokens == blocking.usage.completion_tokens  # type: ignore[union-attr]


def test_openai_sees_the_400s(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="m", messages=[{"role": "user", "content": QUESTION}], stream=True)
    assert caught.value.body["error_code"] == "streaming_requires_event_stream"  # type: ignore[index]


def test_openai_stream_helper_assembles_tool_calls_and_continues(oai: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": LEAVE_QUESTION}]
    with oai.chat.completions.stream(
        model="m",
        messages=messages,
        tools=OPENAI_TOOLS,
        extra_headers=SSE,
    ) as s:
        final = s.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.function.name == "resturlaub"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, schema_of(LEAVE))
    assistant = {
        "id": call.id,
        "type": "function",
        "function": call.function.model_dump(include={"name", "arguments"}),
    }
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [assistant]},
        {"role": "tool", "tool_call_id": call.id, "content": "12 Tage"},
    ]
    with oai.chat.completions.stream(
        model="m",
        messages=messages,
        tools=OPENAI_TOOLS,
        extra_headers=SSE,
    ) as s:
        answer = s.get_final_completion()
    content = answer.choices[0].message.content or ""
    assert "Das Werkzeug resturlaub (" in content and "ergibt: „12 Tage“." in content  # issue 17
    assert answer.choices[0].finish_reason == "stop"


class Weather(BaseModel):
    """Das aktuelle Wetter für eine Stadt"""

    city: str = Field(description="Name der Stadt")
    unit: Literal["celsius", "fahrenheit"]
    days: int = Field(ge=1, le=14)


def test_openai_strict_pydantic_tool_needs_lenient() -> None:
    # `openai.pydantic_function_tool` adds `"strict": true` to the function, a field seed 002
    # does not list (the default server answers it with 422); with it, the openai package parses
    # the arguments into the model (`parsed_arguments`). Nothing else openai sends is extra.
    config = EmulatorConfig(api_keys=frozenset({SESSION_API_KEY}), lenient=True)
    with (
        EmulatorServer(config) as lenient,
        openai.OpenAI(
            base_url=lenient.url + "/api/v1",
            api_key=SESSION_API_KEY,
            _strict_response_validation=True,
            max_retries=0,
        ) as client,
        client.chat.completions.stream(
            model="m",
            messages=[{"role": "user", "content": "Weather für Berlin in Fahrenheit, 3 Tage"}],
            tools=[openai.pydantic_function_tool(Weather)],
            extra_headers=SSE,
        ) as s,
    ):
        final = s.get_final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert call.function.parsed_arguments == Weather(city="Berlin", unit="fahrenheit", days=3)
    assert lenient.state.bodies(COMPLETIONS)[0]["tools"][0]["function"]["strict"] is True


async def test_async_openai(emulator: EmulatorServer) -> None:
    async with openai.AsyncOpenAI(
        base_url=emulator.url + "/api/v1",
        api_key=SESSION_API_KEY,
        _strict_response_validation=True,
        max_retries=0,
    ) as client:
        completion = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": QUESTION}]
        )
        assert "§ 622" in (completion.choices[0].message.content or "")
        # openai's stream() helper wants strict tools for parsing in some versions; the plain
        # stream works with every version, its fragments assembled by index as openai documents.
        stream = await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "Wie ist das Wetter in Berlin und München?"}],
            tools=OPENAI_TOOLS[:1],
            stream=True,
            extra_headers=SSE,
        )
        arguments: dict[int, str] = {}
        async for chunk in stream:
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or ():
                    arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
    cities = [json.loads(arguments[index])["city"] for index in sorted(arguments)]
    assert cities == ["Berlin", "München"]


# -- schema_values: value_for_schema ----------------------------------------------------------


def check(schema: dict[str, Any], question: str = "") -> Any:
    value = value_for_schema(schema, question)
    jsonschema.validate(value, schema)
    return value


def test_object_required_and_optional_properties() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "note": {"type": "string"}},
        "required": ["name", "age"],
    }
    assert check(schema) == {"name": "unbekannt", "age": 0}
    assert check(schema, "Lege Anna Schmidt an, sie ist 34 und arbeitet in Köln") == {
        "name": "Anna Schmidt",
        "age": 34,
        "note": "Köln",  # optional: present because the question has a value left for it
    }


def test_types_and_type_lists() -> None:
    assert check({"type": "integer"}, "etwa 12,5 oder 7") == 7  # 12,5 is not an integer
    assert check({"type": "number"}, "etwa 12,5 oder 7") == 12.5
    assert check({"type": "boolean"}) is False
    assert check({"type": "null"}) is None
    assert check({"type": "string"}, 'Suche "Elternzeit" bei Meyer') == "Elternzeit"  # quoted first
    assert check({"type": ["integer", "null"]}, "nach 3 Jahren") == 3
    assert check({"type": ["integer", "null"]}, "ohne Zahl") is None
    assert check({}, "was auch immer") is None


def test_enum_const_and_default() -> None:
    assert check({"enum": ["vollzeit", "teilzeit"]}, "ich arbeite Teilzeit") == "teilzeit"
    assert check({"enum": ["vollzeit", "teilzeit"], "default": "teilzeit"}) == "teilzeit"
    assert check({"enum": ["vollzeit", "teilzeit"]}) == "vollzeit"
    assert check({"enum": [10, 20, 30]}, "bitte 20") == 20
    assert check({"const": "fix"}) == "fix"
    assert check({"type": "integer", "default": 5}) == 5
    assert check({"type": "integer", "default": 5}, "lieber 9") == 9  # the question wins


def test_number_bounds_and_multiples() -> None:
    assert check({"type": "integer", "minimum": 18, "maximum": 67}) == 18
    assert check({"type": "integer", "minimum": 18, "maximum": 67}, "Alter 12 oder 40") == 40
    assert check({"type": "number", "exclusiveMinimum": 0}) > 0
    assert check({"type": "integer", "exclusiveMaximum": -5}) < -5
    assert check({"type": "number", "minimum": 0.3, "multipleOf": 0.1}) >= 0.3
    assert check({"type": "integer", "minimum": 7, "multipleOf": 5}) == 10
    assert check({"type": "number", "minimum": 1, "exclusiveMaximum": 2}, "genau 1,5") == 1.5


def test_strings_lengths_patterns_and_formats() -> None:
    assert len(check({"type": "string", "minLength": 12})) >= 12
    assert len(check({"type": "string", "maxLength": 3})) <= 3
    assert check({"type": "string", "pattern": r"^\d{5}$"}) == "00000"
    assert check({"type": "string", "pattern": r"^\d{5}$"}, "PLZ 10115 bitte") == "10115"
    assert check({"type": "string", "pattern": r"^[A-Z]{2}-\d+$"}) == "AA-0"
    assert check({"type": "string", "format": "date"}, "ab dem 1.4.2024") == "2024-04-01"
    assert check({"type": "string", "format": "date"}, "ab 2024-05-02") == "2024-05-02"
    assert check({"type": "string", "format": "email"}) == "max.mustermann@example.com"
    assert check(
        {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}, "Wie lange?"
    ) == {"query": "Wie lange?"}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"^[A-Z]{2}-\d+$", "AA-0"),
        (r"^(\+49|0)[1-9][0-9]{6,}$", "+491000000"),
        (r"(?P<code>[a-z]{3})(?:-\d{2})?", "aaa"),
        (r"(?i)^DE\d{2}\s?x{,3}$", "DE00"),
        (r"[^a][^ab][^\d]\x41\u00e4\.", "bAaA\u00e4."),
        (r"^a(?#comment)+b*?c{2}+$", "acc"),
        (r"(?=\d)\d", None),  # lookaround: beyond the generator
        (r"(a)\1", None),  # back reference
        (r"(unclosed", None),  # not a pattern re accepts
    ],
)
def test_string_for_pattern_builds_the_shortest_match(pattern: str, expected: str | None) -> None:
    assert string_for_pattern(pattern) == expected


def test_arrays() -> None:
    assert check({"type": "array", "items": {"type": "string"}}) == []
    assert check({"type": "array", "items": {"type": "string"}}, "für Berlin, Hamburg und Köln") == [
        "Berlin",
        "Hamburg",
        "Köln",
    ]
    assert check({"type": "array", "items": {"type": "integer"}}, "die Jahre 2022, 2023 und 2024") == [
        2022,
        2023,
        2024,
    ]
    unique = check({"type": "array", "items": {"type": "integer"}, "minItems": 3, "uniqueItems": True})
    assert len(unique) == 3
    assert (
        len(check({"type": "array", "items": {"type": "string"}, "maxItems": 2}, "A, B, C und D sagen")) <= 2
    )
    assert check(
        {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]}, "Nr 4 für Meyer"
    ) == [
        4,
        "Meyer",
    ]


def test_nullable_anyof_oneof_allof() -> None:
    assert check({"type": "string", "nullable": True}) == "unbekannt"  # valid with or without OpenAPI
    assert check({"type": "string", "nullable": True}, "für Meyer") == "Meyer"
    assert check({"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}) is None
    assert check({"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}, "in 4 Wochen") == 4
    assert check({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "für Meyer") == "Meyer"
    assert check({"oneOf": [{"type": "integer"}, {"type": "boolean"}]}) == 0
    merged = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"b": {"type": "string"}}, "required": ["b"]},
        ]
    }
    assert set(check(merged)) == {"a", "b"}


class Address(BaseModel):
    street: str
    zip_code: str = Field(pattern=r"^\d{5}$")


class Employee(BaseModel):
    name: str
    age: int = Field(ge=16, le=67)
    salary: float = Field(gt=0, multiple_of=0.5)
    kind: Literal["vollzeit", "teilzeit"] = "vollzeit"
    address: Address
    manager: Employee | None = None
    reports: list[Employee] = []
    start: str = Field(json_schema_extra={"format": "date"})
    active: bool


def test_pydantic_schemas_with_defs_and_refs() -> None:
    schema = Employee.model_json_schema()
    assert "$defs" in schema and "$ref" in json.dumps(schema)
    value = check(schema, "Neu: Max Müller, 34 Jahre, Teilzeit, 3500,5 Euro, PLZ 10115, ab 1.4.2023")
    assert value["name"] == "Max Müller" and value["age"] == 34 and value["salary"] == 3500.5
    assert value["kind"] == "teilzeit" and value["start"] == "2023-04-01"
    assert value["address"]["zip_code"] == "10115"
    assert "manager" not in value  # optional and nothing in the question for it
    Employee.model_validate(value)
    Employee.model_validate(check(schema))
    strict = openai.pydantic_function_tool(Employee)["function"]["parameters"]  # all required, no extras
    Employee.model_validate(check(dict(strict), "Max Müller"))


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_any_question_gives_a_valid_value(question: str) -> None:
    check(Employee.model_json_schema(), question)
    check(schema_of(LEAVE), question)


def test_values_follow_the_property_names() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tage": {"type": "integer"},
            "jahr": {"type": "integer"},
            "eilig": {"type": "boolean"},
        },
        "required": ["tage", "jahr", "eilig"],
    }
    assert check(schema, "Im Jahr 2023 waren es 12 Tage, eilig!") == {"tage": 12, "jahr": 2023, "eilig": True}


# -- tool_intent: tool calls ------------------------------------------------------------------


def test_tools_are_asked_for_by_name_spaced_name_or_description() -> None:
    assert [t.name for t in tools_asked_for("Ruf get_weather auf", [WEATHER, CLOCK])] == ["get_weather"]
    assert [t.name for t in tools_asked_for("Bitte get weather für Rom", [WEATHER, CLOCK])] == ["get_weather"]
    assert [t.name for t in tools_asked_for("Wie ist das Wetter in Rom?", [WEATHER, CLOCK])] == [
        "get_weather"
    ]
    assert tools_asked_for(QUESTION, [WEATHER, CLOCK, LEAVE]) == []
    assert best_tool(QUESTION, [WEATHER, CLOCK]).name == "get_weather"  # a tie: the first
    camel = {"name": "getWeather", "description": "", "parameters": {}}
    assert [t.name for t in tools_asked_for("bitte get weather", [camel])] == ["getWeather"]


def test_tool_calls_for_each_tool_choice() -> None:
    tools = [WEATHER, CLOCK]
    assert tool_calls_for("Wetter in Rom?", tools, "auto") == [
        PlannedToolCall("get_weather", {"city": "Rom"})
    ]
    assert tool_calls_for("Wetter in Rom?", tools, None) == tool_calls_for("Wetter in Rom?", tools, "auto")
    assert tool_calls_for("Wetter in Rom?", tools, "none") == []
    assert tool_calls_for(QUESTION, tools, "auto") == []
    assert [c.name for c in tool_calls_for(QUESTION, tools, "required")] == ["get_weather"]
    forced = {"type": "function", "function": {"name": "current_time"}}
    assert tool_calls_for("Wetter in Rom?", tools, forced) == [PlannedToolCall("current_time", {})]
    with pytest.raises(ValueError, match="not among the tools"):
        tool_calls_for("x", tools, {"type": "function", "function": {"name": "nope"}})
    assert tool_calls_for("Wetter in Rom?", [], "required") == []


LOCATION = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}


def test_parallel_planned_calls() -> None:
    by_values = tool_calls_for("Wetter in Rom und Paris", [WEATHER], "auto")
    assert [c.arguments for c in by_values] == [{"city": "Rom"}, {"city": "Paris"}]
    by_tools = tool_calls_for("current_time und get_weather für Rom", [WEATHER, CLOCK], "auto")
    assert [c.name for c in by_tools] == ["current_time", "get_weather"]
    assert by_values[0].arguments_json == '{"city": "Rom"}'
    # A list needs und/and before its last value: commas alone join the parts of one place.
    place = {"name": "get_weather", "description": "Get the weather at a location.", "parameters": LOCATION}
    assert tool_calls_for("What is the weather in San Francisco, CA?", [place]) == [
        PlannedToolCall("get_weather", {"location": "San Francisco"})
    ]
    three = tool_calls_for("What is the weather in Paris, Rome, and Oslo?", [place])
    assert [c.arguments["location"] for c in three] == ["Paris", "Rome", "Oslo"]


def test_flat_tool_shape_and_arguments_for() -> None:
    flat = {
        "name": "lookup",
        "description": "Schlägt nach",
        "input_schema": {"type": "object", "properties": {}},
    }
    assert tool_spec(flat) == ToolSpec("lookup", "Schlägt nach", {"type": "object", "properties": {}})
    assert tool_spec(WEATHER).name == "get_weather"
    with pytest.raises(ValueError):
        tool_spec({"type": "function", "function": {}})
    assert arguments_for(None, "x") == {}
    assert arguments_for({}, "x") == {}
    assert arguments_for(schema_of(WEATHER), "Wetter in Rom", vocabulary=["Wetter"]) == {"city": "Rom"}


def test_split_fragments() -> None:
    text = json.dumps({"city": "München", "unit": "celsius"}, ensure_ascii=False)
    for size in (1, 3, 8):
        pieces = split_fragments(text, size)
        assert "".join(pieces) == text and all(1 <= len(p) <= size for p in pieces)
    assert split_fragments("", 8) == [""]
    with pytest.raises(ValueError):
        split_fragments("x", 0)
