"""`ChatHaufeCopilot` and friends in the LangChain ecosystem, against the emulator over real HTTP."""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import pickle
import threading
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.chat_history import InMemoryChatMessageHistory
from langchain_core.load import dumpd, dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage, trim_messages
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory
from langchain_core.tools import tool
from pydantic import BaseModel

from haufe_copilot import errors
from haufe_emulator import EmulatorServer
from langchain_haufe import ChatHaufeCopilot, HaufeCopilotRetriever, sources_to_documents
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY

CHAT = "/agents/v1/chat/completions"
STREAM = "/agents/v1/chat/completions/stream"
COMPLETIONS = "/api/v1/chat/completions"


@tool
def get_weather(city: str) -> str:
    """Das aktuelle Wetter einer Stadt."""
    return f"In {city} ist es sonnig bei 21 Grad."


class Frist(BaseModel):
    """Eine Kündigungsfrist."""

    frist: str
    wochen: int


# -- answers, sources, content blocks ----------------------------------------------------------


def test_invoke_carries_sources_and_thread_metadata(model: ChatHaufeCopilot) -> None:
    answer = model.invoke(QUESTION)
    assert isinstance(answer.content, str) and "§ 622 Abs. 3 BGB" in answer.content
    metadata = answer.response_metadata
    assert metadata["model_provider"] == "haufe" and metadata["thread_action"] == "new"
    assert answer.id == metadata["message_id"]
    assert metadata["sources"][0]["meta_data"]["section"] == "§ 622 Abs. 3"
    documents = sources_to_documents(answer)
    assert documents[0].metadata["rank"] == 1 and documents[0].metadata["thread_id"] == metadata["thread_id"]
    assert documents[0].page_content.startswith("§ 622 Abs. 3 BGB")
    (text_block,) = [b for b in answer.content_blocks if b["type"] == "text"]
    citations = text_block["annotations"]
    assert [c["type"] for c in citations] == ["citation"] * len(metadata["sources"])
    assert citations[0]["title"] == "Bürgerliches Gesetzbuch (BGB)"
    assert citations[0]["extras"]["section"] == "§ 622 Abs. 3" and citations[0]["cited_text"]


def test_output_version_v1_makes_the_blocks_the_content(emulator: EmulatorServer) -> None:
    model = ChatHaufeCopilot(
        api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID, output_version="v1"
    )
    answer = model.invoke(QUESTION)
    assert isinstance(answer.content, list) and answer.content[0]["type"] == "text"
    assert answer.content[0]["annotations"][0]["type"] == "citation"


def test_stream_metadata_on_exactly_one_chunk(model: ChatHaufeCopilot) -> None:
    chunks = list(model.stream(QUESTION))
    assert len(chunks) > 10
    with_metadata = [c for c in chunks if c.response_metadata.get("thread_id")]
    assert with_metadata == [chunks[-1]] and chunks[-1].chunk_position == "last"
    assert len({c.id for c in chunks}) == 1 and chunks[0].id == chunks[-1].response_metadata["message_id"]
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert merged.response_metadata["sources"] == chunks[-1].response_metadata["sources"]
    assert merged.content == model.invoke(QUESTION).content


def test_a_streamed_text_chunk_is_what_validation_would_build() -> None:
    """The per-delta chunk skips pydantic's copy machinery; it must equal a validated chunk,
    keep its own containers and take assignment like any model."""
    from functools import partial

    from langchain_core.messages import AIMessageChunk
    from langchain_core.outputs import ChatGenerationChunk

    from langchain_haufe._answers import _generation_copy, _message_copy, _text_chunk

    # The fast copies made what pydantic's model_copy makes (else they are model_copy itself).
    assert not isinstance(_message_copy, partial) and not isinstance(_generation_copy, partial)
    first, second = _text_chunk("Wort ", "run-1"), _text_chunk("Satz", "run-1")
    assert first == ChatGenerationChunk(message=AIMessageChunk(content="Wort ", id="run-1"))
    assert first.message.model_fields_set >= {"content", "id"}
    assert AIMessageChunk.model_validate(first.message.model_dump()) == first.message
    first.message.tool_call_chunks.append({"name": "f", "args": "{}", "id": "c", "index": 0})
    first.message.response_metadata["model_provider"] = "haufe"
    assert second.message.tool_call_chunks == [] and second.message.response_metadata == {}
    second.message.id = "run-2"
    assert "id" in second.message.model_fields_set and first.message.id == "run-1"
    merged = (first + _text_chunk("Satz", "run-1")).message
    assert merged.content == "Wort Satz" and merged.id == "run-1"


class _Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


def test_every_delta_reaches_on_llm_new_token_once(model: ChatHaufeCopilot) -> None:
    handler = _Tokens()
    chunks = list(model.stream(QUESTION, config={"callbacks": [handler]}))
    assert handler.tokens == [c.content for c in chunks]


