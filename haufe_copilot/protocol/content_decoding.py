"""Content-Encoding decoded in bounded pieces, so that the size limits bound memory.

httpx decodes each chunk read from the socket whole: 64 KB of gzip become 64 MB at once, and
with `zstandard` installed (it arrives with common dependencies) httpx advertises zstd, of which
32 KB decode to gigabytes; the client's size limits were checked only afterwards. Here the body
is read raw and decoded at most `PIECE_BYTES` at a time, so a limit (max_response_bytes,
max_line_bytes, the error-body cap) stops the decoding once it is passed. Only the encodings
decoded this way are advertised; a body in any other encoding is refused before it is decoded.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator

import httpx

from haufe_copilot.errors import APIResponseValidationError

__all__ = ["ACCEPT_ENCODING", "PIECE_BYTES", "BoundedContentDecoder", "aiter_decoded", "iter_decoded"]

#: What the client asks for: the encodings it can decode in bounded pieces.
ACCEPT_ENCODING = "gzip, deflate"
#: The most decoded bytes one step produces.
PIECE_BYTES = 64 * 1024

_GZIP_WBITS = zlib.MAX_WBITS | 16
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS


class _ZlibStage:
    """gzip or deflate (zlib-wrapped, or raw as some servers send it, like httpx accepts)."""

    __slots__ = ("_decompressor", "_encoding", "_started")

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._decompressor = zlib.decompressobj(_GZIP_WBITS if encoding == "gzip" else _ZLIB_WBITS)
        self._started = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        full = True
        while data or full:  # a full piece may leave output pending inside zlib: ask again
            try:
                out = self._decompressor.decompress(data, PIECE_BYTES)
            except zlib.error as exc:
                if self._encoding == "deflate" and not self._started:
                    self._decompressor = zlib.decompressobj(_RAW_DEFLATE_WBITS)
                    self._started = True
                    continue
                raise APIResponseValidationError(
                    f"The server sent a body that is not valid {self._encoding} ({exc})."
                ) from None
            self._started = True
            data = self._decompressor.unconsumed_tail
            full = len(out) == PIECE_BYTES
            if out:
                yield out
            if self._decompressor.eof:
                return  # what follows the end of the stream is ignored, as httpx does

    def flush(self) -> Iterator[bytes]:
        # Every input byte was consumed and no piece was left full, so little can remain.
        rest = self._decompressor.flush()
        if rest:
            yield rest


class BoundedContentDecoder:
    """Decode a body with the response's `Content-Encoding`, in pieces of at most `PIECE_BYTES`."""

    __slots__ = ("_stages", "_undecodable")

    def __init__(self, content_encoding: str, *, status_code: int = 200) -> None:
        stages: list[_ZlibStage] = []
        #: An error answer's body in an encoding refused: its status still makes the error (a 503
        #: stays retryable), and this note stands for the body.
        self._undecodable: bytes | None = None
        # "gzip, deflate" was gzipped first, then deflated: undo it the other way round.
        for value in reversed(content_encoding.split(",")):
            encoding = value.strip().lower()
            if encoding in ("", "identity"):
                continue
            if encoding not in ("gzip", "deflate") and status_code >= 400:
                self._undecodable = (
                    f"(the body was sent in Content-Encoding {encoding!r}, which the client did not ask "
                    "for and does not decode)"
                ).encode()
                break
            if encoding not in ("gzip", "deflate"):
                raise APIResponseValidationError(
                    f"The server answered {status_code} with a body in Content-Encoding {encoding!r}, "
                    f"which the client did not ask for (it sends Accept-Encoding: {ACCEPT_ENCODING}) "
                    "and does not decode, as it could not bound its size. If an Accept-Encoding in "
                    "extra_headers or default_headers asked for it, remove that header."
                )
            stages.append(_ZlibStage(encoding))
        self._stages = tuple(stages)

    @property
    def is_identity(self) -> bool:
        """Nothing to decode: the raw chunks are the body (each no larger than one socket read)."""
        return not self._stages and self._undecodable is None

    def decode(self, data: bytes) -> Iterator[bytes]:
        if self._undecodable is not None:
            return iter(())
        return self._through(0, iter((data,)))

    def flush(self) -> Iterator[bytes]:
        if self._undecodable is not None:
            yield self._undecodable
            return
        for index, stage in enumerate(self._stages):
            yield from self._through(index + 1, stage.flush())

    def _through(self, index: int, pieces: Iterator[bytes]) -> Iterator[bytes]:
        if index == len(self._stages):
            yield from pieces
            return
        stage = self._stages[index]
        for piece in pieces:
            yield from self._through(index + 1, stage.decode(piece))


def iter_decoded(response: httpx.Response) -> Iterator[bytes]:
    """The decoded body of a streamed response, piece by piece (use instead of `iter_bytes()`)."""
    if response.is_stream_consumed:  # read already (a mock transport, a cassette): in memory
        yield response.content
        return
    decoder = BoundedContentDecoder(
        response.headers.get("content-encoding", ""), status_code=response.status_code
    )
    if decoder.is_identity:  # the common case, without a generator per chunk
        yield from response.iter_raw()
        return
    for raw in response.iter_raw():
        yield from decoder.decode(raw)
    yield from decoder.flush()


def aiter_decoded(response: httpx.Response) -> AsyncIterator[bytes]:
    """The decoded body of a streamed async response (use instead of `aiter_bytes()`)."""
    return _AsyncDecodedBody(response)


class _AsyncDecodedBody:
    """An async iterator object, not an async generator: a caller that stops early (the error
    body's cap) leaves no generator behind for the event loop to finalise."""

    __slots__ = ("_decoder", "_done", "_pending", "_raw", "_response")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._raw: AsyncIterator[bytes] | None = None
        self._decoder = BoundedContentDecoder("")
        self._pending: Iterator[bytes] = iter(())
        self._done = False

    def __aiter__(self) -> _AsyncDecodedBody:
        return self

    async def __anext__(self) -> bytes:
        while True:
            piece = next(self._pending, None)
            if piece is not None:
                return piece
            if self._done:
                raise StopAsyncIteration
            if self._raw is None:
                response = self._response
                if response.is_stream_consumed:  # read already (a mock transport, a cassette)
                    self._pending, self._done = iter((response.content,)), True
                    continue
                self._decoder = BoundedContentDecoder(
                    response.headers.get("content-encoding", ""), status_code=response.status_code
                )
                self._raw = response.aiter_raw()
            try:
                raw = await self._raw.__anext__()
            except StopAsyncIteration:
                self._pending, self._done = self._decoder.flush(), True
                continue
            if self._decoder.is_identity:
                return raw
            self._pending = self._decoder.decode(raw)
