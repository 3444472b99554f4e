"""A small German-aware BM25 ranking of corpus excerpts for a question."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache, lru_cache

from haufe_emulator.corpus import Excerpt, load_corpus

K1 = 1.5
B = 0.75
# Earlier user turns count less, the most recent one most (oldest turns beyond these are ignored).
HISTORY_WEIGHTS = (0.5, 0.25, 0.125)
# Keywords are curated lay synonyms, so they count twice in an excerpt's text.
KEYWORD_REPEAT = 2
# Parts of a split compound ("Kündigungs|frist") count less in a question than the word itself.
COMPOUND_PART_WEIGHT = 0.5

_FOLD = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "ss"})
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_MIN_STEM = 3
_INFLECTIONS = ("ern", "en", "er", "es", "em", "e", "s")
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


@lru_cache(maxsize=16384)
def stem(word: str) -> str:
    """Light German stemmer for a folded, lowercased word (Kündigungsfristen -> kundigungsfrist)."""
    if word.isdigit():
        return word
    if word.endswith("ungen"):  # Kündigungen -> Kündigung
        word = word[:-2]
    for _ in range(2):  # höchstens -> hochsten -> hochst
        for suffix in _INFLECTIONS:
            if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
                if suffix == "s" and word.endswith("ss"):  # Ausschluss is not a genitive
                    continue
                word = word[: -len(suffix)]
                break
        else:
            break
    for suffix in _DERIVATIONS:  # täglich -> tag, Krankheit -> krank, Kündigung -> kundig
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            word = word[: -len(suffix)]
            break
    if len(word) >= 8 and word.startswith("ge") and word.endswith("t"):  # gekündigt -> kundig
        word = word[2:-1]
    elif word.endswith("igt"):  # ungerechtfertigt -> ungerechtfertig
        word = word[:-1]
    return word


def normalize(text: str) -> str:
    """Lowercase and fold umlauts and ß, so that spelling variants compare equal."""
    return text.lower().translate(_FOLD)


def tokenize(text: str) -> list[str]:
    """Stems of the meaningful words of a German text, in order."""
    return [
        stem(word) for word in _NON_ALNUM.split(normalize(text)) if len(word) > 1 and word not in STOP_WORDS
    ]


class BM25Index:
    """BM25 (k1=1.5, b=0.75) over the content, summary and keywords of excerpts."""

    def __init__(self, excerpts: Sequence[Excerpt]) -> None:
        self.excerpts: tuple[Excerpt, ...] = tuple(excerpts)
        texts = [self._document_tokens(excerpt) for excerpt in self.excerpts]
        self._vocabulary = frozenset(token for tokens in texts for token in tokens)
        self._compound_parts: dict[str, tuple[str, ...]] = {}
        documents = [
            Counter(term for token in tokens for term in (token, *self._split_compound(token)))
            for tokens in texts
        ]
        lengths = [sum(document.values()) for document in documents]
        average_length = sum(lengths) / len(lengths) if lengths else 0.0
        document_frequency: Counter[str] = Counter(term for doc in documents for term in doc)
        count = len(documents)
        # term -> [(excerpt position, idf-weighted saturated term frequency)], so that
        # ranking is a few dictionary look-ups and additions per question term.
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for position, (document, length) in enumerate(zip(documents, lengths, strict=True)):
            norm = K1 * (1 - B + B * length / average_length)
            for term, frequency in document.items():
                frequency_df = document_frequency[term]
                idf = math.log(1 + (count - frequency_df + 0.5) / (frequency_df + 0.5))
                weight = idf * frequency * (K1 + 1) / (frequency + norm)
                self._postings.setdefault(term, []).append((position, weight))

    @staticmethod
    def _document_tokens(excerpt: Excerpt) -> list[str]:
        tokens = tokenize(excerpt.content) + tokenize(excerpt.summary)
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

    def _query_weights(self, question: str, history: Sequence[str]) -> dict[str, float]:
        turns: list[tuple[str, float]] = [(question, 1.0)]
        turns += zip(reversed(history), HISTORY_WEIGHTS, strict=False)
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

    def rank(self, question: str, history: Sequence[str] = ()) -> list[tuple[Excerpt, float]]:
        """All excerpts matching the question, best first (ties in corpus order).

        ``history`` holds the earlier user turns of the conversation, oldest first; they
        add context with a lower weight so that vague follow-ups are understood.
        """
        scores: dict[int, float] = {}
        for term, weight in self._query_weights(question, history).items():
            for position, term_weight in self._postings.get(term, ()):
                scores[position] = scores.get(position, 0.0) + weight * term_weight
        ranked = sorted(
            (item for item in scores.items() if item[1] > 0), key=lambda item: (-item[1], item[0])
        )
        return [(self.excerpts[position], score) for position, score in ranked]


@cache
def default_index() -> BM25Index:
    """The index over the bundled corpus, built once per process."""
    return BM25Index(load_corpus())
