"""The emulator's stand-in for a model's tool use: values that satisfy a JSON schema, and the tool
calls a question asks for, both taken from the question by simple, deterministic rules.

Public API (shared by the completions and the async-streams endpoints):

- `value_for_schema(schema, question)`: a value valid against `schema` (JSON Schema as pydantic
  and OpenAI-style tool definitions write it: `type` (also a list of types), `properties`,
  `required`, `enum`, `const`, `default`, `items`, `prefixItems`, `minItems`/`maxItems`,
  `uniqueItems`, `minimum`/`maximum` (and their exclusive forms), `multipleOf`, `minLength`/
  `maxLength`, `pattern` (best effort), `format` (date, date-time, time, email, uri, uuid),
  `nullable`, `anyOf`/`oneOf`/`allOf`, `$defs`/`definitions` with `$ref`, recursive models).
- `arguments_for(parameters, question)`: the arguments object of one call of a function whose
  `parameters` is that schema (`{}` for no, empty or absent parameters).
- `tool_spec(tool)` / `ToolSpec`: a tool definition read from the OpenAI shape
  `{"type": "function", "function": {"name", "description", "parameters"}}` or the flat shape
  `{"name", "description", "parameters" | "input_schema"}`.
- `tools_asked_for(question, tools)`, `best_tool(question, tools)`: which tools a question asks for.
- `tool_calls_for(question, tools, tool_choice)`: the calls to make (`PlannedToolCall`: name and
  arguments dict), `[]` for a text answer.
- `split_fragments(text, size)`: `text` cut into pieces of at most `size` characters (streamed
  argument fragments).

How values are taken from the question:

- numbers (`12`, `-3`, `12,5` or `12.5`) fill `integer` (integral ones only) and `number`;
  dates (`2024-05-01`, `1.5.2024`) fill `format: date` / `date-time` strings;
- strings come from quoted text (`"…"`, `„…“`, `»…«`, `'…'`) first, then from capitalised words
  (adjacent ones joined, as in "Anna Schmidt") that do not start a sentence and are not words of
  the tool or schema itself (names, titles, descriptions). Capitalised words after an article or a
  number, or with a common-noun ending (-ung, -keit, …), are German nouns more often than names:
  they are used last, and never for optional properties;
- a property whose name (split at `_` and camelCase) or title appears in the question takes the
  fitting value nearest to that word first (`"im Jahr 2024"` -> `jahr: 2024`); a boolean whose
  name appears is `true`;
- a string property named like a query (`query`, `question`, `frage`, `text`, `prompt`, …) gets
  the whole question;
- an `enum` takes the member the question mentions, else the default, else the first member;
- required properties always get a value: from the question where one fits, else the schema's
  `default`, else a valid placeholder (0 or the lower bound, `false`, `"unbekannt"`, `[]`, `None`
  where an `anyOf` allows null); optional properties appear only when the question supplies their
  value (an optional object only when the question names it);
- OpenAPI's `nullable: true` gets a non-null value, valid whether or not a validator knows it.

When the question asks for tools: a tool is asked for when its name (or the name with `_`/`-` as
spaces, or camelCase split) appears in it, or, failing that, when enough significant words of its
description do (one for descriptions of up to three such words, two otherwise; words match when
one is a prefix of the other). Several named tools give one call each, in the order the question
names them; one tool and a list of values (`"Berlin und München"`, `"Berlin, Hamburg und München"`:
joined by `,`, `und`, `and`, the last two by `und`/`and`, so that `"San Francisco, CA"` stays one
place) gives one call per value, the value in the tool's first string property.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PlannedToolCall",
    "ToolSpec",
    "UnsupportedSchema",
    "arguments_for",
    "best_tool",
    "split_fragments",
    "tool_calls_for",
    "tool_spec",
    "tools_asked_for",
    "value_for_schema",
]

#: Placeholder for a required string the question does not supply.
PLACEHOLDER = "unbekannt"
#: Nesting depth after which only the smallest valid value is built (recursive schemas).
MAX_DEPTH = 8
#: What one value may cost: schema nodes entered, nesting of `anyOf`/`oneOf`/`$ref` (which
#: `MAX_DEPTH` does not count: a branch is the same value), and the sizes a schema may demand.
#: Beyond them the schema is refused (`UnsupportedSchema`) instead of exhausting the server.
MAX_SCHEMA_STEPS = 20_000
MAX_SCHEMA_NESTING = 64
MAX_MIN_ITEMS = 1_000
MAX_MIN_LENGTH = 10_000
#: How far (in characters) a value may be from the property name it is claimed for.
HINT_DISTANCE = 40

_FORMAT_PLACEHOLDERS = {
    "date": "2025-01-01",
    "date-time": "2025-01-01T00:00:00Z",
    "time": "00:00:00",
    "email": "max.mustermann@example.com",
    "idn-email": "max.mustermann@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "iri": "https://example.com",
    "uri-reference": "https://example.com",
    "hostname": "example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "duration": "P1D",
}


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_QUERY_NAMES = frozenset(
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
_STOPWORDS = _word_set(
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
_GERMAN_DATE = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b")
_TOKEN = re.compile(
    r"(?P<number>(?<![\w.,])-?\d+(?:[.,]\d+)?(?![\w]))|(?P<word>[^\W\d_][\w'-]*)|(?P<punct>[^\s\w])"
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


# -- public types -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedToolCall:
    """One tool call the emulator makes: the function's name and its arguments."""

    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        """The arguments as the wire carries them: a JSON string."""
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class ToolSpec:
    """A tool definition, whatever shape it came in."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None


def tool_spec(tool: Mapping[str, Any] | ToolSpec) -> ToolSpec:
    """Read a tool definition: `{"type": "function", "function": {"name", "description",
    "parameters"}}` (OpenAI) or flat `{"name", "description", "parameters" | "input_schema"}`."""
    if isinstance(tool, ToolSpec):
        return tool
    function = tool.get("function")
    source: Mapping[str, Any] = function if isinstance(function, Mapping) else tool
    name = source.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("a tool needs a non-empty name")
    description = source.get("description")
    parameters = source.get("parameters", source.get("input_schema"))
    return ToolSpec(
        name=name,
        description=description if isinstance(description, str) else "",
        parameters=parameters if isinstance(parameters, Mapping) else None,
    )


# -- public functions -------------------------------------------------------------------------


def value_for_schema(schema: Mapping[str, Any], question: str) -> Any:
    """A value valid against the JSON schema `schema`, filled from `question` where the module's
    rules find a fitting value, with schema-valid defaults and placeholders otherwise.

    `$ref`s are resolved against `schema` itself (`#/$defs/…`, `#/definitions/…`, `#`)."""
    pool = _Pool(question, _schema_vocabulary(schema))
    return _Builder(schema, pool).value(schema, None, 0, optional=False)


def arguments_for(
    parameters: Mapping[str, Any] | None, question: str, *, vocabulary: Iterable[str] = ()
) -> dict[str, Any]:
    """The arguments object of a call of a function with this `parameters` schema: `{}` when it
    is absent, empty or has no properties. `vocabulary`: further words that are not values (the
    tool's name and description)."""
    return _arguments(parameters, question, vocabulary)


def tools_asked_for(question: str, tools: Sequence[Mapping[str, Any] | ToolSpec]) -> list[ToolSpec]:
    """The tools the question asks for: those it names, in the order it names them; failing
    that, the one whose description it matches best (enough words, see the module's rules)."""
    specs = [tool_spec(tool) for tool in tools]
    named = [
        (position, index, spec)
        for index, spec in enumerate(specs)
        if (position := _name_position(question, spec.name)) >= 0
    ]
    if named:
        return [spec for _, _, spec in sorted(named, key=lambda item: (item[0], item[1]))]
    scored = [(_description_matches(question, spec.description), spec) for spec in specs]
    matching = [(score, spec) for score, spec in scored if score >= _description_threshold(spec.description)]
    if not matching:
        return []
    best = max(score for score, _ in matching)
    return [next(spec for score, spec in matching if score == best)]


def best_tool(question: str, tools: Sequence[Mapping[str, Any] | ToolSpec]) -> ToolSpec:
    """The tool matching the question best (named first, then most description words; the first
    tool on a tie), for `tool_choice: "required"`."""
    specs = [tool_spec(tool) for tool in tools]
    if not specs:
        raise ValueError("no tools to choose from")
    asked = tools_asked_for(question, specs)
    if asked:
        return asked[0]
    scores = [_description_matches(question, spec.description) for spec in specs]
    return specs[scores.index(max(scores))]


def tool_calls_for(
    question: str, tools: Sequence[Mapping[str, Any] | ToolSpec], tool_choice: Any = None
) -> list[PlannedToolCall]:
    """The tool calls answering `question`, or `[]` for a text answer.

    `tool_choice`: `None` or `"auto"` (call the tools the question asks for), `"none"` (never),
    `"required"` or `"any"` (the tools asked for, else the best-matching one), or a named
    function: `{"type": "function", "function": {"name": …}}`, `{"type": "tool", "name": …}` or
    `{"name": …}` (that one; `ValueError` if it is not among `tools`)."""
    specs = [tool_spec(tool) for tool in tools]
    mode, forced = _read_tool_choice(tool_choice)
    if mode == "none" or not specs:
        return []
    if forced is not None:
        chosen = [spec for spec in specs if spec.name == forced][:1]
        if not chosen:
            raise ValueError(f"tool_choice names {forced!r}, which is not among the tools")
    else:
        chosen = tools_asked_for(question, specs)
        if not chosen and mode == "required":
            chosen = [best_tool(question, specs)]
    if len(chosen) == 1:
        return _calls_for_one_tool(question, chosen[0])
    return [
        PlannedToolCall(spec.name, _arguments(spec.parameters, question, _tool_vocabulary(spec)))
        for spec in chosen
    ]


def calls_after_tool_results(
    question: str,
    tools: Sequence[Mapping[str, Any] | ToolSpec],
    tool_choice: Any,
    called: Iterable[str],
) -> list[PlannedToolCall]:
    """After tool results, `"auto"` answers with text, but a `tool_choice` of `"required"` (or
    `"any"`) or a named function still calls a tool, as the API's `tool_choice` says: the named
    one, else the best match among the tools not yet called in the conversation (an agent's
    structured-output tool after its other tools), else among all."""
    mode, forced = _read_tool_choice(tool_choice)
    if mode not in ("required", "forced"):
        return []
    specs = [tool_spec(tool) for tool in tools]
    if forced is None:
        done = set(called)
        specs = [spec for spec in specs if spec.name not in done] or specs
    return tool_calls_for(question, specs, "required" if forced is None else tool_choice)


def split_fragments(text: str, size: int) -> list[str]:
    """`text` in consecutive pieces of `size` characters (the last may be shorter); `[text]` for
    an empty text, so that something is always sent."""
    if size < 1:
        raise ValueError("size must be at least 1")
    if not text:
        return [text]
    return [text[start : start + size] for start in range(0, len(text), size)]


# -- which tools ------------------------------------------------------------------------------


def _read_tool_choice(tool_choice: Any) -> tuple[str, str | None]:
    if tool_choice is None:
        return "auto", None
    if isinstance(tool_choice, str):
        choice = tool_choice.lower()
        if choice in ("auto", "none"):
            return choice, None
        if choice in ("required", "any"):
            return "required", None
        raise ValueError(f"unknown tool_choice {tool_choice!r}")
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
        if isinstance(name, str) and name:
            return "forced", name
        if tool_choice.get("type") in ("auto", "none", "required", "any"):
            return _read_tool_choice(tool_choice["type"])
    raise ValueError(f"unknown tool_choice {tool_choice!r}")


def _name_variants(name: str) -> list[str]:
    spaced = _CAMEL.sub(" ", name).replace("_", " ").replace("-", " ")
    variants = {name.lower(), " ".join(spaced.lower().split())}
    return sorted((variant for variant in variants if variant), key=len, reverse=True)


def _name_position(question: str, name: str) -> int:
    lowered = question.lower()
    positions = [
        match.start()
        for variant in _name_variants(name)
        if (match := re.search(r"(?<![\w])" + re.escape(variant) + r"(?![\w])", lowered))
    ]
    return min(positions) if positions else -1


def _significant_words(text: str) -> list[str]:
    words: list[str] = []
    for word in re.findall(r"[^\W\d_]+", text.lower()):
        if len(word) >= 4 and word not in _STOPWORDS and word not in words:
            words.append(word)
    return words


def _words_match(a: str, b: str) -> bool:
    shorter, longer = sorted((a, b), key=len)
    return longer.startswith(shorter) if len(shorter) >= 4 else a == b


def _description_matches(question: str, description: str) -> int:
    asked = _significant_words(question)
    return sum(1 for word in _significant_words(description) if any(_words_match(word, q) for q in asked))


def _description_threshold(description: str) -> int:
    count = len(_significant_words(description))
    if count == 0:
        return 1_000_000  # a tool without a description is asked for by name only
    return 1 if count <= 3 else 2


def _tool_vocabulary(spec: ToolSpec) -> list[str]:
    return [*_CAMEL.sub(" ", spec.name).replace("_", " ").replace("-", " ").split(), spec.description]


def _calls_for_one_tool(question: str, spec: ToolSpec) -> list[PlannedToolCall]:
    vocabulary = _tool_vocabulary(spec)
    primary = _primary_string_property(spec.parameters)
    if primary is not None:
        key, string_schema = primary
        pool = _Pool(question, [*vocabulary, *_schema_vocabulary(spec.parameters or {})])
        values = pool.string_list_run()
        if len(values) >= 2:
            return [
                PlannedToolCall(
                    spec.name,
                    _arguments(
                        spec.parameters,
                        question,
                        vocabulary,
                        fixed={key: _fit_length(value, string_schema)},
                        exclude=values,
                    ),
                )
                for value in values
            ]
    return [PlannedToolCall(spec.name, _arguments(spec.parameters, question, vocabulary))]


def _primary_string_property(parameters: Mapping[str, Any] | None) -> tuple[str, Mapping[str, Any]] | None:
    """The first required (else first) property that takes a free string, with its string schema."""
    if not parameters:
        return None
    builder = _Builder(parameters, _Pool("", ()))
    root = builder.resolve(parameters)
    properties = root.get("properties")
    if not isinstance(properties, Mapping):
        return None
    required = [key for key in root.get("required", ()) if key in properties]
    order = required + [key for key in properties if key not in required]
    for key in order:
        string_schema = _free_string(builder, builder.resolve(properties[key]))
        if string_schema is not None:
            return str(key), string_schema
    return None


def _free_string(builder: _Builder, schema: Mapping[str, Any], level: int = 0) -> Mapping[str, Any] | None:
    """The schema itself (or its one non-null `anyOf`/`oneOf` branch) when it takes any string."""
    if "enum" in schema or "const" in schema or "format" in schema or "pattern" in schema:
        return None
    branches = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(branches, list):
        if level > MAX_SCHEMA_NESTING:
            raise UnsupportedSchema(
                f"the schema nests anyOf/oneOf deeper than {MAX_SCHEMA_NESTING} levels, or refers to "
                'itself without end (as {"anyOf": [{"$ref": "#"}]} does)'
            )
        real = [builder.resolve(b) for b in branches if isinstance(b, Mapping) and b.get("type") != "null"]
        return _free_string(builder, real[0], level + 1) if len(real) == 1 else None
    return schema if [t for t in _types(schema) if t != "null"] == ["string"] else None


def _arguments(
    parameters: Mapping[str, Any] | None,
    question: str,
    vocabulary: Iterable[str],
    *,
    fixed: Mapping[str, Any] | None = None,
    exclude: Sequence[str] = (),
) -> dict[str, Any]:
    if not parameters:
        return {}
    pool = _Pool(question, [*vocabulary, *_schema_vocabulary(parameters)], exclude=exclude)
    builder = _Builder(parameters, pool)
    root = builder.resolve(parameters)
    if not isinstance(root.get("properties"), Mapping) and not root.get("required"):
        return {}
    value = builder.object_value(root, 0, optional=False, fixed=fixed or {})
    return value


# -- values from the question -----------------------------------------------------------------


@dataclass
class _Item:
    kind: str  # "number", "string", "date"
    value: Any
    start: int
    preferred: bool = True
    used: bool = False


def _vocabulary_words(texts: Iterable[str]) -> set[str]:
    words: set[str] = set()
    for text in texts:
        for word in re.findall(r"[^\W\d_]+", _CAMEL.sub(" ", text)):
            if len(word) >= 3:
                words.add(word.lower())
    return words


def _schema_vocabulary(schema: Any, depth: int = 0) -> list[str]:
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
                    found.extend(_schema_vocabulary(sub, depth + 1))
            elif key not in ("enum", "const", "default", "examples"):
                found.extend(_schema_vocabulary(value, depth + 1))
    elif isinstance(schema, list):
        for sub in schema:
            found.extend(_schema_vocabulary(sub, depth + 1))
    return found


class _Pool:
    """The values a question offers, each used at most once."""

    def __init__(self, question: str, vocabulary: Iterable[str], *, exclude: Sequence[str] = ()) -> None:
        self.question = question
        self.vocabulary = _vocabulary_words(vocabulary)
        self.items: list[_Item] = []
        #: Counts every value taken from the question (pool items, enum mentions, hints).
        self.derived = 0
        #: Question positions already used for an enum member, a boolean or (-1) the whole question.
        self.claimed: set[int] = set()
        self._runs: list[list[_Item]] = []
        self._extract(question, {value.lower() for value in exclude})

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
            is_candidate = (
                piece[0].isupper()
                and not sentence_start
                and lowered not in _STOPWORDS
                and lowered not in exclude
                and not any(_words_match(lowered, word) for word in self.vocabulary)
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
        parts = [p.lower() for p in re.findall(r"[^\W\d_]+", _CAMEL.sub(" ", name)) if len(p) >= 3]
        if isinstance(title, str):
            parts += [p for p in _significant_words(title) if p not in parts]
        parts = [p for p in parts if p not in _STOPWORDS]
        for match in re.finditer(r"[^\W\d_]+", self.question):
            word = match.group(0).lower()
            if any(word == part or (len(part) >= 4 and word.startswith(part)) for part in parts):
                return match.start()
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
        marking it used; `_MISSING` when there is none."""
        candidates = [
            item
            for item in self.items
            if not item.used
            and item.kind in kinds
            and (item.preferred or not optional)
            and accept(item.value)
        ]
        if not candidates:
            return _MISSING
        if near is not None:
            close = [item for item in candidates if abs(item.start - near) <= HINT_DISTANCE]
            if close:
                chosen = min(close, key=lambda item: (abs(item.start - near), item.start))
                return self._use(chosen)
        preferred = [item for item in candidates if item.preferred]
        return self._use((preferred or candidates)[0])

    def _use(self, item: _Item) -> Any:
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
                return [self._use(item) for item in run]
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


_MISSING: Any = _Missing()


# -- building values --------------------------------------------------------------------------


def _types(schema: Mapping[str, Any]) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        types = [declared]
    elif isinstance(declared, list):
        types = [t for t in declared if isinstance(t, str)]
    elif "properties" in schema or "required" in schema or "additionalProperties" in schema:
        types = ["object"]
    elif "items" in schema or "prefixItems" in schema:
        types = ["array"]
    elif any(key in schema for key in ("minLength", "maxLength", "pattern", "format")):
        types = ["string"]
    elif any(
        key in schema for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
    ):
        types = ["number"]
    else:
        types = []
    # OpenAPI's `nullable: true` adds null; a non-null value satisfies both it and JSON Schema's
    # reading (which ignores the keyword), so it is not offered as a type here.
    return types


class UnsupportedSchema(ValueError):
    """A schema the emulator cannot build a value for within its bounds: one that refers to
    itself without end (`{"anyOf": [{"$ref": "#"}]}`), nests too deep, or asks for too many items
    or characters. The endpoints answer it with a 422 that carries this message, located at
    `loc` (set where the schema is known: the tools, or the response format)."""

    loc: tuple[str, ...] = ("body",)

    def at(self, *loc: str) -> UnsupportedSchema:
        self.loc = loc
        return self


class _Builder:
    def __init__(self, root: Mapping[str, Any], pool: _Pool) -> None:
        self.root = root
        self.pool = pool
        self.steps = 0
        self.nesting = 0

    # schema plumbing

    def resolve(self, schema: Any, seen: frozenset[str] = frozenset(), level: int = 0) -> Mapping[str, Any]:
        """`schema` with `$ref` followed and `allOf` merged into one mapping."""
        if not isinstance(schema, Mapping):
            return {}
        if level > MAX_SCHEMA_NESTING:
            raise UnsupportedSchema(
                f"the schema's $ref and allOf chains are longer than {MAX_SCHEMA_NESTING} links"
            )
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref not in seen:
            target = self._pointer(ref)
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**self.resolve(target, seen | {ref}, level + 1), **siblings}
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and all_of:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in all_of:
                part = self.resolve(part, seen, level + 1)
                for key, value in part.items():
                    if key == "properties" and isinstance(value, Mapping):
                        merged["properties"] = {**merged.get("properties", {}), **value}
                    elif key == "required" and isinstance(value, list):
                        merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
                    else:
                        merged.setdefault(key, value)
            schema = merged
        return dict(schema)

    def _pointer(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        node: Any = self.root
        for part in ref[1:].lstrip("/").split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return {}
        return node

    # values

    def value(self, schema: Any, name: str | None, depth: int, *, optional: bool) -> Any:
        self.steps += 1
        self.nesting += 1
        try:
            if self.nesting > MAX_SCHEMA_NESTING:
                raise UnsupportedSchema(
                    f"the schema nests deeper than {MAX_SCHEMA_NESTING} levels, or refers to itself "
                    'without end (as {"anyOf": [{"$ref": "#"}]} does): give every recursion a way out, '
                    'e.g. {"anyOf": [{"$ref": "#"}, {"type": "null"}]} under a property'
                )
            if self.steps > MAX_SCHEMA_STEPS:
                raise UnsupportedSchema(
                    f"building a value for the schema takes more than {MAX_SCHEMA_STEPS:,} steps: "
                    "it is too large, or its references multiply"
                )
            return self._value(schema, name, depth, optional=optional)
        finally:
            self.nesting -= 1

    def _value(self, schema: Any, name: str | None, depth: int, *, optional: bool) -> Any:
        schema = self.resolve(schema)
        near = self.pool.keyword_position(name, schema.get("title"))
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.enum_value(schema)
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                return self.union(
                    schema, [{**base, **self.resolve(b)} for b in branches], name, depth, optional
                )
        types = _types(schema)
        if len(types) > 1:
            base = {k: v for k, v in schema.items() if k != "nullable"}
            return self.union(schema, [{**base, "type": t} for t in types], name, depth, optional)
        kind = types[0] if types else None
        if depth > MAX_DEPTH:
            return self.smallest(schema, kind)
        if kind == "object":
            if optional and near is None:
                # An optional object appears only when the question names it: otherwise its
                # required fields would be filled with whatever the question has left over.
                return {}
            return self.object_value(schema, depth, optional=optional)
        if kind == "array":
            return self.array_value(schema, name, depth, optional=optional)
        if kind == "string":
            return self.string_value(schema, name, near, optional=optional)
        if kind in ("integer", "number"):
            return self.number_value(schema, kind == "integer", near, optional=optional)
        if kind == "boolean":
            if near is not None and self.pool.claim(near):
                return True
            default = schema.get("default")
            return default if isinstance(default, bool) else False
        if kind == "null":
            return None
        # No type at all: anything is valid.
        if "default" in schema:
            return schema["default"]
        found = self.pool.take(("string",), lambda v: True, near=near, optional=True)
        return None if found is _MISSING else found

    def union(
        self,
        schema: Mapping[str, Any],
        branches: list[Mapping[str, Any]],
        name: str | None,
        depth: int,
        optional: bool,
    ) -> Any:
        nullable = any(_types(b) == ["null"] for b in branches)
        real = [b for b in branches if _types(b) != ["null"]]
        for branch in real:  # the first branch the question has a value for
            mark = self.pool.mark()
            candidate = self.value(
                {k: v for k, v in branch.items() if k != "default"}, name, depth, optional=True
            )
            if self.pool.derived > mark[0]:
                return candidate
            self.pool.restore(mark)
        if "default" in schema:
            return schema["default"]
        if nullable or not real:
            return None
        return self.value(real[0], name, depth, optional=optional)

    def enum_value(self, schema: Mapping[str, Any]) -> Any:
        members = schema["enum"]
        lowered = self.pool.question.lower()
        mentioned: list[tuple[int, int, Any]] = []
        for index, member in enumerate(members):
            if isinstance(member, str) and member:
                for match in re.finditer(r"(?<![\w])" + re.escape(member.lower()) + r"(?![\w])", lowered):
                    if match.start() not in self.pool.claimed:
                        mentioned.append((match.start(), index, member))
                        break
            elif isinstance(member, (int, float)) and not isinstance(member, bool):
                for item in self.pool.items:
                    if item.kind == "number" and not item.used and item.value == member:
                        mentioned.append((item.start, index, member))
                        break
        if mentioned:
            position, _, member = min(mentioned, key=lambda m: (m[0], m[1]))
            number = next((i for i in self.pool.items if i.kind == "number" and i.start == position), None)
            if number is not None and not isinstance(member, str):
                self.pool._use(number)
            else:
                self.pool.claim(position)
                for item in self.pool.items:  # the mention is not also a name
                    if item.kind == "string" and item.start == position:
                        item.used = True
            return member
        if "default" in schema and schema["default"] in members:
            return schema["default"]
        return members[0]

    def object_value(
        self,
        schema: Mapping[str, Any],
        depth: int,
        *,
        optional: bool,
        fixed: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = [str(key) for key in schema.get("required", ()) if isinstance(key, str)]
        fixed = fixed or {}
        values: dict[str, Any] = {}
        # Properties the question names claim their values first, then the others in order.
        order = sorted(
            required,
            key=lambda key: (
                self.pool.keyword_position(key, self.resolve(properties.get(key)).get("title")) is None
            ),
        )
        for key in order:
            if key in fixed:
                values[key] = fixed[key]
            elif key in properties:
                values[key] = self.value(properties[key], key, depth + 1, optional=False)
            else:
                values[key] = self.any_value()
        for key, sub in properties.items():
            if key in values:
                continue
            if key in fixed:
                values[key] = fixed[key]
                continue
            mark = self.pool.mark()
            candidate = self.value(sub, key, depth + 1, optional=True)
            if self.pool.derived > mark[0]:
                values[key] = candidate
            else:
                self.pool.restore(mark)
        min_properties = _int_keyword(schema, "minProperties")
        if min_properties is not None:
            for key, sub in properties.items():
                if len(values) >= min_properties:
                    break
                if key not in values:
                    values[key] = self.value(sub, key, depth + 1, optional=False)
        order_keys = [*properties, *required]
        return {key: values[key] for key in dict.fromkeys(order_keys) if key in values}

    def any_value(self) -> Any:
        found = self.pool.take(("string",), lambda v: True)
        return PLACEHOLDER if found is _MISSING else found

    def array_value(
        self, schema: Mapping[str, Any], name: str | None, depth: int, *, optional: bool
    ) -> list[Any]:
        min_items = _int_keyword(schema, "minItems") or 0
        max_items = _int_keyword(schema, "maxItems")
        unique = schema.get("uniqueItems") is True
        prefix = schema.get("prefixItems")
        items_schema = schema.get("items")
        values: list[Any] = []
        if isinstance(prefix, list):
            values = [self.value(sub, name, depth + 1, optional=False) for sub in prefix]
        elif isinstance(items_schema, list):  # draft 4-7 tuple form
            values = [self.value(sub, name, depth + 1, optional=False) for sub in items_schema]
        elif isinstance(items_schema, Mapping):
            item = self.resolve(items_schema)
            kinds = [t for t in _types(item) if t != "null"]
            if "enum" not in item and "const" not in item and kinds in (["string"], ["integer"], ["number"]):
                check = (
                    self._string_check(item)
                    if kinds == ["string"]
                    else self._number_check(item, kinds == ["integer"])
                )
                run = self.pool.take_run("string" if kinds == ["string"] else "number", check)
                if run:
                    values = [int(v) if kinds == ["integer"] else v for v in run]
                else:
                    single = self.pool.take(
                        ("string",) if kinds == ["string"] else ("number",), check, optional=True
                    )
                    if single is not _MISSING:
                        values = [int(single) if kinds == ["integer"] else single]
        if not values and "default" in schema and isinstance(schema["default"], list):
            return list(schema["default"])
        extra = items_schema if isinstance(items_schema, Mapping) else {}
        while len(values) < min_items:
            values.append(self.value(extra, name, depth + 1, optional=False) if extra else None)
        if max_items is not None:
            values = values[:max_items]
        if unique:
            values = self._distinct(values, self.resolve(extra))
        return values

    def _distinct(self, values: list[Any], item: Mapping[str, Any]) -> list[Any]:
        seen: list[Any] = []
        for value in values:
            candidate = value
            bump = 1
            while candidate in seen and bump < 1000:
                if isinstance(value, str):
                    candidate = f"{value} {bump + 1}"
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    step = (
                        item.get("multipleOf", 1) if isinstance(item.get("multipleOf"), (int, float)) else 1
                    )
                    candidate = value + step * bump
                else:
                    break
                bump += 1
            seen.append(candidate)
        return seen

    # scalars

    def _string_check(self, schema: Mapping[str, Any]) -> Any:
        min_length = _int_keyword(schema, "minLength") or 0
        max_length = _int_keyword(schema, "maxLength")
        pattern = schema.get("pattern") if isinstance(schema.get("pattern"), str) else None

        def check(value: Any) -> bool:
            if not isinstance(value, str) or len(value) < min_length:
                return False
            if max_length is not None and len(value) > max_length:
                return False
            return pattern is None or _pattern_matches(pattern, value)

        return check

    def string_value(
        self, schema: Mapping[str, Any], name: str | None, near: int | None, *, optional: bool
    ) -> str:
        check = self._string_check(schema)
        fmt = schema.get("format") if isinstance(schema.get("format"), str) else None
        if fmt in ("date", "date-time"):
            found = self.pool.take(("date",), lambda v: True, near=near, optional=optional)
            if found is not _MISSING:
                value = found if fmt == "date" else f"{found}T00:00:00Z"
                if check(value):
                    return str(value)
        elif fmt is None:
            if name is not None and any(
                part.lower() in _QUERY_NAMES for part in re.split(r"[_\W]+", _CAMEL.sub("_", name))
            ):
                fitted = _fit_length(self.pool.question.strip(), schema)
                if self.pool.question.strip() and check(fitted) and self.pool.claim(-1):
                    return fitted
            found = self.pool.take(("string",), check, near=near, optional=optional)
            if found is not _MISSING:
                return str(found)
            if near is not None or "pattern" in schema:  # a number as text, e.g. a postcode
                number = self.pool.take(("number",), lambda v: check(str(v)), near=near, optional=True)
                if number is not _MISSING:
                    return str(number)
        default = schema.get("default")
        if isinstance(default, str) and check(default):
            return default
        base = _FORMAT_PLACEHOLDERS.get(fmt or "", PLACEHOLDER)
        candidates = [_fit_length(base, schema)]
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            generated = _string_for_pattern(pattern)
            candidates += [generated] if generated is not None else []
            candidates += [_fit_length(c, schema) for c in _PATTERN_TRIES]
        for candidate in candidates:
            if check(candidate):
                return candidate
        return candidates[0]

    def _number_check(self, schema: Mapping[str, Any], integer: bool) -> Any:
        return _number_check(schema, integer)

    def number_value(
        self, schema: Mapping[str, Any], integer: bool, near: int | None, *, optional: bool
    ) -> int | float:
        check = self._number_check(schema, integer)
        found = self.pool.take(("number",), check, near=near, optional=optional)
        if found is not _MISSING:
            return int(found) if integer else found
        default: Any = schema.get("default")
        if check(default):
            return int(default) if integer else float(default) if isinstance(default, float) else int(default)
        return _number_fallback(schema, integer, check)

    def smallest(self, schema: Mapping[str, Any], kind: str | None) -> Any:
        if "default" in schema:
            return schema["default"]
        if kind == "object":
            return {}
        if kind == "array":
            return []
        if kind == "string":
            return self.string_value(schema, None, None, optional=True)
        if kind in ("integer", "number"):
            return _number_fallback(schema, kind == "integer", self._number_check(schema, kind == "integer"))
        if kind == "boolean":
            return False
        return None


def _string_for_pattern(pattern: str) -> str | None:
    """A short string matching a regular expression (literals, classes, repeats, groups,
    alternatives, anchors), or None where the pattern is beyond this simple generator."""
    try:
        parser: Any = importlib.import_module("re._parser")
    except ImportError:  # Python 3.10
        parser = importlib.import_module("sre_parse")
    try:
        text = _generate(parser.parse(pattern))
    except Exception:
        return None
    return text if text is not None and _pattern_matches(pattern, text) else None


_CATEGORY_CHARS = {
    "CATEGORY_DIGIT": "0",
    "CATEGORY_NOT_DIGIT": "a",
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_SPACE": "a",
    "CATEGORY_WORD": "a",
    "CATEGORY_NOT_WORD": "-",
}


def _generate(tree: Any) -> str | None:
    out: list[str] = []
    for op, argument in tree:
        name = getattr(op, "name", str(op))
        piece: str | None
        if name == "LITERAL":
            piece = chr(argument)
        elif name == "NOT_LITERAL":
            piece = "a" if chr(argument) != "a" else "b"
        elif name == "ANY":
            piece = "a"
        elif name == "IN":
            piece = _class_char(argument)
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _high, sub = argument
            repeated = _generate(sub)
            piece = None if repeated is None else repeated * low
        elif name == "SUBPATTERN":
            piece = _generate(argument[-1])
        elif name == "BRANCH":
            piece = _generate(argument[1][0])
        elif name == "AT":
            piece = ""
        else:
            piece = None
        if piece is None:
            return None
        out.append(piece)
    return "".join(out)


def _class_char(items: Any) -> str | None:
    negate = False
    allowed: list[str] = []
    excluded: set[str] = set()
    for op, argument in items:
        name = getattr(op, "name", str(op))
        chars: list[str]
        if name == "NEGATE":
            negate = True
            continue
        if name == "LITERAL":
            chars = [chr(argument)]
        elif name == "RANGE":
            low, high = argument
            chars = [chr(c) for c in range(low, min(high, low + 256) + 1)]
        elif name == "CATEGORY" and getattr(argument, "name", str(argument)) in _CATEGORY_CHARS:
            chars = [_CATEGORY_CHARS[getattr(argument, "name", str(argument))]]
        else:
            return None
        if negate:
            excluded.update(chars)
        else:
            allowed.append(chars[0])
    if negate:
        return next((c for c in "aA0-_ x" if c not in excluded), None)
    return allowed[0] if allowed else None


_PATTERN_TRIES = ("A", "a", "0", "x", "AB", "ab", "00", "abc", "ABC", "000", "a1", "A1", "2025-01-01")


def _pattern_matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True


_SIZE_LIMITS = {"minItems": MAX_MIN_ITEMS, "minLength": MAX_MIN_LENGTH}


def _int_keyword(schema: Mapping[str, Any], key: str) -> int | None:
    value = schema.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    limit = _SIZE_LIMITS.get(key)
    if limit is not None and value > limit:
        raise UnsupportedSchema(
            f'the schema asks for "{key}": {value}; the emulator builds at most {limit:,}'
        )
    return value


def _fit_length(value: str, schema: Mapping[str, Any]) -> str:
    min_length = _int_keyword(schema, "minLength") or 0
    max_length = _int_keyword(schema, "maxLength")
    if len(value) < min_length:
        value = value + "x" * (min_length - len(value))
    if max_length is not None:
        value = value[:max_length]
    return value


def _bounds(schema: Mapping[str, Any]) -> tuple[float | None, bool, float | None, bool]:
    def number(key: str) -> float | None:
        value = schema.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    low, high = number("minimum"), number("maximum")
    low_exclusive = high_exclusive = False
    if schema.get("exclusiveMinimum") is True:  # draft 4
        low_exclusive = True
    elif number("exclusiveMinimum") is not None:
        exclusive_low = number("exclusiveMinimum")
        if low is None or (exclusive_low is not None and exclusive_low >= low):
            low, low_exclusive = exclusive_low, True
    if schema.get("exclusiveMaximum") is True:
        high_exclusive = True
    elif number("exclusiveMaximum") is not None:
        exclusive_high = number("exclusiveMaximum")
        if high is None or (exclusive_high is not None and exclusive_high <= high):
            high, high_exclusive = exclusive_high, True
    return low, low_exclusive, high, high_exclusive


def _number_check(schema: Mapping[str, Any], integer: bool) -> Callable[[Any], bool]:
    """Whether a value is a number valid against the schema's type and bounds (`multipleOf`
    checked exactly as `jsonschema` checks it)."""
    low, low_exclusive, high, high_exclusive = _bounds(schema)
    multiple = schema.get("multipleOf")

    def check(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if integer and not float(value).is_integer():
            return False
        if low is not None and (value <= low if low_exclusive else value < low):
            return False
        if high is not None and (value >= high if high_exclusive else value > high):
            return False
        if isinstance(multiple, (int, float)) and not isinstance(multiple, bool) and multiple > 0:
            if isinstance(multiple, float) or isinstance(value, float):
                quotient = value / multiple
                try:
                    return int(quotient) == quotient
                except OverflowError:
                    return False
            return value % multiple == 0
        return True

    return check


def _number_fallback(schema: Mapping[str, Any], integer: bool, check: Callable[[Any], bool]) -> int | float:
    """0, else a value at or just inside the bounds, on the `multipleOf` grid."""
    low, _, high, _ = _bounds(schema)
    multiple = schema.get("multipleOf")
    step = (
        multiple
        if isinstance(multiple, (int, float)) and not isinstance(multiple, bool) and multiple > 0
        else 1
    )
    targets: list[float] = [0.0]
    if low is not None:
        targets.append(low)
    if high is not None:
        targets.append(high)
    if low is not None and high is not None:
        targets.append((low + high) / 2)
    for target in targets:
        base = math.ceil(target / step)
        for k in (base, base + 1, base - 1, base + 2, base - 2):
            raw = k * step
            candidates: list[int | float] = [int(raw)] if float(raw).is_integer() else []
            if not integer:
                candidates += [round(raw, 12), raw]
            for candidate in candidates:
                if check(candidate):
                    return candidate
        if not integer and check(target):
            return int(target) if float(target).is_integer() else target
    return 0
