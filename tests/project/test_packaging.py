"""The distribution: what a wheel holds, and what each import loads."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.wheel
def test_the_wheel_holds_the_corpus_and_py_typed(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("haufe_copilot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "haufe_copilot/py.typed" in names
    assert "haufe_emulator/corpus.json" in names
    assert {"langchain_haufe/__init__.py", "llama_index_haufe/__init__.py"} <= names
    # `llama_index.llms.haufe`, inside the namespace packages llama-index-core shares
    assert "llama_index/llms/haufe/__init__.py" in names
    assert not {"llama_index/__init__.py", "llama_index/llms/__init__.py"} & names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: httpx" in metadata and "Requires-Dist: pydantic" in metadata
    core = [
        line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert len(core) == 2, core  # httpx and pydantic only
    entry_points = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    )
    assert "haufe-copilot = haufe_copilot.cli:main" in entry_points
    # the test kit's pytest plugin (docs/testing.md), found by pytest in every project that installs us
    assert "[pytest11]\nhaufe_emulator = haufe_emulator.pytest_plugin" in entry_points


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return {name.split(".")[0] for name in result.stdout.split()}


def test_importing_the_core_loads_no_framework_and_no_server() -> None:
    loaded = _loaded_after("import haufe_copilot")
    assert not loaded & {"langchain_core", "llama_index", "fastapi", "uvicorn", "starlette"}


def test_the_old_emulator_import_still_works_with_a_deprecation_warning() -> None:
    """`from haufe_copilot.emulator import EmulatorServer` (the old README) forwards to
    `haufe_emulator` for one release; importing the core still loads no server."""
    import haufe_emulator

    with pytest.warns(DeprecationWarning, match="import from haufe_emulator"):
        from haufe_copilot.emulator import EmulatorConfig, EmulatorServer
    assert EmulatorServer is haufe_emulator.EmulatorServer
    assert EmulatorConfig is haufe_emulator.EmulatorConfig
    assert not _loaded_after("import haufe_copilot.emulator") & {"haufe_emulator", "fastapi", "uvicorn"}


def test_loading_the_pytest_plugin_loads_no_server_and_no_framework() -> None:
    """pytest imports the plugin in every session of a project that installs the package: that
    costs neither the emulator's server nor a framework, until a test uses a fixture."""
    loaded = _loaded_after("import haufe_emulator.pytest_plugin")
    assert not loaded & {"langchain_core", "llama_index", "fastapi", "uvicorn", "starlette"}


@pytest.mark.parametrize("adapter", ["langchain_haufe", "llama_index_haufe", "llama_index.llms.haufe"])
def test_importing_an_adapter_loads_neither_httpx_nor_the_wire_models_nor_a_client(adapter: str) -> None:
    # They load with the first call: httpx alone costs about a quarter of BaseChatModel's import.
    code = f"import sys\nimport {adapter}\nprint('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(result.stdout.split())
    assert "httpx" not in loaded
    wire_models = {f"haufe_copilot.types.{name}" for name in ("_base", "assistant", "completions", "streams")}
    assert not loaded & wire_models
    # Of the transport only the one list of options, which the adapters' fields are made from.
    assert {m for m in loaded if m.startswith("haufe_copilot.transport.")} <= {
        "haufe_copilot.transport.options"
    }
    assert not {m for m in loaded if m.startswith("haufe_copilot.resources")}
