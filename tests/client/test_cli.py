"""The `haufe-copilot` command: chat, demo, and a one-line error for every failure."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading

import pytest

from haufe_copilot.cli import main
from haufe_emulator import EmulatorServer
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY


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


def test_version() -> None:
    from haufe_copilot import __version__

    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"haufe-copilot {__version__}"


def _one_error_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "emulator on" not in result.stdout, result.stdout


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_emulator_refuses_a_port_out_of_range(port: str) -> None:
    _one_error_line(run("emulator", "--port", port), f"--port {port} is not a TCP port")


def test_emulator_on_a_busy_port_says_so_before_any_banner() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _one_error_line(run("emulator", "--port", str(port)), f"127.0.0.1:{port}: Address already in use")


def test_emulator_on_an_address_not_of_this_machine() -> None:
    _one_error_line(run("emulator", "--host", "999.1.1.1"), "check --host")


def _banner(env: dict[str, str] | None = None) -> str:
    """The emulator's first lines (it runs until stopped: read them, then stop it)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "haufe_copilot.cli", "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    watchdog = threading.Timer(30, process.kill)  # a shorter banner must not hang the read
    watchdog.start()
    try:
        assert process.stdout is not None
        return "".join(process.stdout.readline() for _ in range(4))
    finally:
        watchdog.cancel()
        process.terminate()
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()


def test_the_emulator_banner_shows_what_to_connect_with() -> None:
    banner = _banner()
    url = re.search(r"emulator on (http://127\.0\.0\.1:(\d+))", banner)
    assert url and url.group(2) != "0", banner  # --port 0 shows the port it really serves on
    assert f"export HAUFE_COPILOT_BASE_URL={url.group(1)}" in banner
    assert "export HAUFE_COPILOT_API_KEY=sk-emulator-dev" in banner
    assert f"export HAUFE_COPILOT_ASSISTANT_ID={ASSISTANT_ID}" in banner


def test_the_banner_does_not_echo_a_key_chosen_in_the_environment() -> None:
    banner = _banner({"HAUFE_COPILOT_EMULATOR_KEYS": SESSION_API_KEY})
    assert SESSION_API_KEY not in banner
    assert "HAUFE_COPILOT_API_KEY=<a key from HAUFE_COPILOT_EMULATOR_KEYS>" in banner


def test_the_thread_hint_of_chat_emulator_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each `chat --emulator` starts its own emulator, so "--thread <id>" cannot work there; the
    hint it prints instead, followed to the letter against a running emulator, continues a thread."""
    monkeypatch.delenv("HAUFE_COPILOT_EMULATOR_KEYS", raising=False)
    result = run("chat", QUESTION, "--emulator")
    assert result.returncode == 0, result.stderr
    first_thread = re.search(r"\(thread (\S+) ended with this call's emulator", result.stdout)
    assert first_thread and f"--thread {first_thread.group(1)}" not in result.stdout
    assert "run `haufe-copilot emulator` in another terminal" in result.stdout
    exports = dict(re.findall(r"export (HAUFE_COPILOT_\w+)=(\S+)", result.stdout))
    assert set(exports) == {"HAUFE_COPILOT_BASE_URL", "HAUFE_COPILOT_API_KEY", "HAUFE_COPILOT_ASSISTANT_ID"}
    with EmulatorServer() as other_terminal:  # `haufe-copilot emulator`, on a free port here
        env = {**exports, "HAUFE_COPILOT_BASE_URL": other_terminal.url}
        asked = run("chat", QUESTION, env=env)
        thread_id = asked.stdout.rsplit("--thread ", 1)[1].strip(" )\n")
        followed = run("chat", "Gilt das auch für Teilzeitkräfte?", "--thread", thread_id, env=env)
    assert followed.returncode == 0, followed.stderr
    assert f"thread {thread_id}" in followed.stdout


@pytest.mark.parametrize("question", ["", "   "])
def test_an_empty_question_is_one_line_and_sends_nothing(question: str, emulator: EmulatorServer) -> None:
    before = len(emulator.state.requests)
    result = run(
        "chat",
        question,
        "--assistant-id",
        ASSISTANT_ID,
        env={"HAUFE_COPILOT_API_KEY": SESSION_API_KEY, "HAUFE_COPILOT_BASE_URL": emulator.url},
    )
    _one_error_line(result, "EmptyMessageError")
    assert len(emulator.state.requests) == before


def test_a_plain_chat_does_not_load_the_emulator() -> None:
    """Only `emulator`, `demo` and `chat --emulator` load the emulator's plugin (and its server)."""
    code = (
        "import sys\nfrom haufe_copilot.cli import main\n"
        "try:\n    main(['chat', 'Frage'])\nexcept SystemExit as exc:\n    print(exc)\n"
        "print(sorted({'haufe_emulator', 'fastapi', 'uvicorn'} & set(sys.modules)))"
    )
    env = {k: v for k, v in os.environ.items() if k != "HAUFE_COPILOT_ASSISTANT_ID"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "error: no assistant: pass --assistant-id or set HAUFE_COPILOT_ASSISTANT_ID (or use --emulator)",
        "[]",
    ]


def test_haufe_emulator_runs_the_same_commands() -> None:
    """`haufe-emulator` (haufe_emulator.cli) has `emulator` and `demo`, with the same options."""
    from haufe_emulator.cli import main as emulator_main

    with pytest.raises(SystemExit, match="--port 70000 is not a TCP port"):
        emulator_main(["emulator", "--port", "70000"])
    result = subprocess.run(
        [sys.executable, "-m", "haufe_emulator.cli", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.startswith("usage: haufe-emulator demo")
