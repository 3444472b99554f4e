"""A LlamaIndex `FunctionAgent` over Haufe Copilot, with two tools: a notice-period calculator,
and Haufe Copilot's own query engine, whose answer brings its sources.

With tools, `HaufeCopilot` talks to the OpenAI-compatible completions endpoint (tool calls, the
whole history each time, no sources); the `haufe_recht` tool is a `QueryEngineTool` over
`HaufeCopilotQueryEngine`, so the cited passages reach the agent as the tool output's
`raw_output.source_nodes`. The agent's events stream: its text delta by delta, each tool call
and its result.

    python examples/llama_index_function_agent.py

Talks to HAUFE_COPILOT_BASE_URL with HAUFE_COPILOT_API_KEY (and HAUFE_COPILOT_ASSISTANT_ID) when
the key is set; otherwise it starts the local emulator in-process (EmulatorServer). The emulator
calls a tool when the question names it ("Nutze kuendigungsfrist").
"""

from __future__ import annotations

import asyncio

from _haufe import haufe_copilot
from llama_index.core.agent.workflow import AgentStream, FunctionAgent, ToolCall, ToolCallResult
from llama_index.core.tools import FunctionTool, QueryEngineTool

from llama_index_haufe import HaufeCopilot, HaufeCopilotQueryEngine

QUESTIONS = [
    "Ich bin seit 15 Jahren im Betrieb. Welche Kündigungsfrist gilt für meinen Arbeitgeber? "
    "Nutze kuendigungsfrist.",
    "Nutze haufe_recht: Welche Kündigungsfristen gelten während der Probezeit?",
]


def kuendigungsfrist(jahre: int) -> str:
    """Die gesetzliche Kündigungsfrist des Arbeitgebers nach § 622 BGB bei `jahre` Jahren
    Betriebszugehörigkeit."""
    for years, months in ((20, 7), (15, 6), (12, 5), (10, 4), (8, 3), (5, 2), (2, 1)):
        if jahre >= years:
            unit = "Monat" if months == 1 else "Monate"
            return f"{months} {unit} zum Ende eines Kalendermonats (§ 622 Abs. 2 BGB)"
    return "vier Wochen zum Fünfzehnten oder zum Ende eines Kalendermonats (§ 622 Abs. 1 BGB)"


async def main() -> None:
    with haufe_copilot() as conn:
        llm = HaufeCopilot(**conn.settings())
        haufe_recht = QueryEngineTool.from_defaults(
            HaufeCopilotQueryEngine(llm=llm),
            name="haufe_recht",
            description="Beantwortet Fragen zum deutschen Arbeitsrecht mit Quellen.",
        )
        agent = FunctionAgent(
            tools=[FunctionTool.from_defaults(kuendigungsfrist), haufe_recht],
            llm=llm,
            system_prompt="Du beantwortest Fragen zum deutschen Arbeitsrecht.",
        )
        for question in QUESTIONS:
            print(f"Frage: {question}")
            handler = agent.run(question)
            deltas = 0
            async for event in handler.stream_events():
                if isinstance(event, ToolCallResult):
                    output = event.tool_output
                    print(f"  <- {event.tool_name}: {output.content[:90]}...")
                    for node in getattr(output.raw_output, "source_nodes", []):  # haufe_recht's sources
                        meta = node.node.metadata
                        print(f"     [{meta['rank']}] {meta.get('document_title')}, {meta.get('section')}")
                elif isinstance(event, ToolCall):
                    print(f"  -> tool call: {event.tool_name}({event.tool_kwargs})")
                elif isinstance(event, AgentStream) and event.delta:
                    deltas += 1
            result = await handler
            print(f"Antwort ({deltas} streamed deltas): {result}\n")


if __name__ == "__main__":
    asyncio.run(main())
