"""VCR cassettes recorded from the emulator replay the happy paths with no server running.

Replay is the default (`--record-mode=none`), against a base URL where nothing listens, so a
passing test proves the cassette alone answered. Re-record with
`pytest tests/test_cassettes.py --record-mode=rewrite` (the emulator is started for it), or
against the real service as the README describes. VCR replays a stream as one chunk: these
tests check the wire format; that deltas arrive one by one is tested live.
"""

from __future__ import annotations

import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient

from .conftest import ASSISTANT_ID, QUESTION, user

pytestmark = pytest.mark.vcr


def test_blocking_answer_replays(recorded_client: HaufeCopilotClient) -> None:
    answer = recorded_client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(QUESTION))
    assert "§ 622 Abs. 3 BGB" in answer.content
    assert answer.sources[0].meta_data.section == "§ 622 Abs. 3"
    assert answer.thread_id and answer.meta_data.intent


def test_stream_replays(recorded_client: HaufeCopilotClient) -> None:
    chunks = list(recorded_client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user(QUESTION)))
    assert len(chunks) > 10
    text = "".join(c.delta.content for c in chunks)
    assert "§ 622 Abs. 3 BGB" in text
    assert chunks[-1].delta.sources[0].meta_data.section == "§ 622 Abs. 3"


async def test_async_stream_replays(recorded_async_client: AsyncHaufeCopilotClient) -> None:
    answer = await recorded_async_client.assistant.stream(
        assistant_id=ASSISTANT_ID, messages=user(QUESTION)
    ).get_final_answer()
    assert "§ 622 Abs. 3 BGB" in answer.content and len(answer.sources) >= 3


def test_a_thread_continuation_replays(recorded_client: HaufeCopilotClient) -> None:
    first = recorded_client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(QUESTION))
    follow_up = recorded_client.assistant.chat(
        assistant_id=ASSISTANT_ID,
        messages=user("Gilt das auch für Teilzeitkräfte?"),
        thread_id=first.thread_id,
    )
    assert follow_up.thread_id == first.thread_id
    assert any(s.meta_data.section and s.meta_data.section.startswith("§ 622") for s in follow_up.sources)
