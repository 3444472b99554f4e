"""Configuration and the transport-independent half of both clients.

`ClientConfig` resolves arguments and environment variables once; `BaseClient` turns a
`RequestSpec` into URL, headers and body, maps httpx's exceptions onto ours and logs without
credentials. The sync and async clients add only the I/O.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from haufe_copilot._version import __version__
from haufe_copilot.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    InvalidRequestError,
    NotFoundError,
    error_from_response,
    inert,
)
from haufe_copilot.log import configure_from_environment, logger, redacted_headers
from haufe_copilot.protocol.assistant import RequestSpec, check_extra_headers
from haufe_copilot.protocol.attempt import MAX_ERROR_BODY_BYTES, CallSettings, Raw
from haufe_copilot.protocol.content_decoding import ACCEPT_ENCODING
from haufe_copilot.protocol.deadline import Deadline, check_deadline
from haufe_copilot.protocol.retry import retry_delay
from haufe_copilot.protocol.settings import check_proxy, check_url_port, validate_timeout
from haufe_copilot.rate_limit import RateLimiter, check_rate_limiter
from haufe_copilot.transport.options import (
    CLIENT_OPTIONS,
    COPY_OPTIONS,
    DEFAULT_TIMEOUT,
    ClientOptions,
    TokenProvider,
)

DEFAULT_BASE_URL = "https://api.haufe.ai"
USER_AGENT = f"haufe-copilot-python/{__version__}"
#: The headers of every request: the http clients this package builds carry them as their own
#: (`_http_sends_standing_headers`), so that a request merges only what differs; an
#: `http_client` passed in gets them with each request. Accept-Encoding: only the encodings the
#: client decodes in bounded pieces (see protocol/content_decoding).
STANDING_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "application/json",
    "Accept-Encoding": ACCEPT_ENCODING,
}

T = TypeVar("T")

configure_from_environment()

#: Where the blocking calls of a `with_raw_response` method put the answers they received.
RAW_RESPONSES: ContextVar[list[Raw[Any]] | None] = ContextVar("haufe_copilot_raw_responses", default=None)


@dataclass(frozen=True)
class ClientConfig:
    """Every option of `ClientOptions`, resolved (environment, defaults) and checked once."""

    api_key: str | None = field(repr=False)
    base_url: str
    platform_api_key: str | None = field(repr=False)
    platform_base_url: str
    token_provider: TokenProvider | None = field(repr=False)
    timeout: httpx.Timeout
    #: The most a whole call may take, in seconds (None: no limit; see `Deadline`).
    deadline: float | None
    max_retries: int
    default_headers: Mapping[str, str]
    allow_insecure_http: bool
    max_line_bytes: int
    max_response_bytes: int
    max_partial_chars: int
    #: A forward proxy for every request; None: the environment's (HTTP_PROXY, HTTPS_PROXY,
    #: ALL_PROXY, NO_PROXY, as httpx reads them).
    proxy: str | None = field(repr=False)
    limits: httpx.Limits | None
    rate_limiter: RateLimiter | None = field(repr=False)

    @classmethod
    def resolve(cls, options: ClientOptions) -> ClientConfig:
        unknown = set(options) - set(CLIENT_OPTIONS)
        if unknown:
            raise TypeError(
                f"got an unexpected keyword argument {sorted(unknown)[0]!r}; the options are "
                f"{', '.join(CLIENT_OPTIONS)} and http_client (see ClientOptions)."
            )
        given: dict[str, Any] = {name: options.get(name, o.default) for name, o in CLIENT_OPTIONS.items()}
        # Asked before every attempt and told of every 429 (haufe_copilot.rate_limit).
        rate_limiter = check_rate_limiter(given["rate_limiter"])
        api_key, platform_api_key = given["api_key"], given["platform_api_key"]
        api_key = api_key if api_key is not None else os.environ.get("HAUFE_COPILOT_API_KEY") or None
        for name, key in (("api_key", api_key), ("platform_api_key", platform_api_key)):
            if key is not None:
                check_credential(name, key)
        if (
            api_key is None
            and platform_api_key is None
            and given["token_provider"] is None
            and not os.environ.get("HAUFE_COPILOT_PLATFORM_API_KEY")
        ):
            raise ConfigurationError(
                "No API key: pass api_key=... or set the HAUFE_COPILOT_API_KEY environment variable "
                "(for the local emulator the key is sk-emulator-dev)."
            )
        base = _normalise_url(
            given["base_url"] or os.environ.get("HAUFE_COPILOT_BASE_URL") or DEFAULT_BASE_URL, "base_url"
        )
        platform_base = _normalise_url(
            given["platform_base_url"] or os.environ.get("HAUFE_COPILOT_PLATFORM_BASE_URL") or base,
            "platform_base_url",
        )
        for name, url in (("base_url", base), ("platform_base_url", platform_base)):
            if not given["allow_insecure_http"] and not _is_safe_origin(url):
                raise ConfigurationError(
                    f"Refusing to send credentials over plain http to {urlsplit(url).hostname} "
                    f"({name}={url!r}): use https, or pass allow_insecure_http=True if this "
                    "network is trusted. Plain http is accepted for loopback addresses."
                )
        max_retries = given["max_retries"]
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries must be a whole number >= 0, not {max_retries!r}.")
        for name in ("max_line_bytes", "max_response_bytes", "max_partial_chars"):
            value = given[name]
            if not isinstance(value, int) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive number of bytes, not {value!r}.")
        limits = given["limits"]
        if limits is not None and (
            not isinstance(limits, httpx.Limits)
            or (limits.max_connections is not None and limits.max_connections < 1)
        ):
            raise ConfigurationError(
                "limits must be an httpx.Limits allowing at least one connection, such as "
                f"httpx.Limits(max_connections=200), not {limits!r}."
            )
        return cls(
            **{
                **given,
                "api_key": api_key,
                "base_url": base,
                "platform_api_key": platform_api_key
                if platform_api_key is not None
                else os.environ.get("HAUFE_COPILOT_PLATFORM_API_KEY") or api_key,
                "platform_base_url": platform_base,
                "timeout": _as_timeout(given["timeout"]),
                "default_headers": check_extra_headers(
                    given["default_headers"], "default_headers", error=ConfigurationError
                ),
                "proxy": check_proxy(given["proxy"]),
                "deadline": check_deadline(given["deadline"]),
                "rate_limiter": rate_limiter,
            }
        )

    def copy_options(self, changes: Mapping[str, Any]) -> ClientOptions:
        """The options of a copy with `changes` (only `COPY_OPTIONS`; headers are merged). The
        proxy and the limits stay out: a copy shares its original's pools, built with them."""
        unknown = set(changes) - COPY_OPTIONS
        if unknown:
            raise ConfigurationError(
                f"with_options() takes only {sorted(COPY_OPTIONS)}, not {sorted(unknown)}."
            )
        options: dict[str, Any] = {
            name: getattr(self, name) for name in CLIENT_OPTIONS if name not in ("proxy", "limits")
        }
        options.update(changes)
        if "default_headers" in changes:
            options["default_headers"] = {**self.default_headers, **changes["default_headers"]}
        return options  # type: ignore[return-value]  # the names of ClientOptions, checked above


