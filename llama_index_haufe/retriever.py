"""`HaufeCopilotRetriever`: the sources Haufe Copilot cites for a question, as nodes."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle

from ._components import question, resolve_llm
from .base import HaufeCopilot
from .sources import sources_to_nodes

__all__ = ["HaufeCopilotRetriever"]


class HaufeCopilotRetriever(BaseRetriever):
    """The passages the assistant cites when it answers a question, as `NodeWithScore`s.

    Each node's text is a source's `content`; its metadata the source's `meta_data` keys
    (`document_title`, `section`, ...) plus `thread_id`, `message_id` and `rank`; its score
    `1 / rank` (rank from 1, in citation order), so score-based postprocessors work.

    ```python
    from llama_index_haufe import HaufeCopilotRetriever

    retriever = HaufeCopilotRetriever(assistant_id="...", similarity_top_k=3)
    nodes = retriever.retrieve("Welche Kündigungsfristen gelten während der Probezeit?")
    nodes = await retriever.aretrieve("...")   # really asynchronous
    ```

    Pass `llm=` (a `HaufeCopilot`) or `HaufeCopilot`'s own keyword fields. Every question is a
    conversation of its own (a new server thread, unless the LLM names one).
    """

    def __init__(
        self,
        llm: HaufeCopilot | None = None,
        *,
        similarity_top_k: int | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
        **llm_fields: Any,
    ) -> None:
        self._llm = resolve_llm(llm, llm_fields, type(self).__name__)
        if similarity_top_k is not None and similarity_top_k < 1:
            raise ValueError(f"similarity_top_k must be at least 1, not {similarity_top_k}.")
        self._similarity_top_k = similarity_top_k
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def llm(self) -> HaufeCopilot:
        return self._llm

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        response = self._llm.chat(question(self._llm, query_bundle.query_str))
        return sources_to_nodes(response, top_k=self._similarity_top_k)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        response = await self._llm.achat(question(self._llm, query_bundle.query_str))
        return sources_to_nodes(response, top_k=self._similarity_top_k)
