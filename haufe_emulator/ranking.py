"""BM25 ranking of corpus excerpts for a question (bm25s), with German stemming (Snowball).

The libraries do the scoring and the inflections; what stays here is what German legal questions
need on top: folding and stop words, participles and adjectives Snowball leaves alone
(gekündigt, täglich), split compounds (Kündigungs|frist), and how a follow-up is read with the
earlier turns of its thread.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from functools import cache, lru_cache
from typing import Any

import snowballstemmer

from haufe_emulator.corpus import Excerpt, load_corpus

K1 = 1.5
B = 0.75
# Earlier user turns count less, the most recent one most (oldest turns beyond these are ignored).
HISTORY_WEIGHTS = (0.5, 0.25, 0.125)
# A follow-up with words of its own is about those words: its thread adds at most this share of
# the best score the follow-up reaches alone, enough to bring the thread's provisions in as
# companions, never enough to put the thread's old answer first again.
FOLLOW_UP_SHARE = 0.9
# A question that does not point back ("Wie hoch ist der Mindestlohn?") opens a new topic: its
# thread only settles near ties.
NEW_TOPIC_SHARE = 0.2
# Folded words by which a question points back to the conversation ("Gilt das auch ...?", "Und für ...?").
_BACK_REFERENCE_TEXT = "und das dies dafur dabei dann danach dort ebenfalls ebenso"
_BACK_REFERENCES = frozenset(_BACK_REFERENCE_TEXT.split())
# Keywords are curated lay synonyms, so they count twice in an excerpt's text.
KEYWORD_REPEAT = 2
# Parts of a split compound ("Kündigungs|frist") count less in a question than the word itself.
COMPOUND_PART_WEIGHT = 0.5

_FOLD = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "ss"})
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
# "§ 622 Abs. 3", "§§ 4 bis 7", "Absatz 1 Satz 2 oder 4", "Nr. 1": references, not quantities.
_CITED_NUMBERS = re.compile(
    r"(?:§§?|Abs\.|Absatz|Absätzen|Satz|Sätzen|Sätze|Nr\.|Nummer|Buchstabe)\s*\d+[a-z]?"
    r"(?:\s*(?:bis|und|oder|-)\s*\d+[a-z]?)*"
)
_MIN_STEM = 3
# Derivations the Snowball algorithm keeps when they fall outside its R2 region (täglich, Krankheit).
_DERIVATIONS = ("lich", "heit", "keit", "ung")

# Folded (ä->a, ß->ss) function words and question phrasing that carry no legal meaning.
_STOP_WORD_TEXT = """
    aber alle allem allen aller alles als also am an auch auf aus bei beim bekomme bekommt bin bis
    bist bitte da dabei damit danach dann darf das dass davon dazu dein deine dem den denn der des
    dessen dich die dies diese diesem diesen dieser dieses dir doch dort du durch durfen ein eine
    einem einen einer eines er es etwa euch euer fur gegenuber gelten gerade gibt gilt habe haben
    hat hatte ich ihm ihn ihnen ihr ihre ihrem ihren ihrer im in ist ja jetzt kann kein keine konnen
    konnte lange man mehr mein meine meinem meinen meiner mich mir mit muss mussen nach nicht noch
    nun nur ob oder ohne sehr sein seine seinem seinen seiner sich sie sind so soll sollen sollte
    stehen steht uber um und uns unser unter viel viele vom von vor wahrend wann war waren warum
    was weil welche welchem welchen welcher welches wenn wer werde werden wie wieviel wird wir wo
    wurde wurden zu zum zur zusteht zustehen
