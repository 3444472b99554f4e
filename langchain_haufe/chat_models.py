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
from langchain_core.messages import AIMessage, BaseMessage, get_buffer_string
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils import from_env
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, Field

from haufe_copilot.conversation.routing import (
    CAPABILITIES,
    CallDefaults,
    CallPlan,
    History,
    TokenUsage,
    check_tools_with_response_format,
    estimate_tokens,
    plan_call,
    tool_choice_for_api,
)
from haufe_copilot.protocol.settings import split_unknown_settings

from ._cache import answers_may_be_replayed
from ._client_fields import HaufeClientFields
from ._messages import PROVIDER, to_completion_messages, to_turns
from ._structured import json_schema_format, tools_response_format

logger = logging.getLogger("langchain_haufe")

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

    # -- one call, planned by the core (haufe_copilot.conversation.routing) -------------------

    def _plan(
        self,
        messages: Sequence[BaseMessage],
        stop: list[str] | None,
        kwargs: Mapping[str, Any],
        *,
        stream: bool,
    ) -> CallPlan:
        defaults = CallDefaults.of(
            self,
            owner=type(self).__name__,
            model=self.model_name,
            extra_body=self.model_kwargs,
            answers_may_be_replayed=answers_may_be_replayed(self),
        )
        call = {**kwargs, "stop": stop} if stop is not None else kwargs
        history = History(messages, to_turns, to_completion_messages)
        return plan_call(call, defaults, history, stream=stream, log=logger)

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

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        from . import _answers  # the wire types load with the first call

        plan = self._plan(messages, stop, kwargs, stream=self.streaming)
        model_name = self._default_model_name(kwargs)
        if plan.route != "answer":
            return self._llm_output(generate_from_stream(_answers.chunks(self.client, plan, model_name)))
        message = _answers.answer_message(self.client, plan, model_name)
        return self._llm_output(ChatResult(generations=[ChatGeneration(message=message)]))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        from . import _answers

        plan = self._plan(messages, stop, kwargs, stream=self.streaming)
        model_name = self._default_model_name(kwargs)
        if plan.route != "answer":
            chunks = _answers.achunks(self.async_client, plan, model_name)
            return self._llm_output(await agenerate_from_stream(chunks))
        message = await _answers.aanswer_message(self.async_client, plan, model_name)
        return self._llm_output(ChatResult(generations=[ChatGeneration(message=message)]))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # LangChain calls on_llm_new_token for every chunk before it reaches the caller.
        from . import _answers

        plan = self._plan(messages, stop, kwargs, stream=True)
        yield from _answers.chunks(self.client, plan, self._default_model_name(kwargs))

    def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        # The adapter's async generator itself, not one more around it: when a loop ends with an
        # abandoned stream, asyncio closes every open async generator at once, and a wrapper
        # closing its inner one meets it already closing ("aclose(): ... already running").
        from . import _answers

        plan = self._plan(messages, stop, kwargs, stream=True)
        return _answers.achunks(self.async_client, plan, self._default_model_name(kwargs))

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
            check_tools_with_response_format(parallel_tool_calls)
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
        # Imported here: the parsers are needed only where structured output is asked for.
        from langchain_core.output_parsers import (
            JsonOutputKeyToolsParser,
            JsonOutputParser,
            PydanticOutputParser,
        )
        from langchain_core.output_parsers.openai_tools import PydanticToolsParser

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
