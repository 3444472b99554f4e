"""Decisions both adapters make about a call, made once here.

- which sampling parameters go out (`sampling_options`; the assistant API takes none);
- that a call on the assistant path names an assistant (`require_assistant`);
- what `tool_choice` the completions endpoint gets for what a framework passes (`tool_choice_for_api`);
- a per-call `timeout=` (`client_for_call`);
- a server's finish reason in LangChain's vocabulary, the raw value kept (`finish_reason`);
- token counts as plain numbers (`token_usage`);
- what the model can do, per API (`CAPABILITIES`), for LangChain's profile and LlamaIndex's metadata;
- a token estimate where no tokenizer is installed (`estimate_tokens`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from haufe_copilot.errors import InvalidRequestError, MissingAssistantError
from haufe_copilot.protocol.deadline import check_deadline
from haufe_copilot.protocol.settings import check_timeout

if TYPE_CHECKING:
    from haufe_copilot.types.completions import Usage

__all__ = [
    "CAPABILITIES",
    "SAMPLING_PARAMETERS",
    "MissingAssistantError",
    "TokenUsage",
    "client_for_call",
    "estimate_tokens",
    "finish_reason",
    "require_assistant",
    "sampling_options",
    "token_usage",
    "tool_choice_for_api",
]

#: The platform APIs' sampling parameters (the assistant API takes none of them).
SAMPLING_PARAMETERS = ("temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty")


def sampling_options(call: Mapping[str, Any], fields: object) -> dict[str, Any]:
    """The sampling parameters to send: each per-call value, else the field, where not None."""
    chosen = {}
    for name in SAMPLING_PARAMETERS:
        value = call.get(name)
        if value is None:
            value = getattr(fields, name, None)
        if value is not None:
            chosen[name] = value
    return chosen


def require_assistant(per_call: str | None, configured: str | None, owner: str) -> str:
    """The assistant a call asks: the per-call one, else the configured one, else an error."""
    assistant_id = per_call or configured
    if not assistant_id:
        raise MissingAssistantError(
            f"No assistant: pass assistant_id=... to {owner} (or per call), or set "
            "HAUFE_COPILOT_ASSISTANT_ID."
        )
    return assistant_id


_TOOL_CHOICE_WORDS = {"auto": "auto", "none": "none", "required": "required", "any": "required"}


def tool_choice_for_api(
    tool_choice: object, tool_names: Sequence[str], *, tool_required: bool = False
) -> str | dict[str, Any] | None:
    """A framework's `tool_choice` as the completions endpoint takes it.

    None (or False): "required" when `tool_required`, else "auto" (the API's own default,
    sent so what went out is visible); True, "any", "required": "required"; "auto", "none"
    as they are; a bound tool's name, `{"type": "function", "function": {"name": ...}}` or
    `{"name": ...}`: that function. A name not among `tool_names` is refused.
    """
    if tool_choice is None or tool_choice is False:
        return "required" if tool_required else "auto"
    if tool_choice is True:
        return "required"
    name: object = None
    if isinstance(tool_choice, str):
        if tool_choice in _TOOL_CHOICE_WORDS:
            return _TOOL_CHOICE_WORDS[tool_choice]
        name = tool_choice
    elif isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
    if not isinstance(name, str) or name not in tool_names:
        raise InvalidRequestError(
            f"tool_choice must be 'auto', 'none', 'required' (or 'any' / True), or the name of "
            f"one of the bound tools {list(tool_names)}, not {tool_choice!r}."
        )
    return {"type": "function", "function": {"name": name}}


_C = TypeVar("_C", bound="_WithOptions")


class _WithOptions(Protocol):
    def with_options(self: _C, **changes: Any) -> _C: ...


def client_for_call(client: _C, timeout: object, deadline: object = None) -> _C:
    """The client for one call: `client` itself, or (with a per-call `timeout=` or `deadline=`)
    a copy with them sharing its connections. A bad value is an `InvalidRequestError`."""
    if timeout is None and deadline is None:
        return client
    changes: dict[str, Any] = {}
    if timeout is not None:
        changes["timeout"] = check_timeout(timeout, "timeout (per call)", InvalidRequestError)
    if deadline is not None:
        changes["deadline"] = check_deadline(deadline, InvalidRequestError, "deadline (per call)")
    return client.with_options(**changes)


# LangChain's finish reasons, from what the APIs send: the completions endpoint speaks OpenAI's
# words, the async-streams API ends with a status ("completed").
_FINISH_REASONS = {
    "stop": "stop",
    "completed": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "incomplete": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
}


def finish_reason(raw: str | None) -> str | None:
    """The server's finish reason or final status in LangChain's vocabulary (`stop`, `length`,
    `tool_calls`, `content_filter`); a word it does not know passes as it is."""
    if raw is None:
        return None
    return _FINISH_REASONS.get(raw, raw)


@dataclass(frozen=True)
class TokenUsage:
    """Token counts the server reported (never estimated)."""

    input_tokens: int
    output_tokens: int
    total_tokens: int

    def as_openai(self) -> dict[str, int]:
        """The counts under OpenAI's names, as `llm_output["token_usage"]` and LlamaIndex use them."""
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }


def token_usage(usage: Usage | None) -> TokenUsage | None:
    if usage is None:
        return None
    return TokenUsage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


#: What the model can do, as both adapters announce it (LangChain's `profile`, LlamaIndex's
#: `metadata`). Tool calling and tool choice go to the completions endpoint; native structured
#: output (`response_format` with a JSON schema) to the async-streams API. Every API takes text
#: only. No context size or output limit is published for the service, so none is claimed here.
CAPABILITIES: Mapping[str, bool] = {
    "text_inputs": True,
    "text_outputs": True,
    "image_inputs": False,
    "image_url_inputs": False,
    "pdf_inputs": False,
    "audio_inputs": False,
    "video_inputs": False,
    "image_tool_message": False,
    "pdf_tool_message": False,
    "image_outputs": False,
    "audio_outputs": False,
    "video_outputs": False,
    "reasoning_output": False,
    "tool_calling": True,
    "tool_choice": True,
    "tool_call_streaming": True,
    "structured_output": True,
}

# Roughly how a byte-pair tokenizer splits text: a word is a token per about four letters, each
# punctuation mark or symbol a token of its own.
_PIECES = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_LETTERS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """An estimate of how many tokens `text` is, without a tokenizer.

    The service's tokenizer is not public, so this cannot be exact: each word counts one token
    per four letters (rounded up), each punctuation mark or symbol one, the rule of thumb for
    byte-pair tokenizers. It is meant for budgets (trimming a history, filling a context), not
    for billing; pass an exact counter to the adapter where that matters.
    """
    return sum(
        math.ceil(len(piece) / _LETTERS_PER_TOKEN) if piece[0].isalnum() or piece[0] == "_" else 1
        for piece in _PIECES.findall(text)
    )
