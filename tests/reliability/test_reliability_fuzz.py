"""Fuzzing: the client's decoders and parsers on arbitrary input, the emulator on arbitrary requests.

What `test_ndjson.py`, `test_sse.py` and `test_tool_calls.py` already cover (the NDJSON and SSE
decoders on arbitrary splits of valid streams and on arbitrary bytes; tool-call fragments of
valid calls split anywhere) is not repeated. Added here:

- each stream format *end to end* (decoder + the parser that turns wire items into the caller's
  items): valid streams split anywhere give exactly their items; valid streams with random bytes
  flipped, inserted or deleted give items or a typed error, nothing else;
- the tool-call accumulator on arbitrary fragments (any JSON shape): a typed error or the
  arguments joined in order; `completion_from_chunks` on arbitrary chunks;
- the error classifier on arbitrary status, headers and bodies; `Retry-After` on arbitrary text;
- the emulator over HTTP: schemathesis on its OpenAPI schema (which describes paths only: its
  routes read the body themselves, so the schema has no bodies, no query parameters, no headers),
  and request bodies generated from the seeds' documented fields plus garbage, POSTed to every
  endpoint: never a 5xx, every 4xx in the seeds' error shapes, every 2xx readable by the client.
  The `x-emulator-*` fault headers are left out.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from haufe_copilot.errors import (
    MAX_RETRY_AFTER_SECONDS,
    APIResponseValidationError,
    APIStatusError,
    HaufeCopilotError,
    error_from_response,
    error_from_stream_object,
    parse_retry_after,
)
from haufe_copilot.protocol.assistant import ASSISTANT_STREAM, StreamFormat, parse_answer, parse_chunk
from haufe_copilot.protocol.ndjson import NDJSONLines, parse_object
from haufe_copilot.protocol.platform import (
    COMPLETION_STREAM,
    completion_from_chunks,
    parse_completion,
    parse_completion_event,
    parse_stream_handle,
    parse_stream_status,
    stream_events_after,
)
from haufe_copilot.protocol.sse import SSEDecoder
from haufe_copilot.protocol.tool_calls import ToolCallAccumulator
from haufe_copilot.types.completions import ChatCompletionChunk
from haufe_emulator import EmulatorServer
from tests.conftest import ASSISTANT_ID, SESSION_API_KEY
from tests.protocol.test_tool_calls import openai_delta

texts = st.text(max_size=12)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c for c in cuts if 0 <= c <= len(data)}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def run_format(fmt: StreamFormat[Any, Any], pieces: list[bytes], max_bytes: int = 1 << 16) -> list[Any]:
    """What the client's `_iterate` does with a body: decode, convert, skip None."""
    decoder = fmt.decoder(max_bytes)
    items = []
    for piece in pieces:
        for raw in decoder.feed(piece):
            item = fmt.convert(raw)
            if item is not None:
                assert isinstance(fmt.text_of(item), str)
                items.append(item)
    for raw in decoder.close():
        item = fmt.convert(raw)
        if item is not None:
            items.append(item)
    return items


# -- valid wire streams, with the text the caller must get -------------------------------------


@st.composite
def assistant_streams(draw: st.DrawFn) -> tuple[bytes, str]:
    contents = draw(st.lists(st.text(max_size=8), min_size=1, max_size=6))
    source = {"content": draw(texts), "meta_data": {"document_title": draw(texts), "section": "§ 1", "x": 1}}
    lines = []
    for n, content in enumerate(contents):
        last = n == len(contents) - 1
        chunk = {
            "created_at": "2025-03-15T09:13:02.654321Z",
            "delta": {"content": content, "role": "assistant", "sources": [source] if last else []},
            "message_id": "m-1",
            "thread_id": "t-1",
        }
        lines.append(json.dumps(chunk, ensure_ascii=draw(st.booleans())).encode())
        lines.append(draw(st.sampled_from([b"\n", b"\r\n", b"\n\n"])))
    return b"".join(lines), "".join(contents)


