"""`HaufeCopilot`: Haufe Copilot as a LlamaIndex `FunctionCallingLLM`."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from contextlib import aclosing, closing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

import httpx
from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    field_serializer,
    field_validator,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.prompts import PromptTemplate
from llama_index.core.types import Model, PydanticProgramMode
from pydantic import BaseModel

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient
from haufe_copilot.conversation.holder import LazyClients, share_by_reference
from haufe_copilot.conversation.pickling import connections_from_pickle, connections_to_pickle
from haufe_copilot.conversation.routing import (
    CAPABILITIES,
    SAMPLING_PARAMETERS,
    client_for_call,
    estimate_tokens,
    require_assistant,
    sampling_options,
    tool_choice_for_api,
)
from haufe_copilot.conversation.turns import (
    AnswerDelta,
    AssistantTurn,
    aanswer,
    answer,
    astream_answer,
    stream_answer,
)
from haufe_copilot.errors import InvalidRequestError
from haufe_copilot.protocol.assistant import check_question
from haufe_copilot.protocol.settings import (
    check_proxy,
    check_timeout,
    guarded_headers,
    headers_for_display,
    headers_from_serialised,
    split_unknown_settings,
    timeout_from_json,
    timeout_to_json,
)

from ._messages import to_completion_messages, to_turns, tool_selections
from ._responses import (
    CompletionAssembler,
    EventAssembler,
    assistant_delta,
    assistant_final,
    completion_response,
)

__all__ = ["DEFAULT_CONTEXT_WINDOW", "DEFAULT_NUM_OUTPUT", "HaufeCopilot"]

logger = logging.getLogger("llama_index_haufe")

#: A budget for LlamaIndex's prompt helpers and memories, not a limit the service announces.
DEFAULT_CONTEXT_WINDOW = 128_000
DEFAULT_NUM_OUTPUT = 4_096

_THREAD_KEYWORDS = ("assistant_id", "user_id", "thread_id", "stateless")
_CALL_KEYWORDS = frozenset(
    {
        *SAMPLING_PARAMETERS,
        *_THREAD_KEYWORDS,
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

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _chat_event(method: _Method) -> _Method:
    """`llm_chat_callback()`, keeping the method's signature for type checkers."""
    return cast(_Method, llm_chat_callback()(method))


def _completion_event(method: _Method) -> _Method:
    """`llm_completion_callback()`, keeping the method's signature for type checkers."""
    return cast(_Method, llm_completion_callback()(method))


@dataclass
class _Request:
    """One call, decided: which API, and what to send it."""

    route: Literal["assistant", "completions", "streams"]
    turn: AssistantTurn | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    parallel_tool_calls: bool = True
    stop: tuple[str, ...] = ()
    #: A per-call `timeout=`, for each attempt of this call.
    timeout: Any = None
    #: A per-call `deadline=`, for each request of this call to the service.
    deadline: Any = None


