"""`haufe-copilot`: ask a question; installed extras add commands.

haufe-copilot chat "Welche Kündigungsfristen gelten während der Probezeit?" --stream [--emulator]
haufe-copilot emulator --port 8765      (the emulator extra: haufe_emulator.cli)
haufe-copilot demo                      (the emulator extra: the quick start)

The core knows only `chat`. Other commands come from the entry-point group `haufe_copilot.cli`
(`PLUGIN_GROUP`): each entry point is named after the extra that ships it and loads a
`CommandPlugin`; the `emulator` one also serves `chat --emulator`. So the core never imports the
emulator, and without an extra installed its commands say in one line what to install.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, TextIO, cast

from haufe_copilot._version import __version__
from haufe_copilot.errors import HaufeCopilotError
from haufe_copilot.transport.client import HaufeCopilotClient
from haufe_copilot.types import AssistantAnswer, Source

#: Where installed packages add commands: entry points named after the extra that ships them.
PLUGIN_GROUP = "haufe_copilot.cli"
#: The plugin that serves `chat --emulator` (and the extra that ships it).
EMULATOR_PLUGIN = "emulator"


class Command(Protocol):
    """One command a plugin adds: `add_parser(name, **parser_options)`, then `add_arguments`."""

    @property
    def name(self) -> str: ...
    @property
    def parser_options(self) -> Mapping[str, Any]: ...
    @property
    def add_arguments(self) -> Callable[[argparse.ArgumentParser], None]: ...
    @property
    def run(self) -> Callable[[argparse.Namespace, TextIO], int]: ...


class LocalServer(Protocol):
    """A server for one call, as `chat --emulator` uses it."""

    @property
    def url(self) -> str: ...
    @property
    def api_key(self) -> str: ...
    @property
    def assistant_id(self) -> str: ...


class CommandPlugin(Protocol):
    """What an entry point of `PLUGIN_GROUP` loads."""

    @property
    def commands(self) -> Sequence[Command]: ...


class EmulatorPlugin(CommandPlugin, Protocol):
    """The `emulator` plugin: its commands, and the in-process emulator of `chat --emulator`."""

    def local_server(self) -> AbstractContextManager[LocalServer]: ...
    def thread_hint(self, thread_id: str) -> str: ...


_EPILOG = """\
examples:
  haufe-copilot demo                                  the quick start (no account needed)
  haufe-copilot chat "Wie viele Urlaubstage stehen mir zu?" --stream --emulator
  haufe-copilot emulator --port 8765                  then point HAUFE_COPILOT_BASE_URL at it

Run "haufe-copilot COMMAND --help" for a command's options.
"""


class _Plugins:
    """The installed plugins by name, and those whose extra's libraries are missing."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.loaded: dict[str, CommandPlugin] = {}
        self.missing: dict[str, ImportError] = {}
        self.command = next((arg for arg in argv if not arg.startswith("-")), None)
        # A plain `chat` needs no plugin: it does not pay for importing the emulator's server.
        if self.command == "chat" and "--emulator" not in argv:
            return
        for entry_point in importlib.metadata.entry_points(group=PLUGIN_GROUP):
            try:
                self.loaded[entry_point.name] = entry_point.load()
            except ImportError as exc:
                self.missing[entry_point.name] = exc

    @property
    def commands(self) -> dict[str, Command]:
        return {command.name: command for plugin in self.loaded.values() for command in plugin.commands}

    def check_installed(self) -> None:
        """A command no installed plugin adds while a plugin could not load: that extra's line
        (argparse would only say "invalid choice")."""
        command = self.command
        if command is None or command == "chat" or command in self.commands:
            return
        for extra, exc in self.missing.items():
            raise _missing_extra(command, extra, exc)

    def emulator(self) -> EmulatorPlugin:
        """The plugin of `chat --emulator`."""
        if EMULATOR_PLUGIN not in self.loaded:
            exc = self.missing.get(EMULATOR_PLUGIN, ImportError(name="haufe_emulator"))
            raise _missing_extra("chat --emulator", EMULATOR_PLUGIN, exc)
        return cast("EmulatorPlugin", self.loaded[EMULATOR_PLUGIN])  # the plugin of that name


def _missing_extra(what: str, extra: str, exc: ImportError) -> SystemExit:
    """The one line for a command run without its extra's libraries (the emulator's: fastapi, uvicorn)."""
    missing = exc.name or str(exc)
    install = f"pip install 'haufe-copilot[{extra}]'"
    return SystemExit(f"error: {what} needs the {extra}'s extra ({missing} is missing): {install}")


def _parser(plugins: _Plugins) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haufe-copilot",
        description="Haufe Copilot from the command line: ask questions, serve the local emulator, "
        "run the quick start.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"haufe-copilot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = commands.add_parser(
        "chat",
        help="ask a question and print the answer with its sources",
        description="Ask the assistant and print its answer, its numbered sources and its thread "
        "id. The key comes from HAUFE_COPILOT_API_KEY, the URL from HAUFE_COPILOT_BASE_URL "
        "(default https://api.haufe.ai), the assistant from HAUFE_COPILOT_ASSISTANT_ID; --emulator "
        "answers from a local emulator started for this call instead.",
    )
    chat.add_argument("question", help="the question, in German or English")
    chat.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    chat.add_argument(
        "--thread", metavar="ID", help="continue this server thread (the id a previous answer printed)"
    )
    chat.add_argument(
        "--assistant-id",
        default=os.environ.get("HAUFE_COPILOT_ASSISTANT_ID"),
        help="the assistant to ask (default: HAUFE_COPILOT_ASSISTANT_ID)",
    )
    chat.add_argument("--user-id", help="the user the conversation belongs to")
    chat.add_argument("--emulator", action="store_true", help="start a local emulator and ask it")
    for command in plugins.commands.values():
        command.add_arguments(commands.add_parser(command.name, **command.parser_options))
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
def _client_for(
    emulator: EmulatorPlugin | None, assistant_id: str | None
) -> Iterator[tuple[HaufeCopilotClient, str]]:
    if emulator is None:
        if not assistant_id:
            raise SystemExit(
                "error: no assistant: pass --assistant-id or set HAUFE_COPILOT_ASSISTANT_ID "
                "(or use --emulator)"
            )
        with HaufeCopilotClient() as client:
            yield client, assistant_id
        return
    with (
        emulator.local_server() as server,
        HaufeCopilotClient(api_key=server.api_key, base_url=server.url) as client,
    ):
        yield client, assistant_id or server.assistant_id


def _ask(args: argparse.Namespace, out: TextIO, plugins: _Plugins) -> int:
    messages = [{"role": "user", "content": args.question}]
    emulator = plugins.emulator() if args.emulator else None
    with _client_for(emulator, args.assistant_id) as (client, assistant_id):
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
            hint = f"(thread {thread_id}: continue it with --thread {thread_id})"
            # The emulator of --emulator lives for this one call, and its threads with it.
            out.write("\n" + (emulator.thread_hint(thread_id) if emulator else hint) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    plugins = _Plugins(argv)
    plugins.check_installed()
    args = _parser(plugins).parse_args(argv)
    out = sys.stdout
    try:
        if args.command == "chat":
            return _ask(args, out, plugins)
        return plugins.commands[args.command].run(args, out)
    except HaufeCopilotError as exc:
        print(f"\nerror: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `haufe-copilot demo | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
