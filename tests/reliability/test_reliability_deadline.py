"""Every call ends in bounded time: a stream's stall guard counts content, not keep-alives, and a
`deadline` bounds a whole call; against raw loopback servers that trickle forever (blank NDJSON
lines, SSE `: keep-alive` comments, one byte every 0.2 s, or content too slow to ever finish).

Each trickling server gives up after `GIVE_UP` seconds, so that a client without these limits
fails its test (with the wrong error, too late) instead of hanging the suite."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient, errors
from tests.conftest import ASSISTANT_ID, user
from tests.reliability import probes
from tests.reliability.servers import RawServer

READ_TIMEOUT = 1.0
DEADLINE = 1.5
GIVE_UP = 8.0
#: A call may end this much after its limit (scheduling on a loaded machine); never before it.
MARGIN = 1.0
KEY = "sk-deadline-test"


def ndjson_chunk(text: str) -> bytes:
    chunk = {"message_id": "m-1", "thread_id": "t-1", "delta": {"content": text}}
    return json.dumps(chunk).encode() + b"\n"


def sse_chunk(text: str) -> bytes:
    chunk = {"id": "c-1", "choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


PRELUDE = {
    "ndjson": ndjson_chunk("Die ") + ndjson_chunk("Probezeit "),
    "sse": sse_chunk("Die ") + sse_chunk("Probezeit "),
}
DELIVERED = "Die Probezeit "

#: name: (wire format, what is sent after the prelude, every 0.2 s)
TRICKLES = {
    "blank_lines": ("ndjson", b"\n"),
    "keep_alive_comments": ("sse", b": keep-alive\n\n"),
    "byte_drip": ("ndjson", b"x"),  # one byte of a line that never ends
}


def trickle(fmt: str, piece: bytes, *, prelude: bytes | None = None, interval: float = 0.2) -> RawServer:
    kind = "application/x-ndjson" if fmt == "ndjson" else "text/event-stream"
    return RawServer(
        "trickle",
        content_type=kind,
        prelude=PRELUDE[fmt] if prelude is None else prelude,
        piece=piece,
        interval=interval,
        give_up=GIVE_UP,
    )


@pytest.fixture(params=list(TRICKLES))
def trickling(request: pytest.FixtureRequest) -> Iterator[tuple[str, RawServer]]:
    fmt, piece = TRICKLES[request.param]
    with trickle(fmt, piece) as server:
        yield fmt, server


def options(server: RawServer, **more: Any) -> dict[str, Any]:
    return {
        "api_key": KEY,
        "base_url": server.url,
        "max_retries": 0,
        "timeout": httpx.Timeout(READ_TIMEOUT, connect=2.0),
        **more,
    }


def tools() -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def assert_ended_in_time(started: float, limit: float, error: errors.APITimeoutError, what: str) -> None:
    elapsed = time.monotonic() - started
    assert limit <= elapsed < limit + MARGIN, f"{what}: ended after {elapsed:.2f} s, limit {limit} s"
    assert what in str(error), str(error)
    assert error.deadline == (limit if "deadline" in what else None)


# -- the stall guard counts content ------------------------------------------------------------


def sync_stream(client: HaufeCopilotClient, fmt: str, received: list[str], **call: Any) -> None:
    if fmt == "ndjson":
        for chunk in client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user(), **call):
            received.append(chunk.delta.content)
    else:
        for part in client.completions.create(messages=user(), stream=True, **call):
            received.append(part.choices[0].delta.content or "")


async def async_stream(client: AsyncHaufeCopilotClient, fmt: str, received: list[str], **call: Any) -> None:
    if fmt == "ndjson":
        async for chunk in client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user(), **call):
            received.append(chunk.delta.content)
    else:
        async for part in await client.completions.create(messages=user(), stream=True, **call):
            received.append(part.choices[0].delta.content or "")


def test_a_stream_without_content_ends_at_its_stall_limit(trickling: tuple[str, RawServer]) -> None:
    fmt, server = trickling
    received: list[str] = []
    with HaufeCopilotClient(**options(server)) as client:
        started = time.monotonic()
        with pytest.raises(errors.APITimeoutError) as info:
            sync_stream(client, fmt, received)
    assert_ended_in_time(started, READ_TIMEOUT, info.value, "delivered no content")
    assert "".join(received) == DELIVERED and info.value.partial == DELIVERED


async def test_an_async_stream_without_content_ends_at_its_stall_limit(
    trickling: tuple[str, RawServer],
) -> None:
    fmt, server = trickling
    received: list[str] = []
    async with AsyncHaufeCopilotClient(**options(server)) as client:
        started = time.monotonic()
        with pytest.raises(errors.APITimeoutError) as info:
            await async_stream(client, fmt, received)
    assert_ended_in_time(started, READ_TIMEOUT, info.value, "delivered no content")
    assert "".join(received) == DELIVERED and info.value.partial == DELIVERED


def test_the_stall_clock_does_not_count_the_callers_time() -> None:
    """A caller slower than the read timeout between chunks is not a stalled server."""
    with trickle("ndjson", b"\n", prelude=b"".join(ndjson_chunk(w) for w in ("a", "b", "c"))) as server:
        server.give_up = 0.1  # the three chunks, then the end of the body
        with HaufeCopilotClient(**options(server, timeout=httpx.Timeout(0.3, connect=2.0))) as client:
            received = []
            for chunk in client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()):
                received.append(chunk.delta.content)
                time.sleep(0.5)
    assert received == ["a", "b", "c"]


# -- the deadline bounds a whole call ------------------------------------------------------------


def slow_content(fmt: str) -> RawServer:
    """Content every 0.2 s, forever: no stall, only a deadline ends it."""
    piece = ndjson_chunk("mehr ") if fmt == "ndjson" else sse_chunk("mehr ")
    return trickle(fmt, piece)


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
def test_the_deadline_ends_a_stream_that_never_stops(fmt: str) -> None:
    received: list[str] = []
    with slow_content(fmt) as server, HaufeCopilotClient(**options(server)) as client:
        started = time.monotonic()
        with pytest.raises(errors.APITimeoutError) as info:
            sync_stream(client, fmt, received, deadline=DEADLINE)
    assert_ended_in_time(started, DEADLINE, info.value, "deadline of 1.5 s")
    assert len(received) >= 5 and info.value.partial == "".join(received)


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
async def test_the_deadline_ends_an_async_stream_that_never_stops(fmt: str) -> None:
    received: list[str] = []
    with slow_content(fmt) as server:
        async with AsyncHaufeCopilotClient(**options(server, deadline=DEADLINE)) as client:
            started = time.monotonic()
            with pytest.raises(errors.APITimeoutError) as info:
                await async_stream(client, fmt, received)
    assert_ended_in_time(started, DEADLINE, info.value, "deadline of 1.5 s")
    assert len(received) >= 5 and info.value.partial == "".join(received)


def test_the_deadline_ends_a_blocking_answer_that_drips() -> None:
    with trickle("ndjson", b" ", prelude=b'{"content": ') as server:
        server.content_type = "application/json"
        with HaufeCopilotClient(**options(server, deadline=DEADLINE)) as client:
            started = time.monotonic()
            with pytest.raises(errors.APITimeoutError) as info:
                client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    assert_ended_in_time(started, DEADLINE, info.value, "deadline of 1.5 s")


async def test_the_deadline_ends_an_async_blocking_answer_that_drips() -> None:
    with trickle("ndjson", b" ", prelude=b'{"content": ') as server:
        server.content_type = "application/json"
        async with AsyncHaufeCopilotClient(**options(server)) as client:
            started = time.monotonic()
            with pytest.raises(errors.APITimeoutError) as info:
                await client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), deadline=DEADLINE)
    assert_ended_in_time(started, DEADLINE, info.value, "deadline of 1.5 s")


async def test_the_async_deadline_cuts_a_silent_server_short() -> None:
    """Nothing at all after the prelude: the async client ends at the deadline, not at the read
    timeout of the read in progress."""
    with trickle("ndjson", b"\n", interval=GIVE_UP) as server:
        async with AsyncHaufeCopilotClient(
            **options(server, timeout=httpx.Timeout(5.0, connect=2.0))
        ) as client:
            started = time.monotonic()
            received: list[str] = []
            with pytest.raises(errors.APITimeoutError) as info:
                await async_stream(client, "ndjson", received, deadline=DEADLINE)
    assert_ended_in_time(started, DEADLINE, info.value, "deadline of 1.5 s")
    assert info.value.partial == DELIVERED
    assert probes.client_sockets(server.port) == []  # the read cut short closed its connection


EVENT = b'id: 1\nevent: delta\ndata: {"content": "Die "}\n\n'


def test_the_deadline_spans_the_reattachments_of_an_async_stream() -> None:
    """`streams.events` re-attaches a connection that stalls (keep-alives only); the deadline
    bounds them all together."""
    with trickle("sse", b": keep-alive\n\n", prelude=EVENT) as server:
        with HaufeCopilotClient(**options(server, deadline=2.5)) as client:
            started = time.monotonic()
            received = []
            with pytest.raises(errors.APITimeoutError) as info:
                for event in client.streams.events("s-1"):
                    received.append(event)
        assert_ended_in_time(started, 2.5, info.value, "deadline of 2.5 s")
        assert len(received) == 1 and server.request_count() >= 2  # re-attached after the stall


async def test_the_deadline_spans_the_reattachments_of_an_async_stream_async() -> None:
    with trickle("sse", b": keep-alive\n\n", prelude=EVENT) as server:
        async with AsyncHaufeCopilotClient(**options(server)) as client:
            started = time.monotonic()
            received = []
            with pytest.raises(errors.APITimeoutError) as info:
                async for event in client.streams.events("s-1", deadline=2.5):
                    received.append(event)
        assert_ended_in_time(started, 2.5, info.value, "deadline of 2.5 s")
        assert len(received) == 1 and server.request_count() >= 2


def test_the_deadline_spans_retries_and_their_waits() -> None:
    """A server that resets every attempt: with a deadline shorter than the backoff, the call
    raises the last error at once instead of waiting past the deadline."""
    with RawServer("reset") as server, HaufeCopilotClient(**options(server, max_retries=5)) as client:
        started = time.monotonic()
        with pytest.raises(errors.APIConnectionError):
            client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), deadline=0.3)
        assert time.monotonic() - started < 0.3
        assert server.request_count() == 1


def test_a_deadline_must_be_a_positive_number() -> None:
    with pytest.raises(errors.ConfigurationError, match="deadline must be a positive number"):
        HaufeCopilotClient(api_key=KEY, deadline=0)
    with pytest.raises(errors.ConfigurationError, match="deadline"):
        HaufeCopilotClient(api_key=KEY, deadline="5")  # type: ignore[arg-type]
    client = HaufeCopilotClient(api_key=KEY, base_url="http://127.0.0.1:9", deadline=2)
    assert client.deadline == 2.0 and client.with_options(deadline=None).deadline is None
    with pytest.raises(errors.InvalidRequestError, match="deadline"):
        client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), deadline=-1)
    client.close()


# -- the adapters ---------------------------------------------------------------------------------


def test_langchain_streams_end_at_the_stall_limit_and_at_the_deadline() -> None:
    from langchain_haufe import ChatHaufeCopilot

    with trickle("ndjson", b"\n") as server:
        model = ChatHaufeCopilot(assistant_id=ASSISTANT_ID, **options(server))
        received: list[str] = []
        started = time.monotonic()
        with pytest.raises(errors.APITimeoutError) as info:
            for chunk in model.stream("Probezeit?"):
                received.append(str(chunk.content))
        assert_ended_in_time(started, READ_TIMEOUT, info.value, "delivered no content")
        assert "".join(received) == DELIVERED == info.value.partial
    with slow_content("ndjson") as server:
        model = ChatHaufeCopilot(assistant_id=ASSISTANT_ID, **options(server, deadline=DEADLINE))
        started = time.monotonic()
        with pytest.raises(errors.APITimeoutError) as info:
            model.invoke("Probezeit?")  # blocking
        assert_ended_in_time(started, DEADLINE, info.value, "deadline of 1.5 s")


def test_the_adapters_take_a_deadline_per_call() -> None:
    from llama_index.core.llms import ChatMessage

    from langchain_haufe import ChatHaufeCopilot
    from llama_index_haufe import HaufeCopilot

    with slow_content("ndjson") as server:
        model = ChatHaufeCopilot(assistant_id=ASSISTANT_ID, **options(server))
        started = time.monotonic()
        with pytest.raises(errors.APITimeoutError) as info:
            model.invoke("Probezeit?", deadline=DEADLINE)
        assert_ended_in_time(started, DEADLINE, info.value, "deadline of 1.5 s")
        with pytest.raises(errors.InvalidRequestError, match="deadline"):
            model.invoke("Probezeit?", deadline=-1)
    with slow_content("sse") as server:
        llm = HaufeCopilot(assistant_id=ASSISTANT_ID, **options(server))
        started = time.monotonic()
        with pytest.raises(errors.APITimeoutError) as info:
            llm.chat([ChatMessage(role="user", content="Probezeit?")], tools=tools(), deadline=DEADLINE)
        assert_ended_in_time(started, DEADLINE, info.value, "deadline of 1.5 s")


def test_a_call_past_its_deadline_opens_no_new_thread() -> None:
    """A continuation that fails opens a new thread once; one past its deadline does not (the
    caller's time is spent)."""
    from langchain_haufe import ChatHaufeCopilot

    with slow_content("ndjson") as server:
        model = ChatHaufeCopilot(assistant_id=ASSISTANT_ID, **options(server, deadline=DEADLINE))
        started = time.monotonic()
        with pytest.raises(errors.APITimeoutError) as info:
            model.invoke("Probezeit?", thread_id="t-1")
        assert_ended_in_time(started, DEADLINE, info.value, "deadline of 1.5 s")
        assert server.request_count() == 1


async def test_langchain_async_streaming_invoke_ends_at_the_deadline() -> None:
    from langchain_haufe import ChatHaufeCopilot

    with slow_content("ndjson") as server:
        model = ChatHaufeCopilot(
            assistant_id=ASSISTANT_ID, streaming=True, **options(server, deadline=DEADLINE)
        )
        assert model.deadline == DEADLINE
        started = time.monotonic()
        with pytest.raises(errors.APITimeoutError) as info:
            await model.ainvoke("Probezeit?")  # streams underneath and aggregates
        assert_ended_in_time(started, DEADLINE, info.value, "deadline of 1.5 s")
        assert info.value.partial.startswith(DELIVERED)


def test_llama_index_tools_end_at_the_stall_limit_and_at_the_deadline() -> None:
    """`chat` with tools streams completions SSE underneath and assembles the answer."""
    from llama_index.core.llms import ChatMessage

    from llama_index_haufe import HaufeCopilot

    messages = [ChatMessage(role="user", content="Probezeit?")]
    with trickle("sse", b": keep-alive\n\n") as server:
        llm = HaufeCopilot(assistant_id=ASSISTANT_ID, **options(server))
        started = time.monotonic()
        with pytest.raises(errors.APITimeoutError) as info:
            llm.chat(messages, tools=tools())
        assert_ended_in_time(started, READ_TIMEOUT, info.value, "delivered no content")
        assert info.value.partial == DELIVERED
    with slow_content("sse") as server:
        llm = HaufeCopilot(assistant_id=ASSISTANT_ID, **options(server, deadline=DEADLINE))
        assert llm.deadline == DEADLINE
        started = time.monotonic()
        with pytest.raises(errors.APITimeoutError) as info:
            llm.chat(messages, tools=tools())
        assert_ended_in_time(started, DEADLINE, info.value, "deadline of 1.5 s")


async def test_llama_index_async_stream_ends_at_the_deadline() -> None:
    from llama_index.core.llms import ChatMessage

    from llama_index_haufe import HaufeCopilot

    with slow_content("ndjson") as server:
        llm = HaufeCopilot(assistant_id=ASSISTANT_ID, **options(server, deadline=DEADLINE))
        started = time.monotonic()
        with pytest.raises(errors.APITimeoutError) as info:
            async for _ in await llm.astream_chat([ChatMessage(role="user", content="Probezeit?")]):
                pass
        assert_ended_in_time(started, DEADLINE, info.value, "deadline of 1.5 s")


# -- aggregated streams are bounded in size, as a blocking answer is ----------------------------


def test_an_assembled_tool_call_stream_is_bounded_by_max_response_bytes() -> None:
    with trickle("sse", sse_chunk("x" * 1000), prelude=b"", interval=0.0005) as server:
        with HaufeCopilotClient(**options(server, max_response_bytes=100_000)) as client:
            started = time.monotonic()
            with pytest.raises(errors.ResponseTooLargeError, match="max_response_bytes=100000"):
                client.completions.create(messages=user(), tools=tools())  # streams and assembles
    assert time.monotonic() - started < 3


async def test_an_assembled_async_answer_is_bounded_by_max_response_bytes() -> None:
    with trickle("ndjson", ndjson_chunk("x" * 1000), prelude=b"", interval=0.0005) as server:
        async with AsyncHaufeCopilotClient(**options(server, max_response_bytes=100_000)) as client:
            stream = client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user())
            with pytest.raises(errors.ResponseTooLargeError, match="max_response_bytes=100000"):
                await stream.get_final_answer()
