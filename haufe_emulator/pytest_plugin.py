"""The emulator as a test kit: a pytest plugin, registered by the package's `pytest11` entry point
(its fixtures need the `emulator` extra: `pip install 'haufe-copilot[emulator]'`).

- `haufe_emulator`: a fresh emulator for one test, on a free loopback port, with the environment
  set (`HAUFE_COPILOT_API_KEY`, `..._BASE_URL`, `..._PLATFORM_BASE_URL`, `..._PLATFORM_API_KEY`,
  `..._ASSISTANT_ID`) so that `ChatHaufeCopilot()`, `llama_index_haufe.HaufeCopilot()` and
  `HaufeCopilotClient()` built in the test reach it with no arguments; restored after the test.
- `haufe_emulator_session`: one emulator for the whole session, the environment set until it
  ends; what one test scripts stays until `.reset()`.

Each yields a `HaufeEmulator`: `.on(question, api=...)` scripts an answer (see
`haufe_emulator.scripts`), `.fault(api=..., ...)` breaks the next requests of an API,
`.requests` / `.received(api)` are what the emulator received (credential headers redacted).
Strict scripting (`@pytest.mark.haufe_emulator(strict=True)`, `.strict = True`, or the ini option
`haufe_emulator_strict = true`) refuses a request no script matches, and the test fails at
teardown naming it, and naming every script that never answered (`optional=True` exempts one).
The marker's other keywords are `EmulatorConfig` fields (`words_per_delta=3`, ...).

Loading the plugin imports nothing beyond pytest: the emulator is imported when a fixture is used.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .server import EmulatorServer
    from .state import RecordedRequest, StreamRecord

MARKER = "haufe_emulator"
STRICT_OPTION = "haufe_emulator_strict"
INSTALL_HINT = "pip install 'haufe-copilot[emulator]'"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        STRICT_OPTION,
        "haufe_emulator fixtures: refuse requests no script matches, report unused scripts",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(strict=False, **config): the haufe_emulator fixture's strict scripting and "
        "EmulatorConfig fields (e.g. words_per_delta=3)",
    )


class HaufeEmulator:
    """A running emulator, as the fixtures give it to a test."""

    def __init__(self, server: EmulatorServer) -> None:
        #: The `EmulatorServer` itself, for what this class does not wrap.
        self.server = server
        #: Script an answer: `on(question, api=..., streamed=..., times=1, optional=False)`,
        #: then `.answer(...)`, `.call_tool(...)`, `.fail(...)`, `.stall(...)`, `.cut(...)`
        #: (`haufe_emulator.scripts.ScriptBook.on`).
        self.on = server.state.scripts.on

    @property
    def base_url(self) -> str:
        return self.server.url

    @property
    def api_key(self) -> str:
        """The key it accepts: a fresh one per emulator."""
        return self.server.api_key

    @property
    def assistant_id(self) -> str:
        return self.server.assistant_id

    @property
    def strict(self) -> bool:
        """Refuse a request no script matches (with a 501 naming it), and report it at teardown."""
        return self.server.state.scripts.strict

    @strict.setter
    def strict(self, value: bool) -> None:
        self.server.state.scripts.strict = value

    def environment(self) -> dict[str, str]:
        """The environment variables the core and the adapters read, pointing at this emulator."""
        return {
            "HAUFE_COPILOT_API_KEY": self.api_key,
            "HAUFE_COPILOT_BASE_URL": self.base_url,
            "HAUFE_COPILOT_PLATFORM_BASE_URL": self.base_url,
            "HAUFE_COPILOT_PLATFORM_API_KEY": self.api_key,
            "HAUFE_COPILOT_ASSISTANT_ID": self.assistant_id,
        }

    # faults ---------------------------------------------------------------------------------

    def fault(
        self, api: str | None = None, *, error: str | None = None, times: int | None = None, **plan: Any
    ) -> None:
        """Break the next `times` requests of `api` (every one without `times`; any API without
        `api`): `error` answers with that error (an error_code, or "proxy_html", "status_502",
        ...); `plan` are the other `FaultPlan` fields, e.g. `retry_after="1"`, `delay=0.5`,
        `cut_after=3`, `stream_error="internal_service_error"`, `stall=5, stall_after=2`."""
        if error is not None:
            plan["fault"] = error
        self.server.state.scripts.add_fault(api, plan, times)

    # what it received -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first (`.api`, `.path`, `.query`, `.headers` with
        credentials redacted, `.body`, `.question`)."""
        return list(self.server.state.requests)

    def received(self, api: str | None = None) -> list[RecordedRequest]:
        """The requests received by one API ("assistant", "completions", "async_stream")."""
        return [r for r in self.requests if api is None or r.api == api]

    @property
    def streams(self) -> list[StreamRecord]:
        """The streamed answers sent: deltas sent, and how each ended ("complete", "cut", ...)."""
        return list(self.server.state.streams)

    # between tests --------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the scripts, faults, records and threads (async streams stay until they expire)."""
        self.server.state.reset()

    def check(self) -> None:
        """In strict mode, `AssertionError` naming the requests no script matched and the scripts
        that never answered (the function fixture calls this at teardown)."""
        book = self.server.state.scripts
        if not book.strict:
            return
        problems = [f"no script matched {miss}" for miss in book.misses]
        problems += [f"script never used: {script!r}" for script in book.unused()]
        if problems:
            lines = "\n".join(f"  - {problem}" for problem in problems)
            raise AssertionError(
                f"haufe_emulator (strict):\n{lines}\n"
                "Script the request with haufe_emulator.on(...), or pass optional=True for a script "
                "a test may not need."
            )

    def __repr__(self) -> str:
        return f"HaufeEmulator(base_url={self.base_url!r}, strict={self.strict})"


