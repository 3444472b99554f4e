"""Scripted answers and faults by API: what a test declares the emulator answers, consulted by
every endpoint before its corpus (the pytest plugin's `haufe_emulator.on(...)` and `.fault(...)`).

A script (`Script`) matches a request by its API family (`APIS`: "assistant", both the whole and
the streamed answer; "completions"; "async_stream"), optionally by whether the answer is streamed,
and by the question (the last user message): a string matches as a case-insensitive substring, a
compiled pattern by `search`, None any question. A script that calls tools matches only requests
that offer every tool it calls. Scripts are tried in the order they were declared; the first that
matches and is not used up (`times`, default once) answers:

- `.answer(text, sources=[...])`: that text (streamed in the usual deltas), citing those sources
  in the wire shape of the service (`{content, meta_data{document_title, section, ...}}`; the
  completions API carries no sources);
- `.call_tool(name, arguments)`: a tool call (completions and async streams; call it again for
  several calls in one answer);
- `.fail(error_code, after=n)`: the error's status and body; with `after`, a streamed answer sends
  n deltas, then the error (a whole answer has no deltas: it fails with the status);
- `.stall(seconds, after=n)`: nothing for that long, before the answer or after n deltas;
- `.cut(after=n)`: the connection closed abruptly after n deltas (a whole answer: half its body).

The faults combine with an answer (`.answer(...).cut(after=3)`); a script with no answer lets the
corpus answer. Where no script matches, the corpus answers, unless the book is `strict`: then the
request is refused with `UNSCRIPTED_STATUS` (a status no client retries) and a detail naming it,
and the miss is kept in `misses` for the test to report.

Every endpoint asks `scripted_answer` once it knows the question (before its corpus answer).
`fault(api=..., times=n, **fields)` sets `FaultPlan` fields (the `x-emulator-*` headers' names,
underscored) for the next n requests of an API (every one without `times`); headers still win.
"""

from __future__ import annotations

import asyncio
import copy
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from .corpus import Excerpt
from .faults import ERROR_CATALOGUE, FAULT_BOUNDS, FaultPlan, header_name, is_known_fault
from .tool_intent import PlannedToolCall

if TYPE_CHECKING:
    from fastapi.responses import Response
    from typing_extensions import Self

    from .app import ComposedAnswer, RequestContext
    from .state import EmulatorState

#: The API families a script or a fault is for.
APIS = ("assistant", "completions", "async_stream")
#: The families whose answers can call tools.
TOOL_APIS = ("completions", "async_stream")
#: The families whose answering connection can be cut (an async stream's answer is observed on
#: connections of their own: cut those with `fault(api="async_stream", cut_after=n)`).
CUTTABLE_APIS = ("assistant", "completions")
#: The error of a request no script matches in strict mode; its status is retried by no client.
UNSCRIPTED = "emulator_unscripted"
UNSCRIPTED_STATUS = 501
_PATH_PREFIXES = (
    ("/agents/v1/chat/completions", "assistant"),
    ("/api/v1/chat/completions", "completions"),
    ("/api/v1/messages/async", "async_stream"),
)


def api_of(path: str) -> str | None:
    """The API family a request path belongs to (None: none of `APIS`, e.g. /health)."""
    for prefix, api in _PATH_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return api
    return None


def _checked_api(api: str | None) -> str | None:
    if api is not None and api not in APIS:
        raise ValueError(f"api must be one of {', '.join(map(repr, APIS))} or None (any), not {api!r}")
    return api


def source(content: str, *, document_title: str, section: str, **meta_data: Any) -> dict[str, Any]:
    """A source in the service's wire shape: `{content, meta_data{document_title, section, ...}}`."""
    return {
        "content": content,
        "meta_data": {"document_title": document_title, "section": section, **meta_data},
    }


