"""A local emulator of the Haufe Copilot APIs (needs the `emulator` extra: fastapi, uvicorn).

`create_app()` gives the ASGI app; `EmulatorServer` runs it on a free loopback port in a
background thread; `haufe-copilot emulator` serves it from the command line. It answers German
employment-law questions deterministically from a bundled corpus of statute excerpts, keeps
threads, and injects faults on request (see `haufe_emulator.faults`).
"""

from .app import DEFAULT_API_KEY, DEFAULT_ASSISTANT_ID, EmulatorConfig, create_app
from .faults import ERROR_CATALOGUE, FaultPlan
from .server import EmulatorServer
from .state import EmulatorState

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
