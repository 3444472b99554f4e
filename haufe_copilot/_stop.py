"""Stop sequences applied on the client, for the Assistant API which takes none (SPEC §3).

The answer ends before the first stop sequence, streamed too: a streamed piece that might be
the start of a stop sequence is held back until the next piece settles it, so no text that
belongs after a stop ever reaches the caller.
"""

from __future__ import annotations

from collections.abc import Sequence


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """`text` up to the first stop sequence, and whether one was found."""
    positions = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


class StopFilter:
    """Feed streamed text pieces; get back what may be emitted now."""

    __slots__ = ("_held", "_longest", "_stops", "stopped")

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._longest = max((len(s) for s in self._stops), default=0)
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        if not self._stops:
            return piece
        text = self._held + piece
        head, found = cut_at_stop(text, self._stops)
        if found:
            self.stopped = True
            self._held = ""
            return head
        # Hold back the longest tail that is a prefix of some stop sequence.
        keep = 0
        for size in range(min(len(text), self._longest - 1), 0, -1):
            tail = text[-size:]
            if any(s.startswith(tail) for s in self._stops):
                keep = size
                break
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """What was held back, at the end of the stream."""
        held, self._held = self._held, ""
        return "" if self.stopped else held
