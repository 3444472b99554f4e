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

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._messages import sources_to_documents
from .chat_models import ChatHaufeCopilot

if TYPE_CHECKING:
    from .rate_limiters import HaufeRateLimiter
    from .retrievers import HaufeCopilotRetriever
    from .tools import HaufeCopilotTool

# Loaded on first use: they bring LangChain's tool, retriever and rate-limiter machinery, which a
# chat model alone does not need.
_LAZY = {
    "HaufeRateLimiter": ".rate_limiters",
    "HaufeCopilotRetriever": ".retrievers",
    "HaufeCopilotTool": ".tools",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'langchain_haufe' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ChatHaufeCopilot",
    "HaufeCopilotRetriever",
    "HaufeCopilotTool",
    "HaufeRateLimiter",
    "sources_to_documents",
]
