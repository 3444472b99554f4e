"""One call, attempt by attempt, without I/O: what both clients do, written once.

`call_flow` is a generator in the manner of httpx's `Auth.auth_flow`: it yields a `Step` (send
the request, read the next piece of the body, close the response, sleep, ask the token provider)
and receives what came of it; an I/O failure is thrown into it where it yielded. It owns every
decision: the attempt's timeout, the 401 token refresh, the error body's cap, the classification
of errors and whether and when to retry, the body's limits, a stream's end and the partial text
an interrupted stream's error carries. The sync and async clients each drive it with a short loop
that only does the I/O (`HaufeCopilotClient._drive`, `AsyncHaufeCopilotClient._drive`).

What reaches the caller is yielded too, as anything that is not a `Step`: `Opened` once the 2xx
status has arrived (a stream's creation waits for it), then a stream's items, or a blocking
call's one result.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import httpx

from haufe_copilot.errors import APIError, ResponseTooLargeError
from haufe_copilot.protocol.assistant import RequestSpec, StreamFormat, check_stream_end
from haufe_copilot.protocol.deadline import Deadline, ReadGuard

__all__ = [
    "CUT_SLACK",
    "FINISHED",
    "MAX_ERROR_BODY_BYTES",
    "Call",
    "Close",
    "CutShort",
    "Items",
    "Opened",
    "Raw",
    "Read",
    "Send",
    "Sleep",
    "Step",
    "Stepper",
    "Token",
    "call_flow",
]

T = TypeVar("T")
S = TypeVar("S")

# An error body is only read for its message: a proxy's huge page must not fill memory.
MAX_ERROR_BODY_BYTES = 1024 * 1024
#: A read may outlast the nearest limit by this much before it is cut short: below it, httpx's
#: own read timeout (which restarts with every piece) is close enough, and the hot path (content
#: in every piece, no deadline) runs without a timer per read.
CUT_SLACK = 0.05


class Step:
    """An instruction to the driver; `within`: the async driver cuts it short after that many
    seconds and throws `CutShort` in (the sync driver relies on the capped httpx timeouts)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Token(Step):
    """Call the token provider (awaiting what it returns, on the async client); send its result."""

    within: float | None


@dataclass(frozen=True, slots=True)
class Send(Step):
    """Wait for the rate limiter, send the request, send back the response (body unread)."""

    token: str | None
    timeout: httpx.Timeout
    within: float | None


@dataclass(frozen=True, slots=True)
class Read(Step):
    """Send back the next decoded piece of the open response's body, or None at its end."""

    within: float | None


_READ = Read(None)  # the read without a limit of its own, made once: the hot path of a stream


@dataclass(frozen=True, slots=True)
class Close(Step):
    """Close the open response."""


@dataclass(frozen=True, slots=True)
class Sleep(Step):
    seconds: float


class CutShort(Exception):
    """Thrown into the flow by a driver whose step outlasted its `within`."""


@dataclass(frozen=True, slots=True)
class Opened:
    """The 2xx response has arrived (its body not read yet): yielded once, before any item."""

    response: httpx.Response


@dataclass(frozen=True, slots=True)
class Raw(Generic[T]):
    """A blocking call's result with the response it came in (and its body)."""

    response: httpx.Response
    content: bytes
    parsed: T


class Policy(Protocol):
    """What the flow asks of its client: `BaseClient`'s pure half (configuration, the error
    mapping, the retry rule; no I/O)."""

    @property
    def _settings(self) -> CallSettings: ...

    @property
    def _retry_delay(self) -> Callable[..., float | None]: ...  # see BaseClient._retry_delay

    def _attempt_timeout(self, timeout: httpx.Timeout | None, deadline: Deadline | None) -> httpx.Timeout: ...

    def _url(self, spec: RequestSpec) -> str: ...

    def _static_bearer(self, spec: RequestSpec) -> str | None: ...

    def _checked_token(self, token: object) -> str: ...

    def _status_error(self, response: httpx.Response, body: bytes) -> APIError: ...

    def _transport_error(
        self, exc: httpx.TransportError, spec: RequestSpec, deadline: Deadline | None
    ) -> APIError: ...