def _as_timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    checked = validate_timeout(timeout, error=ConfigurationError)
    if checked is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, httpx.Timeout):
        return checked
    seconds = float(timeout)  # type: ignore[arg-type]  # a number: validate_timeout checked it
    return httpx.Timeout(seconds, connect=min(seconds, DEFAULT_TIMEOUT.connect or 5.0))


def _normalise_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    if "@" in parts.netloc:  # user:password@host: a credential that every repr and log would show
        raise ConfigurationError(
            f"{name} must not carry credentials (user:password@host); pass the key as api_key= "
            "(the URL is not shown here)."
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = "this value" if "@" in url else repr(url)  # "user:password@host" without a scheme
        raise ConfigurationError(f"{name} must be an http(s) URL such as https://api.haufe.ai, not {shown}.")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{name} must not have a query or fragment: {url!r}.")
    check_url_port(url, name)
    return url.rstrip("/")


def _is_safe_origin(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def display_url(url: httpx.URL) -> str:
    """A URL fit for messages and logs: no user info."""
    return str(url.copy_with(username=None, password=None)) if url.userinfo else str(url)


def transport_error(exc: httpx.TransportError) -> APIConnectionError:
    """Our error for an httpx transport failure; `request_sent` tells whether the server may have it.

    The httpx exception stays the `__cause__`, but the request it carries is replaced by a copy
    without credentials: `exc.__cause__.request.headers` held the api-key or Bearer token."""
    try:
        request = exc.request
    except RuntimeError:  # an exception raised without a request attached
        where = "the server"
    else:
        where = display_url(request.url)
        exc.request = redacted_request(request)
    reason = inert(str(exc) or type(exc).__name__)
    error: APIConnectionError
    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        error = APITimeoutError(f"Timed out connecting to {where} ({reason}).", request_sent=False)
    elif isinstance(exc, httpx.TimeoutException):
        error = APITimeoutError(f"No answer from {where} within the timeout ({reason}).")
    elif isinstance(exc, httpx.ConnectError):
        error = APIConnectionError(f"Could not connect to {where} ({reason}).", request_sent=False)
    else:
        error = APIConnectionError(
            f"The connection to {where} failed before the answer was complete ({reason})."
        )
    error.__cause__ = exc
    return error


def redacted_request(request: httpx.Request) -> httpx.Request:
    """A copy of a request fit to travel on an exception: method, URL and headers, the
    credentials replaced by the marker of `_logging.redacted_headers` (the one rule), no body."""
    url = request.url.copy_with(username=None, password=None) if request.url.userinfo else request.url
    return httpx.Request(request.method, url, headers=redacted_headers(request.headers.multi_items()))


def check_credential(name: str, value: object) -> None:
    """A key or token must be a header value httpx can send; the message never shows it (httpx's and
    h11's own errors for an illegal header value quote the value: the secret)."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string, not {type(value).__name__}.")
    if not value.isascii() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigurationError(
            f"{name} holds a control character (such as a line break) or a character that is not "
            "ASCII; check how it was copied (the value is not shown here)."
        )
    if value != value.strip():
        raise ConfigurationError(
            f"{name} starts or ends with whitespace; check how it was copied (the value is not shown here)."
        )


class BaseClient:
    """Configuration, request assembly and logging shared by both clients."""

    _config: ClientConfig

    def __init__(self, options: ClientOptions) -> None:
        config = self._config = ClientConfig.resolve(options)
        self._rate_limiter = config.rate_limiter
        self._settings = CallSettings(
            timeout=config.timeout,
            refreshes_tokens=config.token_provider is not None,
            max_line_bytes=config.max_line_bytes,
            max_response_bytes=config.max_response_bytes,
            max_partial_chars=config.max_partial_chars,
        )
        #: Whether the http client carries `STANDING_HEADERS` itself (one this package built).
        self._http_sends_standing_headers = False

    def _check_given_http(self, http_client: object, expected: type[object], otherwise: str) -> None:
        """An `http_client` passed in is of the client's kind and leaves the pool options unset."""
        if http_client is None:
            return
        kind = f"httpx.{expected.__name__}"
        if not isinstance(http_client, expected):
            raise TypeError(
                f"http_client must be an {kind}, not {type(http_client).__name__} (use {otherwise})."
            )
        for name in ("proxy", "limits"):
            if getattr(self._config, name) is not None:
                raise ConfigurationError(
                    f"{name}= applies to the connection pools the client builds; with http_client= set "
                    f"the {name} on your {kind} (its {name}= argument) instead."
                )

    # Public read-only views of the configuration (never the keys).
    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def platform_base_url(self) -> str:
        return self._config.platform_base_url

    @property
    def timeout(self) -> httpx.Timeout:
        return self._config.timeout

    @property
    def max_retries(self) -> int:
        return self._config.max_retries

    @property
    def deadline(self) -> float | None:
        """The most a whole call may take, in seconds, or None."""
        return self._config.deadline

    @property
    def max_response_bytes(self) -> int:
        return self._config.max_response_bytes

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self._config.base_url!r}, "
            f"max_retries={self._config.max_retries}, api_key={'<set>' if self._config.api_key else None})"
        )

    def __getstate__(self) -> Any:
        raise TypeError(
            f"{type(self).__name__} holds open connections and cannot be pickled; "
            "pickle its configuration and build a new client instead."
        )

    @staticmethod
    def _parsed(raw: Raw[T]) -> T:
        """A blocking call's result; its answer kept for `with_raw_response` when it asks."""
        captured = RAW_RESPONSES.get()
        if captured is not None:
            captured.append(raw)
        return raw.parsed

    def _attempt_timeout(self, timeout: httpx.Timeout | None, deadline: Deadline | None) -> httpx.Timeout:
        timeout = timeout or self._config.timeout
        return timeout if deadline is None else deadline.capped(timeout)

    def _url(self, spec: RequestSpec) -> str:
        base = self._config.base_url if spec.api == "assistant" else self._config.platform_base_url
        return base + spec.path

    def _headers(self, spec: RequestSpec, bearer_token: str | None = None) -> httpx.Headers | dict[str, str]:
        headers = {} if self._http_sends_standing_headers else dict(STANDING_HEADERS)
        if spec.body is not None:
            headers["Content-Type"] = "application/json"
        if spec.api == "assistant":
            if self._config.api_key is None:
                raise ConfigurationError(
                    "The assistant API needs an API key: pass api_key=... or set HAUFE_COPILOT_API_KEY."
                )
            headers["api-key"] = self._config.api_key
        elif bearer_token is not None:
            headers["Authorization"] = f"Bearer {bearer_token}"
        if not self._config.default_headers and not spec.headers:
            return headers  # httpx merges them with its own, as below
        merged = httpx.Headers(headers)
        # Case-insensitive: a caller's "accept" replaces ours instead of sending a second one.
        merged.update(self._config.default_headers)
        merged.update(spec.headers)
        return merged

    def _build_request(
        self,
        http: httpx.Client | httpx.AsyncClient,
        spec: RequestSpec,
        timeout: httpx.Timeout | None,
        bearer_token: str | None = None,
    ) -> httpx.Request:
        return http.build_request(
            spec.method,
            self._url(spec),
            params=spec.params or None,
            headers=self._headers(spec, bearer_token),
            content=spec.content(),
            timeout=timeout or self._config.timeout,
        )

    @staticmethod
    def _log_request(request: httpx.Request) -> float:
        if logger.isEnabledFor(10):
            logger.debug(
                "%s %s headers=%s",
                request.method,
                display_url(request.url),
                redacted_headers(request.headers.items()),
            )
        return time.perf_counter()

    @staticmethod
    def _log_response(request: httpx.Request, response: httpx.Response, started: float) -> None:
        if logger.isEnabledFor(10):
            logger.debug(
                "%s %s -> %s in %.0f ms request_id=%s",
                request.method,
                display_url(request.url),
                response.status_code,
                (time.perf_counter() - started) * 1000,
                response.headers.get("x-request-id"),
            )

    def _call_deadline(self, seconds: float | None) -> Deadline | None:
        """The deadline of one call: `seconds` given per call, else the client's (not started yet)."""
        seconds = check_deadline(seconds, InvalidRequestError)
        if seconds is None:
            seconds = self._config.deadline
        return None if seconds is None else Deadline(seconds)

    def _transport_error(
        self, exc: httpx.TransportError, spec: RequestSpec, deadline: Deadline | None
    ) -> APIConnectionError:
        """Our error for an httpx failure; the deadline's own for a timeout it caused (every httpx
        timeout of an attempt is capped by what is left of the deadline)."""
        error = transport_error(exc)
        if deadline is None or not isinstance(error, APITimeoutError) or not deadline.expired:
            return error
        expired = deadline.error(self._url(spec))
        expired.__cause__ = exc
        return expired

    def _retry_delay(
        self,
        error: APIError,
        spec: RequestSpec,
        retries_done: int,
        *,
        answered: bool,
        deadline: Deadline | None = None,
    ) -> float | None:
        """Seconds before the next attempt (logged), or None to raise. Nothing is retried once a
        2xx status has arrived: the server took the request, so an error inside the body (an
        `{error_code}` line, an `error` event, a cut) is the answer, and a replay could duplicate
        the turn or the completion. Nor is anything retried when the deadline would pass during
        the wait."""
        max_retries = self._config.max_retries
        delay = (
            None
            if answered
            else retry_delay(
                error,
                retries_done=retries_done,
                max_retries=max_retries,
                replay_unsafe=spec.replay_unsafe,
            )
        )
        if delay is not None and deadline is not None and deadline.remaining() <= delay:
            logger.info(
                "Not retrying after %s: the call's deadline of %g s would pass during the %.2f s wait",
                type(error).__name__,
                deadline.seconds,
                delay,
            )
            delay = None
        if delay is None:
            # The error is raised now: its message says how often it was tried, truthfully.
            error.retries_done, error.max_retries = retries_done, max_retries
            return None
        logger.info(
            "Retrying in %.2f s (retry %d of %d) after %s: %s",
            delay,
            retries_done + 1,
            max_retries,
            type(error).__name__,
            inert(error.message),  # server text: capped, and no line break to forge a log line
        )
        return delay

    def _static_bearer(self, spec: RequestSpec) -> str | None:
        if spec.api != "platform":
            return None
        if self._config.platform_api_key is None:
            raise ConfigurationError(
                "The completions and async-streams APIs need a key or token: pass api_key=, "
                "platform_api_key= or token_provider=."
            )
        return self._config.platform_api_key

    @staticmethod
    def _checked_token(token: object) -> str:
        if (
            not isinstance(token, str)
            or not token.strip()
            or any(ord(c) < 32 or ord(c) == 127 for c in token)
        ):
            raise ConfigurationError(
                "token_provider must return the access token as a non-empty single-line string, "
                f"not {type(token).__name__}."
            )
        check_credential("The token from token_provider", token)
        return token

    def _status_error(self, response: httpx.Response, body: bytes) -> APIStatusError:
        error = error_from_response(response.status_code, response.headers, body[:MAX_ERROR_BODY_BYTES])
        if isinstance(error, NotFoundError) and error.error_code is None:
            # The service names what it did not find; a bare 404 means no such path: most often
            # a base_url with a path of its own (".../v1", as OpenAI's clients are configured).
            error.message = (
                f"{error.message}{'' if error.message.endswith('.') else '.'} {self._no_such_path(response)}"
            )
        return error

    def _no_such_path(self, response: httpx.Response) -> str:
        url = display_url(response.request.url.copy_with(query=None))
        config = self._config
        base = next((b for b in (config.base_url, config.platform_base_url) if url.startswith(b + "/")), None)
        if base is None:
            return f"Nothing answers at {url}: check base_url."
        name = "base_url" if base == config.base_url else "platform_base_url"
        return (
            f"Nothing answers at {url}: check {name}={base!r}. It is the service's root, such as "
            f"{DEFAULT_BASE_URL}, without a path such as /v1: the client appends {url[len(base) :]} "
            "itself. If it is right, check the ids in the path."
        )
