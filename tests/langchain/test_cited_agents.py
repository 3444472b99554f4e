"""Agents that cite: `HaufeCopilotTool` brings the assistant's cited answer into any agent,
whichever model drives it (ours, or another provider's: ChatOpenAI / llama-index's OpenAI
pointed at the emulator's OpenAI-compatible endpoint), against the emulator over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.documents import Document
from langchain_core.messages import HumanMessage, ToolMessage
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.response.schema import Response

from haufe_emulator import EmulatorConfig, EmulatorServer
from langchain_haufe import ChatHaufeCopilot, HaufeCopilotTool
from llama_index_haufe import HaufeCopilot
from llama_index_haufe import HaufeCopilotTool as LlamaIndexHaufeCopilotTool
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY

ASSISTANT = "/agents/v1/chat/completions"
ASK = f"Nutze haufe_copilot: {QUESTION}"


@pytest.fixture(scope="module")
def lenient_emulator() -> Iterator[EmulatorServer]:
    """For other providers' clients, which send fields of OpenAI's beyond the API's own
    (`stream_options`, `parallel_tool_calls`, a tool's `strict`): `--lenient` ignores them."""
    with EmulatorServer(EmulatorConfig(api_keys=frozenset({SESSION_API_KEY}), lenient=True)) as server:
        yield server


def settings(emulator: EmulatorServer) -> dict[str, Any]:
    return {"api_key": SESSION_API_KEY, "base_url": emulator.url, "assistant_id": ASSISTANT_ID}


# -- LangChain ---------------------------------------------------------------------------------


def test_the_tool_gives_the_answer_as_content_and_the_sources_as_documents(emulator: EmulatorServer) -> None:
    tool = HaufeCopilotTool(**settings(emulator))
    call = {"name": tool.name, "args": {"question": QUESTION}, "id": "call_1", "type": "tool_call"}
    message = tool.invoke(call)
    assert isinstance(message, ToolMessage) and message.tool_call_id == "call_1"
    assert "§ 622 Abs. 3 BGB" in str(message.content)
    assert "Quellen: [1] § 622 Abs. 3 BGB" in str(message.content)
    documents = message.artifact
    assert all(isinstance(d, Document) for d in documents) and len(documents) >= 2
    assert documents[0].metadata["section"] == "§ 622 Abs. 3" and documents[0].metadata["rank"] == 1
    assert documents[0].page_content.startswith("§ 622 Abs. 3 BGB")
    # called without a tool call: the content only
    assert tool.invoke({"question": QUESTION}) == message.content


async def test_the_tool_is_asynchronous_too(emulator: EmulatorServer) -> None:
    tool = HaufeCopilotTool(**settings(emulator))
    call = {"name": tool.name, "args": {"question": QUESTION}, "id": "call_2", "type": "tool_call"}
    message = await tool.ainvoke(call)
    assert message.artifact[0].metadata["section"] == "§ 622 Abs. 3"


def _langchain_openai(emulator: EmulatorServer) -> Any:
    from langchain_openai import ChatOpenAI

    # another provider's model: the emulator's completions endpoint speaks OpenAI's protocol
    return ChatOpenAI(
        model="haufe-default",
        base_url=emulator.url + "/api/v1",
        api_key=SESSION_API_KEY,
        streaming=True,
        default_headers={"Accept": "text/event-stream"},  # the endpoint streams tool calls only
    )


@pytest.mark.parametrize("driver", ["ChatHaufeCopilot", "ChatOpenAI"])
def test_a_langgraph_agent_cites_through_the_tool(
    emulator: EmulatorServer, lenient_emulator: EmulatorServer, driver: str
) -> None:
    if driver != "ChatHaufeCopilot":
        emulator = lenient_emulator
    model = (
        ChatHaufeCopilot(**settings(emulator))
        if driver == "ChatHaufeCopilot"
        else _langchain_openai(emulator)
    )
    asked_before = len(emulator.state.bodies(ASSISTANT))
    agent = create_agent(model, tools=[HaufeCopilotTool(**settings(emulator))])
    result = agent.invoke({"messages": [HumanMessage(ASK)]})
    (tool_message,) = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    sections = [d.metadata["section"] for d in tool_message.artifact]
    assert sections[0] == "§ 622 Abs. 3"
    reply = str(result["messages"][-1].content)
    assert "§ 622 Abs. 3 BGB" in reply and "§ 622 Abs. 1 BGB" in reply  # the final reply cites
    assert len(emulator.state.bodies(ASSISTANT)) == asked_before + 1  # the tool asked the assistant


# -- LlamaIndex --------------------------------------------------------------------------------


def test_the_llama_index_tool_output_carries_the_answer_and_its_source_nodes(
    emulator: EmulatorServer,
) -> None:
    tool = LlamaIndexHaufeCopilotTool(**settings(emulator))
    output = tool.call(QUESTION)
    response = output.raw_output
    assert isinstance(response, Response) and "§ 622 Abs. 3 BGB" in str(response.response)
    assert response.source_nodes[0].node.metadata["section"] == "§ 622 Abs. 3"
    assert "Quellen: [1] § 622 Abs. 3 BGB" in output.content
    assert tool.metadata.name == "haufe_copilot"


def _llama_index_openai(emulator: EmulatorServer) -> Any:
    from llama_index.llms.openai import OpenAI

    return OpenAI(
        model="gpt-4o-mini",
        api_base=emulator.url + "/api/v1",
        api_key=SESSION_API_KEY,
        max_retries=0,
        default_headers={"Accept": "text/event-stream"},
    )


@pytest.mark.parametrize("driver", ["HaufeCopilot", "OpenAI"])
async def test_a_function_agent_cites_through_the_tool(
    emulator: EmulatorServer, lenient_emulator: EmulatorServer, driver: str
) -> None:
    if driver != "HaufeCopilot":
        emulator = lenient_emulator
    llm = HaufeCopilot(**settings(emulator)) if driver == "HaufeCopilot" else _llama_index_openai(emulator)
    agent = FunctionAgent(tools=[LlamaIndexHaufeCopilotTool(**settings(emulator))], llm=llm)
    handler = agent.run(ASK)
    results = [event async for event in handler.stream_events() if isinstance(event, ToolCallResult)]
    answer = await handler
    (result,) = results
    assert isinstance(result.tool_output.raw_output, Response)
    assert result.tool_output.raw_output.source_nodes[0].node.metadata["section"] == "§ 622 Abs. 3"
    assert "§ 622 Abs. 3 BGB" in str(answer) and "§ 622 Abs. 1 BGB" in str(answer)
