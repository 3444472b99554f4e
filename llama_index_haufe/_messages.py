"""Translation between LlamaIndex chat messages and the core's shapes.

- `to_turns`: a history as the core's thread logic sees it (docs/threads.md): roles normalised, the text
  of a message's text blocks joined with "\\n", and an earlier answer's `additional_kwargs` as
  its metadata, so that the answers a memory kept carry their thread with them.
- `to_completion_messages`: the whole history in the OpenAI-compatible shape of the completions
  and async-streams APIs (tool calls as `tool_calls`, tool results as `role: tool` with
  `tool_call_id`).
- `tool_call_blocks` / `tool_selections`: tool calls as `ToolCallBlock`s on an answer, and back as
  the `ToolSelection`s agents execute (tolerant of arguments still streaming).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    TextBlock,
    ToolCallBlock,
    VideoBlock,
)
from llama_index.core.llms.llm import ToolSelection

from haufe_copilot.conversation.threads import Turn, normalise_role
from haufe_copilot.errors import APIResponseValidationError, InvalidRequestError
from haufe_copilot.protocol.tool_calls import AssembledToolCall, partial_arguments

__all__ = [
    "message_text",
    "openai_tool_calls",
    "role_of",
    "to_completion_messages",
    "to_turns",
    "tool_call_blocks",
    "tool_calls_of",
    "tool_selections",
]

_MEDIA_BLOCKS = (ImageBlock, AudioBlock, VideoBlock, DocumentBlock)


def role_of(message: ChatMessage) -> str:
    """`system`, `user`, `assistant` or `tool`."""
    role = message.role
    return normalise_role(role.value if hasattr(role, "value") else str(role))


def message_text(message: ChatMessage, index: int = 0) -> str:
    """The text of a message (its text blocks joined with "\\n"); refuses media rather than
    dropping it. Tool-call, thinking and citation blocks are not text to resend."""
    parts = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append(block.text)
        elif isinstance(block, _MEDIA_BLOCKS):
            raise InvalidRequestError(
                f"Message {index} holds a {block.block_type!r} block; Haufe Copilot takes text only "
                "(send images, audio, video and files as text, or leave them out)."
            )
    return "\n".join(parts)


def to_turns(messages: Sequence[ChatMessage]) -> list[Turn]:
    """The history as `plan_thread` sees it: an earlier answer keeps its `additional_kwargs`
    (the thread keys of docs/threads.md) as its metadata."""
    turns = []
    for index, message in enumerate(messages):
        role = role_of(message)
        metadata = dict(message.additional_kwargs) if role == "assistant" else {}
        turns.append(Turn(role, message_text(message, index), metadata))
    return turns


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)


def _legacy_call(call: Any, index: int) -> dict[str, Any]:
    """A tool call kept in `additional_kwargs["tool_calls"]` (a dict, or an OpenAI object)."""
    if hasattr(call, "model_dump"):
        call = call.model_dump()
    if not isinstance(call, Mapping):
        raise InvalidRequestError(f"A tool call in additional_kwargs is not an object: {call!r}")
    function = call.get("function") or {}
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"A tool call in additional_kwargs has no function name: {call!r}")
    arguments = function.get("arguments") if isinstance(function, Mapping) else None
    return {
        "id": str(call.get("id") or f"call_{index}"),
        "type": "function",
        "function": {"name": name, "arguments": _arguments_text(arguments)},
    }


def tool_calls_of(message: ChatMessage) -> list[dict[str, Any]]:
    """The tool calls an assistant message made, in the OpenAI wire shape: its `ToolCallBlock`s,
    else (older integrations) `additional_kwargs["tool_calls"]`."""
    calls = [
        {
            "id": block.tool_call_id or f"call_{index}",
            "type": "function",
            "function": {"name": block.tool_name, "arguments": _arguments_text(block.tool_kwargs)},
        }
        for index, block in enumerate(b for b in message.blocks if isinstance(b, ToolCallBlock))
    ]
    if calls:
        return calls
    legacy = message.additional_kwargs.get("tool_calls")
    if isinstance(legacy, (list, tuple)):
        return [_legacy_call(call, index) for index, call in enumerate(legacy)]
    return []


def to_completion_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """The whole history in the completions API's shape: what the completions endpoint (which keeps no
    conversation) needs to see of it."""
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = role_of(message)
        text = message_text(message, index)
        item: dict[str, Any] = {"role": role, "content": text}
        if role == "assistant":
            calls = tool_calls_of(message)
            if calls:
                item["tool_calls"] = calls
                item["content"] = text or None
        elif role == "tool":
            call_id = message.additional_kwargs.get("tool_call_id")
            if isinstance(call_id, str) and call_id:
                item["tool_call_id"] = call_id
        out.append(item)
    return out


def tool_call_blocks(calls: Sequence[AssembledToolCall], *, complete: bool) -> list[ToolCallBlock]:
    """Tool calls as blocks of an answer. While streaming (`complete=False`) the arguments are
    what their JSON holds so far; complete arguments that are not a JSON object stay text."""
    blocks = []
    for call in calls:
        arguments: dict[str, Any] | str
        if complete:
            try:
                arguments = call.parsed_arguments()
            except APIResponseValidationError:
                arguments = call.arguments
        else:
            arguments = partial_arguments(call.arguments)
        blocks.append(ToolCallBlock(tool_call_id=call.id, tool_name=call.name, tool_kwargs=arguments))
    return blocks


def openai_tool_calls(calls: Sequence[AssembledToolCall]) -> list[dict[str, Any]]:
    """Tool calls in the OpenAI wire shape (arguments: the JSON text so far), for
    `additional_kwargs["tool_calls"]`."""
    return [
        {
            "index": call.index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for call in calls
    ]


def _arguments_dict(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return partial_arguments(arguments)
        return value if isinstance(value, dict) else {}
    return {}


def tool_selections(message: ChatMessage) -> list[ToolSelection]:
    """The tool calls of an answer as `ToolSelection`s (partial arguments parsed best effort)."""
    blocks = [block for block in message.blocks if isinstance(block, ToolCallBlock)]
    if blocks:
        return [
            ToolSelection(
                tool_id=block.tool_call_id or f"call_{index}",
                tool_name=block.tool_name,
                tool_kwargs=_arguments_dict(block.tool_kwargs),
            )
            for index, block in enumerate(blocks)
        ]
    return [
        ToolSelection(
            tool_id=call["id"],
            tool_name=call["function"]["name"],
            tool_kwargs=_arguments_dict(call["function"]["arguments"]),
        )
        for call in tool_calls_of(message)
    ]
