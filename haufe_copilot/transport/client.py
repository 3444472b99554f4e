"""The synchronous client: `HaufeCopilotClient`."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from haufe_copilot import rate_limit
from haufe_copilot.errors import APIError, ConfigurationError
from haufe_copilot.protocol.assistant import Decoder, RequestSpec, StreamFormat, check_stream_end
from haufe_copilot.protocol.content_decoding import iter_decoded
from haufe_copilot.protocol.deadline import Deadline, ReadGuard
from haufe_copilot.resources.assistant import Assistant
from haufe_copilot.resources.completions import Completions
from haufe_copilot.resources.streams import Streams
from haufe_copilot.transport.base_client import MAX_ERROR_BODY_BYTES, BaseClient, WholeBody, check_body_size
from haufe_copilot.transport.options import DEFAULT_LIMITS, ClientOptions

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["HaufeCopilotClient"]


def _decoded(decoder: Decoder[R], chunks: Iterator[bytes], guard: ReadGuard, limit: int) -> Iterator[R]:
    """The items of a body: what each piece completes, then what its end completes; each piece
    checked against the call's limits first (deadline, stall, `max_response_bytes`)."""
    received = 0
    for data in chunks:
        guard.check()
        received += len(data)
        check_body_size(received, limit)
        yield from decoder.feed(data)
    yield from decoder.close()


