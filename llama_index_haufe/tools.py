"""`HaufeCopilotTool`: Haufe Copilot's cited answer as a LlamaIndex tool, for any agent.

`FunctionAgent` and `AgentWorkflow` call their LLM with tools on every turn, so the LLM talks to
the completions endpoint, which cites nothing. This tool asks the assistant itself: the agent's
LLM (ours or another provider's) reads the answer with the sections it cites, and the
`ToolOutput.raw_output` is the query engine's `Response`: the answer and its `source_nodes`.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.response.schema import Response
from llama_index.core.tools import QueryEngineTool, ToolMetadata, ToolOutput

from haufe_copilot.protocol.citations import answer_with_citations

from .base import HaufeCopilot
from .query_engine import HaufeCopilotQueryEngine

__all__ = ["HaufeCopilotTool"]

DEFAULT_NAME = "haufe_copilot"
DEFAULT_DESCRIPTION = (
    "Beantwortet Fragen zum deutschen Arbeits-, Steuer- und Sozialversicherungsrecht aus den "
    "Fachinhalten von Haufe. Die Antwort nennt die Vorschriften (Paragraphen), auf die sie sich "
    "stützt; nenne sie in deiner Antwort. Eingabe: die vollständige Frage."
)


class HaufeCopilotTool(QueryEngineTool):
    """Ask Haufe Copilot inside an agent.

    ```python
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index_haufe import HaufeCopilot, HaufeCopilotTool

    agent = FunctionAgent(tools=[HaufeCopilotTool()], llm=HaufeCopilot())  # or any LLM
    output = HaufeCopilotTool().call("Welche Kündigungsfrist gilt in der Probezeit?")
    output.content                   # the answer, then "Quellen: [1] § 622 Abs. 3 BGB; ..."
    output.raw_output.response       # the answer
    output.raw_output.source_nodes   # the cited passages (metadata: section, rank, ...)
    ```

    Pass `llm=` (a `HaufeCopilot`) or `HaufeCopilot`'s keyword fields; `name=`,
    `description=`, `return_direct=`. Each call is a question of its own (a new server thread).
    """

    def __init__(
        self,
        llm: HaufeCopilot | None = None,
        *,
        name: str = DEFAULT_NAME,
        description: str = DEFAULT_DESCRIPTION,
        return_direct: bool = False,
        **llm_fields: Any,
    ) -> None:
        super().__init__(
            query_engine=HaufeCopilotQueryEngine(llm, **llm_fields),
            metadata=ToolMetadata(name=name, description=description, return_direct=return_direct),
        )

    def _cited(self, output: ToolOutput) -> ToolOutput:
        response = output.raw_output
        if isinstance(response, Response):
            meta_data = [node.node.metadata for node in response.source_nodes]
            output.content = answer_with_citations(response.response or "", meta_data)
        return output

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        return self._cited(super().call(*args, **kwargs))

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        return self._cited(await super().acall(*args, **kwargs))
