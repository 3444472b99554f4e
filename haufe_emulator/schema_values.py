"""Values valid against a JSON schema, filled from a question (`question_values`) where a value
fits, with the schema's defaults and valid placeholders otherwise: the emulator's structured output
and tool arguments.

`value_for_schema(schema, question)` reads JSON Schema as pydantic and OpenAI-style tool
definitions write it: `type` (also a list of types), `properties`, `required`, `enum`, `const`,
`default`, `items`, `prefixItems`, `minItems`/`maxItems`, `uniqueItems`, `minimum`/`maximum` (and
their exclusive forms), `multipleOf`, `minLength`/`maxLength`, `pattern` (best effort, see
`regex_strings`), `format` (date, date-time, time, email, uri, uuid), `nullable`,
`anyOf`/`oneOf`/`allOf`, `$defs`/`definitions` with `$ref`, recursive models.

Which value goes where:

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
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from .question_values import CAMEL_BOUNDARY, MISSING, QUERY_NAMES, QuestionValues, schema_vocabulary
from .regex_strings import pattern_matches, string_for_pattern

__all__ = [
    "MAX_SCHEMA_NESTING",
    "UnsupportedSchema",
    "ValueBuilder",
    "fit_length",
    "schema_types",
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


def value_for_schema(schema: Mapping[str, Any], question: str, *, evidence: str = "") -> Any:
    """A value valid against the JSON schema `schema`, filled from `question` where the module's
    rules find a fitting value, with schema-valid defaults and placeholders otherwise.
    `evidence` (the passages the answer cites) fills what the question does not name
    (`question_values`).

    `$ref`s are resolved against `schema` itself (`#/$defs/…`, `#/definitions/…`, `#`)."""
    pool = QuestionValues(question, schema_vocabulary(schema), evidence=evidence)
    return ValueBuilder(schema, pool).value(schema, None, 0, optional=False)


def schema_types(schema: Mapping[str, Any]) -> list[str]:
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


class ValueBuilder:
    def __init__(self, root: Mapping[str, Any], pool: QuestionValues) -> None:
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
        types = schema_types(schema)
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
            # The evidence mentioning a word asserts nothing about it: only the question counts.
            if near is not None and self.pool.in_question(near) and self.pool.claim(near):
                return True
            default = schema.get("default")
            return default if isinstance(default, bool) else False
        if kind == "null":
            return None
        # No type at all: anything is valid.
        if "default" in schema:
            return schema["default"]
        found = self.pool.take(("string",), lambda v: True, near=near, optional=True)
        return None if found is MISSING else found

    def union(
        self,
        schema: Mapping[str, Any],
        branches: list[Mapping[str, Any]],
        name: str | None,
        depth: int,
        optional: bool,
    ) -> Any:
        nullable = any(schema_types(b) == ["null"] for b in branches)
        real = [b for b in branches if schema_types(b) != ["null"]]
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
                self.pool.use(number)
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
        return PLACEHOLDER if found is MISSING else found

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
            kinds = [t for t in schema_types(item) if t != "null"]
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
                    if single is not MISSING:
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
            return pattern is None or pattern_matches(pattern, value)

        return check

    def string_value(
        self, schema: Mapping[str, Any], name: str | None, near: int | None, *, optional: bool
    ) -> str:
        check = self._string_check(schema)
        fmt = schema.get("format") if isinstance(schema.get("format"), str) else None
        if fmt in ("date", "date-time"):
            found = self.pool.take(("date",), lambda v: True, near=near, optional=optional)
            if found is not MISSING:
                value = found if fmt == "date" else f"{found}T00:00:00Z"
                if check(value):
                    return str(value)
        elif fmt is None:
            if name is not None and any(
                part.lower() in QUERY_NAMES for part in re.split(r"[_\W]+", CAMEL_BOUNDARY.sub("_", name))
            ):
                fitted = fit_length(self.pool.question.strip(), schema)
                if self.pool.question.strip() and check(fitted) and self.pool.claim(-1):
                    return fitted
            found = self.pool.take(("string",), check, near=near, optional=optional)
            if found is not MISSING:
                return str(found)
            if near is not None or "pattern" in schema:  # a number as text, e.g. a postcode
                number = self.pool.take(("number",), lambda v: check(str(v)), near=near, optional=True)
                if number is not MISSING:
                    return str(number)
        default = schema.get("default")
        if isinstance(default, str) and check(default):
            return default
        base = _FORMAT_PLACEHOLDERS.get(fmt or "", PLACEHOLDER)
        candidates = [fit_length(base, schema)]
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            generated = string_for_pattern(pattern)
            candidates += [generated] if generated is not None else []
            candidates += [fit_length(c, schema) for c in _PATTERN_TRIES]
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
        if found is not MISSING:
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


_PATTERN_TRIES = ("A", "a", "0", "x", "AB", "ab", "00", "abc", "ABC", "000", "a1", "A1", "2025-01-01")


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


def fit_length(value: str, schema: Mapping[str, Any]) -> str:
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
