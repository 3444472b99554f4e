"""The exceptions of the Haufe Copilot client, and how a server answer maps onto them.

Every exception is a `HaufeCopilotError`. Answers from the server become `APIStatusError`
subclasses, classified on the body's `error_code` first and the HTTP status second (docs/contract.md), so
that an HTML page from a proxy, an empty body or the gateway's `{"message": ...}` still gives the
right class and a readable message. Classification is pure: it takes a status, headers and body
bytes, and never sees a request's credentials.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "EmptyMessageError",
    "GatewayTimeoutError",
    "HaufeCopilotError",
    "InternalServerError",
    "InvalidRequestError",
    "MissingAssistantError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimiterUnavailableError",
    "ResponseTooLargeError",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
    "error_from_response",
    "error_from_stream_object",
    "is_error_object",
    "parse_retry_after",
]

# Retry-After beyond this is treated as this: a caller should not hang for minutes (docs/contract.md).
MAX_RETRY_AFTER_SECONDS = 60.0
#: How much server text a message or log line quotes; the whole (capped) body stays on `.body`.
MAX_QUOTED_CHARS = 500


class HaufeCopilotError(Exception):
    """The base class of every error this package raises."""

    #: The text of the answer delivered before the error (streams only; "" otherwise).
    partial: str = ""
    #: Whether more was delivered than `partial` holds (it keeps up to `max_partial_chars`).
    partial_truncated: bool = False


class ConfigurationError(HaufeCopilotError, ValueError):
    """The client was configured in a way that cannot work (missing key, insecure URL, ...)."""


class InvalidRequestError(HaufeCopilotError, ValueError):
    """The caller's input was rejected before anything was sent."""


class EmptyMessageError(InvalidRequestError):
    """A question (a user message) was empty or only whitespace, refused before anything was sent.

    The service answers such a request with `message_content_empty`; the client refuses it first,
    so no request is spent on it and no empty turn lands in a server thread.
    """

    error_code: ClassVar[str] = "message_content_empty"


class MissingAssistantError(ConfigurationError, InvalidRequestError):
    """A call on the assistant path with no assistant configured or passed: both a
    `ConfigurationError` (what it is) and an `InvalidRequestError` (what LangChain users caught)."""


class RateLimiterUnavailableError(HaufeCopilotError):
    """The shared rate limiter could not be asked (its Redis is unreachable) and is configured to
    refuse then (`on_redis_error="closed"`): the request was not sent."""


