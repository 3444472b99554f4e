"""ASGI responses the emulator needs beyond FastAPI's: a stream that notices a client leaving
the moment it leaves, and an abrupt close with no terminating chunk."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .state import StreamRecord


class AbruptClose(Exception):
    """Raised inside a started response: uvicorn then closes the socket without ending the
    chunked body, which a client sees as a connection cut mid-answer."""


def sse_frame(data: str, *, event: str | None = None, id: int | str | None = None) -> bytes:
    """One Server-Sent Event: optional `id:` and `event:` lines, `data:` lines, a blank line."""
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


class _DropAbruptClose(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], AbruptClose))


_filter_installed = False


def silence_abrupt_close_logs() -> None:
    """uvicorn logs an exception from a started response as an error; ours are on purpose."""
    global _filter_installed
    if not _filter_installed:
        logging.getLogger("uvicorn.error").addFilter(_DropAbruptClose())
        _filter_installed = True


class StreamingBody(Response):
    """Sends `items` as one chunked body; `None` from `items` means "cut the connection now".

    A watcher on `receive()` records a disconnect as soon as the server sees it and stops the
    sender, so the emulator can tell a test when, and after how many deltas, a client left.
    """

    def __init__(
        self,
        items: AsyncIterator[bytes | None],
        *,
        media_type: str,
        record: StreamRecord,
        headers: dict[str, str],
        on_finish: Callable[[StreamRecord], None] | None = None,
    ) -> None:
        # As StreamingResponse does: no body attribute, so no content-length; chunked instead.
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)
        self._items = items
        self._record = record
        self._on_finish = on_finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        sender = asyncio.ensure_future(self._send_items(send))
        watcher = asyncio.ensure_future(self._watch_disconnect(receive))
        try:
            done, _ = await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, watcher):
                task.cancel()
            await asyncio.gather(sender, watcher, return_exceptions=True)
        if sender in done and sender.exception() is not None:
            raise sender.exception()  # type: ignore[misc]  # AbruptClose: let uvicorn cut

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "http.disconnect":
                self._finish("disconnected")
                return

    async def _send_items(self, send: Send) -> None:
        async for item in self._items:
            if item is None:
                self._finish("cut")
                raise AbruptClose
            await send({"type": "http.response.body", "body": item, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self._finish(self._record.outcome or "complete")

    def _finish(self, outcome: str) -> None:
        if self._record.ended_at is None:
            self._record.ended_at = time.monotonic()
            self._record.outcome = self._record.outcome or outcome
            if self._on_finish is not None:
                self._on_finish(self._record)
