"""The core's limiters in LangChain (`HaufeRateLimiter`, on our model and on another
provider's) and in LlamaIndex (`HaufeCopilot(rate_limiter=...)`), against the emulator's
gateway quota and a real redis-server."""

from __future__ import annotations

import copy
import pickle
import secrets
from collections.abc import Iterator

import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from llama_index.core.llms import ChatMessage

from benchmarks.redis_server import RedisServer
from haufe_copilot import InProcessRateLimiter, RedisRateLimiter
from haufe_copilot.rate_limit import parse_rate_limit
from haufe_emulator import EmulatorConfig, EmulatorServer
from langchain_haufe import ChatHaufeCopilot, HaufeRateLimiter
from llama_index_haufe import HaufeCopilot
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY

#: The spread between a turn and the emulator counting the request, on a shared 2-core machine
#: where the emulator runs in the test's own process (docs/scaling.md: choosing the margin).
MARGIN = 0.5


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def gateway() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(api_keys=frozenset({SESSION_API_KEY}), rate_limit=parse_rate_limit("4/s"))
    with EmulatorServer(config) as server:
        yield server


def model(emulator: EmulatorServer, limiter: object, **fields: object) -> ChatHaufeCopilot:
    fields.setdefault("max_retries", 0)
    return ChatHaufeCopilot(
        api_key=SESSION_API_KEY,
        base_url=emulator.url,
        assistant_id=ASSISTANT_ID,
        rate_limiter=limiter,  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )


def test_chat_haufe_copilot_takes_one_reservation_per_request(gateway: EmulatorServer) -> None:
    limiter = InProcessRateLimiter(per_second=4, per_minute=None, margin_seconds=MARGIN)
    chat = model(gateway, HaufeRateLimiter(limiter))
    for _ in range(5):
        chat.invoke(QUESTION)
    assert "".join(str(chunk.content) for chunk in chat.stream(QUESTION))
    # LangChain's acquire before each call, and the core client's before each request: one
    # reservation for both (counting it twice would halve the throughput)
    assert limiter.stats.acquired == 6
    assert (gateway.state.quota.admitted, gateway.state.quota.refused) == (6, 0)


async def test_chat_haufe_copilot_async_and_a_429_reaches_the_shared_block(
    gateway: EmulatorServer, redis_server: RedisServer
) -> None:
    limiter = HaufeRateLimiter.redis(
        redis_server.url, key=secrets.token_hex(6), per_second=4, per_minute=None, margin_seconds=MARGIN
    )
    headers = {
        "x-emulator-fault": "rate_limit_gateway",
        "x-emulator-fault-times": "1",
        "x-emulator-fault-id": secrets.token_hex(6),
        "x-emulator-retry-after-ms": "300",
    }
    chat = model(gateway, limiter, default_headers=headers, max_retries=1)
    await chat.ainvoke([HumanMessage(QUESTION)])
    for _ in range(4):
        await chat.ainvoke([HumanMessage(QUESTION)])
    stats = limiter.haufe_limiter.stats
    assert (stats.acquired, stats.blocks) == (6, 1)  # the retry took its own turn
    assert gateway.state.quota.refused == 0
    await limiter.haufe_limiter.aclose()
    await chat.async_client.aclose()


def test_any_langchain_chat_model_can_use_it(gateway: EmulatorServer, redis_server: RedisServer) -> None:
    limiter = HaufeRateLimiter.redis(
        redis_server.url, key=secrets.token_hex(6), per_second=4, per_minute=None, margin_seconds=MARGIN
    )
    anchor = ChatOpenAI(
        base_url=gateway.url + "/api/v1",
        api_key=SESSION_API_KEY,  # type: ignore[arg-type]
        model="haufe-copilot-default",
        rate_limiter=limiter,
        max_retries=0,
    )
    for _ in range(6):
        anchor.invoke(QUESTION)
    anchor.root_client.close()
    assert limiter.haufe_limiter.stats.acquired == 6
    assert (gateway.state.quota.admitted, gateway.state.quota.refused) == (6, 0)
    limiter.haufe_limiter.close()


def test_copies_share_the_limiter(gateway: EmulatorServer) -> None:
    limiter = HaufeRateLimiter.in_process(per_second=4, per_minute=None, margin_seconds=MARGIN)
    chat = model(gateway, limiter)
    assert copy.deepcopy(chat).rate_limiter is limiter and chat.model_copy().rate_limiter is limiter
    llm = HaufeCopilot(api_key="sk-x", assistant_id=ASSISTANT_ID, rate_limiter=limiter.haufe_limiter)
    assert copy.deepcopy(llm).rate_limiter is limiter.haufe_limiter
    shared = RedisRateLimiter("redis://127.0.0.1:1/0", key="k")
    assert (
        pickle.loads(pickle.dumps(HaufeCopilot(api_key="sk-x", rate_limiter=shared))).rate_limiter is not None
    )


async def test_llama_index_passes_it_to_its_clients(gateway: EmulatorServer) -> None:
    """LlamaIndex's own `rate_limiter` field takes a core limiter: LlamaIndex gates each call
    with it, and the clients the LLM builds use the same turn for the request and report 429s."""
    limiter = InProcessRateLimiter(per_second=4, per_minute=None, margin_seconds=MARGIN)
    llm = HaufeCopilot(
        api_key=SESSION_API_KEY,
        base_url=gateway.url,
        assistant_id=ASSISTANT_ID,
        rate_limiter=limiter,
        max_retries=0,
    )
    for _ in range(3):
        llm.chat([ChatMessage(role="user", content=QUESTION)])
    for _ in range(3):
        await llm.achat([ChatMessage(role="user", content=QUESTION)])
    await llm.aclose()
    llm.close()
    assert limiter.stats.acquired == 6
    assert (gateway.state.quota.admitted, gateway.state.quota.refused) == (6, 0)
