"""Which request headers carry credentials: the one rule for what is never shown."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["REDACTED", "is_secret_header", "redacted_headers"]

# The one rule for what counts as a credential header, shared by log lines, exceptions, the emulator's
# record and both adapters' serialisation: any name that says what it holds (the well-known ones all
# do: api-key, x-api-key, authorization, proxy-authorization, cookie, set-cookie, ...-subscription-key).
_SECRET_NAME_PARTS = ("key", "token", "secret", "auth", "cookie", "password", "credential", "signature")
REDACTED = "<redacted>"


def is_secret_header(name: str) -> bool:
    """Whether a header of this name may carry a credential (and so must never be shown)."""
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_NAME_PARTS)


def redacted_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers fit for a log line: credentials replaced by a marker."""
    return {name: REDACTED if is_secret_header(name) else value for name, value in headers}
