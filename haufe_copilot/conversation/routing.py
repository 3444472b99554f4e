"""Decisions both adapters make about a call, made once here.

- which endpoint a call goes to and what it sends there (`plan_call`): the assistant API,
  blocking or streamed; the completions endpoint with tools; the async-streams API with a
  `response_format` (and tools, if any);
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

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from haufe_copilot.errors import InvalidRequestError, MissingAssistantError
from haufe_copilot.protocol.settings import check_timeout

if TYPE_CHECKING:
    from haufe_copilot.conversation.threads import Turn
    from haufe_copilot.conversation.turns import AssistantTurn
    from haufe_copilot.types.completions import Usage

__all__ = [
    "CALL_KEYWORDS",
    "CAPABILITIES",
    "SAMPLING_PARAMETERS",
    "CallDefaults",
    "CallPlan",
    "History",
    "MissingAssistantError",
    "Route",
    "TokenUsage",
    "check_tools_with_response_format",
    "client_for_call",
    "estimate_tokens",
    "finish_reason",
    "plan_call",
    "require_assistant",
    "sampling_options",
    "token_usage",
    "tool_choice_for_api",
]

#: The platform APIs' sampling parameters (the assistant API takes none of them).
SAMPLING_PARAMETERS = ("temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty")


def sampling_options(call: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling parameters to send: each per-call value, else the field, where not None."""
    chosen = {}
    for name in SAMPLING_PARAMETERS:
        value = _given(call, name, fields.get(name))
        if value is not None:
            chosen[name] = value
    return chosen


