"""`HaufeCopilotTool`: Haufe Copilot's cited answer as a LangChain tool, for any agent.

An agent binds its tools on every call, so its model talks to the completions endpoint, which
cites nothing. This tool asks the assistant itself: the agent's model (ours or another
provider's) gets the answer with the sections it cites as the tool's content, and the cited
passages as `Document`s in the `ToolMessage.artifact`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.documents import Document
from langchain_core.tools import BaseTool
from langchain_core.utils import from_env
from pydantic import BaseModel, Field

from haufe_copilot.conversation.routing import require_assistant
from haufe_copilot.protocol.citations import answer_with_citations

from ._client_fields import HaufeClientFields
from ._messages import source_metadata

if TYPE_CHECKING:
    from haufe_copilot.types import AssistantAnswer

__all__ = ["HaufeCopilotTool"]


class _Question(BaseModel):
    question: str = Field(description="Die Rechtsfrage, vollständig formuliert (auf Deutsch).")


class HaufeCopilotTool(HaufeClientFields, BaseTool):
    """Ask Haufe Copilot inside an agent: the answer as content, its sources as artifact.

    ```python
    from langchain.agents import create_agent
    from langchain_haufe import ChatHaufeCopilot, HaufeCopilotTool

    agent = create_agent(ChatHaufeCopilot(), tools=[HaufeCopilotTool()])  # or any chat model
    result = agent.invoke({"messages": [("user", "Welche Kündigungsfrist gilt in der Probezeit?")]})
    tool_message = next(m for m in result["messages"] if m.type == "tool")
    tool_message.content    # the answer, then "Quellen: [1] § 622 Abs. 3 BGB; ..."
    tool_message.artifact   # the cited passages as Documents (metadata: section, rank, ...)
    ```

    Each call is a question of its own (a new server thread). Called directly,
    `tool.invoke({"question": ...})` gives the content; called with a tool call
    (`tool.invoke(call)`, as agents do) a `ToolMessage` with the artifact.
    """

    name: str = "haufe_copilot"
    description: str = (
        "Beantwortet Fragen zum deutschen Arbeits-, Steuer- und Sozialversicherungsrecht aus den "
        "Fachinhalten von Haufe. Die Antwort nennt die Vorschriften (Paragraphen), auf die sie "
        "sich stützt; nenne sie in deiner Antwort."
    )
    args_schema: type[BaseModel] = _Question
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"

    assistant_id: str | None = Field(default_factory=from_env("HAUFE_COPILOT_ASSISTANT_ID", default=None))
    """The assistant to ask; default `HAUFE_COPILOT_ASSISTANT_ID`."""
    user_id: str | None = None

    def _request(self, question: str) -> dict[str, Any]:
        return {
            "assistant_id": require_assistant(
                None, self.assistant_id, "HaufeCopilotTool", per_call_possible=False
            ),
            "user_id": self.user_id,
            "messages": [{"role": "user", "content": question}],
        }

    def _output(self, answer: AssistantAnswer) -> tuple[str, list[Document]]:
        sources = [source.model_dump() for source in answer.sources]
        ids = {"thread_id": answer.thread_id, "message_id": answer.id}
        documents = [
            Document(page_content=str(source.get("content", "")), metadata=source_metadata(source, rank, ids))
            for rank, source in enumerate(sources, start=1)
        ]
        content = answer_with_citations(answer.content, (d.metadata for d in documents))
        return content, documents

    def _run(
        self, question: str, run_manager: CallbackManagerForToolRun | None = None
    ) -> tuple[str, list[Document]]:
        return self._output(self.client.assistant.chat(**self._request(question)))

    async def _arun(
        self, question: str, run_manager: AsyncCallbackManagerForToolRun | None = None
    ) -> tuple[str, list[Document]]:
        return self._output(await self.async_client.assistant.chat(**self._request(question)))
