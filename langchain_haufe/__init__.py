"""Haufe Copilot for LangChain: `ChatHaufeCopilot`, `HaufeCopilotRetriever`, `HaufeCopilotTool`,
`sources_to_documents`.

Importing this package registers the content-block translator for `model_provider="haufe"`,
so `AIMessage.content_blocks` shows an answer's sources as standard `Citation` annotations.
"""

try:
    import langchain_core  # noqa: F401  (checked first, so its absence is one clear message)
except ImportError as exc:
    raise ImportError(
        f"langchain_haufe needs LangChain ({exc.name or exc} is not installed): "
        "pip install 'haufe-copilot[langchain]'",
        name=exc.name,
    ) from None

from ._messages import sources_to_documents
from .chat_models import ChatHaufeCopilot
from .rate_limiters import HaufeRateLimiter
from .retrievers import HaufeCopilotRetriever
from .tools import HaufeCopilotTool

__all__ = [
    "ChatHaufeCopilot",
    "HaufeCopilotRetriever",
    "HaufeCopilotTool",
    "HaufeRateLimiter",
    "sources_to_documents",
]
