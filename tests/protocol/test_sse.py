"""The Server-Sent Events decoder, sans I/O, against the WHATWG "Interpreting an event stream"."""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haufe_copilot.errors import (
    APIResponseValidationError,
    ConfigurationError,
    HaufeCopilotError,
    ResponseTooLargeError,
)
from haufe_copilot.protocol.sse import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes, max_event_bytes: int = 1 << 20) -> list[ServerSentEvent]:
    decoder = SSEDecoder(max_event_bytes)
    out: list[ServerSentEvent] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.close())
    return out


def decode_in_pieces(data: bytes, cuts: list[int], max_event_bytes: int = 1 << 20) -> list[ServerSentEvent]:
    pieces = []
    previous = 0
    for cut in sorted(set(cuts)):
        pieces.append(data[previous:cut])
        previous = cut
    pieces.append(data[previous:])
    return decode(*pieces, max_event_bytes=max_event_bytes)


def reference(data: bytes) -> tuple[list[ServerSentEvent], str | None, int | None]:
    """The spec's algorithm, written the slow and obvious way, on the whole stream at once."""
    text = data.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the last piece has no line end: discarded
    events: list[ServerSentEvent] = []
    data_buffer = event_type = ""
    id_buffer = last_id = ""
    retry: int | None = None
    event_retry: int | None = None
    for line in lines:
        if line == "":
            last_id = id_buffer
            if data_buffer:
                events.append(
                    ServerSentEvent(event_type or "message", data_buffer[:-1], last_id or None, event_retry)
                )
            data_buffer = event_type = ""
            event_retry = None
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event_type = value
        elif name == "data":
            data_buffer += value + "\n"
        elif name == "id":
            if "\0" not in value:
                id_buffer = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = event_retry = int(value)
    return events, last_id or None, retry


# --- the rules, one by one ------------------------------------------------------------------


def test_an_event_with_data_and_the_default_type() -> None:
    assert decode(b"data: hello\n\n") == [ServerSentEvent(event="message", data="hello")]


def test_event_type_id_and_retry_are_carried() -> None:
    (event,) = decode(b"event: delta\nid: 7\nretry: 1500\ndata: x\n\n")
    assert event == ServerSentEvent(event="delta", data="x", id="7", retry=1500)


def test_comments_are_ignored() -> None:
    assert decode(b": keep-alive\n\n: another\ndata: a\n: inside\n\n") == [ServerSentEvent(data="a")]


def test_multi_line_data_is_joined_with_newlines_and_the_last_one_removed() -> None:
    assert decode(b"data: one\ndata: two\ndata:\ndata: four\n\n")[0].data == "one\ntwo\n\nfour"


def test_only_one_leading_space_of_a_value_is_removed() -> None:
    assert decode(b"data:x\n\n")[0].data == "x"
    assert decode(b"data:  x \n\n")[0].data == " x "
    assert decode(b"event:  spaced\ndata: y\n\n")[0].event == " spaced"


def test_a_colon_in_the_value_stays() -> None:
    assert decode(b'data: {"a": "b:c"}\n\n')[0].data == '{"a": "b:c"}'


def test_a_line_without_colon_is_a_field_with_an_empty_value() -> None:
    assert decode(b"data\n\n") == [ServerSentEvent(data="")]
    assert decode(b"data\ndata\n\n") == [ServerSentEvent(data="\n")]
    assert decode(b"event\ndata: z\n\n") == [ServerSentEvent(event="message", data="z")]


@pytest.mark.parametrize("ending", [b"\n", b"\r", b"\r\n"])
def test_every_line_ending(ending: bytes) -> None:
    stream = ending.join([b"event: e", b"data: a", b"data: b", b"", b"data: c", b"", b""])
    assert decode(stream) == [ServerSentEvent(event="e", data="a\nb"), ServerSentEvent(data="c")]


