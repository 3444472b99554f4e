"""Instrumentation: the public methods are decorated once over undecorated private ones, so every
call fires exactly one start and one end event (and one in-progress event per streamed response),
through the dispatcher and through the legacy callback manager alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.tools import FunctionTool

from haufe_emulator import EmulatorServer
from llama_index_haufe import HaufeCopilot
from tests.conftest import QUESTION

from .test_llama_index_support import make_llm, recording, user


def get_weather(city: str) -> str:
    """Das aktuelle Wetter einer Stadt."""
    return f"Sonnig in {city}"


WEATHER = FunctionTool.from_defaults(get_weather)


@pytest.fixture
def llm(emulator: EmulatorServer) -> HaufeCopilot:
    return make_llm(emulator)


def _chat(llm: HaufeCopilot) -> int:
    llm.chat([user(QUESTION)])
    return 0


def _stream_chat(llm: HaufeCopilot) -> int:
    return len(list(llm.stream_chat([user(QUESTION)])))


def _achat(llm: HaufeCopilot) -> int:
    asyncio.run(llm.achat([user(QUESTION)]))
    return 0


def _astream_chat(llm: HaufeCopilot) -> int:
    async def run() -> int:
        return len([r async for r in await llm.astream_chat([user(QUESTION)])])

    return asyncio.run(run())


def _chat_with_tools(llm: HaufeCopilot) -> int:
    llm.chat_with_tools([WEATHER], user_msg="get_weather für Berlin")
    return 0


def _stream_chat_with_tools(llm: HaufeCopilot) -> int:
    return len(list(llm.stream_chat_with_tools([WEATHER], user_msg="get_weather für Berlin")))


def _complete(llm: HaufeCopilot) -> int:
    llm.complete(QUESTION)
    return 0


def _stream_complete(llm: HaufeCopilot) -> int:
    return len(list(llm.stream_complete(QUESTION)))


def _acomplete(llm: HaufeCopilot) -> int:
    asyncio.run(llm.acomplete(QUESTION))
    return 0


def _astream_complete(llm: HaufeCopilot) -> int:
    async def run() -> int:
        return len([r async for r in await llm.astream_complete(QUESTION)])

    return asyncio.run(run())


CHAT_CALLS: list[Callable[[HaufeCopilot], int]] = [
    _chat,
    _stream_chat,
    _achat,
    _astream_chat,
    _chat_with_tools,
    _stream_chat_with_tools,
]
COMPLETE_CALLS: list[Callable[[HaufeCopilot], int]] = [
    _complete,
    _stream_complete,
    _acomplete,
    _astream_complete,
]


@pytest.mark.parametrize("call", CHAT_CALLS, ids=lambda f: f.__name__.strip("_"))
def test_each_chat_call_fires_one_start_and_one_end(
    llm: HaufeCopilot, call: Callable[[HaufeCopilot], Any]
) -> None:
    with recording() as recorder:
        streamed = call(llm)
    assert recorder.count(LLMChatStartEvent) == 1
    assert recorder.count(LLMChatEndEvent) == 1
    assert recorder.count(LLMChatInProgressEvent) == streamed  # one per streamed response
    assert recorder.count(LLMCompletionStartEvent) == 0
    (end,) = recorder.of(LLMChatEndEvent)
    assert end.response is not None and end.response.message.additional_kwargs
    if streamed:
        assert streamed > 2
        responses = [e.response for e in recorder.of(LLMChatInProgressEvent)]
        assert responses[-1].delta == ""  # the final response
        if call is _stream_chat_with_tools:  # each tool-call fragment once
            assert all(r.message.blocks for r in responses)
        else:  # each text delta once
            assert all(r.delta for r in responses[:-1])


@pytest.mark.parametrize("call", COMPLETE_CALLS, ids=lambda f: f.__name__.strip("_"))
def test_each_complete_call_fires_one_start_and_one_end(
    llm: HaufeCopilot, call: Callable[[HaufeCopilot], Any]
) -> None:
    with recording() as recorder:
        streamed = call(llm)
    assert recorder.count(LLMCompletionStartEvent) == 1
    assert recorder.count(LLMCompletionEndEvent) == 1
    assert recorder.count(LLMCompletionInProgressEvent) == streamed
    assert recorder.count(LLMChatStartEvent) == 0 and recorder.count(LLMChatEndEvent) == 0
    (end,) = recorder.of(LLMCompletionEndEvent)
    assert end.response.additional_kwargs["sources"]


def test_the_callback_manager_sees_one_llm_event_per_call(emulator: EmulatorServer) -> None:
    debug = LlamaDebugHandler()
    llm = make_llm(emulator, callback_manager=CallbackManager([debug]))
    llm.chat([user(QUESTION)])
    list(llm.stream_chat([user(QUESTION)]))
    llm.complete(QUESTION)
    assert len(debug.get_event_pairs(CBEventType.LLM)) == 3


def test_a_start_event_holds_no_secret(llm: HaufeCopilot) -> None:
    with recording() as recorder:
        llm.chat([user(QUESTION)])
    (start,) = recorder.of(LLMChatStartEvent)
    assert start.model_dict["class_name"] == "HaufeCopilot"
    assert start.model_dict["is_function_calling_model"] is True
    assert "api_key" not in start.model_dict
