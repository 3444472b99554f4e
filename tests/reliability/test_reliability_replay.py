"""No retry duplicates what the server did, and no stream that ends short passes for an answer.

Against raw loopback servers that count the requests they receive (`servers.RawServer`, scripted)
and against the emulator where it can make the fault:

- an error inside a 200 body (an `{error_code}` NDJSON line, an SSE `error` event or error
  chunk) is raised and never retried, on the assistant stream, the completions stream and
  through both adapters, sync and async: the server sees exactly one request;
- an async stream's start names its stream (the client chooses the id), so a start whose 202 is
  lost to a reset is retried onto the same stream, and the 409 for it returns its handle;
  a completion is retried only where the server cannot have taken it;
- an async-stream event without an `id:` line is delivered (it keeps the last id);
- a 200 stream with no chunk, or an SSE completion that ends before `[DONE]`, is an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient, errors
from haufe_copilot.protocol.platform import stream_events_after
from haufe_copilot.protocol.sse import SSEDecoder
from haufe_copilot.types import DeltaEvent, DoneEvent, StatusEvent
from haufe_copilot.types.assistant import answer_from_chunks
from haufe_emulator import EmulatorServer
from tests.conftest import ASSISTANT_ID, SESSION_API_KEY, attempts, user
from tests.reliability.servers import RawRequest, RawServer, reply

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
JSON = "application/json"
RATE_LIMIT_LINE = b'{"error_code": "rate_limit_gateway", "detail": "Rate limit exceeded"}\n'
CHUNK = {"message_id": "m-1", "thread_id": "t-1", "delta": {"role": "assistant", "content": "Hallo"}}
FIRST_ANSWER = {"id": "m-0", "content": "Die Frist beträgt zwei Wochen.", "thread_id": "t-1", "sources": []}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Das Wetter einer Stadt",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def completion_chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    chunk = {
        "id": "c-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


SSE_ERROR_EVENT = b'event: error\ndata: {"error_code": "rate_limit_gateway", "detail": "slow down"}\n\n'
SSE_ERROR_CHUNK = b'data: {"error_code": "rate_limit_gateway", "detail": "slow down"}\n\n'


@pytest.fixture
def scripted() -> Iterator[list[RawServer]]:
    """Scripted raw servers, closed after the test."""
    servers: list[RawServer] = []
    yield servers
    for server in servers:
        server.close()


def serve(servers: list[RawServer], *script: Any) -> RawServer:
    server = RawServer("scripted", script=script)
    servers.append(server.__enter__())
    return server


def clients(url: str, **options: Any) -> tuple[HaufeCopilotClient, AsyncHaufeCopilotClient]:
    options = {"api_key": SESSION_API_KEY, "base_url": url, "max_retries": 2, **options}
    return HaufeCopilotClient(**options), AsyncHaufeCopilotClient(**options)


FLAVOURS = ["sync", "async"]


# -- point 1: an error inside a 200 body is raised, never retried ------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("thread_id", [None, "t-1"], ids=["new-thread", "continuation"])
async def test_an_error_line_first_in_a_200_assistant_stream_is_raised_not_retried(
    scripted: list[RawServer], flavour: str, thread_id: str | None
) -> None:
    server = serve(scripted, reply(200, NDJSON, RATE_LIMIT_LINE, chunked=True))
    sync, async_ = clients(server.url)
    request = {"assistant_id": ASSISTANT_ID, "messages": user(), "thread_id": thread_id}
    with pytest.raises(errors.RateLimitError) as info:
        if flavour == "sync":
            list(sync.assistant.stream(**request))
        else:
            async for _ in async_.assistant.stream(**request):
                pass
    assert server.request_count() == 1 and info.value.retries_done == 0
    assert info.value.status_code == 429 and info.value.error_code == "rate_limit_gateway"
    sync.close()
    await async_.aclose()


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("body", [SSE_ERROR_EVENT, SSE_ERROR_CHUNK], ids=["error-event", "error-chunk"])
@pytest.mark.parametrize("call", ["stream", "tools"])
async def test_an_error_inside_a_200_completion_stream_is_raised_not_retried(
    scripted: list[RawServer], flavour: str, body: bytes, call: str
) -> None:
    server = serve(scripted, reply(200, SSE, body, chunked=True))
    sync, async_ = clients(server.url)
    with pytest.raises(errors.RateLimitError):
        if call == "tools":  # a blocking call with tools streams and assembles
            if flavour == "sync":
                sync.completions.create(messages=user(), tools=[WEATHER])
            else:
                await async_.completions.create(messages=user(), tools=[WEATHER])
        elif flavour == "sync":
            list(sync.completions.create(messages=user(), stream=True))
        else:
            async for _ in await async_.completions.create(messages=user(), stream=True):
                pass
    assert server.request_count() == 1
    sync.close()
    await async_.aclose()


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_200_error_answer_to_a_blocking_call_is_not_retried(
    scripted: list[RawServer], flavour: str
) -> None:
    server = serve(scripted, reply(200, JSON, RATE_LIMIT_LINE))
    sync, async_ = clients(server.url)
    request = {"assistant_id": ASSISTANT_ID, "messages": user(), "thread_id": "t-1"}
    with pytest.raises(errors.RateLimitError):
        if flavour == "sync":
            sync.assistant.chat(**request)
        else:
            await async_.assistant.chat(**request)
    assert server.request_count() == 1
    sync.close()
    await async_.aclose()


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_cut_after_the_200_status_is_not_retried_even_on_a_new_thread(
    scripted: list[RawServer], flavour: str
) -> None:
    # A 200 head, then the connection closes with the chunked body unfinished.
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n"
    server = serve(scripted, head)
    sync, async_ = clients(server.url)
    with pytest.raises(errors.APIConnectionError):
        if flavour == "sync":
            list(sync.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()))
        else:
            async for _ in async_.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()):
                pass
    assert server.request_count() == 1
    sync.close()
    await async_.aclose()


def _adapter(kind: str, url: str) -> Any:
    options = {"assistant_id": ASSISTANT_ID, "api_key": SESSION_API_KEY, "base_url": url, "max_retries": 2}
    if kind == "langchain":
        from langchain_haufe import ChatHaufeCopilot

        return ChatHaufeCopilot(**options)
    from llama_index_haufe import HaufeCopilot

    return HaufeCopilot(**options)


def _continued_history(kind: str, model: Any) -> list[Any]:
    """A first answer (on thread t-1, from the script) and a follow-up that continues it."""
    if kind == "langchain":
        from langchain_core.messages import HumanMessage

        return [HumanMessage("Frage"), model.invoke("Frage"), HumanMessage("Und in Teilzeit?")]
    from llama_index.core.llms import ChatMessage

    first = model.chat([ChatMessage(role="user", content="Frage")]).message
    return [ChatMessage(role="user", content="Frage"), first, ChatMessage(role="user", content="Und?")]


async def _run_adapter(kind: str, model: Any, history: list[Any], flavour: str, mode: str) -> None:
    if kind == "langchain":
        if mode == "blocking":
            await model.ainvoke(history) if flavour == "async" else model.invoke(history)
        elif flavour == "sync":
            list(model.stream(history))
        else:
            async for _ in model.astream(history):
                pass
        return
    if mode == "blocking":
        await model.achat(history) if flavour == "async" else model.chat(history)
    elif flavour == "sync":
        list(model.stream_chat(history))
    else:
        async for _ in await model.astream_chat(history):
            pass


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("mode", ["blocking", "streaming"])
@pytest.mark.parametrize("kind", ["langchain", "llama_index"])
async def test_an_adapter_continuing_a_thread_sends_a_200_error_turn_once(
    scripted: list[RawServer], kind: str, mode: str, flavour: str
) -> None:
    error = (
        reply(200, NDJSON, RATE_LIMIT_LINE, chunked=True)
        if mode == "streaming"
        else reply(200, JSON, RATE_LIMIT_LINE)
    )
    server = serve(scripted, reply(200, JSON, json.dumps(FIRST_ANSWER).encode()), error)
    model = _adapter(kind, server.url)
    history = _continued_history(kind, model)
    with pytest.raises(errors.RateLimitError):
        await _run_adapter(kind, model, history, flavour, mode)
    continued = [r for r in server.requests if "thread_id=t-1" in r.target]
    assert server.request_count() == 2 and len(continued) == 1  # the turn went out once


@pytest.mark.parametrize("kind", ["langchain", "llama_index"])
async def test_a_5xx_line_on_a_continuation_moves_to_a_new_thread_never_again_to_the_old(
    scripted: list[RawServer], kind: str
) -> None:
    # The old thread may hold the turn now: the adapter answers from a new thread with the whole
    # history (its documented fallback), and the next call continues that one.
    error = b'{"error_code": "internal_server_error", "detail": "Internal Server Error"}\n'
    fresh = {**CHUNK, "thread_id": "t-2", "message_id": "m-2"}
    server = serve(
        scripted,
        reply(200, JSON, json.dumps(FIRST_ANSWER).encode()),
        reply(200, NDJSON, error, chunked=True),
        reply(200, NDJSON, json.dumps(fresh).encode() + b"\n", chunked=True),
    )
    model = _adapter(kind, server.url)
    history = _continued_history(kind, model)
    if kind == "langchain":
        metadata: dict[str, Any] = {}
        for chunk in model.stream(history):
            metadata.update(chunk.response_metadata)
    else:
        metadata = dict(list(model.stream_chat(history))[-1].message.additional_kwargs)
    on_old = [r for r in server.requests if "thread_id=t-1" in r.target]
    assert len(on_old) == 1 and server.request_count() == 3
    assert metadata["thread_id"] == "t-2" and metadata["thread_action"] == "new"


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("kind", ["langchain", "llama_index"])
async def test_an_adapter_calling_tools_sends_a_200_error_completion_once(
    scripted: list[RawServer], kind: str, flavour: str
) -> None:
    server = serve(scripted, reply(200, SSE, SSE_ERROR_EVENT, chunked=True))
    model = _adapter(kind, server.url)
    with pytest.raises(errors.RateLimitError):
        if kind == "langchain":
            bound = model.bind_tools([WEATHER])
            await bound.ainvoke("Wetter in Berlin?") if flavour == "async" else bound.invoke("Wetter?")
        else:
            from llama_index.core.llms import ChatMessage

            messages = [ChatMessage(role="user", content="Wetter in Berlin?")]
            tools = {"tools": [WEATHER]}
            await model.achat(messages, **tools) if flavour == "async" else model.chat(messages, **tools)
    assert server.request_count() == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_the_emulators_error_line_on_a_thread_is_sent_once(
    emulator: EmulatorServer, fault_id: str, flavour: str
) -> None:
    sync, async_ = clients(emulator.url)
    first = sync.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    headers = {"x-emulator-stream-error": "rate_limit_gateway", "x-emulator-fault-id": fault_id}
    request = {
        "assistant_id": ASSISTANT_ID,
        "messages": user("Und in Teilzeit?"),
        "thread_id": first.thread_id,
        "extra_headers": headers,
    }
    with pytest.raises(errors.RateLimitError):
        if flavour == "sync":
            list(sync.assistant.stream(**request))
        else:
            async for _ in async_.assistant.stream(**request):
                pass
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 1
    sync.close()
    await async_.aclose()


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_the_emulators_error_event_on_a_completion_stream_is_sent_once(
    emulator: EmulatorServer, fault_id: str, flavour: str
) -> None:
    sync, async_ = clients(emulator.url)
    headers = {"x-emulator-stream-error": "internal_server_error", "x-emulator-fault-id": fault_id}
    with pytest.raises(errors.InternalServerError):
        if flavour == "sync":
            list(sync.completions.create(messages=user(), stream=True, extra_headers=headers))
        else:
            async for _ in await async_.completions.create(
                messages=user(), stream=True, extra_headers=headers
            ):
                pass
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 1
    sync.close()
    await async_.aclose()


@pytest.mark.parametrize("after", ["0", "2"])
def test_an_async_streams_error_event_is_raised_and_not_re_observed(
    client: HaufeCopilotClient, emulator: EmulatorServer, after: str
) -> None:
    handle = client.streams.start(
        messages=user(),
        extra_headers={
            "x-emulator-stream-error": "internal_service_error",
            "x-emulator-stream-error-after": after,
        },
    )
    received: list[str] = []
    with pytest.raises(errors.ServiceUnavailableError) as info:
        for event in client.streams.events(handle.stream_id):
            received.append(event.content if isinstance(event, DeltaEvent) else "")
    assert info.value.partial == "".join(received) and len(received) == 1 + int(after)  # status, deltas
    observations = emulator.app.state.async_streams.observations_for(handle.stream_id)
    assert len(observations) == 1  # observed once: the error is the stream's, not a reason to retry


HANDLE = reply(202, JSON, b'{"stream_id": "s-1", "status": "pending", "message": "started"}')
EVENTS_ERROR_FIRST = (
    b'id: 1\nevent: error\ndata: {"error_code": "rate_limit_gateway", "detail": "slow down"}\n\n'
    b'id: 2\nevent: done\ndata: {"status": "failed"}\n\n'
)
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "a", "schema": {"type": "object", "properties": {"x": {"type": "string"}}}},
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("caller", ["core", "langchain", "llama_index"])
async def test_an_error_event_first_in_an_async_stream_is_raised_not_re_observed(
    scripted: list[RawServer], flavour: str, caller: str
) -> None:
    server = serve(scripted, HANDLE, reply(200, SSE, EVENTS_ERROR_FIRST, chunked=True))
    with pytest.raises(errors.RateLimitError):
        if caller == "core":
            sync, async_ = clients(server.url)
            if flavour == "sync":
                list(sync.streams.events(sync.streams.start(messages=user()).stream_id))
            else:
                handle = await async_.streams.start(messages=user())
                async for _ in async_.streams.events(handle.stream_id):
                    pass
        elif caller == "langchain":
            structured = _adapter(caller, server.url).with_structured_output(
                RESPONSE_FORMAT["json_schema"]["schema"] | {"title": "A"}, method="json_schema"
            )
            await structured.ainvoke("Frage") if flavour == "async" else structured.invoke("Frage")
        else:
            from llama_index.core.llms import ChatMessage

            model, messages = _adapter(caller, server.url), [ChatMessage(role="user", content="Frage")]
            if flavour == "async":
                await model.achat(messages, response_format=RESPONSE_FORMAT)
            else:
                model.chat(messages, response_format=RESPONSE_FORMAT)
    assert [r.method for r in server.requests] == ["POST", "GET"]  # started once, observed once


# -- point 5: an async stream's start is idempotent; a completion is retried only where safe ----


def _conflict(request: RawRequest) -> bytes:
    body = {"error_code": "conflict", "detail": "A stream with this stream_id already exists"}
    return reply(409, JSON, json.dumps(body).encode())


def _status(request: RawRequest) -> bytes:
    stream_id = request.target.split("/")[-2]
    return reply(200, JSON, json.dumps({"stream_id": stream_id, "status": "processing"}).encode())


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("given", [None, "my-stream-7"], ids=["client-chosen-id", "caller-id"])
async def test_a_start_whose_202_is_lost_to_a_reset_finds_the_same_stream(
    scripted: list[RawServer], flavour: str, given: str | None
) -> None:
    # The server takes the start and resets before answering; the retry meets its own stream (409).
    server = serve(scripted, None, _conflict, _status)
    sync, async_ = clients(server.url)
    if flavour == "sync":
        handle = sync.streams.start(messages=user(), stream_id=given)
    else:
        handle = await async_.streams.start(messages=user(), stream_id=given)
    starts = [r for r in server.requests if r.method == "POST"]
    assert len(starts) == 2 and starts[0].target == starts[1].target  # one id, sent twice
    stream_id = starts[0].target.partition("stream_id=")[2]
    assert stream_id == (given or handle.stream_id) and len(stream_id) >= 8
    assert handle.stream_id == stream_id and handle.status == "processing"
    assert [r.method for r in server.requests] == ["POST", "POST", "GET"]
    sync.close()
    await async_.aclose()


def test_the_client_chooses_the_stream_id_before_sending(
    client: HaufeCopilotClient, emulator: EmulatorServer
) -> None:
    handle = client.streams.start(messages=user())
    start = next(r for r in reversed(list(emulator.state.requests)) if r.path.endswith("/messages/async"))
    assert start.query["stream_id"] == handle.stream_id  # chosen before sending, not by the server
    assert emulator.app.state.async_streams.get(handle.stream_id) is not None
    assert client.streams.start(messages=user()).stream_id != handle.stream_id  # one per start


def test_a_caller_id_that_exists_on_the_first_attempt_is_a_conflict(
    client: HaufeCopilotClient, emulator: EmulatorServer
) -> None:
    first = client.streams.start(messages=user(), stream_id="taken-by-someone-else")
    with pytest.raises(errors.ConflictError) as info:
        client.streams.start(messages=user(), stream_id=first.stream_id)
    assert info.value.retries_done == 0


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_completion_is_not_resent_after_a_reset(
    scripted: list[RawServer], flavour: str, stream: bool
) -> None:
    server = serve(scripted, None)
    sync, async_ = clients(server.url)
    with pytest.raises(errors.APIConnectionError) as info:
        if flavour == "sync":
            result = sync.completions.create(messages=user(), stream=stream)
            if stream:
                list(result)  # type: ignore[call-overload]
        else:
            result = await async_.completions.create(messages=user(), stream=stream)
            if stream:
                async for _ in result:  # type: ignore[union-attr]
                    pass
    assert server.request_count() == 1 and info.value.retries_done == 0
    sync.close()
    await async_.aclose()


def test_a_completion_is_retried_where_the_server_cannot_have_it(
    emulator: EmulatorServer, fault_id: str
) -> None:
    sync, _ = clients(emulator.url)
    refused, _unused = clients("http://127.0.0.1:9", max_retries=1)
    with pytest.raises(errors.APIConnectionError) as info:
        refused.completions.create(messages=user())
    assert info.value.retries_done == 1 and not info.value.request_sent  # nothing reached a server
    limited = {"x-emulator-fault": "rate_limit_gateway", "x-emulator-fault-times": "1"}
    limited |= {"x-emulator-fault-id": fault_id, "x-emulator-retry-after-ms": "1"}
    assert sync.completions.create(messages=user(), extra_headers=limited).choices
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 2  # a 429: refused, so retried
    failed = {"x-emulator-fault": "internal_server_error", "x-emulator-fault-id": fault_id + "-500"}
    with pytest.raises(errors.InternalServerError):
        sync.completions.create(messages=user(), extra_headers=failed)
    assert attempts(emulator, "x-emulator-fault-id", fault_id + "-500") == 1  # it may have run
    sync.close()
    refused.close()


# -- point 8: an event without an id line is delivered ---------------------------------------


EVENTS_WITHOUT_IDS = (
    b'id: 1\nevent: status\ndata: {"status": "processing"}\n\n'
    b'event: delta\ndata: {"content": "ohne "}\n\n'  # no id line: keeps id 1
    b'id: 2\nevent: delta\ndata: {"content": "mit "}\n\n'
    b'id: 1\nevent: delta\ndata: {"content": "doppelt"}\n\n'  # a resend of id 1: dropped
    b'event: delta\ndata: {"content": "Id"}\n\n'
    b'id: 3\nevent: done\ndata: {"status": "completed"}\n\n'
)


def test_an_event_without_an_id_line_keeps_the_last_id_and_is_delivered() -> None:
    fmt = stream_events_after(0)
    decoder = SSEDecoder()
    events = [e for raw in decoder.feed(EVENTS_WITHOUT_IDS) if (e := fmt.convert(raw)) is not None]
    assert [(type(e).__name__, e.id) for e in events] == [
        ("StatusEvent", 1),
        ("DeltaEvent", 1),
        ("DeltaEvent", 2),
        ("DeltaEvent", 2),
        ("DoneEvent", 3),
    ]
    assert "".join(fmt.text_of(e) for e in events) == "ohne mit Id"
    resumed = stream_events_after(2)  # re-attached after 2: id-less events before 2's resend count
    again = [e for raw in SSEDecoder().feed(EVENTS_WITHOUT_IDS) if (e := resumed.convert(raw)) is not None]
    assert [e.id for e in again] == [2, 2, 3]  # "ohne" (no id, so new to a resume), "Id", done


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_events_without_id_lines_reach_the_caller_over_http(
    scripted: list[RawServer], flavour: str
) -> None:
    server = serve(scripted, reply(200, SSE, EVENTS_WITHOUT_IDS, chunked=True))
    sync, async_ = clients(server.url)
    if flavour == "sync":
        events = list(sync.streams.events("s-1"))
    else:
        events = [e async for e in async_.streams.events("s-1")]
    assert isinstance(events[0], StatusEvent) and isinstance(events[-1], DoneEvent)
    assert "".join(e.content for e in events if isinstance(e, DeltaEvent)) == "ohne mit Id"
    assert server.request_count() == 1
    sync.close()
    await async_.aclose()


# -- point 11: an empty answer is not an answer --------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("chunked", [False, True])
async def test_a_200_assistant_stream_without_a_chunk_is_an_error(
    scripted: list[RawServer], flavour: str, chunked: bool
) -> None:
    server = serve(scripted, reply(200, NDJSON, b"\n\n", chunked=chunked))
    sync, async_ = clients(server.url)
    request = {"assistant_id": ASSISTANT_ID, "messages": user()}
    with pytest.raises(errors.APIResponseValidationError, match="no chunk"):
        if flavour == "sync":
            sync.assistant.stream(**request).get_final_answer()
        else:
            await async_.assistant.stream(**request).get_final_answer()
    assert server.request_count() == 1
    with pytest.raises(errors.APIResponseValidationError):
        answer_from_chunks([])
    sync.close()
    await async_.aclose()


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("kind", ["langchain", "llama_index"])
async def test_an_adapter_streaming_an_empty_200_raises_instead_of_answering_nothing(
    scripted: list[RawServer], kind: str, flavour: str
) -> None:
    server = serve(scripted, reply(200, NDJSON, b"", chunked=True))
    model = _adapter(kind, server.url)
    if kind == "langchain":
        history: list[Any] = [("human", "Frage")]
    else:
        from llama_index.core.llms import ChatMessage

        history = [ChatMessage(role="user", content="Frage")]
    with pytest.raises(errors.APIResponseValidationError):
        await _run_adapter(kind, model, history, flavour, "streaming")
    assert server.request_count() == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_completion_stream_that_ends_before_done_is_interrupted(
    scripted: list[RawServer], flavour: str
) -> None:
    body = completion_chunk("Die Frist ") + completion_chunk("beträgt ")  # then a clean end
    server = serve(scripted, reply(200, SSE, body, chunked=True))
    sync, async_ = clients(server.url)
    received: list[str] = []
    with pytest.raises(errors.APIConnectionError, match="end marker") as info:
        if flavour == "sync":
            for chunk in sync.completions.create(messages=user(), stream=True):
                received.append(chunk.choices[0].delta.content or "")
        else:
            async for chunk in await async_.completions.create(messages=user(), stream=True):
                received.append(chunk.choices[0].delta.content or "")
    assert info.value.partial == "".join(received) == "Die Frist beträgt "
    assert server.request_count() == 1
    sync.close()
    await async_.aclose()


def test_a_completion_stream_with_its_final_chunk_but_no_done_is_complete(scripted: list[RawServer]) -> None:
    body = completion_chunk("Fertig.") + completion_chunk(finish="stop")
    server = serve(scripted, reply(200, SSE, body, chunked=True))
    sync, _ = clients(server.url)
    completion = sync.completions.create(messages=user(), tools=[WEATHER])
    assert completion.choices[0].message.content == "Fertig."
    assert completion.choices[0].finish_reason == "stop"
    sync.close()
