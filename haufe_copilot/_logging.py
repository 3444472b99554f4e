"""The `haufe_copilot` logger; `HAUFE_COPILOT_LOG=debug|info` turns it on without code."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

logger = logging.getLogger("haufe_copilot")

SECRET_HEADERS = frozenset({"api-key", "authorization", "proxy-authorization", "cookie", "x-api-key"})


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
    return {name: "<redacted>" if name.lower() in SECRET_HEADERS else value for name, value in headers}
