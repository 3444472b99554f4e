"""One assistant turn for a whole history, against the emulator: threads, fallback, stop."""

from __future__ import annotations

from typing import Any

import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient, errors
from haufe_copilot.conversation.threads import Turn
from haufe_copilot.conversation.turns import (
    AnswerDelta,
    AnswerResult,
    AssistantTurn,
    aanswer,
    answer,
    astream_answer,
    stream_answer,
)
from haufe_emulator import EmulatorServer
from tests.conftest import ASSISTANT_ID, QUESTION

CHAT = "/agents/v1/chat/completions"
STREAM = "/agents/v1/chat/completions/stream"


def ask(client: HaufeCopilotClient, history: list[Turn], streaming: bool, **kwargs: Any) -> AnswerResult:
    turn = AssistantTurn(assistant_id=ASSISTANT_ID, history=history, **kwargs)
    if not streaming:
        return answer(client, turn)
    items = list(stream_answer(client, turn))
    *pieces, result = items
    assert isinstance(result, AnswerResult) and all(isinstance(p, AnswerDelta) for p in pieces)
    assert "".join(p.text for p in pieces) == result.text  # type: ignore[union-attr]
    assert {p.message_id for p in pieces} <= {result.metadata["message_id"]}  # type: ignore[union-attr]
    return result


def as_turn(result: AnswerResult) -> Turn:
    return Turn("assistant", result.text, result.metadata)


@pytest.mark.parametrize("streaming", [False, True])
def test_three_turns_send_only_the_new_message(
    client: HaufeCopilotClient, emulator: EmulatorServer, streaming: bool
) -> None:
    path = STREAM if streaming else CHAT
    history = [Turn("system", "Antworte knapp."), Turn("user", QUESTION)]
    first = ask(client, history, streaming)
    assert first.metadata["thread_action"] == "new" and first.metadata["sources"]
    assert emulator.state.bodies(path)[-1]["messages"] == [
        {"role": "system", "content": "Antworte knapp."},
        {"role": "user", "content": QUESTION},
    ]
    for question in ("Gilt das auch für Teilzeitkräfte?", "Und für Minijobber?"):
        history += [as_turn(first), Turn("user", question)]
        first = ask(client, history, streaming)
        assert first.metadata["thread_action"] == "continued"
        assert emulator.state.bodies(path)[-1]["messages"] == [{"role": "user", "content": question}]
        assert list(emulator.state.requests)[-1].query == {"thread_id": first.metadata["thread_id"]}
    assert set(first.metadata) >= {
        "thread_id",
        "message_id",
        "created_at",
        "meta_data",
        "sources",
        "history_digest",
        "parent_digest",
        "system_digest",
        "thread_action",
    }


def test_an_edited_history_opens_a_new_thread(client: HaufeCopilotClient) -> None:
    history = [Turn("user", QUESTION)]
    first = ask(client, history, False)
    history = [
        Turn("user", "Welche Kündigungsfrist gilt nach der Probezeit?"),
        as_turn(first),
        Turn("user", "Und für Teilzeitkräfte?"),
    ]
    second = ask(client, history, False)
    assert second.metadata["thread_action"] == "new"
    assert second.metadata["thread_reason"].startswith("history_mismatch")
    assert second.metadata["thread_id"] != first.metadata["thread_id"]


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("fault", ["internal_server_error", "resource_not_found", "api_timeout_error"])
def test_a_failed_continuation_opens_a_new_thread_once(
    client: HaufeCopilotClient, emulator: EmulatorServer, fault_id: str, fault: str, streaming: bool
) -> None:
    first = ask(client, [Turn("user", QUESTION)], False)
    history = [Turn("user", QUESTION), as_turn(first), Turn("user", "Gilt das auch für Teilzeitkräfte?")]
    headers = {"x-emulator-fault": fault, "x-emulator-fault-times": "1", "x-emulator-fault-id": fault_id}
    result = ask(client, history, streaming, extra_headers=headers)
    assert result.metadata["thread_action"] == "new"
    assert result.metadata["thread_reason"].startswith("thread_failed")
    assert result.metadata["thread_id"] != first.metadata["thread_id"]
    path = STREAM if streaming else CHAT
    assert len(emulator.state.bodies(path)[-1]["messages"]) == 3  # the whole history, on the new thread


