"""A conversation that survives process restarts: the stored history is the memory.

Each turn runs in a fresh Python process. It reads the conversation from a JSON file, adds the
new question, asks `ChatHaufeCopilot`, and writes the conversation back. The answers keep their
`response_metadata` (thread id, digests) in the file, so the next process continues the same
server thread and sends only the new message: the server already has the rest. Nothing else is
stored anywhere; edit the history inside and the next turn opens a new thread instead.

    python examples/threads_across_restarts.py              # three turns, three processes
    python examples/threads_across_restarts.py --history conversation.json "Und für Minijobber?"

The first form starts one child process per turn (`--history FILE QUESTION`). Talks to
HAUFE_COPILOT_BASE_URL with HAUFE_COPILOT_API_KEY (and HAUFE_COPILOT_ASSISTANT_ID) when the key
is set; otherwise it starts the local emulator in-process (EmulatorServer) and points the child
processes at it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from _haufe import haufe_copilot
from langchain_core.messages import HumanMessage, messages_from_dict, messages_to_dict

from langchain_haufe import ChatHaufeCopilot

QUESTIONS = [
    "Welche Kündigungsfristen gelten während der Probezeit?",
    "Gilt das auch für Teilzeitkräfte?",
    "Und für Minijobber?",
]


def show_what_is_sent(request: httpx.Request) -> None:
    """An httpx event hook: what this process sends to the assistant."""
    if request.url.path.endswith("/chat/completions") or request.url.path.endswith("/stream"):
        messages = json.loads(request.content)["messages"]
        thread = request.url.params.get("thread_id") or "none (a new thread)"
        print(f"  sends {len(messages)} message(s), thread_id: {thread}")


def one_turn(history_file: Path, question: str) -> None:
    """One process, one turn: load the history, ask, store the history."""
    history = messages_from_dict(json.loads(history_file.read_text())) if history_file.exists() else []
    history.append(HumanMessage(question))
    with haufe_copilot() as conn, httpx.Client(event_hooks={"request": [show_what_is_sent]}) as http:
        model = ChatHaufeCopilot(**conn.settings(), http_client=http)
        print(f"process {os.getpid()}: {len(history) - 1} stored message(s); asks: {question}")
        answer = model.invoke(history)
    history.append(answer)
    history_file.write_text(json.dumps(messages_to_dict(history), ensure_ascii=False, indent=1))
    metadata = answer.response_metadata
    print(f"  answer: {str(answer.content)[:100]}...")
    print(f"  sources: {', '.join(str(s['meta_data'].get('section')) for s in metadata['sources'])}")
    print(f"  thread {metadata['thread_id']}: {metadata['thread_action']}")


def all_turns() -> None:
    """Each question in a new process, against one server (so the thread outlives them)."""
    with haufe_copilot() as conn, tempfile.TemporaryDirectory() as directory:
        history_file = Path(directory) / "conversation.json"
        env = {**os.environ, **conn.environment()}
        for question in QUESTIONS:
            command = [sys.executable, __file__, "--history", str(history_file), question]
            subprocess.run(command, env=env, check=True)  # noqa: S603 (this very script, our arguments)
        stored = json.loads(history_file.read_text())
        threads = {m["data"]["response_metadata"]["thread_id"] for m in stored if m["type"] == "ai"}
        print(f"{len(stored)} messages stored, {len(threads)} server thread: {threads.pop()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--history", type=Path, help="the JSON file holding the conversation")
    parser.add_argument("question", nargs="?", help="the new question (with --history)")
    args = parser.parse_args()
    if args.history:
        one_turn(args.history, args.question or QUESTIONS[0])
    else:
        all_turns()