class APIError(HaufeCopilotError):
    """A request was sent and did not give a usable answer."""

    #: Whether the client retries this error (before a 2xx status arrived).
    retryable: ClassVar[bool] = False
    #: What the caller can do about it, appended to the message.
    hint: ClassVar[str] = ""
    #: Set by the client that gave up on the call: the retries it made and the `max_retries` it had,
    #: so that the message says what really happened (None: raised outside a client's retry loop).
    retries_done: int | None = None
    max_retries: int | None = None

    def __init__(self, message: str, *, partial: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.partial = partial

    @property
    def advice(self) -> str:
        """The hint for this error; a message may override it where it knows better."""
        return self.hint

    def _retry_note(self) -> str:
        if self.retries_done is None or self.max_retries is None or not self._may_retry():
            return ""
        if self.retries_done:
            times = "once" if self.retries_done == 1 else f"{self.retries_done} times"
            return f"It was retried {times} (max_retries={self.max_retries})."
        if self.max_retries == 0:
            return "It was not retried (max_retries=0)."
        return "It was not retried: the server may have acted on it, or part of the answer had arrived."

    def _may_retry(self) -> bool:
        return type(self).retryable

    def __str__(self) -> str:
        text = self.message
        for note in (self.advice, self._retry_note()):
            if note:
                # A sentence of its own: the server's detail rarely ends with a full stop.
                text = f"{text} {note}" if text.endswith((".", "!", "?")) else f"{text}. {note}"
        if self.partial:
            delivered = len(self.partial)
            if self.partial_truncated:
                text = (
                    f"{text} (more of the answer was delivered before this; .partial keeps its first "
                    f"{delivered} characters: raise max_partial_chars to keep more)"
                )
            else:
                text = (
                    f"{text} ({delivered} characters of the answer were delivered before this; see .partial)"
                )
        return text


class APIConnectionError(APIError):
    """No complete answer arrived: the connection was refused, reset or cut."""

    retryable = True
    hint = "Check the network and base_url."

    def __init__(self, message: str, *, partial: str = "", request_sent: bool = True) -> None:
        super().__init__(message, partial=partial)
        #: False when the failure happened before the request left this machine, so the server
        #: cannot have stored it (which makes retrying a thread continuation safe).
        self.request_sent = request_sent


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout, a stream without content for its read timeout, or
    a call past its `deadline`."""

    hint = "Raise `timeout=` (or `deadline=`) if the service is slow."
    #: The call's deadline in seconds when that is what passed (the call is over: nothing
    #: retries it, nor opens a new thread for it); None for any other timeout.
    deadline: float | None = None


class APIResponseValidationError(APIError):
    """The server answered with something this client cannot read (malformed JSON, wrong shape)."""

    hint = "This is a server or proxy fault; please report it with the request id if there is one."


class ResponseTooLargeError(APIResponseValidationError):
    """An answer, or one line or event of a stream, exceeded the client's size bound."""

    hint = "Raise the bound (max_line_bytes / max_response_bytes) if this answer is legitimate."


class APIStatusError(APIError):
    """The server answered with an error status (or an error line inside a stream)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error_code: str | None = None,
        detail: Any = None,
        body: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        partial: str = "",
    ) -> None:
        super().__init__(message, partial=partial)
        self.status_code = status_code
        self.error_code = error_code
        self.detail = detail
        self.body = body
        self.request_id = request_id
        #: Seconds the server asked us to wait (Retry-After / retry-after-ms), capped at 60.
        self.retry_after = retry_after

    @property
    def retryable_status(self) -> bool:
        return type(self).retryable or self.status_code == 408

    def _may_retry(self) -> bool:
        return self.retryable_status

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, "
            f"error_code={self.error_code!r}, request_id={self.request_id!r})"
        )


class BadRequestError(APIStatusError):
    hint = "Fix the request; for incorrect_stack_ending the last message must be user, tool or system."


class AuthenticationError(APIStatusError):
    hint = "Check the API key (api_key= or the HAUFE_COPILOT_API_KEY environment variable)."


class PermissionDeniedError(APIStatusError):
    hint = "The key is valid but may not use this assistant or resource; check assistant_id and the tenant."


class NotFoundError(APIStatusError):
    hint = "Check assistant_id and thread_id."

    @property
    def advice(self) -> str:
        # The service names what it did not find; a 404 without a code comes from a path that
        # does not exist (a base_url with a path such as /v1), which the client says in the message.
        return self.hint if self.error_code else ""


class ConflictError(APIStatusError):
    hint = "The resource is busy or not unique; wait and try again, or change the request."


class UnprocessableEntityError(APIStatusError):
    hint = "The request body does not match the API; see .detail for the fields."


class RateLimitError(APIStatusError):
    retryable = True
    hint = "Slow down, or raise max_retries to wait longer."


class InternalServerError(APIStatusError):
    retryable = True
    hint = "A server fault."


class ServiceUnavailableError(APIStatusError):
    retryable = True
    hint = "A service behind the API (or a proxy) is unavailable."


class GatewayTimeoutError(APIStatusError):
    retryable = True
    hint = "The service took too long."


_CLASS_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    500: InternalServerError,
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    504: GatewayTimeoutError,
}

#: The HTTP status each documented error code is sent with (docs/contract.md, Errors); an error line
#: inside a 200 stream is given this status.
STATUS_BY_CODE: dict[str, int] = {
    "unauthorized": 401,
    "attachment_access_forbidden": 403,
    "assistant_not_available": 403,
    "assistant_not_found": 404,
    "resource_not_found": 404,
    "thread_not_found": 404,
    "conflict": 409,
    "attachment_not_unique": 409,
    "incorrect_stack_ending": 400,
    "validation_error": 422,
    "rate_limit_gateway": 429,
    "internal_server_error": 500,
    "attachment_document_not_reachable": 502,
    "internal_service_error": 503,
    "api_timeout_error": 504,
}

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def is_error_object(obj: object) -> bool:
    """Whether a decoded stream line is an `{error_code, detail}` error rather than a chunk."""
    return isinstance(obj, dict) and "error_code" in obj and "delta" not in obj


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), capped."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return _clamp(float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return _clamp(float(raw))
    except ValueError:
        pass
    import email.utils  # only for the rare HTTP-date form; it is slow to import

    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return _clamp(when.timestamp() - current)


def _clamp(seconds: float) -> float | None:
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def error_from_response(
    status_code: int, headers: Mapping[str, str], content: bytes, *, partial: str = ""
) -> APIStatusError:
    """The typed error for an HTTP error answer (docs/contract.md, Errors)."""
    body, summary = _decode_error_body(content, headers.get("content-type", ""))
    error_code: str | None = None
    detail: Any = None
    if isinstance(body, dict):
        code = body.get("error_code")
        error_code = code if isinstance(code, str) else None
        detail = body.get("detail", body.get("message"))
        if error_code is None and status_code == 429 and "message" in body:
            detail = body["message"]
    cls = _classify(error_code, status_code)
    message = _message(status_code, error_code, detail, summary)
    return cls(
        message,
        status_code=status_code,
        error_code=error_code,
        detail=detail,
        body=body,
        request_id=headers.get("x-request-id"),
        retry_after=parse_retry_after(headers),
        partial=partial,
    )


def error_from_stream_object(obj: Mapping[str, Any], *, partial: str = "") -> APIStatusError:
    """The typed error for an `{error_code, detail}` line inside a 200 stream."""
    raw_code = obj.get("error_code")
    error_code = raw_code if isinstance(raw_code, str) else None
    status_code = STATUS_BY_CODE.get(error_code or "", 500)
    detail = obj.get("detail")
    cls = _classify(error_code, status_code)
    message = "The stream ended with an error: " + _message(status_code, error_code, detail, "")
    return cls(
        message,
        status_code=status_code,
        error_code=error_code,
        detail=detail,
        body=dict(obj),
        partial=partial,
    )


def _classify(error_code: str | None, status_code: int) -> type[APIStatusError]:
    # A documented code says more than the status it came with (a proxy may change the status).
    documented = STATUS_BY_CODE.get(error_code) if error_code is not None else None
    return _CLASS_BY_STATUS.get(documented or status_code, APIStatusError)


def _message(status_code: int, error_code: str | None, detail: Any, summary: str) -> str:
    head = f"{status_code} {_REASONS.get(status_code, 'Error')}"
    if error_code:
        head = f"{head} [{inert(error_code, 100)}]"
    text = inert(_detail_text(detail)) if detail is not None else summary
    return f"{head}: {text}" if text else head


def inert(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """Server text fit for a message or a log line: at most `limit` characters, and no control
    character (a line break from a server could forge a log line): those are shown escaped."""
    shown = text[:limit].translate(_ESCAPES)
    if len(text) > limit or len(shown) > limit:  # escapes are longer than what they stand for
        shown = f"{shown[:limit]}… ({len(text)} characters in all)"
    return shown


#: C0 and C1 controls, DEL and the Unicode line separators, each as its Python escape.
_ESCAPES = {code: repr(chr(code))[1:-1] for code in (*range(32), *range(127, 160), 0x2028, 0x2029)}


def _detail_text(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        # validation errors: [{loc, message|msg, type}]
        parts = []
        for item in detail[:20]:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()) or ())
                text = item.get("message", item.get("msg", ""))
                kind = item.get("type")
                part = f"{loc}: {text}" if loc else str(text)
                parts.append(f"{part} ({kind})" if kind else part)
            else:
                parts.append(str(item))
        if len(detail) > 20:
            parts.append(f"and {len(detail) - 20} more")
        return "; ".join(parts)
    return json.dumps(detail, ensure_ascii=False, default=str)


def _decode_error_body(content: bytes, content_type: str) -> tuple[Any, str]:
    """The parsed body (JSON, text or None) and a one-line summary for the message."""
    if not content.strip():
        return None, "(the server sent an empty body)"
    try:
        return json.loads(content), ""
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to parse
        pass
    text = content.decode("utf-8", errors="replace")
    if "html" in content_type.lower() or text.lstrip().startswith("<"):
        snippet = (_html_title(content) or _strip_tags(text, 2000))[:4000]
        snippet = " ".join(html.unescape(" ".join(snippet.split())[:1000]).split())[:200]
        return text, f"(the server or a proxy answered with an HTML page, not JSON: {inert(repr(snippet))})"
    return text, inert(" ".join(text[:2000].split()), 300)


# The HTML helpers below scan with str.find only: each byte is looked at a bounded number of times,
# so a hostile page (`<title>` repeated, `<` without `>`) costs linear time, where the regular
# expressions they replace backtracked into quadratic time (11 s for 112 KB).


def _html_title(content: bytes) -> str:
    """The text of the first `<title ...>...</title>`, or "" if there is none."""
    lowered = content.lower()  # ASCII-only lowering: offsets stay those of `content`
    start = lowered.find(b"<title")
    if start < 0:
        return ""
    opened = lowered.find(b">", start)
    if opened < 0:
        return ""
    closed = lowered.find(b"</title", opened)
    if closed < 0:
        return ""
    return content[opened + 1 : closed].decode("utf-8", errors="replace")


def _strip_tags(text: str, enough: int) -> str:
    """The text between tags, until about `enough` characters of it have been collected."""
    pieces: list[str] = []
    kept = 0
    position = 0
    while kept < enough:
        opened = text.find("<", position)
        if opened < 0:
            pieces.append(text[position : position + enough - kept])
            break
        pieces.append(text[position:opened])
        closed = text.find(">", opened + 1)
        if closed < 0:  # no `>` anywhere after: the rest is not a tag
            pieces.append(text[opened : opened + enough - kept])
            break
        pieces.append(" ")
        kept += opened - position + 1  # the space counts: a page of empty tags ends the loop too
        position = closed + 1
    return "".join(pieces)
