"""The emulator's FastAPI application: configuration, and what every endpoint shares (request
ids, recording, faults, API keys, validation errors in the documented shape: docs/contract.md, Errors)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, Literal, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, ValidationError

from haufe_copilot.types.quota import Window

from .compose import (
    ToolResult,
    compose_after_tool_results,
    compose_answer,
    intent_for,
    related_sources,
    select_sources,
)
from .corpus import Excerpt, load_corpus
from .faults import (
    ERROR_CATALOGUE,
    ErrorAnswer,
    FaultHeaderOutOfRange,
    FaultPlan,
    error_answer,
    error_body,
)
from .quota import quota_key, retry_after_headers
from .ranking import BM25Index
from .responses import silence_abrupt_close_logs
from .state import EmulatorState, decode_body
from .tool_intent import PlannedToolCall

DEFAULT_API_KEY = "sk-emulator-dev"
DEFAULT_ASSISTANT_ID = "a1b2c3d4-5678-9abc-def0-1234567890ab"
#: meta_data.type of every answer, as in the documented example (docs/contract.md, Assistant API).
ANSWER_TYPE = "53aa66b7-b874-407f-967c-3a959c919d62"

M = TypeVar("M", bound=BaseModel)
FunctionT = TypeVar("FunctionT", bound=BaseModel)


class FunctionName(BaseModel):
    """`{"name": ...}`: the one function a named `tool_choice` picks."""

    model_config = ConfigDict(extra="forbid")
    name: str


class FunctionEntry(BaseModel, Generic[FunctionT]):
    """`{"type": "function", "function": {...}}`: a tool, or a named `tool_choice`, as both
    endpoints that take tools write it. Each endpoint subclasses it under its own names: pydantic
    puts a union member's class name into an error's `loc`, which the 422s show."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    function: FunctionT


