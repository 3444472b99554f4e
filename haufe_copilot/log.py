"""The `haufe_copilot` logger; `HAUFE_COPILOT_LOG=debug|info` turns it on without code."""

from __future__ import annotations

import logging
import os

# The credential-header rule is wire knowledge (the emulator records by it too); the core's log
# lines, exceptions and the adapters keep reaching it here.
from haufe_copilot.types.headers import REDACTED, is_secret_header, redacted_headers

__all__ = [
    "REDACTED",
    "configure_from_environment",
    "is_secret_header",
    "logger",
    "redacted_headers",
]

logger = logging.getLogger("haufe_copilot")


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
