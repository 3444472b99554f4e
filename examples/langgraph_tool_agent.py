"""A LangGraph agent that calls tools: a notice-period calculator, and Haufe Copilot's cited
passages as a retriever tool.

`langchain.agents.create_agent` builds the agent graph around `ChatHaufeCopilot`. With tools bound,
the model talks to Haufe Copilot's OpenAI-compatible completions endpoint (tool calls, no server
threads, no sources); the `haufe_recht` tool asks the assistant itself, so its cited passages reach
the agent as the tool's result. An `InMemorySaver` checkpointer keeps the conversation under
`configurable.thread_id`, the application's conversation key, which is never sent to the server.

    python examples/langgraph_tool_agent.py

Talks to HAUFE_COPILOT_BASE_URL with HAUFE_COPILOT_API_KEY (and HAUFE_COPILOT_ASSISTANT_ID) when
the key is set; otherwise it starts the local emulator in-process (EmulatorServer). The emulator
calls a tool when the question names it ("Nutze kuendigungsfrist").
"""

from __future__ import annotations

from textwrap import shorten

from _haufe import haufe_copilot
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import create_retriever_tool, tool
from langgraph.checkpoint.memory import InMemorySaver

from langchain_haufe import ChatHaufeCopilot, HaufeCopilotRetriever

QUESTIONS = [
    "Ich bin seit 8 Jahren im Betrieb. Welche Kündigungsfrist gilt für meinen Arbeitgeber? "
    "Nutze kuendigungsfrist.",
    "Und nach 12 Jahren? Nutze kuendigungsfrist.",
    "Nutze haufe_recht: Welche Kündigungsfristen gelten während der Probezeit?",
]


@tool
def kuendigungsfrist(jahre: int) -> str:
    """Die gesetzliche Kündigungsfrist des Arbeitgebers nach § 622 BGB bei `jahre` Jahren
    Betriebszugehörigkeit."""
    for years, months in ((20, 7), (15, 6), (12, 5), (10, 4), (8, 3), (5, 2), (2, 1)):
        if jahre >= years:
            unit = "Monat" if months == 1 else "Monate"
            return f"{months} {unit} zum Ende eines Kalendermonats (§ 622 Abs. 2 BGB)"
    return "vier Wochen zum Fünfzehnten oder zum Ende eines Kalendermonats (§ 622 Abs. 1 BGB)"


def show(message: BaseMessage) -> None:
    """One step of the agent: a tool call, a tool's result (with its sources), or the answer."""
    if isinstance(message, AIMessage) and message.tool_calls:
        for call in message.tool_calls:
            print(f"  -> tool call: {call['name']}({call['args']})")
    elif isinstance(message, ToolMessage):
        print(f"  <- {message.name}: {shorten(str(message.content), 90, placeholder=' ...')}")
        for document in message.artifact or []:  # haufe_recht's cited passages, as Documents
            meta = document.metadata
            print(f"     [{meta['rank']}] {meta.get('document_title')}, {meta.get('section')}")
    elif isinstance(message, AIMessage):
        print(f"Antwort: {message.content}\n")


def main() -> None:
    with haufe_copilot() as conn:
        model = ChatHaufeCopilot(**conn.settings())
        haufe_recht = create_retriever_tool(
            HaufeCopilotRetriever(**conn.settings(), k=3),
            "haufe_recht",
            "Sucht die Vorschriften des deutschen Arbeitsrechts, die eine Frage beantworten.",
            response_format="content_and_artifact",  # the Documents travel along as the artifact
        )
        agent = create_agent(
            model,
            tools=[kuendigungsfrist, haufe_recht],
            system_prompt="Du beantwortest Fragen zum deutschen Arbeitsrecht.",
            checkpointer=InMemorySaver(),
        )
        config: RunnableConfig = {"configurable": {"thread_id": "kunde-42"}}  # the checkpointer's key
        for question in QUESTIONS:
            print(f"Frage: {question}")
            # stream_mode="updates": each node's new messages, as the graph runs
            for update in agent.stream({"messages": [HumanMessage(question)]}, config, stream_mode="updates"):
                for step in update.values():
                    for message in (step or {}).get("messages", []):
                        show(message)
        state = agent.get_state(config)
        print(f"{len(state.values['messages'])} messages in the checkpointer under 'kunde-42'")


if __name__ == "__main__":
    main()
