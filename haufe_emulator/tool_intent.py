"""The emulator's stand-in for a model's tool use: which tools a question asks for, the calls to
make (their arguments from `schema_values`), and whether to call again after tool results.

- `tool_spec(tool)` / `ToolSpec`: a tool definition read from the OpenAI shape
  `{"type": "function", "function": {"name", "description", "parameters"}}` or the flat shape
  `{"name", "description", "parameters" | "input_schema"}`.
- `tools_asked_for(question, tools)`, `best_tool(question, tools)`: which tools a question asks for.
- `tool_calls_for(question, tools, tool_choice)`: the calls to make (`PlannedToolCall`: name and
  arguments dict), `[]` for a text answer; `calls_after_tool_results(...)` the same after results.
- `arguments_for(parameters, question)`: the arguments object of one call of a function whose
  `parameters` is that schema (`{}` for no, empty or absent parameters).
- `split_fragments(text, size)`: `text` cut into pieces of at most `size` characters (streamed
  argument fragments).

A tool is asked for when its name (or the name with `_`/`-` as spaces, or camelCase split) appears
in the question, or, failing that, when enough significant words of its description do (one for
descriptions of up to three such words, two otherwise; words match when one is a prefix of the
other). Several named tools give one call each, in the order the question names them; one tool and
a list of values (a run, see `question_values`) gives one call per value, the value in the tool's
first string property.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .question_values import CAMEL_BOUNDARY, QuestionValues, schema_vocabulary, significant_words, words_match
from .schema_values import MAX_SCHEMA_NESTING, UnsupportedSchema, ValueBuilder, fit_length, schema_types

__all__ = [
    "PlannedToolCall",
    "ToolSpec",
    "arguments_for",
    "best_tool",
    "calls_after_tool_results",
    "split_fragments",
    "tool_calls_for",
    "tool_spec",
    "tools_asked_for",
]

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
    question: str,
    tools: Sequence[Mapping[str, Any] | ToolSpec],
    tool_choice: Any = None,
    *,
    evidence: str = "",
) -> list[PlannedToolCall]:
    """The tool calls answering `question`, or `[]` for a text answer.

    `tool_choice`: `None` or `"auto"` (call the tools the question asks for), `"none"` (never),
    `"required"` or `"any"` (the tools asked for, else the best-matching one), or a named
    function: `{"type": "function", "function": {"name": …}}`, `{"type": "tool", "name": …}` or
    `{"name": …}` (that one; `ValueError` if it is not among `tools`).

    `evidence`: the passages the answer cites. A forced call is structured output (the caller
    wants the answer in the tool's shape), so its arguments may come from them too; a call the
    question asks for takes its arguments from the question alone."""
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
    if mode not in ("required", "forced"):
        evidence = ""
    if len(chosen) == 1:
        return _calls_for_one_tool(question, chosen[0], evidence)
    return [
        PlannedToolCall(
            spec.name, _arguments(spec.parameters, question, _tool_vocabulary(spec), evidence=evidence)
        )
        for spec in chosen
    ]


def calls_after_tool_results(
    question: str,
    tools: Sequence[Mapping[str, Any] | ToolSpec],
    tool_choice: Any,
    called: Iterable[str],
    *,
    evidence: str = "",
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
    return tool_calls_for(question, specs, "required" if forced is None else tool_choice, evidence=evidence)


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
    spaced = CAMEL_BOUNDARY.sub(" ", name).replace("_", " ").replace("-", " ")
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


def _description_matches(question: str, description: str) -> int:
    asked = significant_words(question)
    return sum(1 for word in significant_words(description) if any(words_match(word, q) for q in asked))


def _description_threshold(description: str) -> int:
    count = len(significant_words(description))
    if count == 0:
        return 1_000_000  # a tool without a description is asked for by name only
    return 1 if count <= 3 else 2


def _tool_vocabulary(spec: ToolSpec) -> list[str]:
    return [*CAMEL_BOUNDARY.sub(" ", spec.name).replace("_", " ").replace("-", " ").split(), spec.description]


def _calls_for_one_tool(question: str, spec: ToolSpec, evidence: str = "") -> list[PlannedToolCall]:
    vocabulary = _tool_vocabulary(spec)
    primary = _primary_string_property(spec.parameters)
    if primary is not None:
        key, string_schema = primary
        pool = QuestionValues(question, [*vocabulary, *schema_vocabulary(spec.parameters or {})])
        values = pool.string_list_run()
        if len(values) >= 2:
            return [
                PlannedToolCall(
                    spec.name,
                    _arguments(
                        spec.parameters,
                        question,
                        vocabulary,
                        fixed={key: fit_length(value, string_schema)},
                        exclude=values,
                    ),
                )
                for value in values
            ]
    return [PlannedToolCall(spec.name, _arguments(spec.parameters, question, vocabulary, evidence=evidence))]


def _primary_string_property(parameters: Mapping[str, Any] | None) -> tuple[str, Mapping[str, Any]] | None:
    """The first required (else first) property that takes a free string, with its string schema."""
    if not parameters:
        return None
    builder = ValueBuilder(parameters, QuestionValues("", ()))
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


def _free_string(
    builder: ValueBuilder, schema: Mapping[str, Any], level: int = 0
) -> Mapping[str, Any] | None:
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
    return schema if [t for t in schema_types(schema) if t != "null"] == ["string"] else None


def _arguments(
    parameters: Mapping[str, Any] | None,
    question: str,
    vocabulary: Iterable[str],
    *,
    fixed: Mapping[str, Any] | None = None,
    exclude: Sequence[str] = (),
    evidence: str = "",
) -> dict[str, Any]:
    if not parameters:
        return {}
    vocabulary = [*vocabulary, *schema_vocabulary(parameters)]
    pool = QuestionValues(question, vocabulary, exclude=exclude, evidence=evidence)
    builder = ValueBuilder(parameters, pool)
    root = builder.resolve(parameters)
    if not isinstance(root.get("properties"), Mapping) and not root.get("required"):
        return {}
    value = builder.object_value(root, 0, optional=False, fixed=fixed or {})
    return value