class HaufeCopilotClient(BaseClient):
    """A synchronous client for Haufe Copilot; thread-safe, one connection pool.

    >>> client = HaufeCopilotClient(api_key="sk-...")
    >>> answer = client.assistant.chat(assistant_id="...", messages=[{"role": "user", "content": "..."}])
    >>> for chunk in client.assistant.stream(assistant_id="...", messages=[...]):
    ...     print(chunk.delta.content, end="")

    Configuration: the keyword arguments of `ClientOptions` (haufe_copilot.transport.options,
    each with its default and meaning: `api_key`, `base_url`, `timeout`, `deadline`,
    `max_retries`, `limits`, `proxy`, `rate_limiter`, ...), and `http_client` (an `httpx.Client`
    you own, used as it is and never closed here).
    """

    def __init__(self, *, http_client: httpx.Client | None = None, **options: Unpack[ClientOptions]) -> None:
        super().__init__(options)
        self._check_given_http(http_client, httpx.Client, "AsyncHaufeCopilotClient for an httpx.AsyncClient")
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=self._config.timeout,
            follow_redirects=False,
            proxy=self._config.proxy,
            limits=self._config.limits or DEFAULT_LIMITS,
        )

    # The resources are made on each access rather than kept: kept, they would tie the client
    # into a reference cycle, and a client dropped without close() would then wait for the
    # cyclic garbage collector, which may finalise its sockets before the client closes them.
    @property
    def assistant(self) -> Assistant:
        """The Assistant API: answers with sources, threads (docs/contract.md, Assistant API)."""
        return Assistant(self)

    @property
    def completions(self) -> Completions:
        """The OpenAI-compatible completions API, with tools over SSE (docs/contract.md, Completions)."""
        return Completions(self)

    @property
    def streams(self) -> Streams:
        """Background completions observed as resumable streams (docs/contract.md, Async streams)."""
        return Streams(self)

    def with_options(self, **changes: Any) -> HaufeCopilotClient:
        """A client with some options changed (`timeout`, `max_retries`, ...), sharing this pool."""
        return HaufeCopilotClient(**self._config.copy_options(changes), http_client=self._http)

    def close(self) -> None:
        """Close the connection pool (unless it was passed in as `http_client`)."""
        if self._owns_http:
            self._http.close()

    def __del__(self) -> None:
        # A client dropped without close() must not leave sockets open: closing a sync pool is
        # a plain synchronous call, safe here (the async client never does I/O from __del__).
        try:
            if self._owns_http:
                self._http.close()
        except Exception:  # noqa: S110 - half-built client or interpreter shutdown
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- I/O --------------------------------------------------------------------------------

    def _open(self, spec: RequestSpec, timeout: httpx.Timeout | None) -> httpx.Response:
        """Send one attempt; a response with a 2xx status, its body not yet read. A 401 on the
        platform API with a `token_provider` asks it once more for a fresh token."""
        token = self._bearer_token(spec)
        response = self._send(spec, timeout, token)
        if response.status_code == 401 and token is not None and self._config.token_provider is not None:
            response.close()
            response = self._send(spec, timeout, self._bearer_token(spec))
        if response.is_success:
            return response
        try:
            body = bytearray()
            for data in iter_decoded(response):
                body += data
                if len(body) >= MAX_ERROR_BODY_BYTES:
                    break
        finally:
            response.close()
        raise self._status_error(response, bytes(body))

    def _send(self, spec: RequestSpec, timeout: httpx.Timeout | None, token: str | None) -> httpx.Response:
        rate_limit.before_attempt(self._rate_limiter)  # every attempt waits its turn
        request = self._build_request(self._http, spec, timeout, token)
        started = self._log_request(request)
        # Never follow a redirect, even with an `http_client` that would: httpx strips
        # Authorization on a cross-origin redirect but not `api-key` (docs/contract.md, Base URLs).
        response = self._http.send(request, stream=True, follow_redirects=False)
        self._log_response(request, response, started)
        rate_limit.after_response(self._rate_limiter, response.status_code, response.headers)
        return response

    def _bearer_token(self, spec: RequestSpec) -> str | None:
        provider = self._config.token_provider
        if spec.api != "platform" or provider is None:
            return self._static_bearer(spec)
        token = provider()
        if inspect.isawaitable(token):
            if inspect.iscoroutine(token):
                token.close()
            raise ConfigurationError(
                "token_provider returned an awaitable: use AsyncHaufeCopilotClient with an async "
                "provider, or give HaufeCopilotClient a plain function."
            )
        return self._checked_token(token)

    def _request(
        self,
        spec: RequestSpec,
        parse: Callable[[bytes], T],
        timeout: httpx.Timeout | None,
        deadline: Deadline | None = None,
    ) -> T:
        """A blocking call with retries: retried only before a 2xx status (docs/contract.md, Retries)."""
        retries_done = 0
        if deadline is not None:
            deadline.start()
        while True:
            answered = False  # a 2xx status arrived: the server took the request
            try:
                response = self._open(spec, self._attempt_timeout(timeout, deadline))
                answered = True
                try:
                    body = WholeBody()
                    guard = ReadGuard(deadline, None, self._url(spec))
                    for _ in _decoded(body, iter_decoded(response), guard, self._config.max_response_bytes):
                        pass
                finally:
                    response.close()
                return parse(bytes(body.data))
            except httpx.TransportError as exc:
                error: APIError = self._transport_error(exc, spec, deadline)
            except APIError as exc:
                error = exc
            delay = self._retry_delay(error, spec, retries_done, answered=answered, deadline=deadline)
            if delay is None:
                raise error
            time.sleep(delay)
            retries_done += 1

    def _iterate(
        self,
        spec: RequestSpec,
        fmt: StreamFormat[Any, T],
        timeout: httpx.Timeout | None,
        deadline: Deadline | None = None,
    ) -> Generator[T, None, None]:
        """Stream items; retried only before a 2xx status, so never after an item reached the
        caller; a body that ends short of its format's end is an error (`check_stream_end`).

        The stream ends with `APITimeoutError` once `deadline` has passed, or once no item has
        come for longer than the read timeout (the stall guard: keep-alives are not items)."""
        retries_done = 0
        delivered: list[str] = []  # the partial text an error carries, up to max_partial_chars
        kept, cap, more = 0, self._config.max_partial_chars, False
        convert, text_of, is_final = fmt.convert, fmt.text_of, fmt.is_final
        stall = (timeout or self._config.timeout).read
        if deadline is not None:
            deadline.start()
        while True:
            response: httpx.Response | None = None
            answered = finished = False
            items = 0
            try:
                response = self._open(spec, self._attempt_timeout(timeout, deadline))
                answered = True  # from here on nothing is retried: the server took the request
                guard = ReadGuard(deadline, stall, self._url(spec))
                raws = _decoded(
                    fmt.decoder(self._config.max_line_bytes),
                    iter_decoded(response),
                    guard,
                    self._config.max_response_bytes,
                )
                for raw in raws:
                    item = convert(raw)
                    if is_final is not None and not finished:
                        finished = is_final(raw, item)
                    if item is not None:
                        items += 1
                        if kept < cap:
                            text = text_of(item)
                            delivered.append(text)
                            kept += len(text)
                        else:
                            more = True
                        yield item
                        guard.content()  # the stall clock restarts when the caller hands back
                check_stream_end(fmt, finished=finished, items=items)
                return
            except httpx.TransportError as exc:
                error: APIError = self._transport_error(exc, spec, deadline)
            except APIError as exc:
                error = exc
            finally:
                if response is not None:
                    response.close()
            if delivered:
                partial = "".join(delivered)
                error.partial = partial[:cap]
                error.partial_truncated = more or len(partial) > cap
            delay = self._retry_delay(error, spec, retries_done, answered=answered, deadline=deadline)
            if delay is None:
                raise error
            time.sleep(delay)
            retries_done += 1
