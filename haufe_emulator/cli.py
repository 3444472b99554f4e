"""The emulator's commands: `emulator` serves it, `demo` runs the quick start against it in-process.

haufe-copilot emulator --port 8765 [--fault rate_limit_gateway ...]
haufe-copilot demo

`haufe-copilot` finds them through the `haufe_copilot.cli` entry-point group (this package
registers `PLUGIN`), so the core's CLI never imports the emulator; `haufe-emulator` runs the same
two commands on its own.

`demo` (what `make demo` runs) starts the emulator in-process and shows, in turn, a LangChain RAG
chain streaming a cited answer, a LlamaIndex query engine answer with its source nodes, and a
LangGraph agent calling a tool. It needs the `langchain` and `llama-index` extras and `langchain`
(all in the `test` extra); a part whose framework is missing says what to install and is skipped.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import shutil
import socket
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from haufe_copilot.errors import ConfigurationError, HaufeCopilotError
from haufe_copilot.types.quota import Window, parse_rate_limit

from .app import DEFAULT_API_KEY, DEFAULT_ASSISTANT_ID, EmulatorConfig
from .faults import FaultPlan, is_known_fault
from .server import EmulatorServer, serve

__all__ = ["PLUGIN", "Command", "EmulatorPlugin", "main", "notice_period"]

DEMO_QUESTION = "Welche Kündigungsfristen gelten während der Probezeit?"

_EMULATOR_EPILOG = """\
Connect with base_url=http://127.0.0.1:8765 (by default), api_key=sk-emulator-dev and
assistant_id=a1b2c3d4-5678-9abc-def0-1234567890ab. Per request, the headers x-emulator-fault,
x-emulator-fault-times (+ x-emulator-fault-id), x-emulator-retry-after(-ms), x-emulator-delay,
x-emulator-delta-delay, x-emulator-cut-after, x-emulator-malformed-after and
x-emulator-stream-error (+ x-emulator-stream-error-after) switch the same faults on.
"""


def _emulator_arguments(emulator: argparse.ArgumentParser) -> None:
    emulator.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    emulator.add_argument(
        "--lenient",
        action="store_true",
        help="accept and ignore undocumented request fields (default: answer them with 422)",
    )
    emulator.add_argument(
        "--assistant",
        action="append",
        default=[],
        metavar="ID",
        help="an assistant id to accept besides the default one (repeatable)",
    )
    emulator.add_argument(
        "--words-per-delta", type=int, default=1, help="words per streamed delta (default 1)"
    )
    emulator.add_argument(
        "--rate-limit",
        metavar="QUOTA",
        help="the gateway's quota per key, such as 15/s,60/min: over it, 429 with Retry-After",
    )
    emulator.add_argument(
        "--rate-limit-answer",
        choices=("rate_limit_gateway", "rate_limit_message"),
        default="rate_limit_gateway",
        help="the 429's body: {error_code: rate_limit_gateway} (default) or {message: ...}",
    )
    faults = emulator.add_argument_group("faults")
    faults.add_argument(
        "--fault",
        metavar="NAME",
        help="answer every request with this error "
        "(an error_code, rate_limit_message, proxy_html, empty_503 or status_NNN)",
    )
    faults.add_argument("--fault-times", type=int, metavar="N", help="only the first N requests fail")
    faults.add_argument("--retry-after", metavar="SECONDS", help="send Retry-After with errors")
    faults.add_argument("--retry-after-ms", metavar="MS", help="send retry-after-ms with errors")
    faults.add_argument(
        "--delay", type=float, default=0.0, metavar="SECONDS", help="delay before the first byte"
    )
    faults.add_argument(
        "--delta-delay", type=float, default=0.0, metavar="SECONDS", help="delay before each delta"
    )
    faults.add_argument("--cut-after", type=int, metavar="N", help="cut the connection after N deltas")
    faults.add_argument(
        "--malformed-after", type=int, metavar="N", help="send a malformed line after N deltas"
    )
    faults.add_argument("--stream-error", metavar="CODE", help="end streams with this error line")


def _emulator_key_hint() -> str:
    """The key a client should use: the development key, or a pointer to the keys configured (a
    key chosen in HAUFE_COPILOT_EMULATOR_KEYS is not echoed to a terminal or a CI log)."""
    configured = os.environ.get("HAUFE_COPILOT_EMULATOR_KEYS")
    if configured is None or DEFAULT_API_KEY in configured.split(","):
        return DEFAULT_API_KEY
    return "<a key from HAUFE_COPILOT_EMULATOR_KEYS>"


def _connect_lines(url: str) -> str:
    """The environment `haufe-copilot chat` and the clients read, set for an emulator at `url`."""
    return (
        f"  export HAUFE_COPILOT_BASE_URL={url}\n"
        f"  export HAUFE_COPILOT_API_KEY={_emulator_key_hint()}\n"
        f"  export HAUFE_COPILOT_ASSISTANT_ID={DEFAULT_ASSISTANT_ID}"
    )


# -- the demo ----------------------------------------------------------------------------------

#: The question of each part of the demo (the emulator answers all of them from its corpus).
DEMO_RAG_QUESTION = DEMO_QUESTION
DEMO_QUERY_ENGINE_QUESTION = "Wie viele Urlaubstage stehen mir zu?"
DEMO_AGENT_QUESTION = (
    "Ich bin seit 8 Jahren im Betrieb. Welche Kündigungsfrist muss mein Arbeitgeber einhalten? "
    "Nutze kuendigungsfrist."
)

#: Seconds between streamed deltas when the demo writes to a terminal, so you can watch them arrive.
_DEMO_PACE = "0.02"

#: §§ 622 Abs. 1 and 2 BGB: the employer's notice period by years of service.
_NOTICE_PERIODS = (
    (20, "sieben Monate zum Ende eines Kalendermonats"),
    (15, "sechs Monate zum Ende eines Kalendermonats"),
    (12, "fünf Monate zum Ende eines Kalendermonats"),
    (10, "vier Monate zum Ende eines Kalendermonats"),
    (8, "drei Monate zum Ende eines Kalendermonats"),
    (5, "zwei Monate zum Ende eines Kalendermonats"),
    (2, "ein Monat zum Ende eines Kalendermonats"),
)


def notice_period(jahre: int) -> str:
    """The notice period an employer must keep after `jahre` years of service (§ 622 BGB)."""
    for years, period in _NOTICE_PERIODS:
        if jahre >= years:
            return f"{period} (§ 622 Abs. 2 BGB, {jahre} Jahre Betriebszugehörigkeit)"
    return "vier Wochen zum Fünfzehnten oder zum Ende eines Kalendermonats (§ 622 Abs. 1 BGB)"


def _is_terminal(out: TextIO) -> bool:
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def _write_answer(out: TextIO, style: _Style, text: str) -> None:
    """`Antwort: ` and the text, word-wrapped on a terminal."""
    out.write(style.label("Antwort: "))
    _Flow(out, style, len("Antwort: "), _is_terminal(out)).write(text)
    out.write("\n")


class _Style:
    """ANSI colours, only where they help: stdout is a terminal, unless NO_COLOR is set; FORCE_COLOR
    turns them on anyway (the same rule as CPython's own)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @classmethod
    def for_stream(cls, out: TextIO) -> _Style:
        if os.environ.get("NO_COLOR"):
            return cls(False)
        if os.environ.get("FORCE_COLOR", "0") not in ("", "0"):
            return cls(True)
        return cls(_is_terminal(out) and os.environ.get("TERM") != "dumb")

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and text else text

    def heading(self, text: str) -> str:
        return self._wrap("1;36", text)

    def label(self, text: str) -> str:
        return self._wrap("1", text)

    def answer(self, text: str) -> str:
        return self._wrap("32", text)

    def source(self, text: str) -> str:
        return self._wrap("33", text)

    def tool(self, text: str) -> str:
        return self._wrap("35", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


_NO_BREAK_AFTER = frozenset({"§", "§§", "Abs.", "Nr.", "S.", "Art."})


class _Flow:
    """Writes streamed text word-wrapped to the terminal's width (on a terminal only: piped output
    stays as it came), breaking lines only where the text has whitespace."""

    def __init__(self, out: TextIO, style: _Style, start: int, wrap: bool) -> None:
        self.out, self.style, self.column = out, style, start
        self.width = min(shutil.get_terminal_size((100, 24)).columns, 100) - 1 if wrap else 0
        self.space = False
        self.last = ""

    def write(self, text: str) -> None:
        if not self.width:
            self.out.write(self.style.answer(text))
            self.out.flush()
            return
        for piece in re.split(r"(\s+)", text):
            if not piece:
                continue
            if piece.isspace():
                if "\n" in piece:  # the text's own line breaks stay
                    self.out.write("\n" * piece.count("\n"))
                    self.column, self.space = 0, False
                else:
                    self.space = self.column > 0
                continue
            # "§ 622 Abs. 3" stays on one line: no break after "§", and room kept for what follows it
            glued = self.last in _NO_BREAK_AFTER
            needed = len(piece) + (12 if piece in _NO_BREAK_AFTER else 0)
            if self.space and not glued and self.column + 1 + needed > self.width:
                self.out.write("\n")
                self.column = 0
            elif self.space:
                self.out.write(" ")
                self.column += 1
            self.space = False
            self.out.write(self.style.answer(piece))
            self.column += len(piece)
            self.last = piece
        self.out.flush()


def _heading(out: TextIO, style: _Style, number: int, title: str, what: str) -> None:
    out.write("\n" + style.heading(f"── {number}/3  {title} " + "─" * max(4, 70 - len(title))) + "\n")
    out.write(style.dim(textwrap.fill(what, width=100)) + "\n\n")


def _skipped(out: TextIO, style: _Style, exc: ImportError, install: str) -> None:
    out.write(style.dim(f"(skipped: {exc.name or exc} is not installed; {install})") + "\n")


def _footnote(title: Any, section: Any) -> str:
    return f"{title or 'Quelle'}" + (f", {section}" if section else "")


def _demo_rag_chain(server: EmulatorServer, out: TextIO, style: _Style) -> None:
    _heading(
        out,
        style,
        1,
        "LangChain: an LCEL RAG chain, streamed",
        "retriever | prompt | ChatHaufeCopilot: the cited passages as context, the answer token by "
        "token, its sources as footnotes",
    )
    try:
        from langchain_core.documents import Document
        from langchain_core.prompts import ChatPromptTemplate
        from langchain_core.runnables import RunnablePassthrough

        from langchain_haufe import ChatHaufeCopilot, HaufeCopilotRetriever, sources_to_documents
    except ImportError as exc:
        _skipped(out, style, exc, "pip install 'haufe-copilot[langchain]'")
        return
    connection = {"api_key": server.api_key, "base_url": server.url, "assistant_id": server.assistant_id}
    # On a terminal, the emulator paces its deltas (x-emulator-delta-delay) so you can watch them.
    pace = {"x-emulator-delta-delay": _DEMO_PACE} if _is_terminal(out) else None
    retriever = HaufeCopilotRetriever(**connection, k=3)
    model = ChatHaufeCopilot(**connection, default_headers=pace)

    def as_context(documents: list[Document]) -> str:
        return "\n".join(f"[{d.metadata['rank']}] {d.page_content}" for d in documents)

    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Beantworte die Frage mit diesen Auszügen und nenne die Vorschriften:\n{context}"),
            ("human", "{question}"),
        ]
    )
    chain = {"context": retriever | as_context, "question": RunnablePassthrough()} | prompt | model

    out.write(style.label("Frage: ") + DEMO_RAG_QUESTION + "\n" + style.label("Antwort: "))
    flow = _Flow(out, style, len("Antwort: "), _is_terminal(out))
    answer: Any = None
    for chunk in chain.stream(DEMO_RAG_QUESTION):  # token by token
        flow.write(str(chunk.content))
        answer = chunk if answer is None else answer + chunk  # the last chunk brings the metadata
    out.write("\n\n" + style.label("Quellen:") + "\n")
    for document in sources_to_documents(answer):
        number, meta = document.metadata["rank"], document.metadata
        out.write(
            "  "
            + style.source(f"[{number}] " + _footnote(meta.get("document_title"), meta.get("section")))
            + "\n"
        )
    metadata = answer.response_metadata
    out.write(
        style.dim(
            f"thread {metadata.get('thread_id')} ({metadata.get('thread_action')}): "
            "the next turn continues it"
        )
        + "\n"
    )


