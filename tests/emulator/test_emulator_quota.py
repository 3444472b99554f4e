"""The emulator's gateway quota (`--rate-limit 15/s,60/min`): over-quota requests get the
gateway's 429 with Retry-After, per key, and are not counted against the quota."""

from __future__ import annotations

import httpx
import pytest

from haufe_copilot.rate_limit import Window, parse_rate_limit
from haufe_emulator import EmulatorConfig, EmulatorServer
from haufe_emulator.cli import _parser, _rate_limit
from haufe_emulator.quota import QuotaLedger, quota_key
from tests.conftest import ASSISTANT_ID, QUESTION

OTHER_KEY = "sk-test-other-key"


def ask(server: EmulatorServer, key: str) -> httpx.Response:
    return httpx.post(
        server.url + "/agents/v1/chat/completions",
        headers={"api-key": key},
        json={"assistant_id": ASSISTANT_ID, "messages": [{"role": "user", "content": QUESTION}]},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        ("rate_limit_gateway", {"error_code": "rate_limit_gateway", "detail": "Rate limit exceeded"}),
        ("rate_limit_message", {"message": "Rate limit exceeded!"}),
    ],
)
def test_over_the_quota_the_gateway_answers_429_with_retry_after(answer: str, body: object) -> None:
    # per minute, so that a slow machine cannot spread the requests out of the window (the
    # sliding itself is shown on the ledger, with its clock given)
    config = EmulatorConfig(
        api_keys=frozenset({"sk-a", OTHER_KEY}),
        rate_limit=parse_rate_limit("2/min"),
        rate_limit_answer=answer,
    )
    with EmulatorServer(config) as server:
        assert [ask(server, "sk-a").status_code for _ in range(2)] == [200, 200]
        refused = ask(server, "sk-a")
        assert refused.status_code == 429 and refused.json() == body
        assert 30 <= int(refused.headers["Retry-After"]) <= 60
        assert int(refused.headers["retry-after-ms"]) <= 60_000
        assert ask(server, OTHER_KEY).status_code == 200  # every key has a quota of its own
        assert ask(server, "sk-a").status_code == 429
        assert (server.state.quota.admitted, server.state.quota.refused) == (3, 2)


def test_the_ledger_slides_and_keys_are_never_kept_as_they_are() -> None:
    ledger, windows = QuotaLedger(), (Window(2, 1.0),)
    assert [ledger.admit("k", windows, now=t) for t in (0.0, 0.5)] == [None, None]
    assert ledger.admit("k", windows, now=0.9) == pytest.approx(0.1)
    assert ledger.admit("k", windows, now=1.0) is None  # the one at 0.0 has left the window
    assert ledger.admit("k", windows, now=1.2) == pytest.approx(0.3)
    digest = quota_key({"authorization": "Bearer sk-secret"})
    assert digest == quota_key({"api-key": "sk-secret"}) and digest is not None and "sk-secret" not in digest
    assert quota_key({}) is None


def test_the_cli_takes_the_quota() -> None:
    args = _parser().parse_args(
        ["emulator", "--rate-limit", "15/s,60/min", "--rate-limit-answer", "rate_limit_message"]
    )
    assert _rate_limit(args.rate_limit) == (Window(15, 1.0), Window(60, 60.0))
    assert args.rate_limit_answer == "rate_limit_message"
    assert _rate_limit(None) == ()
    with pytest.raises(SystemExit, match="--rate-limit: A rate limit is a list such as 15/s,60/min"):
        _rate_limit("fifteen")
