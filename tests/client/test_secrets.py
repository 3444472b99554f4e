"""The API key never shows: not in a log line at DEBUG, an exception, a repr, or a cassette."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient, errors
from haufe_emulator import EmulatorServer
from tests.conftest import ASSISTANT_ID, CASSETTES, SESSION_API_KEY, user


def test_no_key_in_debug_logs_exceptions_or_reprs(
    client: HaufeCopilotClient, emulator: EmulatorServer, caplog: pytest.LogCaptureFixture, fault_id: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="haufe_copilot")
    texts: list[str] = [repr(client), str(client.__dict__), repr(client._config)]
    client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    list(client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()))
    failures: list[BaseException] = []
    for headers in (
        {"x-emulator-fault": "unauthorized"},
        {"x-emulator-fault": "rate_limit_gateway", "x-emulator-retry-after-ms": "1"},
        {"x-emulator-cut-after": "2"},
        {"x-emulator-malformed-after": "1"},
        {"x-emulator-delay": "1"},
    ):
        with pytest.raises(errors.HaufeCopilotError) as info:
            list(
                client.with_options(timeout=0.3).assistant.stream(
                    assistant_id=ASSISTANT_ID, messages=user(), extra_headers=headers
                )
            )
        failures.append(info.value)
    with pytest.raises(errors.APIConnectionError) as refused:
        HaufeCopilotClient(
            api_key=SESSION_API_KEY, base_url="http://127.0.0.1:9", max_retries=0
        ).assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    failures.append(refused.value)
    for failure in failures:
        chain: BaseException | None = failure
        while chain is not None:  # the whole chain of causes, as a traceback would show it
            texts += [str(chain), repr(chain), str(getattr(chain, "args", ""))]
            chain = chain.__cause__ or chain.__context__
    texts.append(caplog.text)
    assert "api-key': '<redacted>'" in caplog.text  # headers are logged, redacted
    assert "Retrying in" in caplog.text
    for text in texts:
        assert SESSION_API_KEY not in text


def test_async_client_repr() -> None:
    client = AsyncHaufeCopilotClient(api_key=SESSION_API_KEY)
    assert SESSION_API_KEY not in repr(client) and "<set>" in repr(client)


def test_the_environment_switch_logs_to_stderr_without_the_key(emulator: EmulatorServer) -> None:
    code = (
        "from haufe_copilot import HaufeCopilotClient\n"
        f"c = HaufeCopilotClient(base_url={emulator.url!r})\n"
        f"c.assistant.chat(assistant_id={ASSISTANT_ID!r},\n"
        "                  messages=[{'role': 'user', 'content': 'Urlaub'}])\n"
    )
    env = {**os.environ, "HAUFE_COPILOT_LOG": "debug", "HAUFE_COPILOT_API_KEY": SESSION_API_KEY}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "POST http://" in result.stderr and "-> 200" in result.stderr
    assert SESSION_API_KEY not in result.stderr + result.stdout


KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9_-]{6,}|Bearer\s+(?!<redacted>)\S+")


def test_no_credentials_in_any_cassette() -> None:
    files = [p for p in CASSETTES.rglob("*") if p.is_file()]
    assert files, "the cassettes are missing"
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert SESSION_API_KEY not in text
        assert not KEY_PATTERN.search(text), f"{path} holds something that looks like a key"
        for header in ("api-key", "authorization"):
            for value in re.findall(
                rf"^\s*{header}:\s*\n\s*- (.*)$", text, flags=re.MULTILINE | re.IGNORECASE
            ):
                assert value == "<redacted>", f"{path}: {header} is not redacted"


def test_the_scanner_would_catch_a_key(tmp_path: Path) -> None:
    leaked = "headers:\n  api-key:\n  - sk-emulator-dev\n"
    assert KEY_PATTERN.search(leaked)
