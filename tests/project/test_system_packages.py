"""scripts/system-packages, which `make test` runs first: a missing package is installed where that
can be done (root with apt-get) and otherwise named in one line, before pytest starts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "system-packages"


def run_with(tmp_path: Path, *, uid: int, apt: bool) -> subprocess.CompletedProcess[str]:
    """The script on a PATH of stand-ins and nothing else: neither chromium nor redis-server to find."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    if apt:
        (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/apt.log\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {"PATH": str(bin_dir), "CHROMIUM": "no-such-chromium-here"}
    return subprocess.run(
        ["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_without_root_it_stops_with_one_line_naming_the_package(tmp_path: Path) -> None:
    result = run_with(tmp_path, uid=1000, apt=True)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "make test needs chromium redis-server" in lines[0]
    assert "apt-get install chromium redis-server" in lines[0]
    assert not (tmp_path / "apt.log").exists()


def test_as_root_with_apt_it_installs_the_missing_package(tmp_path: Path) -> None:
    result = run_with(tmp_path, uid=0, apt=True)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls[0].startswith("update")
    assert calls[1].split()[-2:] == ["chromium", "redis-server"] and "install" in calls[1]


def test_nothing_is_done_when_everything_is_there(tmp_path: Path) -> None:
    bin_dir = tmp_path / "present"
    bin_dir.mkdir()
    for name in ("chromium", "redis-server"):
        fake = bin_dir / name
        fake.write_text("#!/bin/sh\n")
        fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("CHROMIUM", None)
    result = subprocess.run(["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stderr == ""