def test_mixed_line_endings() -> None:
    assert decode(b"data: a\rdata: b\r\ndata: c\n\r\n") == [ServerSentEvent(data="a\nb\nc")]


def test_a_cr_at_the_end_of_a_chunk_and_lf_at_the_start_of_the_next_are_one_line_end() -> None:
    # Were the LF taken for a second line end, it would be a blank line and dispatch "a" alone.
    assert decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [ServerSentEvent(data="a\nb")]
    assert decode(b"data: a\r", b"\n", b"\r\n") == [ServerSentEvent(data="a")]


def test_a_cr_at_the_end_of_a_chunk_followed_by_a_cr_is_a_blank_line() -> None:
    assert decode(b"data: a\r", b"\rdata: b\r\r") == [ServerSentEvent(data="a"), ServerSentEvent(data="b")]


def test_two_lfs_after_a_cr_are_one_line_end_and_one_blank_line() -> None:
    assert decode(b"data: a\r", b"\n\n") == [ServerSentEvent(data="a")]


def test_a_leading_bom_is_skipped_even_split_across_feeds() -> None:
    expected = [ServerSentEvent(event="e", data="x")]
    assert decode(b"\xef\xbb\xbfevent: e\ndata: x\n\n") == expected
    assert decode(b"\xef", b"\xbb", b"\xbf", b"event: e\ndata: x\n\n") == expected
    assert decode(b"\xef\xbb", b"\xbfevent: e\n", b"data: x\n\n") == expected


def test_only_one_bom_and_only_at_the_very_start_is_skipped() -> None:
    # A second BOM is part of the first line's field name, which is then unknown and ignored.
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []
    assert decode(b"data: x\n\n\xef\xbb\xbfdata: y\n\n") == [ServerSentEvent(data="x")]
    assert decode(b"data: \xef\xbb\xbfz\n\n") == [ServerSentEvent(data="\ufeffz")]


def test_a_bom_prefix_that_is_not_a_bom_is_text() -> None:
    assert decode(b"\xef", b"\xbbdata: x\n\n") == []  # "\ufffd\ufffddata" is an unknown field
    assert decode(b"\xef\xbb", b"\n", b"data: y\n\n") == [ServerSentEvent(data="y")]


def last_event_id(decoder: SSEDecoder) -> str | None:
    """The stream's last event ID, as an event of the next connection carries it. This ends the
    decoder's connection (an unfinished block is dropped, as a cut connection drops it) and leaves
    it at the start of another."""
    decoder.close()
    (probe,) = decoder.feed(b"data: probe\n\n")
    decoder.close()
    return probe.id


def test_an_id_containing_nul_is_ignored() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n") == [
        ServerSentEvent(data="a", id="1"),
        ServerSentEvent(data="b", id="1"),
    ]
    assert last_event_id(decoder) == "1"


def test_the_last_event_id_persists_and_is_set_by_a_block_without_data() -> None:
    decoder = SSEDecoder()
    assert last_event_id(decoder) is None
    assert decoder.feed(b"id: 1\ndata: a\n\n") == [ServerSentEvent(data="a", id="1")]
    assert last_event_id(decoder) == "1"
    assert decoder.feed(b"data: b\n\n") == [ServerSentEvent(data="b", id="1")]  # carried over
    assert decoder.feed(b"id: 2\n\n") == []  # nothing dispatched, but the id counts
    assert last_event_id(decoder) == "2"
    assert decoder.feed(b"data: c\n\n") == [ServerSentEvent(data="c", id="2")]
    assert decoder.feed(b"id\n\n") == []  # an empty id resets it
    assert last_event_id(decoder) is None
    assert decoder.feed(b"data: d\n\n") == [ServerSentEvent(data="d", id=None)]


def test_an_id_takes_effect_at_the_blank_line_not_before() -> None:
    before, after = SSEDecoder(), SSEDecoder()
    for decoder in (before, after):
        decoder.feed(b"id: 1\n\nid: 2\n")
    assert last_event_id(before) == "1"
    after.feed(b"\n")
    assert last_event_id(after) == "2"