@dataclass(frozen=True, slots=True)
class ScriptedSource(Excerpt):
    """A source a script cites, sent exactly as the script gave it (no corpus fields added)."""

    wire: Mapping[str, Any] = field(default_factory=dict)

    @property
    def citation(self) -> str:
        return self.section or self.document_title

    def to_source(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.wire))

    @classmethod
    def of(cls, wire: Mapping[str, Any], position: int) -> ScriptedSource:
        content, meta = wire.get("content"), wire.get("meta_data", {})
        if not isinstance(content, str) or not isinstance(meta, Mapping):
            raise ValueError(
                f"source #{position} must be {{'content': str, 'meta_data': {{...}}}} (see "
                f"haufe_emulator.scripts.source), not {wire!r}"
            )
        title, section = str(meta.get("document_title", "")), str(meta.get("section", ""))
        wire = {**wire, "meta_data": dict(meta)}
        return cls(f"scripted-{position}", "", title, section, content, content, (), wire=wire)


@dataclass(frozen=True)
class Asked:
    """What a request asks, as scripts match it."""

    api: str
    question: str
    streamed: bool
    #: The names of the tools the request offers.
    tools: tuple[str, ...] = ()
    path: str = ""

    def describe(self) -> str:
        how = "streamed" if self.streamed else "whole answer"
        offered = f", tools: {', '.join(self.tools)}" if self.tools else ""
        return f"POST {self.path} ({self.api}, {how}{offered}) asking {self.question!r}"


class Unscripted(LookupError):
    """Strict scripting and no script matches the request (the message names it)."""


#: What a script matches in the question: a substring (case-insensitive), a pattern, or any.
Question = str | re.Pattern[str] | None


