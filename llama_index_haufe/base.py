"""`HaufeCopilot`: Haufe Copilot as a LlamaIndex `FunctionCallingLLM`.

The LLM's fields and its chat and completion methods; the client options are the core's
`ClientFields`, tools are `_function_calling`, structured output `_structured`. Where a call
goes and what it sends is decided by the core (`haufe_copilot.conversation.routing.plan_call`);
`_routes` runs the plan and `_responses` builds LlamaIndex's responses.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

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
from llama_index.core.bridge.pydantic import Field, field_validator
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback

from haufe_copilot.conversation.client_fields import ClientFields
from haufe_copilot.conversation.holder import LazyClients, share_by_reference
from haufe_copilot.conversation.pickling import connections_from_pickle, connections_to_pickle
from haufe_copilot.conversation.routing import (
    CALL_KEYWORDS,
    CAPABILITIES,
    CallDefaults,
    CallPlan,
    History,
    estimate_tokens,
    plan_call,
)
from haufe_copilot.errors import InvalidRequestError
from haufe_copilot.protocol.settings import split_unknown_settings

from ._function_calling import FunctionCalling, tool_spec
from ._messages import to_completion_messages, to_turns
from ._structured import StructuredOutput, json_schema_format

__all__ = ["DEFAULT_CONTEXT_WINDOW", "DEFAULT_NUM_OUTPUT", "HaufeCopilot", "json_schema_format"]

logger = logging.getLogger("llama_index_haufe")

#: A budget for LlamaIndex's prompt helpers and memories, not a limit the service announces.
DEFAULT_CONTEXT_WINDOW = 128_000
DEFAULT_NUM_OUTPUT = 4_096

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _chat_event(method: _Method) -> _Method:
    """`llm_chat_callback()`, keeping the method's signature for type checkers."""
    return cast(_Method, llm_chat_callback()(method))


def _completion_event(method: _Method) -> _Method:
    """`llm_completion_callback()`, keeping the method's signature for type checkers."""
    return cast(_Method, llm_completion_callback()(method))


def _checked_prompt(prompt: object) -> str:
    """A completion prompt must be text: LlamaIndex would turn another value into an empty message."""
    from haufe_copilot.protocol.assistant import check_question  # brings the wire types: at the first call

    if not isinstance(prompt, str):
        raise InvalidRequestError(
            f"The prompt must be a string, not {type(prompt).__name__}: pass the question as text."
        )
    check_question("user", prompt, where="The prompt")
    return prompt


class HaufeCopilot(ClientFields, FunctionCalling, StructuredOutput):
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

    context_window: int = Field(default=DEFAULT_CONTEXT_WINDOW, gt=0)
    num_output: int = Field(default=DEFAULT_NUM_OUTPUT, gt=0)

    # -- configuration ----------------------------------------------------------------------

    def __init__(self, **data: Any) -> None:
        # An unknown keyword is kept (and said), not dropped; the client options are checked by
        # `ClientFields`.
        fields = type(self).model_fields
        known = {*fields, *(field.alias for field in fields.values() if field.alias), "class_name"}
        super().__init__(
            **split_unknown_settings(data, known, extra_field="additional_kwargs", owner="HaufeCopilot")
        )

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

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

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> HaufeCopilot:
        clone: HaufeCopilot = super().__deepcopy__(share_by_reference(self, memo))
        return clone

    # -- one call, planned by the core --------------------------------------------------------

    def _plan(self, messages: Sequence[ChatMessage], kwargs: Mapping[str, Any], *, stream: bool) -> CallPlan:
        unknown = sorted(set(kwargs) - CALL_KEYWORDS)
        if unknown:
            logger.debug("HaufeCopilot ignores the keywords %s", unknown)
        call = dict(kwargs)
        if call.get("tools"):
            call["tools"] = [tool_spec(tool) for tool in call["tools"]]
        defaults = CallDefaults.of(
            self, owner="HaufeCopilot", model=self.model, extra_body=self.additional_kwargs
        )
        history = History(messages, to_turns, to_completion_messages)
        return plan_call(call, defaults, history, stream=stream, log=logger)

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

    # -- the work, undecorated: the core plans the call, `_routes` runs it ---------------------

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        from . import _routes  # the wire types load with the first call

        return _routes.chat(self.client, self._plan(messages, kwargs, stream=False))

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        from . import _routes

        return _routes.stream_chat(self.client, self._plan(messages, kwargs, stream=True))

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        from . import _routes

        return await _routes.achat(self.async_client, self._plan(messages, kwargs, stream=False))

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        from . import _routes

        return _routes.astream_chat(self.async_client, self._plan(messages, kwargs, stream=True))
