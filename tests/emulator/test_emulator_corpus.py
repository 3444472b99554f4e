"""The emulator's knowledge base: corpus integrity, BM25 ranking and answer composition."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from haufe_emulator.compose import (
    DISCLAIMER,
    NO_MATCH_ANSWER,
    compose_answer,
    intent_for,
    select_sources,
)
from haufe_emulator.corpus import load_corpus, parse_corpus
from haufe_emulator.ranking import BM25Index, stem, tokenize

LAWS = {
    "BGB": "Bürgerliches Gesetzbuch (BGB)",
    "KSchG": "Kündigungsschutzgesetz (KSchG)",
    "ArbZG": "Arbeitszeitgesetz (ArbZG)",
    "BUrlG": "Bundesurlaubsgesetz (BUrlG)",
    "EntgFG": "Entgeltfortzahlungsgesetz (EntgFG)",
    "TzBfG": "Teilzeit- und Befristungsgesetz (TzBfG)",
    "MuSchG": "Mutterschutzgesetz (MuSchG)",
    # Issue 17: what common follow-ups need (Minijob, Mindestlohn, Elternzeit, Überstunden).
    "SGB IV": "Viertes Buch Sozialgesetzbuch (SGB IV)",
    "MiLoG": "Mindestlohngesetz (MiLoG)",
    "MiLoV5": "Fünfte Mindestlohnanpassungsverordnung (MiLoV5)",
    "BEEG": "Bundeselterngeld- und Elternzeitgesetz (BEEG)",
    "GewO": "Gewerbeordnung (GewO)",
}
# Provisions the corpus must cover, as "section law" prefixes of an excerpt's citation.
REQUIRED_PROVISIONS = [
    *(f"§ {n} BGB" for n in ("611a", "612", "612a", "613a", "614", "615", "616", "620")),
    *(f"§ 622 Abs. {n} BGB" for n in (1, 2, 3)),
    *(f"§ {n} BGB" for n in ("623", "626", "630")),
    *(f"§ 1 Abs. {n} KSchG" for n in (1, 2, 3)),
    "§ 4 KSchG",
    "§ 23 KSchG",
    *(f"§ {n} ArbZG" for n in (3, 4, 5, 9)),
    *(f"§ {n} BUrlG" for n in (1, 3, 4, 5, 7)),
    *(f"§ {n} EntgFG" for n in (3, 4, 5)),
    *(f"§ {n} TzBfG" for n in (8, 14)),
    *(f"§ {n} MuSchG" for n in (3, 17)),
]

PROBEZEIT = "Welche Kündigungsfristen gelten während der Probezeit?"
MAIN_QUESTIONS = {
    PROBEZEIT: ("bgb-622-3", "§ 622 Abs. 3 BGB"),
    "Wie viele Urlaubstage stehen mir gesetzlich zu?": ("burlg-3", "§ 3 BUrlG"),
    # § 1 Abs. 2 KSchG defines when a dismissal is "sozial ungerechtfertigt".
    "Wann ist eine Kündigung sozial ungerechtfertigt?": ("kschg-1-2", "§ 1 Abs. 2 KSchG"),
    "Wie lange darf ich täglich höchstens arbeiten?": ("arbzg-3", "§ 3 ArbZG"),
    "Bekomme ich Lohn weiter, wenn ich krank bin?": ("entgfg-3-1", "§ 3 Abs. 1 EntgFG"),
}
PARAPHRASES = {
    "bgb-622-3": [
        "Kündigungsfrist in der Probezeit",
        "Wie lange ist die Kündigungsfrist in der Probezeit?",
        "Kann mir in der Probezeit gekündigt werden?",
    ],
    "burlg-3": [
        "Wie hoch ist der Mindesturlaub?",
        "Wie viel Urlaub habe ich im Jahr?",
        "Anspruch auf Urlaubstage pro Jahr",
    ],
    "kschg-1-2": [
        "Kündigungsschutz bei Kündigung durch den Arbeitgeber",
        "Welche Gründe rechtfertigen eine Kündigung?",
        "Wann ist eine verhaltensbedingte Kündigung gerechtfertigt?",
    ],
    "arbzg-3": [
        "maximale Arbeitszeit pro Tag",
        "Wie viele Stunden darf ich am Tag arbeiten?",
        "Höchstarbeitszeit pro Tag",
    ],
    "entgfg-3-1": [
        "Entgeltfortzahlung im Krankheitsfall",
        "Wie lange zahlt der Arbeitgeber bei Krankheit das Gehalt weiter?",
        "Lohnfortzahlung bei Arbeitsunfähigkeit",
    ],
}
FOLLOW_UPS = ["Und wie lange gilt das danach?", "Gilt das auch für Teilzeitkräfte?"]


def index() -> BM25Index:
    return BM25Index(load_corpus())


def top_id(question: str) -> str:
    return index().rank(question)[0][0].id


def selected_ids(question: str, history: list[str] | None = None) -> list[str]:
    return [e.id for e in select_sources(index().rank(question, history or []))]


# --- corpus -------------------------------------------------------------------------------


def test_corpus_has_enough_uniquely_identified_excerpts() -> None:
    corpus = load_corpus()
    assert len(corpus) >= 30
    assert len({excerpt.id for excerpt in corpus}) == len(corpus)


def test_every_law_is_present_with_its_official_title() -> None:
    corpus = load_corpus()
    assert {excerpt.law for excerpt in corpus} == set(LAWS)
    for excerpt in corpus:
        assert excerpt.document_title == LAWS[excerpt.law]


@pytest.mark.parametrize("provision", REQUIRED_PROVISIONS)
def test_required_provision_is_covered(provision: str) -> None:
    section, law = provision.rsplit(" ", 1)
    assert any(
        e.law == law and (e.section == section or e.section.startswith(section + " ")) for e in load_corpus()
    )


def test_content_starts_with_citation_and_summary_names_provision() -> None:
    for excerpt in load_corpus():
        assert excerpt.content.startswith(f"{excerpt.section} {excerpt.law}: "), excerpt.id
        assert excerpt.citation in excerpt.summary, excerpt.id
        assert excerpt.keywords, excerpt.id


def test_to_source_has_the_service_shape() -> None:
    excerpt = next(e for e in load_corpus() if e.id == "bgb-622-3")
    assert excerpt.to_source() == {
        # Issue 17: a source says it is an excerpt and the date of its legal position.
        "content": f"{excerpt.content} (Auszug, Stand: 1. Januar 2026)",
        "meta_data": {
            "document_title": "Bürgerliches Gesetzbuch (BGB)",
            "section": "§ 622 Abs. 3",
            "law": "BGB",
            "excerpt_id": "bgb-622-3",
        },
    }


def test_load_corpus_is_cached() -> None:
    assert load_corpus() is load_corpus()


def test_missing_field_is_reported_with_the_entry() -> None:
    entry = {
        "id": "x-1",
        "law": "BGB",
        "document_title": "Bürgerliches Gesetzbuch (BGB)",
        "section": "§ 1",
        "content": "§ 1 BGB: Text.",
        "keywords": ["a"],
    }
    with pytest.raises(ValueError, match=r"'x-1'.*missing field 'summary'"):
        parse_corpus([entry])
    assert parse_corpus([{**entry, "summary": "Nach § 1 BGB gilt etwas."}])[0].id == "x-1"


# --- ranking ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "base"),
    [
        ("kündigungsfristen", "Kündigungsfrist"),
        ("Urlaubs", "Urlaub"),
        ("Arbeitszeiten", "Arbeitszeit"),
        ("gekündigt", "Kündigung"),
        ("täglich", "Tag"),
        ("höchstens", "höchst"),
    ],
)
def test_inflected_forms_share_a_stem(variant: str, base: str) -> None:
    assert tokenize(variant) == tokenize(base)


def test_stemmer_keeps_words_intact() -> None:
    assert stem("lohn") == "lohn"
    assert stem("24") == "24"


@pytest.mark.parametrize(("question", "expected"), MAIN_QUESTIONS.items())
def test_main_question_ranks_provision_first_and_answer_cites_it(
    question: str, expected: tuple[str, str]
) -> None:
    excerpt_id, citation = expected
    ranked = index().rank(question)
    assert ranked[0][0].id == excerpt_id
    sources = select_sources(ranked)
    assert 3 <= len(sources) <= 5
    assert citation in compose_answer(question, sources)


@pytest.mark.parametrize(
    ("question", "excerpt_id"),
    [(q, excerpt_id) for excerpt_id, qs in PARAPHRASES.items() for q in qs],
)
def test_paraphrase_ranks_same_provision_first(question: str, excerpt_id: str) -> None:
    assert top_id(question) == excerpt_id


@pytest.mark.parametrize("follow_up", FOLLOW_UPS)
def test_vague_follow_up_is_understood_from_history(follow_up: str) -> None:
    alone = selected_ids(follow_up)
    in_context = selected_ids(follow_up, [PROBEZEIT])
    assert alone != in_context
    assert {"bgb-622-1", "bgb-622-3"} <= set(in_context)


def test_recent_history_outweighs_older_history() -> None:
    history = ["Wie viele Urlaubstage stehen mir gesetzlich zu?", PROBEZEIT]
    assert index().rank("Und was gilt für den Arbeitgeber?", history)[0][0].law == "BGB"


def test_ranking_is_deterministic_and_sorted() -> None:
    first = index().rank(PROBEZEIT, ["Wie viele Urlaubstage stehen mir zu?"])
    second = index().rank(PROBEZEIT, ["Wie viele Urlaubstage stehen mir zu?"])
    assert [(e.id, s) for e, s in first] == [(e.id, s) for e, s in second]
    scores = [score for _, score in first]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)


def test_ties_keep_corpus_order() -> None:
    twin = next(e for e in load_corpus() if e.id == "bgb-622-3")
    clones = [replace(twin, id=f"c-{n}") for n in "ab"]
    ranked = BM25Index(clones).rank(PROBEZEIT)
    assert [e.id for e, _ in ranked] == ["c-a", "c-b"]


def test_unknown_words_give_no_sources_and_the_fallback_answer() -> None:
    question = "Xylophon Quasar Zebrastreifen?"
    ranked = index().rank(question)
    assert ranked == []
    sources = select_sources(ranked)
    assert sources == []
    assert compose_answer(question, sources) == NO_MATCH_ANSWER
    assert intent_for(question, sources)


def test_ranking_a_thousand_questions_is_fast() -> None:
    built = index()
    questions = [*MAIN_QUESTIONS, *FOLLOW_UPS]
    start = time.perf_counter()
    for n in range(1000):
        built.rank(questions[n % len(questions)], [PROBEZEIT])
    assert time.perf_counter() - start < 2.0


# --- composition --------------------------------------------------------------------------


def test_select_sources_keeps_minimum_and_cuts_weak_extras() -> None:
    corpus = load_corpus()
    strong = [(corpus[n], 10.0 - n) for n in range(8)]
    assert len(select_sources(strong)) == 5
    weak_tail = [(corpus[0], 10.0), (corpus[1], 1.0), (corpus[2], 0.5), (corpus[3], 0.4)]
    assert select_sources(weak_tail) == list(corpus[:3])
    assert select_sources(weak_tail[:2]) == list(corpus[:2])
    assert select_sources([]) == []


def test_answer_leads_with_first_summary_and_ends_with_disclaimer() -> None:
    sources = select_sources(index().rank(PROBEZEIT))
    answer = compose_answer(PROBEZEIT, sources)
    assert answer.startswith(sources[0].summary)
    assert "Ergänzend gilt: " in answer
    assert answer.endswith(DISCLAIMER)


def test_intent_comes_from_top_source_keywords() -> None:
    sources = select_sources(index().rank(PROBEZEIT))
    assert intent_for(PROBEZEIT, sources) == "Kündigungsfrist Probezeit"