def require_assistant(
    per_call: str | None, configured: str | None, owner: str, *, per_call_possible: bool = True
) -> str:
    """The assistant a call asks: the per-call one, else the configured one, else an error
    (`per_call_possible`: the owner also takes one per call, and the error says so)."""
    assistant_id = per_call or configured
    if not assistant_id:
        raise MissingAssistantError(
            f"No assistant: pass assistant_id=... to {owner}{' (or per call)' if per_call_possible else ''}, "
            "or set HAUFE_COPILOT_ASSISTANT_ID."
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
        from haufe_copilot.protocol.deadline import check_deadline  # brings httpx: at the first call

        changes["deadline"] = check_deadline(deadline, InvalidRequestError, "deadline (per call)")
    return client.with_options(**changes)


# -- which endpoint, with what ----------------------------------------------------------------

#: `answer`: the assistant API, one blocking answer; `answer_stream`: the same, streamed;
#: `completions`: the OpenAI-compatible completions endpoint, with tools; `async_stream`: the
#: async-streams API, with a `response_format` (and tools, if any).
Route = Literal["answer", "answer_stream", "completions", "async_stream"]

_THREAD_KEYWORDS = ("assistant_id", "user_id", "thread_id", "stateless")

#: The per-call keywords `plan_call` reads (an adapter may report the others as ignored).
CALL_KEYWORDS = frozenset(
    {
        *SAMPLING_PARAMETERS,
        *_THREAD_KEYWORDS,
        "model",
        "timeout",
        "deadline",
        "stop",
        "session_id",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "extra_body",
        "extra_headers",
    }
)

_NO_PARALLEL_FLAG = (
    "parallel_tool_calls=False cannot be honoured together with response_format: the async-streams "
    "API that takes both has no such flag. Leave out parallel_tool_calls, or bind the tools without "
    "response_format (and ask for the structured answer on its own)."
)


@dataclass(frozen=True)
class CallDefaults:
    """What a component sets for every call (its fields), framework-neutral."""

    owner: str
    assistant_id: str | None = None
    user_id: str | None = None
    thread_id: str | None = None
    stateless: bool = False
    model: str | None = None
    stop: Sequence[str] | None = None
    #: Extra request-body fields for every call (a per-call `extra_body` wins).
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    #: The sampling fields (`SAMPLING_PARAMETERS`), None where unset.
    sampling: Mapping[str, Any] = field(default_factory=dict)
    #: A cache may give one answer to several conversations (see `AssistantTurn`).
    answers_may_be_replayed: bool = False

    @classmethod
    def of(cls, component: object, **fields: Any) -> CallDefaults:
        """The defaults from a component's fields of the same names (`assistant_id`, `user_id`,
        `thread_id`, `stateless`, `stop` and the sampling parameters), with `fields` given
        outright (`owner`, and those an adapter names differently: `model`, `extra_body`)."""
        same_names = ("assistant_id", "user_id", "thread_id", "stateless", "stop")
        return cls(
            **{name: getattr(component, name) for name in same_names},
            sampling={name: getattr(component, name, None) for name in SAMPLING_PARAMETERS},
            **fields,
        )


_M = TypeVar("_M")


@dataclass(frozen=True)
class History(Generic[_M]):
    """A framework's messages with its two translations, of which a call builds only the one
    its route sends: the core's turns (assistant API) or the platform APIs' wire messages."""

    messages: Sequence[_M]
    to_turns: Callable[[Sequence[_M]], Sequence[Turn]]
    to_wire: Callable[[Sequence[_M]], list[dict[str, Any]]]

    def turns(self) -> Sequence[Turn]:
        return self.to_turns(self.messages)

    def wire_messages(self) -> list[dict[str, Any]]:
        return self.to_wire(self.messages)


@dataclass(frozen=True)
class CallPlan:
    """One call, decided: the route, and what goes to it."""

    route: Route
    #: The assistant turn (routes `answer`, `answer_stream`).
    turn: AssistantTurn | None = None
    #: The whole history in the platform APIs' shape (routes `completions`, `async_stream`).
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: Keywords for `completions.create` or `streams.start`, besides `messages`.
    options: dict[str, Any] = field(default_factory=dict)
    #: Stop sequences (the async-streams API takes none: an adapter applies them to its deltas).
    stop: tuple[str, ...] = ()
    #: `parallel_tool_calls=False`: keep only the first tool call of an answer.
    first_tool_call_only: bool = False
    timeout: object = None
    deadline: object = None

    def client(self, client: _C) -> _C:
        """The client for this call (a copy with the per-call `timeout=` / `deadline=`)."""
        return client_for_call(client, self.timeout, self.deadline)


def _given(call: Mapping[str, Any], name: str, default: Any) -> Any:
    """A per-call keyword, unless absent or None: then the component's field."""
    value = call.get(name)
    return default if value is None else value


def _stop_sequences(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


def _tool_names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str((tool.get("function") or {}).get("name")) for tool in tools]


def check_tools_with_response_format(parallel_tool_calls: object) -> None:
    """Tools with a `response_format` go to the async-streams API, which cannot keep only the
    first tool call: `parallel_tool_calls=False` with both is refused (at bind time, where a
    framework binds them)."""
    if parallel_tool_calls is False:
        raise InvalidRequestError(_NO_PARALLEL_FLAG)


def plan_call(
    call: Mapping[str, Any],
    defaults: CallDefaults,
    history: History[Any],
    *,
    stream: bool,
    log: logging.Logger,
) -> CallPlan:
    """Where one call goes and what it sends: the one decision both adapters make.

    `call` holds the per-call keywords (`CALL_KEYWORDS`; a None value counts as not given),
    with `tools` already as the completions API's tool definitions. A `response_format`
    goes to the async-streams API (with the tools, if any); tools alone to the completions
    endpoint; anything else to the assistant API (`stream`: a streamed answer). The platform
    APIs keep no threads and take the whole history; the assistant API takes no sampling
    parameters (what is ignored is logged at DEBUG on `log`).
    """
    timeout, deadline = call.get("timeout"), call.get("deadline")
    check_timeout(timeout, "timeout (per call)", InvalidRequestError)
    sampling = sampling_options(call, defaults.sampling)
    stop = _stop_sequences(_given(call, "stop", defaults.stop))
    extras = {
        "extra_body": {**defaults.extra_body, **(call.get("extra_body") or {})} or None,
        "extra_headers": call.get("extra_headers"),
    }
    tools = list(call.get("tools") or ())
    response_format = call.get("response_format")
    if not tools and response_format is None:
        return CallPlan(
            route="answer_stream" if stream else "answer",
            turn=_assistant_turn(call, defaults, history, stop, extras, sampling, log),
            stop=stop,
            timeout=timeout,
            deadline=deadline,
        )
    given = [name for name in _THREAD_KEYWORDS if call.get(name) is not None]
    if given:
        log.debug("the platform APIs keep no threads; ignoring %s", given)
    messages = history.wire_messages()
    if not messages:
        raise InvalidRequestError("The conversation is empty: pass at least one message.")
    options: dict[str, Any] = {"model": call.get("model") or defaults.model, **sampling}
    if tools:
        options.update(
            tools=tools, tool_choice=tool_choice_for_api(call.get("tool_choice"), _tool_names(tools))
        )
    if response_format is None:
        options.update(stop=list(stop) or None, session_id=call.get("session_id"))
        route: Route = "completions"
    else:
        if tools:
            check_tools_with_response_format(call.get("parallel_tool_calls"))
        options.update(response_format=response_format, stream=True)
        route = "async_stream"
    options.update(extras)
    return CallPlan(
        route=route,
        messages=messages,
        options={name: value for name, value in options.items() if value is not None},
        stop=stop,
        first_tool_call_only=call.get("parallel_tool_calls") is False,
        timeout=timeout,
        deadline=deadline,
    )


def _assistant_turn(
    call: Mapping[str, Any],
    defaults: CallDefaults,
    history: History[Any],
    stop: tuple[str, ...],
    extras: Mapping[str, Any],
    sampling: Mapping[str, Any],
    log: logging.Logger,
) -> AssistantTurn:
    from haufe_copilot.conversation.turns import AssistantTurn  # brings the wire types: at the first call

    assistant_id = require_assistant(call.get("assistant_id"), defaults.assistant_id, defaults.owner)
    if sampling:
        log.debug(
            "the assistant API takes no sampling parameters; ignoring %s (platform only)", sorted(sampling)
        )
    if call.get("session_id") is not None:
        log.debug("session_id is for the completions endpoint (with tools); ignoring it")
    return AssistantTurn(
        assistant_id=assistant_id,
        history=history.turns(),
        user_id=_given(call, "user_id", defaults.user_id),
        stateless=bool(_given(call, "stateless", defaults.stateless)),
        thread_id=_given(call, "thread_id", defaults.thread_id),
        stop=stop,
        extra_headers=extras["extra_headers"],
        extra_body=extras["extra_body"],
        answers_may_be_replayed=defaults.answers_may_be_replayed,
    )


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
