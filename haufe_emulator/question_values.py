"""The values a question offers to the emulator's stand-in for a model: numbers, dates, quoted text
and names, found by simple, deterministic rules, each used at most once.

- numbers (`12`, `-3`, `12,5` or `12.5`) fill `integer` (integral ones only) and `number`;
  dates (`2024-05-01`, `1.5.2024`) fill `format: date` / `date-time` strings;
- strings come from quoted text (`"…"`, `„…“`, `»…«`, `'…'`) first, then from capitalised words
  (adjacent ones joined, as in "Anna Schmidt") that do not start a sentence and are not words of
  the tool or schema itself (names, titles, descriptions). Capitalised words after an article or a
  number, or with a common-noun ending (-ung, -keit, …), are German nouns more often than names:
  they are used last, and never for optional properties;
- a list of values (`"Berlin und München"`, `"Berlin, Hamburg und München"`: joined by `,`,
  `und`, `and`, the last two by `und`/`and`, so that `"San Francisco, CA"` stays one place) is a
  run, for an array or for one tool call per value.

- German number words count as numbers (`zwei` .. `zwölf`, `zwanzig`, `dreißig`; `ein`/`eine`/…
  only before a unit: `einen Monat`);
- `evidence` (the passages the answer cites) offers values too, but only to a property whose name
  the question does not mention and the evidence does, within `HINT_DISTANCE` of it: `wochen` takes
  2 from "mit einer Frist von zwei Wochen", a string property there takes "zwei Wochen".

`schema_values` decides which value fits where.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CAMEL_BOUNDARY",
    "HINT_DISTANCE",
    "MISSING",
    "QUERY_NAMES",
    "QuestionValues",
    "schema_vocabulary",
    "significant_words",
    "words_match",
]

#: How far (in characters) a value may be from the property name it is claimed for.
HINT_DISTANCE = 40


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


QUERY_NAMES = frozenset(
    {
        "query",
        "question",
        "frage",
        "text",
        "prompt",
        "input",
        "message",
        "nachricht",
        "anfrage",
        "suchbegriff",
        "suche",
        "search",
        "q",
        "content",
        "inhalt",
    }
)
STOPWORDS = _word_set(
    """
    der die das den dem des ein eine einer eines einem einen und oder aber für mit von vom zu zum zur
    im in am an auf aus bei nach über unter vor wie was wer wo wann warum ist sind war wird werden
    wurde hat haben kann können soll sollen muss müssen darf dürfen gibt geben zurück liefert
    ich du er sie es wir ihr ihnen ihre ihren ihrem ihres mir mich dir dich uns euch sich mein meine
    dein deine sein seine nicht kein keine auch noch nur sehr mehr als so dass ob wenn dann
    alle alles jede jeder jedes diese dieser dieses welche welcher welches bitte
    the a an of for to and or with from by on at is are was be been get gets returns return give
    gives this that these those it its as into about please what which who how when where
    aktuell aktuelle aktuellen aktueller aktuelles current neue neuen neuer neues new
    """
)
#: Words after which a capitalised word is a common noun, not a name.
_DETERMINERS = _word_set(
    """
    der die das den dem des ein eine einer eines einem einen im am vom zum zur beim ins
    kein keine keinen keinem keiner mein meine meinen meinem meiner dein deine sein seine seinen
    ihr ihre ihren ihrem ihrer unser unsere euer eure diese dieser dieses diesen diesem jede jeder
    jedes jeden jedem alle viele wenige mehrere einige welche welcher welches welchen manche
    the a an this that these those my your his her its our their some many few several
    """
)
_NOUN_ENDINGS = (
    "ung",
    "ungen",
    "keit",
    "heit",
    "schaft",
    "tät",
    "ion",
    "nis",
    "tum",
    "frist",
    "fristen",
    "zeit",
    "tag",
    "tage",
    "tagen",
    "jahr",
    "jahre",
    "jahren",
    "monat",
    "monate",
    "woche",
    "wochen",
    "recht",
    "gesetz",
    "lohn",
    "geld",
    "urlaub",
    "vertrag",
    "arbeit",
)
_LIST_JOINERS = frozenset({",", "und", "and"})

_QUOTED = re.compile(r"\"([^\"]+)\"|„([^“”\"]+)[“”\"]|»([^«]+)«|“([^”]+)”|(?<!\w)'([^']+)'(?!\w)")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_NUMBER_WORD_TEXT = "zwei drei vier fünf sechs sieben acht neun zehn elf zwölf"
_NUMBER_WORDS = {
    **{word: value for value, word in enumerate(_NUMBER_WORD_TEXT.split(), start=2)},
    **{"fünfzehn": 15, "zwanzig": 20, "dreißig": 30},
}
#: "ein", "eine", … are articles except before a unit ("einen Monat", "eine Woche").
_ONE_WORDS = frozenset({"ein", "eine", "einen", "einem", "einer", "eines"})
_UNIT_AFTER = re.compile(r"\s+(?:Kalender)?(?:Tag|Woche|Monat|Jahr|Stunde|Werktag|Arbeitstag)", re.IGNORECASE)
_DURATION = re.compile(
    r"(?<![\w.,])(?:\d+|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r"|eine[nmr]?|ein)"
    r"\s+(?:Kalender|Werk|Arbeits)?(?:Tage?n?|Wochen?|Monaten?|Monate|Jahren?|Jahre|Stunden?)\b",
    re.IGNORECASE,
)
_GERMAN_DATE = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b")
_TOKEN = re.compile(
    r"(?P<number>(?<![\w.,])-?\d+(?:[.,]\d+)?(?![\w]))|(?P<word>[^\W\d_][\w'-]*)|(?P<punct>[^\s\w])"
)
CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def significant_words(text: str) -> list[str]:
    """The words of at least four letters that are not stopwords, each once, lowercased."""
    words: list[str] = []
    for word in re.findall(r"[^\W\d_]+", text.lower()):
        if len(word) >= 4 and word not in STOPWORDS and word not in words:
            words.append(word)
    return words


def words_match(a: str, b: str) -> bool:
    """Whether one word is a prefix of the other (of at least four letters), else equal."""
    shorter, longer = sorted((a, b), key=len)
    return longer.startswith(shorter) if len(shorter) >= 4 else a == b


@dataclass
class _Item:
    kind: str  # "number", "string", "date"
    value: Any
    start: int
    preferred: bool = True
    used: bool = False
    #: Found in the evidence, not the question: usable only near a property's name there.
    evidence: bool = False


def _vocabulary_words(texts: Iterable[str]) -> set[str]:
    words: set[str] = set()
    for text in texts:
        for word in re.findall(r"[^\W\d_]+", CAMEL_BOUNDARY.sub(" ", text)):
            if len(word) >= 3:
                words.add(word.lower())
    return words


def schema_vocabulary(schema: Any, depth: int = 0) -> list[str]:
    """Property names, titles and descriptions anywhere in a schema: words about the values,
    not values."""
    found: list[str] = []
    if depth > 20:
        return found
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key in ("title", "description") and isinstance(value, str):
                found.append(value)
            elif key == "properties" and isinstance(value, Mapping):
                found.extend(str(name) for name in value)
                for sub in value.values():
                    found.extend(schema_vocabulary(sub, depth + 1))
            elif key not in ("enum", "const", "default", "examples"):
                found.extend(schema_vocabulary(value, depth + 1))
    elif isinstance(schema, list):
        for sub in schema:
            found.extend(schema_vocabulary(sub, depth + 1))
    return found


class QuestionValues:
    """The values a question offers, each used at most once."""

    def __init__(
        self,
        question: str,
        vocabulary: Iterable[str],
        *,
        exclude: Sequence[str] = (),
        evidence: str = "",
    ) -> None:
        self.question = question
        self.vocabulary = _vocabulary_words(vocabulary)
        self.items: list[_Item] = []
        #: Counts every value taken from the question (pool items, enum mentions, hints).
        self.derived = 0
        #: Question positions already used for an enum member, a boolean or (-1) the whole question.
        self.claimed: set[int] = set()
        self._runs: list[list[_Item]] = []
        self._extract(question, {value.lower() for value in exclude})
        # Evidence positions follow the question's, so that "near" compares within one text.
        self._evidence = evidence
        self._evidence_start = len(question) + 1
        if evidence:
            self._add_evidence(evidence)

    def in_question(self, position: int) -> bool:
        """Whether a position (from `keyword_position`) is in the question, not the evidence."""
        return position < self._evidence_start

    def _add_evidence(self, evidence: str) -> None:
        found = QuestionValues(evidence, self.vocabulary)
        durations = [_Item("string", match.group(0), match.start()) for match in _DURATION.finditer(evidence)]
        for item in [*found.items, *durations]:
            item.start += self._evidence_start
            item.evidence = True
            self.items.append(item)

    # extraction

    def _extract(self, question: str, exclude: set[str]) -> None:
        masked = list(question)
        # (position, item or joiner/other token), merged in question order for list runs
        events: list[tuple[int, _Item | str]] = []

        def mask(start: int, end: int) -> None:
            masked[start:end] = " " * (end - start)

        quoted: list[_Item] = []
        for match in _QUOTED.finditer(question):
            text = next(group for group in match.groups() if group is not None).strip()
            if text and text.lower() not in exclude:
                quoted.append(_Item("string", text, match.start()))
                events.append((match.start(), quoted[-1]))
            mask(match.start(), match.end())
        dates: list[_Item] = []
        for match in _ISO_DATE.finditer("".join(masked)):
            dates.append(_Item("date", match.group(0), match.start()))
            events.append((match.start(), "<date>"))
            mask(match.start(), match.end())
        for match in _GERMAN_DATE.finditer("".join(masked)):
            day, month, year = (int(part) for part in match.groups())
            if 1 <= day <= 31 and 1 <= month <= 12:
                dates.append(_Item("date", f"{year:04d}-{month:02d}-{day:02d}", match.start()))
                events.append((match.start(), "<date>"))
                mask(match.start(), match.end())
        text = "".join(masked)
        numbers: list[_Item] = []
        names: list[_Item] = []
        sentence_start = True
        previous_word = ""
        previous_was_number = False
        last_name: _Item | None = None
        last_name_end = -1
        for match in _TOKEN.finditer(text):
            piece = match.group(0)
            if match.lastgroup == "number":
                number = float(piece.replace(",", "."))
                item = _Item("number", int(number) if number.is_integer() else number, match.start())
                numbers.append(item)
                events.append((match.start(), item))
                sentence_start, previous_was_number, previous_word, last_name = False, True, piece, None
                continue
            if match.lastgroup == "punct":
                sentence_start = sentence_start or piece in ".!?"
                events.append((match.start(), piece))
                previous_word, last_name = piece, None
                continue
            lowered = piece.lower()
            spoken = _NUMBER_WORDS.get(lowered)
            if spoken is None and lowered in _ONE_WORDS and _UNIT_AFTER.match(text, match.end()):
                spoken = 1
            if spoken is not None:
                item = _Item("number", spoken, match.start())
                numbers.append(item)
                events.append((match.start(), item))
                sentence_start, previous_was_number, previous_word, last_name = False, True, piece, None
                continue
            is_candidate = (
                piece[0].isupper()
                and not sentence_start
                and lowered not in STOPWORDS
                and lowered not in exclude
                and not any(words_match(lowered, word) for word in self.vocabulary)
            )
            if is_candidate:
                noun_like = lowered.endswith(_NOUN_ENDINGS)
                if last_name is not None and text[last_name_end : match.start()] == " ":
                    last_name.value = f"{last_name.value} {piece}"
                    last_name.preferred = last_name.preferred and not noun_like
                else:
                    demoted = previous_word.lower() in _DETERMINERS or previous_was_number or noun_like
                    last_name = _Item("string", piece, match.start(), preferred=not demoted)
                    names.append(last_name)
                    events.append((match.start(), last_name))
                last_name_end = match.end()
            else:
                last_name = None
                events.append((match.start(), lowered))
            sentence_start, previous_was_number, previous_word = False, False, piece
        excluded = [item for item in names if item.value.lower() in exclude]
        names = [item for item in names if item not in excluded]
        self.items = [*quoted, *dates, *numbers, *names]
        events.sort(key=lambda event: event[0])
        self._runs = _list_runs(
            ["<excluded>" if any(token is item for item in excluded) else token for _, token in events]
        )

    # taking values

    def mark(self) -> tuple[int, tuple[bool, ...], frozenset[int]]:
        return self.derived, tuple(item.used for item in self.items), frozenset(self.claimed)

    def restore(self, mark: tuple[int, tuple[bool, ...], frozenset[int]]) -> None:
        self.derived = mark[0]
        for item, used in zip(self.items, mark[1], strict=True):
            item.used = used
        self.claimed = set(mark[2])

    def claim(self, position: int) -> bool:
        """Use the question at `position` for one value (an enum member, a boolean, the whole
        question at -1); False when something already used it."""
        if position in self.claimed:
            return False
        self.claimed.add(position)
        self.derived += 1
        return True

    def keyword_position(self, name: str | None, title: Any = None) -> int | None:
        """Where the question mentions a property (its name's parts or its title), if it does."""
        if not name:
            return None
        parts = [p.lower() for p in re.findall(r"[^\W\d_]+", CAMEL_BOUNDARY.sub(" ", name)) if len(p) >= 3]
        if isinstance(title, str):
            parts += [p for p in significant_words(title) if p not in parts]
        parts = [p for p in parts if p not in STOPWORDS]
        for text, offset in ((self.question, 0), (self._evidence, self._evidence_start)):
            for match in re.finditer(r"[^\W\d_]+", text):
                word = match.group(0).lower()
                if any(word == part or (len(part) >= 4 and word.startswith(part)) for part in parts):
                    return offset + match.start()
        return None

    def take(
        self,
        kinds: Sequence[str],
        accept: Any,
        *,
        near: int | None = None,
        optional: bool = False,
    ) -> Any:
        """The first (or, with `near`, the nearest) unused value of one of `kinds` that `accept`s,
        marking it used; `MISSING` when there is none."""
        candidates = [
            item
            for item in self.items
            if not item.used
            and item.kind in kinds
            and (item.preferred or not optional)
            and accept(item.value)
        ]
        if not candidates:
            return MISSING
        if near is not None:
            close = [item for item in candidates if abs(item.start - near) <= HINT_DISTANCE]
            if close:
                chosen = min(close, key=lambda item: (abs(item.start - near), item.start))
                return self.use(chosen)
        candidates = [item for item in candidates if not item.evidence]
        if not candidates:
            return MISSING
        preferred = [item for item in candidates if item.preferred]
        return self.use((preferred or candidates)[0])

    def use(self, item: _Item) -> Any:
        item.used = True
        self.derived += 1
        return item.value

    def string_list_run(self) -> list[str]:
        """The first list of at least two names or quoted strings joined by `,`, `und`, `and`."""
        for run in self._runs:
            if all(item.kind == "string" and item.preferred for item in run):
                return [str(item.value) for item in run]
        return []

    def take_run(self, kind: str, accept: Callable[[Any], bool]) -> list[Any]:
        """The values of the first unused list run of this kind, marking them used."""
        for run in self._runs:
            usable = all(item.kind == kind and not item.used and accept(item.value) for item in run)
            if usable and (kind != "string" or all(item.preferred for item in run)):
                return [self.use(item) for item in run]
        return []


def _list_runs(sequence: Sequence[_Item | str]) -> list[list[_Item]]:
    """Lists of values of one kind: `A und B`, `A, B and C`, `A, B, und C`. Values joined by
    commas alone are not a list (`San Francisco, CA` is one place)."""
    runs: list[list[_Item]] = []
    current: list[tuple[_Item, bool]] = []  # (value, joined to the previous one by und/and)
    gap: set[str] | None = None  # joiners seen since the last value; None: something else came

    def close() -> None:
        last = max((i for i, (_, conjunction) in enumerate(current) if conjunction), default=0)
        if last >= 1:
            runs.append([item for item, _ in current[: last + 1]])

    for token in sequence:
        if isinstance(token, _Item):
            if current and gap and current[-1][0].kind == token.kind:
                current.append((token, bool(gap & {"und", "and"})))
            else:
                close()
                current = [(token, False)]
            gap = set()
        elif token in _LIST_JOINERS and gap is not None and current:
            gap.add(token)
        else:
            close()
            current, gap = [], None
    close()
    return runs


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


# -- building values --------------------------------------------------------------------------
