"""`HaufeCopilotQueryEngine`: Haufe Copilot as a query engine whose answers carry their sources."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.base.response.schema import (
    RESPONSE_TYPE,
    AsyncStreamingResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.callbacks import CallbackManager
from llama_index.core.prompts.mixin import PromptMixinType
from llama_index.core.schema import NodeWithScore, QueryBundle

from ._components import question, resolve_llm
from .base import HaufeCopilot
from .sources import answer_metadata, sources_to_nodes

__all__ = ["HaufeCopilotQueryEngine"]


def _response_metadata(response: ChatResponse) -> dict[str, Any]:
    """The answer's metadata (thread, message, digests) without the sources, which are nodes."""
    metadata = answer_metadata(response)
    metadata.pop("sources", None)
    return metadata


class HaufeCopilotQueryEngine(BaseQueryEngine):
    """Ask Haufe Copilot; the answer as a `Response` whose `source_nodes` are the cited sources.

    ```python
    from llama_index_haufe import HaufeCopilotQueryEngine

    engine = HaufeCopilotQueryEngine(assistant_id="...")
    response = engine.query("Welche Kündigungsfristen gelten während der Probezeit?")
    str(response), response.source_nodes     # text; NodeWithScore (score 1 / rank)
    response.metadata["thread_id"]           # the answer's thread, message id, digests, ...

    streaming = HaufeCopilotQueryEngine(assistant_id="...", streaming=True)
    response = streaming.query("...")        # a StreamingResponse
    for text in response.response_gen:
        print(text, end="")
    response.source_nodes                    # filled once the stream has ended
    ```

    In an agent, wrap it in a `QueryEngineTool`: the tool output's `raw_output` is the
    `Response`, sources included. Pass `llm=` (a `HaufeCopilot`) or `HaufeCopilot`'s keyword
    fields. Each query is a conversation of its own; `aquery` is really asynchronous (with
    `streaming=True` it gives an `AsyncStreamingResponse`).
    """

    def __init__(
        self,
        llm: HaufeCopilot | None = None,
        *,
        streaming: bool = False,
        similarity_top_k: int | None = None,
        callback_manager: CallbackManager | None = None,
        **llm_fields: Any,
    ) -> None:
        self._llm = resolve_llm(llm, llm_fields, type(self).__name__)
        self._streaming = streaming
        self._similarity_top_k = similarity_top_k
        super().__init__(callback_manager=callback_manager)

    @property
    def llm(self) -> HaufeCopilot:
        return self._llm

    def _get_prompt_modules(self) -> PromptMixinType:
        return {}

    def _answered(self, response: ChatResponse) -> Response:
        return Response(
            response=response.message.content or "",
            source_nodes=sources_to_nodes(response, top_k=self._similarity_top_k),
            metadata=_response_metadata(response),
        )

    def _fill(self, final: ChatResponse | None, nodes: list[NodeWithScore], metadata: dict[str, Any]) -> None:
        if final is not None:
            nodes.extend(sources_to_nodes(final, top_k=self._similarity_top_k))
            metadata.update(_response_metadata(final))

    def _deltas(
        self, responses: Iterator[ChatResponse], nodes: list[NodeWithScore], metadata: dict[str, Any]
    ) -> Generator[str, None, None]:
        final = None
        for final in responses:
            if final.delta:
                yield final.delta
        self._fill(final, nodes, metadata)

    async def _adeltas(
        self, responses: AsyncIterator[ChatResponse], nodes: list[NodeWithScore], metadata: dict[str, Any]
    ) -> AsyncGenerator[str, None]:
        final = None
        async for final in responses:
            if final.delta:
                yield final.delta
        self._fill(final, nodes, metadata)

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        messages = question(self._llm, query_bundle.query_str)
        if not self._streaming:
            return self._answered(self._llm.chat(messages))
        nodes: list[NodeWithScore] = []
        metadata: dict[str, Any] = {}
        return StreamingResponse(
            response_gen=self._deltas(self._llm.stream_chat(messages), nodes, metadata),
            source_nodes=nodes,
            metadata=metadata,
        )

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        messages = question(self._llm, query_bundle.query_str)
        if not self._streaming:
            return self._answered(await self._llm.achat(messages))
        nodes: list[NodeWithScore] = []
        metadata: dict[str, Any] = {}
        return AsyncStreamingResponse(
            response_gen=self._adeltas(await self._llm.astream_chat(messages), nodes, metadata),
            source_nodes=nodes,
            metadata=metadata,
        )
