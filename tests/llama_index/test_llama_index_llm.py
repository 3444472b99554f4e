"""`HaufeCopilot` against the emulator over real HTTP: the chat and complete families, sources and
threads in `additional_kwargs`, thread continuation from the history (SPEC §4), stop sequences,
retries and the thread fallback (SPEC §2), typed errors, secrets, pickling, and event loops."""

from __future__ import annotations

import asyncio
import copy
import gc
import itertools
import logging
import pickle
import secrets
import subprocess
import sys
import time
import warnings
from typing import Any

import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock

from haufe_copilot import errors
from haufe_copilot.conversation.threads import THREAD_METADATA_KEYS
from haufe_emulator import EmulatorServer
from llama_index_haufe import HaufeCopilot
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY, attempts

from .test_llama_index_support import (
    ASSISTANT,
    ASSISTANT_STREAM,
    make_llm,
    received,
    recording,
    user,
)

FOLLOW_UP = "Gilt das auch für Teilzeitkräfte?"
THIRD = "Und für Minijobber?"


def assert_answer_metadata(metadata: dict[str, Any], action: str = "new") -> None:
    assert set(THREAD_METADATA_KEYS) <= set(metadata)
    assert metadata["thread_action"] == action
    assert metadata["thread_id"] and metadata["message_id"] and metadata["created_at"]
    assert isinstance(metadata["meta_data"], dict)  # the stream's NDJSON has none: all None there
    sources = metadata["sources"]
    assert 3 <= len(sources) <= 5
    assert all(isinstance(s, dict) and s["content"] and s["meta_data"]["section"] for s in sources)


# -- the chat family ------------------------------------------------------------------------


def test_chat_answers_with_sources_and_thread_metadata(llm: HaufeCopilot) -> None:
    response = llm.chat([user(QUESTION)])
    message = response.message
    assert message.role == MessageRole.ASSISTANT
    assert "§ 622 Abs. 3 BGB" in (message.content or "")
    assert_answer_metadata(message.additional_kwargs)
    assert message.additional_kwargs["meta_data"]["intent"]
    assert message.additional_kwargs["sources"][0]["meta_data"]["section"] == "§ 622 Abs. 3"
    assert response.delta is None and response.raw == message.additional_kwargs


def test_stream_chat_deltas_arrive_one_by_one(llm: HaufeCopilot) -> None:
    arrivals: list[float] = []
    responses = []
    for response in llm.stream_chat([user(QUESTION)], extra_headers={"x-emulator-delta-delay": "0.01"}):
        arrivals.append(time.monotonic())
        responses.append(response)
    *pieces, final = responses
    assert len(pieces) > 10 and all(p.delta for p in pieces)
    text = ""
    for piece in pieces:  # each carries the cumulative message and the new delta, no metadata
        text += piece.delta or ""
        assert piece.message.content == text
        assert piece.message.additional_kwargs == {}
    assert final.delta == "" and final.message.content == text
    assert_answer_metadata(final.message.additional_kwargs)
    # one by one, as the server sent them: spread over the stream, not delivered in one go
    assert arrivals[-2] - arrivals[0] > 0.25
    assert sum(1 for a, b in itertools.pairwise(arrivals) if b - a > 0.004) > len(pieces) / 2
    assert text == llm.chat([user(QUESTION)]).message.content


async def test_achat_and_astream_chat_are_asynchronous(llm: HaufeCopilot) -> None:
    response = await llm.achat([user(QUESTION)])
    assert_answer_metadata(response.message.additional_kwargs)
    # two streams interleave on one event loop: really asynchronous
    order: list[int] = []

    async def consume(index: int) -> str:
        responses = []
        async for response in await llm.astream_chat(
            [user(QUESTION)], extra_headers={"x-emulator-delta-delay": "0.005"}
        ):
            order.append(index)
            responses.append(response)
        last = responses[-1]
        assert last.delta == ""
        assert_answer_metadata(last.message.additional_kwargs)
        return last.message.content or ""

    first, second = await asyncio.gather(consume(1), consume(2))
    assert first == second == response.message.content
    switches = sum(1 for a, b in itertools.pairwise(order) if a != b)
    assert switches > 5