@st.composite
def completion_streams(draw: st.DrawFn) -> tuple[bytes, str]:
    contents = draw(st.lists(st.text(max_size=8), min_size=1, max_size=6))
    ending = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    frames = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    frames += [{**head, "choices": [{"index": 0, "delta": {"content": c}}]} for c in contents]
    frames.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    frames.append(
        {**head, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    )
    data = b"".join(b"data: " + json.dumps(f, ensure_ascii=False).encode() + ending + ending for f in frames)
    data += b": keep-alive" + ending + ending + b"data: [DONE]" + ending + ending
    return data, "".join(contents)


@st.composite
def event_streams(draw: st.DrawFn) -> tuple[bytes, str]:
    contents = draw(st.lists(st.text(max_size=8), min_size=1, max_size=6))
    events: list[tuple[str, dict[str, Any]]] = [("status", {"status": "processing"})]
    if draw(st.booleans()):
        events.append(("thinking", {"content": draw(texts)}))
    events += [("delta", {"content": c}) for c in contents]
    if draw(st.booleans()):
        events.append(("tool_call", {"index": 0, "id": "c1", "name": "f", "arguments": draw(texts)}))
    events.append(
        (
            "done",
            {"status": "completed", "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
        )
    )
    data = b"".join(
        f"id: {n}\nevent: {kind}\ndata: {json.dumps(body, ensure_ascii=False)}\n\n".encode()
        for n, (kind, body) in enumerate(events, start=1)
    )
    return data, "".join(contents)


#: Each format made afresh for every run: an async stream's filter remembers the last id it delivered.
FORMATS: dict[
    str, tuple[Callable[[], StreamFormat[Any, Any]], Callable[[], st.SearchStrategy[tuple[bytes, str]]]]
] = {
    "assistant-ndjson": (lambda: ASSISTANT_STREAM, assistant_streams),
    "completion-sse": (lambda: COMPLETION_STREAM, completion_streams),
    "async-stream-events": (lambda: stream_events_after(0), event_streams),  # a stream read from its start
}


@pytest.mark.parametrize("name", FORMATS)
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_a_valid_stream_split_anywhere_gives_exactly_its_items(name: str, data: st.DataObject) -> None:
    make_format, streams = FORMATS[name]
    body, text = data.draw(streams())
    whole = run_format(make_format(), [body])
    assert "".join(make_format().text_of(item) for item in whole) == text
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    assert run_format(make_format(), split(body, cuts)) == whole
    assert run_format(make_format(), [body[i : i + 1] for i in range(len(body))]) == whole


@st.composite
def mutated(draw: st.DrawFn, streams: Callable[[], st.SearchStrategy[tuple[bytes, str]]]) -> bytes:
    body = bytearray(draw(streams())[0])
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and position < len(body):
            body[position] = draw(st.integers(0, 255))
        elif action == "insert":
            body[position:position] = draw(
                st.binary(min_size=1, max_size=4) | st.sampled_from([b"\n", b"{", b'"', b"\xff"])
            )
        elif action == "delete":
            del body[position : position + draw(st.integers(1, 8))]
        elif action == "truncate":
            del body[position:]
    return bytes(body)


@pytest.mark.parametrize("name", FORMATS)
@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_a_damaged_stream_gives_items_or_a_typed_error_nothing_else(name: str, data: st.DataObject) -> None:
    make_format, streams = FORMATS[name]
    body = data.draw(mutated(streams) | st.binary(max_size=300))
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=8))
    with contextlib.suppress(HaufeCopilotError):
        run_format(make_format(), split(body, cuts), max_bytes=data.draw(st.sampled_from([64, 1 << 16])))


# -- tool calls, completions, errors -----------------------------------------------------------

fragment_values = (
    st.none() | st.integers(-2, 3) | st.booleans() | texts | st.floats(allow_nan=False) | json_values
)
openai_fragments = st.fixed_dictionaries(
    {},
    optional={
        "index": fragment_values,
        "id": fragment_values,
        "type": fragment_values,
        "function": st.fixed_dictionaries(
            {}, optional={"name": fragment_values, "arguments": fragment_values}
        )
        | json_values,
    },
)
flat_fragments = st.fixed_dictionaries(
    {},
    optional={
        "index": fragment_values,
        "id": fragment_values,
        "tool_call_id": fragment_values,
        "name": fragment_values,
        "arguments": fragment_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), openai_fragments | flat_fragments | json_values), max_size=10))
