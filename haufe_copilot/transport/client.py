"""The synchronous client: `HaufeCopilotClient`."""

from __future__ import annotations

import inspect
import time
from collections.abc import Generator, Iterator
from contextlib import closing
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx

from haufe_copilot import rate_limit
from haufe_copilot.errors import ConfigurationError
from haufe_copilot.protocol import attempt
from haufe_copilot.protocol.assistant import RequestSpec
from haufe_copilot.protocol.content_decoding import iter_decoded
from haufe_copilot.resources.assistant import Assistant
from haufe_copilot.resources.base import made_on_access
from haufe_copilot.resources.completions import Completions
from haufe_copilot.resources.streams import Streams
from haufe_copilot.transport.base_client import STANDING_HEADERS, BaseClient
from haufe_copilot.transport.options import DEFAULT_LIMITS, ClientOptions
from haufe_copilot.transport.streaming import ClosesOnExit

if TYPE_CHECKING:
    from typing_extensions import Unpack

T = TypeVar("T")

__all__ = ["HaufeCopilotClient"]


class HaufeCopilotClient(BaseClient, ClosesOnExit):
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
        self._owns_http = self._http_sends_standing_headers = http_client is None
        self._http = http_client or httpx.Client(
            headers=STANDING_HEADERS,
            timeout=self._config.timeout,
            follow_redirects=False,
            proxy=self._config.proxy,
            limits=self._config.limits or DEFAULT_LIMITS,
        )

    #: The Assistant API: answers with sources, threads (docs/contract.md, Assistant API).
    assistant = made_on_access(Assistant)
    #: The OpenAI-compatible completions API, with tools over SSE (docs/contract.md, Completions).
    completions = made_on_access(Completions)
    #: Background completions observed as resumable streams (docs/contract.md, Async streams).
    streams = made_on_access(Streams)

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

    # -- I/O: all this client adds to the flow of a call (haufe_copilot.protocol.attempt) ------

    def _request(self, call: attempt.Call[T]) -> T:
        """A blocking call: its result."""
        with closing(self._drive(call)) as steps:
            for raw in steps:
                if isinstance(raw, attempt.Raw):
                    return cast("T", self._parsed(raw))
        raise AssertionError("the flow of a blocking call ended without its result")  # pragma: no cover

    def _iterate(self, call: attempt.Call[T], *, batches: bool = False) -> Generator[Any, None, None]:
        """A stream: `Opened` once its 2xx status has arrived, then its items (`batches`: in the
        lists one read completed, for a `Stream(..., batched=True)`)."""
        return self._drive(call, batches=batches)

    def _drive(self, call: attempt.Call[Any], *, batches: bool = False) -> Generator[Any, None, None]:
        """Run the call's flow: do each step it yields, hand on everything else."""
        exchange = _Exchange(self, call.spec)
        stepper = attempt.Stepper(attempt.call_flow(self, call, cuts=False))
        try:
            while (step := stepper.next()) is not attempt.FINISHED:
                if isinstance(step, attempt.Step):
                    try:
                        stepper.reply = exchange.do(step)
                    except Exception as exc:  # the flow decides: it raises what it does not handle
                        stepper.failure = exc
                elif type(step) is attempt.Items:
                    if batches:
                        yield step
                    else:
                        yield from step
                else:
                    yield step
        finally:
            stepper.flow.close()
            exchange.close()

    def _send(self, spec: RequestSpec, timeout: httpx.Timeout, token: str | None) -> httpx.Response:
        rate_limit.before_attempt(self._rate_limiter)  # every attempt waits its turn
        request = self._build_request(self._http, spec, timeout, token)
        started = self._log_request(request)
        # Never follow a redirect, even with an `http_client` that would: httpx strips
        # Authorization on a cross-origin redirect but not `api-key` (docs/contract.md, Base URLs).
        response = self._http.send(request, stream=True, follow_redirects=False)
        self._log_response(request, response, started)
        rate_limit.after_response(self._rate_limiter, response.status_code, response.headers)
        return response

    def _provided_token(self) -> object:
        token = self._config.token_provider()  # type: ignore[misc]  # a Token step: a provider is set
        if inspect.isawaitable(token):
            if inspect.iscoroutine(token):
                token.close()
            raise ConfigurationError(
                "token_provider returned an awaitable: use AsyncHaufeCopilotClient with an async "
                "provider, or give HaufeCopilotClient a plain function."
            )
        return token


class _Exchange:
    """The I/O of one call: the response open now and the pieces of its body."""

    __slots__ = ("chunks", "client", "response", "spec")

    def __init__(self, client: HaufeCopilotClient, spec: RequestSpec) -> None:
        self.client, self.spec = client, spec
        self.response: httpx.Response | None = None
        self.chunks: Iterator[bytes] = iter(())

    def do(self, step: attempt.Step) -> Any:
        kind = type(step)
        if kind is attempt.Read:
            return next(self.chunks, None)
        if kind is attempt.Send:
            assert isinstance(step, attempt.Send)
            self.close()
            self.response = self.client._send(self.spec, step.timeout, step.token)
            self.chunks = iter_decoded(self.response)
            return self.response
        if kind is attempt.Close:
            self.close()
        elif isinstance(step, attempt.Sleep):
            time.sleep(step.seconds)
        else:
            return self.client._provided_token()
        return None

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
            self.response = None