def test_the_complete_family(llm: HaufeCopilot) -> None:
    completion = llm.complete(QUESTION)
    assert "§ 622 Abs. 3 BGB" in completion.text
    assert_answer_metadata(completion.additional_kwargs)
    streamed = list(llm.stream_complete(QUESTION))
    assert "".join(c.delta or "" for c in streamed) == completion.text == streamed[-1].text
    assert_answer_metadata(streamed[-1].additional_kwargs)

    async def run() -> None:
        acompletion = await llm.acomplete(QUESTION)
        assert acompletion.text == completion.text
        astreamed = [c async for c in await llm.astream_complete(QUESTION)]
        assert "".join(c.delta or "" for c in astreamed) == completion.text
        assert_answer_metadata(astreamed[-1].additional_kwargs)

    asyncio.run(run())


# -- threads are memory (SPEC §4) ----------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
def test_three_turns_continue_the_thread_sending_only_the_new_message(
    emulator: EmulatorServer, streaming: bool
) -> None:
    user_id = "kunde-" + secrets.token_hex(6)
    llm = make_llm(emulator, user_id=user_id)
    path = ASSISTANT_STREAM if streaming else ASSISTANT

    def ask(history: list[ChatMessage]) -> ChatMessage:
        if streaming:
            return list(llm.stream_chat(history))[-1].message
        return llm.chat(history).message

    history = [user(QUESTION)]
    answers: list[ChatMessage] = []
    for question in (None, FOLLOW_UP, THIRD):
        if question is not None:
            history += [answers[-1], user(question)]
        answers.append(ask(history))
    sent = [b for b in emulator.state.bodies(path) if isinstance(b, dict) and b.get("user_id") == user_id]
    assert [b["messages"] for b in sent] == [
        [{"role": "user", "content": QUESTION}],
        [{"role": "user", "content": FOLLOW_UP}],
        [{"role": "user", "content": THIRD}],
    ]
    threads = {a.additional_kwargs["thread_id"] for a in answers}
    assert len(threads) == 1
    assert [a.additional_kwargs["thread_action"] for a in answers] == ["new", "continued", "continued"]
    queries = [
        r.query
        for r in list(emulator.state.requests)
        if r.path == path and isinstance(r.body, dict) and r.body.get("user_id") == user_id
    ]
    assert [q.get("thread_id") for q in queries] == [None, *threads, *threads]
    # the chain: each answer's parent is the previous answer's digest
    assert answers[1].additional_kwargs["parent_digest"] == answers[0].additional_kwargs["history_digest"]


def test_an_edited_history_opens_a_new_thread(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str
) -> None:
    first = llm.chat([user(QUESTION)]).message
    edited = [user("Welche Kündigungsfristen gelten nach der Probezeit?"), first, user(FOLLOW_UP)]
    answer = llm.chat(edited).message.additional_kwargs
    assert answer["thread_action"] == "new" and answer["thread_id"] != first.additional_kwargs["thread_id"]
    assert answer["thread_reason"].startswith("history_mismatch")
    last = received(emulator, marker, ASSISTANT)[-1]
    assert len(last.body["messages"]) == 3 and "thread_id" not in last.query


def test_a_trimmed_history_keeps_its_thread_and_system_prompts_are_sent_once(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str
) -> None:
    system = ChatMessage(role=MessageRole.SYSTEM, content="Antworte knapp.")
    first = llm.chat([system, user(QUESTION)]).message
    second = llm.chat([system, user(QUESTION), first, user(FOLLOW_UP)]).message
    # a memory that drops the oldest exchange (keeping its system prompt) keeps the thread
    third = llm.chat([system, user(FOLLOW_UP), second, user(THIRD)]).message
    assert third.additional_kwargs["thread_action"] == "continued"
    changed = ChatMessage(role=MessageRole.SYSTEM, content="Antworte ausführlich.")
    fourth = llm.chat([changed, user(THIRD), third, user("Und für Auszubildende?")]).message
    assert fourth.additional_kwargs["thread_action"] == "continued"
    sent = [r.body["messages"] for r in received(emulator, marker, ASSISTANT)]
    assert sent == [
        [{"role": "system", "content": "Antworte knapp."}, {"role": "user", "content": QUESTION}],
        [{"role": "user", "content": FOLLOW_UP}],
        [{"role": "user", "content": THIRD}],
        [
            {"role": "system", "content": "Antworte ausführlich."},
            {"role": "user", "content": "Und für Auszubildende?"},
        ],
    ]


