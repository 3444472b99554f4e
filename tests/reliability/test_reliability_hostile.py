"""Hostile servers and hostile input: bounded memory and time, nothing untyped, inert server text.

Each test stands for a finding of the hostile-servers probes: a compression bomb that took peak
memory to gigabytes (measured here as peak RSS in a subprocess), error pages that the old regular
expressions took seconds over, 200k-deep JSON, headers and values that escaped as bare `h11` /
`ValueError` / `TypeError` / `RecursionError`, a server's 900 KB `detail` with line breaks
quoted whole into messages and log lines, and the first hour's misleading messages (a `/v1`
base URL, a hint run into the server's detail, "retried" when nothing was).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient, errors
from haufe_copilot.protocol.content_decoding import PIECE_BYTES, BoundedContentDecoder
from haufe_copilot.protocol.settings import validate_timeout
from haufe_copilot.transport.base_client import MAX_ERROR_BODY_BYTES
from haufe_emulator import EmulatorServer
from tests.conftest import ASSISTANT_ID, SESSION_API_KEY, user
from tests.reliability.servers import RawServer

ROOT = Path(__file__).resolve().parents[2]
#: The limits the bombed clients run with: small, so that a bound that does not hold shows.
LIMIT = 4 * 1024 * 1024
#: Peak RSS a bombed call may add. Decoding as httpx does turns one 64 KB read of gzip into 64 MB
#: at once (zstd: 1 GiB), so a client that does not stop at its limits passes this at once.
RSS_GROWTH_BOUND_MB = 40


# -- point 2: compression bombs ------------------------------------------------------------------


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """gzip of 128 MiB of zeros (~128 KB), and zstd frames of 1 GiB of zeros (~40 KB)."""
    folder = tmp_path_factory.mktemp("bombs")
    zeros = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    gzipped = b"".join(compressor.compress(zeros) for _ in range(128)) + compressor.flush()
    zstandard = pytest.importorskip("zstandard")
    frame = zstandard.ZstdCompressor(level=3).compress(zeros)
    files = {"gzip": gzipped, "zstd": frame * 1024}
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    return {name: folder / name for name in files}


#: Run in a fresh interpreter: serve the bomb from a loopback server, make one call with small
#: limits, report the error and how much the call raised peak RSS. The address space is capped
#: (its size now + 1 GiB) so that a client that does not bound its decoding fails here with a
#: MemoryError rather than taking the machine's memory.
BOMBED_CALL = r"""
import json, resource, sys
from pathlib import Path
from haufe_copilot import HaufeCopilotClient, errors
from tests.reliability.servers import RawServer

bomb, encoding, mode, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
kind = "application/x-ndjson" if mode == "stream" else "application/json"
status = 500 if mode == "error body" else 200
head = {"content-type": kind, "content-encoding": encoding}
def status_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
with RawServer("canned", status=status, head=head, payload=Path(bomb).read_bytes()) as server:
    client = HaufeCopilotClient(api_key="sk-bomb", base_url=server.url, max_retries=0,
                                max_response_bytes=limit, max_line_bytes=limit)
    cap = (status_kb("VmSize") + 1024 * 1024) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS (VmHWM) := RSS now
    before = status_kb("VmRSS")
    outcome, body = "no error", None
    messages = [{"role": "user", "content": "Hallo"}]
    try:
        if mode == "stream":
            for _ in client.assistant.stream(assistant_id="a", messages=messages):
                pass
        else:
            client.assistant.chat(assistant_id="a", messages=messages)
    except errors.HaufeCopilotError as exc:
        outcome = type(exc).__name__
        body = len(getattr(exc, "body", None) or "")
    except BaseException as exc:
        outcome = "untyped " + type(exc).__name__
    after = status_kb("VmHWM")
