"""requirements/dev.lock is current: it pins every requirement of pyproject.toml's `dev` extra (and
the runtime) at a version that satisfies it, for the Python running the suite. Offline; `make
lock-check` asks the index whether `make lock` would write the same file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - tomllib arrived in 3.11
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "haufe-copilot"


def locked_versions() -> dict[str, Version]:
    """The lock's pins that apply to this Python (a universal lock may pin one name per Python)."""
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements" / "dev.lock").read_text().splitlines():
        if not line or line.startswith((" ", "#")):
            continue
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            [spec] = requirement.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def requirements_of(extra: str) -> list[Requirement]:
    """The runtime requirements and those of `extra`, with the package's own extras expanded."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    pending, seen = [extra], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in project["optional-dependencies"][name]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == PACKAGE:
                pending.extend(requirement.extras)
            else:
                found.append(requirement)
    return found


def test_the_lock_satisfies_every_requirement_of_the_dev_environment() -> None:
    pins = locked_versions()
    environment = {**default_environment(), "extra": ""}
    problems = []
    for requirement in requirements_of("dev"):
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement} but the lock pins {pinned}")
    assert not problems, "run `make lock`: " + "; ".join(problems)


def test_the_package_bounds_none_of_its_runtime_dependencies_from_above() -> None:
    """Users must be free to move httpx, pydantic and the frameworks; the lock pins what we test."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [*project["dependencies"]]
    for extra in ("langchain", "llama-index", "emulator"):
        runtime.extend(project["optional-dependencies"][extra])
    for text in runtime:
        for spec in Requirement(text).specifier:
            assert spec.operator in (">=", ">"), f"{text}: no upper bound on a runtime dependency"