async def test_astream_events_shows_the_tokens(model: ChatHaufeCopilot) -> None:
    tokens = [
        event["data"]["chunk"].content
        async for event in model.astream_events(QUESTION, version="v2")
        if event["event"] == "on_chat_model_stream"
    ]
    assert len(tokens) > 10 and "§ 622" in "".join(tokens)


def test_stop_on_the_assistant_path(model: ChatHaufeCopilot) -> None:
    full = str(model.invoke(QUESTION).content)
    stopped = model.invoke(QUESTION, stop=["Probezeit"])
    assert stopped.content == full[: full.index("Probezeit")]
    streamed = "".join(str(c.content) for c in model.stream(QUESTION, stop=["Probezeit"]))
    assert streamed == stopped.content


def test_sampling_parameters_are_ignored_on_the_assistant_path_with_a_debug_line(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    model = ChatHaufeCopilot(
        api_key=SESSION_API_KEY,
        base_url=emulator.url,
        assistant_id=ASSISTANT_ID,
        temperature=0.2,
        max_tokens=50,
    )
    with caplog.at_level(logging.DEBUG, logger="langchain_haufe"):
        model.invoke(QUESTION)
    assert "takes no sampling parameters" in caplog.text
    assert set(emulator.state.bodies(CHAT)[-1]) == {"assistant_id", "messages"}


# -- retriever and RAG -------------------------------------------------------------------------


def test_retriever_returns_the_cited_sources(emulator: EmulatorServer) -> None:
    retriever = HaufeCopilotRetriever(
        api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID, k=2, include_answer=True
    )
    documents = retriever.invoke("Wie viele Urlaubstage stehen mir zu?")
    assert len(documents) == 3 and documents[-1].metadata["type"] == "answer"
    assert documents[0].metadata["section"] == "§ 3" and documents[0].metadata["rank"] == 1


def test_an_lcel_rag_chain_answers_with_its_sources(
    model: ChatHaufeCopilot, emulator: EmulatorServer
) -> None:
    retriever = HaufeCopilotRetriever(
        api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID, k=3
    )
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Beantworte die Frage mit diesen Auszügen:\n{context}"),
            ("human", "{question}"),
        ]
    )
    question = "Wie viele Urlaubstage stehen mir gesetzlich zu?"
    context = "\n".join(d.page_content for d in retriever.invoke(question))
    answer = (prompt | model).invoke({"context": context, "question": question})
    assert "§ 3 BUrlG" in str(answer.content)
    documents = sources_to_documents(answer)
    assert documents and documents[0].metadata["section"] == "§ 3"
    text = (prompt | model | StrOutputParser()).invoke({"context": context, "question": question})
    assert text == answer.content


# -- threads as memory -------------------------------------------------------------------------


def test_runnable_with_message_history_sends_only_the_new_message(
    model: ChatHaufeCopilot, emulator: EmulatorServer
) -> None:
    store: dict[str, InMemoryChatMessageHistory] = {}
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Du bist ein Arbeitsrechtsexperte."),
            MessagesPlaceholder("history"),
            ("human", "{question}"),
        ]
    )
    chain = RunnableWithMessageHistory(
        prompt | model,
        lambda session_id: store.setdefault(session_id, InMemoryChatMessageHistory()),
        input_messages_key="question",
        history_messages_key="history",
    )
    config = {"configurable": {"session_id": "anna"}}
    questions = [QUESTION, "Gilt das auch für Teilzeitkräfte?", "Und wie ist es bei Minijobbern?"]
    answers = [chain.invoke({"question": q}, config=config) for q in questions]
    bodies = emulator.state.bodies(CHAT)[-3:]
    assert bodies[0]["messages"] == [
        {"role": "system", "content": "Du bist ein Arbeitsrechtsexperte."},
        {"role": "user", "content": QUESTION},
    ]
    assert bodies[1]["messages"] == [{"role": "user", "content": questions[1]}]
    assert bodies[2]["messages"] == [{"role": "user", "content": questions[2]}]
    assert [a.response_metadata["thread_action"] for a in answers] == ["new", "continued", "continued"]
    assert len({a.response_metadata["thread_id"] for a in answers}) == 1


def test_an_edited_history_opens_a_new_thread(model: ChatHaufeCopilot) -> None:
    first = model.invoke([HumanMessage(QUESTION)])
    edited = [
        HumanMessage("Welche Kündigungsfrist gilt nach der Probezeit?"),
        first,
        HumanMessage("Gilt das auch für Teilzeitkräfte?"),
    ]
    second = model.invoke(edited)
    assert second.response_metadata["thread_action"] == "new"
    assert second.response_metadata["thread_reason"].startswith("history_mismatch")


