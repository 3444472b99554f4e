"""One assistant turn for a whole history: the work both framework adapters share.

Given the history the framework holds, `plan_thread` (docs/threads.md) decides what to send where; this
module sends it through the core client, falls back once to a new thread when a continuation
fails as docs/contract.md (Retries) says, applies stop sequences on the client, and returns the text with
the metadata every answer carries (thread, message, sources, digests, `thread_action`). The
adapters only translate their message types to `Turn`s and the result back.

All of that is one generator without I/O, `_turn_flow`; the four entry points (blocking or
streamed, sync or async) only make the requests it asks for and report what came back.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from haufe_copilot.conversation.threads import (
    THREAD_HEADS,
    ThreadPlan,
    Turn,
    answer_thread_metadata,
    plan_thread,
)
from haufe_copilot.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    InvalidRequestError,
    NotFoundError,
)
from haufe_copilot.protocol.stop import StopFilter, cut_at_stop
from haufe_copilot.types.assistant import AnswerAssembler, AssistantAnswer, StreamChunk

if TYPE_CHECKING:
    from haufe_copilot.transport.async_client import AsyncHaufeCopilotClient
    from haufe_copilot.transport.client import HaufeCopilotClient

logger = logging.getLogger("haufe_copilot.conversation.turns")

_STACK_ENDINGS = ("user", "tool", "system")


@dataclass(frozen=True)
class AssistantTurn:
    """What an adapter asks for: the history and how to treat its thread."""

    assistant_id: str
    history: Sequence[Turn]
    user_id: str | None = None
    stateless: bool = False
    thread_id: str | None = None
    stop: Sequence[str] = ()
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = None
    #: The history's answers may also sit in other conversations' histories (a LangChain cache
    #: replays one answer to every conversation that asks the same): a thread this process has
    #: not seen is then not continued (see `ThreadHeads`).
    answers_may_be_replayed: bool = False


@dataclass(frozen=True, slots=True)
class AnswerDelta:
    """A piece of a streamed answer, with the id the whole answer will have."""

    text: str
    message_id: str


#: Makes the caller's piece of a streamed answer from its text and the answer's message id.
PieceMaker = Callable[[str, str], Any]


@dataclass
class AnswerResult:
    """The answer's text (stop sequences applied) and the metadata of docs/threads.md, plain JSON."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Whether a stop sequence ended the answer.
    stopped: bool = False


def _check(turn: AssistantTurn) -> ThreadPlan:
    if not turn.history:
        raise InvalidRequestError("The conversation is empty: pass at least one message.")
    last = turn.history[-1].role
    if last not in _STACK_ENDINGS:
        raise InvalidRequestError(
            f"The last message is a {last} message; the assistant answers a user, tool or system "
            "message (append the next question)."
        )
    plan = plan_thread(turn.history, stateless=turn.stateless, thread_id=turn.thread_id)
    refused = THREAD_HEADS.claim(plan, unknown_is_safe=not turn.answers_may_be_replayed)
    if refused is not None:
        plan = plan.with_new_thread(turn.history, refused)
    logger.debug(
        "thread decision: %s thread_id=%s sending %d of %d messages%s",
        plan.action,
        plan.thread_id,
        len(plan.send),
        len(turn.history),
        f" ({plan.reason})" if plan.reason else "",
    )
    return plan


def _thread_failed(error: APIError, plan: ThreadPlan) -> bool:
    """A continuation the server may have half-taken, or whose thread is gone (docs/contract.md, Retries)."""
    if plan.thread_id is None or (isinstance(error, APITimeoutError) and error.deadline is not None):
        return False  # a new thread for a call past its deadline would only take longer
    if isinstance(error, NotFoundError):
        return error.error_code in (None, "resource_not_found", "thread_not_found")
    if isinstance(error, APIStatusError):
        return error.status_code >= 500
    return isinstance(error, APIConnectionError)


def _refused(plan: ThreadPlan, error: APIError) -> None:
    """A request that failed without falling back: a 4xx left the thread as it was; anything
    else may have reached it, and the thread stays claimed (no history can continue it)."""
    if isinstance(error, APIStatusError) and 400 <= error.status_code < 500:
        THREAD_HEADS.release(plan)


