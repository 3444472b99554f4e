"""A planned call (`haufe_copilot.conversation.routing.plan_call`) run on its route, as
LlamaIndex's `ChatResponse`s: one answer (`chat`) or a stream of them (`stream_chat`), sync and
async. Which route, and what it sends, is the plan's; the responses are built in `_responses`.

Loaded with the LLM's first call, not with `llama_index_haufe`: it brings the wire types.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from contextlib import aclosing, closing

from llama_index.core.base.llms.types import ChatResponse

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient
from haufe_copilot.conversation.routing import CallPlan
from haufe_copilot.conversation.turns import AnswerDelta, aanswer, answer, astream_answer, stream_answer

from ._responses import (
    CompletionAssembler,
    EventAssembler,
    assistant_delta,
    assistant_final,
    completion_response,
)

__all__ = ["achat", "astream_chat", "chat", "stream_chat"]

_DEFAULT_MODEL = "haufe-copilot"


def chat(client: HaufeCopilotClient, plan: CallPlan) -> ChatResponse:
    """The whole answer of a planned call."""
    if plan.route in ("answer", "answer_stream"):
        assert plan.turn is not None
        return assistant_final(answer(plan.client(client), plan.turn), streamed=False)
    if plan.route == "completions":
        # With tools the core streams underneath (tool calls come only over SSE).
        completion = plan.client(client).completions.create(messages=plan.messages, **plan.options)
        return completion_response(completion, parallel_tool_calls=not plan.first_tool_call_only)
    final: ChatResponse | None = None
    for response in _events(client, plan):
        final = response  # each holds the whole answer so far: keep only the last
    assert final is not None
    return final.model_copy(update={"delta": None})


async def achat(client: AsyncHaufeCopilotClient, plan: CallPlan) -> ChatResponse:
    if plan.route in ("answer", "answer_stream"):
        assert plan.turn is not None
        return assistant_final(await aanswer(plan.client(client), plan.turn), streamed=False)
    if plan.route == "completions":
        completion = await plan.client(client).completions.create(messages=plan.messages, **plan.options)
        return completion_response(completion, parallel_tool_calls=not plan.first_tool_call_only)
    final: ChatResponse | None = None
    async for response in _aevents(client, plan):
        final = response
    assert final is not None
    return final.model_copy(update={"delta": None})


def stream_chat(client: HaufeCopilotClient, plan: CallPlan) -> Generator[ChatResponse, None, None]:
    """The answer of a planned call as it arrives; the final response (delta "") carries the metadata."""
    if plan.route == "completions":
        return _completion(client, plan)
    if plan.route == "async_stream":
        return _events(client, plan)
    return _assistant(client, plan)


def astream_chat(client: AsyncHaufeCopilotClient, plan: CallPlan) -> AsyncGenerator[ChatResponse, None]:
    if plan.route == "completions":
        return _acompletion(client, plan)
    if plan.route == "async_stream":
        return _aevents(client, plan)
    return _aassistant(client, plan)


# the assistant API (threads, sources)


def _assistant(client: HaufeCopilotClient, plan: CallPlan) -> Generator[ChatResponse, None, None]:
    text = ""
    assert plan.turn is not None
    with closing(stream_answer(plan.client(client), plan.turn)) as pieces:
        for piece in pieces:
            if isinstance(piece, AnswerDelta):
                text += piece.text
                yield assistant_delta(text, piece)
            else:
                yield assistant_final(piece, streamed=True)


async def _aassistant(client: AsyncHaufeCopilotClient, plan: CallPlan) -> AsyncGenerator[ChatResponse, None]:
    text = ""
    assert plan.turn is not None
    async with aclosing(astream_answer(plan.client(client), plan.turn)) as pieces:
        async for piece in pieces:
            if isinstance(piece, AnswerDelta):
                text += piece.text
                yield assistant_delta(text, piece)
            else:
                yield assistant_final(piece, streamed=True)


# the completions endpoint (tools)


def _completion(client: HaufeCopilotClient, plan: CallPlan) -> Generator[ChatResponse, None, None]:
    assembler = CompletionAssembler(parallel_tool_calls=not plan.first_tool_call_only)
    with plan.client(client).completions.create(
        messages=plan.messages, stream=True, **plan.options
    ) as chunks:
        for chunk in chunks:
            response = assembler.feed(chunk)
            if response is not None:
                yield response
    yield assembler.final()


async def _acompletion(client: AsyncHaufeCopilotClient, plan: CallPlan) -> AsyncGenerator[ChatResponse, None]:
    assembler = CompletionAssembler(parallel_tool_calls=not plan.first_tool_call_only)
    chunks = await plan.client(client).completions.create(messages=plan.messages, stream=True, **plan.options)
    async with chunks:
        async for chunk in chunks:
            response = assembler.feed(chunk)
            if response is not None:
                yield response
    yield assembler.final()


# the async-streams API (response_format)


def _events(client: HaufeCopilotClient, plan: CallPlan) -> Generator[ChatResponse, None, None]:
    client = plan.client(client)
    handle = client.streams.start(messages=plan.messages, **plan.options)
    assembler = EventAssembler(handle.stream_id, plan.stop, model=plan.options.get("model") or _DEFAULT_MODEL)
    with client.streams.events(handle.stream_id) as events:
        for event in events:
            response = assembler.feed(event)
            if response is not None:
                yield response
            if assembler.finished:
                break
    yield from assembler.finish()


async def _aevents(client: AsyncHaufeCopilotClient, plan: CallPlan) -> AsyncGenerator[ChatResponse, None]:
    client = plan.client(client)
    handle = await client.streams.start(messages=plan.messages, **plan.options)
    assembler = EventAssembler(handle.stream_id, plan.stop, model=plan.options.get("model") or _DEFAULT_MODEL)
    async with client.streams.events(handle.stream_id) as events:
        async for event in events:
            response = assembler.feed(event)
            if response is not None:
                yield response
            if assembler.finished:
                break
    for response in assembler.finish():
        yield response
