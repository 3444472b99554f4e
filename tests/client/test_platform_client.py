"""The core client on the platform APIs against the emulator: completions with tools over SSE,
Bearer and token-provider auth, and async streams that resume."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import jsonschema
import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient, errors
from haufe_copilot.protocol.tool_calls import ToolCallAccumulator
from haufe_copilot.types import DeltaEvent, DoneEvent, StatusEvent, StreamEvent, ThinkingEvent, ToolCallEvent
from haufe_emulator import EmulatorServer
from tests.conftest import QUESTION, SESSION_API_KEY, attempts, user, wait_for

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Das aktuelle Wetter einer Stadt",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "current_time",
        "description": "Die aktuelle Uhrzeit",
        "parameters": {"type": "object", "properties": {}},
    },
}


def schema_of(tool: dict[str, Any]) -> dict[str, Any]:
    return tool["function"]["parameters"]  # type: ignore[no-any-return]


# -- completions ------------------------------------------------------------------------------


def test_a_blocking_completion(client: HaufeCopilotClient) -> None:
    completion = client.completions.create(messages=user())
    assert completion.object == "chat.completion"
    message = completion.choices[0].message
    assert message.role == "assistant" and "§ 622 Abs. 3 BGB" in (message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 10
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert completion.session_id  # a new one, made by the server


def test_a_session_id_is_sent_and_echoed(client: HaufeCopilotClient, emulator: EmulatorServer) -> None:
    completion = client.completions.create(messages=user(), session_id="s-123")
    assert completion.session_id == "s-123"
    request = list(emulator.state.requests)[-1]
    assert request.body["session_id"] == "s-123"
    assert request.headers["authorization"] == "<redacted>"  # Bearer sent (redacted in the record)
    assert request.headers["accept"] == "application/json"


def test_a_streamed_completion(client: HaufeCopilotClient, emulator: EmulatorServer) -> None:
    blocking = client.completions.create(messages=user())
    chunks = list(client.completions.create(messages=user(), stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == blocking.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 10
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    request = list(emulator.state.requests)[-1]
    assert request.headers["accept"] == "text/event-stream" and request.body["stream"] is True


def test_stop_and_max_tokens(client: HaufeCopilotClient) -> None:
    full = client.completions.create(messages=user()).choices[0].message.content or ""
    stop_word = full.split()[5]
    stopped = client.completions.create(messages=user(), stop=[stop_word]).choices[0]
    assert stopped.finish_reason == "stop" and stop_word not in (stopped.message.content or "")
    limited = client.completions.create(messages=user(), max_tokens=4).choices[0]
    assert limited.finish_reason == "length" and len((limited.message.content or "").split()) == 4


def test_tool_call_end_to_end(client: HaufeCopilotClient, emulator: EmulatorServer) -> None:
    question = user("Wie wird das Wetter in Berlin? Bitte get_weather verwenden.")
    completion = client.completions.create(messages=question, tools=[WEATHER])  # streams underneath
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather" and call.id
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, schema_of(WEATHER))
    assert arguments["city"] == "Berlin"
    assert list(emulator.state.requests)[-1].headers["accept"] == "text/event-stream"
    follow_up = [
        *question,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sonnig, 21 Grad"},
    ]
    final = client.completions.create(messages=follow_up, tools=[WEATHER])
    assert final.choices[0].finish_reason == "stop"
    assert "Sonnig, 21 Grad" in (final.choices[0].message.content or "")
    sent = list(emulator.state.requests)[-1].body
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": call.id, "content": "Sonnig, 21 Grad"}


def test_parallel_calls_and_a_tool_without_arguments(client: HaufeCopilotClient) -> None:
    question = user("Rufe get_weather für Berlin und current_time auf.")
    calls = client.completions.create(messages=question, tools=[WEATHER, CLOCK]).choices[0].message.tool_calls
    assert calls is not None and {c.function.name for c in calls} == {"get_weather", "current_time"}
    for call in calls:
        tool = WEATHER if call.function.name == "get_weather" else CLOCK
        jsonschema.validate(json.loads(call.function.arguments), schema_of(tool))
    assert next(c for c in calls if c.function.name == "current_time").function.arguments == "{}"
    assert len({c.id for c in calls}) == 2


def test_streamed_tool_call_fragments_assemble(client: HaufeCopilotClient) -> None:
    accumulator = ToolCallAccumulator()
    fragments = 0
    for chunk in client.completions.create(
        messages=user("get_weather für München bitte"), tools=[WEATHER], tool_choice="required", stream=True
    ):
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or ():
                fragments += 1
                accumulator.add_openai_delta(call.model_dump(exclude_none=True))
    (call,) = accumulator.calls()
    assert fragments > 2  # the arguments came in pieces
    assert call.parsed_arguments()["city"] == "München"


def test_tool_choice_none_and_named(client: HaufeCopilotClient) -> None:
    question = user("Wie wird das Wetter in Berlin? Bitte get_weather verwenden.")
    none = client.completions.create(messages=question, tools=[WEATHER], tool_choice="none").choices[0]
    assert none.message.tool_calls is None and none.message.content
    named = client.completions.create(
        messages=user(QUESTION),
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "function": {"name": "current_time"}},
    ).choices[0]
    assert [c.function.name for c in named.message.tool_calls or []] == ["current_time"]


async def test_async_completions(async_client: AsyncHaufeCopilotClient) -> None:
    completion = await async_client.completions.create(messages=user())
    stream = await async_client.completions.create(messages=user(), stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == completion.choices[0].message.content
    calls = (
        (await async_client.completions.create(messages=user("get_weather für Hamburg"), tools=[WEATHER]))
        .choices[0]
        .message.tool_calls
    )
    assert calls and json.loads(calls[0].function.arguments)["city"] == "Hamburg"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tools": [{"type": "function", "function": {"name": "x"}}]}, "has no JSON schema"),
        (
            {
                "tools": [
                    {"type": "function", "function": {"name": "bad name!", "parameters": {"type": "object"}}}
                ]
            },
            "function.name",
        ),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        ({"tool_choice": "required"}, "needs tools"),
        ({"messages": [{"role": "user", "content": "x", "foo": 1}]}, "does not document"),
        ({"messages": [{"role": "user", "content": ["parts"]}]}, "must be a string"),
        ({"session_id": "a\nb"}, "control character"),
    ],
)
def test_bad_completion_input_is_refused(
    client: HaufeCopilotClient, kwargs: dict[str, Any], message: str
) -> None:
    call: dict[str, Any] = {"messages": user(), **kwargs}
    with pytest.raises(errors.InvalidRequestError, match=message):
        client.completions.create(**call)


def test_tools_with_a_json_accept_is_the_servers_400(client: HaufeCopilotClient) -> None:
    with pytest.raises(errors.BadRequestError) as info:
        client.completions.create(
            messages=user(), tools=[WEATHER], extra_headers={"Accept": "application/json"}
        )
    assert "text/event-stream" in str(info.value)


def test_an_error_event_in_a_completion_stream(client: HaufeCopilotClient) -> None:
    received = []
    with pytest.raises(errors.InternalServerError) as info:
        for chunk in client.with_options(max_retries=0).completions.create(
            messages=user(),
            stream=True,
            extra_headers={
                "x-emulator-stream-error": "internal_server_error",
                "x-emulator-stream-error-after": "3",
            },
        ):
            received.append(chunk)
    assert info.value.error_code == "internal_server_error"
    assert info.value.partial == "".join(c.choices[0].delta.content or "" for c in received if c.choices)


# -- auth ---------------------------------------------------------------------------------


def test_a_token_provider_gives_the_bearer(emulator: EmulatorServer) -> None:
    calls = []

    def provider() -> str:
        calls.append(1)
        return SESSION_API_KEY

    with HaufeCopilotClient(token_provider=provider, base_url=emulator.url) as client:
        assert client.completions.create(messages=user()).choices[0].message.content
    assert len(calls) == 1


def test_a_401_asks_the_token_provider_once_more(emulator: EmulatorServer) -> None:
    tokens = iter(["expired-token", SESSION_API_KEY])
    marker = secrets.token_hex(6)
    with HaufeCopilotClient(token_provider=lambda: next(tokens), base_url=emulator.url) as client:
        client.completions.create(messages=user(), extra_headers={"x-test-marker": marker})
    assert attempts(emulator, "x-test-marker", marker) == 2
    always_bad = iter(["bad-1", "bad-2", "bad-3"])
    marker = secrets.token_hex(6)
    with HaufeCopilotClient(token_provider=lambda: next(always_bad), base_url=emulator.url) as client:
        with pytest.raises(errors.AuthenticationError):
            client.completions.create(messages=user(), extra_headers={"x-test-marker": marker})
    assert attempts(emulator, "x-test-marker", marker) == 2  # one refresh, not a loop


async def test_an_async_token_provider(emulator: EmulatorServer) -> None:
    async def provider() -> str:
        await asyncio.sleep(0)
        return SESSION_API_KEY

    async with AsyncHaufeCopilotClient(token_provider=provider, base_url=emulator.url) as client:
        assert (await client.completions.create(messages=user())).choices[0].message.content


def test_token_provider_mistakes_are_explained(emulator: EmulatorServer) -> None:
    async def provider() -> str:
        return SESSION_API_KEY

    with HaufeCopilotClient(token_provider=provider, base_url=emulator.url) as client:
        with pytest.raises(errors.ConfigurationError, match="AsyncHaufeCopilotClient"):
            client.completions.create(messages=user())
    with HaufeCopilotClient(token_provider=lambda: "", base_url=emulator.url) as client:
        with pytest.raises(errors.ConfigurationError, match="non-empty"):
            client.completions.create(messages=user())
    with HaufeCopilotClient(token_provider=lambda: SESSION_API_KEY, base_url=emulator.url) as client:
        with pytest.raises(errors.ConfigurationError, match="assistant API needs an API key"):
            client.assistant.chat(assistant_id="a", messages=user())


# -- async streams --------------------------------------------------------------------------


def collect(client: HaufeCopilotClient, stream_id: str, **kwargs: Any) -> list[StreamEvent]:
    return list(client.streams.events(stream_id, **kwargs))


def test_an_async_stream_from_start_to_done(client: HaufeCopilotClient) -> None:
    handle = client.streams.start(messages=user(), correlation_id="corr-1")
    assert handle.status == "pending" and handle.stream_id
    events = collect(client, handle.stream_id)
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert isinstance(events[0], StatusEvent) and events[0].status == "processing"
    assert isinstance(events[-1], DoneEvent) and events[-1].status == "completed"
    text = "".join(e.content for e in events if isinstance(e, DeltaEvent))
    assert "§ 622 Abs. 3 BGB" in text
    status = client.streams.status(handle.stream_id)
    assert status.status == "completed" and status.finished


def test_thinking_comes_before_the_answer(client: HaufeCopilotClient) -> None:
    handle = client.streams.start(messages=user(), thinking={"enabled": True})
    kinds = [e.event for e in collect(client, handle.stream_id)]
    assert "thinking" in kinds and kinds.index("thinking") < kinds.index("delta")
    assert all(
        isinstance(e, (StatusEvent, ThinkingEvent, DeltaEvent, DoneEvent))
        for e in collect(client, handle.stream_id)
    )


def test_async_stream_tool_calls_and_response_format(client: HaufeCopilotClient) -> None:
    handle = client.streams.start(messages=user("get_weather für Köln"), tools=[WEATHER])
    accumulator = ToolCallAccumulator()
    for event in collect(client, handle.stream_id):
        if isinstance(event, ToolCallEvent):
            accumulator.add(
                index=event.index, id=event.tool_call_id, name=event.name, arguments=event.arguments
            )
    (call,) = accumulator.calls()
    assert call.name == "get_weather"
    jsonschema.validate(call.parsed_arguments(), schema_of(WEATHER))
    schema = {
        "type": "object",
        "properties": {"frist": {"type": "string"}, "wochen": {"type": "integer"}},
        "required": ["frist", "wochen"],
    }
    handle = client.streams.start(
        messages=user(),
        response_format={"type": "json_schema", "json_schema": {"name": "Frist", "schema": schema}},
    )
    text = "".join(e.content for e in collect(client, handle.stream_id) if isinstance(e, DeltaEvent))
    jsonschema.validate(json.loads(text), schema)


def test_a_caller_chosen_stream_id_is_encoded_and_checked(client: HaufeCopilotClient) -> None:
    stream_id = "mein-stream." + secrets.token_hex(4)
    assert client.streams.start(messages=user(), stream_id=stream_id).stream_id == stream_id
    with pytest.raises(errors.ConflictError):
        client.streams.start(messages=user(), stream_id=stream_id)
    with pytest.raises(errors.InvalidRequestError, match="control character"):
        client.streams.status("a\r\nb")
    with pytest.raises(errors.NotFoundError):
        client.streams.status("does/not/exist")  # encoded into one path segment: a 404, not another route


def test_a_50_event_stream_cut_at_every_index_resumes_exactly(
    client: HaufeCopilotClient, emulator: EmulatorServer
) -> None:
    whole_handle = client.streams.start(messages=user(), extra_headers={"x-emulator-delta-count": "50"})
    whole = collect(client, whole_handle.stream_id)
    assert sum(isinstance(e, DeltaEvent) for e in whole) == 50
    observations = emulator.app.state.async_streams.observations
    for cut in range(len(whole)):
        handle = client.streams.start(messages=user(), extra_headers={"x-emulator-delta-count": "50"})
        fault = {
            "x-emulator-cut-after": str(cut),
            "x-emulator-fault-times": "1",
            "x-emulator-fault-id": f"{handle.stream_id}-cut",
        }
        resumed = collect(client, handle.stream_id, extra_headers=fault)
        assert [(e.id, e.event, e.model_dump(exclude={"id"})) for e in resumed] == [
            (e.id, e.event, e.model_dump(exclude={"id"})) for e in whole
        ]

        def finished(stream_id: str = handle.stream_id) -> list[Any]:
            mine = [o for o in list(observations) if o.stream_id == stream_id]
            return mine if len(mine) == 2 and all(o.record.ended_at is not None for o in mine) else []

        mine = wait_for(finished)  # the server books a sent event just after sending it
        assert [o.sent for o in mine] == [list(range(1, cut + 1)), list(range(cut + 1, len(whole) + 1))]
        assert [o.last_event_id or 0 for o in mine] == [0, cut]


async def test_cancel_mid_answer(async_client: AsyncHaufeCopilotClient) -> None:
    handle = await async_client.streams.start(
        messages=user(), extra_headers={"x-emulator-delta-delay": "0.05"}
    )
    seen: list[StreamEvent] = []
    cancelled = False
    async for event in async_client.streams.events(handle.stream_id):
        seen.append(event)
        if not cancelled and sum(isinstance(e, DeltaEvent) for e in seen) == 2:
            assert (await async_client.streams.cancel(handle.stream_id)).status == "cancelled"
            cancelled = True
    assert isinstance(seen[-1], DoneEvent) and seen[-1].status == "cancelled"
    assert sum(isinstance(e, DeltaEvent) for e in seen) < 10
    assert (await async_client.streams.status(handle.stream_id)).status == "cancelled"


def test_bad_stream_input(client: HaufeCopilotClient) -> None:
    with pytest.raises(errors.NotFoundError):
        collect(client, "no-such-stream")
    with pytest.raises(errors.InvalidRequestError, match="response_format"):
        client.streams.start(messages=user(), response_format={"type": "json_schema", "json_schema": {}})
    with pytest.raises(errors.InvalidRequestError, match="response_format"):
        client.streams.start(messages=user(), response_format={"type": "xml"})
    with pytest.raises(errors.InvalidRequestError, match="extra_body"):
        client.streams.start(messages=user(), temprature=0.1)
    with pytest.raises(errors.InvalidRequestError, match="has no JSON schema"):
        client.streams.start(messages=user(), tools=[{"type": "function", "function": {"name": "x"}}])