def test_arbitrary_tool_call_fragments_give_a_typed_error_or_the_arguments_in_order(
    fragments: list[tuple[bool, Any]],
) -> None:
    accumulator = ToolCallAccumulator()
    expected: dict[int, str] = {}
    explicit = True  # every accepted fragment named its index: the arguments are then exact
    for nested, fragment in fragments:
        try:
            if nested:
                accumulator.add_openai_delta(fragment)
            else:
                accumulator.add_openai_delta(openai_delta(fragment))
        except APIResponseValidationError:
            continue
        index = fragment.get("index")
        if index is None:
            explicit = False
            continue
        source = (fragment.get("function") or {}) if nested else fragment
        arguments = source.get("arguments")
        if isinstance(arguments, dict):  # tolerated: an object instead of its JSON text
            arguments = json.dumps(arguments, ensure_ascii=False)
        expected[index] = expected.get(index, "") + (arguments or "")
    calls = accumulator.calls()
    assert [c.index for c in calls] == sorted({c.index for c in calls})
    if explicit:
        assert {c.index: c.arguments for c in calls} == expected
    for call in calls:
        assert isinstance(call.id, str) and call.id and isinstance(call.name, str)
        with contextlib.suppress(APIResponseValidationError):
            assert isinstance(call.parsed_arguments(), dict)


chunk_dicts = st.fixed_dictionaries(
    {
        "id": texts,
        "object": st.just("chat.completion.chunk"),
        "created": st.integers(0, 2**31),
        "model": texts,
        "choices": st.lists(
            st.fixed_dictionaries(
                {
                    "index": st.integers(0, 2),
                    "delta": st.fixed_dictionaries(
                        {},
                        optional={
                            "role": st.sampled_from(["assistant", "tool"]),
                            "content": st.none() | texts,
                            "tool_calls": st.lists(
                                st.fixed_dictionaries(
                                    {"index": st.integers(0, 2)},
                                    optional={
                                        "id": texts,
                                        "function": st.fixed_dictionaries(
                                            {}, optional={"name": texts, "arguments": texts}
                                        ),
                                    },
                                ),
                                max_size=2,
                            ),
                        },
                    ),
                },
                optional={"finish_reason": st.none() | st.sampled_from(["stop", "length", "tool_calls"])},
            ),
            max_size=2,
        ),
    }
)


@settings(max_examples=200, deadline=None)
@given(st.lists(chunk_dicts, max_size=6))
def test_completion_from_arbitrary_chunks_assembles_the_text_or_gives_a_typed_error(
    dicts: list[dict[str, Any]],
) -> None:
    try:
        chunks = [ChatCompletionChunk.model_validate(d) for d in dicts]
    except ValueError:
        return
    try:
        completion = completion_from_chunks(chunks)
    except HaufeCopilotError:
        return
    for choice in completion.choices:
        expected = "".join(
            c.delta.content or "" for chunk in chunks for c in chunk.choices if c.index == choice.index
        )
        assert (choice.message.content or "") == expected


header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip)


@settings(max_examples=400, deadline=None)
@given(
    status=st.integers(400, 599),
    body=st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries(
        {"error_code": texts | st.sampled_from(["unauthorized", "rate_limit_gateway", "validation_error"])},
        optional={"detail": json_values, "message": json_values},
    ).map(lambda v: json.dumps(v).encode()),
    content_type=st.sampled_from(["application/json", "text/html", "text/plain", ""]),
    retry_after=st.none()
    | header_text
    | st.sampled_from(
        [
            "1",
            "-5",
            "1e400",
            "nan",
            "inf",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Mon, 01 Jan 0001 00:00:00 GMT",
        ]
    ),
    retry_after_ms=st.none() | header_text | st.sampled_from(["30", "-1", "1e309", "nan"]),
)
def test_any_error_answer_classifies_to_a_status_error(
    status: int, body: bytes, content_type: str, retry_after: str | None, retry_after_ms: str | None
) -> None:
    headers = {"content-type": content_type}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    error = error_from_response(status, headers, body)
    assert isinstance(error, APIStatusError) and error.status_code == status
    assert error.retry_after is None or 0.0 <= error.retry_after <= MAX_RETRY_AFTER_SECONDS
    assert isinstance(str(error), str) and isinstance(repr(error), str)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["error_code", "detail", "message", "x"]), json_values, max_size=4))
