"""One worker of tests/client/test_scaling.py: `python -m tests.scaling_worker URL KEY HISTORY.json QUESTION`
loads the conversation's history, asks the next question with a fresh `ChatHaufeCopilot`, saves
the history with the answer, and prints the answer's thread metadata."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from langchain_core.messages import HumanMessage, messages_from_dict, messages_to_dict

from haufe_emulator import DEFAULT_ASSISTANT_ID
from langchain_haufe import ChatHaufeCopilot


def main() -> None:
    url, key, path, question = sys.argv[1:5]
    file = Path(path)
    history = messages_from_dict(json.loads(file.read_text())) if file.exists() else []
    history.append(HumanMessage(question))
    answer = ChatHaufeCopilot(api_key=key, base_url=url, assistant_id=DEFAULT_ASSISTANT_ID).invoke(history)
    history.append(answer)
    file.write_text(json.dumps(messages_to_dict(history)))
    meta = answer.response_metadata
    print(json.dumps({"thread_id": meta["thread_id"], "thread_action": meta["thread_action"]}))


if __name__ == "__main__":
    main()