class Script:
    """One scripted answer; made by `ScriptBook.on` (which says what the arguments mean), shaped
    by the chained methods."""

    def __init__(
        self, question: Question, api: str | None, streamed: bool | None, times: int | None, optional: bool
    ) -> None:
        if question is not None and not isinstance(question, (str, re.Pattern)):
            raise TypeError(f"question must be a str, a compiled pattern or None, not {question!r}")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValueError(f"times must be a whole number >= 1, or None for any number, not {times!r}")
        self.question = question
        self.api = _checked_api(api)
        self.streamed = streamed
        self.times = times
        self.optional = optional
        self.used = 0
        self.text: str | None = None
        self.sources: tuple[ScriptedSource, ...] = ()
        self.intent: str | None = None
        self.tool_calls: list[PlannedToolCall] = []
        self.error: str | None = None
        self.error_after: int | None = None
        self.detail: Any = None
        self.retry_after: str | None = None
        self.stall_seconds = 0.0
        self.stall_after: int | None = None
        self.cut_after: int | None = None

    # what it answers ------------------------------------------------------------------------

    def answer(
        self, text: str, *, sources: Iterable[Mapping[str, Any]] = (), intent: str | None = None
    ) -> Self:
        """Answer `text`, citing `sources` (wire-shaped dicts: `source(...)` makes one)."""
        if not isinstance(text, str):
            raise TypeError(f"the answer must be a str, not {text!r}")
        self.text = text
        self.sources = tuple(ScriptedSource.of(wire, n) for n, wire in enumerate(sources, start=1))
        self.intent = intent
        return self

    def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None) -> Self:
        """Call the tool `name` with `arguments`; again for one more call in the same answer."""
        self._allowed_on(TOOL_APIS, "call tools")
        self.tool_calls.append(PlannedToolCall(name, dict(arguments or {})))
        return self

    def fail(
        self, error: str, *, after: int | None = None, detail: Any = None, retry_after: float | None = None
    ) -> Self:
        """Fail with `error` (an error_code of the catalogue, or a special fault such as
        "rate_limit_message", "proxy_html", "status_502"); with `after`, after that many deltas."""
        if after is None and not is_known_fault(error):
            raise ValueError(
                f"unknown error {error!r}: an error_code of {sorted(ERROR_CATALOGUE)} or a special fault"
            )
        if after is not None and error not in ERROR_CATALOGUE:
            raise ValueError(f"an error after deltas must be an error_code of the catalogue, not {error!r}")
        self.error, self.error_after, self.detail = error, _count(after, "after"), detail
        self.retry_after = None if retry_after is None else f"{retry_after:g}"
        return self

    def stall(self, seconds: float = 30.0, *, after: int | None = None) -> Self:
        """Send nothing for `seconds` (at most 60): before the answer, or after `after` deltas."""
        bound = FAULT_BOUNDS["stall"]
        if not bound.low < seconds <= bound.high:
            raise ValueError(f"a stall lasts more than 0 and at most {bound.high:g} seconds, not {seconds!r}")
        self.stall_seconds, self.stall_after = float(seconds), _count(after, "after")
        return self

    def cut(self, *, after: int = 0) -> Self:
        """Close the connection abruptly after `after` deltas (a whole answer: after half its body)."""
        self._allowed_on(CUTTABLE_APIS, "cut the answer")
        self.cut_after = _count(after, "after")
        return self

    def _allowed_on(self, apis: tuple[str, ...], what: str) -> None:
        """A script for any API then matches only these (see `matches`)."""
        if self.api is not None and self.api not in apis:
            raise ValueError(f"a script for api={self.api!r} cannot {what}: only {', '.join(apis)} can")

    # how it matches -------------------------------------------------------------------------

    @property
    def used_up(self) -> bool:
        return self.times is not None and self.used >= self.times

    def matches(self, asked: Asked) -> bool:
        if self.used_up or (self.api is not None and self.api != asked.api):
            return False
        if self.streamed is not None and self.streamed != asked.streamed:
            return False
        if self.cut_after is not None and asked.api not in CUTTABLE_APIS:
            return False
        # tool calls answer only a request offering those tools (never one of the assistant API)
        if self.tool_calls and not {call.name for call in self.tool_calls} <= set(asked.tools):
            return False
        if self.question is None:
            return True
        if isinstance(self.question, str):
            return self.question.casefold() in asked.question.casefold()
        return self.question.search(asked.question) is not None

    def applied_to(self, plan: FaultPlan, asked: Asked) -> FaultPlan:
        """The request's fault plan with this script's stream faults on it."""
        changes: dict[str, Any] = {}
        if self.retry_after is not None:
            changes["retry_after"] = self.retry_after
        if self.error is not None and self.error_after is not None and asked.streamed:
            changes.update(stream_error=self.error, stream_error_after=self.error_after)
        if self.stall_after is not None and asked.streamed:
            changes.update(stall=self.stall_seconds, stall_after=self.stall_after)
        if self.cut_after is not None:
            changes["cut_after"] = self.cut_after
        return replace(plan, **changes) if changes else plan

    def stall_before(self, asked: Asked) -> float:
        """Seconds to wait before answering at all: a stall not after deltas, or on a whole
        answer, which has none."""
        return self.stall_seconds if self.stall_after is None or not asked.streamed else 0.0

    def __repr__(self) -> str:
        matcher = self.question.pattern if isinstance(self.question, re.Pattern) else self.question
        where = ", ".join(
            f"{name}={value!r}"
            for name, value in (("api", self.api), ("streamed", self.streamed))
            if value is not None
        )
        outcome = []
        if self.text is not None:
            shown = self.text if len(self.text) <= 40 else self.text[:40] + "…"
            outcome.append(
                f"answer {shown!r}" + (f" with {len(self.sources)} sources" if self.sources else "")
            )
        outcome += [f"call {call.name}({call.arguments_json})" for call in self.tool_calls]
        if self.error is not None:
            outcome.append(
                f"fail {self.error}" + ("" if self.error_after is None else f" after {self.error_after}")
            )
        if self.stall_seconds:
            after = "" if self.stall_after is None else f" after {self.stall_after}"
            outcome.append(f"stall {self.stall_seconds:g} s{after}")
        if self.cut_after is not None:
            outcome.append(f"cut after {self.cut_after}")
        times = "any number of times" if self.times is None else f"{self.times}"
        return (
            f"on({matcher!r}{', ' + where if where else ''}) -> {', '.join(outcome) or 'the corpus answer'} "
            f"(used {self.used} of {times})"
        )