def keys_from_environment() -> frozenset[str]:
    raw = os.environ.get("HAUFE_COPILOT_EMULATOR_KEYS", DEFAULT_API_KEY)
    return frozenset(key.strip() for key in raw.split(",") if key.strip())


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves; every field has a CLI flag (`haufe-copilot emulator --help`)."""

    api_keys: frozenset[str] = field(default_factory=keys_from_environment)
    assistant_ids: frozenset[str] = frozenset({DEFAULT_ASSISTANT_ID})
    #: Accept and ignore undocumented request fields instead of answering 422.
    lenient: bool = False
    #: Faults applied to every request (request headers override them).
    faults: FaultPlan = field(default_factory=FaultPlan)
    #: Words per streamed delta.
    words_per_delta: int = 1
    #: The platform model named in answers when a request names none.
    default_model: str = "haufe-copilot-default"
    #: Seconds a finished async stream stays observable before it expires.
    async_stream_ttl: float = 600.0
    #: The gateway's quota per key (`parse_rate_limit("15/s,60/min")`); empty: none (quota.py).
    rate_limit: tuple[Window, ...] = ()
    #: How an over-quota request is answered: `rate_limit_gateway` or `rate_limit_message`.
    rate_limit_answer: str = "rate_limit_gateway"


@dataclass(frozen=True)
class ComposedAnswer:
    text: str
    sources: tuple[Excerpt, ...]
    intent: str
    #: Tool calls a script made the answer (scripts.py); the corpus never makes any.
    tool_calls: tuple[PlannedToolCall, ...] = ()


ANSWER_CACHE_SIZE = 4096


class Knowledge:
    """The corpus and its index, built once per app."""

    def __init__(self) -> None:
        self.index = BM25Index(load_corpus())
        # An answer depends only on the question and the thread's earlier turns, so repeated
        # requests (a benchmark's, a retried one's) are composed once.
        self._cached_answer = lru_cache(maxsize=ANSWER_CACHE_SIZE)(self._answer)

    def answer(self, question: str, history: Iterable[str] = ()) -> ComposedAnswer:
        return self._cached_answer(question, tuple(history))

    def evidence(self, question: str, history: Sequence[str] = ()) -> str:
        """The wording of the passages the answer to ``question`` cites: where structured output
        finds the values the question does not give ("zwei Wochen")."""
        return " ".join(source.content for source in self.answer(question, history).sources)

    def answer_after_tool_results(
        self, question: str, history: Sequence[str], results: Sequence[ToolResult]
    ) -> str:
        """The text once tools have answered: their results in sentences, then the provisions
        related to question and results (ranked on both)."""
        said = " ".join(result.content for result in results)
        ranked = self.index.rank(f"{question} {said}", list(history))
        return compose_after_tool_results(results, related_sources(ranked, results))

    def _answer(self, question: str, history: tuple[str, ...]) -> ComposedAnswer:
        sources = tuple(select_sources(self.index.rank(question, history)))
        text = compose_answer(question, sources, history)
        return ComposedAnswer(text, sources, intent_for(question, sources))


class RequestContext:
    """One request as every endpoint sees it: its id, body, fault plan, and how to answer."""

    def __init__(self, request: Request, request_id: str, body: Any, plan: FaultPlan) -> None:
        self.request = request
        self.request_id = request_id
        self.body = body
        self.plan = plan

    @property
    def headers(self) -> dict[str, str]:
        return {"x-request-id": self.request_id}

    def error(self, name: str, detail: Any = None, *, with_retry_after: bool = False) -> Response:
        answer: ErrorAnswer = error_answer(name, detail)
        headers = self.headers
        if with_retry_after and self.plan.retry_after is not None:
            headers["Retry-After"] = self.plan.retry_after
        if with_retry_after and self.plan.retry_after_ms is not None:
            headers["retry-after-ms"] = self.plan.retry_after_ms
        return Response(
            answer.body, status_code=answer.status, media_type=answer.content_type, headers=headers
        )

    def json(self, payload: Any, status_code: int = 200) -> Response:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return Response(body, status_code=status_code, media_type="application/json", headers=self.headers)


#: The largest request body the emulator reads; a larger one is a 413 (the body is not kept).
MAX_BODY_BYTES = 4 * 1024 * 1024
#: How long a request body may take to arrive once its headers have (a 408 after).
BODY_TIMEOUT_SECONDS = 30.0
TOO_LARGE = (
    f"The request body is larger than the emulator accepts ({MAX_BODY_BYTES // (1024 * 1024)} MiB): "
    "send fewer or shorter messages."
)
TOO_SLOW = f"The request body did not arrive within {BODY_TIMEOUT_SECONDS:g} seconds."


def key_ok(request: Request, config: EmulatorConfig, *, platform: bool) -> bool:
    """The assistant API's `api-key`, or the platform APIs' `Authorization: Bearer <key>`."""
    if platform:
        return bearer_ok(request, config)
    return request.headers.get("api-key") in config.api_keys


async def read_body(request: Request) -> bytes | Response:
    """The whole body, or the error that ends the request: 413 beyond `MAX_BODY_BYTES` (found
    from `Content-Length` before reading, or while reading a chunked body), 408 when it takes
    longer than `BODY_TIMEOUT_SECONDS`. What was read of a refused body is dropped at once."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _plain_error(413, "request_too_large", TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    return _plain_error(413, "request_too_large", TOO_LARGE)
                chunks.append(chunk)
    except TimeoutError:
        too_slow = _plain_error(408, "request_timeout", TOO_SLOW)
        too_slow.headers["connection"] = "close"  # a client this slow is not kept waiting on
        return too_slow
    return b"".join(chunks)


def _plain_error(status: int, error_code: str, detail: Any) -> Response:
    """An `{error_code, detail}` answer, the shape both API families use for their errors."""
    body = json.dumps({"error_code": error_code, "detail": detail}, ensure_ascii=False).encode("utf-8")
    return Response(body, status_code=status, media_type="application/json")


def _fault_header_invalid(exc: FaultHeaderOutOfRange, *, platform: bool) -> Response:
    """A 422 in the family's documented validation shape, located at the header."""
    problem = {"loc": ["header", exc.header], "type": "value_error"}
    if platform:
        body: dict[str, Any] = {"detail": [{**problem, "msg": str(exc)}]}
    else:
        body = error_body("validation_error", [{**problem, "message": str(exc)}])
    return Response(json.dumps(body).encode(), status_code=422, media_type="application/json")


