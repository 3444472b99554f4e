"""A short string matching a regular expression, for a JSON schema's `pattern`.

The emulator's own parser for the subset schemas use: literals and escapes, `.`, character classes
(ranges, negation, `\\d \\w \\s` and their negations), repeats (`* + ? {n} {n,} {n,m}`, lazy or
possessive), groups (capturing, named, non-capturing, with inline flags, comments), alternatives (the first
one is built) and anchors (`^ $ \\A \\Z \\b \\B`, which add nothing). Anything else (lookarounds,
back references, atomic groups, conditionals) is beyond it: `None`, and the caller tries fixed
candidates instead. Every result is checked against the pattern with `re`, so a shortcut here can
cost a value, never produce an invalid one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["pattern_matches", "string_for_pattern"]

#: One character for each class shorthand, as the string to build and as what a negated class
#: excludes.
_SHORTHAND_CHARS = {"d": "0", "D": "a", "s": " ", "S": "a", "w": "a", "W": "-"}
_CONTROL_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a"}
_ANCHOR_ESCAPES = frozenset("AZbB")
_OCTAL_DIGITS = "01234567"
_HEX_ESCAPE_DIGITS = {"x": 2, "u": 4, "U": 8}
#: Candidates for a negated class, first one not excluded wins.
_NEGATED_CLASS_CANDIDATES = "aA0-_ x"
#: How many characters of a range a negated class excludes (the candidates are all ASCII).
_RANGE_SPAN = 256


class _Unsupported(Exception):
    """The pattern uses something beyond this generator's subset."""


def string_for_pattern(pattern: str) -> str | None:
    """A short string the pattern matches (`re.search`), or None where the pattern is beyond
    this generator."""
    try:
        compiled = re.compile(pattern)  # a pattern `re` refuses has no string to build
        text = _Parser(pattern).pattern()
    except (re.error, _Unsupported):
        return None
    return text if text is not None and compiled.search(text) is not None else None


def pattern_matches(pattern: str, value: str) -> bool:
    """Whether `value` matches `pattern` (True for a pattern `re` cannot compile: nothing to check)."""
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True


@dataclass
class _ClassItems:
    """A character class as read: the first character of each item, and what a negation excludes."""

    firsts: list[str]
    excluded: set[str]
    literals_only: bool


