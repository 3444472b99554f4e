"""The emulator against hostile requests, over real HTTP and raw sockets: the key is checked before
anything else, bodies and the record are bounded in bytes, fault parameters in range, schemas in
cost, connections in time. Where a point is about memory, the emulator runs in a process of its
own and its peak RSS is measured (psutil, sampled every 5 ms while the request runs)."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from haufe_emulator import EmulatorConfig, EmulatorServer
from haufe_emulator import app as emulator_app
from haufe_emulator.app import MAX_BODY_BYTES
from haufe_emulator.faults import FAULT_BOUNDS, FaultPlan, header_name
from haufe_emulator.state import MAX_RECORD_BYTES
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY, user
from tests.reliability.servers import emulator_child

CHAT = "/agents/v1/chat/completions"
STREAM = "/agents/v1/chat/completions/stream"
COMPLETIONS = "/api/v1/chat/completions"
ASYNC = "/api/v1/messages/async"
API_KEY = {"api-key": SESSION_API_KEY}
BEARER = {"Authorization": f"Bearer {SESSION_API_KEY}"}
MiB = 1024 * 1024
#: What one hostile request may add to the emulator's peak RSS here (it was +286 MB for 200 MB).
PEAK_GROWTH_LIMIT = 40 * MiB


class EmulatorProcess:
    def __init__(self, url: str, process: psutil.Process) -> None:
        self.url = url
        self.process = process

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def peak_growth(self, action: Callable[[], Any]) -> tuple[int, Any]:
        """How far the emulator's RSS rose above its level before `action`, at its highest."""
        baseline = self.rss()
        peak = baseline
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, self.rss())
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            result = action()
        finally:
            time.sleep(0.05)  # what the server does after answering counts too
            done.set()
            sampler.join()
        return peak - baseline, result


@pytest.fixture(scope="module")
def emulator_process() -> Iterator[EmulatorProcess]:
    with emulator_child(SESSION_API_KEY) as (child, port):
        served = EmulatorProcess(f"http://127.0.0.1:{port}", psutil.Process(child.pid))
        with httpx.Client() as warm:  # the first answers build the corpus index: not ours to count
            for _ in range(3):
                warm.post(
                    served.url + CHAT,
                    json={"assistant_id": ASSISTANT_ID, "messages": user()},
                    headers=API_KEY,
                )
        yield served


def chunks_of(total: int, size: int = MiB) -> Iterator[bytes]:
    """`total` bytes in pieces, never all in memory at once (httpx sends them chunked)."""
    piece = b"x" * size
    sent = 0
    while sent < total:
        yield piece[: min(size, total - sent)]
        sent += size


def post(url: str, headers: dict[str, str], content: Any, timeout: float = 60) -> httpx.Response:
    with httpx.Client(timeout=timeout) as client:
        return client.post(url, headers={"content-type": "application/json", **headers}, content=content)


# -- the key first; the body capped --------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_huge_body_without_a_key_is_refused_unread(emulator_process: EmulatorProcess) -> None:
    """200 MB with a wrong key took the emulator from 55 to 341 MB: now it answers 401 unread."""
    size = 200 * MiB
    for path, headers in (
        (CHAT, {"api-key": "sk-wrong"}),
        (COMPLETIONS, {"Authorization": "Bearer sk-wrong"}),
    ):
        started = time.monotonic()
        growth, response = emulator_process.peak_growth(
            lambda p=path, h=headers: post(emulator_process.url + p, h, b"x" * size)  # with Content-Length
        )
        seconds = time.monotonic() - started
        assert response.status_code == 401, path
        assert response.json() == {"error_code": "unauthorized", "detail": "Missing or invalid API key"}
        assert growth < PEAK_GROWTH_LIMIT, f"{path}: peak RSS +{growth / MiB:.0f} MiB in {seconds:.1f} s"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_over_the_cap_is_413_in_the_documented_shape(
    emulator_process: EmulatorProcess, declared: bool
) -> None:
    size = 64 * MiB  # 16 times the cap
    for path, headers in ((CHAT, API_KEY), (COMPLETIONS, BEARER), (ASYNC, BEARER)):
        content: Any = b"x" * size if declared else chunks_of(size)
        growth, response = emulator_process.peak_growth(
            lambda p=path, h=headers, c=content: post(emulator_process.url + p, h, c)
        )
        assert response.status_code == 413, (path, response.text[:200])
        body = response.json()
        assert body["error_code"] == "request_too_large" and "MiB" in body["detail"]
        assert response.headers["x-request-id"]
        assert growth < PEAK_GROWTH_LIMIT, f"{path}: peak RSS +{growth / MiB:.0f} MiB"
    # just under the cap is read as usual (here: a 422, the body is no chat request)
    under = json.dumps({"padding": "x" * (MAX_BODY_BYTES - 100)}).encode()
    assert len(under) <= MAX_BODY_BYTES
    assert post(emulator_process.url + CHAT, API_KEY, under).status_code == 422