"""
STOP_WORDS = frozenset(_STOP_WORD_TEXT.split())

_GERMAN = snowballstemmer.stemmer("german")


@lru_cache(maxsize=16384)
def stem(word: str) -> str:
    """The stem of a folded, lowercased German word (Kündigungsfristen -> kundigungsfrist)."""
    if word.isdigit():
        return word
    # Participles first: Snowball keeps their ge-...-t (gekündigt -> kundig like Kündigung).
    if len(word) >= 8 and word.startswith("ge") and word.endswith("t"):
        word = word[2:-1]
    elif word.endswith("igt"):  # ungerechtfertigt -> ungerechtfertig
        word = word[:-1]
    # Snowball is not idempotent (höchstens -> hochst -> hoch): a second pass makes an inflected
    # form and its base meet.
    stemmed: str = _GERMAN.stemWord(_GERMAN.stemWord(word))
    for suffix in _DERIVATIONS:  # täglich -> tag, Krankheit -> krank
        if stemmed.endswith(suffix) and len(stemmed) - len(suffix) >= _MIN_STEM:
            stemmed = stemmed[: -len(suffix)]
            break
    return stemmed


def normalize(text: str) -> str:
    """Lowercase and fold umlauts and ß, so that spelling variants compare equal."""
    return text.lower().translate(_FOLD)


def tokenize(text: str) -> list[str]:
    """Stems of the meaningful words of a German text, in order."""
    return [
        stem(word) for word in _NON_ALNUM.split(normalize(text)) if len(word) > 1 and word not in STOP_WORDS
    ]


def refers_back(question: str) -> bool:
    """Whether a question continues the conversation rather than opening a topic of its own."""
    return any(word in _BACK_REFERENCES for word in _NON_ALNUM.split(normalize(question)))


def _quiet_bm25s() -> Any:
    """bm25s, imported when the first index is built (numpy stays out of the emulator's import)."""
    import bm25s

    # bm25s sets its own logger to DEBUG at import; building an index is not news to the caller.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def _numpy() -> Any:
    import numpy

    return numpy


class BM25Index:
    """BM25 (k1=1.5, b=0.75, bm25s' Lucene variant) over the content, summary and keywords of excerpts."""

    def __init__(self, excerpts: Sequence[Excerpt]) -> None:
        self.excerpts: tuple[Excerpt, ...] = tuple(excerpts)
        texts = [self._document_tokens(excerpt) for excerpt in self.excerpts]
        self._vocabulary = frozenset(token for tokens in texts for token in tokens)
        self._compound_parts: dict[str, tuple[str, ...]] = {}
        documents = [
            [term for token in tokens for term in (token, *self._split_compound(token))] for tokens in texts
        ]
        self._retriever: Any = None
        if self.excerpts:
            self._retriever = _quiet_bm25s().BM25(k1=K1, b=B, method="lucene", backend="numpy")
            self._retriever.index(documents, show_progress=False)
            self._zeros = _numpy().zeros(len(self.excerpts), dtype="float64")

    @staticmethod
    def _document_tokens(excerpt: Excerpt) -> list[str]:
        # The numbers of cited provisions are not what a question's numbers mean ("12 Tage").
        content, summary = (_CITED_NUMBERS.sub(" ", text) for text in (excerpt.content, excerpt.summary))
        tokens = tokenize(content) + tokenize(summary)
        for keyword in excerpt.keywords:
            tokens += tokenize(keyword) * KEYWORD_REPEAT
        return tokens

    def _split_compound(self, token: str) -> tuple[str, ...]:
        """Known parts of a German compound: kundigungsfrist -> (kundig, frist)."""
        if token in self._compound_parts:
            return self._compound_parts[token]
        parts: tuple[str, ...] = ()
        known_head = ""
        # Longest known head first; "s" is the usual linking element (Urlaub-s-tag).
        for cut in range(len(token) - _MIN_STEM, _MIN_STEM - 1, -1):
            prefix, tail = token[:cut], stem(token[cut:])
            candidates = [stem(prefix)] + ([stem(prefix[:-1])] if prefix.endswith("s") else [])
            head = next((c for c in candidates if c in self._vocabulary), "")
            if not head:
                continue
            if tail in self._vocabulary:
                parts = (head, tail)
                break
            if not known_head and len(head) >= 4:
                known_head = head
        if not parts and known_head:  # Teilzeit|kräfte: keep the head even if the tail is unknown
            parts = (known_head,)
        self._compound_parts[token] = parts
        return parts

    def _term_weights(self, turns: Iterable[tuple[str, float]]) -> dict[str, float]:
        weights: dict[str, float] = {}
        for text, turn_weight in turns:
            for token in tokenize(text):
                self._add_weight(weights, [token], turn_weight)
                self._add_weight(weights, self._split_compound(token), turn_weight * COMPOUND_PART_WEIGHT)
        return weights

    @staticmethod
    def _add_weight(weights: dict[str, float], terms: Iterable[str], weight: float) -> None:
        for term in terms:  # a repeated term keeps its strongest weight
            weights[term] = max(weights.get(term, 0.0), weight)

    def _scores(self, weights: dict[str, float]) -> Any:
        """BM25 scores of every excerpt (a numpy array) for weighted query terms."""
        by_weight: dict[float, list[int]] = {}
        vocabulary = self._retriever.vocab_dict
        for term, weight in weights.items():
            if term in vocabulary:
                by_weight.setdefault(weight, []).append(vocabulary[term])
        totals = self._zeros.copy()
        for weight, token_ids in by_weight.items():
            totals += weight * self._retriever.get_scores_from_ids(token_ids).astype("float64")
        return totals

    def rank(self, question: str, history: Sequence[str] = ()) -> list[tuple[Excerpt, float]]:
        """All excerpts matching the question, best first (ties in corpus order).

        ``history`` holds the earlier user turns of the conversation, oldest first. A vague
        follow-up ("Und wie lange gilt das danach?") is ranked by them; one with words of its own
        ("Gilt das auch für Teilzeitkräfte?") by those, the thread adding context (FOLLOW_UP_SHARE).
        """
        if self._retriever is None:
            return []
        scores = self._scores(self._term_weights([(question, 1.0)]))
        if history:
            context = self._context_scores(history)
            best_own, best_context = float(scores.max()), float(context.max())
            share = FOLLOW_UP_SHARE if refers_back(question) else NEW_TOPIC_SHARE
            scale = share * best_own / best_context if best_own > 0 < best_context else 1.0
            scores += scale * context
        return self._ranked(scores)

    def rank_context(self, history: Sequence[str]) -> list[tuple[Excerpt, float]]:
        """The excerpts the earlier turns of a conversation are about, best first."""
        if self._retriever is None or not history:
            return []
        return self._ranked(self._context_scores(history))

    def _context_scores(self, history: Sequence[str]) -> Any:
        return self._scores(self._term_weights(zip(reversed(history), HISTORY_WEIGHTS, strict=False)))

    def _ranked(self, scores: Any) -> list[tuple[Excerpt, float]]:
        ranked = sorted(
            ((position, float(score)) for position, score in enumerate(scores.tolist()) if score > 0),
            key=lambda item: (-item[1], item[0]),
        )
        return [(self.excerpts[position], score) for position, score in ranked]


@cache
def default_index() -> BM25Index:
    """The index over the bundled corpus, built once per process."""
    return BM25Index(load_corpus())