def _start(settings: dict[str, Any]) -> EmulatorServer:
    try:
        from .app import EmulatorConfig
        from .server import EmulatorServer
    except ModuleNotFoundError as exc:
        pytest.fail(
            f"the haufe_emulator fixtures need the emulator extra: {INSTALL_HINT} ({exc})", pytrace=False
        )
    known = {spec.name for spec in fields(EmulatorConfig)} - {"api_keys"}
    unknown = sorted(set(settings) - known)
    if unknown:
        pytest.fail(
            f"@pytest.mark.{MARKER}: unknown keyword(s) {', '.join(unknown)}; known: strict, "
            f"{', '.join(sorted(known))}",
            pytrace=False,
        )
    key = "sk-emulator-" + secrets.token_hex(12)
    return EmulatorServer(EmulatorConfig(api_keys=frozenset({key}), **settings)).start()


def _strict_by_default(config: pytest.Config) -> bool:
    return bool(config.getini(STRICT_OPTION))


@pytest.fixture
def haufe_emulator(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HaufeEmulator]:
    """A fresh emulator for this test, the environment pointing at it (see the module's docstring)."""
    marker = request.node.get_closest_marker(MARKER)
    settings = dict(marker.kwargs) if marker is not None else {}
    strict = bool(settings.pop("strict", _strict_by_default(request.config)))
    server = _start(settings)
    try:
        kit = HaufeEmulator(server)
        kit.strict = strict
        for name, value in kit.environment().items():
            monkeypatch.setenv(name, value)
        yield kit
        try:
            kit.check()
        except AssertionError as exc:
            report = str(exc)
        else:
            report = ""
        if report:  # failed outside the except: the report alone, not chained to the assertion
            pytest.fail(report, pytrace=False)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def haufe_emulator_session(request: pytest.FixtureRequest) -> Iterator[HaufeEmulator]:
    """One emulator for the session, the environment pointing at it until the session ends."""
    server = _start({})
    environment = pytest.MonkeyPatch()
    try:
        kit = HaufeEmulator(server)
        kit.strict = _strict_by_default(request.config)
        for name, value in kit.environment().items():
            environment.setenv(name, value)
        yield kit
    finally:
        environment.undo()
        server.stop()