def _demo_query_engine(server: EmulatorServer, out: TextIO, style: _Style) -> None:
    _heading(
        out,
        style,
        2,
        "LlamaIndex: a query engine with source nodes",
        "HaufeCopilotQueryEngine.query(): a Response whose source_nodes are the cited passages "
        "(score 1/rank)",
    )
    try:
        from llama_index.core.schema import MetadataMode

        from llama_index_haufe import HaufeCopilotQueryEngine
    except ImportError as exc:
        _skipped(out, style, exc, "pip install 'haufe-copilot[llama-index]'")
        return
    engine = HaufeCopilotQueryEngine(
        api_key=server.api_key, base_url=server.url, assistant_id=server.assistant_id
    )
    response = engine.query(DEMO_QUERY_ENGINE_QUESTION)
    out.write(style.label("Frage: ") + DEMO_QUERY_ENGINE_QUESTION + "\n")
    _write_answer(out, style, str(response))
    out.write("\n")
    out.write(style.label("Source nodes:") + "\n")
    for node in response.source_nodes:
        metadata = node.node.metadata
        where = _footnote(metadata.get("document_title"), metadata.get("section"))
        text = textwrap.shorten(node.node.get_content(MetadataMode.NONE), width=90, placeholder=" …")
        out.write(
            "  "
            + style.source(f"[{metadata.get('rank')}] {where}")
            + style.dim(f"  score {node.score:.2f}")
            + "\n"
        )
        out.write("      " + style.dim(text) + "\n")