def test_a_trimmed_history_keeps_its_thread(model: ChatHaufeCopilot, emulator: EmulatorServer) -> None:
    history: list[Any] = [SystemMessage("Antworte knapp.")]
    for question in (QUESTION, "Gilt das auch für Teilzeitkräfte?", "Und für Minijobber?"):
        history.append(HumanMessage(question))
        history.append(model.invoke(history))
    history.append(HumanMessage("Und wie ist es in der Elternzeit?"))
    trimmed = trim_messages(
        history, max_tokens=4, token_counter=len, strategy="last", include_system=True, start_on="human"
    )
    assert len(trimmed) < len(history) and isinstance(trimmed[0], SystemMessage)
    answer = model.invoke(trimmed)
    assert answer.response_metadata["thread_action"] == "continued"
    assert answer.response_metadata["thread_id"] == history[-2].response_metadata["thread_id"]
    assert emulator.state.bodies(CHAT)[-1]["messages"] == [
        {"role": "user", "content": "Und wie ist es in der Elternzeit?"}
    ]


def test_stateless_and_named_threads_and_per_call_ids(
    model: ChatHaufeCopilot, emulator: EmulatorServer
) -> None:
    first = model.invoke(QUESTION, user_id="u-7")
    assert emulator.state.bodies(CHAT)[-1]["user_id"] == "u-7"
    history = [HumanMessage(QUESTION), first, HumanMessage("Und danach?")]
    stateless = model.invoke(history, stateless=True)
    assert stateless.response_metadata["thread_action"] == "stateless"
    assert len(emulator.state.bodies(CHAT)[-1]["messages"]) == 3
    assert list(emulator.state.requests)[-1].query == {}
    named = model.invoke([HumanMessage("Und danach?")], thread_id=first.response_metadata["thread_id"])
    assert named.response_metadata["thread_action"] == "named"
    assert list(emulator.state.requests)[-1].query == {"thread_id": first.response_metadata["thread_id"]}
    with pytest.raises(errors.NotFoundError):
        model.invoke(QUESTION, assistant_id="someone-else")


def test_a_failed_continuation_reopens_once(model: ChatHaufeCopilot, fault_id: str) -> None:
    first = model.invoke(QUESTION)
    history = [HumanMessage(QUESTION), first, HumanMessage("Und danach?")]
    headers = {
        "x-emulator-fault": "internal_server_error",
        "x-emulator-fault-times": "1",
        "x-emulator-fault-id": fault_id,
    }
    answer = model.invoke(history, extra_headers=headers)
    assert answer.response_metadata["thread_action"] == "new"
    assert answer.response_metadata["thread_reason"].startswith("thread_failed")


def test_one_model_serves_many_threads_at_once(model: ChatHaufeCopilot) -> None:
    results: dict[int, AIMessage] = {}

    def ask(i: int) -> None:
        results[i] = model.invoke([HumanMessage(f"Frage {i}: {QUESTION}")])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.response_metadata["thread_id"] for r in results.values()}) == 8


# -- tools, agents, structured output ----------------------------------------------------------


def test_tool_calling_round_trip(model: ChatHaufeCopilot, emulator: EmulatorServer) -> None:
    bound = model.bind_tools([get_weather])
    question = HumanMessage("Wie ist das Wetter in Berlin? Nutze get_weather.")
    call = bound.invoke([question])
    assert call.tool_calls[0]["name"] == "get_weather" and call.tool_calls[0]["args"] == {"city": "Berlin"}
    assert call.usage_metadata is not None and call.response_metadata["finish_reason"] == "tool_calls"
    assert call.response_metadata["session_id"]
    result = get_weather.invoke(call.tool_calls[0])
    assert isinstance(result, ToolMessage)
    final = bound.invoke([question, call, result])
    assert "sonnig bei 21 Grad" in str(final.content)
    sent = emulator.state.bodies(COMPLETIONS)[-1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.tool_calls[0]["id"]
    assert sent[2] == {"role": "tool", "content": result.content, "tool_call_id": call.tool_calls[0]["id"]}


def test_streamed_tool_call_chunks(model: ChatHaufeCopilot) -> None:
    chunks = list(model.bind_tools([get_weather]).stream("get_weather für München"))
    assert sum(1 for c in chunks if c.tool_call_chunks) > 2
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert merged.tool_calls[0]["args"] == {"city": "München"}


def test_parallel_tool_calls_false_keeps_the_first(model: ChatHaufeCopilot) -> None:
    @tool
    def current_time() -> str:
        """Die aktuelle Uhrzeit."""
        return "12:00"

    question = "Rufe get_weather für Berlin und current_time auf."
    assert len(model.bind_tools([get_weather, current_time]).invoke(question).tool_calls) == 2
    only_first = model.bind_tools([get_weather, current_time], parallel_tool_calls=False).invoke(question)
    assert len(only_first.tool_calls) == 1


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_structured_output(model: ChatHaufeCopilot, method: str) -> None:
    result = model.with_structured_output(Frist, method=method).invoke(QUESTION)  # type: ignore[arg-type]
    assert isinstance(result, Frist)
    raw = model.with_structured_output(Frist, method=method, include_raw=True).invoke(QUESTION)  # type: ignore[arg-type]
    assert isinstance(raw, dict) and isinstance(raw["parsed"], Frist) and raw["parsing_error"] is None
    assert isinstance(raw["raw"], AIMessage)


def test_an_agent_with_a_tool_and_a_checkpointer(model: ChatHaufeCopilot, emulator: EmulatorServer) -> None:
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    agent = create_agent(model, tools=[get_weather], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "conversation-1"}}
    first = agent.invoke(
        {"messages": [HumanMessage("Wie ist das Wetter in Köln? Nutze get_weather.")]}, config
    )
    assert "sonnig bei 21 Grad" in str(first["messages"][-1].content)
    second = agent.invoke({"messages": [HumanMessage("Und in Bonn? Nutze get_weather.")]}, config)
    assert any(isinstance(m, ToolMessage) and "Bonn" in str(m.content) for m in second["messages"])
    third = agent.invoke({"messages": [HumanMessage("Danke!")]}, config)
    assert len(third["messages"]) > len(second["messages"]) > len(first["messages"])
    # the checkpointer's conversation key is never sent as a server thread id
    assert all("conversation-1" not in str(r.query) + str(r.body) for r in list(emulator.state.requests))


