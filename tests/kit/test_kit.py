"""The emulator's pytest plugin, used as a user uses it: only its fixtures (`haufe_emulator`),
none of tests/conftest.py's; clients built with no arguments, from the environment it sets."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import pytest

from haufe_copilot import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncHaufeCopilotClient,
    HaufeCopilotClient,
    NotFoundError,
    ServiceUnavailableError,
)
from haufe_copilot.types import DeltaEvent, ToolCallEvent
from haufe_emulator.pytest_plugin import HaufeEmulator
from haufe_emulator.scripts import UNSCRIPTED, UNSCRIPTED_STATUS, source

QUESTION = "Welche Kündigungsfristen gelten während der Probezeit?"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def user(text: str = QUESTION) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def client(haufe_emulator: HaufeEmulator) -> Iterator[HaufeCopilotClient]:
    with HaufeCopilotClient(max_retries=0) as built_from_the_environment:
        yield built_from_the_environment


def test_the_environment_points_every_client_at_the_emulator(haufe_emulator: HaufeEmulator) -> None:
    assert os.environ["HAUFE_COPILOT_BASE_URL"] == haufe_emulator.base_url
    assert os.environ["HAUFE_COPILOT_PLATFORM_BASE_URL"] == haufe_emulator.base_url
    assert os.environ["HAUFE_COPILOT_ASSISTANT_ID"] == haufe_emulator.assistant_id
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", haufe_emulator.base_url)
    from langchain_haufe import ChatHaufeCopilot
    from llama_index_haufe import HaufeCopilot

    with HaufeCopilotClient() as client:
        answer = client.assistant.chat(assistant_id=haufe_emulator.assistant_id, messages=user())
        assert "§ 622 Abs. 3 BGB" in answer.content  # unscripted: the corpus answers
        assert client.completions.create(messages=user()).choices[0].message.content
    assert "§ 622" in str(ChatHaufeCopilot().invoke(QUESTION).content)
    assert "§ 622" in str(HaufeCopilot().complete(QUESTION))
    assert [r.api for r in haufe_emulator.requests] == ["assistant", "completions", "assistant", "assistant"]


async def test_the_async_client_needs_no_arguments_either(haufe_emulator: HaufeEmulator) -> None:
    haufe_emulator.on(api="assistant").answer("asynchron")
    async with AsyncHaufeCopilotClient() as client:
        answer = await client.assistant.chat(assistant_id=haufe_emulator.assistant_id, messages=user())
    assert answer.content == "asynchron"


def test_an_answer_is_sent_with_its_sources_in_the_wire_shape(
    haufe_emulator: HaufeEmulator, client: HaufeCopilotClient
) -> None:
    cited = source("§ 1 TestG: Text.", document_title="Testgesetz", section="§ 1", law="TestG")
    haufe_emulator.on("probezeit", api="assistant", times=2).answer("Zwei Wochen.", sources=[cited])

    whole = client.assistant.chat(assistant_id=haufe_emulator.assistant_id, messages=user())
    with client.assistant.stream(assistant_id=haufe_emulator.assistant_id, messages=user()) as stream:
        chunks = list(stream)

    assert whole.content == "Zwei Wochen." == "".join(c.delta.content for c in chunks)
    assert [s.model_dump() for s in whole.sources] == [cited]
    assert chunks[-1].delta.sources[0].model_dump() == cited
    raw = haufe_emulator.requests[0]
    assert raw.question == QUESTION and raw.headers["api-key"] == "<redacted>"
    assert haufe_emulator.api_key not in json.dumps([dict(r.headers) for r in haufe_emulator.requests])


def test_scripts_are_tried_in_order_and_used_up(
    haufe_emulator: HaufeEmulator, client: HaufeCopilotClient
) -> None:
    haufe_emulator.on(re.compile(r"Probezeit\?$")).answer("erstens")
    haufe_emulator.on("PROBEZEIT").answer("zweitens")
    haufe_emulator.on("Urlaub").answer("nie")
    ask = lambda: client.assistant.chat(assistant_id=haufe_emulator.assistant_id, messages=user()).content  # noqa: E731

    assert [ask(), ask()] == ["erstens", "zweitens"]
    assert "§ 622 Abs. 3 BGB" in ask()  # every script used up, not strict: the corpus answers


def test_streamed_narrows_a_script_to_streamed_or_whole_answers(
    haufe_emulator: HaufeEmulator, client: HaufeCopilotClient
) -> None:
    haufe_emulator.on(api="assistant", streamed=True).answer("gestreamt")
    haufe_emulator.on(api="assistant", streamed=False).answer("am Stück")
    with client.assistant.stream(assistant_id=haufe_emulator.assistant_id, messages=user()) as stream:
        assert "".join(c.delta.content for c in stream) == "gestreamt"
    assert (
        client.assistant.chat(assistant_id=haufe_emulator.assistant_id, messages=user()).content == "am Stück"
    )


def test_tool_calls_on_the_completions_and_async_stream_apis(
    haufe_emulator: HaufeEmulator, client: HaufeCopilotClient
) -> None:
    haufe_emulator.on("Wetter", api="completions").call_tool("get_weather", {"city": "Köln"}).call_tool(
        "get_weather", {"city": "Bonn"}
    )
    haufe_emulator.on("Wetter", api="async_stream").call_tool("get_weather", {"city": "Köln"})

    completion = client.completions.create(messages=user("Wie ist das Wetter?"), tools=[WEATHER_TOOL])
    calls = completion.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Köln"}),
        ("get_weather", {"city": "Bonn"}),
    ]
    assert completion.choices[0].finish_reason == "tool_calls"
    handle = client.streams.start(messages=user("Wie ist das Wetter?"), tools=[WEATHER_TOOL])
    events = list(client.streams.events(handle.stream_id))
    fragments = [e for e in events if isinstance(e, ToolCallEvent)]
    assert fragments[0].name == "get_weather"
    assert json.loads("".join(e.arguments or "" for e in fragments)) == {"city": "Köln"}


def test_a_tool_call_answers_only_a_request_offering_the_tool(
    haufe_emulator: HaufeEmulator, client: HaufeCopilotClient
) -> None:
    haufe_emulator.on("Wetter").call_tool("get_weather", {"city": "Köln"})
    haufe_emulator.on("Wetter").answer("Sonnig.")
    assert (
        client.completions.create(messages=user("Wie ist das Wetter?")).choices[0].message.content
        == "Sonnig."
    )
    assert haufe_emulator.server.state.scripts.unused()[0].tool_calls  # the call was not used


def test_fail_answers_the_error_or_breaks_the_stream_after_n_deltas(
    haufe_emulator: HaufeEmulator, client: HaufeCopilotClient
) -> None:
    haufe_emulator.on(api="assistant", streamed=False).fail("assistant_not_found")
    haufe_emulator.on(api="completions").answer("eins zwei drei vier").fail("internal_service_error", after=2)
    haufe_emulator.on(api="async_stream").answer("eins zwei drei").fail("api_timeout_error", after=1)

    with pytest.raises(NotFoundError):
        client.assistant.chat(assistant_id=haufe_emulator.assistant_id, messages=user())
    with pytest.raises(ServiceUnavailableError) as broken:
        list(client.completions.create(messages=user(), stream=True))
    assert broken.value.partial == "eins zwei "
    handle = client.streams.start(messages=user())
    with pytest.raises(APIStatusError) as failed:
        list(client.streams.events(handle.stream_id))
    assert failed.value.error_code == "api_timeout_error"
    assert client.streams.status(handle.stream_id).status == "failed"


def test_cut_and_stall(haufe_emulator: HaufeEmulator, client: HaufeCopilotClient) -> None:
    haufe_emulator.on("cut").answer("eins zwei drei").cut(after=2)
    haufe_emulator.on("stall").answer("eins zwei drei").stall(5, after=1)
    haufe_emulator.on("ganz").stall(5)
    haufe_emulator.on("am Stück").stall(5, after=1)  # a whole answer has no deltas: before it

    with (
        pytest.raises(APIConnectionError) as cut,
        client.assistant.stream(assistant_id=haufe_emulator.assistant_id, messages=user("cut")) as stream,
    ):
        list(stream)
    assert cut.value.partial == "eins zwei "
    quick = client.with_options(timeout=0.3)
    with (
        pytest.raises(APITimeoutError),
        quick.assistant.stream(assistant_id=haufe_emulator.assistant_id, messages=user("stall")) as stream,
    ):
        assert next(stream).delta.content == "eins "
        list(stream)
    for question in ("ganz", "am Stück"):
        with pytest.raises(APITimeoutError):
            quick.assistant.chat(assistant_id=haufe_emulator.assistant_id, messages=user(question))
    outcomes = [s.outcome for s in haufe_emulator.streams]
    assert outcomes[0] == "cut"


def test_faults_by_api(haufe_emulator: HaufeEmulator, client: HaufeCopilotClient) -> None:
    haufe_emulator.fault(api="completions", error="internal_service_error", times=2)

    assert client.assistant.chat(assistant_id=haufe_emulator.assistant_id, messages=user()).content
    for _ in range(2):
        with pytest.raises(ServiceUnavailableError):
            client.completions.create(messages=user())
    assert client.completions.create(messages=user()).choices[0].message.content  # the third is served
    haufe_emulator.fault(api="async_stream", cut_after=1)
    handle = client.streams.start(messages=user())
    text = "".join(e.content for e in client.streams.events(handle.stream_id) if isinstance(e, DeltaEvent))
    assert "§ 622" in text  # the client re-attached after each cut connection
    assert [s.outcome for s in haufe_emulator.streams].count("cut") > 1


def test_a_fault_or_a_script_is_checked_when_declared(haufe_emulator: HaufeEmulator) -> None:
    with pytest.raises(ValueError, match="unknown fault field"):
        haufe_emulator.fault(api="assistant", cut_afterwards=1)
    with pytest.raises(ValueError, match="x-emulator-delay must be from 0 to 60 seconds"):
        haufe_emulator.fault(delay=600)
    with pytest.raises(ValueError, match="api must be one of"):
        haufe_emulator.fault(api="chat", error="internal_server_error")
    with pytest.raises(ValueError, match="cannot call tools"):
        haufe_emulator.on(api="assistant").call_tool("get_weather")
    with pytest.raises(ValueError, match="cannot cut"):
        haufe_emulator.on(api="async_stream").cut(after=1)
    with pytest.raises(ValueError, match="unknown error"):
        haufe_emulator.on().fail("kaputt")
    with pytest.raises(ValueError, match="times must be"):
        haufe_emulator.on(times=0)


@pytest.mark.haufe_emulator(words_per_delta=3)
def test_the_marker_configures_the_emulator(
    haufe_emulator: HaufeEmulator, client: HaufeCopilotClient
) -> None:
    haufe_emulator.on().answer("eins zwei drei vier")
    with client.assistant.stream(assistant_id=haufe_emulator.assistant_id, messages=user()) as stream:
        assert [c.delta.content for c in stream] == ["eins zwei drei ", "vier"]


def test_strict_refuses_what_no_script_matches_and_check_names_it(
    haufe_emulator: HaufeEmulator, client: HaufeCopilotClient
) -> None:
    haufe_emulator.strict = True
    haufe_emulator.on("Urlaub", api="assistant").answer("24 Werktage.")
    haufe_emulator.on("Elternzeit", optional=True).answer("bis zu drei Jahre")

    with pytest.raises(APIStatusError) as refused:
        client.completions.create(messages=user("Gibt es Urlaubsgeld?"))
    assert refused.value.status_code == UNSCRIPTED_STATUS and refused.value.error_code == UNSCRIPTED
    assert "No script matches POST /api/v1/chat/completions (completions, whole answer)" in str(refused.value)
    assert len(haufe_emulator.received("completions")) == 1  # not retried
    with pytest.raises(AssertionError) as reported:
        haufe_emulator.check()
    report = str(reported.value)
    assert (
        "  - no script matched POST /api/v1/chat/completions (completions, whole answer) "
        "asking 'Gibt es Urlaubsgeld?'\n" in report
    )
    assert "script never used: on('Urlaub', api='assistant') -> answer '24 Werktage.'" in report
    assert "Elternzeit" not in report  # optional: not reported as unused
    haufe_emulator.reset()  # so that this test's own teardown finds nothing to report
    assert haufe_emulator.requests == [] and haufe_emulator.strict