def _demo_agent(server: EmulatorServer, out: TextIO, style: _Style) -> None:
    _heading(
        out,
        style,
        3,
        "LangGraph: an agent calling a tool",
        "langchain.agents.create_agent(ChatHaufeCopilot, tools=[kuendigungsfrist]): with tools "
        "bound the model talks to the completions endpoint",
    )
    try:
        from langchain.agents import create_agent
        from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
        from langchain_core.tools import tool

        from langchain_haufe import ChatHaufeCopilot
    except ImportError as exc:
        _skipped(out, style, exc, "pip install 'haufe-copilot[langchain]' langchain langgraph")
        return

    @tool
    def kuendigungsfrist(jahre: int) -> str:
        """Die gesetzliche Kündigungsfrist des Arbeitgebers nach § 622 BGB für eine
        Betriebszugehörigkeit von `jahre` Jahren."""
        return notice_period(jahre)

    model = ChatHaufeCopilot(api_key=server.api_key, base_url=server.url, assistant_id=server.assistant_id)
    agent = create_agent(model, tools=[kuendigungsfrist])
    out.write(style.label("Frage: ") + DEMO_AGENT_QUESTION + "\n")
    for update in agent.stream({"messages": [HumanMessage(DEMO_AGENT_QUESTION)]}, stream_mode="updates"):
        for step in update.values():
            for message in (step or {}).get("messages", []):
                if isinstance(message, AIMessage) and message.tool_calls:
                    for call in message.tool_calls:
                        arguments = ", ".join(f"{k}={v!r}" for k, v in call["args"].items())
                        out.write("  " + style.tool(f"→ Werkzeugaufruf {call['name']}({arguments})") + "\n")
                elif isinstance(message, ToolMessage):
                    out.write("  " + style.tool(f"← {message.name}: {message.content}") + "\n")
                elif isinstance(message, AIMessage):
                    _write_answer(out, style, str(message.content))


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    style = _Style.for_stream(out)
    with EmulatorServer() as server:
        out.write(
            style.label("Haufe Copilot demo")
            + f": the emulator answers on {server.url} (in-process, no account needed)\n"
        )
        for part in (_demo_rag_chain, _demo_query_engine, _demo_agent):
            part(server, out, style)
    out.write(
        "\n"
        + style.label("Next: ")
        + "make test · python examples/lcel_rag_citations.py · README.md (quick starts, configuration)\n"
    )
    out.flush()
    return 0


