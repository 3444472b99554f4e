"""`haufe-copilot`: serve the emulator, ask a question, or run the quick start.

haufe-copilot emulator --port 8765 [--fault rate_limit_gateway ...]
haufe-copilot chat "Welche Kündigungsfristen gelten während der Probezeit?" --stream --emulator
haufe-copilot demo
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from ._client import HaufeCopilotClient
from .errors import HaufeCopilotError
from .types import AssistantAnswer, Source

DEMO_QUESTION = "Welche Kündigungsfristen gelten während der Probezeit?"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haufe-copilot",
        description="Haufe Copilot from the command line: ask questions, or run the local emulator.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    emulator = commands.add_parser(
        "emulator",
        help="serve the local emulator of the Haufe Copilot APIs",
        description="Serve the emulator. API keys come from HAUFE_COPILOT_EMULATOR_KEYS "
        "(comma-separated; default sk-emulator-dev). Faults given here apply to every request; "
        "x-emulator-* request headers override them per request.",
    )
    emulator.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    emulator.add_argument(
        "--lenient", action="store_true", help="accept and ignore undocumented request fields"
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

    chat = commands.add_parser(
        "chat",
        help="ask a question and print the answer with its sources",
        description="Ask the assistant. The key comes from HAUFE_COPILOT_API_KEY, the URL from "
        "HAUFE_COPILOT_BASE_URL, the assistant from HAUFE_COPILOT_ASSISTANT_ID; --emulator "
        "answers from a local emulator started for this call instead.",
    )
    chat.add_argument("question", help="the question, in German or English")
    chat.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    chat.add_argument("--thread", metavar="ID", help="continue this thread")
    chat.add_argument(
        "--assistant-id",
        default=os.environ.get("HAUFE_COPILOT_ASSISTANT_ID"),
        help="the assistant to ask (default: HAUFE_COPILOT_ASSISTANT_ID)",
    )
    chat.add_argument("--user-id", help="the user the conversation belongs to")
    chat.add_argument("--emulator", action="store_true", help="start a local emulator and ask it")

    commands.add_parser(
        "demo",
        help="the quick start: a streamed answer with sources from an in-process emulator",
        description="Starts the emulator in-process and streams a cited answer.",
    )
    return parser


def _print_sources(sources: Sequence[Source], out: TextIO) -> None:
    if not sources:
        return
    out.write("\nQuellen:\n")
    for number, source in enumerate(sources, start=1):
        title = source.meta_data.document_title or "Quelle"
        section = source.meta_data.section
        out.write(f"  [{number}] {title}" + (f", {section}" if section else "") + "\n")


@contextmanager
def _client_for(emulator: bool, assistant_id: str | None) -> Iterator[tuple[HaufeCopilotClient, str]]:
    if not emulator:
        if not assistant_id:
            raise SystemExit(
                "error: no assistant: pass --assistant-id or set HAUFE_COPILOT_ASSISTANT_ID "
                "(or use --emulator)"
            )
        with HaufeCopilotClient() as client:
            yield client, assistant_id
        return
    try:
        from .emulator import EmulatorServer
    except ImportError as exc:
        raise SystemExit(
            f"error: the emulator needs its extra: pip install 'haufe-copilot[emulator]' ({exc})"
        ) from None
    with (
        EmulatorServer() as server,
        HaufeCopilotClient(api_key=server.api_key, base_url=server.url) as client,
    ):
        yield client, assistant_id or server.assistant_id


def _ask(args: argparse.Namespace, out: TextIO) -> int:
    messages = [{"role": "user", "content": args.question}]
    with _client_for(args.emulator, args.assistant_id) as (client, assistant_id):
        request = {
            "assistant_id": assistant_id,
            "messages": messages,
            "user_id": args.user_id,
            "thread_id": args.thread,
        }
        if args.stream:
            sources: list[Source] = []
            thread_id = None
            with client.assistant.stream(**request) as stream:
                for chunk in stream:
                    out.write(chunk.delta.content)
                    out.flush()
                    sources.extend(chunk.delta.sources)
                    thread_id = chunk.thread_id
            out.write("\n")
            _print_sources(sources, out)
        else:
            answer: AssistantAnswer = client.assistant.chat(**request)
            out.write(answer.content + "\n")
            _print_sources(answer.sources, out)
            thread_id = answer.thread_id
        if thread_id:
            out.write(f"\n(thread {thread_id}: continue it with --thread {thread_id})\n")
    return 0


def _emulator(args: argparse.Namespace) -> int:
    from .emulator.app import DEFAULT_ASSISTANT_ID, EmulatorConfig
    from .emulator.faults import FaultPlan, is_known_fault
    from .emulator.server import serve

    for name in (args.fault, args.stream_error):
        if name is not None and not is_known_fault(name):
            raise SystemExit(f"error: unknown fault {name!r}; see haufe-copilot emulator --help")
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
    )
    print(
        f"Haufe Copilot emulator on http://{args.host}:{args.port} "
        f"(assistant_id {DEFAULT_ASSISTANT_ID}; keys from HAUFE_COPILOT_EMULATOR_KEYS)",
        flush=True,
    )
    serve(config, args.host, args.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = sys.stdout
    try:
        if args.command == "emulator":
            return _emulator(args)
        if args.command == "demo":
            out.write(f"Frage: {DEMO_QUESTION}\n\nAntwort: ")
            return _ask(
                argparse.Namespace(
                    question=DEMO_QUESTION,
                    stream=True,
                    thread=None,
                    assistant_id=None,
                    user_id=None,
                    emulator=True,
                ),
                out,
            )
        return _ask(args, out)
    except HaufeCopilotError as exc:
        print(f"\nerror: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
