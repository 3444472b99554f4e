"""Where the recording and live tests talk: the emulator by default, the real service (or any
server) when the usual environment variables name one.

The switch is the environment the client itself reads: `HAUFE_COPILOT_API_KEY` (given: use the
service), `HAUFE_COPILOT_BASE_URL` (default https://api.haufe.ai), `HAUFE_COPILOT_ASSISTANT_ID`
(required with a key), and optionally `HAUFE_COPILOT_PLATFORM_BASE_URL` and
`HAUFE_COPILOT_PLATFORM_API_KEY`. It applies only where a run asks for the network explicitly:
`--record-mode` other than `none`, or `-m live`; a plain `make test` never leaves the machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from haufe_copilot import DEFAULT_BASE_URL

#: What a recorded request body holds in place of the assistant id it was recorded with, so a
#: cassette recorded for one tenant's assistant replays for any id (and does not name it).
ASSISTANT_PLACEHOLDER = "<assistant-id>"


@dataclass(frozen=True)
class Target:
    """A server to talk to and how."""

    base_url: str
    api_key: str
    assistant_id: str
    platform_base_url: str
    platform_api_key: str
    #: The in-process emulator of the test session: emulator-only knobs (x-emulator-*) work.
    is_emulator: bool = False

    def connection(self) -> dict[str, str]:
        """Keyword arguments for a client or an adapter (all given, so no environment leaks in)."""
        return {
            "api_key": self.api_key,
            "base_url": self.base_url,
            "platform_api_key": self.platform_api_key,
            "platform_base_url": self.platform_base_url,
        }

    def __repr__(self) -> str:  # the key stays out of pytest's output
        return f"Target({self.base_url!r}, assistant_id={self.assistant_id!r}, emulator={self.is_emulator})"


def service_from_environment() -> Target | None:
    """The server the environment names, or None when no key is given."""
    api_key = os.environ.get("HAUFE_COPILOT_API_KEY")
    if not api_key:
        return None
    assistant_id = os.environ.get("HAUFE_COPILOT_ASSISTANT_ID")
    if not assistant_id:
        raise pytest.UsageError(
            "HAUFE_COPILOT_API_KEY is set, so this run talks to HAUFE_COPILOT_BASE_URL; set "
            "HAUFE_COPILOT_ASSISTANT_ID to the assistant to ask too (or unset the key to use the emulator)"
        )
    base_url = os.environ.get("HAUFE_COPILOT_BASE_URL") or DEFAULT_BASE_URL
    return Target(
        base_url=base_url,
        api_key=api_key,
        assistant_id=assistant_id,
        platform_base_url=os.environ.get("HAUFE_COPILOT_PLATFORM_BASE_URL") or base_url,
        platform_api_key=os.environ.get("HAUFE_COPILOT_PLATFORM_API_KEY") or api_key,
    )


def emulator_target(url: str, api_key: str, assistant_id: str) -> Target:
    return Target(url, api_key, assistant_id, url, api_key, is_emulator=True)
