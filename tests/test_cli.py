"""The `haufe-copilot` command: chat, demo, and a one-line error for every failure."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from haufe_copilot.cli import main
from haufe_copilot.emulator import EmulatorServer

from .conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haufe_copilot.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_demo_streams_a_cited_answer() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stderr
    assert "§ 622 Abs. 3 BGB" in result.stdout
    assert "[1] Bürgerliches Gesetzbuch (BGB), § 622 Abs. 3" in result.stdout


@pytest.mark.parametrize("stream", [True, False])
def test_chat_against_a_running_emulator(
    emulator: EmulatorServer,
    stream: bool,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HAUFE_COPILOT_API_KEY", SESSION_API_KEY)
    monkeypatch.setenv("HAUFE_COPILOT_BASE_URL", emulator.url)
    args = ["chat", "Wie viele Urlaubstage stehen mir zu?", "--assistant-id", ASSISTANT_ID]
    assert main([*args, "--stream"] if stream else args) == 0
    out = capsys.readouterr().out
    assert "§ 3 BUrlG" in out and "[1] Bundesurlaubsgesetz (BUrlG), § 3" in out
    thread_id = out.rsplit("--thread ", 1)[1].strip(" )\n")
    assert (
        main(["chat", "Gilt das auch für Minijobber?", "--assistant-id", ASSISTANT_ID, "--thread", thread_id])
        == 0
    )
    assert f"thread {thread_id}" in capsys.readouterr().out


def test_chat_with_an_in_process_emulator() -> None:
    result = run("chat", QUESTION, "--emulator")
    assert result.returncode == 0, result.stderr
    assert "§ 622 Abs. 3 BGB" in result.stdout and "Quellen:" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["chat", "Frage", "--assistant-id", "a"], {"HAUFE_COPILOT_API_KEY": ""}, "HAUFE_COPILOT_API_KEY"),
        (
            ["chat", "Frage"],
            {"HAUFE_COPILOT_API_KEY": "k", "HAUFE_COPILOT_ASSISTANT_ID": ""},
            "--assistant-id",
        ),
        (
            ["chat", "Frage", "--assistant-id", "a"],
            {"HAUFE_COPILOT_API_KEY": "k", "HAUFE_COPILOT_BASE_URL": "http://127.0.0.1:9"},
            "APIConnectionError",
        ),
        (
            ["chat", "Frage", "--assistant-id", "a"],
            {"HAUFE_COPILOT_API_KEY": "k", "HAUFE_COPILOT_BASE_URL": "http://example.com"},
            "allow_insecure_http",
        ),
    ],
)
def test_failures_are_one_clear_line(args: list[str], env: dict[str, str], expected: str) -> None:
    result = run(*args, env={"HAUFE_COPILOT_ASSISTANT_ID": "", **env})
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_key_against_the_emulator(emulator: EmulatorServer) -> None:
    result = run(
        "chat",
        "Frage",
        "--assistant-id",
        ASSISTANT_ID,
        env={"HAUFE_COPILOT_API_KEY": "sk-wrong", "HAUFE_COPILOT_BASE_URL": emulator.url},
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: AuthenticationError: 401")


def test_help_on_every_command() -> None:
    for command in ([], ["emulator"], ["chat"], ["demo"]):
        result = run(*command, "--help")
        assert result.returncode == 0 and "usage: haufe-copilot" in result.stdout


def test_emulator_command_refuses_an_unknown_fault() -> None:
    result = run("emulator", "--fault", "nonsense", "--port", "0")
    assert result.returncode != 0 and "unknown fault" in result.stderr
