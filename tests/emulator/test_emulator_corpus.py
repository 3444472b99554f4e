"""The emulator's knowledge base: corpus integrity, BM25 ranking and answer composition."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from haufe_emulator.app import Knowledge
from haufe_emulator.compose import (
    DISCLAIMER,
    NO_MATCH_ANSWER,
    ToolResult,
    compose_answer,
    intent_for,
    select_sources,
)
from haufe_emulator.corpus import Excerpt, load_corpus, parse_corpus
from haufe_emulator.ranking import BM25Index, stem, tokenize
from haufe_emulator.schema_values import value_for_schema

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


# --- issue 17: follow-ups, composed answers, determinism, the corpus checked --------------

# One thread: the Probezeit question, its follow-ups, then a question for each added topic; each
# is asked with every earlier turn as history, and its first source is the one that answers it.
THREAD = [
    (PROBEZEIT, "bgb-622-3"),
    ("Gilt das auch für Teilzeitkräfte?", "tzbfg-4-1"),
    ("Und für Minijobber?", "tzbfg-2-2"),
    ("Wie viel darf ich im Minijob verdienen?", "sgb4-8-1a"),
    ("Wie hoch ist der Mindestlohn?", "milov5-1"),
    ("Kann mir in der Elternzeit gekündigt werden?", "beeg-18-1"),
    ("Was gilt, wenn ich im Urlaub krank werde?", "burlg-9"),
    ("Kann ich meine Arbeitszeit auch nur für zwei Jahre verringern?", "tzbfg-9a-1"),
    ("Was gilt bei Arbeit auf Abruf?", "tzbfg-12-1"),
    ("Muss ich Überstunden machen?", "gewo-106"),
    ("Kann ein Tarifvertrag andere Kündigungsfristen vorsehen?", "bgb-622-4"),
    ("Darf im Arbeitsvertrag eine kürzere Kündigungsfrist vereinbart werden?", "bgb-622-5"),
]


@pytest.mark.parametrize("turn", range(len(THREAD)), ids=[question for question, _ in THREAD])
def test_each_question_of_a_thread_cites_what_answers_it_first(turn: int) -> None:
    question, expected = THREAD[turn]
    history = [earlier for earlier, _ in THREAD[:turn]]
    answer = Knowledge().answer(question, history)
    assert answer.sources[0].id == expected
    assert answer.sources[0].citation in answer.text


def test_a_follow_up_is_answered_from_its_provision_and_tied_to_its_thread() -> None:
    answer = Knowledge().answer("Gilt das auch für Teilzeitkräfte?", [PROBEZEIT])
    assert answer.text.startswith("Für Ihre Nachfrage kommt es auf § 4 Abs. 1 TzBfG an. Danach dürfen")
    assert "Für Ihre vorherige Frage bleibt es dabei: " in answer.text
    assert "§ 622 Abs. 3 BGB zwei Wochen" in answer.text
    assert {"bgb-622-3", "bgb-622-1"} <= {source.id for source in answer.sources}


def test_answers_are_composed_from_their_passages_not_one_template() -> None:
    knowledge = Knowledge()
    questions = ("Wie hoch ist der Mindestlohn?", "Muss ich Überstunden machen?", PROBEZEIT)
    openings = {" ".join(knowledge.answer(question).text.split()[:3]) for question in questions}
    assert len(openings) == 3
    overtime = knowledge.answer("Muss ich Überstunden machen?").text
    assert overtime.startswith("Maßgeblich ist § 106 GewO. Danach bestimmt der Arbeitgeber")
    # a sentence of the first passage, quoted as it stands in the statute
    assert "Im Wortlaut: „Der Arbeitgeber kann Inhalt, Ort und Zeit der Arbeitsleistung" in overtime


def test_the_same_input_gives_the_same_answer() -> None:
    history = [PROBEZEIT, "Gilt das auch für Teilzeitkräfte?"]
    first, second = Knowledge(), Knowledge()
    for question in ("Und für Minijobber?", *MAIN_QUESTIONS):
        a, b = first.answer(question, history), second.answer(question, history)
        assert (a.text, [s.id for s in a.sources], a.intent) == (b.text, [s.id for s in b.sources], b.intent)


def test_the_stemmer_is_snowball_german() -> None:
    assert stem("kundigungsfristen") == "kundigungsfrist" and stem("arbeitszeiten") == "arbeitszeit"


def test_after_tool_results_the_answer_uses_them_and_cites_only_related_provisions() -> None:
    knowledge = Knowledge()
    question = "Wie lang ist meine Kündigungsfrist nach 15 Jahren? Nutze kuendigungsfrist."
    result = ToolResult("kuendigungsfrist", "6 Monate zum Ende eines Kalendermonats", {"jahre": 15})
    text = knowledge.answer_after_tool_results(question, [], [result])
    assert text.startswith(
        "Das Werkzeug kuendigungsfrist (jahre: 15) ergibt: „6 Monate zum Ende eines Kalendermonats“."
    )
    assert "Rechtlich steht dahinter § 622 Abs. 2 BGB: " in text
    assert "§ 613a" not in text and "TzBfG" not in text and "lieferte" not in text
    # a provision a result names is cited first; nothing from the corpus where nothing fits
    named = ToolResult("kuendigungsfrist", "drei Monate zum Ende eines Kalendermonats (§ 622 Abs. 2 BGB)")
    assert "dahinter § 622 Abs. 2 BGB" in knowledge.answer_after_tool_results("Frist?", [], [named])
    weather = ToolResult("get_weather", "In Köln ist es sonnig bei 21 Grad.", {"city": "Köln"})
    assert knowledge.answer_after_tool_results("Wetter in Köln?", [], [weather]) == (
        "Das Werkzeug get_weather (city: Köln) meldet: In Köln ist es sonnig bei 21 Grad."
    )


def test_structured_output_takes_values_from_the_cited_passages() -> None:
    schema = {
        "type": "object",
        "properties": {"frist": {"type": "string"}, "wochen": {"type": "integer"}},
        "required": ["frist", "wochen"],
    }
    question = "Welche Kündigungsfrist gilt in der Probezeit?"
    assert value_for_schema(schema, question) == {"frist": "Kündigungsfrist", "wochen": 0}
    evidence = Knowledge().evidence(question)
    assert value_for_schema(schema, question, evidence=evidence) == {"frist": "zwei Wochen", "wochen": 2}
    # the question's own values come first; number words count as numbers
    jahre = {"type": "object", "properties": {"jahre": {"type": "integer"}}, "required": ["jahre"]}
    assert value_for_schema(jahre, "Frist nach zwei Jahren?", evidence=evidence) == {"jahre": 2}
    assert value_for_schema(jahre, "Frist nach 8 Jahren?", evidence=evidence) == {"jahre": 8}


def excerpt(excerpt_id: str) -> Excerpt:
    return next(e for e in load_corpus() if e.id == excerpt_id)


# (excerpt, wording it must contain) for each correction of the check against the statutes.
CORRECTED_WORDING = [
    (
        "bgb-630",
        "Das Zeugnis kann mit Einwilligung des Verpflichteten in elektronischer Form erteilt werden.",
    ),
    ("bgb-630", "auf die Leistungen und die Führung im Dienst zu erstrecken"),
    (
        "entgfg-5-1a",
        "ärztlich feststellen und sich eine ärztliche Bescheinigung nach Absatz 1 Satz 2 oder 4 aushändigen "
        "zu lassen.",
    ),
    ("muschg-3-2", "bis zum Ablauf von acht Wochen nach der Entbindung nicht beschäftigen"),
    (
        "muschg-3-2",
        "Nach Satz 2 Nummer 3 verlängert sich die Schutzfrist nach der Entbindung nur, wenn die Frau",
    ),
    ("bgb-613a-1", "Satz 2 gilt nicht, wenn die Rechte und Pflichten bei dem neuen Inhaber"),
    ("bgb-613a-1", "Vor Ablauf der Frist nach Satz 2 können die Rechte und Pflichten geändert werden"),
    (
        "kschg-1-3",
        "Der Arbeitnehmer hat die Tatsachen zu beweisen, die die Kündigung als sozial ungerechtfertigt",
    ),
    ("tzbfg-14-2", "können nicht tarifgebundene Arbeitgeber und Arbeitnehmer die Anwendung der tariflichen"),
    ("tzbfg-8-4", "Die Ablehnungsgründe können durch Tarifvertrag festgelegt werden."),
    ("muschg-17-1", "Die Sätze 1 und 2 gelten entsprechend für Vorbereitungsmaßnahmen des Arbeitgebers"),
    ("kschg-23-1", "Die Vorschriften des Ersten Abschnitts gelten mit Ausnahme der §§ 4 bis 7"),
    ("kschg-23-1", "bis zur Beschäftigung von in der Regel zehn Arbeitnehmern nicht zu berücksichtigen"),
    ("milov5-1", "ab 1. Januar 2026 13,90 Euro brutto je Zeitstunde, 2. ab 1. Januar 2027 14,60 Euro"),
    (
        "bgb-622-4",
        "Von den Absätzen 1 bis 3 abweichende Regelungen können durch Tarifvertrag vereinbart werden.",
    ),
    ("bgb-622-5", "Einzelvertraglich kann eine kürzere als die in Absatz 1 genannte Kündigungsfrist"),
]
REMOVED_WORDING = [
    ("bgb-630", "Die Erteilung des Zeugnisses in elektronischer Form ist ausgeschlossen."),
    ("bgb-630", "im Dienste"),
    ("entgfg-5-1a", "feststellen zu lassen und"),
    ("muschg-3-2", "bis zum Ende einer Schutzfrist von acht Wochen"),
    ("kschg-23-1", "bis zum Erreichen von zehn Arbeitnehmern"),
    ("kschg-23-1", "Abschnitts mit Ausnahme der §§ 4 bis 7 und des § 13 Abs. 1 Satz 1 und 2 gelten nicht"),
]


@pytest.mark.parametrize(("excerpt_id", "wording"), CORRECTED_WORDING)
def test_corrected_wording_is_in_the_corpus(excerpt_id: str, wording: str) -> None:
    assert wording in excerpt(excerpt_id).content


@pytest.mark.parametrize(("excerpt_id", "wording"), REMOVED_WORDING)
def test_outdated_wording_is_gone(excerpt_id: str, wording: str) -> None:
    assert wording not in excerpt(excerpt_id).content


def test_summaries_state_the_current_law() -> None:
    certificate = excerpt("entgfg-5-1")
    assert "seit 1. Januar 2023" in certificate.summary and "privat Versicherte" in certificate.summary
    assert "Minijobber in Privathaushalten" in certificate.summary and "elektronisch" in certificate.summary
    assert certificate.content.endswith("[…]")  # Satz 5 is left out, and says so
    maternity = excerpt("muschg-3-2").summary
    assert "nur auf Antrag" in maternity and "Fehlgeburt" in maternity
    assert all(week in maternity for week in ("13.", "17.", "20."))
    assert (
        "seit 1. Januar 2025" in excerpt("bgb-630").summary and "elektronisch" in excerpt("bgb-630").summary
    )
    assert "603 Euro" in excerpt("sgb4-8-1a").summary


def test_every_source_says_it_is_an_excerpt_and_its_stand() -> None:
    for each in load_corpus():
        content = each.to_source()["content"]
        assert content.startswith(each.content) and content.endswith(" (Auszug, Stand: 1. Januar 2026)")
    with pytest.raises(ValueError, match="'as_of' must be an ISO date"):
        parse_corpus([{**json.loads(json.dumps(excerpt_entry())), "as_of": "1.1.2026"}])
    later = parse_corpus([{**excerpt_entry(), "as_of": "2027-01-01"}])[0]
    assert later.to_source()["content"].endswith("(Auszug, Stand: 1. Januar 2027)")


def excerpt_entry() -> dict[str, object]:
    return {
        "id": "x-1",
        "law": "BGB",
        "document_title": "Bürgerliches Gesetzbuch (BGB)",
        "section": "§ 1",
        "content": "§ 1 BGB: Text.",
        "summary": "Nach § 1 BGB gilt etwas.",
        "keywords": ["a"],
    }
