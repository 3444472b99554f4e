"""A streamed answer goes back into the history and continues its thread, as a blocking one does;
every message class LangChain can put in a history is taken or refused with a typed error.

Written the way the frameworks' documentation writes these patterns (aggregate the chunks with
`+`, `RunnableWithMessageHistory` driven by `stream`, a LlamaIndex memory fed from
`stream_chat`), against the emulator over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.chat_history import InMemoryChatMessageHistory
from langchain_core.messages import (
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    RemoveMessage,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory
from langchain_core.tools import tool
from llama_index.core.llms import ChatMessage as LlamaChatMessage
from llama_index.core.memory import ChatMemoryBuffer

from haufe_copilot import errors
from haufe_emulator import EmulatorServer
from langchain_haufe import ChatHaufeCopilot
from llama_index_haufe import HaufeCopilot
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY
from tests.llama_index.test_llama_index_support import file_memory

CHAT = "/agents/v1/chat/completions"
STREAM = "/agents/v1/chat/completions/stream"
COMPLETIONS = "/api/v1/chat/completions"
FOLLOW_UP = "Gilt das auch für Teilzeitkräfte?"


@pytest.fixture
def llm(emulator: EmulatorServer) -> HaufeCopilot:
    return HaufeCopilot(api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID)


@tool
def get_weather(city: str) -> str:
    """Das aktuelle Wetter einer Stadt."""
    return f"In {city} ist es sonnig bei 21 Grad."


# -- LangChain: an aggregated AIMessageChunk in the history ------------------------------------


def test_a_streamed_answer_is_the_blocking_answer_and_continues_its_thread(
    model: ChatHaufeCopilot, emulator: EmulatorServer
) -> None:
    history: list[BaseMessage] = [HumanMessage(QUESTION)]
    full: AIMessageChunk | None = None
    for chunk in model.stream(history):
        full = chunk if full is None else full + chunk
    assert full is not None
    history.append(full)
    blocking = model.invoke([HumanMessage(QUESTION)])
    assert full.content == blocking.content
    for key in ("history_digest", "parent_digest", "system_digest", "thread_action"):
        assert full.response_metadata[key] == blocking.response_metadata[key]

    history.append(HumanMessage(FOLLOW_UP))
    answer = model.invoke(history)
    assert answer.response_metadata["thread_action"] == "continued"
    assert answer.response_metadata["thread_id"] == full.response_metadata["thread_id"]
    assert emulator.state.bodies(CHAT)[-1]["messages"] == [{"role": "user", "content": FOLLOW_UP}]


async def test_an_astreamed_answer_continues_its_thread_streamed_again(
    model: ChatHaufeCopilot, emulator: EmulatorServer
) -> None:
    history: list[BaseMessage] = [HumanMessage(QUESTION)]
    for question in (FOLLOW_UP, "Und für Minijobber?"):
        full: AIMessageChunk | None = None
        async for chunk in model.astream(history):
            full = chunk if full is None else full + chunk
        assert full is not None
        history += [full, HumanMessage(question)]
    last = history[-2]
    assert last.response_metadata["thread_action"] == "continued"
    assert last.response_metadata["thread_id"] == history[1].response_metadata["thread_id"]
    assert emulator.state.bodies(STREAM)[-1]["messages"] == [{"role": "user", "content": FOLLOW_UP}]


def test_a_streamed_tool_call_goes_back_into_the_history(
    model: ChatHaufeCopilot, emulator: EmulatorServer
) -> None:
    bound = model.bind_tools([get_weather])
    history: list[BaseMessage] = [HumanMessage("Wie ist das Wetter in Berlin? Nutze get_weather.")]
    full: AIMessageChunk | None = None
    for chunk in bound.stream(history):
        full = chunk if full is None else full + chunk
    assert full is not None and full.tool_calls[0]["args"] == {"city": "Berlin"}
    history += [full, get_weather.invoke(full.tool_calls[0])]
    final = bound.invoke(history)
    assert "sonnig bei 21 Grad" in str(final.content)
    sent = emulator.state.bodies(COMPLETIONS)[-1]["messages"]
    assert sent[1]["role"] == "assistant" and sent[1]["tool_calls"][0]["id"] == full.tool_calls[0]["id"]
    assert sent[2]["role"] == "tool" and sent[2]["tool_call_id"] == full.tool_calls[0]["id"]


def _chat_with_history(model: ChatHaufeCopilot) -> RunnableWithMessageHistory:
    store: dict[str, InMemoryChatMessageHistory] = {}
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Du bist ein Arbeitsrechtsexperte."),
            MessagesPlaceholder("history"),
            ("human", "{question}"),
        ]
    )
    return RunnableWithMessageHistory(
        prompt | model,
        lambda session_id: store.setdefault(session_id, InMemoryChatMessageHistory()),
        input_messages_key="question",
        history_messages_key="history",
    )


QUESTIONS = [QUESTION, FOLLOW_UP, "Und wie ist es bei Minijobbern?"]


def test_runnable_with_message_history_driven_by_stream(
    model: ChatHaufeCopilot, emulator: EmulatorServer
) -> None:
    chain = _chat_with_history(model)
    config: Any = {"configurable": {"session_id": "anna"}}
    answers = []
    for question in QUESTIONS:
        full: Any = None
        for chunk in chain.stream({"question": question}, config=config):
            full = chunk if full is None else full + chunk
        answers.append(full)
    bodies = emulator.state.bodies(STREAM)[-3:]
    assert [b["messages"] for b in bodies[1:]] == [
        [{"role": "user", "content": QUESTIONS[1]}],
        [{"role": "user", "content": QUESTIONS[2]}],
    ]
    assert [a.response_metadata["thread_action"] for a in answers] == ["new", "continued", "continued"]
    assert len({a.response_metadata["thread_id"] for a in answers}) == 1


async def test_runnable_with_message_history_driven_by_astream(
    model: ChatHaufeCopilot, emulator: EmulatorServer
) -> None:
    chain = _chat_with_history(model)
    config: Any = {"configurable": {"session_id": "ben"}}
    actions = []
    for question in QUESTIONS:
        last: Any = None
        async for chunk in chain.astream({"question": question}, config=config):
            last = chunk
        actions.append(last.response_metadata["thread_action"])
    assert actions == ["new", "continued", "continued"]
    assert emulator.state.bodies(STREAM)[-1]["messages"] == [{"role": "user", "content": QUESTIONS[2]}]


# -- every message class LangChain can put in a history ----------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        SystemMessageChunk(content="Antworte knapp."),
        HumanMessageChunk(content="Eine Vorbemerkung."),
        ChatMessageChunk(role="user", content="Noch eine Vorbemerkung."),
        ChatMessage(role="human", content="Und noch eine."),
    ],
    ids=lambda m: type(m).__name__,
)
def test_chunk_and_chat_message_classes_are_taken(
    model: ChatHaufeCopilot, emulator: EmulatorServer, message: BaseMessage
) -> None:
    answer = model.invoke([message, HumanMessage(QUESTION)])
    assert "§ 622" in str(answer.content)
    sent = emulator.state.bodies(CHAT)[-1]["messages"]
    role = "system" if isinstance(message, SystemMessage) else "user"
    assert sent[0] == {"role": role, "content": message.content}


@pytest.mark.parametrize(
    "result",
    [
        ToolMessage(content=[{"type": "text", "text": "In Köln ist es sonnig."}], tool_call_id="call_1"),
        ToolMessage(content=["In Köln ", "ist es sonnig."], tool_call_id="call_1"),
        ToolMessageChunk(content="In Köln ist es sonnig.", tool_call_id="call_1"),
        FunctionMessageChunk(content="In Köln ist es sonnig.", name="call_1"),
    ],
    ids=["tool-text-blocks", "tool-strings", "ToolMessageChunk", "FunctionMessageChunk"],
)
def test_tool_results_of_every_shape_are_taken(
    model: ChatHaufeCopilot, emulator: EmulatorServer, result: BaseMessage
) -> None:
    call = AIMessageChunk(
        content="",
        tool_call_chunks=[{"name": "get_weather", "args": '{"city": "Köln"}', "id": "call_1", "index": 0}],
    )
    final = model.bind_tools([get_weather]).invoke([HumanMessage("Wetter in Köln?"), call, result])
    assert "sonnig" in str(final.content)
    sent = emulator.state.bodies(COMPLETIONS)[-1]["messages"]
    assert sent[2]["role"] == "tool" and sent[2]["tool_call_id"] == "call_1"
    assert "In Köln" in sent[2]["content"] and "sonnig" in sent[2]["content"]


def test_a_remove_message_is_refused_naming_what_to_do(model: ChatHaufeCopilot) -> None:
    with pytest.raises(errors.InvalidRequestError) as caught:
        model.invoke([HumanMessage(QUESTION), RemoveMessage(id="m-1"), HumanMessage(FOLLOW_UP)])
    assert "RemoveMessage" in str(caught.value) and "add_messages" in str(caught.value)


def test_an_unknown_chat_role_is_refused_naming_the_class(model: ChatHaufeCopilot) -> None:
    with pytest.raises(errors.InvalidRequestError) as caught:
        model.invoke([ChatMessage(role="critic", content="Zu lang."), HumanMessage(QUESTION)])
    assert "ChatMessage" in str(caught.value) and "'critic'" in str(caught.value)


def test_an_image_in_a_tool_result_is_refused_naming_the_class(model: ChatHaufeCopilot) -> None:
    result = ToolMessage(
        content=[{"type": "image", "url": "https://example.org/karte.png"}], tool_call_id="call_1"
    )
    call = AIMessageChunk(
        content="",
        tool_call_chunks=[{"name": "get_weather", "args": '{"city": "Köln"}', "id": "call_1", "index": 0}],
    )
    with pytest.raises(errors.InvalidRequestError) as caught:
        model.bind_tools([get_weather]).invoke([HumanMessage("Wetter?"), call, result])
    assert "ToolMessage" in str(caught.value) and "'image'" in str(caught.value)


# -- LlamaIndex: a streamed response put back into a memory ------------------------------------


def test_a_stream_chat_response_put_into_a_memory_continues_its_thread(
    llm: HaufeCopilot, emulator: EmulatorServer, tmp_path: Path
) -> None:
    memory = file_memory(tmp_path, "carla")
    memory.put(LlamaChatMessage(role="user", content=QUESTION))
    response: Any = None
    for response in llm.stream_chat(memory.get()):  # noqa: B007 (the last one is the answer)
        pass
    memory.put(response.message)
    memory.put(LlamaChatMessage(role="user", content=FOLLOW_UP))
    answer = llm.chat(memory.get())
    assert answer.message.additional_kwargs["thread_action"] == "continued"
    assert answer.message.additional_kwargs["thread_id"] == response.message.additional_kwargs["thread_id"]
    assert emulator.state.bodies(CHAT)[-1]["messages"] == [{"role": "user", "content": FOLLOW_UP}]


async def test_an_astream_chat_response_put_into_a_memory_continues_its_thread(
    llm: HaufeCopilot, emulator: EmulatorServer
) -> None:
    memory = ChatMemoryBuffer.from_defaults()
    actions = []
    for question in QUESTIONS:
        memory.put(LlamaChatMessage(role="user", content=question))
        response: Any = None
        async for response in await llm.astream_chat(memory.get()):  # noqa: B007
            pass
        memory.put(response.message)
        actions.append(response.message.additional_kwargs["thread_action"])
    assert actions == ["new", "continued", "continued"]
    assert emulator.state.bodies(STREAM)[-1]["messages"] == [{"role": "user", "content": QUESTIONS[2]}]


def test_a_langgraph_graph_that_deletes_messages_with_remove_message_keeps_its_thread(
    model: ChatHaufeCopilot, emulator: EmulatorServer
) -> None:
    """LangGraph's "delete messages" pattern: a node returns `RemoveMessage`s, the `add_messages`
    reducer drops them from the state, and the model sees the shortened history, which drops a
    whole exchange and so keeps its thread."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import START, MessagesState, StateGraph

    def delete_oldest_exchange(state: MessagesState) -> dict[str, Any]:
        messages = state["messages"]
        if len(messages) > 4:
            return {"messages": [RemoveMessage(id=m.id) for m in messages[:2] if m.id]}
        return {}

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("delete_oldest_exchange", delete_oldest_exchange)
    graph.add_node("call_model", call_model)
    graph.add_edge(START, "delete_oldest_exchange")
    graph.add_edge("delete_oldest_exchange", "call_model")
    app = graph.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "dora"}}
    for question in QUESTIONS:
        state = app.invoke({"messages": [HumanMessage(question)]}, config)
    answers = [m for m in state["messages"] if m.type == "ai"]
    assert len(state["messages"]) == 4  # the first exchange was removed
    assert answers[-1].response_metadata["thread_action"] == "continued"
    assert emulator.state.bodies(CHAT)[-1]["messages"] == [{"role": "user", "content": QUESTIONS[2]}]
