"""A LangGraph agent whose reply cites the law: Haufe Copilot's assistant as the agent's tool.

An agent binds its tools on every call, so its model talks to the completions endpoint, which
cites nothing. `HaufeCopilotTool` asks the assistant itself: the tool's content is the answer
with the sections it rests on ("Quellen: [1] § 622 Abs. 3 BGB; ..."), which the agent's model
reads and cites; the cited passages travel beside it as `Document`s (the `ToolMessage`'s
artifact), so the script can list them too. The model driving the agent could be any chat model
that calls tools; here it is `ChatHaufeCopilot`.

    python examples/langgraph_cited_agent.py

Talks to HAUFE_COPILOT_BASE_URL with HAUFE_COPILOT_API_KEY (and HAUFE_COPILOT_ASSISTANT_ID) when
the key is set; otherwise it starts the local emulator in-process (EmulatorServer). The emulator
calls a tool when the question names it ("Nutze haufe_copilot").
"""

from __future__ import annotations

from _haufe import haufe_copilot
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage

from langchain_haufe import ChatHaufeCopilot, HaufeCopilotTool

QUESTION = "Nutze haufe_copilot: Welche Kündigungsfristen gelten während der Probezeit?"


def main() -> None:
    with haufe_copilot() as conn:
        agent = create_agent(
            ChatHaufeCopilot(**conn.settings()),
            tools=[HaufeCopilotTool(**conn.settings())],
            system_prompt="Du beantwortest Fragen zum deutschen Arbeitsrecht und nennst die Vorschriften.",
        )
        result = agent.invoke({"messages": [HumanMessage(QUESTION)]})
        print(f"Frage: {QUESTION}")
        print(f"Antwort: {result['messages'][-1].content}\n")
        print("Vom Werkzeug zitiert:")
        for message in result["messages"]:
            if isinstance(message, ToolMessage):
                for document in message.artifact or []:
                    meta = document.metadata
                    print(f"  [{meta['rank']}] {meta.get('section')} ({meta.get('document_title')})")


if __name__ == "__main__":
    main()
