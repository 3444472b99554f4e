"""Deterministic German answers composed from the best-ranked corpus excerpts."""

from __future__ import annotations

from collections.abc import Sequence

from haufe_emulator.corpus import Excerpt

# Results beyond the guaranteed minimum must score at least this share of the best score.
RELATIVE_CUTOFF = 0.35

NO_MATCH_ANSWER = (
    "Zu Ihrer Frage habe ich in der Wissensdatenbank leider keine passende Vorschrift gefunden. "
    "Bitte formulieren Sie Ihre Frage anders, zum Beispiel mit Begriffen wie Kündigungsfrist, "
    "Urlaub, Arbeitszeit oder Entgeltfortzahlung."
)
DISCLAIMER = "Bitte beachten Sie, dass dies keine Rechtsberatung im Einzelfall ersetzt."
NO_MATCH_INTENT = "Allgemeine Anfrage"


def select_sources(
    ranked: Sequence[tuple[Excerpt, float]], minimum: int = 3, maximum: int = 5
) -> list[Excerpt]:
    """The excerpts to cite: the top ``minimum`` results, plus further ones up to ``maximum``
    while they score at least RELATIVE_CUTOFF of the best result."""
    if not ranked:
        return []
    threshold = ranked[0][1] * RELATIVE_CUTOFF
    return [
        excerpt
        for position, (excerpt, score) in enumerate(ranked[:maximum])
        if position < minimum or score >= threshold
    ]


def _join_citations(sources: Sequence[Excerpt]) -> str:
    citations = [source.citation for source in sources]
    if len(citations) == 1:
        return citations[0]
    return f"{', '.join(citations[:-1])} und {citations[-1]}"


def compose_answer(question: str, sources: Sequence[Excerpt]) -> str:
    """A short German answer: the first source's summary, a supplement from the same law, a
    pointer to the remaining sources and a disclaimer. ``question`` is part of the interface
    for composers that use it; this one depends only on the sources."""
    if not sources:
        return NO_MATCH_ANSWER
    first, *rest = sources
    lead = first.summary
    if first.citation not in lead:  # the answer must always name its main provision
        lead = f"{lead.rstrip('.')} ({first.citation})."
    sentences = [lead]
    # A supplement from another statute rarely reads as a continuation; cite it instead.
    supplement = next((source for source in rest if source.law == first.law), None)
    if supplement is not None:
        sentences.append(f"Ergänzend gilt: {supplement.summary}")
    further = [source for source in rest if source is not supplement]
    if further:
        sentences.append(f"Siehe auch {_join_citations(further)}.")
    sentences.append(DISCLAIMER)
    return " ".join(sentences)


def intent_for(question: str, sources: Sequence[Excerpt]) -> str:
    """A short German intent label, e.g. "Kündigungsfrist Probezeit", from the top source."""
    if not sources:
        return NO_MATCH_INTENT
    return " ".join(sources[0].keywords[:2])
