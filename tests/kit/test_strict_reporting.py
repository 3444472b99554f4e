"""Strict scripting fails a user's test clearly: a test file of the kind a user writes runs in a
pytest of its own (no conftest: the plugin comes from the entry point), and its report is read."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

USERS_TESTS = textwrap.dedent(
    """
    import pytest

    from langchain_haufe import ChatHaufeCopilot


    def test_unscripted(haufe_emulator):
        haufe_emulator.on("Probezeit", api="assistant").answer("Zwei Wochen.")
        ChatHaufeCopilot().invoke("Gibt es Urlaubsgeld?")


    def test_swallowed(haufe_emulator):
        haufe_emulator.on("Probezeit", api="assistant", optional=True).answer("Zwei Wochen.")
        try:
            ChatHaufeCopilot().invoke("Gibt es Urlaubsgeld?")
        except Exception:
            pass  # the app hides the error: the teardown still reports the request


    def test_unused(haufe_emulator):
        haufe_emulator.on("Probezeit", api="completions").answer("Zwei Wochen.")


    def test_all_scripted(haufe_emulator):
        haufe_emulator.on("Probezeit").answer("Zwei Wochen.")
        assert ChatHaufeCopilot().invoke("Probezeit?").content == "Zwei Wochen."


    @pytest.mark.haufe_emulator(strict=False)
    def test_not_strict(haufe_emulator):
        assert "§ 3 BUrlG" in ChatHaufeCopilot().invoke("Wie viele Urlaubstage?").content
    """
)
#: Strict for the whole suite, as a user's pytest.ini says it (the marker above overrides it).
USERS_INI = "[pytest]\nhaufe_emulator_strict = true\n"
MISS = (
    "  - no script matched POST /agents/v1/chat/completions (assistant, whole answer) "
    "asking 'Gibt es Urlaubsgeld?'"
)


def test_strict_mode_fails_a_test_naming_the_request_and_the_unused_script(tmp_path: Path) -> None:
    (tmp_path / "test_users_app.py").write_text(USERS_TESTS, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(USERS_INI, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAUFE_COPILOT_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfE", "test_users_app.py"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=180,
        cwd=tmp_path,
        env=env,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 failed, 4 passed, 3 errors" in out, out
    # the request itself fails at once, with what it asked and the scripts there are
    assert (
        "APIStatusError: 501 Error [emulator_unscripted]: No script matches POST "
        "/agents/v1/chat/completions (assistant, whole answer) asking 'Gibt es Urlaubsgeld?'. "
        "Scripts: 1. on('Probezeit', api='assistant') -> answer 'Zwei Wochen.' (used 0 of 1)."
    ) in out
    reports = {
        name: out.split(f"ERROR at teardown of {name} ", 1)[1].split("\n_", 1)[0]
        for name in ("test_unscripted", "test_swallowed", "test_unused")
    }
    assert MISS in reports["test_unscripted"] and MISS in reports["test_swallowed"]
    assert "never used" not in reports["test_swallowed"]  # optional
    assert (
        "  - script never used: on('Probezeit', api='completions') -> answer 'Zwei Wochen.' (used 0 of 1)"
        in reports["test_unused"]
    )
    summary = out.split("short test summary info", 1)[1]
    assert "test_all_scripted" not in summary and "test_not_strict" not in summary
    assert "During handling" not in out and "Traceback" not in reports["test_swallowed"]