def _rate_limit(text: str | None) -> tuple[Window, ...]:
    if text is None:
        return ()
    try:
        return parse_rate_limit(text)
    except ConfigurationError as exc:
        raise SystemExit(f"error: --rate-limit: {exc}") from None


def _emulator(args: argparse.Namespace, out: TextIO) -> int:
    for name in (args.fault, args.stream_error):
        if name is not None and not is_known_fault(name):
            raise SystemExit(f"error: unknown fault {name!r}; see haufe-copilot emulator --help")
    port = _free_port_or_exit(args.host, args.port)
    plan = FaultPlan(
        fault=args.fault,
        fault_times=args.fault_times,
        retry_after=args.retry_after,
        retry_after_ms=args.retry_after_ms,
        delay=args.delay,
        delta_delay=args.delta_delay,
        cut_after=args.cut_after,
        malformed_after=args.malformed_after,
        stream_error=args.stream_error,
    )
    config = EmulatorConfig(
        assistant_ids=frozenset({DEFAULT_ASSISTANT_ID, *args.assistant}),
        lenient=args.lenient,
        faults=plan,
        words_per_delta=args.words_per_delta,
        rate_limit=_rate_limit(args.rate_limit),
        rate_limit_answer=args.rate_limit_answer,
    )
    host = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address in a URL
    url = f"http://{host}:{port}"
    print(
        f"Haufe Copilot emulator on {url} (Ctrl-C stops it). Point a client or "
        f"`haufe-copilot chat` at it with:\n{_connect_lines(url)}",
        flush=True,
    )
    serve(config, args.host, port)
    return 0


