"""The retriever, the query engine and the chat engine against the emulator; and LlamaIndex's
`Memory` as the server thread's memory (each turn sends only the new message)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.base.response.schema import AsyncStreamingResponse, Response, StreamingResponse
from llama_index.core.chat_engine.types import AgentChatResponse, StreamingAgentChatResponse
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore

from haufe_emulator import EmulatorServer
from llama_index_haufe import (
    HaufeCopilot,
    HaufeCopilotChatEngine,
    HaufeCopilotQueryEngine,
    HaufeCopilotRetriever,
    sources_to_nodes,
)
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY

from .test_llama_index_support import (
    ASSISTANT,
    ASSISTANT_STREAM,
    bodies,
    file_memory,
    received,
    user,
)

FOLLOW_UP = "Gilt das auch für Teilzeitkräfte?"
THIRD = "Und für Minijobber?"


def assert_source_nodes(nodes: list[NodeWithScore], thread_id: str | None = None) -> None:
    assert 3 <= len(nodes) <= 5
    for rank, node in enumerate(nodes, start=1):
        assert node.score == pytest.approx(1 / rank)
        metadata = node.node.metadata
        assert metadata["rank"] == rank and metadata["message_id"] and metadata["thread_id"]
        assert metadata["document_title"] and metadata["section"]
        assert node.node.get_content(MetadataMode.NONE)  # the source's content
        assert node.node.node_id == f"{metadata['message_id']}:{rank}"
    if thread_id is not None:
        assert {n.node.metadata["thread_id"] for n in nodes} == {thread_id}


# -- the retriever -----------------------------------------------------------------------------


def test_the_retriever_gives_the_cited_sources_as_scored_nodes(llm: HaufeCopilot) -> None:
    answer = llm.chat([user(QUESTION)])
    nodes = HaufeCopilotRetriever(llm=llm).retrieve(QUESTION)
    assert_source_nodes(nodes)
    sources = answer.message.additional_kwargs["sources"]
    assert [n.node.get_content(MetadataMode.NONE) for n in nodes] == [s["content"] for s in sources]
    assert [n.node.metadata["section"] for n in nodes] == [s["meta_data"]["section"] for s in sources]
    assert nodes[0].node.metadata["section"] == "§ 622 Abs. 3"
    # what an LLM sees of a node: its title and section, not the ids
    llm_view = nodes[0].node.get_content(MetadataMode.LLM)
    assert "§ 622 Abs. 3" in llm_view and "message_id" not in llm_view
    # score-based postprocessors work: 1 / rank >= 0.3 keeps the first three
    kept = SimilarityPostprocessor(similarity_cutoff=0.3).postprocess_nodes(nodes)
    assert [n.node.metadata["rank"] for n in kept] == [1, 2, 3]


def test_the_retriever_takes_keyword_fields_and_top_k(emulator: EmulatorServer, marker: str) -> None:
    retriever = HaufeCopilotRetriever(
        api_key=SESSION_API_KEY,
        base_url=emulator.url,
        assistant_id=ASSISTANT_ID,
        default_headers={"x-test-marker": marker},
        similarity_top_k=2,
    )
    assert isinstance(retriever.llm, HaufeCopilot)
    nodes = retriever.retrieve(QUESTION)
    assert [n.node.metadata["rank"] for n in nodes] == [1, 2]
    assert len(received(emulator, marker, ASSISTANT)) == 1
    with pytest.raises(TypeError, match="not both"):
        HaufeCopilotRetriever(llm=retriever.llm, assistant_id="x")


async def test_the_retriever_is_really_asynchronous(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str
) -> None:
    nodes = await HaufeCopilotRetriever(llm=llm).aretrieve(QUESTION)
    assert_source_nodes(nodes)
    assert llm._clients.built == {"async"}  # the async client asked, not the sync one in a thread


def test_sources_to_nodes_reads_any_answer_shape(llm: HaufeCopilot) -> None:
    response = llm.chat([user(QUESTION)])
    from_response = sources_to_nodes(response)
    from_message = sources_to_nodes(response.message)
    from_dict = sources_to_nodes(response.message.additional_kwargs)
    assert [n.node.node_id for n in from_response] == [n.node.node_id for n in from_message]
    assert [n.node.node_id for n in from_dict] == [n.node.node_id for n in from_response]
    assert sources_to_nodes(llm.complete(QUESTION), top_k=1)[0].score == 1.0


# -- the query engine ------------------------------------------------------------------------------


def test_the_query_engine_answers_with_source_nodes(llm: HaufeCopilot) -> None:
    response = HaufeCopilotQueryEngine(llm=llm).query(QUESTION)
    assert isinstance(response, Response)
    assert "§ 622 Abs. 3 BGB" in str(response)
    assert_source_nodes(response.source_nodes, response.metadata["thread_id"] if response.metadata else None)
    assert response.metadata is not None and response.metadata["thread_action"] == "new"
    assert "sources" not in response.metadata  # they are the source nodes
    assert response.get_formatted_sources().count("> Source (") == len(response.source_nodes)


def test_the_streaming_query_engine(llm: HaufeCopilot) -> None:
    response = HaufeCopilotQueryEngine(llm=llm, streaming=True).query(QUESTION)
    assert isinstance(response, StreamingResponse)
    assert response.source_nodes == []  # known once the stream has ended
    pieces = list(response.response_gen)
    assert len(pieces) > 10 and "§ 622 Abs. 3 BGB" in "".join(pieces)
    assert_source_nodes(response.source_nodes)
    assert response.metadata is not None and response.metadata["message_id"]
    assert response.get_response().source_nodes == response.source_nodes


async def test_the_query_engine_asynchronously(llm: HaufeCopilot) -> None:
    response = await HaufeCopilotQueryEngine(llm=llm).aquery(QUESTION)
    assert isinstance(response, Response)
    assert_source_nodes(response.source_nodes)
    streaming = await HaufeCopilotQueryEngine(llm=llm, streaming=True).aquery(QUESTION)
    assert isinstance(streaming, AsyncStreamingResponse)
    text = "".join([piece async for piece in streaming.async_response_gen()])
    assert text == str(response)
    assert_source_nodes(streaming.source_nodes)


# -- the chat engine -----------------------------------------------------------------------------


def test_the_chat_engine_keeps_memory_and_the_server_thread(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str
) -> None:
    engine = HaufeCopilotChatEngine(llm=llm, system_prompt="Antworte knapp.")
    first = engine.chat(QUESTION)
    assert isinstance(first, AgentChatResponse) and "§ 622 Abs. 3 BGB" in first.response
    assert first.metadata is not None
    thread_id = first.metadata["thread_id"]
    assert_source_nodes(first.source_nodes, thread_id)
    second = engine.chat(FOLLOW_UP)
    assert second.metadata is not None and second.metadata["thread_id"] == thread_id
    assert second.metadata["thread_action"] == "continued"
    assert [m.role for m in engine.chat_history] == [MessageRole.USER, MessageRole.ASSISTANT] * 2
    assert engine.chat_history[1].additional_kwargs["thread_id"] == thread_id
    assert [b["messages"] for b in bodies(emulator, marker, ASSISTANT)] == [
        [{"role": "system", "content": "Antworte knapp."}, {"role": "user", "content": QUESTION}],
        [{"role": "user", "content": FOLLOW_UP}],
    ]
    engine.reset()
    assert engine.chat_history == []
    fresh = engine.chat(FOLLOW_UP)
    assert fresh.metadata is not None and fresh.metadata["thread_id"] != thread_id
    assert fresh.metadata["thread_action"] == "new"


def test_the_chat_engine_streams_and_remembers(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str
) -> None:
    engine = HaufeCopilotChatEngine(llm=llm)
    streaming = engine.stream_chat(QUESTION)
    assert isinstance(streaming, StreamingAgentChatResponse)
    pieces = list(streaming.response_gen)
    assert len(pieces) > 10 and "§ 622 Abs. 3 BGB" in "".join(pieces)
    assert_source_nodes(streaming.source_nodes)
    remembered = engine.chat_history[-1]
    assert remembered.role == MessageRole.ASSISTANT and remembered.additional_kwargs["sources"]
    # the streamed answer went into memory with its thread: the next turn continues it
    second = engine.stream_chat(FOLLOW_UP)
    list(second.response_gen)
    assert engine.chat_history[-1].additional_kwargs["thread_action"] == "continued"
    assert [b["messages"] for b in bodies(emulator, marker, ASSISTANT_STREAM)][-1] == [
        {"role": "user", "content": FOLLOW_UP}
    ]
    # chat_history= replaces the memory, as in LlamaIndex's engines
    engine.chat(QUESTION, chat_history=[])
    assert len(engine.chat_history) == 2


async def test_the_chat_engine_asynchronously(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str
) -> None:
    engine = HaufeCopilotChatEngine(llm=llm)
    first = await engine.achat(QUESTION)
    assert_source_nodes(first.source_nodes)
    streaming = await engine.astream_chat(FOLLOW_UP)
    text = "".join([piece async for piece in streaming.async_response_gen()])
    assert text and streaming.source_nodes
    history = await engine.memory.aget_all()
    assert history[-1].additional_kwargs["thread_action"] == "continued"
    assert [b["messages"] for b in bodies(emulator, marker, ASSISTANT_STREAM)] == [
        [{"role": "user", "content": FOLLOW_UP}]
    ]


def test_the_chat_engine_takes_keyword_fields_and_a_memory(emulator: EmulatorServer, tmp_path: Path) -> None:
    memory = ChatMemoryBuffer.from_defaults()
    engine = HaufeCopilotChatEngine(
        api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID, memory=memory
    )
    engine.chat(QUESTION)
    assert len(memory.get_all()) == 2
    with pytest.raises(ValueError, match="not both"):
        HaufeCopilotChatEngine(llm=engine.llm, memory=memory, chat_history=[])


# -- LlamaIndex Memory as the server thread's memory --------------------------------------------


def test_memory_with_a_session_sends_only_the_new_message(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str, tmp_path: Path
) -> None:
    memory = file_memory(tmp_path, "kunde-42")
    for question in (QUESTION, FOLLOW_UP, THIRD):
        memory.put(user(question))
        response = llm.chat(memory.get())
        memory.put(response.message)
    assert [b["messages"] for b in bodies(emulator, marker, ASSISTANT)] == [
        [{"role": "user", "content": QUESTION}],
        [{"role": "user", "content": FOLLOW_UP}],
        [{"role": "user", "content": THIRD}],
    ]
    answers = [m for m in memory.get_all() if m.role == MessageRole.ASSISTANT]
    assert len({m.additional_kwargs["thread_id"] for m in answers}) == 1
    # a restarted process: the stored history, read back, continues the same thread
    stored = json.dumps([m.model_dump(mode="json") for m in memory.get_all()])
    restored = [ChatMessage.model_validate(m) for m in json.loads(stored)]
    response = llm.chat([*restored, user("Und für Auszubildende?")])
    assert response.message.additional_kwargs["thread_id"] == answers[0].additional_kwargs["thread_id"]
    assert bodies(emulator, marker, ASSISTANT)[-1]["messages"] == [
        {"role": "user", "content": "Und für Auszubildende?"}
    ]


def test_the_chat_engine_over_a_memory_with_a_session(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str, tmp_path: Path
) -> None:
    engine = HaufeCopilotChatEngine(llm=llm, memory=file_memory(tmp_path, "kunde-7"))
    for question in (QUESTION, FOLLOW_UP, THIRD):
        engine.chat(question)
    assert [b["messages"] for b in bodies(emulator, marker, ASSISTANT)] == [
        [{"role": "user", "content": QUESTION}],
        [{"role": "user", "content": FOLLOW_UP}],
        [{"role": "user", "content": THIRD}],
    ]