class _Parser:
    """Builds the shortest string of the pattern while reading it: each repeat its minimum count,
    each alternation its first branch."""

    def __init__(self, pattern: str) -> None:
        self.pattern_text = pattern
        self.position = 0

    def pattern(self) -> str | None:
        text = self._alternation()
        if self.position != len(self.pattern_text):  # an unbalanced ")"
            raise _Unsupported
        return text

    # structure: None is a part that is read but not built (a lookaround, a back reference)

    def _alternation(self) -> str | None:
        first = self._sequence()
        while self._peek() == "|":
            self.position += 1
            self._sequence()  # later branches are read (to find the group's end), not built
        return first

    def _sequence(self) -> str | None:
        pieces: list[str | None] = []
        while (char := self._peek()) is not None and char not in "|)":
            if self._skip_comment():
                continue
            atom = self._atom()
            while self._skip_comment():  # a repeat after a comment repeats the atom before it
                pass
            pieces.append(self._repeat(atom))
        return None if None in pieces else "".join(piece or "" for piece in pieces)

    def _skip_comment(self) -> bool:
        if not self.pattern_text.startswith("(?#", self.position):
            return False
        self._skip_past(")")
        return True

    def _repeat(self, atom: str | None) -> str | None:
        char = self._peek()
        if char in ("*", "?"):
            self.position += 1
            count = 0
        elif char == "+":
            self.position += 1
            count = 1
        elif char == "{" and (
            bounds := re.match(r"\{(\d*)(?:,(\d*))?\}", self.pattern_text[self.position :])
        ):
            if bounds.group(2) is None and not bounds.group(1):  # "{}" is a literal
                return atom
            self.position += bounds.end()
            count = int(bounds.group(1) or 0)
        else:
            return atom
        if self._peek() in ("?", "+"):  # lazy or possessive: the same minimum
            self.position += 1
        return None if atom is None else atom * count

    def _atom(self) -> str | None:
        char = self._next()
        if char == "(":
            return self._group()
        if char == "[":
            return self._class()
        if char == ".":
            return "a"
        if char in "^$":
            return ""
        if char == "\\":
            return self._escape()
        if char in "*+?":  # a repeat of nothing
            raise _Unsupported
        return char

    def _group(self) -> str | None:
        built = True
        if self._peek() == "?":
            self.position += 1
            kind = self._next()
            if kind == "P" and self._peek() == "<":
                self.position += 1
                self._skip_past(">")
            elif kind == "P" and self._peek() == "=":  # a back reference by name
                self._skip_past(")")
                return None
            elif kind == "<" and self._peek() not in ("=", "!"):
                self._skip_past(">")
            elif kind in ("=", "!", ">") or (kind == "<" and self._next() in ("=", "!")):
                built = False  # lookarounds and atomic groups
            elif kind.isalpha() or kind == "-":  # inline flags: (?i) or (?i:...)
                flags = re.match(r"[a-zA-Z-]*", self.pattern_text[self.position :])
                self.position += flags.end() if flags else 0
                closing = self._next()
                if closing == ")":
                    return ""
                if closing != ":":
                    raise _Unsupported
            elif kind != ":":  # conditionals
                raise _Unsupported
        text = self._alternation()
        if self._next() != ")":
            raise _Unsupported
        return text if built else None

    def _skip_past(self, closing: str) -> None:
        end = self.pattern_text.find(closing, self.position)
        if end < 0:
            raise _Unsupported
        self.position = end + 1

    # characters

    def _escape(self) -> str | None:
        char = self._next()
        if char in _SHORTHAND_CHARS:
            return _SHORTHAND_CHARS[char]
        if char in _ANCHOR_ESCAPES:
            return ""
        if char in "123456789":
            octal = self._octal_escape(char, in_class=False) if char in _OCTAL_DIGITS else None
            if octal is not None:
                return octal
            if (following := self._peek()) is not None and following in "0123456789":  # up to 99
                self.position += 1
            return None
        return self._escaped_char(char)

    def _escaped_char(self, char: str, *, in_class: bool = False) -> str:
        if char in _CONTROL_ESCAPES:
            return _CONTROL_ESCAPES[char]
        if char in _HEX_ESCAPE_DIGITS:
            digits = self.pattern_text[self.position : self.position + _HEX_ESCAPE_DIGITS[char]]
            if len(digits) != _HEX_ESCAPE_DIGITS[char] or not all(
                c in "0123456789abcdefABCDEF" for c in digits
            ):
                raise _Unsupported
            self.position += len(digits)
            return chr(int(digits, 16))
        if char in _OCTAL_DIGITS:
            octal = self._octal_escape(char, in_class=in_class)
            if octal is not None:
                return octal
        if char.isascii() and char.isalnum():  # back references, unknown escapes
            raise _Unsupported
        return char

    def _octal_escape(self, first: str, *, in_class: bool) -> str | None:
        """`\\0`, `\\0o`, `\\0oo` or three octal digits (in a class any one to three); None
        for a back reference (`\\1`)."""
        following = self.pattern_text[self.position : self.position + 2]
        count = len(following) - len(following.lstrip(_OCTAL_DIGITS))
        if first == "0" or in_class:
            digits = first + following[:count]
        elif count == 2:
            digits = first + following
        else:
            return None
        self.position += len(digits) - 1
        return chr(int(digits, 8))

    def _class(self) -> str:
        negated = self._peek() == "^"
        if negated:
            self.position += 1
        items = self._class_items()
        if not negated:
            if not items.firsts:
                raise _Unsupported
            return items.firsts[0]
        if items.literals_only and len(items.firsts) == 1:  # [^x]: any one other character
            return "a" if items.firsts[0] != "a" else "b"
        choice = next((c for c in _NEGATED_CLASS_CANDIDATES if c not in items.excluded), None)
        if choice is None:
            raise _Unsupported
        return choice

    def _class_items(self) -> _ClassItems:
        items = _ClassItems(firsts=[], excluded=set(), literals_only=True)
        first = True
        while True:
            char = self._next()
            if char == "]" and not first:
                return items
            first = False
            if char == "\\":
                escaped = self._next()
                if escaped in _SHORTHAND_CHARS:
                    items.firsts.append(_SHORTHAND_CHARS[escaped])
                    items.excluded.add(_SHORTHAND_CHARS[escaped])
                    items.literals_only = False
                    continue
                char = "\b" if escaped == "b" else self._escaped_char(escaped, in_class=True)
            if self._peek() == "-" and self._peek(1) not in (None, "]"):
                self.position += 1
                high = self._next()
                if high == "\\":
                    high = self._escaped_char(self._next(), in_class=True)
                if ord(high) < ord(char):
                    raise _Unsupported
                items.firsts.append(char)
                items.excluded.update(
                    chr(c) for c in range(ord(char), min(ord(high), ord(char) + _RANGE_SPAN) + 1)
                )
                items.literals_only = False
                continue
            items.firsts.append(char)
            items.excluded.add(char)

    # reading

    def _peek(self, ahead: int = 0) -> str | None:
        index = self.position + ahead
        return self.pattern_text[index] if index < len(self.pattern_text) else None

    def _next(self) -> str:
        char = self._peek()
        if char is None:
            raise _Unsupported
        self.position += 1
        return char
