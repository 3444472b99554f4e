"""Haufe Copilot for Python: the shared core client.

`HaufeCopilotClient` and `AsyncHaufeCopilotClient` speak the Haufe Copilot APIs; the wire
types are in `haufe_copilot.types`, the errors in `haufe_copilot.errors`. The LangChain and
LlamaIndex integrations (`langchain_haufe`, `llama_index_haufe`) and the local emulator
(`haufe_emulator`) are separate imports, so importing this package loads neither a
framework nor a web server.
"""

from typing import TYPE_CHECKING, Any

from httpx import Limits, Timeout

from haufe_copilot import errors, types
from haufe_copilot._version import __version__
from haufe_copilot.errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    EmptyMessageError,
    GatewayTimeoutError,
    HaufeCopilotError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RateLimiterUnavailableError,
    ResponseTooLargeError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)
from haufe_copilot.rate_limit import InProcessRateLimiter, RateLimiter, RedisRateLimiter
from haufe_copilot.resources.assistant import AssistantStream, AsyncAssistantStream
from haufe_copilot.resources.base import RawResponse
from haufe_copilot.transport.base_client import DEFAULT_BASE_URL, USER_AGENT
from haufe_copilot.transport.client import HaufeCopilotClient
from haufe_copilot.transport.options import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, ClientOptions
from haufe_copilot.transport.streaming import AsyncStream, Stream
from haufe_copilot.types import (
    AssistantAnswer,
    ChatCompletion,
    ChatCompletionChunk,
    Source,
    StreamChunk,
    StreamEvent,
    StreamHandle,
    StreamStatus,
)

if TYPE_CHECKING:
    from haufe_copilot.transport.async_client import AsyncHaufeCopilotClient


def __getattr__(name: str) -> Any:
    # The async client is loaded on first use: it brings asyncio, which a sync user never needs.
    if name == "AsyncHaufeCopilotClient":
        from haufe_copilot.transport.async_client import AsyncHaufeCopilotClient

        return AsyncHaufeCopilotClient
    raise AttributeError(f"module 'haufe_copilot' has no attribute {name!r}")


__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AssistantAnswer",
    "AssistantStream",
    "AsyncAssistantStream",
    "AsyncHaufeCopilotClient",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ClientOptions",
    "ConfigurationError",
    "ConflictError",
    "EmptyMessageError",
    "GatewayTimeoutError",
    "HaufeCopilotClient",
    "HaufeCopilotError",
    "InProcessRateLimiter",
    "InternalServerError",
    "InvalidRequestError",
    "Limits",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimiter",
    "RateLimiterUnavailableError",
    "RawResponse",
    "RedisRateLimiter",
    "ResponseTooLargeError",
    "ServiceUnavailableError",
    "Source",
    "Stream",
    "StreamChunk",
    "StreamEvent",
    "StreamHandle",
    "StreamStatus",
    "Timeout",
    "UnprocessableEntityError",
    "__version__",
    "errors",
    "types",
]
