"""Haufe Copilot for Python: the shared core client.

`HaufeCopilotClient` and `AsyncHaufeCopilotClient` speak the Haufe Copilot APIs; the wire
types are in `haufe_copilot.types`, the errors in `haufe_copilot.errors`. The LangChain and
LlamaIndex integrations (`langchain_haufe`, `llama_index_haufe`) and the local emulator
(`haufe_emulator`) are separate imports, so importing this package loads neither a
framework nor a web server.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from haufe_copilot import errors
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

if TYPE_CHECKING:
    from httpx import Limits, Timeout

    from haufe_copilot import types
    from haufe_copilot.resources.assistant import AssistantStream, AsyncAssistantStream
    from haufe_copilot.resources.base import RawResponse
    from haufe_copilot.transport.async_client import AsyncHaufeCopilotClient
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

# Where each lazily loaded name lives. The clients bring httpx, the wire types pydantic models:
# an adapter importing this package for its errors (or a user for `rate_limit`) pays for
# neither until a client or a wire type is first used.
_LAZY = {
    "types": "haufe_copilot.types",
    "Limits": "httpx",
    "Timeout": "httpx",
    "RawResponse": "haufe_copilot.resources.base",
    "AssistantStream": "haufe_copilot.resources.assistant",
    "AsyncAssistantStream": "haufe_copilot.resources.assistant",
    "AsyncHaufeCopilotClient": "haufe_copilot.transport.async_client",
    "DEFAULT_BASE_URL": "haufe_copilot.transport.base_client",
    "DEFAULT_MAX_RETRIES": "haufe_copilot.transport.options",
    "DEFAULT_TIMEOUT": "haufe_copilot.transport.options",
    "ClientOptions": "haufe_copilot.transport.options",
    "USER_AGENT": "haufe_copilot.transport.base_client",
    "HaufeCopilotClient": "haufe_copilot.transport.client",
    "AsyncStream": "haufe_copilot.transport.streaming",
    "Stream": "haufe_copilot.transport.streaming",
    **dict.fromkeys(
        (
            "AssistantAnswer",
            "ChatCompletion",
            "ChatCompletionChunk",
            "Source",
            "StreamChunk",
            "StreamEvent",
            "StreamHandle",
            "StreamStatus",
        ),
        "haufe_copilot.types",
    ),
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'haufe_copilot' has no attribute {name!r}")
    module = import_module(module_name)
    value = module if name == "types" else getattr(module, name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
