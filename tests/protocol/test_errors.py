"""Classification of error answers (SPEC §2) and the retry decisions, sans I/O."""

from __future__ import annotations

import email.utils
import json

import pytest

from haufe_copilot import errors
from haufe_copilot.errors import (
    APIConnectionError,
    APIStatusError,
    error_from_response,
    error_from_stream_object,
    parse_retry_after,
)
from haufe_copilot.protocol.retry import backoff_seconds, retry_delay
from haufe_emulator.faults import ERROR_CATALOGUE

EXPECTED = {
    "unauthorized": (401, errors.AuthenticationError),
    "attachment_access_forbidden": (403, errors.PermissionDeniedError),
    "assistant_not_available": (403, errors.PermissionDeniedError),
    "assistant_not_found": (404, errors.NotFoundError),
    "resource_not_found": (404, errors.NotFoundError),
    "conflict": (409, errors.ConflictError),
    "attachment_not_unique": (409, errors.ConflictError),
    "incorrect_stack_ending": (400, errors.BadRequestError),
    "validation_error": (422, errors.UnprocessableEntityError),
    "rate_limit_gateway": (429, errors.RateLimitError),
    "internal_server_error": (500, errors.InternalServerError),
    "attachment_document_not_reachable": (502, errors.ServiceUnavailableError),
    "internal_service_error": (503, errors.ServiceUnavailableError),
    "api_timeout_error": (504, errors.GatewayTimeoutError),
}


def test_the_emulator_catalogue_and_the_table_name_the_same_codes() -> None:
    assert set(ERROR_CATALOGUE) == set(EXPECTED)


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_every_documented_code_gives_its_class(code: str) -> None:
    status, cls = EXPECTED[code]
    detail = ERROR_CATALOGUE[code][1]
    body = json.dumps({"error_code": code, "detail": detail}).encode()
    error = error_from_response(status, {"x-request-id": "req-1", "content-type": "application/json"}, body)
    assert type(error) is cls
    assert (error.status_code, error.error_code, error.request_id) == (status, code, "req-1")
    assert error.detail == detail
    assert error.body == {"error_code": code, "detail": detail}
    assert isinstance(error, errors.HaufeCopilotError)
    # the same code inside a 200 stream gets the status of the table
    in_stream = error_from_stream_object({"error_code": code, "detail": detail}, partial="Teil")
    assert type(in_stream) is cls and in_stream.status_code == status and in_stream.partial == "Teil"


def test_code_wins_over_status() -> None:
    error = error_from_response(500, {}, b'{"error_code": "assistant_not_found", "detail": "x"}')
    assert isinstance(error, errors.NotFoundError)


def test_thread_not_found_is_not_found() -> None:
    error = error_from_response(404, {}, b'{"error_code": "thread_not_found", "detail": "Thread not found"}')
    assert isinstance(error, errors.NotFoundError)


def test_the_gateways_message_body_is_a_rate_limit() -> None:
    error = error_from_response(429, {"retry-after": "3"}, b'{"message": "Rate limit exceeded!"}')
    assert isinstance(error, errors.RateLimitError)
    assert error.detail == "Rate limit exceeded!"
    assert error.retry_after == 3.0
    assert "Rate limit exceeded!" in str(error)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (502, errors.ServiceUnavailableError),
        (503, errors.ServiceUnavailableError),
        (504, errors.GatewayTimeoutError),
        (408, APIStatusError),
        (413, APIStatusError),
    ],
)
def test_a_proxys_html_or_empty_body_still_classifies(status: int, cls: type[APIStatusError]) -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    html_error = error_from_response(status, {"content-type": "text/html"}, page)
    assert type(html_error) is cls and html_error.error_code is None
    assert "HTML" in str(html_error) and "502 Bad Gateway" in str(html_error)
    empty_error = error_from_response(status, {}, b"")
    assert type(empty_error) is cls and "empty body" in str(empty_error)


def test_validation_detail_reads_as_fields() -> None:
    body = {
        "error_code": "validation_error",
        "detail": [
            {"loc": ["body", "assistant_id"], "message": "Field required", "type": "missing"},
            {
                "loc": ["body", "messages", 0, "role"],
                "msg": "Input should be 'user'",
                "type": "literal_error",
            },
        ],
    }
    error = error_from_response(422, {}, json.dumps(body).encode())
    assert "body.assistant_id: Field required (missing)" in str(error)
    assert "body.messages.0.role: Input should be 'user'" in str(error)


def test_every_message_says_what_to_do() -> None:
    error = error_from_response(
        401, {}, b'{"error_code": "unauthorized", "detail": "Missing or invalid API key"}'
    )
    assert "HAUFE_COPILOT_API_KEY" in str(error)
    assert repr(error) == "AuthenticationError(status_code=401, error_code='unauthorized', request_id=None)"


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "600"}) == 60.0  # capped
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    date = email.utils.formatdate(1_000_010.0, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=1_000_000.0) == pytest.approx(10.0)


def test_backoff_doubles_with_jitter_and_caps() -> None:
    assert backoff_seconds(0, random_fraction=lambda: 0.0) == 0.5
    assert backoff_seconds(1, random_fraction=lambda: 0.0) == 1.0
    assert backoff_seconds(2, random_fraction=lambda: 1.0) == 1.5
    assert backoff_seconds(10, random_fraction=lambda: 0.0) == 8.0


def _status(code: str) -> APIStatusError:
    status = EXPECTED[code][0]
    return error_from_response(status, {"retry-after-ms": "100"}, json.dumps({"error_code": code}).encode())


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_which_errors_are_retried(code: str) -> None:
    retried = code in {
        "rate_limit_gateway",
        "internal_server_error",
        "attachment_document_not_reachable",
        "internal_service_error",
        "api_timeout_error",
    }
    delay = retry_delay(_status(code), retries_done=0, max_retries=2, replay_unsafe=False)
    assert (delay is not None) == retried
    if retried:
        assert delay == 0.1  # the server's retry-after-ms wins over the backoff
    # a thread continuation is retried only on 429
    on_thread = retry_delay(_status(code), retries_done=0, max_retries=2, replay_unsafe=True)
    assert (on_thread is not None) == (code == "rate_limit_gateway")
    assert retry_delay(_status(code), retries_done=2, max_retries=2, replay_unsafe=False) is None


def test_connection_errors_on_a_thread_are_retried_only_when_nothing_was_sent() -> None:
    refused = APIConnectionError("refused", request_sent=False)
    cut = APIConnectionError("cut", request_sent=True)
    assert retry_delay(refused, retries_done=0, max_retries=2, replay_unsafe=True) is not None
    assert retry_delay(cut, retries_done=0, max_retries=2, replay_unsafe=True) is None
    assert retry_delay(cut, retries_done=0, max_retries=2, replay_unsafe=False) is not None


def test_408_is_the_only_other_status_retried() -> None:
    assert (
        retry_delay(error_from_response(408, {}, b""), retries_done=0, max_retries=1, replay_unsafe=False)
        is not None
    )
    assert (
        retry_delay(error_from_response(413, {}, b""), retries_done=0, max_retries=1, replay_unsafe=False)
        is None
    )
