"""Stream objects: iterators that are also context managers, and close their connection early.

When a stream sends its request (the one rule; docs/errors.md): at once, as `openai` does. A
sync stream has sent it and received the answer's 2xx status when the call returns, so a 401,
a 429 past its retries or a refused connection is raised by the call itself, never by the first
`next()`. An async stream sends it when first awaited: `await client.completions.create(...,
stream=True)` and `await client.assistant.stream(...)` return it opened; one that is not awaited
(`async for chunk in client.assistant.stream(...)`, `async with ... as stream`) sends it on
entering the `async with` or on the first iteration, whichever comes first (a plain call cannot
wait for the network). Either way the `response` (status, headers) and `request_id` are there
from then on.

Leaving a stream early (`break`, `close()`, the end of a `with` block, a cancelled task) closes
the HTTP connection at once: the sync stream through its generator's `close()` (which CPython
also runs when a dropped stream is collected), the async one through `aclose()` (which asyncio
also schedules for a dropped async generator).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Iterator
from itertools import chain
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx

from haufe_copilot.protocol.attempt import Opened

if TYPE_CHECKING:
    from typing_extensions import Self

T = TypeVar("T")

__all__ = ["AsyncStream", "ClosesOnExit", "Stream"]


class _Opening:
    """What both kinds of stream know once their request has been answered."""

    __slots__ = ("_items", "_opened", "_started")
    _opened: Opened | None
    _started: bool

    @property
    def response(self) -> httpx.Response:
        """The answer's status and headers (its body is what the stream yields)."""
        if self._opened is None:
            raise RuntimeError("The stream has not sent its request yet: await it, enter it or iterate it.")
        return self._opened.response

    @property
    def request_id(self) -> str | None:
        """The server's id of this request (`x-request-id`), for a support ticket."""
        request_id: str | None = self.response.headers.get("x-request-id")
        return request_id

    def _require_unstarted(self, what: str) -> None:
        if self._started:
            raise RuntimeError(f"{what} needs the whole stream; call it before iterating.")
        self._started = True


class ClosesOnExit:
    """`with` closes it at the end of the block."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Stream(_Opening, ClosesOnExit, Generic[T]):
    """An iterator of decoded stream items; use it in a `with` block or just iterate it. The
    request has been sent and answered when it is made (the module's rule). `batched`: after
    its `Opened`, `items` yields lists of items (a read's, `attempt.Items`), which the stream
    hands out one by one without a Python frame per item."""

    __slots__ = ("_source",)

    def __init__(self, items: Generator[Any, None, None], *, batched: bool = False) -> None:
        self._source = items
        self._started = False
        self._opened = None
        opened = next(items)  # sends the request: what fails before the answer is raised here
        assert isinstance(opened, Opened)  # a stream's first item
        self._opened = opened
        self._items: Iterator[Any] = chain.from_iterable(items) if batched else items

    def __iter__(self) -> Iterator[T]:
        # The items themselves, so that a `for` loop takes each straight from them (a call of
        # `__next__` per delta is a tenth of the core's cost); `next(stream)` works too.
        self._started = True
        return self._items

    def __next__(self) -> T:
        self._started = True
        return next(self._items)  # type: ignore[no-any-return]  # items only, once opened

    def close(self) -> None:
        """Stop reading and close the connection; safe to call twice."""
        self._source.close()


class AsyncStream(_Opening, Generic[T]):
    """An async iterator of decoded stream items; `async with` it or just `async for` over it.
    It sends its request when first awaited, entered or iterated (the module's rule)."""

    __slots__ = ()

    def __init__(self, items: AsyncGenerator[T | Opened, None]) -> None:
        self._items: AsyncGenerator[Any, None] = items
        self._started = False
        self._opened = None

    async def _open(self) -> Self:
        if self._opened is None:
            opened = await self._items.__anext__()
            assert isinstance(opened, Opened)  # a stream's first item
            self._opened = opened
        return self

    def __await__(self) -> Generator[Any, None, Self]:
        return self._open().__await__()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        self._started = True
        if self._opened is None:
            await self._open()
        return await self._items.__anext__()  # type: ignore[no-any-return]  # items only, once opened

    async def aclose(self) -> None:
        """Stop reading and close the connection; safe to call twice."""
        await self._items.aclose()

    async def __aenter__(self) -> Self:
        return await self._open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
