"""The `haufe_copilot` logger; `HAUFE_COPILOT_LOG=debug|info` turns it on without code."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

logger = logging.getLogger("haufe_copilot")

# The one rule for what counts as a credential header, shared by log lines, exceptions, the emulator's
# record and both adapters' serialisation: the well-known names, and any name that says what it holds.
SECRET_HEADERS = frozenset(
    {
        "api-key",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "ocp-apim-subscription-key",
    }
)
_SECRET_NAME_PARTS = ("key", "token", "secret", "auth", "cookie", "password", "credential", "signature")
REDACTED = "<redacted>"


def is_secret_header(name: str) -> bool:
    """Whether a header of this name may carry a credential (and so must never be shown)."""
    lowered = name.lower()
    return lowered in SECRET_HEADERS or any(part in lowered for part in _SECRET_NAME_PARTS)


def configure_from_environment() -> None:
    """`HAUFE_COPILOT_LOG=debug|info` turns on this package's loggers, the adapters' included."""
    level = os.environ.get("HAUFE_COPILOT_LOG", "").strip().lower()
    if level not in ("debug", "info"):
        return
    for name in ("haufe_copilot", "langchain_haufe", "llama_index_haufe"):
        package_logger = logging.getLogger(name)
        package_logger.setLevel(logging.DEBUG if level == "debug" else logging.INFO)
        if not package_logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("[%(asctime)s %(name)s %(levelname)s] %(message)s"))
            package_logger.addHandler(handler)


def redacted_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers fit for a log line: credentials replaced by a marker."""
    return {name: REDACTED if is_secret_header(name) else value for name, value in headers}
