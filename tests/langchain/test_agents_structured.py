"""Structured output through agents: `create_agent(model, tools, response_format=S)` gives a
validated `S` with the default strategy, `ToolStrategy(S)` and `ProviderStrategy(S)`, written
as LangChain's agent documentation writes it, against the emulator over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.structured_output import ProviderStrategy, ToolStrategy
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from haufe_copilot import HaufeCopilotClient, errors
from haufe_emulator import EmulatorServer
from langchain_haufe import ChatHaufeCopilot

ASYNC_STREAMS = "/api/v1/messages/async"


@tool
def get_weather(city: str) -> str:
    """Das aktuelle Wetter einer Stadt."""
    return f"In {city} ist es sonnig bei 21 Grad."


class Bericht(BaseModel):
    """Der abschließende Bericht an den Nutzer."""

    stadt: str
    zusammenfassung: str


QUESTION = "Wie ist das Wetter in Köln? Nutze get_weather."
STRATEGIES: dict[str, Any] = {
    "default": Bericht,
    "ToolStrategy": ToolStrategy(Bericht),
    "ProviderStrategy": ProviderStrategy(Bericht),
}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_create_agent_with_a_response_format_gives_the_schema(model: ChatHaufeCopilot, strategy: str) -> None:
    agent = create_agent(model, tools=[get_weather], response_format=STRATEGIES[strategy])
    result = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    report = result["structured_response"]
    assert isinstance(report, Bericht) and report.stadt == "Köln"
    # the agent used its tool before it answered
    assert any(isinstance(m, ToolMessage) and "sonnig" in str(m.content) for m in result["messages"])


@pytest.mark.parametrize("strategy", ["ToolStrategy", "ProviderStrategy"])
async def test_the_async_agent_gives_the_schema_too(model: ChatHaufeCopilot, strategy: str) -> None:
    agent = create_agent(model, tools=[get_weather], response_format=STRATEGIES[strategy])
    result = await agent.ainvoke({"messages": [HumanMessage(QUESTION)]})
    assert isinstance(result["structured_response"], Bericht)


def test_provider_strategy_sends_tools_and_response_format_together(
    model: ChatHaufeCopilot, emulator: EmulatorServer
) -> None:
    agent = create_agent(model, tools=[get_weather], response_format=ProviderStrategy(Bericht))
    agent.invoke({"messages": [HumanMessage(QUESTION)]})
    first, second = emulator.state.bodies(ASYNC_STREAMS)[-2:]
    for body in (first, second):
        assert body["tools"][0]["function"]["name"] == "get_weather"
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["name"] == "Bericht"
    # the second turn carries the call and its result in the OpenAI shape
    assert second["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert second["messages"][2]["role"] == "tool" and second["messages"][2]["tool_call_id"]


def test_bind_tools_refuses_what_it_cannot_honour_at_bind_time(model: ChatHaufeCopilot) -> None:
    with pytest.raises(errors.InvalidRequestError) as caught:
        model.bind_tools([get_weather], response_format={"type": "json_object"})
    assert "json_schema" in str(caught.value)
    with pytest.raises(errors.InvalidRequestError) as caught:
        model.bind_tools([get_weather], response_format=Bericht, parallel_tool_calls=False)
    assert "parallel_tool_calls" in str(caught.value)
    with pytest.raises(errors.InvalidRequestError):
        model.bind_tools([get_weather], response_format={"type": "xml"})


@pytest.mark.parametrize(
    "response_format", [Bericht, Bericht.model_json_schema()], ids=["class", "json-schema"]
)
def test_bind_tools_takes_a_schema_as_response_format(model: ChatHaufeCopilot, response_format: Any) -> None:
    answer = model.bind_tools([get_weather], response_format=response_format).invoke(
        "Schreibe den Bericht für Köln."
    )
    assert Bericht.model_validate_json(str(answer.content)).stadt


# -- the emulator: tool_choice "required" or a named tool still calls a tool after results ------


def _after_a_result(tool_choice: Any) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Köln"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "In Köln ist es sonnig bei 21 Grad."},
    ]


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Das aktuelle Wetter einer Stadt.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "Bericht",
            "description": "Der abschließende Bericht an den Nutzer.",
            "parameters": Bericht.model_json_schema(),
        },
    },
]


@pytest.mark.parametrize(
    ("tool_choice", "called"),
    [
        ("required", "Bericht"),  # the tool not called yet
        ({"type": "function", "function": {"name": "get_weather"}}, "get_weather"),
        ("auto", None),
    ],
    ids=["required", "named", "auto"],
)
def test_after_tool_results_the_completions_endpoint_follows_tool_choice(
    client: HaufeCopilotClient, tool_choice: Any, called: str | None
) -> None:
    with client.completions.create(
        stream=True, messages=_after_a_result(tool_choice), tools=TOOLS, tool_choice=tool_choice
    ) as chunks:
        names = [
            call.function.name
            for chunk in chunks
            for choice in chunk.choices
            for call in choice.delta.tool_calls or ()
            if call.function is not None and call.function.name
        ]
    assert names == ([called] if called else [])


def test_after_tool_results_the_async_streams_api_follows_tool_choice(client: HaufeCopilotClient) -> None:
    handle = client.streams.start(messages=_after_a_result("required"), tools=TOOLS, tool_choice="required")
    with client.streams.events(handle.stream_id) as events:
        names = [getattr(event, "name", None) for event in events if event.event == "tool_call"]
    assert [name for name in names if name] == ["Bericht"]
