"""Wire types of the OpenAI-compatible completions API (docs/contract.md), as pydantic v2 models."""

from __future__ import annotations

from pydantic import Field

from haufe_copilot.types._base import WireModel

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChunkChoice",
    "CompletionMessage",
    "FunctionCall",
    "ToolCall",
    "Usage",
]


class Usage(WireModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class FunctionCall(WireModel):
    name: str
    #: The arguments as the model wrote them: a JSON object in a string.
    arguments: str = ""


class ToolCall(WireModel):
    id: str
    type: str = "function"
    function: FunctionCall


class CompletionMessage(WireModel):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(WireModel):
    index: int = 0
    message: CompletionMessage
    finish_reason: str | None = None


class ChatCompletion(WireModel):
    """One `chat.completion`, plus the server's `session_id`."""

    id: str
    object: str = "chat.completion"
    created: int | None = None
    model: str | None = None
    choices: list[Choice] = Field(default_factory=list)
    usage: Usage | None = None
    session_id: str | None = None


class ChoiceDeltaToolCallFunction(WireModel):
    name: str | None = None
    arguments: str | None = None


class ChoiceDeltaToolCall(WireModel):
    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: ChoiceDeltaToolCallFunction | None = None


class ChoiceDelta(WireModel):
    role: str | None = None
    content: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None


class ChunkChoice(WireModel):
    index: int = 0
    delta: ChoiceDelta = Field(default_factory=ChoiceDelta)
    finish_reason: str | None = None


class ChatCompletionChunk(WireModel):
    """One SSE `chat.completion.chunk`; the last one before `[DONE]` has no choices and `usage`."""

    id: str
    object: str = "chat.completion.chunk"
    created: int | None = None
    model: str | None = None
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
    session_id: str | None = None
