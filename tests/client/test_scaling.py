"""docs/scaling.md: a conversation's thread is derived from its history, so any worker continues
any conversation; two processes answer one conversation in turn, with nothing shared but the
history the application keeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from haufe_emulator import EmulatorServer
from tests.conftest import SESSION_API_KEY

ROOT = Path(__file__).resolve().parents[2]


def worker(emulator: EmulatorServer, history: Path, question: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run(
        [sys.executable, "-m", "tests.scaling_worker", emulator.url, SESSION_API_KEY, str(history), question],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result: dict[str, str] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def test_two_processes_continue_one_conversation_in_turn(emulator: EmulatorServer, tmp_path: Path) -> None:
    history = tmp_path / "conversation.json"  # what the application stores: the messages, no more
    first = worker(emulator, history, "Welche Kündigungsfristen gelten während der Probezeit?")
    second = worker(emulator, history, "Gilt das auch für Teilzeitkräfte?")  # another process
    third = worker(emulator, history, "Und nach der Probezeit?")  # the first one's turn again
    assert first["thread_action"] == "new"
    assert second["thread_action"] == third["thread_action"] == "continued"
    assert first["thread_id"] == second["thread_id"] == third["thread_id"]
    sent = [
        r.body["messages"]
        for r in list(emulator.state.requests)
        if r.query.get("thread_id") == first["thread_id"] and isinstance(r.body, dict)
    ]
    # each continuation sent only its new message: the server's thread held the rest
    assert [[m["content"] for m in messages] for messages in sent] == [
        ["Gilt das auch für Teilzeitkräfte?"],
        ["Und nach der Probezeit?"],
    ]