def test_fault_headers_act_only_after_the_key_is_checked(emulator: EmulatorServer) -> None:
    body = {"assistant_id": ASSISTANT_ID, "messages": user()}
    for path, wrong in ((CHAT, {"api-key": "sk-wrong"}), (ASYNC, {"Authorization": "Bearer sk-wrong"})):
        for fault in (
            {"x-emulator-fault": "internal_server_error"},
            {"x-emulator-fault": "rate_limit_gateway", "x-emulator-retry-after": "1"},
            {"x-emulator-delay": "3"},
            {"x-emulator-delay": "inf"},
        ):
            started = time.monotonic()
            response = httpx.post(emulator.url + path, json=body, headers={**wrong, **fault}, timeout=10)
            assert (response.status_code, response.json()["error_code"]) == (401, "unauthorized"), fault
            assert "retry-after" not in response.headers
            assert time.monotonic() - started < 1.0, fault


def test_a_refused_request_is_recorded_without_its_body(emulator: EmulatorServer) -> None:
    marker = secrets.token_hex(6)
    secret_body = {"assistant_id": ASSISTANT_ID, "messages": user("geheim " + marker)}
    refused = [
        (CHAT, {"api-key": "sk-wrong"}),
        (CHAT, {**API_KEY, "x-emulator-delay": "99999"}),  # a fault header out of range
        (COMPLETIONS, {"Authorization": "Bearer sk-wrong"}),
    ]
    for path, headers in refused:
        response = httpx.post(
            emulator.url + path, json=secret_body, headers={**headers, "x-test-marker": marker}
        )
        assert response.status_code in (401, 422)
    records = [r for r in list(emulator.state.requests) if r.headers.get("x-test-marker") == marker]
    assert len(records) == len(refused)  # still counted: tests count attempts by their headers
    assert all(r.body is None for r in records)
    assert marker not in repr([r.body for r in list(emulator.state.requests)])


@pytest.mark.timeout(120)
def test_the_record_is_bounded_in_bytes(emulator_process: EmulatorProcess) -> None:
    """Bodies under the cap are recorded, but the record keeps at most MAX_RECORD_BYTES of them:
    90 bodies of 3.5 MiB (315 MiB) leave the emulator's RSS well under that much higher."""
    body = json.dumps({"padding": "x" * int(3.5 * MiB)}).encode()

    def send_all() -> list[int]:
        with httpx.Client(timeout=60) as client:
            return [
                client.post(
                    emulator_process.url + CHAT,
                    content=body,
                    headers={**API_KEY, "content-type": "application/json"},
                ).status_code
                for _ in range(90)
            ]

    growth, statuses = emulator_process.peak_growth(send_all)
    assert set(statuses) == {422}
    assert growth < MAX_RECORD_BYTES + PEAK_GROWTH_LIMIT, f"peak RSS +{growth / MiB:.0f} MiB"
    # and nothing grows on: another 30 leave the peak where it was
    again, _ = emulator_process.peak_growth(lambda: send_all()[:30])
    assert again < PEAK_GROWTH_LIMIT, f"peak RSS +{again / MiB:.0f} MiB more"


