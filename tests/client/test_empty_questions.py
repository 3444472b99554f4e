"""An empty or blank question is refused with a typed error before anything is sent: in the core
client (both APIs), in the LangChain adapter and in the LlamaIndex adapter. A non-string prompt
to `llm.complete()` is refused too, naming its type. Each test asserts that the emulator, which
records every request it receives, saw none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient
from haufe_copilot.errors import EmptyMessageError, InvalidRequestError
from haufe_emulator import EmulatorServer
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY, user

BLANKS = ["", "   ", "\n\t "]


@contextmanager
def nothing_sent(emulator: EmulatorServer) -> Iterator[None]:
    before = len(emulator.state.requests)
    yield
    assert len(emulator.state.requests) == before, "a request reached the emulator"


def test_the_error_names_the_service_code() -> None:
    assert issubclass(EmptyMessageError, InvalidRequestError)
    assert EmptyMessageError.error_code == "message_content_empty"


@pytest.mark.parametrize("blank", BLANKS)
def test_core_assistant_refuses_a_blank_question(
    client: HaufeCopilotClient, emulator: EmulatorServer, blank: str
) -> None:
    with nothing_sent(emulator):
        with pytest.raises(EmptyMessageError, match=r"messages\[0\].*empty or only whitespace"):
            client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(blank))
        with pytest.raises(EmptyMessageError):
            list(client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user(blank)))
        # a blank follow-up in a thread would be stored as a turn: refused just the same
        with pytest.raises(EmptyMessageError, match=r"messages\[1\]"):
            client.assistant.chat(
                assistant_id=ASSISTANT_ID,
                messages=[*user(QUESTION), {"role": "user", "content": blank}],
                thread_id="1a2b3c4d-5678-9abc-def0-112233445566",
            )


def test_core_platform_apis_refuse_a_blank_question(
    client: HaufeCopilotClient, emulator: EmulatorServer
) -> None:
    with nothing_sent(emulator):
        with pytest.raises(EmptyMessageError):
            client.completions.create(messages=user(" "))
        with pytest.raises(EmptyMessageError):
            client.streams.start(messages=user(""))


async def test_async_core_refuses_a_blank_question(emulator: EmulatorServer) -> None:
    async with AsyncHaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url) as client:
        with nothing_sent(emulator):
            with pytest.raises(EmptyMessageError):
                await client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(""))
            with pytest.raises(EmptyMessageError):
                await client.completions.create(messages=user("  "))


def test_an_assistant_message_may_be_empty(client: HaufeCopilotClient) -> None:
    """Only questions are checked: an empty assistant turn (e.g. beside tool calls) is history."""
    answer = client.assistant.chat(
        assistant_id=ASSISTANT_ID,
        messages=[*user("Hallo"), {"role": "assistant", "content": ""}, *user(QUESTION)],
    )
    assert answer.content


def _langchain_calls(model: Any) -> list[Callable[[], Any]]:
    from langchain_core.messages import HumanMessage

    return [
        lambda: model.invoke(""),
        lambda: model.invoke("   "),
        lambda: model.invoke([HumanMessage("\n")]),
        lambda: list(model.stream("")),
        lambda: asyncio.run(model.ainvoke(" ")),
    ]


def test_langchain_refuses_a_blank_question(emulator: EmulatorServer) -> None:
    pytest.importorskip("langchain_core")
    from langchain_haufe import ChatHaufeCopilot

    model = ChatHaufeCopilot(api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID)
    tooled = model.bind_tools(
        [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    )
    for call in [*_langchain_calls(model), *_langchain_calls(tooled)]:
        with nothing_sent(emulator), pytest.raises(EmptyMessageError):
            call()


def test_llama_index_refuses_a_blank_question_and_a_non_string_prompt(emulator: EmulatorServer) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.llms import ChatMessage

    from llama_index_haufe import HaufeCopilot

    llm = HaufeCopilot(api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID)
    blank_calls: list[Callable[[], Any]] = [
        lambda: llm.complete(""),
        lambda: llm.complete("  "),
        lambda: list(llm.stream_complete("")),
        lambda: asyncio.run(llm.acomplete(" ")),
        lambda: llm.chat([ChatMessage(role="user", content="")]),
        lambda: list(llm.stream_chat([ChatMessage(role="user", content=" \n")])),
        lambda: asyncio.run(llm.achat([ChatMessage(role="user", content="")])),
    ]
    for call in blank_calls:
        with nothing_sent(emulator), pytest.raises(EmptyMessageError):
            call()
    for prompt in (42, None, ["Frage"]):
        with nothing_sent(emulator), pytest.raises(InvalidRequestError, match=type(prompt).__name__):
            llm.complete(prompt)  # type: ignore[arg-type]
    with nothing_sent(emulator), pytest.raises(InvalidRequestError, match="int"):
        asyncio.run(llm.acomplete(42))  # type: ignore[arg-type]
