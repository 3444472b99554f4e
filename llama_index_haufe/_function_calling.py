"""Tools for `HaufeCopilot`: what LlamaIndex's `FunctionCallingLLM` asks of an LLM (`chat_with_tools`,
`predict_and_call`, agents). A call with tools goes to the completions endpoint (the core's
routing decides it); this module only translates LlamaIndex's tools and tool calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from haufe_copilot.conversation.routing import tool_choice_for_api
from haufe_copilot.errors import InvalidRequestError

from ._messages import tool_selections

__all__ = ["FunctionCalling", "tool_spec"]


def tool_spec(tool: Any) -> dict[str, Any]:
    """A LlamaIndex tool (or an OpenAI-shaped dict) as the completions API's tool definition."""
    metadata = getattr(tool, "metadata", None)
    if metadata is not None and hasattr(metadata, "to_openai_tool"):
        spec: dict[str, Any] = metadata.to_openai_tool(skip_length_check=True)
        return spec
    if isinstance(tool, Mapping):
        return dict(tool)
    raise InvalidRequestError(f"tools must be LlamaIndex tools or OpenAI-style tool dicts, not {tool!r}.")


class FunctionCalling(FunctionCallingLLM):
    """The tool-calling methods of `HaufeCopilot`."""

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The chat keywords for a call with tools (the caller's history is not changed)."""
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        prepared: dict[str, Any] = {"messages": messages, **kwargs}
        specs = [tool_spec(tool) for tool in tools]
        if specs:
            names = [str((spec.get("function") or {}).get("name")) for spec in specs]
            prepared.update(
                tools=specs,
                tool_choice=tool_choice_for_api(tool_choice, names, tool_required=tool_required),
                parallel_tool_calls=allow_parallel_tool_calls,
            )
        return prepared

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[Any],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        # parallel_tool_calls=False was applied to the answer already (keeping the first call).
        return response

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls of an answer; while streaming, with the arguments that arrived so far."""
        selections = tool_selections(response.message)
        if not selections and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but the answer has none.")
        return selections
