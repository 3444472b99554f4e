"""The framework-neutral conversation layer both adapters stand on: threads as memory
(`threads`), one assistant turn for a whole history (`turns`), the lazy client holder
(`holder`), the per-call decisions (`routing`), the client options as a component's fields
(`client_fields`) and how settings travel through pickling (`pickling`).

The names below load with `turns` on first use: it brings the wire types, which an adapter's
import does not need yet."""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from haufe_copilot.conversation.turns import (
        AnswerDelta,
        AnswerResult,
        AssistantTurn,
        aanswer,
        answer,
        astream_answer,
        stream_answer,
    )

__all__ = [
    "AnswerDelta",
    "AnswerResult",
    "AssistantTurn",
    "aanswer",
    "answer",
    "astream_answer",
    "stream_answer",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'haufe_copilot.conversation' has no attribute {name!r}")
    return getattr(import_module("haufe_copilot.conversation.turns"), name)
