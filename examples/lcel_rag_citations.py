"""An LCEL RAG chain that streams its answer and cites its sources as numbered footnotes.

    retriever | prompt | model

`HaufeCopilotRetriever` returns the passages Haufe Copilot cites for the question as `Document`s;
the prompt puts them in front of `ChatHaufeCopilot`, which streams the answer chunk by chunk. The
last chunk carries the answer's metadata: `sources_to_documents` turns its sources into the
footnotes, and `content_blocks` shows them as LangChain's standard citation annotations.

    python examples/lcel_rag_citations.py ["Wie viele Urlaubstage stehen mir zu?"]

Talks to HAUFE_COPILOT_BASE_URL with HAUFE_COPILOT_API_KEY (and HAUFE_COPILOT_ASSISTANT_ID) when
the key is set; otherwise it starts the local emulator in-process (EmulatorServer).
"""

from __future__ import annotations

import sys

from _haufe import haufe_copilot
from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

from langchain_haufe import ChatHaufeCopilot, HaufeCopilotRetriever, sources_to_documents

QUESTION = "Welche Kündigungsfristen gelten während der Probezeit?"


def format_docs(documents: list[Document]) -> str:
    return "\n\n".join(f"[{d.metadata['rank']}] {d.page_content}" for d in documents)


def main(question: str) -> None:
    with haufe_copilot() as conn:
        retriever = HaufeCopilotRetriever(**conn.settings(), k=3)
        model = ChatHaufeCopilot(**conn.settings())
        prompt = ChatPromptTemplate.from_messages(
            [
                (
                    "system",
                    "Beantworte die Frage mit diesen Auszügen und nenne die Vorschriften:\n\n{context}",
                ),
                ("human", "{question}"),
            ]
        )
        chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | model

        print(f"Frage: {question}\nAntwort: ", end="", flush=True)
        chunks = []
        for chunk in chain.stream(question):  # AIMessageChunks, as they arrive
            print(chunk.content, end="", flush=True)
            chunks.append(chunk)
        answer = sum(chunks[1:], chunks[0])  # merged; the last chunk brought the metadata and sources

        print("\n\nQuellen:")
        for document in sources_to_documents(answer):
            meta = document.metadata
            print(f"  [{meta['rank']}] {meta.get('document_title')}, {meta.get('section')}")
        citations = [
            a for b in answer.content_blocks if b["type"] == "text" for a in b.get("annotations", [])
        ]
        print(f"\n{len(citations)} citation annotations in answer.content_blocks")
        print(f"thread {answer.response_metadata['thread_id']} ({answer.response_metadata['thread_action']})")


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or QUESTION)