def test_the_record_keeps_the_newest_requests_within_its_byte_bound() -> None:
    with EmulatorServer(EmulatorConfig(api_keys=frozenset({SESSION_API_KEY}))) as server:
        padding = "x" * (3 * MiB)
        with httpx.Client(timeout=30) as client:
            for n in range(30):
                client.post(server.url + CHAT, json={"n": n, "padding": padding}, headers=API_KEY)
        kept = list(server.state.requests)
        recorded = sum(len(json.dumps(r.body)) for r in kept)
        assert recorded <= MAX_RECORD_BYTES
        assert [r.body["n"] for r in kept] == list(range(30 - len(kept), 30))  # the newest, in order
        assert len(kept) >= MAX_RECORD_BYTES // (4 * MiB)


# -- fault parameters in range ----------------------------------------------------------------

OUT_OF_RANGE = [
    ("x-emulator-delay", "inf", "from 0 to 60 seconds"),
    ("x-emulator-delay", "nan", "from 0 to 60 seconds"),
    ("x-emulator-delay", "-1", "from 0 to 60 seconds"),
    ("x-emulator-delay", "1e400", "from 0 to 60 seconds"),
    ("x-emulator-delta-delay", "3600", "from 0 to 10 seconds"),
    ("x-emulator-delta-count", "2000000", "from 0 to 10,000"),
    ("x-emulator-cut-after", "-1", "from 0 to 1,000,000"),
    ("x-emulator-malformed-after", "99999999999", "from 0 to 1,000,000"),
    ("x-emulator-stream-error-after", "-5", "from 0 to 1,000,000"),
    ("x-emulator-fault-times", "10000000", "from 0 to 1,000,000"),
    ("x-emulator-bulk", "1000000000", "from 0 to 1,000,000"),
    ("x-emulator-bulk-delta-chars", str(300 * MiB), "from 1 to 1,048,576"),
    ("x-emulator-bulk-delta-chars", "0", "from 1 to 1,048,576"),
    ("x-emulator-bulk-tool-fragments", "1000000000", "from 0 to 100,000"),
    ("x-emulator-fault-id", "i" * 300, "at most 256 characters"),
    ("x-emulator-retry-after", "1" * 100, "at most 64 characters"),
]


@pytest.mark.parametrize(("header", "value", "accepted"), OUT_OF_RANGE)
def test_a_fault_parameter_out_of_range_is_422_naming_the_header_and_its_range(
    emulator: EmulatorServer, header: str, value: str, accepted: str
) -> None:
    assistant = httpx.post(
        emulator.url + STREAM,
        json={"assistant_id": ASSISTANT_ID, "messages": user()},
        headers={**API_KEY, header: value},
        timeout=5,
    )
    assert assistant.status_code == 422
    body = assistant.json()
    assert body["error_code"] == "validation_error"
    (problem,) = body["detail"]
    assert problem["loc"] == ["header", header] and problem["type"] == "value_error"
    assert header in problem["message"] and accepted in problem["message"]
    platform = httpx.post(
        emulator.url + ASYNC, json={"messages": user()}, headers={**BEARER, header: value}, timeout=5
    )
    assert platform.status_code == 422
    (problem,) = platform.json()["detail"]
    assert set(problem) == {"loc", "msg", "type"} and problem["loc"] == ["header", header]
    assert header in problem["msg"] and accepted in problem["msg"]


def test_fault_parameters_at_their_bounds_are_served(emulator: EmulatorServer) -> None:
    line_chars = 1_048_576
    response = httpx.post(
        emulator.url + STREAM,
        json={"assistant_id": ASSISTANT_ID, "messages": user()},
        headers={**API_KEY, "x-emulator-bulk": "3", "x-emulator-bulk-delta-chars": str(line_chars)},
        timeout=30,
    )
    assert response.status_code == 200
    contents = [json.loads(line)["delta"]["content"] for line in response.text.splitlines()]
    assert [len(c) for c in contents[:2]] == [line_chars, line_chars] and contents[-1] == "Ende."
    started = httpx.post(
        emulator.url + ASYNC, json={"messages": user()}, headers={**BEARER, "x-emulator-delta-count": "10000"}
    )
    assert started.status_code == 202
    zero = httpx.post(
        emulator.url + CHAT,
        json={"assistant_id": ASSISTANT_ID, "messages": user()},
        headers={
            **API_KEY,
            "x-emulator-delay": "0",
            "x-emulator-fault-times": "0",
            "x-emulator-fault-id": "z",
        },
    )
    assert zero.status_code == 200


