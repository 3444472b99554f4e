"""The LangChain tests' fixture: a `ChatHaufeCopilot` on the session's emulator."""

from __future__ import annotations

import pytest

from haufe_emulator import EmulatorServer
from langchain_haufe import ChatHaufeCopilot
from tests.conftest import ASSISTANT_ID, SESSION_API_KEY


@pytest.fixture
def model(emulator: EmulatorServer) -> ChatHaufeCopilot:
    return ChatHaufeCopilot(api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID)
