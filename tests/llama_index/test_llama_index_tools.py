"""`HaufeCopilot` with tools and structured output, and inside LlamaIndex agents, against the
emulator over real HTTP: the completions endpoint over SSE (the whole history, tool calls and
results in the OpenAI shape), partial arguments while streaming, `FunctionAgent` and
`AgentWorkflow`, the query engine as a `QueryEngineTool`, and the async-streams API's
`response_format`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.agent.workflow import (
    AgentStream,
    AgentWorkflow,
    FunctionAgent,
    ToolCallResult,
)
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.base.response.schema import Response
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool, QueryEngineTool
from pydantic import BaseModel, Field

from haufe_emulator import EmulatorServer
from llama_index_haufe import HaufeCopilot, HaufeCopilotQueryEngine
from tests.conftest import QUESTION

from .test_llama_index_support import (
    ASSISTANT_STREAM,
    ASYNC_STREAMS,
    COMPLETIONS,
    bodies,
    file_memory,
    make_llm,
    received,
    user,
)

WEATHER_QUESTION = "Wie wird das Wetter in Berlin? Bitte get_weather verwenden."


def get_weather(city: str) -> str:
    """Das aktuelle Wetter einer Stadt."""
    return f"Sonnig in {city}, 21 Grad"


def current_time() -> str:
    """Die aktuelle Uhrzeit."""
    return "14:30 Uhr"


WEATHER = FunctionTool.from_defaults(get_weather)
CLOCK = FunctionTool.from_defaults(current_time)


class Kuendigungsfrist(BaseModel):
    """Eine Kündigungsfrist."""

    dauer_wochen: int = Field(description="Die Frist in Wochen")
    paragraph: str = Field(description="Die Vorschrift, z. B. § 622 BGB")


# -- tools on the LLM ----------------------------------------------------------------------


def test_chat_with_tools_talks_to_the_completions_endpoint(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str
) -> None:
    response = llm.chat_with_tools([WEATHER, CLOCK], user_msg=WEATHER_QUESTION)
    (block,) = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
    assert block.tool_name == "get_weather" and block.tool_kwargs == {"city": "Berlin"}
    (selection,) = llm.get_tool_calls_from_response(response)
    assert selection.tool_name == "get_weather" and selection.tool_kwargs == {"city": "Berlin"}
    assert selection.tool_id == block.tool_call_id
    extra = response.message.additional_kwargs
    assert extra["finish_reason"] == "tool_calls" and extra["session_id"] and extra["usage"]["total_tokens"]
    assert response.additional_kwargs["total_tokens"] == extra["usage"]["total_tokens"]
    (request,) = received(emulator, marker, COMPLETIONS)
    assert request.headers["accept"] == "text/event-stream" and request.headers["authorization"]
    assert request.body["messages"] == [{"role": "user", "content": WEATHER_QUESTION}]
    assert [t["function"]["name"] for t in request.body["tools"]] == ["get_weather", "current_time"]
    assert request.body["tool_choice"] == "auto" and "session_id" not in request.body
    assert not received(emulator, marker, ASSISTANT_STREAM)  # no assistant, no thread


def test_predict_and_call_runs_the_tool(llm: HaufeCopilot) -> None:
    result = llm.predict_and_call([WEATHER], user_msg=WEATHER_QUESTION)
    assert result.response == "Sonnig in Berlin, 21 Grad"
    assert result.sources[0].tool_name == "get_weather"

    async def run() -> str:
        return (await llm.apredict_and_call([WEATHER], user_msg="get_weather für Hamburg")).response

    assert asyncio.run(run()) == "Sonnig in Hamburg, 21 Grad"


def test_streamed_tool_calls_show_their_arguments_so_far(llm: HaufeCopilot) -> None:
    responses = list(llm.stream_chat_with_tools([WEATHER], user_msg="get_weather für München bitte"))
    seen = [llm.get_tool_calls_from_response(r, error_on_no_tool_call=False) for r in responses]
    arguments = [calls[0].tool_kwargs for calls in seen if calls]
    assert arguments[-1] == {"city": "München"}
    partial = [a for a in arguments if a != {"city": "München"}]
    assert partial, "the arguments came in pieces"
    assert all(a in ({}, {"city": ""}) or "München".startswith(a.get("city", "")) for a in partial)
    assert (
        responses[-1].delta == "" and responses[-1].message.additional_kwargs["finish_reason"] == "tool_calls"
    )


def test_tool_results_go_back_as_tool_messages(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str
) -> None:
    first = llm.chat_with_tools([WEATHER], user_msg=WEATHER_QUESTION)
    (call,) = llm.get_tool_calls_from_response(first)
    history = [
        user(WEATHER_QUESTION),
        first.message,
        ChatMessage(
            role=MessageRole.TOOL,
            content="Sonnig in Berlin, 21 Grad",
            additional_kwargs={"tool_call_id": call.tool_id},
        ),
    ]
    final = llm.chat_with_tools([WEATHER], chat_history=history)
    assert "Sonnig in Berlin, 21 Grad" in (final.message.content or "")
    assert not llm.get_tool_calls_from_response(final, error_on_no_tool_call=False)
    with pytest.raises(ValueError, match="tool call"):
        llm.get_tool_calls_from_response(final)
    second = bodies(emulator, marker, COMPLETIONS)[-1]["messages"]
    assert second == [
        {"role": "user", "content": WEATHER_QUESTION},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.tool_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Berlin"}'},
                }
            ],
        },
        {"role": "tool", "content": "Sonnig in Berlin, 21 Grad", "tool_call_id": call.tool_id},
    ]


def test_parallel_calls_unless_disallowed(llm: HaufeCopilot) -> None:
    question = "Rufe get_weather für Berlin und current_time auf."
    both = llm.chat_with_tools([WEATHER, CLOCK], user_msg=question, allow_parallel_tool_calls=True)
    assert [c.tool_name for c in llm.get_tool_calls_from_response(both)] == ["get_weather", "current_time"]
    one = llm.chat_with_tools([WEATHER, CLOCK], user_msg=question, allow_parallel_tool_calls=False)
    assert [c.tool_name for c in llm.get_tool_calls_from_response(one)] == ["get_weather"]
    streamed = list(llm.stream_chat_with_tools([WEATHER, CLOCK], user_msg=question))
    assert [c.tool_name for c in llm.get_tool_calls_from_response(streamed[-1])] == ["get_weather"]


def test_tool_choice_tool_required_and_session_id(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str
) -> None:
    named = llm.chat_with_tools([WEATHER, CLOCK], user_msg=QUESTION, tool_choice="current_time")
    assert [c.tool_name for c in llm.get_tool_calls_from_response(named)] == ["current_time"]
    required = llm.chat_with_tools([WEATHER, CLOCK], user_msg=QUESTION, tool_required=True)
    assert llm.get_tool_calls_from_response(required)
    session = llm.chat_with_tools([WEATHER], user_msg=QUESTION, tool_choice="none", session_id="s-42")
    assert session.message.additional_kwargs["session_id"] == "s-42" and session.message.content
    sent = bodies(emulator, marker, COMPLETIONS)
    assert sent[0]["tool_choice"] == {"type": "function", "function": {"name": "current_time"}}
    assert sent[1]["tool_choice"] == "required"
    assert sent[2]["tool_choice"] == "none" and sent[2]["session_id"] == "s-42"
    assert "session_id" not in sent[0] and "session_id" not in sent[1]


def test_platform_fields_are_sent_with_tools(emulator: EmulatorServer, marker: str) -> None:
    llm = make_llm(emulator, marker, model="haufe-large", temperature=0.1, max_tokens=400, stop=["ENDE"])
    llm.chat_with_tools([WEATHER], user_msg=WEATHER_QUESTION)
    body = bodies(emulator, marker, COMPLETIONS)[-1]
    assert body["model"] == "haufe-large" and body["temperature"] == 0.1
    assert body["max_tokens"] == 400 and body["stop"] == ["ENDE"] and body["stream"] is True


async def test_async_tools(llm: HaufeCopilot) -> None:
    response = await llm.achat_with_tools([WEATHER], user_msg="get_weather für Köln")
    assert llm.get_tool_calls_from_response(response)[0].tool_kwargs == {"city": "Köln"}
    last = None
    async for last in await llm.astream_chat_with_tools([WEATHER], user_msg="get_weather für Bonn"):
        llm.get_tool_calls_from_response(last, error_on_no_tool_call=False)
    assert last is not None and llm.get_tool_calls_from_response(last)[0].tool_kwargs == {"city": "Bonn"}


# -- structured output ------------------------------------------------------------------------

PROMPT = PromptTemplate("Wie lang ist die Kündigungsfrist in der Probezeit ({topic})?")


def test_structured_predict_by_function_calling(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str
) -> None:
    result = llm.structured_predict(Kuendigungsfrist, PROMPT, topic="BGB")
    assert isinstance(result, Kuendigungsfrist)
    body = bodies(emulator, marker, COMPLETIONS)[-1]
    assert body["tool_choice"] == "required" and body["tools"][0]["function"]["name"] == "Kuendigungsfrist"
    assert isinstance(
        asyncio.run(llm.astructured_predict(Kuendigungsfrist, PROMPT, topic="BGB")), Kuendigungsfrist
    )
    structured = llm.as_structured_llm(Kuendigungsfrist)
    response = structured.chat([user("Wie lang ist die Kündigungsfrist in der Probezeit?")])
    assert isinstance(response.raw, Kuendigungsfrist)
    assert Kuendigungsfrist.model_validate_json(response.message.content or "") == response.raw


def test_structured_predict_by_json_schema(emulator: EmulatorServer, marker: str) -> None:
    llm = make_llm(emulator, marker, structured_output_method="json_schema")
    result = llm.structured_predict(Kuendigungsfrist, PROMPT, topic="BGB")
    assert isinstance(result, Kuendigungsfrist)
    (start,) = [r.body for r in received(emulator, marker, ASYNC_STREAMS)]
    assert start["response_format"]["type"] == "json_schema"
    assert start["response_format"]["json_schema"]["schema"]["required"] == ["dauer_wochen", "paragraph"]
    assert start["messages"][0]["content"].startswith("Wie lang ist")
    assert not received(emulator, marker, COMPLETIONS)
    partials = list(llm.stream_structured_predict(Kuendigungsfrist, PROMPT, topic="BGB"))
    assert len(partials) > 1 and partials[-1] == result

    async def run() -> list[Any]:
        whole = await llm.astructured_predict(Kuendigungsfrist, PROMPT, topic="BGB")
        pieces = [
            p async for p in await llm.astream_structured_predict(Kuendigungsfrist, PROMPT, topic="BGB")
        ]
        return [whole, pieces[-1]]

    assert asyncio.run(run()) == [result, result]
    response = llm.as_structured_llm(Kuendigungsfrist).chat([user("Kündigungsfrist Probezeit?")])
    assert isinstance(response.raw, Kuendigungsfrist)
    # the final answer of the async-streams path says which stream it was
    chat = llm.chat(
        [user("Frist?")],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "frist", "schema": Kuendigungsfrist.model_json_schema()},
        },
    )
    assert (
        chat.message.additional_kwargs["status"] == "completed"
        and chat.message.additional_kwargs["stream_id"]
    )
    assert json.loads(chat.message.content or "")["paragraph"]


# -- agents -------------------------------------------------------------------------------------


async def test_function_agent_streams_three_turns_with_two_tools(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str, tmp_path: Path
) -> None:
    agent = FunctionAgent(tools=[get_weather, current_time], llm=llm)
    memory = file_memory(tmp_path, "agent-" + marker)
    questions = [
        WEATHER_QUESTION,
        "Und wie spät ist es? Bitte current_time aufrufen.",
        QUESTION,
    ]
    answers = []
    for question in questions:
        handler = agent.run(question, memory=memory)
        deltas: list[str] = []
        tool_results: list[ToolCallResult] = []
        async for event in handler.stream_events():
            if isinstance(event, AgentStream):
                deltas.append(event.delta)
            elif isinstance(event, ToolCallResult):
                tool_results.append(event)
        result = await handler
        answers.append(str(result))
        assert len([d for d in deltas if d]) > 3  # streamed, delta by delta
        if question is QUESTION:
            assert not tool_results
    assert "Sonnig in Berlin, 21 Grad" in answers[0] and "14:30 Uhr" in answers[1]
    assert "§ 622 Abs. 3 BGB" in answers[2]
    sent = bodies(emulator, marker, COMPLETIONS)
    assert len(sent) == 5  # call + answer, call + answer, answer
    tool_messages = [m for m in sent[1]["messages"] if m["role"] == "tool"]
    assert tool_messages == [
        {
            "role": "tool",
            "content": "Sonnig in Berlin, 21 Grad",
            "tool_call_id": sent[1]["messages"][1]["tool_calls"][0]["id"],
        }
    ]
    # the completions endpoint keeps no conversation: each turn sends the whole history
    assert sent[4]["messages"][0] == {"role": "user", "content": WEATHER_QUESTION}
    assert sent[4]["messages"][-1] == {"role": "user", "content": QUESTION}


async def test_agent_workflow(llm: HaufeCopilot, emulator: EmulatorServer, marker: str) -> None:
    workflow = AgentWorkflow.from_tools_or_functions([get_weather, current_time], llm=llm)
    result = await workflow.run(user_msg="Wie wird das Wetter in Hamburg? Bitte get_weather verwenden.")
    assert "Sonnig in Hamburg, 21 Grad" in str(result)
    assert len(bodies(emulator, marker, COMPLETIONS)) == 2


async def test_the_query_engine_as_a_tool_brings_its_sources(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str
) -> None:
    tool = QueryEngineTool.from_defaults(
        HaufeCopilotQueryEngine(llm=llm),
        name="haufe_recht",
        description="Beantwortet Fragen zum deutschen Arbeitsrecht mit Quellen.",
    )
    agent = FunctionAgent(tools=[tool], llm=llm)
    handler = agent.run(f"Nutze haufe_recht: {QUESTION}")
    results = [event async for event in handler.stream_events() if isinstance(event, ToolCallResult)]
    answer = await handler
    (result,) = results
    response = result.tool_output.raw_output
    assert isinstance(response, Response) and "§ 622 Abs. 3 BGB" in result.tool_output.content
    assert response.source_nodes[0].node.metadata["section"] == "§ 622 Abs. 3"
    assert [n.score for n in response.source_nodes][:2] == [1.0, 0.5]
    assert "§ 622 Abs. 3 BGB" in str(answer)
    # the agent's LLM used the completions endpoint; the tool asked the assistant (sources)
    assert len(bodies(emulator, marker, COMPLETIONS)) == 2
    assert len(received(emulator, marker, "/agents/v1/chat/completions")) == 1


async def test_an_agent_without_tools_keeps_one_server_thread(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str, tmp_path: Path
) -> None:
    agent = FunctionAgent(tools=[], llm=llm, system_prompt="Du bist ein Assistent für Arbeitsrecht.")
    memory = file_memory(tmp_path, "no-tools-" + marker)
    questions = [QUESTION, "Gilt das auch für Teilzeitkräfte?", "Und für Minijobber?"]
    for question in questions:
        await agent.run(question, memory=memory)
    sent = bodies(emulator, marker, ASSISTANT_STREAM)
    assert [b["messages"] for b in sent] == [
        [
            {"role": "system", "content": "Du bist ein Assistent für Arbeitsrecht."},
            {"role": "user", "content": QUESTION},
        ],
        [{"role": "user", "content": questions[1]}],
        [{"role": "user", "content": questions[2]}],
    ]
    answers = [m for m in await memory.aget_all() if m.role == MessageRole.ASSISTANT]
    assert len({m.additional_kwargs["thread_id"] for m in answers}) == 1
    assert [m.additional_kwargs["thread_action"] for m in answers] == ["new", "continued", "continued"]
