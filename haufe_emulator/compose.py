"""Deterministic German answers composed from the cited corpus excerpts.

An answer is built from its sources, not filled into one template: how it opens depends on the
question (a direct answer to "Welche ...?", the deciding provision for "Gilt ...?", the follow-up
read against its thread), it quotes the sentence of the first passage that fits the question
best, adds what another cited provision of the same law or the thread's earlier question
contributes, and points to the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from haufe_emulator.corpus import Excerpt
from haufe_emulator.ranking import normalize, refers_back, tokenize

# Results beyond the guaranteed minimum must score at least this share of the best score.
RELATIVE_CUTOFF = 0.35
# After tool results, only provisions this close to the best are cited (no guaranteed minimum).
RELATED_CUTOFF = 0.5
# A quoted sentence longer than this reads as a wall of statute: the answer then only cites it.
MAX_QUOTE_CHARS = 320

NO_MATCH_ANSWER = (
    "Zu Ihrer Frage habe ich in der Wissensdatenbank leider keine passende Vorschrift gefunden. "
    "Bitte formulieren Sie Ihre Frage anders, zum Beispiel mit Begriffen wie Kündigungsfrist, "
    "Urlaub, Arbeitszeit oder Entgeltfortzahlung."
)
DISCLAIMER = "Bitte beachten Sie, dass dies keine Rechtsberatung im Einzelfall ersetzt."
NO_MATCH_INTENT = "Allgemeine Anfrage"

# Folded first words of a question that asks yes or no ("Gilt ...?", "Darf ...?").
_YES_NO_OPENER_TEXT = (
    "bin bekomme bekommt darf durfen gibt gilt gelten habe hat haben ist kann konnen muss mussen"
    " sind steht stehen wird werden"
)
_YES_NO_OPENERS = frozenset(_YES_NO_OPENER_TEXT.split())
# A sentence of statute text ends before a capital or a paragraph mark "(2)"; "Abs. 1", "1. Januar"
# and "Nr. 2." do not end one.
_SENTENCE_END = re.compile(r"(?<=[a-zäöüß)])\.\s+(?=[A-ZÄÖÜ„]|\(\d)")
_PARAGRAPH_MARK = re.compile(r"^\(\d+[a-z]?\)\s*")


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


def join_citations(sources: Sequence[Excerpt]) -> str:
    """ "§ 1 BGB", "§ 1 BGB und § 2 BGB", "§ 1 BGB, § 2 BGB und § 3 BGB"."""
    citations = [source.citation for source in sources]
    if len(citations) == 1:
        return citations[0]
    return f"{', '.join(citations[:-1])} und {citations[-1]}"


def _asks_yes_or_no(question: str) -> bool:
    words = normalize(question).split()
    return bool(words) and words[0].strip("¿?,.!") in _YES_NO_OPENERS


def _as_consequence(excerpt: Excerpt) -> str:
    """The summary as what follows from the provision just named: "Nach § 4 TzBfG dürfen ..."
    becomes "Danach dürfen ..."; a summary of another shape stays as it is."""
    opening = f"Nach {excerpt.citation} "
    if excerpt.summary.startswith(opening):
        return "Danach " + excerpt.summary[len(opening) :]
    return excerpt.summary


def sentences_of(excerpt: Excerpt) -> list[str]:
    """The sentences of an excerpt's wording, without its citation, paragraph marks and cut marks."""
    wording = excerpt.content.removeprefix(f"{excerpt.citation}: ")
    found = []
    for sentence in _SENTENCE_END.split(wording):
        sentence = _PARAGRAPH_MARK.sub("", sentence.replace("[…]", "").strip()).strip()
        if sentence:
            found.append(sentence if sentence.endswith(".") else sentence + ".")
    return found


def best_sentence(excerpt: Excerpt, words: Sequence[str]) -> str | None:
    """The sentence of the passage sharing most stems with ``words`` (the first on a tie), if it
    is short enough to quote."""
    wanted = set(words)
    candidates = [s for s in sentences_of(excerpt) if len(s) <= MAX_QUOTE_CHARS]
    if not candidates:
        return None
    return max(candidates, key=lambda sentence: len(wanted & set(tokenize(sentence))))


def _about(excerpt: Excerpt) -> set[str]:
    return set(tokenize(" ".join((excerpt.summary, *excerpt.keywords))))


