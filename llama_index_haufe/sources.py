"""An answer's sources as LlamaIndex nodes (docs/sources.md).

Each source the assistant cites becomes a `NodeWithScore`: the node's text is the source's
`content`; its metadata is the source's `meta_data` keys (`document_title`, `section`, and any
the server adds) plus `thread_id`, `message_id` and `rank` (from 1, in citation order); its score
is `1 / rank`, so score-based postprocessors (`SimilarityPostprocessor(similarity_cutoff=0.3)`)
keep the first-cited sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.schema import NodeWithScore, TextNode

__all__ = ["ANSWER_KEYS", "answer_metadata", "sources_to_nodes"]

#: Metadata keys a node gets besides the source's own `meta_data`; left out of what embedding
#: models and LLMs see of the node.
ANSWER_KEYS = ("thread_id", "message_id", "rank")


def answer_metadata(
    answer: ChatResponse | ChatMessage | CompletionResponse | Mapping[str, Any],
) -> dict[str, Any]:
    """The metadata an answer carries (docs/threads.md), wherever it is kept."""
    if isinstance(answer, ChatResponse):
        return dict(answer.message.additional_kwargs)
    if isinstance(answer, (ChatMessage, CompletionResponse)):
        return dict(answer.additional_kwargs)
    return dict(answer)


def sources_to_nodes(
    answer: ChatResponse | ChatMessage | CompletionResponse | Mapping[str, Any],
    *,
    top_k: int | None = None,
) -> list[NodeWithScore]:
    """The sources of an answer (a `ChatResponse`, its message, a `CompletionResponse`, or the
    metadata dict itself) as `NodeWithScore`s in citation order; at most `top_k` of them."""
    metadata = answer_metadata(answer)
    sources = metadata.get("sources") or []
    thread_id = metadata.get("thread_id")
    message_id = metadata.get("message_id")
    nodes = []
    for rank, source in enumerate(sources, start=1):
        if top_k is not None and rank > top_k:
            break
        if not isinstance(source, Mapping):
            source = source.model_dump() if hasattr(source, "model_dump") else {"content": str(source)}
        meta_data = source.get("meta_data")
        node_metadata: dict[str, Any] = dict(meta_data) if isinstance(meta_data, Mapping) else {}
        node_metadata.update(thread_id=thread_id, message_id=message_id, rank=rank)
        node = TextNode(
            text=str(source.get("content") or ""),
            metadata=node_metadata,
            excluded_embed_metadata_keys=list(ANSWER_KEYS),
            excluded_llm_metadata_keys=list(ANSWER_KEYS),
        )
        if message_id:
            node.id_ = f"{message_id}:{rank}"
        nodes.append(NodeWithScore(node=node, score=1.0 / rank))
    return nodes
