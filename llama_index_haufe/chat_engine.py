"""`HaufeCopilotChatEngine`: a chat engine whose memory is the server thread's memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.callbacks import CallbackManager, trace_method
from llama_index.core.chat_engine.types import (
    AgentChatResponse,
    BaseChatEngine,
    StreamingAgentChatResponse,
)
from llama_index.core.memory import BaseMemory, ChatMemoryBuffer
from llama_index.core.schema import NodeWithScore
from llama_index.core.types import Thread

from ._components import resolve_llm
from .base import HaufeCopilot
from .sources import answer_metadata, sources_to_nodes

__all__ = ["HaufeCopilotChatEngine"]


class HaufeCopilotChatEngine(BaseChatEngine):
    """A conversation with Haufe Copilot; each answer with its sources as `source_nodes`.

    ```python
    from llama_index_haufe import HaufeCopilotChatEngine

    engine = HaufeCopilotChatEngine(assistant_id="...", system_prompt="Antworte knapp.")
    response = engine.chat("Welche Kündigungsfristen gelten während der Probezeit?")
    response.response, response.source_nodes, response.metadata["thread_id"]
    engine.chat("Gilt das auch für Teilzeitkräfte?")   # continues the server thread

    streaming = engine.stream_chat("...")
    for text in streaming.response_gen:
        print(text, end="")
    streaming.source_nodes                   # filled once the stream has ended
    engine.reset()                           # a new conversation (a new thread next time)
    ```

    The engine keeps its memory as LlamaIndex chat engines do (a `ChatMemoryBuffer` unless
    you pass one, e.g. `Memory.from_defaults(session_id=...)` over a database); the LLM keeps
    none. Since every answer in the memory carries its
    thread and digest, each turn continues the server thread and sends only the new message,
    and a memory restored in another process continues where it left off. Pass `llm=` (a
    `HaufeCopilot`) or `HaufeCopilot`'s keyword fields.
    """

    def __init__(
        self,
        llm: HaufeCopilot | None = None,
        *,
        memory: BaseMemory | None = None,
        system_prompt: str | None = None,
        prefix_messages: list[ChatMessage] | None = None,
        chat_history: list[ChatMessage] | None = None,
        similarity_top_k: int | None = None,
        callback_manager: CallbackManager | None = None,
        **llm_fields: Any,
    ) -> None:
        self._llm = resolve_llm(llm, llm_fields, type(self).__name__)
        if system_prompt is not None and prefix_messages is not None:
            raise ValueError("Pass system_prompt or prefix_messages, not both.")
        if memory is not None and chat_history is not None:
            raise ValueError("Pass memory or chat_history, not both (put the history into the memory).")
        if system_prompt is not None:
            prefix_messages = [ChatMessage(role=MessageRole.SYSTEM, content=system_prompt)]
        self._prefix_messages = list(prefix_messages or [])
        # A ChatMemoryBuffer by default, as LlamaIndex's agents use (Memory's default in-memory
        # SQLite database leaves its connection to the garbage collector).
        self._memory = memory or ChatMemoryBuffer.from_defaults(chat_history=chat_history, llm=self._llm)
        self._similarity_top_k = similarity_top_k
        self.callback_manager = callback_manager or CallbackManager([])

    @classmethod
    def from_defaults(cls, **kwargs: Any) -> HaufeCopilotChatEngine:
        """The same as the constructor, for symmetry with LlamaIndex's engines."""
        return cls(**kwargs)

    @property
    def llm(self) -> HaufeCopilot:
        return self._llm

    @property
    def memory(self) -> BaseMemory:
        return self._memory

    @property
    def chat_history(self) -> list[ChatMessage]:
        return self._memory.get_all()

    def reset(self) -> None:
        """Forget the conversation: the next message opens a new server thread."""
        self._memory.reset()

    def _answered(self, response: ChatResponse) -> AgentChatResponse:
        return AgentChatResponse(
            response=response.message.content or "",
            source_nodes=sources_to_nodes(response, top_k=self._similarity_top_k),
            metadata=answer_metadata(response),
        )

    def _collect(
        self, responses: Iterator[ChatResponse], nodes: list[NodeWithScore]
    ) -> Generator[ChatResponse, None, None]:
        final = None
        for final in responses:
            yield final
        if final is not None:
            nodes.extend(sources_to_nodes(final, top_k=self._similarity_top_k))

    async def _acollect(
        self, responses: AsyncIterator[ChatResponse], nodes: list[NodeWithScore]
    ) -> AsyncGenerator[ChatResponse, None]:
        final = None
        async for final in responses:
            yield final
        if final is not None:
            nodes.extend(sources_to_nodes(final, top_k=self._similarity_top_k))

    def _messages(self, message: str, chat_history: list[ChatMessage] | None) -> list[ChatMessage]:
        if chat_history is not None:
            self._memory.set(chat_history)
        self._memory.put(ChatMessage(role=MessageRole.USER, content=message))
        return self._prefix_messages + self._memory.get()

    async def _amessages(self, message: str, chat_history: list[ChatMessage] | None) -> list[ChatMessage]:
        if chat_history is not None:
            await self._memory.aset(chat_history)
        await self._memory.aput(ChatMessage(role=MessageRole.USER, content=message))
        return self._prefix_messages + await self._memory.aget()

    @trace_method("chat")
    def chat(self, message: str, chat_history: list[ChatMessage] | None = None) -> AgentChatResponse:
        response = self._llm.chat(self._messages(message, chat_history))
        self._memory.put(response.message)
        return self._answered(response)

    @trace_method("chat")
    def stream_chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> StreamingAgentChatResponse:
        messages = self._messages(message, chat_history)
        nodes: list[NodeWithScore] = []
        streaming = StreamingAgentChatResponse(
            chat_stream=self._collect(self._llm.stream_chat(messages), nodes), source_nodes=nodes
        )
        # As SimpleChatEngine does: a thread reads the stream and writes the answer (with its
        # thread metadata) to memory; response_gen yields the deltas and joins it at the end.
        thread = Thread(target=streaming.write_response_to_history, args=(self._memory,))
        streaming.write_response_to_history_thread = thread
        thread.start()
        return streaming

    @trace_method("chat")
    async def achat(self, message: str, chat_history: list[ChatMessage] | None = None) -> AgentChatResponse:
        response = await self._llm.achat(await self._amessages(message, chat_history))
        await self._memory.aput(response.message)
        return self._answered(response)

    @trace_method("chat")
    async def astream_chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> StreamingAgentChatResponse:
        messages = await self._amessages(message, chat_history)
        nodes: list[NodeWithScore] = []
        streaming = StreamingAgentChatResponse(
            achat_stream=self._acollect(await self._llm.astream_chat(messages), nodes), source_nodes=nodes
        )
        streaming.awrite_response_to_history_task = asyncio.create_task(
            streaming.awrite_response_to_history(self._memory)
        )
        return streaming