def test_per_call_keywords(llm: HaufeCopilot, emulator: EmulatorServer, marker: str) -> None:
    first = llm.chat([user(QUESTION)], user_id="u-per-call").message
    thread_id = first.additional_kwargs["thread_id"]
    named = llm.chat([user(FOLLOW_UP)], thread_id=thread_id).message.additional_kwargs
    assert named["thread_action"] == "named" and named["thread_id"] == thread_id
    stateless = llm.chat([user(QUESTION), first, user(FOLLOW_UP)], stateless=True).message
    assert stateless.additional_kwargs["thread_action"] == "stateless"
    requests = received(emulator, marker, ASSISTANT)
    assert requests[0].body["user_id"] == "u-per-call"
    assert requests[1].query["thread_id"] == thread_id and requests[1].body["messages"] == [
        {"role": "user", "content": FOLLOW_UP}
    ]
    assert len(requests[2].body["messages"]) == 3 and "thread_id" not in requests[2].query
    with pytest.raises(errors.NotFoundError):
        llm.chat([user(QUESTION)], assistant_id="no-such-assistant")
    assert received(emulator, marker, ASSISTANT)[-1].body["assistant_id"] == "no-such-assistant"


def test_stop_is_applied_by_the_client_and_sampling_is_ignored_with_a_debug_line(
    emulator: EmulatorServer, marker: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="llama_index_haufe")
    full = make_llm(emulator, marker).chat([user(QUESTION)]).message.content or ""
    stop = full.split()[6]
    llm = make_llm(emulator, marker, temperature=0.2, max_tokens=50, stop=[stop])
    answer = llm.chat([user(QUESTION)]).message.content or ""
    assert answer == full[: full.index(stop)] and stop not in answer
    streamed = list(llm.stream_chat([user(QUESTION)]))
    assert "".join(r.delta or "" for r in streamed) == answer
    assert streamed[-1].additional_kwargs == {"stopped": True}
    per_call = llm.chat([user(QUESTION)], stop=[full.split()[3]]).message.content or ""
    assert per_call == full[: full.index(full.split()[3])]
    assert "ignoring ['max_tokens', 'temperature']" in caplog.text
    assert all("temperature" not in str(body) for body in (r.body for r in received(emulator, marker)))


def test_a_stream_is_retried_before_its_first_delta(emulator: EmulatorServer, fault_id: str) -> None:
    faults = {
        "x-emulator-fault": "internal_server_error",
        "x-emulator-fault-times": "1",
        "x-emulator-fault-id": fault_id,
        "x-emulator-retry-after-ms": "1",
    }
    llm = make_llm(emulator)
    responses = list(llm.stream_chat([user(QUESTION)], extra_headers=faults))
    assert "§ 622 Abs. 3 BGB" in (responses[-1].message.content or "")
    assert attempts(emulator, "x-emulator-fault-id", fault_id) == 2
    with pytest.raises(errors.InternalServerError):
        list(
            make_llm(emulator, max_retries=0).stream_chat(
                [user(QUESTION)], extra_headers={**faults, "x-emulator-fault-id": fault_id + "-b"}
            )
        )


def test_a_failed_continuation_falls_back_to_a_new_thread(
    llm: HaufeCopilot, emulator: EmulatorServer, marker: str, fault_id: str
) -> None:
    first = llm.chat([user(QUESTION)]).message
    faults = {
        "x-emulator-fault": "internal_server_error",
        "x-emulator-fault-times": "1",
        "x-emulator-fault-id": fault_id,
    }
    history = [user(QUESTION), first, user(FOLLOW_UP)]
    last = list(llm.stream_chat(history, extra_headers=faults))[-1].message.additional_kwargs
    assert last["thread_action"] == "new" and last["thread_reason"].startswith("thread_failed")
    assert last["thread_id"] != first.additional_kwargs["thread_id"]
    failed, retried = received(emulator, marker, ASSISTANT_STREAM)
    assert failed.query["thread_id"] == first.additional_kwargs["thread_id"]
    assert len(retried.body["messages"]) == 3 and "thread_id" not in retried.query


