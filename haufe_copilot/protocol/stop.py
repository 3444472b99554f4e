"""Stop sequences applied on the client, for the Assistant API, which takes none (docs/contract.md).

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
        match, _ = cut_at_stop(text, self._stops)
        end = len(match) if len(match) < len(text) else None  # where a complete stop begins
        # The earliest place where a stop may still begin, once more text arrives.
        pending = next(
            (
                start
                for start in range(max(0, len(text) - self._longest + 1), len(text))
                if any(len(s) > len(text) - start and s.startswith(text[start:]) for s in self._stops)
            ),
            None,
        )
        if end is not None and (pending is None or end <= pending):
            self.stopped = True
            self._held = ""
            return text[:end]
        keep_from = len(text) if pending is None else pending
        self._held = text[keep_from:]
        return text[:keep_from]

    def flush(self) -> str:
        """What was held back, at the end of the stream, cut at a stop it holds: a held piece may
        hold a complete stop that waited on a longer one that began earlier and never completed."""
        held, self._held = self._held, ""
        if self.stopped:
            return ""
        kept, self.stopped = cut_at_stop(held, self._stops)
        return kept