# -- objects, secrets, loops -------------------------------------------------------------------


async def _ask_async(model: ChatHaufeCopilot) -> str:
    answer = await model.ainvoke(QUESTION)
    return str(answer.content)


def test_a_used_model_pickles_and_deep_copies(model: ChatHaufeCopilot) -> None:
    model.invoke(QUESTION)
    asyncio.run(_ask_async(model))
    assert model._clients.built == {"sync", "async"}
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert isinstance(clone, ChatHaufeCopilot) and clone is not model
        assert clone._clients.built == set()  # a copy builds clients of its own, not shares them
        assert clone.api_key is not None and clone.api_key.get_secret_value() == SESSION_API_KEY
        assert "§ 622" in str(clone.invoke(QUESTION).content)
        assert clone.client is not model.client
    assert model._clients.built == {"sync", "async"}


def test_a_copy_with_other_settings_builds_its_own_clients(model: ChatHaufeCopilot) -> None:
    model.invoke(QUESTION)
    asyncio.run(_ask_async(model))
    elsewhere = model.model_copy(update={"base_url": "http://127.0.0.1:9", "max_retries": 0})
    assert elsewhere._clients.built == set()
    with pytest.raises(errors.APIConnectionError):
        elsewhere.invoke(QUESTION)
    with pytest.raises(errors.APIConnectionError):
        asyncio.run(_ask_async(elsewhere))
    assert "§ 622" in str(model.invoke(QUESTION).content)  # the original keeps its own
    assert "§ 622" in asyncio.run(_ask_async(model))


def test_asyncio_run_a_hundred_times_with_one_model(
    model: ChatHaufeCopilot, recwarn: pytest.WarningsRecorder
) -> None:
    for _ in range(100):
        assert "§ 622" in asyncio.run(_ask_async(model))
    gc.collect()
    assert not [w for w in recwarn if issubclass(w.category, ResourceWarning)]


def test_the_key_is_in_no_repr_dump_or_log(model: ChatHaufeCopilot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    model.invoke(QUESTION)
    texts = [
        repr(model),
        str(model),
        dumps(model),
        str(dumpd(model)),
        str(model.model_dump()),
        str(model._get_ls_params()),
        str(model._identifying_params),
        caplog.text,
    ]
    for text in texts:
        assert SESSION_API_KEY not in text
    with pytest.raises(errors.AuthenticationError) as info:
        ChatHaufeCopilot(
            api_key="sk-wrong-" + SESSION_API_KEY[-6:], base_url=model.base_url, assistant_id=ASSISTANT_ID
        ).invoke(QUESTION)
    assert SESSION_API_KEY[-6:] not in str(info.value)


def test_a_missing_assistant_says_what_to_do(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HAUFE_COPILOT_ASSISTANT_ID", raising=False)
    model = ChatHaufeCopilot(api_key=SESSION_API_KEY, base_url=emulator.url)
    with pytest.raises(errors.InvalidRequestError, match="HAUFE_COPILOT_ASSISTANT_ID"):
        model.invoke(QUESTION)
    with pytest.raises(errors.InvalidRequestError, match="text only"):
        model.invoke(
            [HumanMessage(content=[{"type": "image", "url": "https://example.com/a.png"}])],
            assistant_id=ASSISTANT_ID,
        )