def _free_port_or_exit(host: str, port: int) -> int:
    """The port to serve on, checked before the banner: one line instead of a banner followed by
    uvicorn's traceback. Port 0 becomes a free port (so the banner shows the real one)."""
    if not 0 <= port <= 65535:
        raise SystemExit(f"error: --port {port} is not a TCP port: give 1-65535 (or 0 for a free one)")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            # as uvicorn binds: SO_REUSEADDR ignores sockets in TIME_WAIT, not a listening server
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            free_port: int = probe.getsockname()[1]
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            advice = "something is already listening there (another emulator?): pick another --port"
        elif exc.errno == errno.EACCES:
            advice = "ports below 1024 need privileges: pick another --port"
        else:
            advice = "check --host: it must be an address of this machine, e.g. 127.0.0.1"
        raise SystemExit(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}; {advice}") from None
    return free_port


# -- the commands, as `haufe-copilot` and `haufe-emulator` find them ---------------------------


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """`demo` takes none."""


@dataclass(frozen=True)
class Command:
    """One command: its name, `add_parser`'s options (help, description, ...), its arguments,
    and what runs it (the exit status)."""

    name: str
    parser_options: Mapping[str, Any]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, TextIO], int]


class EmulatorPlugin:
    """What the `haufe_copilot.cli` entry point `emulator` loads: the commands, and the
    in-process emulator of `haufe-copilot chat --emulator`."""

    commands: Sequence[Command] = (
        Command(
            "emulator",
            {
                "help": "serve the local emulator of the Haufe Copilot APIs",
                "description": "Serve the emulator of all four Haufe Copilot APIs (assistant chat and "
                "stream, completions, async streams) until interrupted. It answers German employment-law "
                "questions from a bundled corpus with sources and keeps threads. API keys come from "
                "HAUFE_COPILOT_EMULATOR_KEYS (comma-separated; default sk-emulator-dev). Faults given "
                "here apply to every request; x-emulator-* request headers override them per request.",
                "epilog": _EMULATOR_EPILOG,
                "formatter_class": argparse.RawDescriptionHelpFormatter,
            },
            _emulator_arguments,
            _emulator,
        ),
        Command(
            "demo",
            {
                "help": "the quick start: LangChain, LlamaIndex and LangGraph against an in-process emulator",
                "description": "Start the emulator in-process (no account, no network) and show in turn: "
                "a LangChain RAG chain streaming its answer token by token with numbered source "
                "footnotes, a LlamaIndex query engine answer with its source nodes, and a LangGraph agent "
                "calling a tool. Colours when stdout is a terminal (NO_COLOR turns them off, FORCE_COLOR "
                "on). Needs the langchain and llama-index extras and langchain (pip install -e '.[test]' "
                "has them all); a part whose framework is missing is skipped with a hint.",
            },
            _no_arguments,
            _demo,
        ),
    )

    def local_server(self) -> EmulatorServer:
        """An emulator for one call (a context manager: it serves while the `with` lasts)."""
        return EmulatorServer()

    def thread_hint(self, thread_id: str) -> str:
        """What to do instead of `--thread` after `chat --emulator`: its threads end with it."""
        return (
            f"(thread {thread_id} ended with this call's emulator. To continue a conversation, run "
            "`haufe-copilot emulator` in another terminal, then, in this one:\n"
            + _connect_lines("http://127.0.0.1:8765")
            + '\n  haufe-copilot chat "QUESTION"                 prints a thread id'
            + '\n  haufe-copilot chat "FOLLOW-UP" --thread ID    continues it)'
        )


PLUGIN = EmulatorPlugin()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haufe-emulator",
        description="The local emulator of the Haufe Copilot APIs, and the quick start.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in PLUGIN.commands:
        command.add_arguments(commands.add_parser(command.name, **command.parser_options))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`haufe-emulator`: the same commands as `haufe-copilot emulator` and `haufe-copilot demo`."""
    args = _parser().parse_args(argv)
    run = next(command.run for command in PLUGIN.commands if command.name == args.command)
    try:
        return run(args, sys.stdout)
    except (HaufeCopilotError, KeyboardInterrupt) as exc:  # the demo's clients; Ctrl-C
        interrupted = isinstance(exc, KeyboardInterrupt)
        print("\ninterrupted" if interrupted else f"\nerror: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 130 if interrupted else 1
    except BrokenPipeError:  # `haufe-emulator demo | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