def test_an_id_in_an_unfinished_block_is_dropped_at_close_and_the_last_id_survives_it() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    assert decoder.close() == []
    assert last_event_id(decoder) == "1"
    # the next connection of the same stream: its own BOM is skipped, and "2" never counted
    assert decoder.feed(b"\xef\xbb\xbfdata: c\n\n") == [ServerSentEvent(data="c", id="1")]


def test_retry_only_when_all_ascii_digits() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 3000\ndata: a\n\n") == [ServerSentEvent(data="a", retry=3000)]
    for bad in (b"retry: 12a", b"retry: -1", b"retry: 1.5", b"retry:", b"retry: \xd9\xa1", b"retry:  5"):
        assert decoder.feed(bad + b"\ndata: b\n\n") == [ServerSentEvent(data="b")]
    assert decoder.feed(b"retry: 0042\n\n") == []  # a block with only retry dispatches nothing
    assert decoder.feed(b"retry: " + b"9" * 5000 + b"\ndata: c\n\n") == [ServerSentEvent(data="c")]


def test_unknown_fields_are_ignored() -> None:
    assert decode(b"foo: bar\nDATA: no\nData: no\ndata : no\ndata: yes\nx\n\n") == [
        ServerSentEvent(data="yes")
    ]


def test_a_blank_line_with_no_data_dispatches_nothing_and_resets_the_type() -> None:
    assert decode(b"event: ping\n\n\n\ndata: a\n\n") == [ServerSentEvent(event="message", data="a")]


def test_the_event_type_does_not_leak_into_the_next_event() -> None:
    assert decode(b"event: e\ndata: a\n\ndata: b\n\n") == [
        ServerSentEvent(event="e", data="a"),
        ServerSentEvent(event="message", data="b"),
    ]


def test_an_empty_event_type_is_message() -> None:
    assert decode(b"event:\ndata: a\n\n")[0].event == "message"


def test_an_error_event() -> None:
    (event,) = decode(b'event: error\ndata: {"error_code": "rate_limit_gateway", "detail": "slow"}\n\n')
    assert event.event == "error"
    assert event.json() == {"error_code": "rate_limit_gateway", "detail": "slow"}


def test_the_done_sentinel_is_an_ordinary_event() -> None:
    events = decode(b'data: {"a": 1}\n\ndata: [DONE]\n\n')
    assert events == [ServerSentEvent(data='{"a": 1}'), ServerSentEvent(data="[DONE]")]
    assert events[0].json() == {"a": 1}


def test_json_of_data_that_is_not_json_is_a_validation_error_with_a_preview() -> None:
    with pytest.raises(APIResponseValidationError, match=r"not valid JSON: '\[DONE\]'"):
        ServerSentEvent(data="[DONE]").json()
    with pytest.raises(APIResponseValidationError, match="…"):
        ServerSentEvent(data="x" * 1000).json()
    with pytest.raises(APIResponseValidationError):
        ServerSentEvent(data="[" * 100_000).json()  # too deep for the json module


def test_an_unterminated_last_event_is_not_dispatched() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b\n") == [ServerSentEvent(data="a")]
    assert decoder.close() == []
    assert decode(b"data: a") == []


def test_the_bound_is_enforced_before_the_newline_arrives() -> None:
    decoder = SSEDecoder(max_event_bytes=1024)
    decoder.feed(b"data: " + b"x" * 1000)
    with pytest.raises(ResponseTooLargeError, match="max_event_bytes=1024"):
        decoder.feed(b"x" * 100)


def test_the_bound_counts_the_whole_pending_event_across_lines() -> None:
    decoder = SSEDecoder(max_event_bytes=1024)
    for _ in range(10):  # 10 x 101 bytes of data pending
        assert decoder.feed(b"data: " + b"y" * 100 + b"\n") == []
    with pytest.raises(ResponseTooLargeError, match="1024"):
        decoder.feed(b"data: " + b"y" * 100 + b"\n")


