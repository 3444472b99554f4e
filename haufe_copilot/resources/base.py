"""What every resource shares: the per-call transport options, and running a resource's flow.

A resource method is a description (pure: the request and how its answer is read, a `Call`)
and, where a call depends on an earlier one's outcome (a start that met a 409), a small
generator flow that yields `Call`s and receives their results or errors; the sync and async
resources only run it (`run_flow`, `arun_flow`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, overload

import httpx

from haufe_copilot.errors import APIError, InvalidRequestError
from haufe_copilot.protocol.attempt import Call, Finished, Raw, Stepper
from haufe_copilot.protocol.settings import validate_timeout
from haufe_copilot.transport.base_client import RAW_RESPONSES

if TYPE_CHECKING:
    from typing_extensions import ParamSpec

    from haufe_copilot.transport.base_client import BaseClient

    P = ParamSpec("P")

__all__ = [
    "CallOptions",
    "RawResponse",
    "RequestOptions",
    "Resource",
    "WithRawResponse",
    "arun_flow",
    "call_of",
    "made_on_access",
    "run_flow",
]

T = TypeVar("T")
R = TypeVar("R")

Flow = Generator[Call[Any], Any, T]


class CallOptions(TypedDict, total=False):
    """Per-call transport options: `timeout` bounds each network operation, `deadline` (seconds;
    default the client's) the whole call, retries included."""

    timeout: float | httpx.Timeout | None
    deadline: float | None


class RequestOptions(CallOptions, total=False):
    """What every request may add: fields, headers and query parameters beyond the documented."""

    extra_body: Mapping[str, Any] | None
    extra_headers: Mapping[str, str] | None
    extra_query: Mapping[str, str] | None


class Resource:
    """A group of endpoints of one client (each subclass names the client's type); `blocking`:
    the methods `with_raw_response` has."""

    __slots__ = ("_client",)
    blocking: tuple[str, ...] = ()

    def __init__(self, client: BaseClient) -> None:
        self._client = client

    @property
    def with_raw_response(self) -> WithRawResponse:
        """The blocking methods returning the `RawResponse` (status, headers, `request_id`,
        `parse()`): `client.assistant.with_raw_response.chat(...)`."""
        return WithRawResponse(self)


class made_on_access(Generic[R]):
    """A class attribute that makes `kind(instance)` on each access (a resource of a client, a
    resource's `with_raw_response`). Made rather than kept: kept, it would tie its owner into a
    reference cycle, and a client dropped without close() would then wait for the cyclic garbage
    collector, which may finalise its sockets before the client closes them."""

    def __init__(self, kind: Callable[[Any], R]) -> None:
        self.kind = kind
        self.__doc__ = kind.__doc__

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> made_on_access[R]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> R: ...

    def __get__(self, instance: object, owner: type[Any] | None = None) -> R | made_on_access[R]:
        return self if instance is None else self.kind(instance)


def call_of(client: BaseClient, spec: Any, options: Mapping[str, Any], **reading: Any) -> Call[Any]:
    """The `Call` of a request and its per-call `timeout` and `deadline` (checked after the
    request, as each method always did); `reading`: `fmt=` for a stream, `parse=` for a result."""
    timeout = validate_timeout(options.get("timeout"))
    return Call(spec, timeout, client._call_deadline(options.get("deadline")), **reading)


def run_flow(client: Any, flow: Flow[T]) -> T:
    """Run a resource's flow on the sync client."""
    stepper = Stepper(flow)
    while not isinstance(call := stepper.next(), Finished):
        try:
            stepper.reply = client._request(call)
        except APIError as exc:
            stepper.failure = exc
    return stepper.result  # type: ignore[no-any-return]  # the flow's result


async def arun_flow(client: Any, flow: Flow[T]) -> T:
    """Run a resource's flow on the async client."""
    stepper = Stepper(flow)
    while not isinstance(call := stepper.next(), Finished):
        try:
            stepper.reply = await client._request(call)
        except APIError as exc:
            stepper.failure = exc
    return stepper.result  # type: ignore[no-any-return]  # the flow's result


# -- the raw response ----------------------------------------------------------------------------


class RawResponse(Generic[T]):
    """A blocking call's answer as it came (`client.<resource>.with_raw_response.<method>(...)`):
    the httpx response (status, headers; its body read), the body, the request id, and the
    parsed result (`parse()`)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Raw[T]) -> None:
        self._raw = raw

    @property
    def http_response(self) -> httpx.Response:
        return self._raw.response

    @property
    def status_code(self) -> int:
        return self._raw.response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self._raw.response.headers

    @property
    def request_id(self) -> str | None:
        """The server's id of this request (`x-request-id`), for a support ticket."""
        request_id: str | None = self._raw.response.headers.get("x-request-id")
        return request_id

    @property
    def content(self) -> bytes:
        return self._raw.content

    def parse(self) -> T:
        return self._raw.parsed

    def __repr__(self) -> str:
        return f"<RawResponse [{self.status_code}] request_id={self.request_id!r}>"


@contextmanager
def _capturing() -> Iterator[list[Raw[Any]]]:
    captured: list[Raw[Any]] = []
    token = RAW_RESPONSES.set(captured)
    try:
        yield captured
    finally:
        RAW_RESPONSES.reset(token)


def _answer(captured: list[Raw[Any]], parsed: T) -> RawResponse[T]:
    if not captured:
        raise InvalidRequestError(
            "with_raw_response is for blocking calls; a stream has its own: stream.response, "
            "stream.request_id."
        )
    # The last answer is the one the result came from (a start that met a 409 asks for the status).
    raw = captured[-1]
    return RawResponse(Raw(raw.response, raw.content, parsed))


def raw_response(method: Callable[P, T]) -> Callable[P, RawResponse[T]]:
    """`method`, returning its `RawResponse` instead of its result."""

    def with_raw_response(*args: P.args, **kwargs: P.kwargs) -> RawResponse[T]:
        with _capturing() as captured:
            parsed = method(*args, **kwargs)
        return _answer(captured, parsed)

    return with_raw_response


def async_raw_response(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[RawResponse[T]]]:
    """`method` (async), returning its `RawResponse` instead of its result."""

    async def with_raw_response(*args: P.args, **kwargs: P.kwargs) -> RawResponse[T]:
        with _capturing() as captured:
            parsed = await method(*args, **kwargs)
        return _answer(captured, parsed)

    return with_raw_response


class WithRawResponse:
    """`resource.with_raw_response.<method>(...)`: each blocking method of the resource, returning
    its `RawResponse` (awaitable on an async resource) instead of its result."""

    __slots__ = ("_resource",)

    def __init__(self, resource: Resource) -> None:
        self._resource = resource

    def __getattr__(self, name: str) -> Any:
        if name not in type(self._resource).blocking:
            raise AttributeError(
                f"with_raw_response has {', '.join(type(self._resource).blocking)}, not {name!r} "
                "(a stream has its response itself: stream.response, stream.request_id)."
            )
        method = getattr(self._resource, name)
        return async_raw_response(method) if inspect.iscoroutinefunction(method) else raw_response(method)
