"""VCR cassettes recorded from the emulator replay the happy paths with no server running.

Replay is the default (`--record-mode=none`), against a base URL where nothing listens, so a
passing test proves the cassette alone answered. Re-record with
`pytest tests/client/test_cassettes.py --record-mode=rewrite`: against an emulator started for it, or,
with HAUFE_COPILOT_API_KEY, HAUFE_COPILOT_BASE_URL and HAUFE_COPILOT_ASSISTANT_ID set, against
that service (tests/targets.py; the README's "Tests and cassettes"). VCR replays a stream as one chunk: these
tests check the wire format; that deltas arrive one by one is tested live.
"""

from __future__ import annotations

import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient
from tests.conftest import QUESTION, user
from tests.targets import Target

pytestmark = pytest.mark.vcr


def test_blocking_answer_replays(recorded_client: HaufeCopilotClient, recorded: Target) -> None:
    answer = recorded_client.assistant.chat(assistant_id=recorded.assistant_id, messages=user(QUESTION))
    assert "§ 622 Abs. 3 BGB" in answer.content
    assert answer.sources[0].meta_data.section == "§ 622 Abs. 3"
    assert answer.thread_id and answer.meta_data.intent


def test_stream_replays(recorded_client: HaufeCopilotClient, recorded: Target) -> None:
    stream = recorded_client.assistant.stream(assistant_id=recorded.assistant_id, messages=user(QUESTION))
    chunks = list(stream)
    assert len(chunks) > 10
    text = "".join(c.delta.content for c in chunks)
    assert "§ 622 Abs. 3 BGB" in text
    assert chunks[-1].delta.sources[0].meta_data.section == "§ 622 Abs. 3"


async def test_async_stream_replays(recorded_async_client: AsyncHaufeCopilotClient, recorded: Target) -> None:
    answer = await recorded_async_client.assistant.stream(
        assistant_id=recorded.assistant_id, messages=user(QUESTION)
    ).get_final_answer()
    assert "§ 622 Abs. 3 BGB" in answer.content and len(answer.sources) >= 3


def test_a_thread_continuation_replays(recorded_client: HaufeCopilotClient, recorded: Target) -> None:
    first = recorded_client.assistant.chat(assistant_id=recorded.assistant_id, messages=user(QUESTION))
    follow_up = recorded_client.assistant.chat(
        assistant_id=recorded.assistant_id,
        messages=user("Gilt das auch für Teilzeitkräfte?"),
        thread_id=first.thread_id,
    )
    assert follow_up.thread_id == first.thread_id
    assert any(s.meta_data.section and s.meta_data.section.startswith("§ 622") for s in follow_up.sources)