def test_any_error_line_classifies(obj: dict[str, Any]) -> None:
    error = error_from_stream_object(obj, partial="abc")
    assert isinstance(error, APIStatusError) and error.partial == "abc" and str(error)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.booleans())
def test_retry_after_of_any_text_is_none_or_a_bounded_wait(value: str, in_ms: bool) -> None:
    wait = parse_retry_after({"retry-after-ms" if in_ms else "retry-after": value})
    assert wait is None or (0.0 <= wait <= MAX_RETRY_AFTER_SECONDS and not math.isnan(wait))


# -- the emulator over HTTP: schemathesis on its schema ----------------------------------------

AUTH = {"api-key": SESSION_API_KEY, "authorization": f"Bearer {SESSION_API_KEY}"}
ASSISTANT_PATHS = ("/agents/v1/chat/completions", "/agents/v1/chat/completions/stream")


def _assistant_error_shape(status: int, body: Any) -> str | None:
    if not (isinstance(body, dict) and isinstance(body.get("error_code"), str) and "detail" in body):
        return f"{status} without {{error_code, detail}}: {body!r:.200}"
    detail = body["detail"]
    if status == 422:
        if not isinstance(detail, list) or not all(
            isinstance(d, dict) and {"loc", "message", "type"} <= set(d) for d in detail
        ):
            return f"422 detail is not [{{loc, message, type}}]: {detail!r:.200}"
    elif not isinstance(detail, (str, list)):
        return f"{status} detail is neither text nor a list: {detail!r:.200}"
    return None


def _platform_error_shape(status: int, body: Any) -> str | None:
    if (
        status in (404, 405)
        and isinstance(body, dict)
        and set(body) == {"detail"}
        and isinstance(body["detail"], str)
    ):
        # FastAPI's own answer for a path no route matches (the platform APIs are FastAPI's: seed
        # 002's 422 is its shape). A stream id holding "/" gets here: the client sends it as %2F,
        # and the server decodes it before routing. The client reads it as NotFoundError.
        return None
    if status == 422 and isinstance(body, dict) and "error_code" not in body:
        detail = body.get("detail")
        if (
            not isinstance(detail, list)
            or not detail
            or not all(isinstance(d, dict) and {"loc", "msg", "type"} <= set(d) for d in detail)
        ):
            return f"422 is not FastAPI's {{detail: [{{loc, msg, type}}]}}: {body!r:.200}"
        return None
    return _assistant_error_shape(status, body)


def error_shape_problem(path: str, status: int, content: bytes) -> str | None:
    """None when a 4xx answer has the seeds' error shape for its API family."""
    try:
        body = json.loads(content)
    except ValueError:
        return f"{status} with a body that is not JSON: {content[:200]!r}"
    check = _assistant_error_shape if path.startswith(ASSISTANT_PATHS) else _platform_error_shape
    return check(status, body)


def _operations() -> dict[str, Any]:
    from haufe_emulator import create_app

    # The schema only: the cases are sent over HTTP to the session's emulator below. (schemathesis'
    # own pytest plugin does not run under pytest 9 here, so its strategies are driven directly.)
    loaded = schemathesis.openapi.from_dict(create_app().openapi())
    return {op.ok().label: op.ok() for op in loaded.get_all_operations()}


OPERATIONS = _operations()


# Positive cases only: the schema's one kind of parameter, an unconstrained string in the path,
# leaves schemathesis' negative mode nothing to violate (it reports the cases unsatisfiable). The
# generated bodies below are the negative side.
@pytest.mark.parametrize("label", OPERATIONS)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_schemathesis_finds_no_5xx_and_only_documented_error_shapes(
    emulator: EmulatorServer, label: str, data: st.DataObject
) -> None:
    case = data.draw(OPERATIONS[label].as_strategy(generation_mode=GenerationMode.POSITIVE))
    response = case.call(base_url=emulator.url, headers=AUTH, timeout=10)
    case.validate_response(response, checks=[not_a_server_error])
    if 400 <= response.status_code < 500:
        problem = error_shape_problem(case.path, response.status_code, response.content)
        assert problem is None, problem