async def begin(
    request: Request, state: EmulatorState, config: EmulatorConfig, *, platform: bool
) -> RequestContext | Response:
    """Authorise, read, record and fault one request; a Response when it ends here.

    The order is what keeps a stranger cheap: the key is checked before anything else (no fault
    header acts, no body is read for a request without one), then the fault headers (bounded),
    then the body (capped). A refused request is recorded without its body."""
    request_id = uuid.uuid4().hex

    def record(raw: bytes | None) -> None:
        query, headers = dict(request.query_params), dict(request.headers)
        state.record_request(request_id, request.method, request.url.path, query, headers, raw)

    def refuse(response: Response) -> Response:
        record(None)
        response.headers["x-request-id"] = request_id
        return response

    if not key_ok(request, config, platform=platform):
        return refuse(_plain_error(401, "unauthorized", ERROR_CATALOGUE["unauthorized"][1]))
    # The gateway counts a request when it arrives: before anything here waits or works.
    over_quota = None
    if config.rate_limit and (quota := quota_key(request.headers)) is not None:
        over_quota = state.quota.admit(quota, config.rate_limit)
    try:
        plan = state.scripts.plan_for(request.url.path, config.faults).with_headers(request.headers)
    except FaultHeaderOutOfRange as exc:
        return refuse(_fault_header_invalid(exc, platform=platform))
    except ValueError as exc:
        return refuse(_plain_error(400, "emulator_bad_fault_header", str(exc)))
    raw = await read_body(request)
    if isinstance(raw, Response):
        return refuse(raw)
    record(raw)
    context = RequestContext(request, request_id, decode_body(raw), plan)
    if over_quota is not None:
        refusal = context.error(config.rate_limit_answer)
        refusal.headers.update(retry_after_headers(over_quota))
        return refusal
    if plan.delay:
        await asyncio.sleep(plan.delay)
    if (plan.fault_times is not None and plan.fault_id is not None) or plan.fault is not None:
        key = plan.fault_id or plan.fault or ""
        if plan.fault_times is not None and state.count_fault(key) > plan.fault_times:
            # the faults were for the first n requests of this id: this one is served as asked
            context.plan = plan.without_faults()
        elif plan.fault is not None:
            return context.error(plan.fault, with_retry_after=True)
    return context


def validation_detail(exc: ValidationError, *, message_key: str) -> list[dict[str, Any]]:
    """pydantic's errors in the shape the API documents (`message` or FastAPI's `msg`)."""
    return [
        {"loc": ["body", *err["loc"]], message_key: err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False)
    ]


def parse_body(
    context: RequestContext,
    strict: type[M],
    lenient: type[M],
    config: EmulatorConfig,
    *,
    platform: bool = False,
) -> M | Response:
    """The body as a model, or a 422: the assistant API's `{error_code, detail[{loc, message,
    type}]}`, or with `platform=True` FastAPI's `{detail[{loc, msg, type}]}` (docs/contract.md, Errors)."""
    model = lenient if config.lenient else strict
    message_key = "msg" if platform else "message"
    try:
        if not isinstance(context.body, dict):
            raise ValueError
        return model.model_validate(context.body)
    except ValidationError as exc:
        detail = validation_detail(exc, message_key=message_key)
    except ValueError:
        detail = [{"loc": ["body"], message_key: "Input should be a valid JSON object", "type": "model_type"}]
    if platform:
        return context.json({"detail": detail}, status_code=422)
    return context.error("validation_error", detail)


def bearer_ok(request: Request, config: EmulatorConfig) -> bool:
    """Whether the request carries `Authorization: Bearer <one of the accepted keys>`."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token.strip() in config.api_keys


def create_app(config: EmulatorConfig | None = None, state: EmulatorState | None = None) -> FastAPI:
    """The emulator as an ASGI app; `app.state.emulator` is its `EmulatorState`."""
    from .assistant import add_assistant_routes

    config = config or EmulatorConfig()
    state = state or EmulatorState()
    silence_abrupt_close_logs()
    app = FastAPI(
        title="Haufe Copilot emulator",
        description="A local server speaking the Haufe Copilot APIs, for tests and demos.",
        version="1",
    )
    app.state.emulator = state
    app.state.config = config
    knowledge = Knowledge()
    add_assistant_routes(app, config, state, knowledge)
    from .completions import add_completions_routes

    add_completions_routes(app, config, state, knowledge)
    from .async_streams import add_async_stream_routes

    add_async_stream_routes(app, config, state, knowledge)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
