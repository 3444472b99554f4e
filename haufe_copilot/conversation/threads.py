"""Threads as memory (docs/threads.md): which server thread a history continues, and what to send.

The adapters keep no conversation state: every answer carries its `thread_id` and a digest of
the conversation up to it, so the history a caller passes in says by itself whether it still is
the server thread's conversation. This module is that decision, framework-free and pure, so the
LangChain and LlamaIndex adapters compute it identically.

The digest chain: for an answer A whose previous answer of the same thread in the history is P,
`segment` is the non-system messages after P (from the start of the history where A has no
such P) up to and including A, and

    canonical(segment) = json.dumps([[role, text.strip()], ...], ensure_ascii=False, separators=(",", ":"))
    history_digest(A)  = sha256((parent + "\\n" + canonical(segment)).encode("utf-8")).hexdigest()

with `parent` P's `history_digest` ("" for a thread's first answer), kept as A's
`parent_digest`. System messages are instructions, not turns: they are hashed on their own as
`system_digest`. Only the chain of the thread to be continued is checked, so after a thread was
replaced by a new one (an edited history), the new thread's answers verify on their own and the
old answers are just messages of its first segment. (The rule was first worded over "the previous
answer in the history"; read across threads, a history edited once would then open a new
thread on every later turn. Per thread, the two agree wherever one thread is involved.)
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "THREAD_HEADS",
    "THREAD_METADATA_KEYS",
    "ThreadAction",
    "ThreadHeads",
    "ThreadPlan",
    "Turn",
    "answer_thread_metadata",
    "canonical",
    "history_digest",
    "normalise_role",
    "plan_thread",
    "system_digest",
]

ThreadAction = Literal["continued", "new", "named", "stateless"]

#: What every answer carries (docs/threads.md), besides `thread_reason` when a thread could not be continued.
THREAD_METADATA_KEYS = (
    "thread_id",
    "message_id",
    "created_at",
    "meta_data",
    "sources",
    "history_digest",
    "parent_digest",
    "system_digest",
    "thread_action",
)

_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "chatbot": "assistant",
    "tool": "tool",
    "function": "tool",
}


def normalise_role(role: str) -> str:
    """`system`, `user`, `assistant` or `tool` for the role names the frameworks use."""
    try:
        return _ROLES[role.lower()]
    except KeyError:
        raise ValueError(f"unknown message role {role!r}; expected one of {sorted(set(_ROLES))}") from None


@dataclass(frozen=True)
class Turn:
    """One message of a history: a normalised role, its text, and for an earlier answer of the
    assistant the thread metadata it came with (else empty)."""

    role: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def thread_id(self) -> str | None:
        value = self.metadata.get("thread_id") if self.role == "assistant" else None
        return value if isinstance(value, str) and value else None

    @property
    def is_answer(self) -> bool:
        """An earlier answer that can anchor a thread: it has a thread id and a digest."""
        return self.thread_id is not None and isinstance(self.metadata.get("history_digest"), str)


_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # one, not one per call


def canonical(segment: Sequence[Turn]) -> str:
    return _CANONICAL.encode([[t.role, t.text.strip()] for t in segment])


def history_digest(parent: str, segment: Sequence[Turn]) -> str:
    return hashlib.sha256((parent + "\n" + canonical(segment)).encode("utf-8")).hexdigest()


def system_digest(turns: Sequence[Turn]) -> str:
    """The digest of a history's system messages (of none, too)."""
    systems = [t for t in turns if t.role == "system"]
    if not systems:
        return _NO_SYSTEM_DIGEST
    return hashlib.sha256(canonical(systems).encode("utf-8")).hexdigest()