@pytest.mark.timeout(60)
def test_bulk_characters_beyond_the_bound_cost_nothing(emulator_process: EmulatorProcess) -> None:
    """`x-emulator-bulk-delta-chars: 300 MiB` built two 0.5 GB lines: now a 422 at once."""
    growth, response = emulator_process.peak_growth(
        lambda: post(
            emulator_process.url + STREAM,
            {**API_KEY, "x-emulator-bulk": "2", "x-emulator-bulk-delta-chars": str(300 * MiB)},
            json.dumps({"assistant_id": ASSISTANT_ID, "messages": user()}),
            timeout=30,
        )
    )
    assert response.status_code == 422
    assert growth < PEAK_GROWTH_LIMIT, f"peak RSS +{growth / MiB:.0f} MiB"


# -- schemas the emulator cannot fill ---------------------------------------------------------

SELF_REFERENCES = [
    {"type": "object", "anyOf": [{"$ref": "#"}]},
    {"type": "object", "properties": {"a": {"oneOf": [{"$ref": "#/$defs/b"}]}}, "required": ["a"],
     "$defs": {"b": {"anyOf": [{"$ref": "#/properties/a"}]}}},
    {"type": "object", "properties": {"x": {"type": "array", "minItems": 100_000_000}}, "required": ["x"]},
    {"type": "object", "properties": {"x": {"type": "string", "minLength": 100_000_000}}, "required": ["x"]},
    {"type": "object", "$defs": {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(2000)},
     "properties": {"x": {"$ref": "#/$defs/d0"}}, "required": ["x"]},
]  # fmt: skip


def json_schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


@pytest.mark.parametrize(
    "schema", SELF_REFERENCES, ids=["anyOf-self", "ref-cycle", "minItems", "minLength", "ref-chain"]
)
def test_a_response_format_the_emulator_cannot_fill_is_422(
    emulator: EmulatorServer, schema: dict[str, Any]
) -> None:
    started = time.monotonic()
    response = httpx.post(
        emulator.url + ASYNC,
        json={"messages": user(), "response_format": json_schema_format(schema)},
        headers=BEARER,
        timeout=10,
    )
    assert response.status_code == 422, response.text[:300]
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "response_format", "json_schema", "schema"]
    assert "schema" in problem["msg"] and problem["type"] == "value_error"
    assert time.monotonic() - started < 2.0


def test_tool_parameters_the_emulator_cannot_fill_are_422(emulator: EmulatorServer) -> None:
    city = {"anyOf": [{"$ref": "#/properties/city"}]}  # itself, without end
    parameters = {"type": "object", "properties": {"city": city}, "required": ["city"]}
    function = {"name": "get_weather", "description": "Das Wetter einer Stadt", "parameters": parameters}
    tools = [{"type": "function", "function": function}]
    messages = user("get_weather für Berlin")
    completion = httpx.post(
        emulator.url + COMPLETIONS,
        json={"messages": messages, "tools": tools},
        headers={**BEARER, "accept": "text/event-stream"},
    )
    assert completion.status_code == 422, completion.text[:300]
    assert completion.json()["detail"][0]["loc"] == ["body", "tools"]
    started = httpx.post(emulator.url + ASYNC, json={"messages": messages, "tools": tools}, headers=BEARER)
    assert started.status_code == 422, started.text[:300]
    assert started.json()["detail"][0]["loc"] == ["body", "tools"]


