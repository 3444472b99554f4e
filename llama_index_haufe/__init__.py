"""LlamaIndex integration for Haufe Copilot.

- `HaufeCopilot`: the LLM (a `FunctionCallingLLM`), also importable as
  `llama_index.llms.haufe.HaufeCopilot`;
- `HaufeCopilotRetriever`: the sources the assistant cites for a question, as `NodeWithScore`s;
- `HaufeCopilotQueryEngine`: answers as `Response` / `StreamingResponse` with `source_nodes`;
- `HaufeCopilotChatEngine`: a chat engine whose memory is the server thread's memory;
- `HaufeCopilotTool`: the cited answer as an agent's tool (`raw_output`: answer and source nodes);
- `sources_to_nodes(response)`: an answer's sources as `NodeWithScore`s.

Nothing here imports LangChain.
"""

try:
    import llama_index.core  # noqa: F401  (checked first, so its absence is one clear message)
except ImportError as exc:
    raise ImportError(
        f"llama_index_haufe needs LlamaIndex ({exc.name or exc} is not installed): "
        "pip install 'haufe-copilot[llama-index]'",
        name=exc.name,
    ) from None

from .base import HaufeCopilot, json_schema_format
from .chat_engine import HaufeCopilotChatEngine
from .query_engine import HaufeCopilotQueryEngine
from .retriever import HaufeCopilotRetriever
from .sources import sources_to_nodes
from .tools import HaufeCopilotTool

__all__ = [
    "HaufeCopilot",
    "HaufeCopilotChatEngine",
    "HaufeCopilotQueryEngine",
    "HaufeCopilotRetriever",
    "HaufeCopilotTool",
    "json_schema_format",
    "sources_to_nodes",
]