print(json.dumps({"error": outcome, "growth_mb": (after - before) / 1024, "body_chars": body}))
"""


@pytest.mark.parametrize(
    ("encoding", "mode", "expected"),
    [
        ("gzip", "blocking", "ResponseTooLargeError"),
        ("gzip", "stream", "ResponseTooLargeError"),
        ("gzip", "error body", "InternalServerError"),
        ("zstd", "blocking", "APIResponseValidationError"),
        ("zstd", "stream", "APIResponseValidationError"),
        ("zstd", "error body", "InternalServerError"),
    ],
)
def test_a_compression_bomb_keeps_peak_memory_within_the_limits(
    bombs: dict[str, Path], encoding: str, mode: str, expected: str
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-c", BOMBED_CALL, str(bombs[encoding]), encoding, mode, str(LIMIT)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"{encoding} {mode}: {report}")  # the figure for the report (pytest -s)
    assert report["error"] == expected, report
    assert report["growth_mb"] < RSS_GROWTH_BOUND_MB, report
    if mode == "error body":
        assert report["body_chars"] <= MAX_ERROR_BODY_BYTES  # .body is capped too


def test_the_client_asks_only_for_encodings_it_can_bound_and_still_decodes_them() -> None:
    answer = {"id": "x", "content": "Hallo", "sources": [], "thread_id": "t"}
    encoded = {
        "gzip": gzip.compress(json.dumps(answer).encode()),
        "deflate": zlib.compress(json.dumps(answer).encode()),
        # some servers send raw deflate (no zlib header) as "deflate"; httpx accepts it too
        "deflate-raw": zlib.compress(json.dumps(answer).encode(), wbits=-zlib.MAX_WBITS),
    }
    for name, payload in encoded.items():
        head = {"content-type": "application/json", "content-encoding": name.split("-")[0]}
        with RawServer("canned", head=head, payload=payload) as server:
            with HaufeCopilotClient(api_key="sk-x", base_url=server.url, max_retries=0) as client:
                assert client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user()).content == "Hallo"
            assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"
    head = {"content-type": "application/json", "content-encoding": "br"}
    with RawServer("canned", head=head, payload=b"\x0b\x02\x80{}\x03") as server:
        with HaufeCopilotClient(api_key="sk-x", base_url=server.url, max_retries=0) as client:
            with pytest.raises(errors.APIResponseValidationError, match="Content-Encoding 'br'"):
                client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())


def test_the_decoder_never_produces_more_than_a_piece_at_a_time() -> None:
    bomb = zlib.compress(bytes(64 << 20), 9)  # 64 MiB of zeros in ~64 KB: one read
    decoder = BoundedContentDecoder("deflate")
    sizes = [len(piece) for piece in decoder.decode(bomb)] + [len(p) for p in decoder.flush()]
    assert max(sizes) <= PIECE_BYTES and sum(sizes) == 64 << 20


async def test_the_async_client_bounds_a_bomb_too(bombs: dict[str, Path]) -> None:
    head = {"content-type": "application/x-ndjson", "content-encoding": "gzip"}
    with RawServer("canned", head=head, payload=bombs["gzip"].read_bytes()) as server:
        async with AsyncHaufeCopilotClient(
            api_key="sk-x", base_url=server.url, max_retries=0, max_line_bytes=LIMIT
        ) as client:
            with pytest.raises(errors.ResponseTooLargeError):
                async for _ in client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()):
                    pass
    head = {"content-type": "application/json", "content-encoding": "zstd"}
    with RawServer("canned", status=503, head=head, payload=bombs["zstd"].read_bytes()) as server:
        async with AsyncHaufeCopilotClient(api_key="sk-x", base_url=server.url, max_retries=0) as client:
            with pytest.raises(errors.ServiceUnavailableError, match="Content-Encoding 'zstd'"):
                await client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())


# -- point 3: error pages classified in linear time -------------------------------------------------

KB112 = 112 * 1024
MIB = 1024 * 1024


def _pages(size: int) -> dict[str, bytes]:
    return {
        "<title> repeated": b"<title>" * (size // 7),
        "< without >": b"<html>" + b"<" * size,
        "<title without >": b"<html><title " + b"<title" * (size // 6),
        "empty tags": b"<a>" * (size // 3),
        "a title as long as the page": b"<title>" + b"a " * (size // 2) + b"</title>",
        "<!-- unclosed": b"<html><!--" + b"-" * size,
    }


@pytest.mark.parametrize("size", [KB112, MIB], ids=["112KB", "1MiB"])
@pytest.mark.timeout(60)
def test_an_error_page_is_classified_in_linear_time(size: int) -> None:
    times = {}
    for name, page in _pages(size).items():
        started = time.perf_counter()
        error = errors.error_from_response(502, {"content-type": "text/html"}, page)
        times[name] = time.perf_counter() - started
        assert isinstance(error, errors.ServiceUnavailableError) and len(str(error)) < 1000
    print({name: f"{seconds * 1000:.1f} ms" for name, seconds in times.items()})
    assert max(times.values()) < 0.5, times  # the regular expressions took 11 s for 112 KB


@pytest.mark.timeout(60)
def test_an_error_page_at_the_cap_costs_the_client_no_more_than_reading_it() -> None:
    page = b"<html><title>" + b"<title>" * (MAX_ERROR_BODY_BYTES // 7)
    with RawServer("canned", status=502, head={"content-type": "text/html"}, payload=page) as server:
        with HaufeCopilotClient(api_key="sk-x", base_url=server.url, max_retries=0) as client:
            started = time.perf_counter()
            with pytest.raises(errors.ServiceUnavailableError, match="HTML page"):
                client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
            assert time.perf_counter() - started < 1.0


def test_the_page_title_is_still_the_summary() -> None:
    page = b"<html><head><TITLE lang=en>502 &amp; Bad\n Gateway</TITLE></head><body><h1>x</h1></body>"
    error = errors.error_from_response(502, {"content-type": "text/html"}, page)
    assert "'502 & Bad Gateway'" in str(error)
    untitled = b"<html><body><h1>Service</h1> <p>down</p></body></html>"
    assert "'Service down'" in str(errors.error_from_response(503, {"content-type": "text/html"}, untitled))


# -- point 7: nothing untyped escapes ---------------------------------------------------------------

DEEP = b"[" * 200_000


@pytest.mark.parametrize(
    ("status", "kind", "payload", "expected"),
    [
        (200, "application/json", DEEP, errors.APIResponseValidationError),
        (500, "application/json", DEEP, errors.InternalServerError),
        (200, "application/x-ndjson", DEEP + b"\n", errors.APIResponseValidationError),
        (200, "application/x-ndjson", b'{"delta": ' + DEEP + b"\n", errors.APIResponseValidationError),
    ],
    ids=["blocking body", "error body", "ndjson line", "ndjson chunk"],
)
def test_json_nested_200k_deep_is_a_typed_error(
    status: int, kind: str, payload: bytes, expected: type[errors.HaufeCopilotError]
) -> None:
    with RawServer("canned", status=status, head={"content-type": kind}, payload=payload) as server:
        with HaufeCopilotClient(api_key="sk-x", base_url=server.url, max_retries=0) as client:
            with pytest.raises(expected) as caught:
                if kind == "application/x-ndjson":
                    list(client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()))
                else:
                    client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    assert len(str(caught.value)) < 1000


@pytest.mark.parametrize(
    ("headers", "fix"),
    [
        ({"Content-Length": "3"}, "computes it from the body"),
        ({"transfer-encoding": "chunked"}, "frames the body"),
        ({"API-KEY": "sk-other"}, "api_key="),
        ({"Api-Key": "sk-other"}, "api_key="),
        ({"authorization": "Bearer x"}, "Bearer"),
    ],
)
def test_headers_the_client_owns_are_refused_in_extra_and_default_headers(
    emulator: EmulatorServer, headers: dict[str, str], fix: str
) -> None:
    before = len(emulator.state.requests)
    with HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url) as client:
        with pytest.raises(errors.InvalidRequestError, match=fix):
            client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), extra_headers=headers)
        with pytest.raises(errors.InvalidRequestError, match=fix):
            client.completions.create(messages=user(), extra_headers=headers)
    with pytest.raises(errors.ConfigurationError, match="default_headers"):
        HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url, default_headers=headers)
    assert len(emulator.state.requests) == before  # refused before anything was sent


def test_a_header_given_in_another_case_replaces_the_clients_own(emulator: EmulatorServer) -> None:
    marker = "case-" + os.urandom(4).hex()
    with HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url) as client:
        client.assistant.chat(
            assistant_id=ASSISTANT_ID,
            messages=user(),
            extra_headers={"accept": "application/json", "user-agent": "mine/1", "x-test-marker": marker},
        )
    (request,) = [r for r in emulator.state.requests if r.headers.get("x-test-marker") == marker]
    assert request.headers["user-agent"] == "mine/1"


@pytest.mark.parametrize("timeout", [-1, 0, "5", float("nan"), float("inf"), True, httpx.Timeout(-1.0)])
async def test_a_per_call_timeout_that_cannot_work_is_refused_clearly(
    client: HaufeCopilotClient, async_client: AsyncHaufeCopilotClient, timeout: Any
) -> None:
    with pytest.raises(errors.InvalidRequestError, match="timeout"):
        client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), timeout=timeout)
    with pytest.raises(errors.InvalidRequestError, match="timeout"):
        client.completions.create(messages=user(), timeout=timeout)
    with pytest.raises(errors.InvalidRequestError, match="timeout"):
        await async_client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), timeout=timeout)
    with pytest.raises(errors.ConfigurationError, match="timeout"):
        HaufeCopilotClient(api_key="k", timeout=timeout)


def test_validate_timeout_is_the_one_check_adapters_can_call() -> None:
    assert validate_timeout(None) is None
    assert validate_timeout(5) == httpx.Timeout(5.0)
    assert validate_timeout(httpx.Timeout(None)) == httpx.Timeout(None)
    with pytest.raises(errors.ConfigurationError, match="request_timeout must be"):
        validate_timeout("5", "request_timeout", error=errors.ConfigurationError)


def test_an_extra_body_json_cannot_carry_is_refused_clearly(client: HaufeCopilotClient) -> None:
    for body in ({"tags": {"a", "b"}}, {"temperature": float("nan")}, {"when": time}):
        with pytest.raises(errors.InvalidRequestError, match="cannot be sent as JSON"):
            client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), extra_body=body)


@pytest.mark.parametrize("last_event_id", ["5\r\n", -1, "abc", 1.5, True])
async def test_a_last_event_id_that_is_not_an_event_id_is_refused_at_the_call(
    client: HaufeCopilotClient, async_client: AsyncHaufeCopilotClient, last_event_id: Any
) -> None:
    with pytest.raises(errors.InvalidRequestError, match="last_event_id"):
        client.streams.events("some-stream", last_event_id=last_event_id)
    with pytest.raises(errors.InvalidRequestError, match="last_event_id"):
        async_client.streams.events("some-stream", last_event_id=last_event_id)


def test_a_last_event_id_given_as_digits_resumes(client: HaufeCopilotClient) -> None:
    handle = client.streams.start(messages=user())
    events = list(client.streams.events(handle.stream_id))
    resumed = list(client.streams.events(handle.stream_id, last_event_id=str(events[1].id)))
    assert [e.id for e in resumed] == [e.id for e in events[2:]]


# -- point 9: server text is bounded and inert -------------------------------------------------------


def test_a_huge_detail_with_line_breaks_is_quoted_short_and_escaped(caplog: pytest.LogCaptureFixture) -> None:
    detail = "Fehler\nINFO haufe_copilot: forged line\r\n\x1b[31m" + "x" * 900_000
    payload = json.dumps({"error_code": "internal_server_error", "detail": detail}).encode()
    head = {"content-type": "application/json", "retry-after-ms": "1"}
    caplog.set_level(logging.INFO, logger="haufe_copilot")
    with RawServer("canned", status=500, head=head, payload=payload) as server:
        with HaufeCopilotClient(api_key="sk-x", base_url=server.url, max_retries=1) as client:
            with pytest.raises(errors.InternalServerError) as caught:
                client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    error = caught.value
    text = str(error)
    assert len(text) < 1000 and "\n" not in text and "\r" not in text and "\x1b" not in text
    assert "Fehler\\nINFO haufe_copilot: forged line\\r\\n\\x1b[31m" in text and "characters in all" in text
    assert error.detail == detail  # the whole of it stays on the error
    (retry,) = [r for r in caplog.records if r.getMessage().startswith("Retrying")]
    line = retry.getMessage()
    assert len(line) < 1000 and "\n" not in line and "\r" not in line and "\x1b" not in line


def test_server_text_in_a_stream_error_line_is_escaped_too() -> None:
    error = errors.error_from_stream_object({"error_code": "conflict\nX", "detail": "a\u2028b" * 1000})
    assert "\n" not in str(error) and "\u2028" not in str(error) and len(str(error)) < 1000


# -- issue 15: the first hour's messages -------------------------------------------------------------


async def test_a_base_url_with_a_path_names_base_url_and_the_path_it_needs(emulator: EmulatorServer) -> None:
    wrong = emulator.url + "/v1"
    with HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=wrong, max_retries=0) as client:
        with pytest.raises(errors.NotFoundError) as caught:
            client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    text = str(caught.value)
    assert f"base_url={wrong!r}" in text and "/agents/v1/chat/completions" in text
    assert "without a path such as /v1" in text and "Check assistant_id" not in text
    async with AsyncHaufeCopilotClient(api_key=SESSION_API_KEY, base_url=wrong, max_retries=0) as aclient:
        with pytest.raises(errors.NotFoundError, match="base_url=") as acaught:
            await aclient.completions.create(messages=user())
    assert "/chat/completions itself" in str(acaught.value)
    # A 404 the service explains (with its code) keeps its own hint.
    with HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url, max_retries=0) as client:
        with pytest.raises(errors.NotFoundError, match="Check assistant_id and thread_id") as known:
            client.assistant.chat(
                assistant_id=ASSISTANT_ID,
                messages=user(),
                extra_headers={"x-emulator-fault": "assistant_not_found"},
            )
    assert "base_url" not in str(known.value)


def test_the_servers_detail_and_the_hint_are_separate_sentences(emulator: EmulatorServer) -> None:
    with HaufeCopilotClient(api_key="sk-wrong", base_url=emulator.url, max_retries=0) as client:
        with pytest.raises(errors.AuthenticationError) as caught:
            client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    assert "Missing or invalid API key. Check the API key" in str(caught.value)


@pytest.mark.parametrize(
    ("max_retries", "says"),
    [(0, "It was not retried (max_retries=0)."), (2, "It was retried 2 times (max_retries=2).")],
)
def test_a_proxy_page_says_truthfully_whether_it_was_retried(
    emulator: EmulatorServer, max_retries: int, says: str
) -> None:
    faults = {"x-emulator-fault": "proxy_html", "x-emulator-retry-after-ms": "1"}
    with HaufeCopilotClient(
        api_key=SESSION_API_KEY, base_url=emulator.url, max_retries=max_retries
    ) as client:
        with pytest.raises(errors.ServiceUnavailableError) as caught:
            client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), extra_headers=faults)
    text = str(caught.value)
    assert says in text and "retried as max_retries allows" not in text
    assert "(or a proxy) is unavailable. It was" in text


def test_an_error_that_could_not_be_retried_safely_says_so(emulator: EmulatorServer) -> None:
    faults = {"x-emulator-fault": "internal_server_error"}
    with HaufeCopilotClient(api_key=SESSION_API_KEY, base_url=emulator.url, max_retries=2) as client:
        with pytest.raises(errors.InternalServerError) as caught:
            client.assistant.chat(
                assistant_id=ASSISTANT_ID, messages=user(), thread_id="t-1", extra_headers=faults
            )
    assert "It was not retried: the server may have acted on it" in str(caught.value)


# -- point 10: no credential in exception attributes ---------------------------------------------


def _refused_url() -> str:
    from tests.reliability.servers import refused_port

    return f"http://127.0.0.1:{refused_port()}"


@pytest.fixture
def reset_server() -> Iterator[RawServer]:
    with RawServer("reset") as server:
        yield server


async def test_the_httpx_cause_carries_no_credential(reset_server: RawServer) -> None:
    secret, token = "sk-cause-" + os.urandom(8).hex(), "pt-cause-" + os.urandom(8).hex()
    custom = "cred-" + os.urandom(8).hex()
    causes: list[BaseException] = []
    for base in (_refused_url(), reset_server.url):
        options: dict[str, Any] = {
            "api_key": secret,
            "platform_api_key": token,
            "base_url": base,
            "max_retries": 0,
            "default_headers": {"X-Upstream-Credential": custom},
        }
        with HaufeCopilotClient(**options) as client:
            for call in (
                lambda: client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user()),
                lambda: client.completions.create(messages=user()),
            ):
                with pytest.raises(errors.APIConnectionError) as caught:
                    call()
                causes.append(caught.value)
        async with AsyncHaufeCopilotClient(**options) as aclient:
            with pytest.raises(errors.APIConnectionError) as acaught:
                await aclient.completions.create(messages=user())
            causes.append(acaught.value)
    for error in causes:
        cause = error.__cause__
        assert isinstance(cause, httpx.TransportError)
        headers = cause.request.headers
        assert "api-key" in headers or "authorization" in headers
        shown = repr(list(headers.multi_items()))
        assert secret not in shown and token not in shown and custom not in shown, shown
        assert str(cause.request.url).startswith("http://127.0.0.1")  # still says where it went


# -- lines that arrive together --------------------------------------------------------------


def _chunk_line(text: str) -> bytes:
    delta = {"content": text, "role": "assistant", "sources": []}
    return json.dumps({"message_id": "m-1", "thread_id": "t-1", "delta": delta}).encode() + b"\n"


GOOD_LINES = _chunk_line("Wort ") + _chunk_line("für ") + _chunk_line("Wort ")
NDJSON_HEAD = {"content-type": "application/x-ndjson"}
BAD_LINES = {
    "not JSON": (b"{not json\n", errors.APIResponseValidationError, "not valid JSON"),
    "an error line": (
        b'{"error_code": "internal_error", "detail": "Der Dienst ist ausgefallen."}\n',
        errors.InternalServerError,
        "ausgefallen",
    ),
    "not a chunk": (b'{"message_id": "m-1"}\n', errors.APIResponseValidationError, "documented shape"),
    # Two chunks on one line, and one split over two lines inside its text: read together as
    # comma-joined lines, they would be as many chunks as lines, one of them "half,way".
    "two chunks on one line, one on two": (
        _chunk_line("a")[:-1] + b", " + _chunk_line("b") + _chunk_line("halfway").replace(b"half", b"half\n"),
        errors.APIResponseValidationError,
        "not valid JSON",
    ),
}


@pytest.mark.parametrize("bad", list(BAD_LINES), ids=list(BAD_LINES))
def test_the_chunks_before_a_bad_line_of_the_same_read_reach_the_caller_first(bad: str) -> None:
    """The server sends good lines and a bad one in one write: the caller gets every good chunk,
    then the error, whose `partial` is exactly what it got (the chunks of one read once went
    nowhere while `partial` claimed them)."""
    payload, error, message = BAD_LINES[bad]
    with RawServer("canned", head=NDJSON_HEAD, payload=GOOD_LINES + payload) as server:
        with HaufeCopilotClient(api_key="sk-x", base_url=server.url, max_retries=0) as client:
            received: list[str] = []
            with pytest.raises(error, match=message) as info:
                for chunk in client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()):
                    received.append(chunk.delta.content)
    assert received == ["Wort ", "für ", "Wort "]
    assert info.value.partial == "Wort für Wort "


@pytest.mark.parametrize("bad", list(BAD_LINES), ids=list(BAD_LINES))
async def test_the_async_client_delivers_the_chunks_before_a_bad_line_too(bad: str) -> None:
    payload, error, message = BAD_LINES[bad]
    with RawServer("canned", head=NDJSON_HEAD, payload=GOOD_LINES + payload) as server:
        async with AsyncHaufeCopilotClient(api_key="sk-x", base_url=server.url, max_retries=0) as client:
            received: list[str] = []
            with pytest.raises(error, match=message) as info:
                async for chunk in client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()):
                    received.append(chunk.delta.content)
    assert received == ["Wort ", "für ", "Wort "]
    assert info.value.partial == "Wort für Wort "


def test_many_good_lines_in_one_read_arrive_whole_and_in_order() -> None:
    """More lines than one batch, some with sources, in one write (the fast path parses a batch
    at once): every chunk, in order, each as it was sent."""
    source = {"content": "§ 3 Abs. 1 BUrlG", "meta_data": {"document_title": "BUrlG"}}
    lines = []
    for index in range(50):
        delta = {"content": f"w{index} ", "role": "assistant", "sources": [source] if index % 7 == 0 else []}
        lines.append(json.dumps({"message_id": "m-1", "thread_id": "t-1", "delta": delta}).encode())
    payload = b"\n".join(lines[:25]) + b"\n\n  \n" + b"\r\n".join(lines[25:]) + b"\n"
    with RawServer("canned", head=NDJSON_HEAD, payload=payload) as server:
        with HaufeCopilotClient(api_key="sk-x", base_url=server.url, max_retries=0) as client:
            chunks = list(client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()))
    assert [c.delta.content for c in chunks] == [f"w{index} " for index in range(50)]
    assert [bool(c.delta.sources) for c in chunks] == [index % 7 == 0 for index in range(50)]
    assert chunks[7].delta.sources[0].content == "§ 3 Abs. 1 BUrlG"


@pytest.mark.parametrize("given_http", [False, True], ids=["own pool", "http_client passed in"])
async def test_every_request_carries_the_standing_headers(given_http: bool) -> None:
    """The pools this package builds carry User-Agent, Accept and Accept-Encoding themselves; an
    `http_client` passed in gets them with each request. Either way they are ours, on a plain
    call (no extra or default headers), sync and async, and on a stream (with its own Accept)."""
    answer = json.dumps({"id": "m", "content": "Hallo", "sources": [], "thread_id": "t"}).encode()
    sync_http, async_http = (httpx.Client(), httpx.AsyncClient()) if given_http else (None, None)
    try:
        with RawServer("canned", head={"content-type": "application/json"}, payload=answer) as server:
            with HaufeCopilotClient(api_key="sk-x", base_url=server.url, http_client=sync_http) as client:
                client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
            async with AsyncHaufeCopilotClient(
                api_key="sk-x", base_url=server.url, http_client=async_http
            ) as async_client:
                await async_client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
            blocking = list(server.requests)
        with RawServer("canned", head=NDJSON_HEAD, payload=GOOD_LINES) as server:
            with HaufeCopilotClient(api_key="sk-x", base_url=server.url, http_client=sync_http) as client:
                assert len(list(client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()))) == 3
            (streamed,) = server.requests
    finally:
        if sync_http is not None and async_http is not None:  # passed in: ours to close
            sync_http.close()
            await async_http.aclose()
    assert len(blocking) == 2
    for request in [*blocking, streamed]:
        assert request.headers["user-agent"].startswith("haufe-copilot-python/")
        assert request.headers["accept-encoding"] == "gzip, deflate"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["api-key"] == "sk-x"
    assert [r.headers["accept"] for r in blocking] == ["application/json"] * 2
    assert streamed.headers["accept"] == "application/x-ndjson"
