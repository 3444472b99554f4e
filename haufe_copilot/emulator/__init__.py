"""Deprecated: the emulator is the package `haufe_emulator` now (`from haufe_emulator import
EmulatorServer`). This module is the one forwarding alias kept for one release: it forwards
attribute access to `haufe_emulator` when first asked, with a DeprecationWarning, so that
`from haufe_copilot.emulator import EmulatorServer` keeps working and importing the core never
loads the emulator."""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # module dunders (`__path__`, `__file__` ...) are not forwarded
        raise AttributeError(name)
    warnings.warn(
        "haufe_copilot.emulator is deprecated: import from haufe_emulator instead",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module("haufe_emulator"), name)


def __dir__() -> list[str]:
    return sorted(importlib.import_module("haufe_emulator").__all__)
