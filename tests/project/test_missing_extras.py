"""Without an extra installed, what needs it says which `pip install` to run, in one line.

Each test runs Python in a subprocess where the extra's libraries cannot be imported: a
`sys.meta_path` finder raises `ModuleNotFoundError` for them, as on a machine where they were
never installed (the modules stay installed for the rest of the suite)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: Makes `blocked` unimportable, then runs `code`.
_WRAPPER = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = {blocked!r}

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    {code}
    """
)


def run_without(blocked: list[str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WRAPPER.format(blocked=blocked, code=code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HAUFE_COPILOT_EMULATOR_KEYS": ""},
    )


def cli(*args: str) -> str:
    argv = ["haufe-copilot", *args]
    return f"sys.argv = {argv!r}; from haufe_copilot.cli import main; sys.exit(main())"


EMULATOR_LIBRARIES = ["fastapi", "uvicorn", "starlette"]


@pytest.mark.parametrize(
    "args",
    [["emulator"], ["emulator", "--port", "0"], ["chat", "Frage", "--emulator"], ["demo"]],
    ids=["emulator", "emulator-port", "chat-emulator", "demo"],
)
def test_commands_needing_the_emulator_name_its_extra(args: list[str]) -> None:
    result = run_without(EMULATOR_LIBRARIES, cli(*args))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and "pip install 'haufe-copilot[emulator]'" in lines[0]
    assert "fastapi" in lines[0] or "uvicorn" in lines[0]


def test_the_client_and_chat_work_without_the_emulator() -> None:
    """The core needs no extra: only what serves the emulator asks for one."""
    result = run_without(EMULATOR_LIBRARIES, cli("--version"))
    assert result.returncode == 0, result.stderr
    result = run_without(EMULATOR_LIBRARIES, "import haufe_copilot; haufe_copilot.HaufeCopilotClient")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("blocked", "module", "extra"),
    [
        (["langchain_core"], "langchain_haufe", "langchain"),
        (["llama_index.core"], "llama_index_haufe", "llama-index"),
        (["llama_index.core"], "llama_index.llms.haufe", "llama-index"),
    ],
)
def test_importing_an_adapter_without_its_framework_names_the_extra(
    blocked: list[str], module: str, extra: str
) -> None:
    code = textwrap.dedent(
        f"""
        try:
            import {module}
        except ImportError as exc:
            print(type(exc).__name__, exc.name, exc, sep="|")
        """
    )
    result = run_without(blocked, code)
    assert result.returncode == 0, result.stderr
    kind, name, message = result.stdout.strip().split("|")
    assert kind in ("ImportError", "ModuleNotFoundError") and name == blocked[0]
    assert f"pip install 'haufe-copilot[{extra}]'" in message, message


def test_the_pytest_plugin_loads_without_the_emulator_and_its_fixture_names_the_extra(tmp_path: Path) -> None:
    """pytest loads the plugin (entry point) in every project that installs the package: a test
    not using its fixtures runs as before; one using them fails saying what to install."""
    (tmp_path / "test_users.py").write_text(
        "def test_without(): pass\n\ndef test_with(haufe_emulator): pass\n", encoding="utf-8"
    )
    code = f"import pytest; sys.exit(pytest.main([{str(tmp_path)!r}, '-p', 'no:cacheprovider', '-rfE']))"
    result = run_without(EMULATOR_LIBRARIES, code)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout, result.stdout
    assert (
        "the haufe_emulator fixtures need the emulator extra: pip install 'haufe-copilot[emulator]'"
        in result.stdout
    )
    assert "fastapi" in result.stdout