def test_the_bound_refuses_a_long_line_that_arrives_whole() -> None:
    with pytest.raises(ResponseTooLargeError):
        decode(b"event: " + b"e" * 100 + b"\n\n", max_event_bytes=64)
    with pytest.raises(ResponseTooLargeError):
        decode(b": " + b"c" * 100, max_event_bytes=64)


def test_events_under_the_bound_are_fine_however_many() -> None:
    decoder = SSEDecoder(max_event_bytes=64)
    out = decoder.feed(b"data: " + b"z" * 50 + b"\n\n" * 1 + (b"data: " + b"z" * 50 + b"\n\n") * 100)
    assert len(out) == 101


def test_a_large_event_in_many_small_pieces_is_linear() -> None:
    payload = b"data: " + b"z" * 4_000_000 + b"\n" + b"data: " + b"w" * 1_000_000 + b"\n\n"
    decoder = SSEDecoder()
    started = time.perf_counter()
    out = []
    for i in range(0, len(payload), 500):
        out.extend(decoder.feed(payload[i : i + 500]))
    elapsed = time.perf_counter() - started
    assert len(out) == 1 and len(out[0].data) == 5_000_001
    assert elapsed < 5.0  # quadratic re-concatenation would take minutes


def test_invalid_utf8_is_replaced() -> None:
    assert decode(b"data: a\xffb\xc3\n\n")[0].data == "a\ufffdb\ufffd"
    assert decode(b"event: \xed\xa0\x80\ndata: x\n\n")[0].event == "\ufffd\ufffd\ufffd"
    assert decode(b"data: \xe2\x82\ndata: ok\n\n")[0].data == "\ufffd\nok"


def test_a_multi_byte_character_split_across_feeds() -> None:
    raw = "data: Straße in München 😀\n\n".encode()
    for cut in range(len(raw) + 1):
        assert decode(raw[:cut], raw[cut:]) == [ServerSentEvent(data="Straße in München 😀")]


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ConfigurationError):
        SSEDecoder(0)


def test_decoding_is_fast() -> None:
    event = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"Wort "}}]}\n\n'
    stream = event * 20_000
    chunks = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]
    best = float("inf")
    for _ in range(3):
        decoder = SSEDecoder()
        started = time.perf_counter()
        count = sum(len(decoder.feed(chunk)) for chunk in chunks)
        best = min(best, time.perf_counter() - started)
    assert count == 20_000
    assert best < 0.5  # ~20 ms on a developer machine; generous for a loaded CI runner


# --- properties -----------------------------------------------------------------------------

# Any text without CR or LF (they end lines); non-ASCII, NUL and colons included.
line_text = st.text(
    alphabet=st.characters(exclude_characters="\r\n", codec="utf-8"), max_size=12
) | st.sampled_from(["München", "Straße", "😀 ok", "日本語", "a: b", " lead", ""])
endings = st.sampled_from([b"\n", b"\r", b"\r\n"])


@dataclass
class Block:
    event: str | None
    id: str | None
    retry: int | None
    data: list[str] | None  # None: a block without data (not dispatched)
    comments: list[str]


blocks = st.builds(
    Block,
    event=st.none() | line_text,
    id=st.none() | line_text.filter(lambda s: "\0" not in s),
    retry=st.none() | st.integers(min_value=0, max_value=10**6),
    data=st.none() | st.lists(line_text, min_size=1, max_size=4),
    comments=st.lists(line_text, max_size=2),
)


def field(draw: st.DrawFn, name: str, value: str) -> str:
    if value == "" and draw(st.booleans()):
        return name  # no colon at all
    if value.startswith(" ") or draw(st.booleans()):
        return f"{name}: {value}"  # the one space is removed, a value's own leading space stays
    return f"{name}:{value}"


