"""Stream objects: iterators that are also context managers, and close their connection early.

A stream sends nothing until it is first iterated. Leaving it early (`break`, `close()`, the end
of a `with` block, a cancelled task) closes the HTTP connection at once: the sync stream through
its generator's `close()` (which CPython also runs when a dropped stream is collected), the async
one through `aclose()` (which asyncio also schedules for a dropped async generator).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from typing_extensions import Self

T = TypeVar("T")


class Stream(Generic[T]):
    """An iterator of decoded stream items; use it in a `with` block or just iterate it."""

    __slots__ = ("_items", "_started")

    def __init__(self, items: Generator[T, None, None]) -> None:
        self._items = items
        self._started = False

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> T:
        self._started = True
        return next(self._items)

    def close(self) -> None:
        """Stop reading and close the connection; safe to call twice."""
        self._items.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _require_unstarted(self, what: str) -> None:
        if self._started:
            raise RuntimeError(f"{what} needs the whole stream; call it before iterating.")
        self._started = True


class AsyncStream(Generic[T]):
    """An async iterator of decoded stream items; `async with` it or just `async for` over it."""

    __slots__ = ("_items", "_started")

    def __init__(self, items: AsyncGenerator[T, None]) -> None:
        self._items = items
        self._started = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        self._started = True
        return await self._items.__anext__()

    async def aclose(self) -> None:
        """Stop reading and close the connection; safe to call twice."""
        await self._items.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _require_unstarted(self, what: str) -> None:
        if self._started:
            raise RuntimeError(f"{what} needs the whole stream; call it before iterating.")
        self._started = True
