"""Structured output for `HaufeCopilot`: by tool calling (LlamaIndex's own way, the default) or,
with `structured_output_method="json_schema"`, through the async-streams API's
`response_format` (the core's routing sends a call with one there)."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Generator
from typing import Any, Literal

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.prompts import PromptTemplate
from llama_index.core.types import Model, PydanticProgramMode
from pydantic import BaseModel

__all__ = ["StructuredOutput", "json_schema_format"]


def json_schema_format(output_cls: type[BaseModel]) -> dict[str, Any]:
    """The async-streams API's `response_format` for a pydantic model."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", output_cls.__name__)[:64] or "output"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": output_cls.model_json_schema()}}


class StructuredOutput(FunctionCallingLLM):
    """The structured-output methods of `HaufeCopilot`."""

    structured_output_method: Literal["function_calling", "json_schema"] = Field(
        default="function_calling",
        description="How structured_predict asks: tool calling, or the async-streams API's response_format.",
    )

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
