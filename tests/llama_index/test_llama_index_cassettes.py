"""VCR cassettes recorded from the emulator replay `HaufeCopilot`'s happy paths with no server.

Replay is the default (`--record-mode=none`), against a base URL where nothing listens, so a
passing test proves the cassette alone answered. Re-record with
`pytest tests/llama_index/test_llama_index_cassettes.py --record-mode=rewrite` (against an emulator started
for it, or the service the environment names: tests/targets.py). The key is filtered from
every cassette (`vcr_config`), and `test_secrets` scans them. VCR replays a stream as one chunk:
that deltas arrive one by one is tested live.
"""

from __future__ import annotations

import pytest
from llama_index.core.tools import FunctionTool

from llama_index_haufe import HaufeCopilot, HaufeCopilotQueryEngine
from tests.conftest import QUESTION
from tests.targets import Target

from .test_llama_index_support import user

pytestmark = pytest.mark.vcr


def get_weather(city: str) -> str:
    """Das aktuelle Wetter einer Stadt."""
    return f"Sonnig in {city}, 21 Grad"


@pytest.fixture
def recorded_llm(recorded: Target) -> HaufeCopilot:
    return HaufeCopilot(**recorded.connection(), assistant_id=recorded.assistant_id, max_retries=0)


def test_chat_replays(recorded_llm: HaufeCopilot) -> None:
    message = recorded_llm.chat([user(QUESTION)]).message
    assert "§ 622 Abs. 3 BGB" in (message.content or "")
    assert message.additional_kwargs["sources"][0]["meta_data"]["section"] == "§ 622 Abs. 3"
    assert message.additional_kwargs["thread_action"] == "new"


def test_stream_chat_replays(recorded_llm: HaufeCopilot) -> None:
    responses = list(recorded_llm.stream_chat([user(QUESTION)]))
    assert len(responses) > 10
    text = "".join(r.delta or "" for r in responses)
    assert "§ 622 Abs. 3 BGB" in text and responses[-1].message.content == text
    assert len(responses[-1].message.additional_kwargs["sources"]) >= 3


def test_a_thread_continuation_replays(recorded_llm: HaufeCopilot) -> None:
    first = recorded_llm.chat([user(QUESTION)]).message
    follow_up = recorded_llm.chat([user(QUESTION), first, user("Gilt das auch für Teilzeitkräfte?")]).message
    assert follow_up.additional_kwargs["thread_action"] == "continued"
    assert follow_up.additional_kwargs["thread_id"] == first.additional_kwargs["thread_id"]


async def test_async_stream_chat_replays(recorded_llm: HaufeCopilot) -> None:
    responses = [r async for r in await recorded_llm.astream_chat([user(QUESTION)])]
    assert "§ 622 Abs. 3 BGB" in (responses[-1].message.content or "")


def test_tool_calls_replay(recorded_llm: HaufeCopilot) -> None:
    # an explicit description: the default one holds the signature, whose text varies by version
    tool = FunctionTool.from_defaults(get_weather, description="Das aktuelle Wetter einer Stadt.")
    response = recorded_llm.chat_with_tools([tool], user_msg="get_weather für Berlin")
    (call,) = recorded_llm.get_tool_calls_from_response(response)
    assert call.tool_name == "get_weather" and call.tool_kwargs == {"city": "Berlin"}


def test_the_query_engine_replays(recorded_llm: HaufeCopilot) -> None:
    response = HaufeCopilotQueryEngine(llm=recorded_llm).query(QUESTION)
    assert response.source_nodes[0].score == 1.0
    assert response.source_nodes[0].node.metadata["section"] == "§ 622 Abs. 3"
