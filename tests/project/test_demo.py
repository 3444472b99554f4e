"""`haufe-copilot demo` (what `make demo` runs): the emulator in-process, then a LangChain RAG chain
streaming a cited answer, a LlamaIndex query engine with its source nodes, and a LangGraph agent
calling a tool; colours only where they belong."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from haufe_emulator import cli

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ANSI = "\x1b["


def run_demo(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return subprocess.run(
        [sys.executable, "-m", "haufe_copilot.cli", "demo"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        env={**clean, **env},
    )


def parts(out: str) -> list[str]:
    """The output of the three parts, in order (everything before the first is the preamble)."""
    pieces = re.split(r"^── \d/3  ", out, flags=re.MULTILINE)
    assert len(pieces) == 4, out
    return pieces[1:]


def test_the_demo_shows_all_three_parts() -> None:
    result = run_demo()
    assert result.returncode == 0, result.stderr
    assert not result.stderr.strip(), result.stderr
    out = result.stdout
    assert ANSI not in out  # not a terminal: no colours
    assert re.match(r"Haufe Copilot demo: the emulator answers on http://127\.0\.0\.1:\d+ ", out)
    rag, query_engine, agent = parts(out)

    # 1. LangChain: the RAG chain's streamed answer, then numbered footnotes for its sources
    assert rag.startswith("LangChain: an LCEL RAG chain, streamed")
    assert "Frage: Welche Kündigungsfristen gelten während der Probezeit?" in rag
    answer = rag.split("Antwort: ", 1)[1].split("\n\nQuellen:\n", 1)[0]
    assert "beträgt die Kündigungsfrist nach § 622 Abs. 3 BGB zwei Wochen." in answer
    footnotes = re.findall(r"^  \[(\d)\] (.+)$", rag, re.MULTILINE)
    assert footnotes == [
        ("1", "Bürgerliches Gesetzbuch (BGB), § 622 Abs. 3"),
        ("2", "Bürgerliches Gesetzbuch (BGB), § 622 Abs. 1"),
        ("3", "Bürgerliches Gesetzbuch (BGB), § 622 Abs. 6"),
        ("4", "Bürgerliches Gesetzbuch (BGB), § 622 Abs. 2"),
        ("5", "Bürgerliches Gesetzbuch (BGB), § 626 Abs. 1"),
    ]
    assert re.search(rf"^thread {UUID} \(new\)", rag, re.MULTILINE)

    # 2. LlamaIndex: the query engine's answer and its source nodes with scores 1 / rank
    assert query_engine.startswith("LlamaIndex: a query engine with source nodes")
    assert "Frage: Wie viele Urlaubstage stehen mir zu?" in query_engine
    assert (
        "Antwort: Nach § 3 BUrlG beträgt der gesetzliche Mindesturlaub jährlich 24 Werktage" in query_engine
    )
    nodes = re.findall(r"^  \[(\d)\] (.+?)  score (\d\.\d\d)$", query_engine, re.MULTILINE)
    assert nodes[:2] == [
        ("1", "Bundesurlaubsgesetz (BUrlG), § 3", "1.00"),
        ("2", "Bundesurlaubsgesetz (BUrlG), § 7 Abs. 1", "0.50"),
    ]
    assert 3 <= len(nodes) <= 5
    assert "      § 3 BUrlG: (1) Der Urlaub beträgt jährlich mindestens 24 Werktage." in query_engine

    # 3. LangGraph: the agent calls the tool with the number from the question and answers with its result
    assert agent.startswith("LangGraph: an agent calling a tool")
    assert "  → Werkzeugaufruf kuendigungsfrist(jahre=8)" in agent
    assert "  ← kuendigungsfrist: drei Monate zum Ende eines Kalendermonats (§ 622 Abs. 2 BGB" in agent
    final = agent.split("Antwort: ", 1)[1]
    # Issue 17: the answer uses the result in a sentence naming the call
    assert final.startswith("Das Werkzeug kuendigungsfrist (jahre: 8) ergibt: „drei Monate")
    assert "Next: make test" in out.splitlines()[-1]


class Terminal(io.StringIO):
    """A stdout that says it is a terminal and remembers each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_on_a_terminal_the_answer_streams_token_by_token_in_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setattr(cli, "_demo_query_engine", lambda *args: None)  # parts 2 and 3: tested above
    monkeypatch.setattr(cli, "_demo_agent", lambda *args: None)
    monkeypatch.setattr(cli, "_DEMO_PACE", "0")  # a human watching gets 20 ms between tokens
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert cli.main(["demo"]) == 0
    out = terminal.getvalue()
    assert "\x1b[1;36m── 1/3  LangChain" in out and "\x1b[32m" in out and "\x1b[0m" in out
    start = next(i for i, w in enumerate(terminal.writes) if "Antwort: " in w)
    end = next(i for i, w in enumerate(terminal.writes) if "Quellen:" in w)
    tokens = [w for w in terminal.writes[start + 1 : end] if w.strip()]
    assert len(tokens) > 20  # one write per streamed token, as it arrived
    plain = re.sub(r"\x1b\[[\d;]*m", "", out)
    assert "[1] Bürgerliches Gesetzbuch (BGB), § 622 Abs. 3" in plain


@pytest.mark.parametrize(
    ("env", "tty", "colours"),
    [
        ({}, False, False),
        ({}, True, True),
        ({"NO_COLOR": "1"}, True, False),
        ({"FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False, False),
        ({"TERM": "dumb"}, True, False),
    ],
)
def test_colours_only_on_a_terminal_honouring_no_color_and_force_color(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tty: bool, colours: bool
) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = Terminal() if tty else io.StringIO()
    assert cli._Style.for_stream(out).enabled is colours


def test_demo_help_says_what_it_shows() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "haufe_copilot.cli", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.startswith("usage: haufe-copilot demo")
    text = " ".join(result.stdout.split())
    assert "LangChain RAG chain" in text and "LlamaIndex query engine" in text and "LangGraph agent" in text


def test_a_part_whose_framework_is_missing_is_skipped_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_demo_rag_chain", lambda *args: None)  # part 1: tested above
    monkeypatch.setitem(sys.modules, "llama_index_haufe", None)  # "not installed": import fails
    monkeypatch.setitem(sys.modules, "langchain.agents", None)
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "(skipped: llama_index_haufe is not installed; pip install 'haufe-copilot[llama-index]')" in out
    assert "(skipped: langchain.agents is not installed; pip install 'haufe-copilot[langchain]'" in out