_NO_SYSTEM_DIGEST = hashlib.sha256(canonical([]).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ThreadPlan:
    """What to send for a history: to which thread, which messages, and how to chain the answer."""

    action: ThreadAction
    thread_id: str | None
    #: The messages to send, in order.
    send: list[Turn]
    #: The new answer's parent digest, and the non-system messages before it in its segment.
    parent_digest: str
    segment: list[Turn]
    system_digest: str
    #: Why a thread in the history could not be continued (None when nothing was refused).
    reason: str | None = None

    def with_new_thread(self, history: Sequence[Turn], reason: str) -> ThreadPlan:
        """The same history on a new thread: the whole history is sent (docs/contract.md, Retries)."""
        return _new_thread(list(history), reason)


def _new_thread(history: list[Turn], reason: str | None, action: ThreadAction = "new") -> ThreadPlan:
    return ThreadPlan(
        action=action,
        thread_id=None,
        send=history,
        parent_digest="",
        segment=[t for t in history if t.role != "system"],
        system_digest=system_digest(history),
        reason=reason,
    )


def _chain_breaks(history: Sequence[Turn], thread_id: str) -> str | None:
    """Why the answers of `thread_id` in the history do not recompute to their digests, or None.

    Only the thread to be continued is checked: its first segment reaches back to the start of
    the history, so a change anywhere before it shows too, and answers of a thread it replaced
    are plain messages of that segment.
    """
    previous: int | None = None
    for index, turn in enumerate(history):
        if not (turn.is_answer and turn.thread_id == thread_id):
            continue
        if previous is None:
            parent, start = str(turn.metadata.get("parent_digest") or ""), 0
        else:
            parent, start = str(history[previous].metadata["history_digest"]), previous + 1
        segment = [t for t in history[start : index + 1] if t.role != "system"]
        if history_digest(parent, segment) != turn.metadata["history_digest"]:
            return (
                f"history_mismatch: the messages before answer {turn.metadata.get('message_id') or index} "
                "are not those of its thread (edited, inserted or removed)"
            )
        previous = index
    return None


def plan_thread(
    history: Sequence[Turn], *, stateless: bool = False, thread_id: str | None = None
) -> ThreadPlan:
    """Decide how to send `history` (docs/threads.md).

    - `stateless`: the whole history, no thread.
    - `thread_id` named by the caller: that thread, with the messages after the last assistant
      message (all of them where there is none).
    - Otherwise, when the history holds answers with a thread and every one recomputes to its
      digest: the latest answer's thread, with only the messages after it, preceded by the
      history's system messages where they differ from the latest answer's `system_digest`.
    - Otherwise a new thread with the whole history (`reason` says why, when a thread was there).
    """
    turns = list(history)
    if not turns:
        raise ValueError("a conversation needs at least one message")
    if stateless:
        return _new_thread(turns, None, "stateless")
    if thread_id is not None:
        last_assistant = max((i for i, t in enumerate(turns) if t.role == "assistant"), default=-1)
        anchor = turns[last_assistant] if last_assistant >= 0 else None
        same_thread = anchor is not None and anchor.is_answer and anchor.thread_id == thread_id
        return ThreadPlan(
            action="named",
            thread_id=thread_id,
            send=turns[last_assistant + 1 :],
            parent_digest=str(anchor.metadata["history_digest"]) if same_thread and anchor else "",
            segment=[t for t in turns[last_assistant + 1 :] if t.role != "system"],
            system_digest=system_digest(turns),
        )
    answers = [i for i, t in enumerate(turns) if t.is_answer]
    if not answers:
        return _new_thread(turns, None)
    latest_index = answers[-1]
    latest = turns[latest_index]
    assert latest.thread_id is not None
    broken = _chain_breaks(turns, latest.thread_id)
    if broken is not None:
        return _new_thread(turns, broken)
    after = turns[latest_index + 1 :]
    if not any(t.role != "system" for t in after):
        return _new_thread(turns, "nothing_new: the history ends with the assistant's answer")
    systems = [t for t in turns if t.role == "system"]
    digest = system_digest(turns)
    new_systems = [] if digest == latest.metadata.get("system_digest") else systems
    new_messages = [t for t in after if t.role != "system"]
    return ThreadPlan(
        action="continued",
        thread_id=latest.thread_id,
        send=new_systems + new_messages,
        parent_digest=str(latest.metadata["history_digest"]),
        segment=new_messages,
        system_digest=digest,
    )


def answer_thread_metadata(plan: ThreadPlan, answer_text: str) -> dict[str, Any]:
    """The digest keys of a new answer under `plan` (the caller adds thread_id, message_id, ...)."""
    segment = [*plan.segment, Turn("assistant", answer_text)]
    metadata: dict[str, Any] = {
        "history_digest": history_digest(plan.parent_digest, segment),
        "parent_digest": plan.parent_digest,
        "system_digest": plan.system_digest,
        "thread_action": plan.action,
    }
    if plan.reason is not None:
        metadata["thread_reason"] = plan.reason
    return metadata


# -- which history each server thread holds ----------------------------------------------------

#: A continuation of the thread is under way (or ended in a way that leaves the thread's
#: contents unknown: a lost connection, a stream closed early): no history can claim it.
_IN_FLIGHT = object()


class ThreadHeads:
    """Per process: the digest of the history each server thread holds, as far as this process
    sent it there and read the answer back.

    The digest chain proves that a history is *a* conversation that a thread once held; it cannot
    prove that the thread holds nothing more. Two histories can carry the very same answer: a
    LangChain cache replays one answer into every conversation that opens with the same
    question, a regenerated or forked turn reuses an earlier answer, a batch sends one history
    twice. Whichever continues the thread first moves its head; the others then no longer match
    it and go to a new thread with their whole history, so a server thread only ever holds one
    conversation. A thread this process has not seen (after a restart, a history from another
    process) is taken on trust, unless its answers may have been replayed to other
    conversations (`unknown_is_safe=False`: a cache is on), since only this record could tell.

    Bounded: the oldest threads are forgotten first (and then taken on trust like unseen ones).
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._heads: OrderedDict[str, object] = OrderedDict()

    def claim(self, plan: ThreadPlan, *, unknown_is_safe: bool = True) -> str | None:
        """Take `plan`'s thread for one continuation, or return why it cannot be continued.

        Taken, the thread accepts no other claim until `settle` (the answer arrived) or
        `release` (the server refused the request without taking it)."""
        thread_id = plan.thread_id
        if plan.action != "continued" or thread_id is None:
            return None
        with self._lock:
            head = self._heads.get(thread_id)
            if head is None and not unknown_is_safe:
                return (
                    f"unverified_thread: this process has not seen thread {thread_id}, and with a "
                    "cache the answer that names it may have been given to other conversations too"
                )
            if head is _IN_FLIGHT:
                return f"thread_taken: another request is continuing thread {thread_id}"
            if head is not None and head != plan.parent_digest:
                return (
                    f"thread_taken: thread {thread_id} went on after this history's latest answer "
                    "(another conversation with the same answer, e.g. from a cache, or a "
                    "regenerated turn continued it)"
                )
            self._remember(thread_id, _IN_FLIGHT)
        return None

    def settle(self, thread_id: str | None, digest: str) -> None:
        """The thread now holds the history up to the answer with this `history_digest`."""
        if thread_id:
            with self._lock:
                self._remember(thread_id, digest)

    def release(self, plan: ThreadPlan) -> None:
        """The server refused the continuation without taking it: the thread is as it was."""
        if plan.action == "continued" and plan.thread_id is not None:
            with self._lock:
                if self._heads.get(plan.thread_id) is _IN_FLIGHT:
                    self._remember(plan.thread_id, plan.parent_digest)

    def forget(self) -> None:
        """Forget every thread (as a new process would)."""
        with self._lock:
            self._heads.clear()

    def _remember(self, thread_id: str, head: object) -> None:
        self._heads[thread_id] = head
        self._heads.move_to_end(thread_id)
        while len(self._heads) > self._capacity:
            self._heads.popitem(last=False)


#: The record every adapter of this process shares: a conversation may move between model
#: objects (copies, another adapter), a server thread may not move between conversations.
THREAD_HEADS = ThreadHeads()
