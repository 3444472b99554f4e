"""The Assistant API of the emulator: `POST /agents/v1/chat/completions[/stream]` (docs/contract.md)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from .app import ANSWER_TYPE, ComposedAnswer, EmulatorConfig, Knowledge, RequestContext, begin, parse_body
from .faults import error_body
from .responses import StreamingBody
from .scripts import Asked, scripted_answer
from .state import EmulatorState, Thread

Role = Literal["user", "assistant", "system", "tool"]
_STACK_ENDINGS = ("user", "tool", "system")
_WORDS = re.compile(r"\S+\s*|\s+")
#: What answers a checked assistant request: its context, its thread, the composed answer.
_Responder = Callable[[RequestContext, Thread, ComposedAnswer], Response]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str


class _ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assistant_id: str
    messages: list[_Message] = Field(min_length=1)
    user_id: str | None = None


class _LenientMessage(_Message):
    model_config = ConfigDict(extra="ignore")


class _LenientChatRequest(_ChatRequest):
    model_config = ConfigDict(extra="ignore")
    messages: list[_LenientMessage] = Field(min_length=1)  # type: ignore[assignment]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def split_deltas(text: str, words_per_delta: int) -> list[str]:
    """Word-sized pieces that join back to `text` exactly."""
    words = _WORDS.findall(text)
    if words_per_delta <= 1:
        return words
    return ["".join(words[i : i + words_per_delta]) for i in range(0, len(words), words_per_delta)]


def add_assistant_routes(
    app: FastAPI, config: EmulatorConfig, state: EmulatorState, knowledge: Knowledge
) -> None:
    async def prepare(request: Request) -> tuple[RequestContext, Thread, ComposedAnswer] | Response:
        context = await begin(request, state, config, platform=False)
        if isinstance(context, Response):
            return context
        parsed = parse_body(context, _ChatRequest, _LenientChatRequest, config)
        if isinstance(parsed, Response):
            return parsed
        if parsed.assistant_id not in config.assistant_ids:
            return context.error("assistant_not_found")
        thread_id = request.query_params.get("thread_id")
        if thread_id:
            found = state.thread(thread_id)
            if found is None or found.assistant_id != parsed.assistant_id:
                return context.error("resource_not_found", "Thread not found")
            thread = found
        else:
            thread = state.new_thread(parsed.assistant_id, parsed.user_id)
        if parsed.messages[-1].role not in _STACK_ENDINGS:
            return context.error("incorrect_stack_ending")
        messages = [m.model_dump() for m in parsed.messages]
        # The question is the last user turn; every earlier user turn of the thread is context.
        user_turns = [m["content"] for m in thread.messages + messages if m["role"] == "user"]
        question = user_turns[-1] if user_turns else messages[-1]["content"]
        streamed = request.url.path.endswith("/stream")
        scripted = await scripted_answer(
            context, state, Asked("assistant", question, streamed, path=request.url.path)
        )
        if isinstance(scripted, Response):
            return scripted
        answer = scripted or knowledge.answer(question, user_turns[:-1])
        thread.messages.extend(messages)
        thread.messages.append({"role": "assistant", "content": answer.text})
        return context, thread, answer

    def answering(path: str) -> Callable[[_Responder], _Responder]:
        """Serves `path` with the decorated function, given the checked request's context, its
        thread and the answer (a request that fails a check is answered by `prepare`)."""

        def register(respond: _Responder) -> _Responder:
            async def endpoint(request: Request) -> Response:
                prepared = await prepare(request)
                return prepared if isinstance(prepared, Response) else respond(*prepared)

            app.post(path, name=respond.__name__)(endpoint)
            return respond

        return register

    @answering("/agents/v1/chat/completions")
    def chat(context: RequestContext, thread: Thread, answer: ComposedAnswer) -> Response:
        payload = {
            "content": answer.text,
            "created_at": _now(),
            "id": str(uuid.uuid4()),
            "meta_data": {"intent": answer.intent, "legal_advice": False, "type": ANSWER_TYPE},
            "role": "assistant",
            "sources": [source.to_source() for source in answer.sources],
            "thread_id": thread.id,
        }
        if context.plan.cut_after is not None:
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            record = state.start_stream(context.request_id)
            return StreamingBody(
                _cut_in_half(body), media_type="application/json", record=record, headers=context.headers
            )
        return context.json(payload)

    @answering("/agents/v1/chat/completions/stream")
    def chat_stream(context: RequestContext, thread: Thread, answer: ComposedAnswer) -> Response:
        record = state.start_stream(context.request_id)
        return StreamingBody(
            _ndjson_deltas(context, thread, answer, config, record),
            media_type="application/x-ndjson",
            record=record,
            headers=context.headers,
        )


async def _cut_in_half(body: bytes) -> AsyncIterator[bytes | None]:
    yield body[: len(body) // 2]
    yield None


BULK_WRITE_BYTES = 64 * 1024


async def _bulk_deltas(
    count: int, chars: int, thread: Thread, answer: ComposedAnswer, record: Any
) -> AsyncIterator[bytes | None]:
    """`count` deltas of `chars` characters, prepared up front and sent in large writes (benchmarks)."""
    head = {"created_at": _now(), "message_id": str(uuid.uuid4()), "thread_id": thread.id}
    word = ("Wort " * (chars // 5 + 1))[: max(chars, 1)]
    line = (
        json.dumps(
            {**head, "delta": {"content": word, "role": "assistant", "sources": []}}, ensure_ascii=False
        )
        + "\n"
    ).encode("utf-8")
    sources = [source.to_source() for source in answer.sources]
    last = (
        json.dumps(
            {**head, "delta": {"content": "Ende.", "role": "assistant", "sources": sources}},
            ensure_ascii=False,
        )
        + "\n"
    ).encode("utf-8")
    per_write = max(1, BULK_WRITE_BYTES // len(line))
    remaining = max(count - 1, 0)
    while remaining:
        batch = min(per_write, remaining)
        yield line * batch
        remaining -= batch
        record.deltas_sent += batch
    yield last
    record.deltas_sent += 1


async def _ndjson_deltas(
    context: RequestContext, thread: Thread, answer: ComposedAnswer, config: EmulatorConfig, record: Any
) -> AsyncIterator[bytes | None]:
    plan = context.plan
    if plan.bulk is not None:
        async for item in _bulk_deltas(plan.bulk, plan.bulk_delta_chars, thread, answer, record):
            yield item
        return
    pieces = split_deltas(answer.text, config.words_per_delta) or [""]
    message_id = str(uuid.uuid4())
    created_at = _now()
    sources = [source.to_source() for source in answer.sources]
    for index, piece in enumerate(pieces):
        if plan.cut_after is not None and index >= plan.cut_after:
            yield None
            return
        if plan.malformed_after is not None and index >= plan.malformed_after:
            record.outcome = "malformed"
            yield b'{"created_at": "' + created_at.encode() + b'", "delta": {"content": "unterbro\n'
            return
        if plan.stream_error is not None and index >= plan.stream_error_after:
            record.outcome = "error"
            yield (json.dumps(error_body(plan.stream_error), ensure_ascii=False) + "\n").encode("utf-8")
            return
        if pause := plan.pause_before(index):
            await asyncio.sleep(pause)
        last = index == len(pieces) - 1
        chunk = {
            "created_at": created_at,
            "delta": {"content": piece, "role": "assistant", "sources": sources if last else []},
            "message_id": message_id,
            "thread_id": thread.id,
        }
        yield (json.dumps(chunk, ensure_ascii=False) + "\n").encode("utf-8")
        record.deltas_sent += 1
    if plan.cut_after is not None:  # asked to cut after more deltas than the answer has
        yield None