def test_recursive_schemas_with_a_way_out_are_still_answered(emulator: EmulatorServer) -> None:
    linked = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
        "required": ["name", "next"],
    }
    response = httpx.post(
        emulator.url + ASYNC,
        json={"messages": user(), "response_format": json_schema_format(linked)},
        headers=BEARER,
    )
    assert response.status_code == 202


# -- connections in bounded time --------------------------------------------------------------


def closed_within(sockets: list[socket.socket], limit: float) -> float:
    """Seconds until the server closed every socket (AssertionError after `limit`)."""
    started = time.monotonic()
    open_ones = list(sockets)
    for sock in open_ones:
        sock.setblocking(False)
    while open_ones:
        assert time.monotonic() - started < limit, f"{len(open_ones)} of {len(sockets)} still open"
        still = []
        for sock in open_ones:
            try:
                if sock.recv(65536) == b"":
                    continue  # closed by the server
            except BlockingIOError:
                pass
            except ConnectionError:
                continue
            still.append(sock)
        open_ones = still
        time.sleep(0.02)
    return time.monotonic() - started


@contextmanager
def raw_sockets(port: int, count: int, first_bytes: bytes) -> Iterator[list[socket.socket]]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            if first_bytes:
                sock.sendall(first_bytes)
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


HEADER_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def strict_emulator() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(api_keys=frozenset({SESSION_API_KEY}))
    with EmulatorServer(config, header_timeout=HEADER_TIMEOUT, keep_alive=HEADER_TIMEOUT) as server:
        yield server


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "first_bytes",
    [b"", b"POST /agents/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\napi-key: x"],
    ids=["nothing", "unfinished headers"],
)
def test_300_connections_without_complete_headers_are_closed_in_bounded_time(
    strict_emulator: EmulatorServer, first_bytes: bytes
) -> None:
    with raw_sockets(strict_emulator.port, 300, first_bytes) as sockets:
        seconds = closed_within(sockets, limit=HEADER_TIMEOUT + 4)
    assert seconds >= HEADER_TIMEOUT * 0.5  # closed by the deadline, not refused at once
    # the server still answers
    ok = httpx.post(
        strict_emulator.url + CHAT, json={"assistant_id": ASSISTANT_ID, "messages": user()}, headers=API_KEY
    )
    assert ok.status_code == 200


@pytest.mark.timeout(60)
def test_headers_dripped_byte_by_byte_do_not_keep_a_connection(strict_emulator: EmulatorServer) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nx-padding: " + b"a" * 200
    with raw_sockets(strict_emulator.port, 1, b"") as (sock,):
        started = time.monotonic()
        closed = False
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except ConnectionError:
                closed = True
                break
            time.sleep(0.02)
            if time.monotonic() - started > HEADER_TIMEOUT + 2:
                break
        if not closed:
            closed_within([sock], limit=2)
        assert time.monotonic() - started < HEADER_TIMEOUT + 3