def test_errors_are_typed(emulator: EmulatorServer, llm: HaufeCopilot) -> None:
    wrong_key = HaufeCopilot(api_key="sk-wrong-key-123", base_url=emulator.url, assistant_id=ASSISTANT_ID)
    with pytest.raises(errors.AuthenticationError):
        wrong_key.chat([user(QUESTION)])
    with pytest.raises(errors.ConfigurationError, match="HAUFE_COPILOT_ASSISTANT_ID"):
        make_llm(emulator, assistant_id=None).chat([user(QUESTION)])
    with pytest.raises(errors.InvalidRequestError, match="empty"):
        llm.chat([])
    image = ChatMessage(
        role="user", blocks=[TextBlock(text="Was zeigt das?"), ImageBlock(url="https://x/y.png")]
    )
    with pytest.raises(errors.InvalidRequestError, match="text only"):
        llm.chat([image])


def test_the_environment_supplies_key_assistant_and_url(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAUFE_COPILOT_API_KEY", SESSION_API_KEY)
    monkeypatch.setenv("HAUFE_COPILOT_ASSISTANT_ID", ASSISTANT_ID)
    monkeypatch.setenv("HAUFE_COPILOT_BASE_URL", emulator.url)
    llm = HaufeCopilot()
    assert llm.assistant_id == ASSISTANT_ID and llm.api_key is None
    assert llm.chat([user(QUESTION)]).message.additional_kwargs["sources"]


def test_metadata() -> None:
    llm = HaufeCopilot(assistant_id="a", api_key="sk-unused-123", model="gpt-x", max_tokens=300)
    meta = llm.metadata
    assert meta.is_chat_model and meta.is_function_calling_model
    assert meta.model_name == "gpt-x" and meta.num_output == 300 and meta.context_window == 128_000
    assert HaufeCopilot(api_key="sk-unused-123").metadata.model_name == "haufe-copilot"
    assert HaufeCopilot.class_name() == "HaufeCopilot"


# -- secrets, pickling, event loops --------------------------------------------------------------


def test_the_key_never_shows(emulator: EmulatorServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    llm = make_llm(
        emulator,
        platform_api_key=SESSION_API_KEY,
        default_headers={"x-api-key": SESSION_API_KEY, "x-trace": "1"},
        timeout=httpx.Timeout(10.0),
    )
    texts = [
        repr(llm),
        str(llm),
        str(llm.to_dict()),
        llm.to_json(),
        llm.model_dump_json(),
        str(llm.to_payload()),
    ]
    with recording() as recorder:
        llm.chat([user(QUESTION)])
        list(llm.stream_chat([user(QUESTION)]))
        llm.complete(QUESTION)
    texts += [repr(event) for event in recorder.events]
    with pytest.raises(errors.AuthenticationError) as info:
        HaufeCopilot(api_key="sk-wrong-key-123", base_url=emulator.url, assistant_id=ASSISTANT_ID).chat(
            [user(QUESTION)]
        )
    texts += [str(info.value), repr(info.value), caplog.text]
    assert "api-key': '<redacted>'" in caplog.text  # the client logged its requests, redacted
    for text in texts:
        assert SESSION_API_KEY not in text
    assert "api_key" not in llm.to_dict() and "platform_api_key" not in llm.to_dict()
    # Redacted by the one rule both adapters share, the header's name kept (not its value).
    assert llm.to_dict()["default_headers"] == {"x-api-key": "<redacted>", "x-trace": "1"}
    with pytest.warns(UserWarning, match="redacted when serialised"):
        restored = HaufeCopilot.from_json(llm.to_json())
    assert restored.default_headers == {"x-trace": "1"}
    assert restored.timeout == httpx.Timeout(10.0) and restored.api_key is None


def test_pickle_and_deepcopy_after_sync_and_async_calls(
    llm: HaufeCopilot, caplog: pytest.LogCaptureFixture
) -> None:
    llm.chat([user(QUESTION)])
    asyncio.run(llm.achat([user(QUESTION)]))
    assert llm._clients.built == {"sync", "async"}
    for clone in (pickle.loads(pickle.dumps(llm)), copy.deepcopy(llm)):
        assert isinstance(clone, HaufeCopilot) and clone is not llm
        assert clone._clients.built == set()
        assert clone.api_key is not None and clone.api_key.get_secret_value() == SESSION_API_KEY
        assert clone.chat([user(QUESTION)]).message.additional_kwargs["sources"]
        assert asyncio.run(clone.achat([user(QUESTION)])).message.content
        clone.close()
    assert llm._clients.built == {"sync", "async"}  # the original keeps its clients
    # a client you own is shared by a deep copy, and by a pickle read in this process (in
    # another one it cannot exist: tests/adapters/test_adapter_settings.py shows that case)
    with httpx.Client() as http:
        owned = llm.model_copy(update={"http_client": http})
        assert copy.deepcopy(owned).http_client is http
        with caplog.at_level(logging.WARNING):
            assert pickle.loads(pickle.dumps(owned)).http_client is http
        assert "http_client" not in caplog.text
    llm.close()


def test_twenty_event_loops_one_llm_no_resource_warning(llm: HaufeCopilot) -> None:
    async def one(index: int) -> str:
        if index % 2:
            responses = [response async for response in await llm.astream_chat([user(QUESTION)])]
            return responses[-1].message.content or ""
        return (await llm.achat([user(QUESTION)])).message.content or ""

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answers = {asyncio.run(one(index)) for index in range(20)}
        gc.collect()
    assert len(answers) == 1
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [
        str(w.message) for w in caught
    ]


# -- imports -------------------------------------------------------------------------------------


def test_importable_as_llama_index_llms_haufe_beside_llama_index_core() -> None:
    from llama_index.llms.haufe import HaufeCopilot as Reexported

    assert Reexported is HaufeCopilot
    code = (
        "import sys\n"
        "import llama_index.core\n"
        "import llama_index.llms.haufe as haufe\n"
        "from llama_index.core.llms import LLM\n"
        "assert issubclass(haufe.HaufeCopilot, LLM)\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('langchain'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""  # nothing from LangChain


def test_streamed_responses_are_what_validation_would_build() -> None:
    """Responses are copies of validated prototypes (see haufe_copilot/protocol/model_copy.py): equal
    to validated ones, each with its own containers."""
    from llama_index.core.base.llms.types import ChatResponse

    from haufe_copilot.conversation.turns import AnswerDelta
    from haufe_copilot.protocol.model_copy import copy_with
    from llama_index_haufe._responses import _copy, assistant_delta

    assert _copy is copy_with  # the fast copy makes what pydantic's model_copy makes
    first = assistant_delta("Wort ", AnswerDelta(text="Wort ", message_id="m1"))
    second = assistant_delta("Wort Satz", AnswerDelta(text="Satz", message_id="m1"))
    assert first == ChatResponse(
        message=ChatMessage(role=MessageRole.ASSISTANT, content="Wort "),
        delta="Wort ",
        raw={"message_id": "m1", "delta": "Wort "},
    )
    first.message.additional_kwargs["seen"] = True
    first.additional_kwargs["seen"] = True
    first.message.blocks.append(TextBlock(text="!"))
    assert second.message.additional_kwargs == {} and second.additional_kwargs == {}
    assert [block.text for block in second.message.blocks if isinstance(block, TextBlock)] == ["Wort Satz"]
    assert second.message.content == "Wort Satz"


def test_a_copy_with_other_settings_builds_its_own_clients(llm: HaufeCopilot) -> None:
    llm.chat([user(QUESTION)])
    asyncio.run(llm.achat([user(QUESTION)]))
    elsewhere = llm.model_copy(update={"base_url": "http://127.0.0.1:9", "max_retries": 0})
    assert elsewhere._clients.built == set()
    with pytest.raises(errors.APIConnectionError):
        elsewhere.chat([user(QUESTION)])
    with pytest.raises(errors.APIConnectionError):
        asyncio.run(elsewhere.achat([user(QUESTION)]))
    assert llm.chat([user(QUESTION)]).message.additional_kwargs["sources"]  # the original keeps its own
    assert llm._clients.built == {"sync", "async"}
