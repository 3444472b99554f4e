"""Every script in `examples/` runs, as a user would run it, against the emulator; each test
asserts on what the script printed (the answer and its sources), and where it matters on what the
emulator received.

The scripts run as subprocesses with `HAUFE_COPILOT_API_KEY` / `HAUFE_COPILOT_BASE_URL` /
`HAUFE_COPILOT_ASSISTANT_ID` pointing at an emulator this module starts; one runs with none of
them set, and so starts its own emulator in-process, as a first try without an account does.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from haufe_emulator import EmulatorConfig, EmulatorServer
from tests.conftest import ASSISTANT_ID, SESSION_API_KEY
from tests.reliability.servers import reap

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ASSISTANT = "/agents/v1/chat/completions"
ASSISTANT_STREAM = "/agents/v1/chat/completions/stream"
COMPLETIONS = "/api/v1/chat/completions"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    """An emulator of this module's own, so what it received is only what the examples sent."""
    with EmulatorServer(EmulatorConfig(api_keys=frozenset({SESSION_API_KEY}))) as emulator:
        yield emulator


def environment(server: EmulatorServer | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAUFE_COPILOT_")}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    if server is not None:
        env.update(
            HAUFE_COPILOT_API_KEY=SESSION_API_KEY,
            HAUFE_COPILOT_BASE_URL=server.url,
            HAUFE_COPILOT_ASSISTANT_ID=ASSISTANT_ID,
        )
    return env


def run_example(
    name: str, *args: str, server: EmulatorServer | None, runner: tuple[str, ...] = (), timeout: float = 60
) -> str:
    """Run `examples/<name>` to its end (with `runner`: `python -m pytest`, say); its stdout (it
    must exit 0 and leave no traceback)."""
    result = subprocess.run(
        [sys.executable, *runner, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        env=environment(server),
        cwd=EXAMPLES.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def received_since(server: EmulatorServer, start: float, path: str | None = None) -> list[Any]:
    return [r for r in list(server.state.requests) if r.at >= start and (path is None or r.path == path)]


def test_there_are_at_least_six_examples_and_each_says_how_it_connects() -> None:
    scripts = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
    assert len(scripts) >= 6
    for script in scripts:
        docstring = script.read_text(encoding="utf-8").split('"""')[1]
        assert "HAUFE_COPILOT_API_KEY" in docstring and "EmulatorServer" in docstring, script.name


# -- LangChain ---------------------------------------------------------------------------------


@pytest.mark.parametrize("own_emulator", [False, True], ids=["configured-service", "in-process-emulator"])
def test_lcel_rag_chain_streams_a_cited_answer(server: EmulatorServer, own_emulator: bool) -> None:
    start = time.monotonic()
    out = run_example("lcel_rag_citations.py", server=None if own_emulator else server)
    answer = out.split("Antwort: ", 1)[1].split("\n\nQuellen:", 1)[0]
    assert "Kündigungsfrist nach § 622 Abs. 3 BGB zwei Wochen" in answer
    footnotes = re.findall(r"^  \[(\d)\] (.+)$", out, re.MULTILINE)
    assert footnotes[0] == ("1", "Bürgerliches Gesetzbuch (BGB), § 622 Abs. 3")
    assert [n for n, _ in footnotes] == [str(i) for i in range(1, len(footnotes) + 1)]
    assert 3 <= len(footnotes) <= 5
    assert f"{len(footnotes)} citation annotations in answer.content_blocks" in out
    assert re.search(rf"thread {UUID} \(new\)", out)
    if own_emulator:
        assert not received_since(server, start)  # it did not use this module's emulator
        return
    # The retriever asked first; the chain then streamed with the cited passages as context.
    (retrieval,) = [r.body for r in received_since(server, start, ASSISTANT)]
    (streamed,) = [r.body for r in received_since(server, start, ASSISTANT_STREAM)]
    assert retrieval["messages"] == [
        {"role": "user", "content": "Welche Kündigungsfristen gelten während der Probezeit?"}
    ]
    system, question = streamed["messages"]
    assert (
        system["role"] == "system"
        and "[1] § 622 Abs. 3 BGB: Während einer vereinbarten Probezeit" in (system["content"])
    )
    assert question["content"] == "Welche Kündigungsfristen gelten während der Probezeit?"


def test_a_thread_continues_across_process_restarts(server: EmulatorServer) -> None:
    start = time.monotonic()
    out = run_example("threads_across_restarts.py", server=server)
    pids = re.findall(r"^process (\d+): (\d) stored message\(s\)", out, re.MULTILINE)
    assert [stored for _, stored in pids] == ["0", "2", "4"]
    assert len({pid for pid, _ in pids} | {str(os.getpid())}) == 4  # three processes, none of them us
    turns = re.findall(rf"^  thread ({UUID}): (\w+)$", out, re.MULTILINE)
    assert [action for _, action in turns] == ["new", "continued", "continued"]
    thread_id = turns[0][0]
    assert {t for t, _ in turns} == {thread_id}
    sent = re.findall(r"^  sends (\d+) message\(s\), thread_id: (.+)$", out, re.MULTILINE)
    assert sent == [("1", "none (a new thread)"), ("1", thread_id), ("1", thread_id)]
    assert re.findall(r"^  sources: (.+)$", out, re.MULTILINE)[0].startswith("§ 622 Abs. 3, § 622 Abs. 1")
    assert "  answer: Während einer vereinbarten Probezeit von höchstens sechs Monaten" in out
    assert f"6 messages stored, 1 server thread: {thread_id}" in out
    # What the server saw: three requests of one message each; the later two on the thread.
    requests = received_since(server, start, ASSISTANT)
    assert [len(r.body["messages"]) for r in requests] == [1, 1, 1]
    assert [r.query.get("thread_id") for r in requests] == [None, thread_id, thread_id]
    stored = server.state.thread(thread_id)
    assert stored is not None and len(stored.messages) == 6


def test_a_langgraph_agent_calls_its_tools(server: EmulatorServer) -> None:
    start = time.monotonic()
    out = run_example("langgraph_tool_agent.py", server=server)
    assert "  -> tool call: kuendigungsfrist({'jahre': 8})" in out
    assert "  <- kuendigungsfrist: 3 Monate zum Ende eines Kalendermonats (§ 622 Abs. 2 BGB)" in out
    assert "  -> tool call: kuendigungsfrist({'jahre': 12})" in out
    assert "  <- kuendigungsfrist: 5 Monate zum Ende eines Kalendermonats (§ 622 Abs. 2 BGB)" in out
    turns = out.split("Frage: ")[1:]
    answers = [turn.split("\nAntwort: ", 1)[1] for turn in turns]
    assert len(answers) == 3
    assert "3 Monate zum Ende eines Kalendermonats" in answers[0]
    assert "5 Monate zum Ende eines Kalendermonats" in answers[1]
    # the retriever tool brings the cited passages (as the tool's artifact) to the agent
    assert "  -> tool call: haufe_recht(" in out
    assert "     [1] Bürgerliches Gesetzbuch (BGB), § 622 Abs. 3" in out
    assert "§ 622 Abs. 3 BGB zwei Wochen" in answers[2]
    assert "12 messages in the checkpointer under 'kunde-42'" in out
    # tools go to the completions endpoint; the checkpointer's key is never sent
    assert len(received_since(server, start, COMPLETIONS)) == 6
    assert all("kunde-42" not in json.dumps(r.body) + str(r.query) for r in received_since(server, start))


def test_a_langgraph_agent_cites_the_sections_its_tool_cited(server: EmulatorServer) -> None:
    start = time.monotonic()
    out = run_example("langgraph_cited_agent.py", server=server)
    reply = out.split("Antwort: ", 1)[1].split("\n\nVom Werkzeug zitiert:", 1)[0]
    cited = re.findall(r"^  \[(\d+)\] (§ [^(]+?) \(", out, re.MULTILINE)
    assert cited[:2] == [("1", "§ 622 Abs. 3"), ("2", "§ 622 Abs. 1")]
    # the agent's final reply names every section the tool cited
    for _, section in cited:
        assert section in reply
    assert "§ 622 Abs. 3 BGB zwei Wochen" in reply
    # the agent's model on the completions endpoint, the tool on the assistant API
    assert len(received_since(server, start, COMPLETIONS)) == 2
    assert len(received_since(server, start, ASSISTANT)) == 1


# -- LlamaIndex --------------------------------------------------------------------------------


def test_a_llama_index_query_engine_answers_with_source_nodes(server: EmulatorServer) -> None:
    out = run_example("llama_index_query_engine.py", server=server)
    answer = out.split("Antwort: ", 1)[1].split("\n\nSource nodes:", 1)[0]
    assert answer.startswith("Nach § 3 BUrlG beträgt der gesetzliche Mindesturlaub jährlich 24 Werktage")
    assert "  [1] Bundesurlaubsgesetz (BUrlG), § 3 (score 1.00)" in out
    assert "  [2] Bundesurlaubsgesetz (BUrlG), § 7 Abs. 1 (score 0.50)" in out
    assert "      § 3 BUrlG: (1) Der Urlaub beträgt jährlich mindestens 24 Werktage." in out
    assert re.search(rf"^thread {UUID}, message {UUID}$", out, re.MULTILINE)
    assert "score >= 0.5 keeps 2 of 3 source nodes: § 3, § 7 Abs. 1" in out


def test_a_llama_index_function_agent_uses_both_tools(server: EmulatorServer) -> None:
    start = time.monotonic()
    out = run_example("llama_index_function_agent.py", server=server)
    assert "  -> tool call: kuendigungsfrist({'jahre': 15})" in out
    assert "  <- kuendigungsfrist: 6 Monate zum Ende eines Kalendermonats" in out
    assert "  -> tool call: haufe_recht({'input': " in out
    assert "  <- haufe_recht: Während einer vereinbarten Probezeit" in out
    assert "     [1] Bürgerliches Gesetzbuch (BGB), § 622 Abs. 3" in out
    answers = re.findall(r"^Antwort \((\d+) streamed deltas\): (.+)$", out, re.MULTILINE)
    assert len(answers) == 2 and all(int(deltas) > 10 for deltas, _ in answers)
    assert "6 Monate zum Ende eines Kalendermonats" in answers[0][1]
    assert "§ 622 Abs. 3 BGB zwei Wochen" in answers[1][1]
    # the agent's LLM used the completions endpoint; the query engine tool asked the assistant
    assert len(received_since(server, start, COMPLETIONS)) == 4
    assert len(received_since(server, start, ASSISTANT)) == 1


# -- the core client: async streams ------------------------------------------------------------


def test_an_async_stream_resumes_without_losing_or_repeating_an_event(server: EmulatorServer) -> None:
    out = run_example("async_streams_resume.py", server=server)
    stream_id = re.search(r"^started stream (\S+) \(pending\)$", out, re.MULTILINE)
    read = re.search(r"^read events 1-(\d+): ", out, re.MULTILINE)
    resumed = re.search(r"^resumed from Last-Event-ID (\d+): events (\d+)-(\d+)$", out, re.MULTILINE)
    assert stream_id and read and resumed, out
    last_seen, total = int(read[1]), int(resumed[3])
    assert int(resumed[1]) == last_seen and int(resumed[2]) == last_seen + 1
    assert f"no event lost or repeated: ids 1-{total}, each once; done: completed" in out
    assert "Antwort: Während einer vereinbarten Probezeit von höchstens sechs Monaten beträgt die " in out
    assert f"read again through cut connections: {total} events, identical: True" in out
    # The server's side: the resuming connection asked for exactly the events after the last seen.
    observations = server.app.state.async_streams.observations_for(stream_id[1])
    assert observations[0].last_event_id in (None, 0)
    assert observations[1].last_event_id == last_seen
    assert observations[1].sent == list(range(last_seen + 1, total + 1))
    assert len(observations) > 3  # the third part re-attached after each cut


# -- FastAPI: SSE to a browser -----------------------------------------------------------------


def sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    events, name, data = [], "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif not line and data:
            events.append((name, json.loads(data)))
            name, data = "message", ""
    return events


@pytest.fixture
def sse_app(server: EmulatorServer) -> Iterator[str]:
    """`examples/fastapi_sse_app.py --port 0` running; its URL."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "fastapi_sse_app.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        env=environment(server),
        cwd=EXAMPLES.parent,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                assert process.poll() is None, "the app exited"
                continue
            found = re.search(r"Open (http://127\.0\.0\.1:\d+) in a browser", line)
            url = found[1] if found else None
        assert url, "the app did not say where it listens"
        yield url
    finally:
        process.terminate()
        reap(process)


def test_the_fastapi_app_streams_answers_and_footnotes_as_sse(sse_app: str) -> None:
    with httpx.Client(base_url=sse_app, timeout=30) as http:
        page = http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<script>" in page.text and 'id="footnotes"' in page.text
        assert not re.search(r"""(src|href)=["']?https?:""", page.text)  # no external assets
        with http.stream(
            "POST", "/ask", json={"question": "Wie viele Urlaubstage stehen mir zu?"}
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response)
        kinds = [name for name, _ in events]
        assert kinds[-2:] == ["sources", "done"] and set(kinds[:-2]) == {"token"} and len(kinds) > 10
        text = "".join(data["text"] for name, data in events if name == "token")
        assert text.startswith("Nach § 3 BUrlG beträgt der gesetzliche Mindesturlaub jährlich 24 Werktage")
        sources, done = events[-2][1], events[-1][1]
        assert sources[0]["n"] == 1 and sources[0]["title"] == "Bundesurlaubsgesetz (BUrlG)"
        assert sources[0]["section"] == "§ 3" and sources[0]["content"].startswith("§ 3 BUrlG")
        assert done["thread_action"] == "new" and re.fullmatch(UUID, done["thread_id"])
        # the browser sends the thread id back: the follow-up continues that server thread
        follow_up = {"question": "Gilt das auch für Minijobber?", "thread_id": done["thread_id"]}
        with http.stream("POST", "/ask", json=follow_up) as response:
            assert sse_events(response)[-1][1] == {"thread_id": done["thread_id"], "thread_action": "named"}
        assert http.post("/ask", json={"question": ""}).status_code == 422


# -- the test kit: a user's test file -----------------------------------------------------------

KIT_EXAMPLE = EXAMPLES / "test_app_with_the_kit.py"


def test_the_test_kit_example_passes_as_a_users_test_suite() -> None:
    """`pytest examples/test_app_with_the_kit.py`, as a user runs it: no HAUFE_COPILOT_* set,
    nothing of tests/conftest.py; the plugin comes from the package's entry point."""
    out = run_example(
        KIT_EXAMPLE.name, "-p", "no:cacheprovider", "-q", server=None, runner=("-m", "pytest"), timeout=300
    )
    declared = len(re.findall(r"^def test_", KIT_EXAMPLE.read_text(encoding="utf-8"), re.MULTILINE))
    assert declared >= 6
    assert re.search(rf"^{declared} passed in ", out, re.MULTILINE), out


def test_the_testing_guide_shows_the_example_test_file_verbatim() -> None:
    """docs/testing.md's Python is the example file's own code, so what the guide shows is what
    the test above runs."""
    guide = (EXAMPLES.parent / "docs" / "testing.md").read_text(encoding="utf-8")
    source = KIT_EXAMPLE.read_text(encoding="utf-8")
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    blocks = FENCE.findall(guide)
    assert len(blocks) >= 8
    shown_in_readme = [block for block in FENCE.findall(readme) if "(haufe_emulator)" in block]
    assert shown_in_readme
    for block in blocks + shown_in_readme:
        assert block in source, block


# -- the snippets in README.md and docs/ --------------------------------------------------------

DOCUMENTS = [
    EXAMPLES.parent / "README.md",
    *sorted(p for p in (EXAMPLES.parent / "docs").glob("*.md") if p.name != "reliability.md"),  # generated
]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def snippets() -> list[Any]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for number, match in enumerate(FENCE.finditer(text), start=1):
            if text[: match.start()].rstrip().endswith("<!-- snippet: not run -->"):
                continue
            name = f"{document.relative_to(EXAMPLES.parent)}#{number}"
            found.append(pytest.param(match[1], id=name))
    return found


@pytest.mark.parametrize("code", snippets())
def test_every_python_snippet_in_the_readme_and_docs_runs(
    code: str, server: EmulatorServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each ```python block runs as it stands, with the environment the README tells a reader to
    set (pointed at the emulator), and prints something."""
    for name, value in environment(server).items():
        if name.startswith("HAUFE_COPILOT_"):
            monkeypatch.setenv(name, value)
    exec(compile(code, "<snippet>", "exec"), {"__name__": "__snippet__"})  # noqa: S102
    assert capsys.readouterr().out.strip()
