"""A user's tests of an app built on Haufe Copilot, with the emulator's pytest plugin: no account, no
network, the same answers on every run.

    pytest examples/test_app_with_the_kit.py

The `haufe_emulator` fixture (installed with `pip install 'haufe-copilot[emulator]'`) starts an
emulator (an EmulatorServer on a free loopback port) for each test and points
HAUFE_COPILOT_API_KEY, HAUFE_COPILOT_BASE_URL and HAUFE_COPILOT_ASSISTANT_ID at it, so the app
below builds its models with no arguments, as it does in production. Each test scripts what the
assistant answers, then asserts on what the app made of it and on what the app sent.
docs/testing.md walks through these tests.
"""

from __future__ import annotations

import re

import pytest
from langchain.agents import create_agent
from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.tools import tool
from llama_index.core.llms import ChatMessage

from haufe_copilot import APITimeoutError, HaufeCopilotError
from haufe_emulator.scripts import source
from langchain_haufe import ChatHaufeCopilot, HaufeCopilotRetriever
from llama_index_haufe import HaufeCopilot

# -- the app under test (in a real project: `from myapp import ...`) --------------------------

PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Beantworte die Frage nur mit diesen Auszügen:\n{context}"), ("human", "{question}")]
)
APOLOGY = "Der Dienst ist gerade nicht erreichbar."


def format_passages(documents: list[Document]) -> str:
    return "\n".join(f"[{n}] {d.page_content}" for n, d in enumerate(documents, start=1))


def rag_answer(question: str) -> str:
    """The app's RAG chain: the passages Haufe Copilot cites, then an answer grounded in them."""
    chain = (
        {"context": HaufeCopilotRetriever(k=3) | format_passages, "question": RunnablePassthrough()}
        | PROMPT
        | ChatHaufeCopilot()
    )
    return str(chain.invoke(question).content)


def streamed_answer(question: str) -> str:
    """The app's chat endpoint: the answer streamed; an apology where the service breaks off."""
    text = ""
    try:
        for chunk in ChatHaufeCopilot(max_retries=0).stream(question):
            text += str(chunk.content)
    except HaufeCopilotError:
        return f"{text.rstrip()} … {APOLOGY}" if text else APOLOGY
    return text


@tool
def kuendigungsfrist(jahre: int) -> str:
    """Die Kündigungsfrist des Arbeitgebers nach § 622 Abs. 2 BGB bei `jahre` Jahren Betriebszugehörigkeit."""
    return "3 Monate zum Ende eines Kalendermonats" if jahre >= 8 else "siehe § 622 BGB"


def agent_reply(question: str) -> str:
    agent = create_agent(ChatHaufeCopilot(), tools=[kuendigungsfrist])
    result = agent.invoke({"messages": [("user", question)]})
    return str(result["messages"][-1].content)


# -- the tests --------------------------------------------------------------------------------

PROBEZEIT = "Welche Kündigungsfrist gilt in der Probezeit?"
PASSAGE = source(
    "§ 622 Abs. 3 BGB: Während einer vereinbarten Probezeit, längstens für die Dauer von sechs "
    "Monaten, kann das Arbeitsverhältnis mit einer Frist von zwei Wochen gekündigt werden.",
    document_title="Bürgerliches Gesetzbuch (BGB)",
    section="§ 622 Abs. 3",
)


def test_the_rag_chain_answers_from_the_cited_passage(haufe_emulator):
    haufe_emulator.on("Probezeit", api="assistant").answer("Zwei Wochen.", sources=[PASSAGE])
    haufe_emulator.on("Probezeit", api="assistant").answer(
        "In der Probezeit: zwei Wochen (§ 622 Abs. 3 BGB)."
    )

    assert rag_answer(PROBEZEIT) == "In der Probezeit: zwei Wochen (§ 622 Abs. 3 BGB)."

    # what the app sent: the retriever asked the question, the model got the passage as context
    retrieval, generation = haufe_emulator.received("assistant")
    assert retrieval.question == generation.question == PROBEZEIT
    system = generation.body["messages"][0]
    assert system["role"] == "system"
    assert "[1] § 622 Abs. 3 BGB: Während einer vereinbarten Probezeit" in system["content"]
    assert generation.headers["api-key"] == "<redacted>"  # the record keeps no credential


@pytest.mark.haufe_emulator(strict=True)
def test_the_agent_calls_its_tool_and_answers_with_the_result(haufe_emulator):
    question = "Ich bin seit 8 Jahren im Betrieb. Welche Frist gilt?"
    haufe_emulator.on("8 Jahren", api="completions").call_tool("kuendigungsfrist", {"jahre": 8})
    haufe_emulator.on("8 Jahren", api="completions").answer("Ihr Arbeitgeber muss 3 Monate einhalten.")

    assert agent_reply(question) == "Ihr Arbeitgeber muss 3 Monate einhalten."

    first, second = haufe_emulator.received("completions")
    assert [t["function"]["name"] for t in first.body["tools"]] == ["kuendigungsfrist"]
    tool_message = second.body["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["content"] == "3 Monate zum Ende eines Kalendermonats"


def test_a_stream_that_breaks_off_ends_with_an_apology(haufe_emulator):
    haufe_emulator.on(api="assistant", streamed=True).answer("Zwei Wochen in der Probezeit.").fail(
        "internal_service_error", after=2
    )

    assert streamed_answer(PROBEZEIT) == f"Zwei Wochen … {APOLOGY}"
    (stream,) = haufe_emulator.streams
    assert (stream.deltas_sent, stream.outcome) == (2, "error")


def test_a_rate_limited_call_is_retried(haufe_emulator):
    haufe_emulator.fault(api="assistant", error="rate_limit_gateway", retry_after="0", times=1)

    answer = ChatHaufeCopilot().invoke(PROBEZEIT)

    assert "§ 622 Abs. 3 BGB" in str(answer.content)  # without a script: the emulator's own answer
    assert len(haufe_emulator.received("assistant")) == 2  # the 429, then the retry


def test_a_stalled_stream_times_out(haufe_emulator):
    haufe_emulator.on(PROBEZEIT).answer("Zwei Wochen in der Probezeit.").stall(10, after=1)

    with pytest.raises(APITimeoutError):
        list(ChatHaufeCopilot(timeout=0.5, max_retries=0).stream(PROBEZEIT))


def test_the_llama_index_llm_gets_the_scripted_answer_and_sources(haufe_emulator):
    haufe_emulator.on(re.compile(r"Urlaubstage")).answer(
        "Mindestens 24 Werktage (§ 3 BUrlG).",
        sources=[source("§ 3 BUrlG: ...", document_title="Bundesurlaubsgesetz (BUrlG)", section="§ 3")],
    )

    response = HaufeCopilot().chat([ChatMessage(role="user", content="Wie viele Urlaubstage?")])

    assert response.message.content == "Mindestens 24 Werktage (§ 3 BUrlG)."
    (cited,) = response.message.additional_kwargs["sources"]
    assert cited["meta_data"] == {"document_title": "Bundesurlaubsgesetz (BUrlG)", "section": "§ 3"}


def test_one_emulator_for_many_tests(haufe_emulator_session):
    haufe_emulator_session.reset()  # what earlier tests scripted or sent is forgotten
    haufe_emulator_session.on("Probezeit", times=None).answer("Zwei Wochen.")

    assert [str(ChatHaufeCopilot().invoke(PROBEZEIT).content) for _ in range(2)] == ["Zwei Wochen."] * 2
    assert len(haufe_emulator_session.requests) == 2