@dataclass(frozen=True, slots=True)
class CallSettings:
    """The client options the flow reads."""

    timeout: httpx.Timeout
    refreshes_tokens: bool  # a token_provider is set: a 401 asks it once more
    max_line_bytes: int
    max_response_bytes: int
    max_partial_chars: int


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API call as a resource describes it: the request and how its answer is read. `fmt`:
    a stream's format (its items reach the caller); else `parse` makes the one result of the
    whole body (yielded as `Raw`: with the response it came in)."""

    spec: RequestSpec
    timeout: httpx.Timeout | None
    deadline: Deadline | None
    fmt: StreamFormat[Any, T] | None = None
    parse: Callable[[bytes], T] | None = None


def call_flow(policy: Policy, call: Call[T], *, cuts: bool) -> Generator[Any, Any, None]:
    """The attempts of one call (see the module's docstring). Retried only before a 2xx status,
    so never after an item reached the caller (docs/contract.md, Retries); a stream whose body
    ends short of its format's end is an error (`check_stream_end`). `cuts`: give the driver's
    steps a `within` (the async driver cuts them short at the deadline and the stall guard)."""
    spec, deadline = call.spec, call.deadline
    settings = policy._settings
    partial = _Partial(settings.max_partial_chars)
    # The stall guard: a stream ends once no item has come for the read timeout.
    stall = (call.timeout or settings.timeout).read if call.fmt is not None else None
    where = policy._url(spec)
    retries_done = 0
    opened = False
    if deadline is not None:
        deadline.start()
    while True:
        answered = False  # a 2xx status arrived: the server took the request
        try:
            timeout = policy._attempt_timeout(call.timeout, deadline)
            response = yield from _open(policy, spec, timeout, deadline if cuts else None, where)
            answered = True  # from here on nothing is retried
            if not opened:
                opened = True
                yield Opened(response)
            guard = ReadGuard(deadline, stall, where)
            body = yield from _read_body(call, settings, guard, partial, cuts, timeout.read)
            yield Close()
            result = _result(call, response, body)
        except httpx.TransportError as exc:
            error: APIError = policy._transport_error(exc, spec, deadline)
        except APIError as exc:
            error = exc
        else:
            if call.fmt is None:
                yield result
            return
        yield Close()
        partial.attach(error)
        delay = policy._retry_delay(error, spec, retries_done, answered=answered, deadline=deadline)
        if delay is None:
            raise error
        yield Sleep(delay)
        retries_done += 1


def _result(call: Call[T], response: httpx.Response, body: bytes) -> Raw[T] | None:
    if call.parse is None:  # a stream: its items have gone to the caller
        return None
    return Raw(response, body, call.parse(body))


def _open(
    policy: Policy, spec: RequestSpec, timeout: httpx.Timeout, deadline: Deadline | None, where: str
) -> Generator[Step, Any, httpx.Response]:
    """One attempt up to a 2xx status; a non-2xx answer is raised as its error (body capped). A
    401 on the platform API with a `token_provider` asks it once more for a fresh token. With
    `deadline`, every step is cut short when it passes."""

    def within() -> float | None:
        return None if deadline is None else max(deadline.remaining(), 0.0)

    try:
        token = yield from _bearer_token(policy, spec, within())
        response: httpx.Response = yield Send(token, timeout, within())
        if response.status_code == 401 and token is not None and policy._settings.refreshes_tokens:
            yield Close()
            response = yield Send((yield from _bearer_token(policy, spec, within())), timeout, within())
        if response.is_success:
            return response
        body = bytearray()
        while len(body) < MAX_ERROR_BODY_BYTES:
            data = yield Read(within())
            if data is None:
                break
            body += data
    except CutShort:
        assert deadline is not None  # only a step with `within` is cut short
        raise deadline.error(where) from None
    yield Close()
    raise policy._status_error(response, bytes(body))


def _bearer_token(
    policy: Policy, spec: RequestSpec, within: float | None
) -> Generator[Step, Any, str | None]:
    if spec.api != "platform" or not policy._settings.refreshes_tokens:
        return policy._static_bearer(spec)
    return policy._checked_token((yield Token(within)))


def check_body_size(received: int, limit: int) -> None:
    if received > limit:
        raise ResponseTooLargeError(f"The answer exceeded max_response_bytes={limit} bytes.")


def _read_body(
    call: Call[Any],
    settings: CallSettings,
    guard: ReadGuard,
    partial: _Partial,
    cuts: bool,
    read: float | None,
) -> Generator[Any, Any, bytes]:
    """Read the open 2xx body within the call's limits (deadline, stall, `max_response_bytes`):
    a stream's items go to the caller as they complete, a blocking body is kept whole and
    returned. With `cuts`, a read that would outlast the nearest limit by more than `CUT_SLACK`
    past the attempt's `read` timeout (which httpx applies to every read) is cut short at it."""
    fmt = call.fmt
    whole = bytearray()
    decoder = fmt.decoder(settings.max_line_bytes) if fmt is not None else None
    if fmt is not None:  # looked up once: the loop below runs for every delta
        convert, is_final, text_of = fmt.convert, fmt.is_final, fmt.text_of
        convert_many = fmt.convert_many
    limit = settings.max_response_bytes
    received = items = 0
    finished = False
    while True:
        within = None
        if cuts:
            budget = guard.budget()
            if budget is not None and (read is None or budget < read - CUT_SLACK):
                within = max(budget, 0.0)
        try:
            data = yield _READ if within is None else Read(within)
        except CutShort:
            raise guard.error() from None
        if data is not None:
            guard.check()
            received += len(data)
            check_body_size(received, limit)
            if decoder is None:
                whole += data
                continue
            raws = decoder.feed(data)
        elif decoder is None:
            return bytes(whole)
        else:
            raws = decoder.close()
        failure: APIError | None = None
        for start in range(0, len(raws), BATCH_ITEMS):
            group = raws[start : start + BATCH_ITEMS]
            converted = convert_many(group) if convert_many is not None else None
            if converted is not None:
                batch = Items(converted)
            else:  # item by item: the items before one that fails still reach the caller
                batch = Items()
                for raw in group:
                    try:
                        item = convert(raw)
                    except APIError as exc:
                        failure = exc
                        break
                    if is_final is not None and not finished:
                        finished = is_final(raw, item)
                    if item is not None:
                        batch.append(item)
            if batch:
                if partial.kept < partial.cap:  # inline, per batch: this runs for every delta
                    texts = list(map(text_of, batch))
                    partial.delivered += texts
                    partial.kept += sum(map(len, texts))
                else:
                    partial.more = True
                items += len(batch)
                yield batch
                guard.content()  # the stall clock restarts when the caller hands back
            if failure is not None:
                raise failure
        if data is None:
            assert fmt is not None  # a decoder: a stream
            check_stream_end(fmt, finished=finished, items=items)
            return b""


#: The most items handed on together: a longer batch keeps more objects alive at once, which the
#: cyclic collector then promotes and scans again (a whole 64 KiB read of deltas doubled LangChain's
#: cost per delta at 5k).
BATCH_ITEMS = 16


class Items(list[Any]):
    """Items one read completed (at most `BATCH_ITEMS`), handed on together (the driver gives the
    caller each in turn): nothing is read and no limit is checked between them, and one step per
    batch rather than per item keeps a delta's cost that of a single generator."""

    __slots__ = ()


class Stepper(Generic[S]):
    """Advances a flow for its driver: sends it the reply to its last step, or throws in what
    that step raised (`failure`); `next()` returns the flow's next step, or `FINISHED` with its
    return value in `result`."""

    __slots__ = ("failure", "flow", "reply", "result")

    def __init__(self, flow: Generator[S, Any, Any]) -> None:
        self.flow = flow
        self.reply: Any = None
        self.failure: BaseException | None = None
        self.result: Any = None

    def next(self) -> S | Finished:
        failure = self.failure
        try:
            if failure is None:
                reply, self.reply = self.reply, None
                return self.flow.send(reply)
            self.failure = None
            return self.flow.throw(failure)
        except StopIteration as end:
            self.result = end.value
            return FINISHED


class Finished:
    """What `Stepper.next()` returns once the flow has returned."""

    __slots__ = ()


FINISHED = Finished()


class _Partial:
    """The text a stream delivered, which an error that interrupts it carries (up to a bound)."""

    __slots__ = ("cap", "delivered", "kept", "more")

    def __init__(self, cap: int) -> None:
        self.delivered: list[str] = []
        self.kept, self.cap, self.more = 0, cap, False

    def attach(self, error: APIError) -> None:
        if self.delivered:
            partial = "".join(self.delivered)
            error.partial = partial[: self.cap]
            error.partial_truncated = self.more or len(partial) > self.cap
