"""The thread decision of SPEC §4, pure: digests, continuation, edits, trims."""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest

from haufe_copilot.conversation.threads import (
    ThreadPlan,
    Turn,
    answer_thread_metadata,
    canonical,
    history_digest,
    normalise_role,
    plan_thread,
    system_digest,
)

_ids = itertools.count(1)


def answer(plan: ThreadPlan, text: str) -> Turn:
    """What the adapter appends to the history: the answer with its thread metadata."""
    thread_id = plan.thread_id or f"thread-{next(_ids)}"
    return Turn(
        "assistant",
        text,
        {"thread_id": thread_id, "message_id": f"m-{next(_ids)}", **answer_thread_metadata(plan, text)},
    )


def converse(history: list[Turn], *texts: str) -> list[Turn]:
    """Ask each text in turn, appending the answers as a memory would."""
    for text in texts:
        history = [*history, Turn("user", text)]
        plan = plan_thread(history)
        history = [*history, answer(plan, f"Antwort auf {text}")]
    return history


def test_the_canonical_form_and_digest_are_the_specs() -> None:
    segment = [Turn("user", " Hallo "), Turn("assistant", "Grüß Gott\n")]
    assert canonical(segment) == '[["user","Hallo"],["assistant","Grüß Gott"]]'
    expected = hashlib.sha256(
        ("parent\n" + '[["user","Hallo"],["assistant","Grüß Gott"]]').encode()
    ).hexdigest()
    assert history_digest("parent", segment) == expected
    assert system_digest([Turn("user", "x")]) == hashlib.sha256(b"[]").hexdigest()


def test_roles_are_normalised() -> None:
    assert [normalise_role(r) for r in ("human", "ai", "developer", "function", "chatbot")] == [
        "user",
        "assistant",
        "system",
        "tool",
        "assistant",
    ]
    with pytest.raises(ValueError, match="unknown message role"):
        normalise_role("narrator")


def test_a_first_question_opens_a_thread_with_everything() -> None:
    history = [Turn("system", "Sei knapp."), Turn("user", "Frage 1")]
    plan = plan_thread(history)
    assert (plan.action, plan.thread_id, plan.send, plan.reason) == ("new", None, history, None)


def test_a_follow_up_continues_and_sends_only_the_new_message() -> None:
    history = converse([Turn("system", "Sei knapp.")], "Frage 1", "Frage 2")
    history.append(Turn("user", "Frage 3"))
    plan = plan_thread(history)
    assert plan.action == "continued" and plan.thread_id == history[-2].thread_id
    assert plan.send == [Turn("user", "Frage 3")]  # the unchanged system prompt is not resent


def test_a_changed_system_prompt_is_sent_before_the_new_message() -> None:
    history = converse([Turn("system", "Sei knapp.")], "Frage 1")
    history = [Turn("system", "Sei ausführlich."), *history[1:], Turn("user", "Frage 2")]
    plan = plan_thread(history)
    assert plan.action == "continued"
    assert plan.send == [Turn("system", "Sei ausführlich."), Turn("user", "Frage 2")]


@pytest.mark.parametrize("change", ["edit", "insert", "remove"])
def test_a_change_inside_the_history_opens_a_new_thread(change: str) -> None:
    history = converse([], "Frage 1", "Frage 2", "Frage 3")
    if change == "edit":
        history[2] = Turn("user", "Frage 2, anders gestellt")
    elif change == "insert":
        history.insert(3, Turn("user", "eingeschoben"))
    else:
        del history[2]  # a user turn inside, leaving its answer
    history.append(Turn("user", "Frage 4"))
    plan = plan_thread(history)
    assert plan.action == "new" and plan.thread_id is None and plan.send == history
    assert plan.reason is not None and plan.reason.startswith("history_mismatch")


def test_after_an_edit_the_new_thread_is_continued_next_time() -> None:
    history = converse([], "Frage 1", "Frage 2")
    history[0] = Turn("user", "Frage 1, korrigiert")
    history.append(Turn("user", "Frage 3"))
    plan = plan_thread(history)
    assert plan.action == "new"
    history.append(answer(plan, "Antwort 3"))
    history.append(Turn("user", "Frage 4"))
    again = plan_thread(history)
    assert again.action == "continued" and again.thread_id == history[-2].thread_id
    assert again.send == [Turn("user", "Frage 4")]


@pytest.mark.parametrize("keep_system", [True, False])
def test_a_trimmed_history_keeps_its_thread(keep_system: bool) -> None:
    history = converse([Turn("system", "Sei knapp.")], "Frage 1", "Frage 2", "Frage 3")
    trimmed = ([history[0]] if keep_system else []) + history[5:]  # drops the first two exchanges
    trimmed.append(Turn("user", "Frage 4"))
    plan = plan_thread(trimmed)
    assert plan.action == "continued" and plan.send[-1] == Turn("user", "Frage 4")
    assert plan.thread_id == history[-1].thread_id


def test_trimming_half_an_exchange_is_a_change() -> None:
    history = converse([], "Frage 1", "Frage 2")
    trimmed = [history[1], *history[2:], Turn("user", "Frage 3")]  # starts with an answer, its question gone
    assert plan_thread(trimmed).action == "new"


def test_stateless_and_named() -> None:
    history = converse([Turn("system", "S")], "Frage 1")
    history.append(Turn("user", "Frage 2"))
    stateless = plan_thread(history, stateless=True)
    assert (stateless.action, stateless.thread_id, stateless.send) == ("stateless", None, history)
    named = plan_thread(history, thread_id="t-named")
    assert (named.action, named.thread_id, named.send) == ("named", "t-named", [Turn("user", "Frage 2")])
    fresh = plan_thread([Turn("system", "S"), Turn("user", "x")], thread_id="t-named")
    assert fresh.send == [Turn("system", "S"), Turn("user", "x")]


def test_the_fallback_to_a_new_thread_sends_everything_and_says_why() -> None:
    history = converse([], "Frage 1")
    history.append(Turn("user", "Frage 2"))
    plan = plan_thread(history).with_new_thread(history, "thread_failed: InternalServerError")
    metadata = answer_thread_metadata(plan, "Antwort")
    assert plan.send == history and metadata["thread_action"] == "new"
    assert metadata["thread_reason"] == "thread_failed: InternalServerError"
    assert metadata["parent_digest"] == ""


def test_metadata_is_plain_json() -> None:
    history = converse([], "Frage 1")
    assert json.loads(json.dumps(dict(history[-1].metadata))) == dict(history[-1].metadata)


def test_thread_heads_let_one_history_continue_a_thread_at_a_time() -> None:
    from haufe_copilot.conversation.threads import ThreadHeads

    heads = ThreadHeads(capacity=2)
    history = converse([], "Frage?")
    plan = plan_thread([*history, Turn("user", "Weiter?")])
    assert plan.action == "continued" and plan.thread_id is not None
    assert heads.claim(plan) is None  # unseen: on trust
    taken = heads.claim(plan)
    assert taken is not None and taken.startswith("thread_taken")
    heads.release(plan)  # refused by the server: as it was
    assert heads.claim(plan) is None
    heads.settle(plan.thread_id, "the-next-digest")
    moved = heads.claim(plan)
    assert moved is not None and moved.startswith("thread_taken")
    heads.settle("t-2", "x")
    heads.settle("t-3", "y")  # capacity 2: the first is forgotten, and taken on trust again
    assert heads.claim(plan) is None
    unseen = ThreadHeads().claim(plan, unknown_is_safe=False)
    assert unseen is not None and unseen.startswith("unverified_thread")
