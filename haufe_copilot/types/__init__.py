"""The wire types of every API family, as pydantic v2 models that keep unknown fields.

Each name loads its module on first use: a package that needs only one submodule (the
credential-header rule in `headers`, say) does not build every model.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from haufe_copilot.types.assistant import (
        AnswerMetaData,
        AssistantAnswer,
        ChatMessage,
        Delta,
        Source,
        SourceMetaData,
        StreamChunk,
    )
    from haufe_copilot.types.completions import (
        ChatCompletion,
        ChatCompletionChunk,
        Choice,
        ChoiceDelta,
        ChoiceDeltaToolCall,
        ChoiceDeltaToolCallFunction,
        ChunkChoice,
        CompletionMessage,
        FunctionCall,
        ToolCall,
        Usage,
    )
    from haufe_copilot.types.streams import (
        DeltaEvent,
        DoneEvent,
        ErrorEvent,
        StatusEvent,
        StreamEvent,
        StreamHandle,
        StreamStatus,
        ThinkingEvent,
        ToolCallEvent,
    )

_WHERE = {
    "AnswerMetaData": "haufe_copilot.types.assistant",
    "AssistantAnswer": "haufe_copilot.types.assistant",
    "ChatMessage": "haufe_copilot.types.assistant",
    "Delta": "haufe_copilot.types.assistant",
    "Source": "haufe_copilot.types.assistant",
    "SourceMetaData": "haufe_copilot.types.assistant",
    "StreamChunk": "haufe_copilot.types.assistant",
    "ChatCompletion": "haufe_copilot.types.completions",
    "ChatCompletionChunk": "haufe_copilot.types.completions",
    "Choice": "haufe_copilot.types.completions",
    "ChoiceDelta": "haufe_copilot.types.completions",
    "ChoiceDeltaToolCall": "haufe_copilot.types.completions",
    "ChoiceDeltaToolCallFunction": "haufe_copilot.types.completions",
    "ChunkChoice": "haufe_copilot.types.completions",
    "CompletionMessage": "haufe_copilot.types.completions",
    "FunctionCall": "haufe_copilot.types.completions",
    "ToolCall": "haufe_copilot.types.completions",
    "Usage": "haufe_copilot.types.completions",
    "DeltaEvent": "haufe_copilot.types.streams",
    "DoneEvent": "haufe_copilot.types.streams",
    "ErrorEvent": "haufe_copilot.types.streams",
    "StatusEvent": "haufe_copilot.types.streams",
    "StreamEvent": "haufe_copilot.types.streams",
    "StreamHandle": "haufe_copilot.types.streams",
    "StreamStatus": "haufe_copilot.types.streams",
    "ThinkingEvent": "haufe_copilot.types.streams",
    "ToolCallEvent": "haufe_copilot.types.streams",
}


def __getattr__(name: str) -> Any:
    module_name = _WHERE.get(name)
    if module_name is None:
        raise AttributeError(f"module 'haufe_copilot.types' has no attribute {name!r}")
    value = getattr(import_module(module_name), name)
    globals()[name] = value  # looked up once
    return value


__all__ = [
    "AnswerMetaData",
    "AssistantAnswer",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatMessage",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChunkChoice",
    "CompletionMessage",
    "Delta",
    "DeltaEvent",
    "DoneEvent",
    "ErrorEvent",
    "FunctionCall",
    "Source",
    "SourceMetaData",
    "StatusEvent",
    "StreamChunk",
    "StreamEvent",
    "StreamHandle",
    "StreamStatus",
    "ThinkingEvent",
    "ToolCall",
    "ToolCallEvent",
    "Usage",
]