@pytest.mark.timeout(60)
def test_an_idle_keep_alive_connection_is_closed_and_a_long_answer_is_not(
    strict_emulator: EmulatorServer,
) -> None:
    with raw_sockets(strict_emulator.port, 1, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") as (sock,):
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        closed_within([sock], limit=HEADER_TIMEOUT + 3)
    # an answer streaming for longer than the deadlines is not cut
    started = time.monotonic()
    with httpx.Client(timeout=10) as client:
        response = client.post(
            strict_emulator.url + STREAM,
            json={"assistant_id": ASSISTANT_ID, "messages": user(QUESTION)},
            headers={**API_KEY, "x-emulator-delta-delay": "0.03"},
        )
    assert response.status_code == 200 and response.text.endswith("\n")
    assert time.monotonic() - started > HEADER_TIMEOUT * 1.5
    assert json.loads(response.text.splitlines()[-1])["delta"]["sources"]


@pytest.mark.timeout(60)
def test_a_body_that_does_not_arrive_in_time_is_408_and_closed(
    strict_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator_app, "BODY_TIMEOUT_SECONDS", 0.5)
    head = (
        f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\napi-key: {SESSION_API_KEY}\r\n"
        "content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
    ).encode()
    with raw_sockets(strict_emulator.port, 1, head) as (sock,):
        sock.settimeout(5)
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            piece = sock.recv(65536)
            if not piece:
                break
            answer += piece
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"error_code": "request_timeout"' in answer
        closed_within([sock], limit=2)
        assert time.monotonic() - started < 3


# -- any fault header value: a bounded answer, never a 5xx ------------------------------------

#: Values inside the range that break the answer on purpose (a cut, a wait) are left out: what
#: is checked is that no value, in range or not, crashes or stalls the emulator.
_IN_RANGE_HARMLESS = {
    "fault_times": st.integers(0, 3),
    "fault_id": st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20),
    "retry_after": st.sampled_from(["1", "0.5", "Wed, 21 Oct 2015 07:28:00 GMT"]),
    "retry_after_ms": st.sampled_from(["1", "250"]),
    "delay": st.sampled_from(["0", "0.0", "0.01"]),
    "delta_delay": st.sampled_from(["0", "0.001"]),
    "stream_error_after": st.integers(0, 3),
    "delta_count": st.integers(0, 5),
    "bulk": st.integers(0, 5),
    "bulk_tool_fragments": st.integers(0, 5),
    "bulk_delta_chars": st.integers(1, 50),
}
_GARBAGE = (
    st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
    | st.sampled_from(["inf", "-inf", "nan", "1e400", "1_000", " 7 ", "0x10", "9" * 5000])
)


def _fault_value(name: str) -> st.SearchStrategy[str]:
    harmless = _IN_RANGE_HARMLESS.get(name)
    values = _GARBAGE if harmless is None else harmless | _GARBAGE
    return values.map(str).filter(lambda v: v == v.strip() and "\r" not in v and "\n" not in v)


def _breaks_on_purpose(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return 0.05 <= number <= 60  # a delay the emulator would honour: too slow for a fuzz


#: Fault parameters whose every accepted value breaks the answer (an error, a cut).
_BREAKING = {header_name(name) for name in ("fault", "stream_error", "cut_after", "malformed_after")}


def _accepted(header: str, value: str) -> bool:
    try:
        FaultPlan().with_headers({header: value})
    except ValueError:
        return False
    return True


fault_headers = st.dictionaries(
    st.sampled_from(sorted(FAULT_BOUNDS)), st.just(""), min_size=1, max_size=4
).flatmap(lambda names: st.fixed_dictionaries({header_name(name): _fault_value(name) for name in names}))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    headers=fault_headers,
    target=st.sampled_from([(CHAT, API_KEY), (STREAM, API_KEY), (COMPLETIONS, BEARER), (ASYNC, BEARER)]),
)
def test_any_fault_header_value_gets_a_bounded_answer_and_never_a_5xx(
    emulator: EmulatorServer, headers: dict[str, str], target: tuple[str, dict[str, str]]
) -> None:
    assume(not any(_breaks_on_purpose(v) for k, v in headers.items() if k.endswith("delay")))
    assume(not any(_accepted(k, v) for k, v in headers.items() if k in _BREAKING))
    path, key = target
    body: dict[str, Any] = {"messages": user()}
    if path.startswith("/agents"):
        body["assistant_id"] = ASSISTANT_ID
    started = time.monotonic()
    response = httpx.post(emulator.url + path, json=body, headers={**key, **headers}, timeout=10)
    assert time.monotonic() - started < 5
    assert response.status_code < 500, (headers, response.text[:300])
    if response.status_code == 422 and any(p["loc"][0] == "header" for p in _problems(response)):
        (problem,) = _problems(response)
        assert problem["loc"][1] in headers
    elif response.status_code == 400:
        assert response.json()["error_code"] == "emulator_bad_fault_header"
    else:
        assert response.status_code in (200, 202), (headers, response.text[:300])


def _problems(response: httpx.Response) -> list[dict[str, Any]]:
    detail = response.json()["detail"]
    return detail if isinstance(detail, list) else []