def _stop_sequences(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    return tuple(stop)


def _tool_spec(tool: Any) -> dict[str, Any]:
    """A LlamaIndex tool (or an OpenAI-shaped dict) as the completions API's tool definition."""
    metadata = getattr(tool, "metadata", None)
    if metadata is not None and hasattr(metadata, "to_openai_tool"):
        spec: dict[str, Any] = metadata.to_openai_tool(skip_length_check=True)
        return spec
    if isinstance(tool, Mapping):
        return dict(tool)
    raise InvalidRequestError(f"tools must be LlamaIndex tools or OpenAI-style tool dicts, not {tool!r}.")


def _tool_names(specs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str((spec.get("function") or {}).get("name")) for spec in specs]


def json_schema_format(output_cls: type[BaseModel]) -> dict[str, Any]:
    """The async-streams API's `response_format` for a pydantic model."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", output_cls.__name__)[:64] or "output"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": output_cls.model_json_schema()}}


def _checked_prompt(prompt: object) -> str:
    """A completion prompt must be text: LlamaIndex would turn another value into an empty message."""
    if not isinstance(prompt, str):
        raise InvalidRequestError(
            f"The prompt must be a string, not {type(prompt).__name__}: pass the question as text."
        )
    check_question("user", prompt, where="The prompt")
    return prompt


class HaufeCopilot(FunctionCallingLLM):
    """Haufe Copilot as a LlamaIndex LLM: cited answers from Haufe's assistant for German
    employment, tax and legal questions, with the conversation kept on the server as a thread.

    Setup:
        Install `haufe-copilot[llama-index]` and set `HAUFE_COPILOT_API_KEY` and
        `HAUFE_COPILOT_ASSISTANT_ID` (and `HAUFE_COPILOT_BASE_URL` for another host). To try it
        without an account, `haufe-copilot emulator` serves the API on http://127.0.0.1:8765
        with the key `sk-emulator-dev`.

    Instantiate:
        ```python
        from llama_index.llms.haufe import HaufeCopilot  # or: from llama_index_haufe import ...

        llm = HaufeCopilot(assistant_id="...", user_id="...")  # the key from the environment
        ```
        Fields: `assistant_id`, `user_id`, `thread_id`, `stateless`, `model` (the platform
        model for tools and structured output; default the server's), the client settings
        (`api_key`, `base_url`, `platform_api_key`, `platform_base_url`, `token_provider`,
        `timeout`, `deadline`, `max_retries`, `default_headers`, `http_client`,
        `http_async_client`, `allow_insecure_http`), and `temperature`, `max_tokens`, `top_p`, `stop`,
        `presence_penalty`, `frequency_penalty`. The assistant API takes no sampling parameters:
        there they are ignored (logged at DEBUG), except `stop`, which the client applies (the
        answer ends before the first stop sequence, streamed too).

    Chat:
        ```python
        from llama_index.core.llms import ChatMessage

        question = "Welche Kündigungsfristen gelten während der Probezeit?"
        response = llm.chat([ChatMessage(role="user", content=question)])
        response.message.content                        # the answer
        response.message.additional_kwargs["sources"]   # the passages it cites
        llm.complete("...")                             # the same, as a completion
        ```
        Per call: `thread_id=`, `user_id=`, `assistant_id=`, `stop=` (and `stateless=`).

    Stream:
        ```python
        for response in llm.stream_chat(messages):
            print(response.delta, end="")  # response.message holds the answer so far
        # the final response (delta "") carries the metadata and sources
        ```
        Nothing is retried once the server answered 200 (see docs/reliability.md).

    Async:
        `await llm.achat(...)`, `async for r in await llm.astream_chat(...)`, `acomplete`,
        `astream_complete`: really asynchronous (httpx). One `HaufeCopilot` serves any number
        of users, tasks and event loops at once: it holds no conversation, and its client keeps
        one connection pool per event loop, closed when the loop ends.

    Tools:
        `chat_with_tools`, `predict_and_call`, `FunctionAgent`, `AgentWorkflow` work as with any
        function-calling LLM (`tool_choice`, `tool_required`, `allow_parallel_tool_calls`).
        With tools the LLM talks to the OpenAI-compatible completions endpoint over SSE (Bearer
        auth), which keeps no threads and cites no sources: the whole history is sent each time
        (tool calls as `tool_calls`, results as `role: tool`), with a `session_id` only when you
        pass one (`session_id=`). Tool calls stream as `ToolCallBlock`s whose arguments are what
        has arrived so far; answers carry `finish_reason`, `session_id`, `usage` and `model` in
        `message.additional_kwargs` and the token counts in `response.additional_kwargs`.

    Structured output:
        `llm.structured_predict(Model, PromptTemplate(...), **args)`, `as_structured_llm(Model)`
        and their streaming forms: by function calling through the completions endpoint (the
        default), or with `structured_output_method="json_schema"` through the async-streams
        API's `response_format` (also per call: `llm.chat(messages, response_format={...})`).

    Sources:
        `message.additional_kwargs["sources"]` (plain dicts: `content`, `meta_data`);
        `llama_index_haufe.sources_to_nodes(response)` gives them as `NodeWithScore`s.
        `HaufeCopilotRetriever`, `HaufeCopilotQueryEngine` and `HaufeCopilotChatEngine` return
        them as `source_nodes`; inside an agent, use `HaufeCopilotTool` (the query engine as a
        `QueryEngineTool`, its content citing the sections).

    Threads:
        The LLM keeps no conversation. Every answer carries `thread_id`, `message_id`,
        `created_at`, `meta_data`, `sources`, `history_digest`, `parent_digest`,
        `system_digest` and `thread_action` (`continued`, `new`, `named`, `stateless`; with
        `thread_reason` when a thread could not be continued) in `message.additional_kwargs`.
        Sent back in a history (a `Memory`, a `ChatMemoryBuffer`, an agent's context), they let
        the next call continue the server thread and send only the new messages, so memory
        becomes the server thread's memory and an agent that resends its whole history does not
        duplicate it on the server. A history edited inside (a message changed, inserted or
        removed) opens a new thread with the whole history; one that drops whole old exchanges
        keeps its thread. A server thread only ever holds one conversation: a history whose
        thread went on without it (a regenerated turn, a forked memory) goes to a new thread;
        across processes that cannot be seen, so use `stateless=True` (the whole history each
        time, no thread) where it matters.
        `thread_id=` names a server thread outright. A continuation that fails (5xx, timeout,
        the thread gone) is retried once on a new thread with the whole history.
    """

    assistant_id: str | None = Field(
        default_factory=lambda: os.environ.get("HAUFE_COPILOT_ASSISTANT_ID") or None,
        description="The assistant to ask; default HAUFE_COPILOT_ASSISTANT_ID. Per call: assistant_id=.",
    )
    user_id: str | None = Field(default=None, description="The user a conversation belongs to.")
    thread_id: str | None = Field(default=None, description="A server thread to continue outright.")
    stateless: bool = Field(default=False, description="Send the whole history each time, no thread.")
    model: str | None = Field(
        default=None, description="The platform model for tools and structured output; default the server's."
    )

    api_key: SecretStr | None = Field(
        default=None, exclude=True, description="The api-key; default HAUFE_COPILOT_API_KEY."
    )
    base_url: str | None = Field(
        default=None,
        description="The assistant API; default HAUFE_COPILOT_BASE_URL, else https://api.haufe.ai.",
    )
    platform_api_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        description="Bearer key of the platform APIs; default HAUFE_COPILOT_PLATFORM_API_KEY, else api_key.",
    )
    platform_base_url: str | None = Field(default=None, description="The platform APIs; default base_url.")
    token_provider: Callable[[], Any] | None = Field(
        default=None, exclude=True, description="A sync or async callable giving Bearer tokens."
    )
    timeout: float | httpx.Timeout | None = Field(
        default=None,
        description="Seconds, an httpx.Timeout or a dict of its arguments; default connect 5 s, read 60 s. "
        "Per call: timeout=.",
    )
    deadline: float | None = Field(
        default=None,
        gt=0,
        description="The most a call may take, in seconds (retries, streaming included). Per call: deadline=",
    )
    max_retries: int = Field(default=2, ge=0, description="Attempts after the first (docs/contract.md).")
    default_headers: dict[str, str] | None = Field(
        default=None,
        description="Headers sent with every request; credentials among them are redacted in repr and dumps.",
    )
    proxy: str | None = Field(
        default=None,
        description="A forward proxy URL; default the environment's (HTTPS_PROXY, HTTP_PROXY, ...).",
    )
    http_client: httpx.Client | None = Field(
        default=None,
        exclude=True,
        description="An httpx.Client you own (unpickled in the same process, the LLM gets it back).",
    )
    http_async_client: httpx.AsyncClient | None = Field(
        default=None, exclude=True, description="An httpx.AsyncClient you own (it belongs to one loop)."
    )
    allow_insecure_http: bool = Field(default=False, description="Allow plain http beyond loopback.")

    temperature: float | None = Field(default=None, description="Platform only.")
    max_tokens: int | None = Field(default=None, description="Platform only.")
    top_p: float | None = Field(default=None, description="Platform only.")
    stop: list[str] | None = Field(
        default=None, description="Stop sequences (applied by the client on the assistant path)."
    )
    presence_penalty: float | None = Field(default=None, description="Platform only.")
    frequency_penalty: float | None = Field(default=None, description="Platform only.")
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra request-body fields sent on every path (a per-call extra_body wins); "
        "an unknown constructor keyword lands here with a warning.",
    )
    tokenizer: Callable[[str], Sequence[Any]] | None = Field(
        default=None,
        exclude=True,
        description="An exact tokenizer (text to tokens) for count_tokens; default an estimate.",
    )

    structured_output_method: Literal["function_calling", "json_schema"] = Field(
        default="function_calling",
        description="How structured_predict asks: tool calling, or the async-streams API's response_format.",
    )
    context_window: int = Field(default=DEFAULT_CONTEXT_WINDOW, gt=0)
    num_output: int = Field(default=DEFAULT_NUM_OUTPUT, gt=0)

    _clients: LazyClients = PrivateAttr(default_factory=LazyClients)

    # -- configuration ----------------------------------------------------------------------

    def __init__(self, **data: Any) -> None:
        # Checked before pydantic sees them: a bad value is a ConfigurationError naming the
        # setting and its accepted forms; an unknown keyword is kept (and said), not dropped.
        if "timeout" in data:
            data["timeout"] = check_timeout(data["timeout"])
        if "proxy" in data:
            data["proxy"] = check_proxy(data["proxy"])
        fields = type(self).model_fields
        known = {*fields, *(field.alias for field in fields.values() if field.alias), "class_name"}
        super().__init__(
            **split_unknown_settings(data, known, extra_field="additional_kwargs", owner="HaufeCopilot")
        )

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout_from_dict(cls, value: Any) -> Any:
        return timeout_from_json(value)

    @field_validator("default_headers", mode="before")
    @classmethod
    def _headers_from_dump(cls, value: Any) -> Any:
        return headers_from_serialised(value, "HaufeCopilot") if isinstance(value, Mapping) else value

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_serializer("timeout")
    def _serialise_timeout(self, value: float | httpx.Timeout | None) -> Any:
        return timeout_to_json(value)

    @field_validator("default_headers", mode="after")
    @classmethod
    def _guard_credentials(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return guarded_headers(value)

    @field_serializer("default_headers")
    def _serialise_headers(self, value: dict[str, str] | None) -> dict[str, str] | None:
        return headers_for_display(value)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, headers_for_display(value) if name == "default_headers" else value

    @classmethod
    def class_name(cls) -> str:
        return "HaufeCopilot"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_tokens or self.num_output,
            is_chat_model=True,
            is_function_calling_model=CAPABILITIES["tool_calling"],
            model_name=self.model or "haufe-copilot",
            system_role=MessageRole.SYSTEM,
        )

    @property
    def client(self) -> HaufeCopilotClient:
        """The sync core client, built on first use (left out of pickles and copies)."""
        return self._clients.sync(self)

    @property
    def async_client(self) -> AsyncHaufeCopilotClient:
        """The async core client, built on first use; it serves every event loop."""
        return self._clients.async_(self)

    def count_tokens(self, text: str) -> int:
        """Tokens in `text`: exact with `tokenizer=`, else an estimate
        (`haufe_copilot.conversation.routing.estimate_tokens`; the service's tokenizer is not public)."""
        if self.tokenizer is not None:
            return len(self.tokenizer(text))
        return estimate_tokens(text)

    def tokenizer_fn(self, text: str) -> list[int]:
        """`count_tokens` in the shape LlamaIndex's `Settings.tokenizer` and memories take (a
        list as long as the count), so `ChatMemoryBuffer(token_limit=..., tokenizer_fn=llm.tokenizer_fn)`
        needs no tiktoken download."""
        return [0] * self.count_tokens(text)

    def close(self) -> None:
        """Close the sync client's connections (a later call opens new ones)."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close the async client's pool of the running event loop (other loops close theirs)."""
        await self._clients.aclose()

    # -- pickling and copying: the clients stay behind --------------------------------------

    def __getstate__(self) -> dict[Any, Any]:
        fields = connections_to_pickle(self.__dict__, "HaufeCopilot")
        tokenizer = fields.get("tokenizer")
        if (
            tokenizer is not None
            and connections_to_pickle({"token_provider": tokenizer}, "HaufeCopilot")["token_provider"] is None
        ):
            fields["tokenizer"] = None
        return {
            "__dict__": fields,
            "__pydantic_extra__": self.__pydantic_extra__,
            "__pydantic_fields_set__": set(self.__pydantic_fields_set__),
            "__pydantic_private__": {"_clients": LazyClients()},
        }

    def __setstate__(self, state: dict[Any, Any]) -> None:
        state = dict(state)
        state["__dict__"] = connections_from_pickle(dict(state["__dict__"]), "HaufeCopilot")
        super().__setstate__(state)

    def __copy__(self) -> HaufeCopilot:
        # `model_copy(update=...)` may change what the clients are built from: never share them.
        clone = super().__copy__()
        clone._clients = LazyClients()
        return clone

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> HaufeCopilot:
        clone: HaufeCopilot = super().__deepcopy__(share_by_reference(self, memo))
        return clone

    # -- one call, decided --------------------------------------------------------------------

    def _request(self, messages: Sequence[ChatMessage], kwargs: Mapping[str, Any]) -> _Request:
        check_timeout(kwargs.get("timeout"), "timeout (per call)", InvalidRequestError)
        unknown = sorted(set(kwargs) - _CALL_KEYWORDS)
        if unknown:
            logger.debug("HaufeCopilot ignores the keywords %s", unknown)
        sampling = sampling_options(kwargs, self)
        stop = _stop_sequences(kwargs["stop"] if kwargs.get("stop") is not None else self.stop)
        extras = {
            "extra_body": {**self.additional_kwargs, **(kwargs.get("extra_body") or {})} or None,
            "extra_headers": kwargs.get("extra_headers"),
        }
        tools = [_tool_spec(tool) for tool in kwargs.get("tools") or ()]
        response_format = kwargs.get("response_format")
        if tools and response_format is not None:
            raise InvalidRequestError(
                "Pass either tools (the completions endpoint) or response_format (the async-streams "
                "API), not both."
            )
        if tools or response_format is not None:
            given = [name for name in _THREAD_KEYWORDS if kwargs.get(name) is not None]
            if given:
                logger.debug("the platform APIs keep no threads; ignoring %s", given)
            messages_out = to_completion_messages(messages)
            if not messages_out:
                raise InvalidRequestError("The conversation is empty: pass at least one message.")
        if tools:
            options = {
                "model": self.model,
                **sampling,
                "stop": list(stop) or None,
                "tools": tools,
                "tool_choice": tool_choice_for_api(kwargs.get("tool_choice"), _tool_names(tools)),
                "session_id": kwargs.get("session_id"),
                **extras,
            }
            return _Request(
                route="completions",
                messages=messages_out,
                options={k: v for k, v in options.items() if v is not None},
                parallel_tool_calls=bool(kwargs.get("parallel_tool_calls", True)),
                timeout=kwargs.get("timeout"),
                deadline=kwargs.get("deadline"),
            )
        if response_format is not None:
            options = {
                "model": self.model,
                **sampling,
                "response_format": response_format,
                "stream": True,
                **extras,
            }
            return _Request(
                route="streams",
                messages=messages_out,
                options={k: v for k, v in options.items() if v is not None},
                stop=stop,
                timeout=kwargs.get("timeout"),
                deadline=kwargs.get("deadline"),
            )
        assistant_id = require_assistant(kwargs.get("assistant_id"), self.assistant_id, "HaufeCopilot")
        if sampling:
            logger.debug(
                "the assistant API takes no sampling parameters; ignoring %s (platform only)",
                sorted(sampling),
            )
        if kwargs.get("session_id") is not None:
            logger.debug("session_id is for the completions endpoint (with tools); ignoring it")
        turn = AssistantTurn(
            assistant_id=assistant_id,
            history=to_turns(messages),
            user_id=kwargs["user_id"] if kwargs.get("user_id") is not None else self.user_id,
            stateless=bool(kwargs["stateless"] if kwargs.get("stateless") is not None else self.stateless),
            thread_id=kwargs["thread_id"] if kwargs.get("thread_id") is not None else self.thread_id,
            stop=stop,
            extra_body=extras["extra_body"],
            extra_headers=extras["extra_headers"],
        )
        return _Request(
            route="assistant", turn=turn, timeout=kwargs.get("timeout"), deadline=kwargs.get("deadline")
        )

    # -- public methods: decorated once, over the undecorated ones below ---------------------

    @_chat_event
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Ask with a history; the answer with its sources and thread in additional_kwargs."""
        return self._chat(messages, **kwargs)

    @_chat_event
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream the answer; the final response (delta "") carries the metadata."""
        return self._stream_chat(messages, **kwargs)

    @_chat_event
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._achat(messages, **kwargs)

    @_chat_event
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        return await self._astream_chat(messages, **kwargs)

    @_completion_event
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """The prompt as one user message; the metadata in `additional_kwargs`."""
        return chat_to_completion_decorator(self._chat)(_checked_prompt(prompt), **kwargs)

    @_completion_event
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self._stream_chat)(_checked_prompt(prompt), **kwargs)

    @_completion_event
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return await achat_to_completion_decorator(self._achat)(_checked_prompt(prompt), **kwargs)

    @_completion_event
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self._astream_chat)(
            _checked_prompt(prompt), **kwargs
        )

    # -- the work, undecorated -----------------------------------------------------------------

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        request = self._request(messages, kwargs)
        if request.route == "assistant":
            assert request.turn is not None
            return assistant_final(answer(self._sync(request), request.turn), streamed=False)
        if request.route == "completions":
            # With tools the core streams underneath (tool calls come only over SSE).
            completion = self._sync(request).completions.create(messages=request.messages, **request.options)
            return completion_response(completion, parallel_tool_calls=request.parallel_tool_calls)
        final: ChatResponse | None = None
        for response in self._stream_events(request):
            final = response  # each holds the whole answer so far: keep only the last
        assert final is not None
        return final.model_copy(update={"delta": None})

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        request = self._request(messages, kwargs)
        if request.route == "assistant":
            assert request.turn is not None
            return self._stream_assistant(request)
        if request.route == "completions":
            return self._stream_completion(request)
        return self._stream_events(request)

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        request = self._request(messages, kwargs)
        if request.route == "assistant":
            assert request.turn is not None
            return assistant_final(await aanswer(self._async(request), request.turn), streamed=False)
        if request.route == "completions":
            completion = await self._async(request).completions.create(
                messages=request.messages, **request.options
            )
            return completion_response(completion, parallel_tool_calls=request.parallel_tool_calls)
        final: ChatResponse | None = None
        async for response in self._astream_events(request):
            final = response
        assert final is not None
        return final.model_copy(update={"delta": None})

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        request = self._request(messages, kwargs)
        if request.route == "assistant":
            assert request.turn is not None
            return self._astream_assistant(request)
        if request.route == "completions":
            return self._astream_completion(request)
        return self._astream_events(request)

    # the assistant API (threads, sources)

    def _sync(self, request: _Request) -> HaufeCopilotClient:
        return client_for_call(self.client, request.timeout, request.deadline)

    def _async(self, request: _Request) -> AsyncHaufeCopilotClient:
        return client_for_call(self.async_client, request.timeout, request.deadline)

    def _stream_assistant(self, request: _Request) -> Generator[ChatResponse, None, None]:
        text = ""
        assert request.turn is not None
        with closing(stream_answer(self._sync(request), request.turn)) as pieces:
            for piece in pieces:
                if isinstance(piece, AnswerDelta):
                    text += piece.text
                    yield assistant_delta(text, piece)
                else:
                    yield assistant_final(piece, streamed=True)

    async def _astream_assistant(self, request: _Request) -> AsyncGenerator[ChatResponse, None]:
        text = ""
        assert request.turn is not None
        async with aclosing(astream_answer(self._async(request), request.turn)) as pieces:
            async for piece in pieces:
                if isinstance(piece, AnswerDelta):
                    text += piece.text
                    yield assistant_delta(text, piece)
                else:
                    yield assistant_final(piece, streamed=True)

    # the completions endpoint (tools)

    def _stream_completion(self, request: _Request) -> Generator[ChatResponse, None, None]:
        assembler = CompletionAssembler(parallel_tool_calls=request.parallel_tool_calls)
        with self._sync(request).completions.create(
            messages=request.messages, stream=True, **request.options
        ) as chunks:
            for chunk in chunks:
                response = assembler.feed(chunk)
                if response is not None:
                    yield response
        yield assembler.final()

    async def _astream_completion(self, request: _Request) -> AsyncGenerator[ChatResponse, None]:
        assembler = CompletionAssembler(parallel_tool_calls=request.parallel_tool_calls)
        chunks = await self._async(request).completions.create(
            messages=request.messages, stream=True, **request.options
        )
        async with chunks:
            async for chunk in chunks:
                response = assembler.feed(chunk)
                if response is not None:
                    yield response
        yield assembler.final()

    # the async-streams API (response_format)

    def _stream_events(self, request: _Request) -> Generator[ChatResponse, None, None]:
        client = self._sync(request)
        handle = client.streams.start(messages=request.messages, **request.options)
        assembler = EventAssembler(handle.stream_id, request.stop, model=self.model or "haufe-copilot")
        with client.streams.events(handle.stream_id) as events:
            for event in events:
                response = assembler.feed(event)
                if response is not None:
                    yield response
                if assembler.finished:
                    break
        yield from assembler.finish()

    async def _astream_events(self, request: _Request) -> AsyncGenerator[ChatResponse, None]:
        client = self._async(request)
        handle = await client.streams.start(messages=request.messages, **request.options)
        assembler = EventAssembler(handle.stream_id, request.stop, model=self.model or "haufe-copilot")
        async with client.streams.events(handle.stream_id) as events:
            async for event in events:
                response = assembler.feed(event)
                if response is not None:
                    yield response
                if assembler.finished:
                    break
        for response in assembler.finish():
            yield response

    # -- tools ----------------------------------------------------------------------------------

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
        specs = [_tool_spec(tool) for tool in tools]
        if specs:
            prepared.update(
                tools=specs,
                tool_choice=tool_choice_for_api(tool_choice, _tool_names(specs), tool_required=tool_required),
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

    # -- structured output ------------------------------------------------------------------

    def _uses_json_schema(self) -> bool:
        return (
            self.structured_output_method == "json_schema"
            and self.pydantic_program_mode == PydanticProgramMode.DEFAULT
        )

    def _json_schema_call(
        self,
        output_cls: type[BaseModel],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None,
        **prompt_args: Any,
    ) -> tuple[list[ChatMessage], dict[str, Any]]:
        messages = self._extend_messages(prompt.format_messages(**prompt_args))
        kwargs = {k: v for k, v in (llm_kwargs or {}).items() if k not in ("tool_choice", "tool_required")}
        kwargs["response_format"] = json_schema_format(output_cls)
        return messages, kwargs

    def structured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """A pydantic object: by tool calling, or (`structured_output_method="json_schema"`)
        through the async-streams API's `response_format`."""
        if not self._uses_json_schema():
            predicted: Model = super().structured_predict(
                output_cls, prompt, llm_kwargs=llm_kwargs, **prompt_args
            )
            return predicted
        messages, kwargs = self._json_schema_call(output_cls, prompt, llm_kwargs, **prompt_args)
        response = self.chat(messages, **kwargs)
        result: Model = output_cls.model_validate_json(response.message.content or "")
        return result

    async def astructured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        if not self._uses_json_schema():
            predicted: Model = await super().astructured_predict(
                output_cls, prompt, llm_kwargs=llm_kwargs, **prompt_args
            )
            return predicted
        messages, kwargs = self._json_schema_call(output_cls, prompt, llm_kwargs, **prompt_args)
        response = await self.achat(messages, **kwargs)
        result: Model = output_cls.model_validate_json(response.message.content or "")
        return result

    def _structured_stream_call(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[Any, None, None]:
        if not self._uses_json_schema():
            return super()._structured_stream_call(output_cls, prompt, llm_kwargs, **prompt_args)
        from llama_index.core.program.streaming_utils import process_streaming_content_incremental

        messages, kwargs = self._json_schema_call(output_cls, prompt, llm_kwargs, **prompt_args)

        def gen() -> Generator[Any, None, None]:
            current: Any = None
            for response in self.stream_chat(messages, **kwargs):
                current = process_streaming_content_incremental(response, output_cls, current)
                yield current

        return gen()

    async def _structured_astream_call(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[Any, None]:
        if not self._uses_json_schema():
            return await super()._structured_astream_call(output_cls, prompt, llm_kwargs, **prompt_args)
        from llama_index.core.program.streaming_utils import process_streaming_content_incremental

        messages, kwargs = self._json_schema_call(output_cls, prompt, llm_kwargs, **prompt_args)

        async def gen() -> AsyncGenerator[Any, None]:
            current: Any = None
            async for response in await self.astream_chat(messages, **kwargs):
                current = process_streaming_content_incremental(response, output_cls, current)
                yield current

        return gen()
