"""The LlamaIndex tests' fixtures: a marker for a test's requests, and a `HaufeCopilot` on the
emulator whose requests carry it."""

from __future__ import annotations

import secrets

import pytest

from haufe_emulator import EmulatorServer
from llama_index_haufe import HaufeCopilot

from .test_llama_index_support import make_llm


@pytest.fixture
def marker() -> str:
    return secrets.token_hex(8)


@pytest.fixture
def llm(emulator: EmulatorServer, marker: str) -> HaufeCopilot:
    return make_llm(emulator, marker)
