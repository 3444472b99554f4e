"""Every structured-output entry point of LlamaIndex ends with its fields filled, by function
calling (the default) and by `json_schema`: sync, async, streaming and `as_structured_llm`,
against the emulator over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel

from haufe_emulator import EmulatorServer
from llama_index_haufe import HaufeCopilot
from tests.conftest import ASSISTANT_ID, SESSION_API_KEY


class Kuendigungsfrist(BaseModel):
    """Eine Kündigungsfrist nach dem BGB."""

    frist: str
    wochen: int


PROMPT = PromptTemplate("Welche Kündigungsfrist gilt in der Probezeit nach dem {gesetz}?")
QUESTION = [ChatMessage(role="user", content="Welche Kündigungsfrist gilt in der Probezeit?")]


async def _last(generator: Any) -> Any:
    last = None
    async for last in generator:  # noqa: B007 (the last one is the whole object)
        pass
    return last


def _stream_chat_raw(llm: HaufeCopilot) -> Any:
    *_, last = llm.as_structured_llm(Kuendigungsfrist).stream_chat(QUESTION)
    return last.raw


async def _astream_chat_raw(llm: HaufeCopilot) -> Any:
    return (await _last(await llm.as_structured_llm(Kuendigungsfrist).astream_chat(QUESTION))).raw


ENTRY_POINTS: dict[str, Callable[[HaufeCopilot], Any]] = {
    "structured_predict": lambda llm: llm.structured_predict(Kuendigungsfrist, PROMPT, gesetz="BGB"),
    "astructured_predict": lambda llm: asyncio.run(
        llm.astructured_predict(Kuendigungsfrist, PROMPT, gesetz="BGB")
    ),
    "stream_structured_predict": lambda llm: list(
        llm.stream_structured_predict(Kuendigungsfrist, PROMPT, gesetz="BGB")
    )[-1],
    "astream_structured_predict": lambda llm: asyncio.run(
        _last_of_astream(llm.astream_structured_predict(Kuendigungsfrist, PROMPT, gesetz="BGB"))
    ),
    "as_structured_llm.chat": lambda llm: llm.as_structured_llm(Kuendigungsfrist).chat(QUESTION).raw,
    "as_structured_llm.achat": lambda llm: (
        asyncio.run(llm.as_structured_llm(Kuendigungsfrist).achat(QUESTION)).raw
    ),
    "as_structured_llm.stream_chat": _stream_chat_raw,
    "as_structured_llm.astream_chat": lambda llm: asyncio.run(_astream_chat_raw(llm)),
}


async def _last_of_astream(started: Any) -> Any:
    return await _last(await started)


def structured_llm(emulator: EmulatorServer, method: str) -> HaufeCopilot:
    return HaufeCopilot(
        api_key=SESSION_API_KEY,
        base_url=emulator.url,
        assistant_id=ASSISTANT_ID,
        structured_output_method=method,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
@pytest.mark.parametrize("entry_point", list(ENTRY_POINTS))
def test_every_structured_entry_point_fills_every_field(
    emulator: EmulatorServer, entry_point: str, method: str
) -> None:
    llm = structured_llm(emulator, method)
    result = ENTRY_POINTS[entry_point](llm)
    assert isinstance(result, Kuendigungsfrist), result
    assert result.frist and isinstance(result.wochen, int)


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_values_the_question_leaves_open_come_from_the_cited_passages(
    emulator: EmulatorServer, method: str
) -> None:
    llm = structured_llm(emulator, method)
    result = llm.structured_predict(Kuendigungsfrist, PROMPT, gesetz="BGB")
    # § 622 Abs. 3 BGB: "mit einer Frist von zwei Wochen" (issue 17: it was wochen=0)
    assert result == Kuendigungsfrist(frist="zwei Wochen", wochen=2)


def test_a_streamed_tool_call_carries_additional_kwargs_tool_calls_as_the_openai_llm_does(
    emulator: EmulatorServer,
) -> None:
    llm = HaufeCopilot(api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID)
    from llama_index.core.tools import FunctionTool

    def get_weather(city: str) -> str:
        """Das aktuelle Wetter einer Stadt."""
        return f"In {city} ist es sonnig."

    responses = list(
        llm.stream_chat_with_tools(
            [FunctionTool.from_defaults(get_weather)], "Wetter in Köln? Nutze get_weather."
        )
    )
    partial = [r for r in responses if r.message.additional_kwargs.get("tool_calls")]
    assert len(partial) >= 2  # while the arguments stream, too
    (call,) = responses[-1].message.additional_kwargs["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather" and call["id"]
    assert call["function"]["arguments"] == '{"city": "Köln"}'
    selections = llm.get_tool_calls_from_response(responses[-1])
    assert [(s.tool_name, s.tool_kwargs) for s in selections] == [("get_weather", {"city": "Köln"})]