def test_the_emulator_schema_describes_no_bodies(emulator: EmulatorServer) -> None:
    """Why the bodies are generated below: the schema knows the paths, not what they take."""
    operations = [op for ops in emulator.app.openapi()["paths"].values() for op in ops.values()]
    assert operations and not any("requestBody" in op for op in operations)


# -- the emulator over HTTP: bodies from the seeds' fields plus garbage -----------------------

roles = st.sampled_from(["user", "assistant", "system", "tool"]) | texts | json_values
contents = st.text(max_size=40) | st.sampled_from(
    ["Welche Kündigungsfrist gilt?", "get_weather für Berlin", ""]
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles, "content": contents | json_values},
        optional={"name": texts, "tool_call_id": texts, "tool_calls": json_values, "garbage": json_values},
    )
    | json_values,
    max_size=3,
)
tools = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("function") | texts,
            "function": st.fixed_dictionaries(
                {"name": st.sampled_from(["get_weather", "f", "bad name!", ""]) | texts},
                optional={
                    "description": texts,
                    "parameters": st.just({"type": "object", "properties": {"city": {"type": "string"}}})
                    | json_values,
                },
            )
            | json_values,
        },
    )
    | json_values,
    max_size=2,
)
numbers = (
    st.none() | st.integers(-5, 10**6) | st.floats(allow_nan=False, allow_infinity=False, width=32) | texts
)


def documented_or_garbage(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    body = st.fixed_dictionaries({}, optional={**fields, "unknown_field": json_values})
    return body | json_values | st.just([])


ASSISTANT_BODY = documented_or_garbage(
    {"assistant_id": st.just(ASSISTANT_ID) | texts, "messages": messages, "user_id": st.none() | texts}
)
COMPLETION_BODY = documented_or_garbage(
    {
        "model": st.none() | texts,
        "messages": messages,
        "temperature": numbers,
        "top_p": numbers,
        "n": st.none() | st.integers(-1, 4) | texts,
        "stream": st.none() | st.booleans() | texts,
        "stop": st.none() | texts | st.lists(texts, max_size=2),
        "max_tokens": st.none() | st.integers(-1, 50) | texts,
        "presence_penalty": numbers,
        "frequency_penalty": numbers,
        "tools": tools,
        "tool_choice": st.sampled_from(["none", "auto", "required"]) | json_values,
        "session_id": st.none() | texts,
    }
)
ASYNC_BODY = documented_or_garbage(
    {
        "messages": messages,
        "model": st.none() | texts,
        "stream": st.booleans() | texts,
        "tools": tools,
        "tool_choice": st.sampled_from(["none", "auto", "required"]) | json_values,
        "tool_context": json_values,
        "mcp_servers": json_values,
        "response_format": st.sampled_from(
            [
                {"type": "text"},
                {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            ]
        )
        | json_values,
        "system": json_values,
        "thinking": st.sampled_from([{"enabled": True}, {"type": "enabled", "budget_tokens": 3}])
        | json_values,
        "priority": numbers,
        "seed": numbers,
        "min_p": numbers,
        "top_p": numbers,
        "temperature": numbers,
        "top_k": numbers,
        "repetition_penalty": numbers,
        "presence_penalty": numbers,
        "frequency_penalty": numbers,
        "max_tokens": st.none() | st.integers(-1, 50) | texts,
        "correlation_id": st.none() | texts,
    }
)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20) as client:
        yield client


def encode(body: Any, raw: bytes | None) -> bytes:
    return raw if raw is not None else json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


def check_answer(http: httpx.Client, request: httpx.Request) -> tuple[int, bytes]:
    with http.stream(
        request.method, request.url, headers=request.headers, content=request.content
    ) as response:
        content = b""
        for piece in response.iter_bytes():
            content += piece
            assert len(content) < 4 << 20, "an answer beyond 4 MiB for a small request"
    assert response.status_code < 500, f"{response.status_code}: {content[:300]!r}"
    path = request.url.path
    if 400 <= response.status_code < 500:
        problem = error_shape_problem(path, response.status_code, content)
        assert problem is None, problem
        return response.status_code, content
    kind = response.headers.get("content-type", "")
    # A 2xx answer must be one the client reads without an error.
    if "x-ndjson" in kind:
        lines = NDJSONLines()
        for line in lines.feed(content) + lines.close():
            parse_chunk(parse_object(line))
    elif "event-stream" in kind:
        sse = SSEDecoder()
        for event in sse.feed(content):
            parse_completion_event(event)
    elif path.endswith("/async"):
        parse_stream_handle(content)
    elif path.endswith(("/status", "/cancel")):
        parse_stream_status(content)
    elif path.startswith("/agents"):
        parse_answer(content)
    else:
        parse_completion(content)
    return response.status_code, content


raw_bodies = (
    st.none()
    | st.none()
    | st.none()
    | st.sampled_from(
        [b"", b"{", b"[" * 5000 + b"]" * 5000, b"\xff\xfe", b"null", b'"text"', b'{"messages": NaN}']
    )
)
queries = st.none() | texts


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(ASSISTANT_PATHS),
    body=ASSISTANT_BODY,
    raw=raw_bodies,
    thread_id=queries,
    auth=st.sampled_from([AUTH, {}, {"api-key": "sk-wrong"}]),
)
def test_generated_assistant_requests(
    emulator: EmulatorServer,
    http: httpx.Client,
    path: str,
    body: Any,
    raw: bytes | None,
    thread_id: str | None,
    auth: dict[str, str],
) -> None:
    params = {"thread_id": thread_id} if thread_id is not None else None
    request = http.build_request(
        "POST",
        emulator.url + path,
        params=params,
        content=encode(body, raw),
        headers={**auth, "content-type": "application/json"},
    )
    check_answer(http, request)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=COMPLETION_BODY,
    raw=raw_bodies,
    accept=st.sampled_from(["application/json", "text/event-stream", "*/*", "text/html"]),
    auth=st.sampled_from([AUTH, AUTH, {"authorization": "Basic x"}]),
)
def test_generated_completion_requests(
    emulator: EmulatorServer,
    http: httpx.Client,
    body: Any,
    raw: bytes | None,
    accept: str,
    auth: dict[str, str],
) -> None:
    request = http.build_request(
        "POST",
        emulator.url + "/api/v1/chat/completions",
        content=encode(body, raw),
        headers={**auth, "content-type": "application/json", "accept": accept},
    )
    check_answer(http, request)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=ASYNC_BODY, raw=raw_bodies, stream_id=queries)