def _fallback(turn: AssistantTurn, plan: ThreadPlan, error: APIError) -> ThreadPlan:
    # The failed thread stays claimed: the server may hold the half-taken turn.
    reason = f"thread_failed: {type(error).__name__} on thread {plan.thread_id}"
    logger.debug("thread %s could not be continued (%s); opening a new thread", plan.thread_id, error.message)
    return plan.with_new_thread(turn.history, reason)


def _request(turn: AssistantTurn, plan: ThreadPlan) -> dict[str, Any]:
    return {
        "assistant_id": turn.assistant_id,
        "messages": [{"role": t.role, "content": t.text} for t in plan.send],
        "user_id": turn.user_id,
        "thread_id": plan.thread_id,
        "extra_body": turn.extra_body,
        "extra_headers": turn.extra_headers,
    }


_DUMPED = {"meta_data", "sources"}


def _result(plan: ThreadPlan, text: str, stopped: bool, answer: AssistantAnswer) -> AnswerResult:
    dumped = answer.model_dump(include=_DUMPED)  # in one call: the sources as each would dump
    metadata: dict[str, Any] = {
        "thread_id": answer.thread_id,
        "message_id": answer.id,
        "created_at": answer.created_at,
        "meta_data": dumped["meta_data"],
        "sources": dumped["sources"],
    }
    metadata.update(answer_thread_metadata(plan, text))
    THREAD_HEADS.settle(answer.thread_id, metadata["history_digest"])
    return AnswerResult(text=text, metadata=metadata, stopped=stopped)


@dataclass(frozen=True)
class SendRequest:
    """A step of `_turn_flow`: send this request and wait for the whole answer; send the answer back."""

    request: dict[str, Any]


class OpenStream:
    """A step of `_turn_flow`: open a stream for `request` and give each chunk to `read`, passing on
    the piece it returns, until `stopped`; then send None back (the reading holds the answer).
    A piece is `piece(text, message_id)`: an `AnswerDelta`, or the adapter's own object, made
    here so that a delta is built once (`stream_answer`)."""

    __slots__ = ("_stop_filter", "gathered", "piece", "pieces", "request", "stopped")

    def __init__(self, request: dict[str, Any], stop: Sequence[str], piece: PieceMaker) -> None:
        self.request = request
        self.piece = piece
        self.gathered = AnswerAssembler()
        self.pieces: list[str] = []
        #: A stop sequence ended the answer: close the stream.
        self.stopped = False
        self._stop_filter = StopFilter(stop) if any(stop) else None

    def read(self, chunk: StreamChunk) -> Any:
        self.gathered.add(chunk)
        text = chunk.delta.content
        stop_filter = self._stop_filter
        if stop_filter is not None:
            text = stop_filter.feed(text)
            self.stopped = stop_filter.stopped
        if not text:
            return None
        self.pieces.append(text)
        return self.piece(text, chunk.message_id)

    def finish(self) -> Any:
        """The text the stop filter held back (it might have begun a stop sequence), if any."""
        if self._stop_filter is None:
            return None
        tail = self._stop_filter.flush()
        self.stopped = self._stop_filter.stopped  # the tail may hold a stop
        if not tail:
            return None
        self.pieces.append(tail)
        return self.piece(tail, self.gathered.message_id)


#: What `_turn_flow` yields: a request for the driver to make, or what the caller gets (a piece
#: is what the `PieceMaker` makes: an `AnswerDelta` unless the caller asked for its own).
TurnStep = SendRequest | OpenStream | AnswerDelta | AnswerResult | Any


