"""The framework-neutral conversation layer both adapters stand on: threads as memory
(`threads`), one assistant turn for a whole history (`turns`), the lazy client holder
(`holder`), the per-call decisions (`routing`) and how settings travel through pickling
(`pickling`)."""

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