def test_generated_async_stream_starts(
    emulator: EmulatorServer, http: httpx.Client, body: Any, raw: bytes | None, stream_id: str | None
) -> None:
    params = {"stream_id": stream_id} if stream_id is not None else None
    request = http.build_request(
        "POST",
        emulator.url + "/api/v1/messages/async",
        params=params,
        content=encode(body, raw),
        headers={**AUTH, "content-type": "application/json"},
    )
    status, content = check_answer(http, request)
    if status == 202:  # the stream it started answers status, observation and cancel as documented
        stream_id = json.loads(content)["stream_id"]
        for suffix, method in (("status", "GET"), ("cancel", "POST"), ("status", "GET")):
            check_answer(
                http,
                http.build_request(
                    method, f"{emulator.url}/api/v1/messages/async/{stream_id}/{suffix}", headers=AUTH
                ),
            )


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    stream_id=st.text(min_size=1, max_size=20).filter(lambda s: s not in (".", "..")),
    suffix=st.sampled_from(["status", "stream", "cancel"]),
    last_event_id=st.none() | header_text,
    query_id=st.none() | texts,
)
def test_generated_async_stream_lookups(
    emulator: EmulatorServer,
    http: httpx.Client,
    stream_id: str,
    suffix: str,
    last_event_id: str | None,
    query_id: str | None,
) -> None:
    from urllib.parse import quote

    headers = {**AUTH}
    if last_event_id is not None:
        headers["last-event-id"] = last_event_id
    params = {"last_event_id": query_id} if query_id is not None else None
    method = "POST" if suffix == "cancel" else "GET"
    url = f"{emulator.url}/api/v1/messages/async/{quote(stream_id, safe='')}/{suffix}"
    check_answer(http, http.build_request(method, url, headers=headers, params=params))
