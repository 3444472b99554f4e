"""A LangChain cache never merges two conversations into one server thread.

With `set_llm_cache(...)` every conversation that opens with the same question gets the same
cached answer, thread id and digests included. These tests read the emulator's threads: each
holds the messages of one conversation only, whichever conversation continues first, and
whether the cache was filled in this process or in another one (a cache file shared the way
langchain-community's SQLiteCache shares one)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from haufe_emulator import EmulatorServer
from langchain_haufe import ChatHaufeCopilot
from tests._sqlite_cache import SQLiteFileCache
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY

CHAT = "/agents/v1/chat/completions"
ROLES = {"human": "user", "ai": "assistant", "system": "system"}


@pytest.fixture
def in_memory_cache() -> Iterator[InMemoryCache]:
    cache = InMemoryCache()
    set_llm_cache(cache)
    try:
        yield cache
    finally:
        set_llm_cache(None)


def held_by_thread(emulator: EmulatorServer, answer: BaseMessage) -> list[dict[str, str]]:
    thread = emulator.state.thread(answer.response_metadata["thread_id"])
    assert thread is not None
    return [{"role": m["role"], "content": m["content"]} for m in thread.messages]


def as_sent(history: list[BaseMessage]) -> list[dict[str, str]]:
    return [{"role": ROLES[m.type], "content": str(m.content)} for m in history]


def converse(model: ChatHaufeCopilot, history: list[BaseMessage], question: str) -> AIMessage:
    history.append(HumanMessage(question))
    answer = model.invoke(history)
    history.append(answer)
    return answer


@pytest.mark.parametrize("first_to_continue", ["anna", "ben"])
def test_two_conversations_with_one_cached_answer_keep_two_threads(
    model: ChatHaufeCopilot, emulator: EmulatorServer, in_memory_cache: InMemoryCache, first_to_continue: str
) -> None:
    anna: list[BaseMessage] = []
    ben: list[BaseMessage] = []
    converse(model, anna, QUESTION)
    requests_before = len(emulator.state.bodies(CHAT))
    converse(model, ben, QUESTION)
    # the cache's saving: Ben's first answer is Anna's, with no request
    assert len(emulator.state.bodies(CHAT)) == requests_before
    assert ben[1].response_metadata["thread_id"] == anna[1].response_metadata["thread_id"]

    order = [("anna", anna, "Gilt das auch für Teilzeitkräfte?"), ("ben", ben, "Und für Minijobber?")]
    if first_to_continue == "ben":
        order.reverse()
    (_, first, first_question), (_, second, second_question) = order
    continued = converse(model, first, first_question)
    forked = converse(model, second, second_question)

    assert continued.response_metadata["thread_action"] == "continued"
    assert forked.response_metadata["thread_action"] == "new"
    assert forked.response_metadata["thread_reason"].startswith("thread_taken")
    assert emulator.state.bodies(CHAT)[-1]["messages"] == as_sent(second[:-1])  # the whole history
    # each server thread holds exactly one conversation
    assert held_by_thread(emulator, continued) == as_sent(first)
    assert held_by_thread(emulator, forked) == as_sent(second)
    # and the next turns stay on their own threads
    third = converse(model, second, "Was gilt in der Elternzeit?")
    assert third.response_metadata["thread_action"] == "continued"
    assert held_by_thread(emulator, third) == as_sent(second)
    assert held_by_thread(emulator, continued) == as_sent(first)


_OTHER_WORKER = textwrap.dedent(
    """
    import os, sys
    from langchain_core.globals import set_llm_cache
    from tests._sqlite_cache import SQLiteFileCache
    from langchain_core.messages import HumanMessage
    from langchain_haufe import ChatHaufeCopilot

    set_llm_cache(SQLiteFileCache(sys.argv[1]))
    model = ChatHaufeCopilot(
        api_key=os.environ["TEST_KEY"],
        base_url=os.environ["TEST_URL"],
        assistant_id=os.environ["TEST_ASSISTANT"],
    )
    history = [HumanMessage(sys.argv[2])]
    history.append(model.invoke(history))
    history.append(HumanMessage(sys.argv[3]))
    print(model.invoke(history).response_metadata["thread_id"])
    """
)


def test_a_shared_sqlite_cache_filled_by_another_process_does_not_share_its_thread(
    model: ChatHaufeCopilot, emulator: EmulatorServer, tmp_path: Path
) -> None:
    database = tmp_path / "cache.db"
    environment = {
        **os.environ,
        "TEST_KEY": SESSION_API_KEY,
        "TEST_URL": emulator.url,
        "TEST_ASSISTANT": ASSISTANT_ID,
    }
    question, anna_follow_up = QUESTION + " (Worker)", "Gilt das auch für Teilzeitkräfte?"
    worker = subprocess.run(
        [sys.executable, "-c", _OTHER_WORKER, str(database), question, anna_follow_up],
        env=environment,
        cwd=Path(__file__).resolve().parents[2],  # `tests` importable
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    anna_thread = worker.stdout.strip().splitlines()[-1]

    set_llm_cache(SQLiteFileCache(str(database)))
    try:
        requests_before = len(emulator.state.bodies(CHAT))
        ben: list[BaseMessage] = []
        first = converse(model, ben, question)
        assert len(emulator.state.bodies(CHAT)) == requests_before  # from the other worker's cache
        assert first.response_metadata["thread_id"] == anna_thread
        follow_up = converse(model, ben, "Und für Minijobber?")
    finally:
        set_llm_cache(None)
    assert follow_up.response_metadata["thread_action"] == "new"
    assert follow_up.response_metadata["thread_reason"].startswith("unverified_thread")
    assert held_by_thread(emulator, follow_up) == as_sent(ben)
    anna_holds: Any = emulator.state.thread(anna_thread)
    assert [m["content"] for m in anna_holds.messages if m["role"] == "user"] == [question, anna_follow_up]


def test_without_a_cache_a_history_from_another_process_continues(
    model: ChatHaufeCopilot, emulator: EmulatorServer
) -> None:
    """What a cache forbids is still the rule without one (threads across restarts)."""
    from haufe_copilot.conversation.threads import THREAD_HEADS

    history: list[BaseMessage] = []
    converse(model, history, QUESTION)
    THREAD_HEADS.forget()  # as a new process would
    answer = converse(model, history, "Gilt das auch für Teilzeitkräfte?")
    assert answer.response_metadata["thread_action"] == "continued"


def test_a_regenerated_turn_goes_to_a_new_thread(model: ChatHaufeCopilot, emulator: EmulatorServer) -> None:
    history: list[BaseMessage] = []
    converse(model, history, QUESTION)
    history.append(HumanMessage("Gilt das auch für Teilzeitkräfte?"))
    first_try = model.invoke(history)
    regenerated = model.invoke(history)  # the same turn again: the thread already holds the first try
    assert first_try.response_metadata["thread_action"] == "continued"
    assert regenerated.response_metadata["thread_action"] == "new"
    assert regenerated.response_metadata["thread_reason"].startswith("thread_taken")
    assert held_by_thread(emulator, regenerated) == as_sent([*history, regenerated])


def test_one_history_sent_twice_at_once_takes_one_thread_once(
    model: ChatHaufeCopilot, emulator: EmulatorServer
) -> None:
    history: list[BaseMessage] = []
    converse(model, history, QUESTION)
    history.append(HumanMessage("Gilt das auch für Teilzeitkräfte?"))
    answers = model.batch([history, history])
    actions = sorted(a.response_metadata["thread_action"] for a in answers)
    assert actions == ["continued", "new"]
    for answer in answers:
        assert held_by_thread(emulator, answer) == as_sent([*history, answer])
