"""`ChatHaufeCopilot`: Haufe Copilot as a LangChain chat model."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, get_buffer_string
from langchain_core.messages.ai import UsageMetadata
from langchain_core.output_parsers import JsonOutputKeyToolsParser, JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils import from_env
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, Field

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient
from haufe_copilot.conversation.routing import (
    CAPABILITIES,
    TokenUsage,
    client_for_call,
    estimate_tokens,
    finish_reason,
    require_assistant,
    sampling_options,
    token_usage,
    tool_choice_for_api,
)
from haufe_copilot.conversation.turns import (
    AnswerDelta,
    AnswerResult,
    AssistantTurn,
    aanswer,
    answer,
    astream_answer,
    stream_answer,
)
from haufe_copilot.errors import InvalidRequestError, error_from_stream_object
from haufe_copilot.protocol.model_copy import copier
from haufe_copilot.protocol.settings import split_unknown_settings
from haufe_copilot.types.completions import ChatCompletionChunk
from haufe_copilot.types.streams import DeltaEvent, DoneEvent, ErrorEvent, StreamEvent, ToolCallEvent

from ._cache import answers_may_be_replayed
from ._client_fields import HaufeClientFields
from ._messages import PROVIDER, to_completion_messages, to_stream_messages, to_turns
from ._structured import json_schema_format, tool_call_event_chunk, tools_response_format

logger = logging.getLogger("langchain_haufe")

_PER_CALL = ("assistant_id", "user_id", "thread_id", "stateless")
# What the message-level framing of a chat adds per message, for the token estimate.
_TOKENS_PER_MESSAGE = 4


class ChatHaufeCopilot(HaufeClientFields, BaseChatModel):
    """Haufe Copilot chat model: cited answers from Haufe's assistant, threads as memory.

    Setup:
        Install `haufe-copilot[langchain]` and set `HAUFE_COPILOT_API_KEY` (and
        `HAUFE_COPILOT_ASSISTANT_ID`). For a local try-out, `haufe-copilot emulator` serves
        the API on http://127.0.0.1:8765 with the key `sk-emulator-dev`.

    Instantiate:
        ```python
        from langchain_haufe import ChatHaufeCopilot

        model = ChatHaufeCopilot(assistant_id="...", user_id="...")  # key from the environment
        ```

    Invoke:
        ```python
        answer = model.invoke("Welche Kündigungsfristen gelten während der Probezeit?")
        answer.content                        # the answer as plain text
        answer.response_metadata["sources"]   # the passages it cites
        ```

    Stream:
        ```python
        for chunk in model.stream("..."):
            print(chunk.content, end="")
        # the last chunk (chunk_position="last") carries the metadata and sources
        ```

    Async:
        `await model.ainvoke(...)`, `async for chunk in model.astream(...)`, `astream_events`.
        One model serves any number of event loops and tasks at once.

    Tool calling:
        `model.bind_tools([...], tool_choice=..., parallel_tool_calls=...)` talks to the
        OpenAI-compatible completions endpoint over SSE (Bearer auth): streamed
        `tool_call_chunks`, assembled `tool_calls`, `usage_metadata`, and `finish_reason`
        and `session_id` in `response_metadata`. That endpoint has no assistant, threads or
        sources: the whole history is sent each time, as OpenAI-compatible clients do.

    Structured output:
        `model.with_structured_output(Schema)` (function calling, the default) or
        `method="json_schema"` (the async-streams API's `response_format`); `include_raw=True`.

    Sources:
        `langchain_haufe.sources_to_documents(answer)` gives them as `Document`s;
        `answer.content_blocks` shows the text with them as standard `Citation` annotations
        (and with `output_version="v1"` those blocks are the content itself);
        `HaufeCopilotRetriever` returns them for a query.

    Threads:
        The model holds no conversation state. Each answer carries its `thread_id` and a
        digest of the conversation (docs/threads.md); passed back in a history, it lets the next call
        continue the server thread and send only the new messages. An edited history opens a
        new thread; a trimmed one (whole old exchanges dropped) keeps it. `stateless=True`
        always sends the whole history and no thread; `thread_id=` (field or call keyword)
        names a thread outright. LangGraph's `configurable.thread_id` is never sent.
        A server thread only ever holds one conversation: a history whose thread went on
        without it (one cached answer in two conversations, a regenerated turn) goes to a new
        thread with its whole history, and with a LangChain cache on, so does a thread this
        process has not seen (docs/threads.md, "One thread, one conversation").

    Response metadata:
        `thread_id`, `message_id`, `created_at`, `meta_data`, `sources`, `history_digest`,
        `parent_digest`, `system_digest`, `thread_action` (`continued`, `new`, `named`,
        `stateless`; with `thread_reason` when a thread could not be continued),
        `model_provider="haufe"`, `model_name`, `finish_reason`. On a stream, on the last
        chunk only.

    Usage and finish reasons:
        With tools (completions) and structured output (`json_schema`), the answer and the last
        streamed chunk carry `usage_metadata` as the server counted it, `model_name`, and
        `finish_reason` in LangChain's words (`stop`, `length`, `tool_calls`,
        `content_filter`) with the server's own word in `raw_finish_reason`; `generate` fills
        `llm_output` (`token_usage`, `model_name`, `model_provider`, `id`) as ChatOpenAI does.
        The assistant API reports no token usage: there `usage_metadata` is None (nothing is
        estimated) and `finish_reason` is `stop`.

    Token counting:
        `get_num_tokens`, `get_num_tokens_from_messages` and `trim_messages(token_counter=model)`
        work without extra packages. The service's tokenizer is not public, so they estimate
        (`haufe_copilot.conversation.routing.estimate_tokens`: a token per four letters of a word, one per
        punctuation mark, plus 4 per message). For exact counts pass
        `custom_get_token_ids=` (a callable from text to token ids), which every count then uses.

    Settings:
        A keyword that is no field (`temprature=0.2`) is moved into `model_kwargs` with a
        warning and sent in the request body on every path, as ChatOpenAI does; a field
        passed inside `model_kwargs` is an error. `timeout=` per call (`invoke(...,
        timeout=5)`) applies to each attempt of that call on every path (a timed-out attempt is
        retried as `max_retries` says, as openai-python does); `deadline=` per call (or the field)
        bounds each request of that call to the service as a whole, retries and a stream's reading
        included.
    """

    assistant_id: str | None = Field(default_factory=from_env("HAUFE_COPILOT_ASSISTANT_ID", default=None))
    """The assistant to ask; default `HAUFE_COPILOT_ASSISTANT_ID`. Per call: `assistant_id=`."""
    user_id: str | None = None
    """The user a conversation belongs to. Per call: `user_id=`."""
    thread_id: str | None = None
    """A server thread to continue outright (docs/threads.md, "named"). Per call: `thread_id=`."""
    stateless: bool = False
    """Send the whole history each time and never continue a thread."""
    model_name: str | None = Field(default=None, alias="model")
    """The platform model for tools and structured output; default the server's."""
    streaming: bool = False
    """`invoke` streams underneath and aggregates."""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Stop sequences; on the assistant path the client cuts the answer before the first."""
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra request-body fields sent on every path (a per-call `extra_body` wins)."""

    def __init__(self, **data: Any) -> None:
        fields = type(self).model_fields
        known = {*fields, *(field.alias for field in fields.values() if field.alias)}
        super().__init__(
            **split_unknown_settings(data, known, extra_field="model_kwargs", owner=type(self).__name__)
        )

    @property
    def _llm_type(self) -> str:
        return "haufe-copilot"

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {
            "api_key": "HAUFE_COPILOT_API_KEY",
            "platform_api_key": "HAUFE_COPILOT_PLATFORM_API_KEY",
            **self._header_secrets,
        }

    def _resolve_model_profile(self) -> ModelProfile | None:
        """What the model can do (`haufe_copilot.conversation.routing.CAPABILITIES`): tools, tool choice and
        native structured output, text in and out only. No context size is published for the
        service, so `max_input_tokens` / `max_output_tokens` are left out rather than guessed."""
        profile: ModelProfile = {**CAPABILITIES}  # type: ignore[typeddict-item]
        return profile

    # -- token counting (an estimate: the service's tokenizer is not public) -------------------

    def get_num_tokens(self, text: str) -> int:
        """Tokens in `text`: exact with `custom_get_token_ids`, else an estimate
        (`haufe_copilot.conversation.routing.estimate_tokens`; the service's tokenizer is not public)."""
        if self.custom_get_token_ids is not None:
            return len(self.custom_get_token_ids(text))
        return estimate_tokens(text)

    def get_num_tokens_from_messages(
        self,
        messages: list[BaseMessage],
        tools: Sequence[Any] | None = None,
    ) -> int:
        """Tokens of a history (and of bound tools' schemas), counted by `get_num_tokens`, plus
        a few per message for the chat framing. An estimate unless `custom_get_token_ids` is set."""
        total = sum(self.get_num_tokens(get_buffer_string([m])) + _TOKENS_PER_MESSAGE for m in messages)
        for tool in tools or ():
            total += self.get_num_tokens(str(convert_to_openai_tool(tool)))
        return total

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_haufe", "chat_models"]

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"assistant_id": self.assistant_id, "model_name": self.model_name, "base_url": self.base_url}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=PROVIDER,
            ls_model_name=kwargs.get("model")
            or self.model_name
            or kwargs.get("assistant_id")
            or self.assistant_id
            or "haufe-copilot",
            ls_model_type="chat",
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # -- the assistant path --------------------------------------------------------------------

    def _turn(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> AssistantTurn:
        assistant_id = require_assistant(kwargs.get("assistant_id"), self.assistant_id, type(self).__name__)
        ignored = sorted(sampling_options(kwargs, self))
        if ignored:
            logger.debug("the assistant API takes no sampling parameters; ignoring %s", ignored)
        return AssistantTurn(
            assistant_id=assistant_id,
            history=to_turns(messages),
            user_id=kwargs.get("user_id", self.user_id),
            stateless=bool(kwargs.get("stateless", self.stateless)),
            thread_id=kwargs.get("thread_id", self.thread_id),
            stop=stop if stop is not None else (self.stop or ()),
            extra_headers=kwargs.get("extra_headers"),
            extra_body=self._extra_body(kwargs),
            answers_may_be_replayed=answers_may_be_replayed(self),
        )

    def _extra_body(self, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
        """`model_kwargs` and the per-call `extra_body` (which wins), or None."""
        body = {**self.model_kwargs, **(kwargs.get("extra_body") or {})}
        return body or None

    def _sync_client(self, kwargs: Mapping[str, Any]) -> HaufeCopilotClient:
        return client_for_call(self.client, kwargs.get("timeout"), kwargs.get("deadline"))

    def _async_client(self, kwargs: Mapping[str, Any]) -> AsyncHaufeCopilotClient:
        return client_for_call(self.async_client, kwargs.get("timeout"), kwargs.get("deadline"))

    def _llm_output(self, result: ChatResult) -> ChatResult:
        """`llm_output` as ChatOpenAI fills it, from the answer's own metadata."""
        message = result.generations[0].message if result.generations else None
        if isinstance(message, AIMessage):
            usage = message.usage_metadata
            metadata = message.response_metadata
            result.llm_output = {
                "token_usage": TokenUsage(
                    usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]
                ).as_openai()
                if usage
                else None,
                "model_provider": PROVIDER,
                "model_name": metadata.get("model_name"),
                "id": message.id,
            }
        return result

    def _combine_llm_outputs(self, llm_outputs: list[dict[str, Any] | None]) -> dict[str, Any]:
        token_usage: dict[str, int] = {}
        for output in llm_outputs:
            for name, count in ((output or {}).get("token_usage") or {}).items():
                token_usage[name] = token_usage.get(name, 0) + count
        model_name = next((o["model_name"] for o in llm_outputs if o and o.get("model_name")), None)
        return {"token_usage": token_usage, "model_name": model_name or self._default_model_name({})}

    def _default_model_name(self, kwargs: Mapping[str, Any]) -> str:
        """The model an answer names when the server names none: the one asked for, else
        "haufe-copilot" (the server's default)."""
        return kwargs.get("model") or self.model_name or "haufe-copilot"

    def _metadata(self, result: AnswerResult, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **result.metadata,
            "finish_reason": "stop",
            "model_provider": PROVIDER,
            # The assistant answers with its own model; this names the one asked for, if any.
            "model_name": self._default_model_name(kwargs),
        }

    def _answer_message(self, result: AnswerResult, kwargs: Mapping[str, Any]) -> AIMessage:
        return AIMessage(
            content=result.text,
            id=result.metadata["message_id"],
            response_metadata=self._metadata(result, kwargs),
        )

    def _last_chunk(self, result: AnswerResult, kwargs: Mapping[str, Any]) -> ChatGenerationChunk:
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                id=result.metadata["message_id"],
                response_metadata=self._metadata(result, kwargs),
                chunk_position="last",
            )
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming or kwargs.get("tools") or kwargs.get("response_format"):
            return self._llm_output(generate_from_stream(self._stream(messages, stop, run_manager, **kwargs)))
        turn = self._turn(messages, stop, kwargs)
        message = self._answer_message(answer(self._sync_client(kwargs), turn), kwargs)
        return self._llm_output(ChatResult(generations=[ChatGeneration(message=message)]))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming or kwargs.get("tools") or kwargs.get("response_format"):
            return self._llm_output(
                await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))
            )
        turn = self._turn(messages, stop, kwargs)
        message = self._answer_message(await aanswer(self._async_client(kwargs), turn), kwargs)
        return self._llm_output(ChatResult(generations=[ChatGeneration(message=message)]))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # LangChain calls on_llm_new_token for every chunk before it reaches the caller.
        # Tools with a response_format (ProviderStrategy) go to the async-streams API, which
        # takes both; tools alone to the completions endpoint.
        if kwargs.get("tools") and not kwargs.get("response_format"):
            yield from self._stream_completion(messages, stop, kwargs)
            return
        if kwargs.get("response_format"):
            yield from self._stream_structured(messages, kwargs)
            return
        for item in stream_answer(self._sync_client(kwargs), self._turn(messages, stop, kwargs)):
            if isinstance(item, AnswerDelta):
                yield _text_chunk(item.text, item.message_id)
            else:
                yield self._last_chunk(item, kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if kwargs.get("tools") and not kwargs.get("response_format"):
            async for chunk in self._astream_completion(messages, stop, kwargs):
                yield chunk
            return
        if kwargs.get("response_format"):
            async for chunk in self._astream_structured(messages, kwargs):
                yield chunk
            return
        async for item in astream_answer(self._async_client(kwargs), self._turn(messages, stop, kwargs)):
            if isinstance(item, AnswerDelta):
                yield _text_chunk(item.text, item.message_id)
            else:
                yield self._last_chunk(item, kwargs)

    # -- the completions path (tools) ----------------------------------------------------------

    def _completion_request(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "messages": to_completion_messages(messages),
            "model": kwargs.get("model") or self.model_name,
            "tools": kwargs.get("tools"),
            "tool_choice": kwargs.get("tool_choice"),
            "stop": stop if stop is not None else self.stop,
            "session_id": kwargs.get("session_id"),
            "extra_headers": kwargs.get("extra_headers"),
            "extra_body": self._extra_body(kwargs),
            **sampling_options(kwargs, self),
        }
        return request

    def _completion_chunks(
        self, chunk: ChatCompletionChunk, state: _CompletionState
    ) -> ChatGenerationChunk | None:
        if chunk.usage is not None:
            state.usage = _usage_metadata(token_usage(chunk.usage))
        state.id = state.id or chunk.id
        state.model = chunk.model or state.model
        state.session_id = chunk.session_id or state.session_id
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        state.finish_reason = choice.finish_reason or state.finish_reason
        delta = choice.delta
        tool_call_chunks = []
        for call in delta.tool_calls or ():
            index = call.index if call.index is not None else 0
            if state.keep_only_first_call:
                state.first_index = index if state.first_index is None else state.first_index
                if index != state.first_index:
                    continue
            function = call.function
            tool_call_chunks.append(
                {
                    "name": function.name if function else None,
                    "args": function.arguments if function else None,
                    "id": call.id,
                    "index": index,
                    "type": "tool_call_chunk",
                }
            )
        if not tool_call_chunks:
            return _text_chunk(delta.content, chunk.id) if delta.content else None
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=delta.content or "", tool_call_chunks=tool_call_chunks, id=chunk.id
            )
        )

    def _completion_last(self, state: _CompletionState) -> ChatGenerationChunk:
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                id=state.id,
                usage_metadata=state.usage,
                response_metadata={
                    "finish_reason": finish_reason(state.finish_reason),
                    "raw_finish_reason": state.finish_reason,
                    "model_name": state.model or self._default_model_name(state.kwargs),
                    "session_id": state.session_id,
                    "model_provider": PROVIDER,
                },
                chunk_position="last",
            )
        )

    def _stream_completion(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> Iterator[ChatGenerationChunk]:
        state = _CompletionState(kwargs, keep_only_first_call=kwargs.get("parallel_tool_calls") is False)
        request = self._completion_request(messages, stop, kwargs)
        with self._sync_client(kwargs).completions.create(stream=True, **request) as chunks:
            for chunk in chunks:
                generation = self._completion_chunks(chunk, state)
                if generation is not None:
                    yield generation
        yield self._completion_last(state)

    async def _astream_completion(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> AsyncIterator[ChatGenerationChunk]:
        state = _CompletionState(kwargs, keep_only_first_call=kwargs.get("parallel_tool_calls") is False)
        request = self._completion_request(messages, stop, kwargs)
        async with await self._async_client(kwargs).completions.create(stream=True, **request) as chunks:
            async for chunk in chunks:
                generation = self._completion_chunks(chunk, state)
                if generation is not None:
                    yield generation
        yield self._completion_last(state)

    # -- structured output over the async-streams API (json_schema) ----------------------------

    def _stream_request(self, messages: Sequence[BaseMessage], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {
            "messages": to_stream_messages(messages),
            "response_format": kwargs["response_format"],
            "model": kwargs.get("model") or self.model_name,
            "extra_headers": kwargs.get("extra_headers"),
            "extra_body": self._extra_body(kwargs),
            **sampling_options(kwargs, self),
        }
        if kwargs.get("tools"):
            request.update(messages=to_completion_messages(messages), tools=kwargs["tools"])
            if kwargs.get("tool_choice") is not None:
                request["tool_choice"] = kwargs["tool_choice"]
        return request

    def _stream_event_chunk(
        self, event: StreamEvent, stream_id: str, partial: list[str], kwargs: Mapping[str, Any]
    ) -> ChatGenerationChunk | None:
        if isinstance(event, DeltaEvent):
            partial.append(event.content)
            return ChatGenerationChunk(message=AIMessageChunk(content=event.content, id=stream_id))
        if isinstance(event, ToolCallEvent):
            return ChatGenerationChunk(message=tool_call_event_chunk(event, stream_id))
        if isinstance(event, ErrorEvent):
            raise error_from_stream_object(
                {"error_code": event.error_code, "detail": event.detail}, partial="".join(partial)
            )
        if isinstance(event, DoneEvent):
            return ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    id=stream_id,
                    usage_metadata=_usage_metadata(token_usage(event.usage)),
                    response_metadata={
                        "finish_reason": finish_reason(event.status),
                        "raw_finish_reason": event.status,
                        "stream_id": stream_id,
                        "model_name": (event.model_extra or {}).get("model")
                        or self._default_model_name(kwargs),
                        "model_provider": PROVIDER,
                    },
                    chunk_position="last",
                )
            )
        return None

    def _stream_structured(
        self, messages: Sequence[BaseMessage], kwargs: Mapping[str, Any]
    ) -> Iterator[ChatGenerationChunk]:
        client = self._sync_client(kwargs)
        handle = client.streams.start(**self._stream_request(messages, kwargs))
        partial: list[str] = []
        with client.streams.events(handle.stream_id) as events:
            for event in events:
                chunk = self._stream_event_chunk(event, handle.stream_id, partial, kwargs)
                if chunk is not None:
                    yield chunk

    async def _astream_structured(
        self, messages: Sequence[BaseMessage], kwargs: Mapping[str, Any]
    ) -> AsyncIterator[ChatGenerationChunk]:
        client = self._async_client(kwargs)
        handle = await client.streams.start(**self._stream_request(messages, kwargs))
        partial: list[str] = []
        async with client.streams.events(handle.stream_id) as events:
            async for event in events:
                chunk = self._stream_event_chunk(event, handle.stream_id, partial, kwargs)
                if chunk is not None:
                    yield chunk

    # -- tools and structured output -----------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        parallel_tool_calls: bool | None = None,
        response_format: Any = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools: calls then go to the completions endpoint over SSE.

        `tool_choice`: a tool's name, "auto", "none", "required"/"any"/True (some tool), or an
        OpenAI-style dict. `parallel_tool_calls=False` keeps only the first call.
        `response_format` (a `json_schema` dict or a schema; LangChain's `ProviderStrategy`
        binds one): calls go to the async-streams API instead, which takes tools and
        `response_format` together: tool calls while the model needs tools, then the answer
        as JSON of the schema. `strict` sets the schema's `strict`; function tools take none.
        """
        if response_format is not None:
            if parallel_tool_calls is False:
                raise InvalidRequestError(
                    "parallel_tool_calls=False cannot be honoured together with response_format: "
                    "the async-streams API that takes both has no such flag. Leave out "
                    "parallel_tool_calls, or bind the tools without response_format (and use "
                    "with_structured_output for the final answer)."
                )
            kwargs["response_format"] = tools_response_format(response_format, strict)
        elif strict is not None:
            logger.debug("function tools of the completions endpoint take no strict flag; ignoring it")
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        names = [tool["function"]["name"] for tool in formatted]
        if tool_choice is not None and tool_choice is not False:
            kwargs["tool_choice"] = tool_choice_for_api(tool_choice, names)
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answers shaped by `schema` (a pydantic class, TypedDict, JSON schema or tool dict).

        `method="function_calling"` forces a tool call on the completions endpoint;
        `method="json_schema"` asks the async-streams API for `response_format` JSON;
        `method="json_mode"` does the same (with `schema=None`: any JSON object).
        `strict=True` asks for strict schema adherence where the API takes it (json_schema);
        function tools of the completions API have no strict flag, so there it changes nothing.
        """
        if kwargs:
            raise ValueError(f"with_structured_output() got unsupported arguments: {sorted(kwargs)}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        parser: Runnable[Any, Any]
        if method == "function_calling":
            if schema is None:
                raise ValueError("method='function_calling' needs a schema.")
            tool = convert_to_openai_tool(schema)
            name = tool["function"]["name"]
            llm = self.bind_tools(
                [schema],
                tool_choice=name,
                parallel_tool_calls=False,
                ls_structured_output_format={"kwargs": {"method": method}, "schema": tool},
            )
            if is_pydantic:
                parser = PydanticToolsParser(tools=[schema], first_tool_only=True)
            else:
                parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        elif method in ("json_schema", "json_mode"):
            # The API's response formats are text, json_schema and tool_call: JSON mode is a
            # json_schema answer, with the schema where one is given, else any object.
            response_format = json_schema_format(schema, strict)
            llm = self.bind(
                response_format=response_format,
                ls_structured_output_format={
                    "kwargs": {"method": method},
                    "schema": response_format["json_schema"]["schema"],
                },
            )
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
        else:
            raise ValueError(
                f"method must be 'function_calling', 'json_schema' or 'json_mode', not {method!r}."
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")


_MESSAGE_PROTOTYPE = AIMessageChunk(content="")
_GENERATION_PROTOTYPE = ChatGenerationChunk(message=_MESSAGE_PROTOTYPE)
_copy = copier(
    [
        (_MESSAGE_PROTOTYPE, {"content": "x", "id": "run-1", "tool_calls": [], "response_metadata": {}}),
        (_GENERATION_PROTOTYPE, {"message": _MESSAGE_PROTOTYPE, "text": "x"}),
    ]
)


def _text_chunk(text: str, message_id: str) -> ChatGenerationChunk:
    """A text delta as LangChain's chunk: a copy of a validated prototype with the text and id
    set (and fresh containers, so no two chunks share one); validating each delta again would
    cost more than everything else the adapter does for it."""
    message = _copy(
        _MESSAGE_PROTOTYPE,
        {
            "content": text,
            "id": message_id,
            "additional_kwargs": {},
            "response_metadata": {},
            "tool_calls": [],
            "invalid_tool_calls": [],
            "tool_call_chunks": [],
        },
    )
    return _copy(_GENERATION_PROTOTYPE, {"message": message, "text": text})


class _CompletionState:
    """What a completion stream says besides its deltas, gathered for the last chunk."""

    __slots__ = (
        "finish_reason",
        "first_index",
        "id",
        "keep_only_first_call",
        "kwargs",
        "model",
        "session_id",
        "usage",
    )

    def __init__(self, kwargs: Mapping[str, Any], *, keep_only_first_call: bool) -> None:
        self.kwargs = kwargs
        self.keep_only_first_call = keep_only_first_call
        self.first_index: int | None = None
        self.usage: UsageMetadata | None = None
        self.finish_reason: str | None = None
        self.id: str | None = None
        self.model: str | None = None
        self.session_id: str | None = None


def _usage_metadata(usage: TokenUsage | None) -> UsageMetadata | None:
    if usage is None:
        return None
    return UsageMetadata(
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, total_tokens=usage.total_tokens
    )