@st.composite
def valid_streams(draw: st.DrawFn) -> tuple[bytes, list[ServerSentEvent], str | None]:
    chosen = draw(st.lists(blocks, max_size=6))
    out = bytearray(b"\xef\xbb\xbf" if draw(st.booleans()) else b"")
    expected: list[ServerSentEvent] = []
    last_id: str | None = None

    def line(text: str) -> None:
        ending = draw(endings)
        if text == "" and ending == b"\n" and out.endswith(b"\r"):
            ending = b"\r"  # else the CR and this LF would be one CRLF, not two line ends
        out.extend(text.encode("utf-8") + ending)

    for block in chosen:
        lines = [":" + comment for comment in block.comments]
        if block.event is not None:
            lines.append(field(draw, "event", block.event))
        if block.id is not None:
            lines.append(field(draw, "id", block.id))
        if block.retry is not None:
            lines.append(f"retry: {block.retry}")
        data_lines = [field(draw, "data", d) for d in block.data or []]
        # the fields in any order, but the data lines in theirs
        order = draw(st.permutations([False] * len(lines) + [True] * len(data_lines)))
        others, datas = iter(draw(st.permutations(lines))), iter(data_lines)
        for is_data in order:
            line(next(datas) if is_data else next(others))
        line("")
        if block.id is not None:
            last_id = block.id or None
        if block.data is not None:
            expected.append(
                ServerSentEvent(block.event or "message", "\n".join(block.data), last_id, block.retry)
            )
        if draw(st.booleans()):
            line("")  # extra blank lines dispatch nothing
    if draw(st.booleans()):  # an unfinished event at the end: never dispatched
        out.extend(b"event: late\ndata: unfinished")
    return bytes(out), expected, last_id


@settings(max_examples=300, deadline=None)
@given(valid_streams(), st.data())
def test_any_split_of_a_valid_stream_decodes_to_the_same_events(
    case: tuple[bytes, list[ServerSentEvent], str | None], data: st.DataObject
) -> None:
    stream, expected, last_id = case
    assert reference(stream)[0] == expected  # the generator and the obvious reading agree
    assert decode(stream) == expected
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=16))
    assert decode_in_pieces(stream, cuts) == expected
    # byte by byte: every split inside a UTF-8 character, a BOM, and between CR and LF
    decoder = SSEDecoder()
    out = [event for i in range(len(stream)) for event in decoder.feed(stream[i : i + 1])]
    assert out == expected
    assert last_event_id(decoder) == last_id


# Bytes that are mostly SSE-like, so that the fields are really exercised.
sse_ish_bytes = st.lists(
    st.sampled_from(
        [
            *(b"data", b"data:", b"data: ", b"event:", b"id:", b"retry:", b"1", b":", b" ", b"x", b"\0"),
            *(b"\n", b"\r", b"\r\n", b"\xef\xbb\xbf", b"\xc3", b"\xa4", b"\xff", "ü".encode()),
        ]
    )
    | st.binary(max_size=6),
    max_size=40,
).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200), sse_ish_bytes), st.data())
def test_arbitrary_bytes_decode_as_the_spec_reads_them_however_split(
    data: bytes, draw: st.DataObject
) -> None:
    events, last_id, _ = reference(data)
    cuts = draw.draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=10))
    decoder = SSEDecoder()
    out = []
    previous = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out.extend(decoder.feed(data[previous:cut]))
        previous = cut
    assert out == events
    assert decoder.close() == []
    assert last_event_id(decoder) == last_id


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), sse_ish_bytes), st.lists(st.integers(0, 300), max_size=8))
def test_arbitrary_bytes_give_events_or_a_typed_error_never_another_exception(
    data: bytes, cuts: list[int]
) -> None:
    try:
        for event in decode_in_pieces(data, [c for c in cuts if c <= len(data)], max_event_bytes=16):
            with contextlib.suppress(APIResponseValidationError):
                event.json()
    except HaufeCopilotError:
        pass
