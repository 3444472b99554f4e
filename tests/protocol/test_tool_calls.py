"""Streamed tool calls: assembling their fragments, and reading their arguments while they stream."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haufe_copilot.errors import APIResponseValidationError
from haufe_copilot.protocol.sse import SSEDecoder
from haufe_copilot.protocol.tool_calls import AssembledToolCall, ToolCallAccumulator, partial_arguments

# --- the accumulator ------------------------------------------------------------------------


def openai_delta(fragment: Any) -> Any:
    """A flat tool-call fragment (`index`, `id` or `tool_call_id`, `name`, `arguments`, as some
    servers send them) in the OpenAI shape the accumulator reads; anything else as it is."""
    if not isinstance(fragment, dict):
        return fragment
    call_id = fragment.get("id") if fragment.get("id") is not None else fragment.get("tool_call_id")
    function = {key: fragment[key] for key in ("name", "arguments") if key in fragment}
    return {"index": fragment.get("index"), "id": call_id, "function": function}


def test_the_openai_fragments_of_one_call() -> None:
    acc = ToolCallAccumulator()
    acc.add_openai_delta(
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    )
    for piece in ['{"ci', 'ty": "Ber', 'lin"}']:
        acc.add_openai_delta({"index": 0, "function": {"arguments": piece}})
    assert acc.calls() == [AssembledToolCall(0, "call_1", "get_weather", '{"city": "Berlin"}')]
    assert acc.calls()[0].parsed_arguments() == {"city": "Berlin"}


def test_parallel_calls_interleaved_by_index_come_out_in_index_order() -> None:
    acc = ToolCallAccumulator()
    acc.add_openai_delta({"index": 1, "id": "b", "function": {"name": "two", "arguments": '{"x":'}})
    acc.add_openai_delta({"index": 0, "id": "a", "function": {"name": "one", "arguments": "{"}})
    acc.add_openai_delta({"index": 1, "function": {"arguments": " 2}"}})
    acc.add_openai_delta({"index": 0, "function": {"arguments": "}"}})
    assert [(c.index, c.id, c.name, c.parsed_arguments()) for c in acc.calls()] == [
        (0, "a", "one", {}),
        (1, "b", "two", {"x": 2}),
    ]


def test_the_flat_shape() -> None:
    acc = ToolCallAccumulator()
    acc.add_openai_delta(
        openai_delta({"index": 0, "id": "call_1", "name": "get_weather", "arguments": '{"ci'})
    )
    acc.add_openai_delta(openai_delta({"index": 0, "arguments": 'ty": "Köln"}'}))
    acc.add_openai_delta(
        openai_delta(
            {"event": "tool_call", "index": 1, "tool_call_id": "call_2", "name": "now", "arguments": None}
        )
    )
    assert acc.calls() == [
        AssembledToolCall(0, "call_1", "get_weather", '{"city": "Köln"}'),
        AssembledToolCall(1, "call_2", "now", ""),
    ]


def test_a_missing_index_belongs_to_the_most_recent_call_or_to_index_0() -> None:
    acc = ToolCallAccumulator()
    acc.add_openai_delta({"id": "a", "function": {"name": "f", "arguments": '{"k"'}})
    acc.add_openai_delta({"function": {"arguments": ": 1}"}})
    acc.add_openai_delta({"index": 3, "id": "b", "function": {"name": "g"}})
    acc.add_openai_delta({"function": {"arguments": "{}"}})
    assert [(c.index, c.id, c.name, c.arguments) for c in acc.calls()] == [
        (0, "a", "f", '{"k": 1}'),
        (3, "b", "g", "{}"),
    ]


def test_a_missing_index_with_a_new_id_starts_a_new_call() -> None:
    acc = ToolCallAccumulator()
    acc.add(index=None, id="a", name="f", arguments="{}")
    acc.add(index=None, id="a", arguments="")  # the same id again: the same call
    acc.add(index=None, id="b", name="g", arguments='{"q": 1}')
    assert [(c.index, c.id, c.name, c.arguments) for c in acc.calls()] == [
        (0, "a", "f", "{}"),
        (1, "b", "g", '{"q": 1}'),
    ]


def test_an_empty_first_fragment() -> None:
    for first in ({"arguments": ""}, {"arguments": None}, {}):
        acc = ToolCallAccumulator()
        acc.add_openai_delta({"index": 0, "id": "c", "function": {"name": "f", **first}})
        assert acc.calls()[0].parsed_arguments() == {}
        acc.add_openai_delta({"index": 0, "function": {"arguments": '{"a": true}'}})
        assert acc.calls()[0].parsed_arguments() == {"a": True}


def test_the_name_may_arrive_after_the_id() -> None:
    acc = ToolCallAccumulator()
    acc.add_openai_delta({"index": 0, "id": "c", "type": "function"})
    acc.add_openai_delta({"index": 0, "function": {"name": "late", "arguments": "{}"}})
    assert acc.calls() == [AssembledToolCall(0, "c", "late", "{}")]


def test_a_call_without_an_id_gets_a_stable_one() -> None:
    acc = ToolCallAccumulator()
    acc.add_openai_delta({"index": 2, "function": {"name": "f", "arguments": "{}"}})
    assert acc.calls()[0].id == "call_2"
    assert acc.calls() == acc.calls()
    acc.add_openai_delta({"index": 2, "id": "real"})  # an id arriving late still counts
    assert acc.calls()[0].id == "real"


def test_the_first_id_of_a_call_wins() -> None:
    acc = ToolCallAccumulator()
    acc.add(index=0, id="first", name="f")
    acc.add(index=0, id="first", arguments="{")
    acc.add(index=0, id="other", arguments="}")
    assert acc.calls() == [AssembledToolCall(0, "first", "f", "{}")]


def test_a_repeated_name_is_not_doubled_but_name_fragments_are_joined() -> None:
    acc = ToolCallAccumulator()
    acc.add_openai_delta({"index": 0, "id": "c", "function": {"name": "get_weather", "arguments": "{"}})
    acc.add_openai_delta({"index": 0, "function": {"name": "get_weather", "arguments": "}"}})
    acc.add_openai_delta({"index": 1, "id": "d", "function": {"name": "get_"}})
    acc.add_openai_delta({"index": 1, "function": {"name": "time"}})
    acc.add_openai_delta({"index": 1, "function": {"name": ""}})
    assert [c.name for c in acc.calls()] == ["get_weather", "get_time"]


def test_arguments_sent_as_an_object_are_tolerated() -> None:
    acc = ToolCallAccumulator()
    acc.add_openai_delta({"index": 0, "id": "c", "function": {"name": "f", "arguments": {"ort": "Köln"}}})
    assert acc.calls()[0].parsed_arguments() == {"ort": "Köln"}


def test_no_fragments_no_calls() -> None:
    assert ToolCallAccumulator().calls() == []


@pytest.mark.parametrize(
    "delta",
    [
        {"index": "0"},
        {"index": True},
        {"index": -1},
        {"index": 1.0},
        {"index": 0, "id": 5},
        {"index": 0, "function": "f"},
        {"index": 0, "function": {"name": ["f"]}},
        {"index": 0, "function": {"arguments": 3}},
    ],
)
def test_a_fragment_of_the_wrong_shape_is_a_validation_error(delta: dict[str, Any]) -> None:
    with pytest.raises(APIResponseValidationError, match="tool call fragment"):
        ToolCallAccumulator().add_openai_delta(delta)


def test_a_flat_fragment_that_is_not_an_object_is_a_validation_error() -> None:
    with pytest.raises(APIResponseValidationError):
        ToolCallAccumulator().add_openai_delta(openai_delta([1, 2]))
    with pytest.raises(APIResponseValidationError):
        ToolCallAccumulator().add_openai_delta(openai_delta({"index": 0, "name": 7}))


def test_parsed_arguments() -> None:
    assert AssembledToolCall(0, "c", "f", "").parsed_arguments() == {}
    assert AssembledToolCall(0, "c", "f", "  \n").parsed_arguments() == {}
    assert AssembledToolCall(0, "c", "f", '{"a": [1, "ü"]}').parsed_arguments() == {"a": [1, "ü"]}
    with pytest.raises(
        APIResponseValidationError, match=r"'get_weather'.*not valid JSON: '\{\"city\": \"Ber'"
    ):
        AssembledToolCall(0, "c", "get_weather", '{"city": "Ber').parsed_arguments()
    with pytest.raises(APIResponseValidationError, match=r"'f'.*not a JSON object: '\[1, 2\]'"):
        AssembledToolCall(0, "c", "f", "[1, 2]").parsed_arguments()
    with pytest.raises(APIResponseValidationError):
        AssembledToolCall(0, "c", "f", "[" * 100_000).parsed_arguments()


# --- partial arguments ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("   ", {}),
        ("{", {}),
        ('{"ci', {}),
        ('{"city"', {}),
        ('{"city": ', {}),
        ('{"city": "Ber', {"city": "Ber"}),
        ('{"city": "Berlin", ', {"city": "Berlin"}),
        ('{"a": 1, "b": [1, 2', {"a": 1, "b": [1, 2]}),
        ('{"a": 1, "b": [1, 2]}', {"a": 1, "b": [1, 2]}),
        ('{"a": {"b": [1, {"c": "d', {"a": {"b": [1, {"c": "d"}]}}),
        ('{"a": {"b', {"a": {}}),
        ('{"a": [', {"a": []}),
        ('{"a": tr', {}),
        ('{"a": true', {"a": True}),
        ('{"a": null, "b": fal', {"a": None}),
        ('{"n": -', {}),
        ('{"n": 12', {"n": 12}),
        ('{"n": 1.', {"n": 1}),
        ('{"n": 1.5e', {"n": 1.5}),
        ('{"s": "x\\', {"s": "x"}),
        ('{"s": "x\\\\', {"s": "x\\"}),
        ('{"s": "x\\u00', {"s": "x"}),
        ('{"s": "x\\u00fc', {"s": "xü"}),
        ('{"s": "x\\\\u00', {"s": "x\\u00"}),
        ('{"s": "\\ud83d', {"s": ""}),
        ('{"s": "\\ud83d\\ude0', {"s": ""}),
        ('{"s": "\\ud83d\\ude00', {"s": "😀"}),
        ('{"s": "Straße in Münch', {"s": "Straße in Münch"}),
        ("[1, 2", {}),
        ('"text"', {}),
        ("not json", {}),
        ('{"a": 1} trailing', {"a": 1}),
        ('{"a": 1 "b": 2}', {"a": 1}),
        ('{"a": "tab\there", "b": 1}', {}),
        ('{"a": 01}', {"a": 0}),
        ("{" * 5000, {}),
    ],
)
def test_partial_arguments(text: str, expected: dict[str, Any]) -> None:
    assert partial_arguments(text) == expected


def test_partial_arguments_of_very_deep_nesting_stops_at_a_depth_and_does_not_raise() -> None:
    value = partial_arguments('{"a": ' + "[" * 5000 + "1")["a"]
    depth = 0
    while value:
        value, depth = value[0], depth + 1
    assert value == [] and 50 <= depth <= 200


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["München", "Straße", "😀", "Grüße 👋🏽", "日本", 'quote " and \\ backslash', "\n\t"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
arguments = st.dictionaries(
    st.text(max_size=8) | st.sampled_from(["city", "straße", "ort_😀"]), json_values, max_size=5
)


@settings(max_examples=200, deadline=None)
@given(arguments, st.booleans())
def test_partial_arguments_of_every_prefix(args: dict[str, Any], ensure_ascii: bool) -> None:
    text = json.dumps(args, ensure_ascii=ensure_ascii)
    assert partial_arguments(text) == args
    for end in range(len(text)):
        seen = partial_arguments(text[:end])
        assert isinstance(seen, dict)
        assert set(seen) <= set(args)
        for key, value in seen.items():
            if isinstance(args[key], str):  # a string shown while streaming is a prefix of the final one
                assert isinstance(value, str) and args[key].startswith(value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.text(alphabet='{}[]",:0123456789.eE-+ \\utrfalsn', max_size=60))
def test_partial_arguments_never_raises(text: str) -> None:
    assert isinstance(partial_arguments(text), dict)
    assert isinstance(partial_arguments("{" + text), dict)
    assert isinstance(partial_arguments('{"k": ' + text), dict)


# --- whole streams: SSE bytes split anywhere, decoded, assembled ----------------------------


@st.composite
def tool_call_streams(
    draw: st.DrawFn,
) -> tuple[list[tuple[str, str, dict[str, Any]]], list[tuple[int, int, str]]]:
    """1-3 calls, and the fragments (call index, fragment number, argument piece) interleaved."""
    count = draw(st.integers(min_value=1, max_value=3))
    names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=16)
    calls = [
        (f"call_{i}_{draw(st.text(alphabet='abcXYZ019', max_size=8))}", draw(names), draw(arguments))
        for i in range(count)
    ]
    per_call: list[list[tuple[int, int, str]]] = []
    for i, (_, _, args) in enumerate(calls):
        text = json.dumps(args, ensure_ascii=draw(st.sampled_from([False, False, True])))
        cuts = sorted(set(draw(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=8))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        per_call.append([(i, n, piece) for n, piece in enumerate(pieces)])
    # interleave, keeping each call's own order
    order = draw(st.permutations([i for i, fragments in enumerate(per_call) for _ in fragments]))
    iterators = [iter(fragments) for fragments in per_call]
    return calls, [next(iterators[i]) for i in order]


def split_anywhere(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c for c in cuts if 0 <= c <= len(data)}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def sse(data: Any, ending: bytes, event: str | None = None) -> bytes:
    head = f"event: {event}".encode() + ending if event else b""
    return head + b"data: " + json.dumps(data, ensure_ascii=False).encode() + ending + ending


def assert_assembled(acc: ToolCallAccumulator, calls: list[tuple[str, str, dict[str, Any]]]) -> None:
    assembled = acc.calls()
    assert [(c.index, c.id, c.name) for c in assembled] == [
        (i, id_, name) for i, (id_, name, _) in enumerate(calls)
    ]
    assert [c.parsed_arguments() for c in assembled] == [args for _, _, args in calls]


@settings(max_examples=200, deadline=None)
@given(tool_call_streams(), st.sampled_from([b"\n", b"\r\n", b"\r"]), st.data())
def test_openai_tool_call_chunks_split_at_any_byte_assemble_to_the_original_calls(
    case: tuple[list[tuple[str, str, dict[str, Any]]], list[tuple[int, int, str]]],
    ending: bytes,
    data: st.DataObject,
) -> None:
    calls, fragments = case
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    stream = bytearray(sse({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}, ending))
    stream += b": keep-alive" + ending + ending
    for i, n, piece in fragments:
        call_id, name, _ = calls[i]
        if n == 0:
            first = data.draw(st.sampled_from(["inline", "empty", "none"]))
            function: dict[str, Any] = {"name": name}
            if first == "inline":
                function["arguments"] = piece
            elif first == "empty":
                function["arguments"] = ""
            delta: dict[str, Any] = {"index": i, "id": call_id, "type": "function", "function": function}
            if first != "inline":  # the first piece follows in a fragment of its own
                stream += sse({**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [delta]}}]}, ending)
                delta = {"index": i, "function": {"arguments": piece}}
        else:
            delta = {"index": i, "function": {"arguments": piece}}
        stream += sse({**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [delta]}}]}, ending)
    stream += sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}, ending)
    stream += sse({**chunk, "choices": [], "usage": {"prompt_tokens": 1}}, ending)
    stream += b"data: [DONE]" + ending + ending

    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=30))
    decoder = SSEDecoder()
    acc = ToolCallAccumulator()
    done = False
    for part in split_anywhere(bytes(stream), cuts):
        for event in decoder.feed(part):
            assert not done
            if event.data == "[DONE]":
                done = True
                continue
            for choice in event.json()["choices"]:
                for tool_call in choice["delta"].get("tool_calls") or []:
                    acc.add_openai_delta(tool_call)
            # while streaming, what is shown never raises
            for call in acc.calls():
                assert isinstance(partial_arguments(call.arguments), dict)
    assert decoder.close() == []
    assert done
    assert_assembled(acc, calls)


@settings(max_examples=200, deadline=None)
@given(tool_call_streams(), st.sampled_from([b"\n", b"\r\n", b"\r"]), st.data())
def test_flat_tool_call_events_split_at_any_byte_assemble_to_the_original_calls(
    case: tuple[list[tuple[str, str, dict[str, Any]]], list[tuple[int, int, str]]],
    ending: bytes,
    data: st.DataObject,
) -> None:
    calls, fragments = case
    id_key = data.draw(st.sampled_from(["id", "tool_call_id"]))
    repeat_name = data.draw(st.booleans())  # some servers repeat the name in every fragment
    stream = bytearray(b"\xef\xbb\xbf" if data.draw(st.booleans()) else b"")
    stream += sse({"event": "status", "status": "running"}, ending, event="status")
    for i, n, piece in fragments:
        call_id, name, _ = calls[i]
        fragment: dict[str, Any] = {"event": "tool_call", "index": i, "arguments": piece}
        if n == 0:
            fragment[id_key] = call_id
        if n == 0 or repeat_name:
            fragment["name"] = name
        stream += sse(fragment, ending, event="tool_call")
    stream += sse({"event": "done", "status": "completed"}, ending, event="done")

    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=30))
    decoder = SSEDecoder()
    acc = ToolCallAccumulator()
    types = []
    for part in split_anywhere(bytes(stream), cuts):
        for event in decoder.feed(part):
            types.append(event.event)
            if event.event == "tool_call":
                acc.add_openai_delta(openai_delta(event.json()))
    assert decoder.close() == []
    assert types[0] == "status" and types[-1] == "done"
    assert_assembled(acc, calls)


@settings(max_examples=30, deadline=None)
@given(tool_call_streams())
def test_tool_call_stream_fed_byte_by_byte(
    case: tuple[list[tuple[str, str, dict[str, Any]]], list[tuple[int, int, str]]],
) -> None:
    calls, fragments = case
    stream = b"".join(
        sse(
            {"index": i, "id": calls[i][0], "name": calls[i][1], "arguments": piece}
            if n == 0
            else {"index": i, "arguments": piece},
            b"\r\n",
        )
        for i, n, piece in fragments
    )
    decoder = SSEDecoder()
    acc = ToolCallAccumulator()
    for position in range(len(stream)):
        for event in decoder.feed(stream[position : position + 1]):
            acc.add_openai_delta(openai_delta(event.json()))
    assert_assembled(acc, calls)
