"""What every example shares: where Haufe Copilot is.

With `HAUFE_COPILOT_API_KEY` set, an example talks to the service that key belongs to:
`HAUFE_COPILOT_BASE_URL` (default https://api.haufe.ai) and `HAUFE_COPILOT_ASSISTANT_ID`
(needed there; on a loopback URL, such as `haufe-copilot emulator` in another terminal, the
emulator's assistant is the default). Without the key, it starts the local emulator in its own
process (`EmulatorServer`, a free loopback port, a background thread) and talks to that: no
account, no network.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: The assistant the emulator knows (haufe_emulator.DEFAULT_ASSISTANT_ID).
EMULATOR_ASSISTANT_ID = "a1b2c3d4-5678-9abc-def0-1234567890ab"


@dataclass(frozen=True)
class Connection:
    api_key: str
    base_url: str
    assistant_id: str

    def settings(self) -> dict[str, Any]:
        """The keyword arguments every adapter takes: `ChatHaufeCopilot(**conn.settings())`."""
        return {"api_key": self.api_key, "base_url": self.base_url, "assistant_id": self.assistant_id}

    def environment(self) -> dict[str, str]:
        """The same as environment variables, for a child process."""
        return {
            "HAUFE_COPILOT_API_KEY": self.api_key,
            "HAUFE_COPILOT_BASE_URL": self.base_url,
            "HAUFE_COPILOT_ASSISTANT_ID": self.assistant_id,
        }


@contextmanager
def haufe_copilot() -> Iterator[Connection]:
    """The configured service, or else an emulator started here for as long as the block runs."""
    api_key = os.environ.get("HAUFE_COPILOT_API_KEY")
    if api_key:
        base_url = os.environ.get("HAUFE_COPILOT_BASE_URL") or "https://api.haufe.ai"
        loopback = urlsplit(base_url).hostname in ("127.0.0.1", "localhost", "::1")
        assistant_id = os.environ.get("HAUFE_COPILOT_ASSISTANT_ID") or (
            EMULATOR_ASSISTANT_ID if loopback else ""
        )
        if not assistant_id:
            raise SystemExit("Set HAUFE_COPILOT_ASSISTANT_ID to the assistant to ask.")
        yield Connection(api_key, base_url, assistant_id)
        return
    from haufe_emulator import EmulatorServer  # needs the `emulator` extra

    with EmulatorServer() as emulator:
        print(f"(no HAUFE_COPILOT_API_KEY: the emulator answers, on {emulator.url})", file=sys.stderr)
        yield Connection(emulator.api_key, emulator.url, emulator.assistant_id)
