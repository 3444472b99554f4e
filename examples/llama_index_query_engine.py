"""A LlamaIndex query engine whose answers carry their sources as source nodes.

`HaufeCopilotQueryEngine` asks Haufe Copilot and returns a `Response` (here, with
`streaming=True`, a `StreamingResponse`) whose `source_nodes` are the passages the answer cites:
each a `NodeWithScore` with the passage as text, `document_title`, `section`, `thread_id`,
`message_id` and `rank` as metadata, and `score = 1 / rank`, so LlamaIndex's postprocessors
(`SimilarityPostprocessor(similarity_cutoff=0.3)`) keep the first-cited ones.

    python examples/llama_index_query_engine.py ["Wie viele Urlaubstage stehen mir zu?"]

Talks to HAUFE_COPILOT_BASE_URL with HAUFE_COPILOT_API_KEY (and HAUFE_COPILOT_ASSISTANT_ID) when
the key is set; otherwise it starts the local emulator in-process (EmulatorServer).
"""

from __future__ import annotations

import sys

from _haufe import haufe_copilot
from llama_index.core.base.response.schema import StreamingResponse
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.schema import MetadataMode

from llama_index_haufe import HaufeCopilot, HaufeCopilotQueryEngine

QUESTION = "Wie viele Urlaubstage stehen mir zu?"


def main(question: str) -> None:
    with haufe_copilot() as conn:
        llm = HaufeCopilot(**conn.settings())  # or pass the same keywords to the engine itself

        # A streaming engine: the text as it arrives, the source nodes once the stream has ended.
        response = HaufeCopilotQueryEngine(llm=llm, streaming=True).query(question)
        assert isinstance(response, StreamingResponse)
        print(f"Frage: {question}\nAntwort: ", end="", flush=True)
        for text in response.response_gen:
            print(text, end="", flush=True)
        print("\n\nSource nodes:")
        for node in response.source_nodes:
            meta = node.node.metadata
            passage = node.node.get_content(MetadataMode.NONE)
            where = f"{meta.get('document_title')}, {meta.get('section')}"
            print(f"  [{meta['rank']}] {where} (score {node.score:.2f})")
            print(f"      {passage[:90]}...")
        assert response.metadata is not None
        print(f"thread {response.metadata['thread_id']}, message {response.metadata['message_id']}")

        # The blocking engine, with a score cut-off: only the first-cited passages (1/rank >= 0.5).
        answer = HaufeCopilotQueryEngine(llm=llm).query(question)
        kept = SimilarityPostprocessor(similarity_cutoff=0.5).postprocess_nodes(answer.source_nodes)
        sections = ", ".join(str(n.node.metadata.get("section")) for n in kept)
        print(f"\nscore >= 0.5 keeps {len(kept)} of {len(answer.source_nodes)} source nodes: {sections}")


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or QUESTION)