def _turn_flow(
    turn: AssistantTurn, *, streaming: bool, piece: PieceMaker = AnswerDelta
) -> Generator[TurnStep, AssistantAnswer | None, None]:
    """One turn without I/O (as httpx's `Auth.auth_flow`): it yields the request to make and receives
    what came back (a failed request is thrown in), falls back to a new thread once when a
    continuation fails, and yields the answer: a stream's last piece, if held back, then the result."""
    plan = _check(turn)
    for attempt in (1, 2):
        request = _request(turn, plan)
        step = OpenStream(request, turn.stop, piece) if streaming else SendRequest(request)
        try:
            whole = yield step
        except APIError as error:
            passed_on = isinstance(step, OpenStream) and bool(step.pieces)
            if attempt == 2 or passed_on or not _thread_failed(error, plan):
                if not passed_on:
                    _refused(plan, error)
                raise
            plan = _fallback(turn, plan, error)
            continue
        if isinstance(step, OpenStream):
            tail = step.finish()
            if tail is not None:
                yield tail
            yield _result(plan, "".join(step.pieces), step.stopped, step.gathered.answer(""))
        else:
            assert whole is not None  # the drivers send back the answer of every SendRequest
            text, stopped = cut_at_stop(whole.content, turn.stop)
            yield _result(plan, text, stopped, whole)
        return


class _Steps:
    """The flow's next step, and the report of each request's outcome to it: the drivers make the
    request inside `with steps`; an `APIError` is thrown into the flow (which raises it again
    unless it falls back), a success sends `answer` (None for a stream)."""

    def __init__(self, turn: AssistantTurn, *, streaming: bool, piece: PieceMaker = AnswerDelta) -> None:
        self._flow = _turn_flow(turn, streaming=streaming, piece=piece)
        self.step: TurnStep = next(self._flow)
        self.answer: AssistantAnswer | None = None

    def __enter__(self) -> _Steps:
        self.answer = None
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> bool:
        if error is None:
            self.step = self._flow.send(self.answer)
            return False
        if isinstance(error, APIError):
            self.step = self._flow.throw(error)
            return True
        self._flow.close()
        return False

    def rest(self) -> Iterator[Any]:
        """What the caller gets once the requests are made: a held-back piece, then the result."""
        for step in (self.step, *self._flow):
            assert not isinstance(step, SendRequest | OpenStream)
            yield step


# The drivers below only make the requests the flow asks for.


def answer(client: HaufeCopilotClient, turn: AssistantTurn) -> AnswerResult:
    steps = _Steps(turn, streaming=False)
    while isinstance(step := steps.step, SendRequest):
        with steps:
            steps.answer = client.assistant.chat(**step.request)
    return _only_result(steps)


async def aanswer(client: AsyncHaufeCopilotClient, turn: AssistantTurn) -> AnswerResult:
    steps = _Steps(turn, streaming=False)
    while isinstance(step := steps.step, SendRequest):
        with steps:
            steps.answer = await client.assistant.chat(**step.request)
    return _only_result(steps)


def _only_result(steps: _Steps) -> AnswerResult:
    (result,) = steps.rest()
    assert isinstance(result, AnswerResult)  # a blocking answer has no pieces
    return result


def stream_answer(
    client: HaufeCopilotClient, turn: AssistantTurn, *, piece: PieceMaker = AnswerDelta
) -> Generator[Any, None, None]:
    """The answer's pieces as they arrive, then one `AnswerResult` (its `text` whole). A piece is
    an `AnswerDelta`, or what `piece(text, message_id)` makes: an adapter's own delta object,
    built once rather than from an `AnswerDelta` (this runs for every delta)."""
    steps = _Steps(turn, streaming=True, piece=piece)
    while isinstance(step := steps.step, OpenStream):
        read = step.read
        with steps, client.assistant.stream(**step.request) as chunks:
            for chunk in chunks:
                if (made := read(chunk)) is not None:
                    yield made
                if step.stopped:
                    break
    yield from steps.rest()


async def astream_answer(
    client: AsyncHaufeCopilotClient, turn: AssistantTurn, *, piece: PieceMaker = AnswerDelta
) -> AsyncGenerator[Any, None]:
    """See `stream_answer`."""
    steps = _Steps(turn, streaming=True, piece=piece)
    while isinstance(step := steps.step, OpenStream):
        read = step.read
        with steps:
            async with client.assistant.stream(**step.request) as chunks:
                async for chunk in chunks:
                    if (made := read(chunk)) is not None:
                        yield made
                    if step.stopped:
                        break
    for rest in steps.rest():
        yield rest