def _count(value: int | None, name: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
    return value


@dataclass
class ApiFault:
    """`FaultPlan` fields for the next `times` requests of an API (every one where None)."""

    api: str | None
    changes: dict[str, Any]
    times: int | None
    used: int = 0


def fault_changes(given: Mapping[str, Any]) -> dict[str, Any]:
    """`FaultPlan` fields checked as the `x-emulator-*` headers are (names, types, bounds)."""
    names = {spec.name for spec in fields(FaultPlan)}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ValueError(f"unknown fault field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    plan = FaultPlan().with_headers({header_name(name): str(value) for name, value in given.items()})
    return {name: getattr(plan, name) for name in given}


class ScriptBook:
    """The scripts and API faults of one emulator; the test's thread declares, the server's reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.scripts: list[Script] = []
        self.faults: list[ApiFault] = []
        #: Refuse requests no script matches (instead of answering from the corpus).
        self.strict = False
        #: The requests refused for want of a script (strict), described (`Asked.describe`).
        self.misses: list[str] = []

    def on(
        self,
        question: Question = None,
        *,
        api: str | None = None,
        streamed: bool | None = None,
        times: int | None = 1,
        optional: bool = False,
    ) -> Script:
        """Script the answer to a question (a case-insensitive substring, a compiled pattern, or
        None for any), on one API (`APIS`; None: any) and, with `streamed`, only for streamed or
        only for whole answers; `times` times (None: any number); an `optional` script is not
        reported when unused. Chain what it answers: `.answer(text, sources=[...])`,
        `.call_tool(name, arguments)`, `.fail(error_code, after=n)`, `.stall(seconds, after=n)`,
        `.cut(after=n)`. Scripts are matched in the order they were declared."""
        script = Script(question, api, streamed, times, optional)
        with self._lock:
            self.scripts.append(script)
        return script

    def take(self, asked: Asked) -> Script | None:
        """The first matching script, counted as used; None where the corpus answers.
        `Unscripted` in strict mode when none matches (the miss is kept in `misses`)."""
        with self._lock:
            script = next((s for s in self.scripts if s.matches(asked)), None)
            if script is not None:
                script.used += 1
                return script
            if not self.strict:
                return None
            self.misses.append(asked.describe())
            declared = "; ".join(f"{n}. {s!r}" for n, s in enumerate(self.scripts, start=1)) or "none"
        raise Unscripted(f"No script matches {asked.describe()}. Scripts: {declared}.")

    def add_fault(self, api: str | None, changes: Mapping[str, Any], times: int | None) -> None:
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValueError(f"times must be a whole number >= 1, or None for every request, not {times!r}")
        fault = ApiFault(_checked_api(api), fault_changes(changes), times)
        with self._lock:
            self.faults.append(fault)

    def plan_for(self, path: str, plan: FaultPlan) -> FaultPlan:
        """`plan` with the faults set for this request's API on it (each counted as used)."""
        api = api_of(path)
        changes: dict[str, Any] = {}
        with self._lock:
            for fault in self.faults:
                if (fault.api is None or fault.api == api) and (
                    fault.times is None or fault.used < fault.times
                ):
                    fault.used += 1
                    changes.update(fault.changes)
        return replace(plan, **changes) if changes else plan

    def unused(self) -> list[Script]:
        """The scripts that never answered and were not declared `optional`."""
        with self._lock:
            return [s for s in self.scripts if not s.used and not s.optional]

    def reset(self) -> None:
        with self._lock:
            self.scripts.clear()
            self.faults.clear()
            self.misses.clear()


async def scripted_answer(
    context: RequestContext, state: EmulatorState, asked: Asked
) -> ComposedAnswer | Response | None:
    """The answer a test scripted for this request (scripts.py), its faults put on the request's
    plan; None where the corpus answers; the error that ends the request where the script fails
    it, or where strict scripting finds no script."""
    from .app import ComposedAnswer  # here: app imports state, which imports this module

    try:
        script = state.scripts.take(asked)
    except Unscripted as exc:
        return context.json({"error_code": UNSCRIPTED, "detail": str(exc)}, status_code=UNSCRIPTED_STATUS)
    if script is None:
        return None
    if stall := script.stall_before(asked):
        await asyncio.sleep(stall)
    context.plan = script.applied_to(context.plan, asked)
    if script.error is not None and (script.error_after is None or not asked.streamed):
        return context.error(script.error, script.detail, with_retry_after=True)
    if script.text is None and not script.tool_calls:
        return None
    intent = script.intent if script.intent is not None else "Skript"
    return ComposedAnswer(script.text or "", script.sources, intent, tuple(script.tool_calls))