def compose_answer(question: str, sources: Sequence[Excerpt], history: Sequence[str] = ()) -> str:
    """A short German answer from the cited passages. ``history`` holds the thread's earlier user
    turns: a follow-up is answered from its own provision and tied back to the earlier question."""
    if not sources:
        return NO_MATCH_ANSWER
    first, *rest = sources
    asked = tokenize(question)
    follow_up = bool(history) and refers_back(question)
    if follow_up:
        sentences = [f"Für Ihre Nachfrage kommt es auf {first.citation} an. {_as_consequence(first)}"]
    elif _asks_yes_or_no(question):
        sentences = [f"Maßgeblich ist {first.citation}. {_as_consequence(first)}"]
    else:
        lead = first.summary
        if first.citation not in lead:  # the answer must always name its main provision
            lead = f"{lead.rstrip('.')} ({first.citation})."
        sentences = [lead]
    quote = best_sentence(first, asked)
    if quote is not None:
        sentences.append(f"Im Wortlaut: „{quote.rstrip('.')}.“")
    used = {first}
    if follow_up:  # the provision the earlier question was about, which the follow-up qualifies
        earlier = set(tokenize(" ".join(history)))
        thread_source = next((s for s in rest if _about(s) & earlier and not _about(s) & set(asked)), None)
        if thread_source is not None:
            sentences.append(f"Für Ihre vorherige Frage bleibt es dabei: {thread_source.summary}")
            used.add(thread_source)
    # A supplement from another statute rarely reads as a continuation; cite it instead.
    supplement = next((s for s in rest if s.law == first.law and s not in used), None)
    if supplement is not None:
        sentences.append(f"Ergänzend gilt: {supplement.summary}")
        used.add(supplement)
    further = [source for source in rest if source not in used]
    if further:
        sentences.append(f"Siehe auch {join_citations(further)}.")
    sentences.append(DISCLAIMER)
    return " ".join(sentences)


@dataclass(frozen=True)
class ToolResult:
    """A tool message that answers a call: the tool's name, the call's arguments, what it returned."""

    name: str
    content: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


def tool_results_in(messages: Iterable[Mapping[str, Any]]) -> list[ToolResult]:
    """The tool messages ending a conversation (OpenAI-shaped dicts), each with the name and
    arguments of the call it answers."""
    listed = list(messages)
    calls: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for message in listed:
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping) and isinstance(call.get("id"), str):
                calls[call["id"]] = (str(function.get("name") or ""), _arguments_of(function))
    trailing: list[Mapping[str, Any]] = []
    for message in reversed(listed):
        if message.get("role") != "tool":
            break
        trailing.insert(0, message)
    results = []
    for message in trailing:
        name, arguments = calls.get(str(message.get("tool_call_id") or ""), ("", {}))
        name = name or str(message.get("name") or "") or "das Werkzeug"
        results.append(ToolResult(name, str(message.get("content") or "").strip(), arguments))
    return results


def _arguments_of(function: Mapping[str, Any]) -> Mapping[str, Any]:
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except (TypeError, ValueError):
        return {}
    return arguments if isinstance(arguments, dict) else {}


def _call_label(result: ToolResult) -> str:
    """ "kuendigungsfrist (jahre: 8)": the call as a reader recognises it (scalar arguments only)."""
    shown = [
        f"{key}: {value}"
        for key, value in result.arguments.items()
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip()
    ]
    return f"{result.name} ({', '.join(shown)})" if shown else result.name


def _result_sentence(result: ToolResult) -> str:
    content = result.content.rstrip()
    if not content:
        return f"Das Werkzeug {_call_label(result)} hat kein Ergebnis geliefert."
    if content[0].isupper() and content.endswith((".", "!", "?")):  # a sentence of its own
        return f"Das Werkzeug {_call_label(result)} meldet: {content}"
    return f"Das Werkzeug {_call_label(result)} ergibt: „{content.rstrip('.')}“."  # verbatim: quoted


def compose_after_tool_results(results: Sequence[ToolResult], sources: Sequence[Excerpt]) -> str:
    """The answer once tools have answered: what they returned, in sentences naming each call,
    then the law behind it from ``sources`` (only provisions related to the results; none when
    the corpus has nothing to add)."""
    sentences = [_result_sentence(result) for result in results]
    if sources:
        first, *rest = sources
        sentences.append(f"Rechtlich steht dahinter {first.citation}: {_as_consequence(first)}")
        if rest:
            sentences.append(f"Siehe auch {join_citations(rest)}.")
        sentences.append(DISCLAIMER)
    return " ".join(sentences)


def related_sources(
    ranked: Sequence[tuple[Excerpt, float]], results: Sequence[ToolResult], maximum: int = 3
) -> list[Excerpt]:
    """The provisions a tool answer may cite: those the results name ("§ 622 Abs. 2 BGB"), then
    the best-ranked ones that share words with the results and score close to the best."""
    said = " ".join(result.content for result in results)
    # in the order the results name them
    positions: dict[Excerpt, int] = {}
    for excerpt, _ in ranked:
        found = re.search(re.escape(excerpt.citation) + r"(?!\w)", said)
        if found is not None:
            positions[excerpt] = found.start()
    named = sorted(positions, key=positions.__getitem__)
    if not ranked:
        return []
    threshold = ranked[0][1] * RELATED_CUTOFF
    result_words = set(tokenize(said))
    close = [
        excerpt
        for excerpt, score in ranked
        if score >= threshold
        and excerpt not in named
        and (not result_words or _about(excerpt) & result_words)
    ]
    return [*named, *close][:maximum]


def intent_for(question: str, sources: Sequence[Excerpt]) -> str:
    """A short German intent label, e.g. "Kündigungsfrist Probezeit", from the top source."""
    if not sources:
        return NO_MATCH_INTENT
    return " ".join(sources[0].keywords[:2])
