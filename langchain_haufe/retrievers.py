"""`HaufeCopilotRetriever`: the sources Haufe Copilot cites for a question, as Documents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.utils import from_env
from pydantic import Field

from haufe_copilot.conversation.routing import require_assistant

from ._client_fields import HaufeClientFields
from ._messages import source_metadata

if TYPE_CHECKING:
    from haufe_copilot.types import AssistantAnswer


class HaufeCopilotRetriever(HaufeClientFields, BaseRetriever):
    """The passages Haufe Copilot cites when it answers a question, at most `k`, in citation order.

    Each `Document` has the cited passage as `page_content` and its `meta_data` keys
    (`document_title`, `section`, ...) plus `thread_id`, `message_id` and `rank` (1 for the
    first cited) as `metadata`. With `include_answer=True` the answer itself comes last, with
    `metadata["type"] == "answer"`.

    ```python
    from langchain_haufe import HaufeCopilotRetriever

    retriever = HaufeCopilotRetriever(assistant_id="...", k=3)
    docs = retriever.invoke("Wie viele Urlaubstage stehen mir zu?")
    ```
    """

    assistant_id: str | None = Field(default_factory=from_env("HAUFE_COPILOT_ASSISTANT_ID", default=None))
    user_id: str | None = None
    k: int = Field(default=4, ge=1)
    """The most documents to return."""
    include_answer: bool = False
    """Append the assistant's answer as a last document."""

    def _request(self, query: str) -> dict[str, Any]:
        return {
            "assistant_id": require_assistant(
                None, self.assistant_id, "HaufeCopilotRetriever", per_call_possible=False
            ),
            "user_id": self.user_id,
            "messages": [{"role": "user", "content": query}],
        }

    def _documents(self, answer: AssistantAnswer, k: int | None) -> list[Document]:
        ids = {"thread_id": answer.thread_id, "message_id": answer.id}
        documents = [
            Document(page_content=source.content, metadata=source_metadata(source.model_dump(), rank, ids))
            for rank, source in enumerate(answer.sources[: k or self.k], start=1)
        ]
        if self.include_answer:
            documents.append(
                Document(
                    page_content=answer.content,
                    metadata={"type": "answer", **ids, "meta_data": answer.meta_data.model_dump()},
                )
            )
        return documents

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        return self._documents(self.client.assistant.chat(**self._request(query)), k)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        return self._documents(await self.async_client.assistant.chat(**self._request(query)), k)
