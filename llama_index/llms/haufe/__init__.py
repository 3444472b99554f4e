"""`llama_index.llms.haufe`: where LlamaIndex users look for the Haufe Copilot LLM.

A re-export of `llama_index_haufe` (`llama_index` and `llama_index.llms` are namespace
packages shared with llama-index-core and the other integrations).
"""

from llama_index_haufe import (
    HaufeCopilot,
    HaufeCopilotChatEngine,
    HaufeCopilotQueryEngine,
    HaufeCopilotRetriever,
    json_schema_format,
    sources_to_nodes,
)

__all__ = [
    "HaufeCopilot",
    "HaufeCopilotChatEngine",
    "HaufeCopilotQueryEngine",
    "HaufeCopilotRetriever",
    "json_schema_format",
    "sources_to_nodes",
]
