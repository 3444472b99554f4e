"""The NDJSON line splitter, its object parser and the assistant stream's line parser, sans I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haufe_copilot.errors import (
    APIResponseValidationError,
    HaufeCopilotError,
    InternalServerError,
    RateLimitError,
    ResponseTooLargeError,
)
from haufe_copilot.protocol.assistant import parse_chunk
from haufe_copilot.protocol.ndjson import NDJSONLines, parse_object
from haufe_copilot.types import StreamChunk

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=5)


def objects_of(lines: list[bytes]) -> list[dict[str, Any]]:
    return [parse_object(line) for line in lines]


def decode_in_pieces(data: bytes, cuts: list[int], max_line_bytes: int = 1 << 20) -> list[dict[str, Any]]:
    decoder = NDJSONLines(max_line_bytes)
    out: list[dict[str, Any]] = []
    previous = 0
    for cut in sorted(set(cuts)):
        out.extend(objects_of(decoder.feed(data[previous:cut])))
        previous = cut
    out.extend(objects_of(decoder.feed(data[previous:])))
    out.extend(objects_of(decoder.close()))
    return out


@st.composite
def encoded_streams(draw: st.DrawFn) -> tuple[list[dict[str, Any]], bytes, list[int]]:
    objects = draw(st.lists(json_objects, max_size=8))
    parts = []
    for obj in objects:
        line = json.dumps(obj, ensure_ascii=draw(st.booleans())).encode("utf-8")
        ending = draw(st.sampled_from([b"\n", b"\r\n"]))
        blank = draw(st.sampled_from([b"", b"\n", b"\r\n", b"  \n"]))
        parts.append(line + ending + blank)
    data = b"".join(parts)
    if parts and draw(st.booleans()):  # the last line may lack its newline
        data = data.rstrip(b"\r\n")
    cuts = draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=12))
    return objects, data, cuts


@settings(max_examples=300, deadline=None)
@given(encoded_streams())
def test_any_split_of_a_valid_stream_decodes_to_the_same_objects(
    case: tuple[list[Any], bytes, list[int]],
) -> None:
    objects, data, cuts = case
    assert decode_in_pieces(data, cuts) == objects
    # byte by byte: every split inside a UTF-8 character and between CR and LF
    assert decode_in_pieces(data, list(range(len(data)))) == objects


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_garbage_gives_a_typed_error_or_objects_never_another_exception(data: bytes, cuts: list[int]) -> None:
    try:
        objects = decode_in_pieces(data, [c for c in cuts if c <= len(data)], max_line_bytes=64)
        for obj in objects:
            parse_chunk(obj)
    except HaufeCopilotError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_text_that_is_not_json_is_a_validation_error(text: str) -> None:
    if not text.replace("\n", " ").strip():
        return  # a blank line, which NDJSON allows between objects
    try:
        json.loads(text)
    except ValueError:
        with pytest.raises(APIResponseValidationError):
            decode_in_pieces(text.replace("\n", " ").encode() + b"\n", [])


def test_a_line_over_the_bound_is_refused_before_its_newline_arrives() -> None:
    decoder = NDJSONLines(max_line_bytes=1024)
    decoder.feed(b'{"a": "' + b"x" * 1000)
    with pytest.raises(ResponseTooLargeError, match="1024"):
        decoder.feed(b"x" * 100)


def test_a_complete_line_over_the_bound_is_refused() -> None:
    decoder = NDJSONLines(max_line_bytes=16)
    with pytest.raises(ResponseTooLargeError):
        decoder.feed(b'{"content": "' + b"y" * 40 + b'"}\n')


def test_a_json_value_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(APIResponseValidationError, match="not a JSON object"):
        objects_of(NDJSONLines().feed(b"[1, 2]\n"))


def test_a_long_line_in_many_small_pieces_is_linear() -> None:
    decoder = NDJSONLines()
    payload = json.dumps({"content": "z" * 2_000_000}).encode() + b"\n"
    out = []
    for i in range(0, len(payload), 1000):
        out.extend(objects_of(decoder.feed(payload[i : i + 1000])))
    assert len(out) == 1 and len(out[0]["content"]) == 2_000_000


def test_an_error_line_becomes_its_typed_error() -> None:
    with pytest.raises(InternalServerError) as info:
        parse_chunk({"error_code": "internal_server_error", "detail": "Internal Server Error"})
    assert info.value.status_code == 500
    assert info.value.error_code == "internal_server_error"
    with pytest.raises(RateLimitError):
        parse_chunk({"error_code": "rate_limit_gateway", "detail": "Rate limit exceeded"})


def test_a_chunk_keeps_unknown_fields() -> None:
    chunk = parse_chunk(
        {
            "created_at": "2025-03-15T09:13:02.654321Z",
            "delta": {
                "content": "Während ",
                "role": "assistant",
                "sources": [
                    {
                        "content": "§ 622",
                        "meta_data": {"document_title": "BGB", "section": "§ 622", "page": 7},
                    }
                ],
                "new_delta_field": 1,
            },
            "message_id": "m",
            "thread_id": "t",
            "new_field": {"x": 1},
        }
    )
    assert isinstance(chunk, StreamChunk)
    assert chunk.model_extra == {"new_field": {"x": 1}}
    assert chunk.delta.model_extra == {"new_delta_field": 1}
    dumped = chunk.model_dump()
    assert dumped["delta"]["sources"][0]["meta_data"]["page"] == 7
    assert dumped["new_field"] == {"x": 1}


def test_a_chunk_missing_its_ids_is_a_validation_error() -> None:
    with pytest.raises(APIResponseValidationError, match="message_id"):
        parse_chunk({"delta": {"content": "x"}, "thread_id": "t"})


def test_pieces_of_other_bytes_types_are_read_as_bytes() -> None:
    """A transport may hand over bytearrays or memoryviews: the lines are bytes all the same."""
    decoder = NDJSONLines()
    lines = (
        decoder.feed(bytearray(b'{"a": 1}\n{"b"')) + decoder.feed(memoryview(b": 2}\n  \n")) + decoder.close()
    )
    assert lines == [b'{"a": 1}', b'{"b": 2}'] and all(type(line) is bytes for line in lines)


chunk_objects = st.fixed_dictionaries(
    {
        "message_id": st.text(max_size=8),
        "thread_id": st.text(max_size=8),
        "delta": st.fixed_dictionaries(
            {"content": st.text(max_size=12)}, optional={"role": st.sampled_from(["assistant", None])}
        ),
    },
    optional={"created_at": st.text(max_size=8), "meta_data": json_values},
)
#: Lines a server might send among chunks: malformed, an error, not a chunk, two on one line.
odd_lines = st.sampled_from(
    [
        b"{not json",
        b'{"error_code": "internal_error", "detail": "x"}',
        b"[1, 2]",
        b'{"message_id": "m"}',
        b'{"message_id": "m", "thread_id": "t", "delta": {"content": "a"}}, {"message_id": "m"}',
        b'"text',
        b"}",
    ]
)


@given(st.lists(st.one_of(chunk_objects.map(lambda o: json.dumps(o).encode()), odd_lines), max_size=16))
def test_lines_parsed_together_are_what_each_parses_to_alone(lines: list[bytes]) -> None:
    """`parse_chunk_lines` gives the chunks `parse_chunk_line` gives line by line, or None when
    any line would fail alone (the caller then reads them one by one)."""
    from haufe_copilot.errors import APIError
    from haufe_copilot.protocol.assistant import parse_chunk_line, parse_chunk_lines

    alone: list[StreamChunk] | None = []
    for line in lines:
        try:
            alone.append(parse_chunk_line(line))  # type: ignore[union-attr]
        except APIError:
            alone = None
            break
    together = parse_chunk_lines(lines)
    if alone is None:
        assert together is None
    else:
        assert together == alone
