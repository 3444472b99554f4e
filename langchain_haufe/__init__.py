"""Haufe Copilot for LangChain: `ChatHaufeCopilot`, `HaufeCopilotRetriever`, `sources_to_documents`.

Importing this package registers the content-block translator for `model_provider="haufe"`,
so `AIMessage.content_blocks` shows an answer's sources as standard `Citation` annotations.
"""

from ._messages import sources_to_documents
from .chat_models import ChatHaufeCopilot
from .retrievers import HaufeCopilotRetriever

__all__ = ["ChatHaufeCopilot", "HaufeCopilotRetriever", "sources_to_documents"]
