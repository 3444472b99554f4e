"""Translation between LangChain messages and the core: history turns, completions messages,
answers as `AIMessage`s, sources as `Document`s and as standard citation content blocks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages import content as blocks
from langchain_core.messages.block_translators import register_translator

from haufe_copilot.conversation.threads import Turn, normalise_role
from haufe_copilot.errors import InvalidRequestError

PROVIDER = "haufe"

#: By class, not by `message.type`: the streamed `*MessageChunk` classes (an aggregated
#: `AIMessageChunk` is how a streamed answer goes back into a history) subclass their message
#: classes and have types of their own ("AIMessageChunk", ...).
_ROLE_OF_CLASS: tuple[tuple[type[BaseMessage], str], ...] = (
    (SystemMessage, "system"),
    (HumanMessage, "user"),
    (AIMessage, "assistant"),
    (ToolMessage, "tool"),
    (FunctionMessage, "tool"),
)


def _role(message: BaseMessage) -> str:
    if isinstance(message, ChatMessage):  # ChatMessageChunk too
        try:
            return normalise_role(message.role)
        except ValueError as error:
            raise InvalidRequestError(
                f"Haufe Copilot cannot take a {type(message).__name__} with role {message.role!r}: "
                "use one of system, user (human), assistant (ai) or tool, or the matching message class."
            ) from error
    for cls, role in _ROLE_OF_CLASS:
        if isinstance(message, cls):
            return role
    if isinstance(message, RemoveMessage):
        raise InvalidRequestError(
            f"Haufe Copilot cannot take a RemoveMessage (id {message.id!r}): it tells LangGraph's "
            "add_messages reducer which messages to drop from a graph's state and is no message "
            "of the conversation. Return it from a node to update the state (or apply it with "
            "langgraph.graph.message.add_messages) and pass the resulting messages."
        )
    raise InvalidRequestError(
        f"Haufe Copilot cannot take a {type(message).__name__} (type {message.type!r}): pass "
        "SystemMessage, HumanMessage, AIMessage, ToolMessage, FunctionMessage or ChatMessage "
        "(or their *Chunk classes)."
    )


def message_text(message: BaseMessage, index: int) -> str:
    """The text of a message; refuses content the API cannot take rather than dropping it."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type") in ("text", "text-plain"):
            parts.append(str(part.get("text", "")))
        elif isinstance(part, dict) and part.get("type") in (
            "tool_call",
            "tool_use",
            "tool_call_chunk",
            "invalid_tool_call",
            "reasoning",
            "thinking",
        ):
            continue  # carried by tool_calls, or the model's own reasoning: not text to resend
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise InvalidRequestError(
                f"Message {index} ({type(message).__name__}) holds a {kind!r} block; Haufe Copilot "
                "takes text only "
                "(send images, audio and files as text, or leave them out)."
            )
    return "\n".join(parts)


def to_turns(messages: Sequence[BaseMessage]) -> list[Turn]:
    """The history as the core's thread logic sees it (earlier answers keep their metadata)."""
    turns = []
    for index, message in enumerate(messages):
        role = _role(message)
        metadata = message.response_metadata if role == "assistant" else {}
        turns.append(Turn(role, message_text(message, index), metadata))
    return turns


def to_completion_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The whole history in the shape of the completions API (docs/contract.md, Completions)."""
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = _role(message)
        entry: dict[str, Any] = {"role": role, "content": message_text(message, index)}
        if message.name and role in ("user", "assistant", "system"):
            entry["name"] = message.name
        if isinstance(message, AIMessage) and message.tool_calls:
            entry["tool_calls"] = [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": json.dumps(call["args"], ensure_ascii=False),
                    },
                }
                for call in message.tool_calls
            ]
            entry["content"] = entry["content"] or None
        if isinstance(message, ToolMessage):
            entry["tool_call_id"] = message.tool_call_id
        elif isinstance(message, FunctionMessage):
            entry["tool_call_id"] = message.name
        out.append(entry)
    return out


# -- sources -----------------------------------------------------------------------------------


def _sources(message: BaseMessage) -> list[Mapping[str, Any]]:
    sources = message.response_metadata.get("sources") or []
    return [s for s in sources if isinstance(s, Mapping)]


def source_metadata(source: Mapping[str, Any], rank: int, answer: Mapping[str, Any]) -> dict[str, Any]:
    meta = source.get("meta_data")
    metadata = dict(meta) if isinstance(meta, Mapping) else {}
    metadata.update(thread_id=answer.get("thread_id"), message_id=answer.get("message_id"), rank=rank)
    return metadata


def sources_to_documents(message: BaseMessage) -> list[Document]:
    """The sources an answer cites, as `Document`s in citation order.

    `page_content` is the cited passage; `metadata` holds its `meta_data` keys
    (`document_title`, `section`, ...) plus the answer's `thread_id`, `message_id` and the
    source's `rank` (1 for the first cited).
    """
    return [
        Document(
            page_content=str(source.get("content", "")),
            metadata=source_metadata(source, rank, message.response_metadata),
        )
        for rank, source in enumerate(_sources(message), start=1)
    ]


def _citation(source: Mapping[str, Any], rank: int) -> blocks.Citation:
    meta = source.get("meta_data")
    extras = dict(meta) if isinstance(meta, Mapping) else {}
    title = extras.pop("document_title", None)
    extras["rank"] = rank
    citation: blocks.Citation = {
        "type": "citation",
        "cited_text": str(source.get("content", "")),
        "extras": extras,
    }
    if title:
        citation["title"] = str(title)
    return citation


def _text_block(message: BaseMessage) -> list[blocks.ContentBlock]:
    if not isinstance(message.content, str):
        raise NotImplementedError  # already blocks: LangChain's own parsing handles them
    sources = _sources(message)
    if not message.content and not sources:
        return []
    block: blocks.TextContentBlock = {"type": "text", "text": message.content}
    if sources:
        block["annotations"] = [_citation(s, rank) for rank, s in enumerate(sources, start=1)]
    return [block]


def translate_content(message: AIMessage | AIMessageChunk) -> list[blocks.ContentBlock]:
    """`AIMessage.content_blocks` for `model_provider="haufe"`: the text with its sources as
    standard `Citation` annotations, then the tool calls."""
    result = _text_block(message)
    for call in message.tool_calls:
        result.append({"type": "tool_call", "id": call["id"], "name": call["name"], "args": call["args"]})
    for invalid in message.invalid_tool_calls:
        result.append(
            {
                "type": "invalid_tool_call",
                "id": invalid.get("id"),
                "name": invalid.get("name"),
                "args": invalid.get("args"),
                "error": invalid.get("error"),
            }
        )
    return result


def translate_content_chunk(message: AIMessageChunk) -> list[blocks.ContentBlock]:
    """Per chunk: text and tool-call fragments; once aggregated (`chunk_position="last"`),
    the assembled tool calls, like a whole message."""
    if message.chunk_position == "last":
        return translate_content(message)
    result = _text_block(message)
    for chunk in message.tool_call_chunks:
        block: blocks.ToolCallChunk = {
            "type": "tool_call_chunk",
            "id": chunk.get("id"),
            "name": chunk.get("name"),
            "args": chunk.get("args"),
        }
        index = chunk.get("index")
        if index is not None:
            block["index"] = index
        result.append(block)
    return result


register_translator(PROVIDER, translate_content, translate_content_chunk)

__all__ = [
    "PROVIDER",
    "message_text",
    "source_metadata",
    "sources_to_documents",
    "to_completion_messages",
    "to_turns",
]
