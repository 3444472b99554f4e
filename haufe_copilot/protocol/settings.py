"""Settings both adapters take, checked and serialised the same way.

A value that cannot work (`timeout="fast"`, a negative timeout, a port out of range) is refused
with an error that names the setting and the forms it accepts; a keyword no field knows is kept
as an extra request-body field with a warning rather than dropped; an `httpx.Timeout` and the
credentials in `default_headers` serialise to plain JSON (the credentials redacted by the one rule
in `haufe_copilot.log.is_secret_header`, re-exported here).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from haufe_copilot.errors import ConfigurationError, HaufeCopilotError, InvalidRequestError
from haufe_copilot.log import REDACTED, is_secret_header

if TYPE_CHECKING:
    import httpx

__all__ = [
    "TIMEOUT_FORMS",
    "CredentialValue",
    "check_proxy",
    "check_timeout",
    "check_url_port",
    "guarded_headers",
    "headers_for_display",
    "headers_from_serialised",
    "is_secret_header",
    "split_unknown_settings",
    "timeout_from_json",
    "timeout_to_json",
    "validate_timeout",
]

TIMEOUT_FORMS = (
    "a positive number of seconds (such as 30 or 2.5), an httpx.Timeout, a dict of httpx.Timeout's "
    "arguments (such as {'connect': 5, 'read': 60}), or None for the default (connect 5 s, read 60 s)"
)
_TIMEOUT_PARTS = ("connect", "read", "write", "pool")


def check_timeout(
    value: object, setting: str = "timeout", error: type[HaufeCopilotError] = ConfigurationError
) -> httpx.Timeout | float | None:
    """`value` as a timeout the client takes (seconds or an `httpx.Timeout`), or `error` naming
    `setting` and the accepted forms. A dict becomes an `httpx.Timeout` (that is how one
    serialises); the rest is `validate_timeout`'s check, the one the clients use.
    Seconds stay as given (a dump shows `timeout=30`, not an `httpx.Timeout`)."""
    import httpx  # here: an adapter imports this module without loading httpx

    if isinstance(value, Mapping):
        parts = {str(k): v for k, v in value.items()}
        unknown = sorted(set(parts) - set(_TIMEOUT_PARTS) - {"timeout"})
        if unknown:
            raise error(f"{setting} has unknown parts {unknown}; it must be {TIMEOUT_FORMS}.")
        try:
            value = httpx.Timeout(**parts)
        except (TypeError, ValueError) as exc:
            raise error(f"{setting}={parts!r} is not a timeout; it must be {TIMEOUT_FORMS}.") from exc
    validate_timeout(value, setting, error=error)
    return value  # type: ignore[return-value]  # None, a positive number or an httpx.Timeout


def validate_timeout(
    value: object, setting: str = "timeout", *, error: type[HaufeCopilotError] = InvalidRequestError
) -> httpx.Timeout | None:
    """The one check of a timeout, for the clients, each call and the adapters: None (the
    default), a positive finite number of seconds, or an `httpx.Timeout` whose every set value is
    one. Anything else is refused with `error` naming `setting`, before a socket sees it (where
    -1 or "5" gave a bare ValueError or TypeError from deep inside httpx)."""
    if value is None:
        return None
    import httpx  # here: an adapter imports this module without loading httpx

    if isinstance(value, httpx.Timeout):
        for part in ("connect", "read", "write", "pool"):
            seconds = getattr(value, part)
            if seconds is not None and not _is_positive_seconds(seconds):
                raise error(
                    f"{setting} is an httpx.Timeout whose {part}={seconds!r} is not a positive number of "
                    "seconds; give a positive number, or None for no limit on that part."
                )
        return value
    if not _is_positive_seconds(value):
        kind = "text" if isinstance(value, str) else type(value).__name__
        raise error(
            f"{setting} must be a positive number of seconds or an httpx.Timeout, not {value!r} ({kind}); "
            "for example timeout=30 or timeout=httpx.Timeout(60, connect=5)."
        )
    return httpx.Timeout(float(value))  # type: ignore[arg-type]  # a number, checked above


def _is_positive_seconds(value: object) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def timeout_to_json(value: httpx.Timeout | float | None) -> dict[str, float | None] | float | None:
    """A timeout as JSON: seconds as they are, an `httpx.Timeout` as the dict of its parts."""
    if value is None or isinstance(value, (int, float)):
        return value
    import httpx

    return value.as_dict() if isinstance(value, httpx.Timeout) else value


def timeout_from_json(value: object) -> object:
    """The inverse of `timeout_to_json`, for a field validator (checking is `check_timeout`'s)."""
    if isinstance(value, Mapping) and set(map(str, value)) <= {*_TIMEOUT_PARTS, "timeout"}:
        import httpx

        try:
            return httpx.Timeout(**{str(k): v for k, v in value.items()})
        except (TypeError, ValueError):
            return value
    return value


def check_url_port(url: str, setting: str) -> None:
    """A URL's port, if it has one, must be 1..65535 (urllib raises a bare ValueError later)."""
    try:
        port = urlsplit(url).port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        netloc = urlsplit(url).netloc.rpartition("@")[2]  # never show user:password
        raise ConfigurationError(
            f"{setting} has a port out of range ({netloc!r}); a port is a number from 1 to 65535, "
            "as in https://copilot.example.com:8443."
        )


def check_proxy(value: object, setting: str = "proxy") -> str | None:
    """A forward proxy's URL (http://, https://, socks5://), or None for the environment's
    (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY, as httpx reads them)."""
    if value is None:
        return None
    if not isinstance(value, str):
        import httpx

        if isinstance(value, httpx.URL):
            value = str(value)
    forms = "a URL such as http://proxy.example.com:3128 (http, https, socks5 or socks5h)"
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{setting} must be {forms}, or None for HTTP(S)_PROXY; not {value!r}.")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
        shown = "this value" if "@" in value else repr(value)
        raise ConfigurationError(f"{setting} must be {forms}, not {shown}.")
    check_url_port(value, setting)
    return value


def split_unknown_settings(
    values: dict[str, Any], known: Collection[str], *, extra_field: str, owner: str
) -> dict[str, Any]:
    """Constructor keywords with the unknown ones moved into `values[extra_field]` (a dict sent
    in every request body), each with a warning: a typo (`temprature=0.2`) is seen, not dropped.
    A known setting inside `extra_field` is an error: it would bypass the field's own checks."""
    extras = dict(values.get(extra_field) or {})
    misplaced = sorted(name for name in extras if name in known)
    if misplaced:
        raise ConfigurationError(
            f"{owner}: {misplaced} are settings of their own; pass them as keywords "
            f"({', '.join(f'{name}=...' for name in misplaced)}), not inside {extra_field}."
        )
    for name in list(values):
        if name in known or name == extra_field:
            continue
        if name in extras:
            raise ConfigurationError(f"{owner}: {name!r} is given twice (as a keyword and in {extra_field}).")
        warnings.warn(
            f"{owner}: {name!r} is not a setting of its own; it was moved into {extra_field} and "
            "is sent in the request body as is. Check the name if you meant a setting.",
            UserWarning,
            stacklevel=4,
        )
        extras[name] = values.pop(name)
    if extras or extra_field in values:
        values[extra_field] = extras
    return values


class CredentialValue(str):
    """A credential header's value: the very string (sent, compared, pickled as it is), shown as
    the redaction marker by `repr`, so no dict or model repr that holds it (`vars(model)`, a
    traceback's locals) shows the secret."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(REDACTED)


def guarded_headers(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    """`default_headers` as a component keeps them: credential values as `CredentialValue`s."""
    if headers is None:
        return None
    return {
        name: CredentialValue(value) if is_secret_header(name) and isinstance(value, str) else value
        for name, value in headers.items()
    }


def headers_for_display(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    """`default_headers` fit for a repr, a dump or a tracer: credential values replaced."""
    if headers is None:
        return None
    return {name: REDACTED if is_secret_header(name) else value for name, value in headers.items()}


def headers_from_serialised(headers: Mapping[str, str | None], owner: str) -> dict[str, str]:
    """`default_headers` read back from a dump: a redacted credential (or one a loader could not
    fill in, None) is dropped with a warning; sending the marker would only fail at the server."""
    kept = {name: value for name, value in headers.items() if value is not None and value != REDACTED}
    dropped = sorted(set(headers) - set(kept))
    if dropped:
        warnings.warn(
            f"{owner}: default_headers {dropped} were redacted when serialised; pass them again "
            "(or, with langchain_core.load, through secrets_map / secrets_from_env).",
            UserWarning,
            stacklevel=4,
        )
    return kept