def test_the_turn_flow_asks_for_each_request_and_falls_back_by_itself(
    client: HaufeCopilotClient,
) -> None:
    """The flow itself makes no call: it says what to send, is told what came back (a failure is
    thrown in), and opens the new thread once."""
    from haufe_copilot.conversation.turns import SendRequest, _turn_flow

    first = ask(client, [Turn("user", QUESTION)], False)
    history = [Turn("user", QUESTION), as_turn(first), Turn("user", "Und weiter?")]
    flow = _turn_flow(AssistantTurn(assistant_id=ASSISTANT_ID, history=history), streaming=False)
    continuation = next(flow)
    assert isinstance(continuation, SendRequest)
    assert continuation.request["thread_id"] == first.metadata["thread_id"]
    assert len(continuation.request["messages"]) == 1
    fallback = flow.throw(errors.NotFoundError("gone", status_code=404, error_code="thread_not_found"))
    assert isinstance(fallback, SendRequest)
    assert fallback.request["thread_id"] is None and len(fallback.request["messages"]) == 3
    result = flow.send(client.assistant.chat(**fallback.request))
    assert isinstance(result, AnswerResult)
    assert result.metadata["thread_action"] == "new"
    assert result.metadata["thread_reason"].startswith("thread_failed: NotFoundError")
    with pytest.raises(StopIteration):
        next(flow)


def test_a_failed_continuation_is_not_retried_twice(client: HaufeCopilotClient, fault_id: str) -> None:
    first = ask(client, [Turn("user", QUESTION)], False)
    history = [Turn("user", QUESTION), as_turn(first), Turn("user", "Und weiter?")]
    with pytest.raises(errors.InternalServerError):
        ask(
            client.with_options(max_retries=0),
            history,
            False,
            extra_headers={"x-emulator-fault": "internal_server_error", "x-emulator-fault-id": fault_id},
        )


@pytest.mark.parametrize("streaming", [False, True])
def test_stop_sequences_on_the_assistant_path(client: HaufeCopilotClient, streaming: bool) -> None:
    full = ask(client, [Turn("user", QUESTION)], False).text
    stop = "Probezeit"
    result = ask(client, [Turn("user", QUESTION)], streaming, stop=[stop])
    assert result.stopped and result.text == full[: full.index(stop)]


def test_bad_histories(client: HaufeCopilotClient) -> None:
    with pytest.raises(errors.InvalidRequestError, match="empty"):
        answer(client, AssistantTurn(assistant_id=ASSISTANT_ID, history=[]))
    with pytest.raises(errors.InvalidRequestError, match="assistant message"):
        answer(
            client,
            AssistantTurn(assistant_id=ASSISTANT_ID, history=[Turn("user", "a"), Turn("assistant", "b")]),
        )


async def test_async_turns(async_client: AsyncHaufeCopilotClient) -> None:
    history = [Turn("user", QUESTION)]
    first = await aanswer(async_client, AssistantTurn(assistant_id=ASSISTANT_ID, history=history))
    history += [Turn("assistant", first.text, first.metadata), Turn("user", "Und für Teilzeitkräfte?")]
    items = [
        item
        async for item in astream_answer(
            async_client, AssistantTurn(assistant_id=ASSISTANT_ID, history=history)
        )
    ]
    result = items[-1]
    assert isinstance(result, AnswerResult) and result.metadata["thread_action"] == "continued"
    assert result.metadata["thread_id"] == first.metadata["thread_id"]
