"""A local emulator of the Haufe Copilot APIs (needs the `emulator` extra: fastapi, uvicorn).

`create_app()` gives the ASGI app; `EmulatorServer` runs it on a free loopback port in a
background thread; `haufe-copilot emulator` serves it from the command line. It answers German
employment-law questions deterministically from a bundled corpus of statute excerpts, keeps
threads, and injects faults on request (see `haufe_emulator.faults`). Tests script its answers
with the pytest plugin (`haufe_emulator.pytest_plugin`, docs/testing.md).

The names below are imported on first use, so that importing the package (as pytest does to load
the plugin) needs neither fastapi nor uvicorn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import DEFAULT_API_KEY, DEFAULT_ASSISTANT_ID, EmulatorConfig, create_app
    from .faults import ERROR_CATALOGUE, FaultPlan
    from .server import EmulatorServer
    from .state import EmulatorState

#: Each public name and the module it lives in.
_HOMES = {
    "DEFAULT_API_KEY": "app",
    "DEFAULT_ASSISTANT_ID": "app",
    "ERROR_CATALOGUE": "faults",
    "EmulatorConfig": "app",
    "EmulatorServer": "server",
    "EmulatorState": "state",
    "FaultPlan": "faults",
    "create_app": "app",
}

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_ASSISTANT_ID",
    "ERROR_CATALOGUE",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorState",
    "FaultPlan",
    "create_app",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
