"""Literal prefilter for the batch engine: which events could a rule match at all?

Most Sigma rules can only match an event whose text contains certain literals: ``Image LIKE '%\\cmd.exe'``
needs ``\\cmd.exe`` somewhere in the event. :func:`requirement` reads a rule's pySigma SQL condition (the
same SQL the engine runs) and derives a conjunction of clauses, each a set of literals of which at least one
must occur in the event's stored JSON (lowered as SQLite lowers: ASCII only, as ``LIKE`` and ``COLLATE
NOCASE`` compare). :class:`LiteralIndex` finds every literal of every rule in one Aho-Corasick pass over a
batch, so the full rule condition then runs only on candidate events. A rule without a usable literal
(only regular expressions, negations, field existence...) gets an empty requirement and runs on every event
of its log source, as before.

Soundness (the prefiltered engine must raise exactly what the unfiltered one does): a clause is only
derived where every match must contain it:

* ``AND`` keeps the clauses of all its operands; ``OR`` keeps one clause, the union of one clause of each
  operand (or none when an operand has none); ``NOT`` and every other predicate give none.
* A field-bound ``LIKE``/``GLOB`` literal segment lies inside the field's value. String values are stored
  JSON-escaped (``\\`` for ``\\``), so both the escaped and the plain form are accepted (the plain form
  covers values that are nested JSON, which SQLite returns as JSON text). Segments made only of number
  characters are skipped: SQLite's text for a real or boolean value differs from the stored JSON.
* ``field = 'text'`` needs the text; ``field = 123`` the digits (only integer or real JSON values compare
  equal to an integer, and their stored JSON contains its digits).
* Keyword searches (``__raw LIKE ...``) search the stored JSON itself: the plain segment.
* Literals shorter than :data:`MIN_LITERAL` are not used (a clause with one is dropped).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

# No public API parses a regular expression: the stdlib's own parser and opcodes (Python 3.11+).
from re import _constants as sre_constants  # type: ignore[attr-defined]  # private, untyped
from re import _parser as sre_parse
from typing import Any

import ahocorasick_rs

from tools.siem.sigma_rules import RAW_COLUMN

MIN_LITERAL = 3
_RARE_CHARS = frozenset("`^&~")
_NUMBER_CHARS = frozenset("0123456789.eE+-")
_MAX_INT_DIGITS = 15
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_KEYWORDS = frozenset({"AND", "OR", "NOT", "LIKE", "ESCAPE", "REGEXP", "GLOB", "IS", "NULL", "IN"})
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^']|'')*')
      | (?P<qid>"[^"]*"|`[^`]*`)
      | (?P<num>-?\d+(?:\.\d+)?)(?![A-Za-z_])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<op>\|\||<>|!=|<=|>=|=|<|>|\(|\)|,|\*)
    )""",
    re.VERBOSE,
)

Clause = frozenset[str]
Requirement = tuple[Clause, ...]


class Unsupported(ValueError):
    """SQL the prefilter does not read; the rule then runs unfiltered."""


def ascii_lower(text: str) -> str:
    """Lowercase ASCII letters only, as SQLite's ``lower()``, ``LIKE`` and ``NOCASE`` do."""
    return text.translate(_ASCII_LOWER)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # str | id | num | kw | op
    text: str


def _tokens(sql: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    end = len(sql.rstrip())
    while pos < end:
        m = _TOKEN.match(sql, pos)
        if m is None or m.end() == pos:
            raise Unsupported(f"cannot read SQL at {pos}: {sql[pos : pos + 20]!r}")
        pos = m.end()
        if m.group("str") is not None:
            out.append(_Tok("str", m.group("str")[1:-1].replace("''", "'")))
        elif m.group("qid") is not None:
            out.append(_Tok("id", m.group("qid")[1:-1]))
        elif m.group("num") is not None:
            out.append(_Tok("num", m.group("num")))
        elif m.group("word") is not None:
            word = m.group("word")
            out.append(_Tok("kw", word.upper()) if word.upper() in _KEYWORDS else _Tok("id", word))
        else:
            out.append(_Tok("op", m.group("op")))
    return out


def _anchored(segments: list[str]) -> list[tuple[str, bool, bool]]:
    """Literal runs (from :func:`_like_segments`, empty runs kept) with whether each is anchored at the
    value's start / end: only the first run before any wildcard, the last after every wildcard."""
    last = len(segments) - 1
    return [(seg, i == 0, i == last) for i, seg in enumerate(segments) if seg]


def _like_segments(pattern: str, escape: str | None) -> list[str]:
    """The literal runs of a LIKE pattern (``%`` and ``_`` are wildcards), empty runs kept."""
    segments: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escape is not None and ch == escape and i + 1 < len(pattern):
            current.append(pattern[i + 1])
            i += 2
            continue
        if ch in "%_":
            segments.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    segments.append("".join(current))
    return segments


def _glob_segments(pattern: str) -> list[tuple[str, bool, bool]]:
    if "[" in pattern:
        return []
    return [(s, False, False) for s in re.split(r"[*?]", pattern) if s]


def _usable(lit: str) -> bool:
    """Long enough to be selective (a non-ASCII character, or a run of characters rare in event text such
    as the backtick and caret of obfuscated command lines, is selective alone)."""
    if not lit or "\x00" in lit:
        return False
    return len(lit) >= MIN_LITERAL or not lit.isascii() or set(lit) <= _RARE_CHARS


def _esc(text: str) -> str:
    """``text`` as it appears inside a JSON string of the stored event."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _keys(name: str, aliases: dict[str, tuple[str, ...]]) -> list[str]:
    """The stored JSON keys a column reads (the field, then its aliases, as ``coalesce`` does)."""
    return [name, *aliases.get(name, ())]


def _field_clause(
    segments: Sequence[tuple[str, bool, bool]], keys: Sequence[str], *, raw: bool
) -> Requirement:
    """One clause from the longest usable segment of a field-bound (or keyword) pattern.

    ``segments``: (text, anchored at the value's start, anchored at its end). An anchored segment is
    searched with the JSON around it (``"Key":"`` before, ``"`` after), which makes it far rarer.
    """
    best: tuple[str, bool, bool] | None = None
    for seg in segments:
        text = seg[0]
        if not raw and set(text) <= _NUMBER_CHARS:
            continue
        if _usable(text) and (best is None or len(text) > len(best[0])):
            best = seg
    if best is None:
        return ()
    text, start, end = best
    if raw:
        return (frozenset({ascii_lower(text)}),)
    forms: set[str] = set()
    escaped = _esc(text) + ('"' if end else "")
    for key in keys if start else [""]:
        esc_prefix = f'"{_esc(key)}":"' if start else ""
        plain_prefix = f'"{_esc(key)}":' if start else ""
        forms.add(ascii_lower(esc_prefix + escaped))
        forms.add(ascii_lower(plain_prefix + text))
    return (frozenset(forms),)


#: ASCII letters that IGNORECASE also matches with non-ASCII characters (K: Kelvin sign, S: long s, I: dotted
#: capital I / dotless i); a case-insensitive literal run stops at them (and at any non-ASCII character).
_FOLD_UNSAFE = frozenset("iksIKS")


def _regex_seq(items: list[tuple[Any, Any]], ignorecase: bool) -> list[frozenset[str]]:
    """Clauses (sets of alternative runs) required by a sequence of regex items."""
    clauses: list[frozenset[str]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            clauses.append(frozenset({"".join(run)}))
            run.clear()

    for op, av in items:
        if op is sre_constants.LITERAL:
            ch = chr(av)
            if ignorecase and (ch in _FOLD_UNSAFE or not ch.isascii()):
                flush()
            else:
                run.append(ch)
            continue
        flush()
        if op is sre_constants.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if add_flags or del_flags:
                continue  # scoped flags: no literal from this group
            clauses.extend(_regex_seq(list(sub), ignorecase))
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT):
            low, _high, sub = av
            if low >= 1:
                clauses.extend(_regex_seq(list(sub), ignorecase))
        elif op is sre_constants.BRANCH:
            branches = [_regex_seq(list(alt), ignorecase) for alt in av[1]]
            if all(branches):
                merged: set[str] = set()
                for branch in branches:
                    merged |= max(branch, key=lambda c: (min(map(len, c)), -len(c)))
                clauses.append(frozenset(merged))
        elif op is sre_constants.ATOMIC_GROUP:
            clauses.extend(_regex_seq(list(av), ignorecase))
    flush()
    return clauses


def _regex_clause(pattern: str, *, raw: bool) -> Requirement:
    """The regex's best required clause, as field-bound (or keyword) literal forms."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return ()
    ignorecase = bool(parsed.state.flags & re.IGNORECASE)
    best: tuple[int, frozenset[str]] | None = None
    for clause in _regex_seq(list(parsed), ignorecase):
        if not all(_usable(lit) and (raw or not set(lit) <= _NUMBER_CHARS) for lit in clause):
            continue
        score = min(map(len, clause))
        if best is None or score > best[0]:
            best = (score, clause)
    if best is None:
        return ()
    if raw:
        return (frozenset(ascii_lower(lit) for lit in best[1]),)
    return (frozenset(ascii_lower(form) for lit in best[1] for form in (lit, _esc(lit))),)


class _Parser:
    def __init__(self, tokens: list[_Tok], aliases: dict[str, tuple[str, ...]]) -> None:
        self.toks = tokens
        self.i = 0
        self.aliases = aliases

    def peek(self, offset: int = 0) -> _Tok | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise Unsupported("unexpected end of SQL")
        self.i += 1
        return tok

    def accept(self, kind: str, text: str | None = None) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == kind and (text is None or tok.text == text):
            self.i += 1
            return True
        return False

    def expect(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.take()
        if tok.kind != kind or (text is not None and tok.text != text):
            raise Unsupported(f"expected {text or kind}, got {tok.text!r}")
        return tok

    def parse(self) -> Requirement:
        req = self.or_expr()
        if self.peek() is not None:
            raise Unsupported(f"trailing SQL at {self.peek()}")
        return req

    def or_expr(self) -> Requirement:
        parts = [self.and_expr()]
        while self.accept("kw", "OR"):
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        if any(not p for p in parts):
            return ()
        merged: set[str] = set()
        for part in parts:
            merged |= _best(part)
        return (frozenset(merged),)

    def and_expr(self) -> Requirement:
        req = self.not_expr()
        while self.accept("kw", "AND"):
            req = req + self.not_expr()
        return req

    def not_expr(self) -> Requirement:
        if self.accept("kw", "NOT"):
            self.not_expr()
            return ()
        return self.primary()

    def primary(self) -> Requirement:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text == "(":
            self.take()
            req = self.or_expr()
            self.expect("op", ")")
            return req
        return self.predicate()

    def operand(self) -> tuple[str, str]:
        """(kind, value): ``field`` (a column), ``str``, ``num`` or ``other`` (anything computed)."""
        parts = [self.single()]
        while self.accept("op", "||"):
            parts.append(self.single())
        if len(parts) == 1:
            return parts[0]
        if all(kind == "str" for kind, _ in parts):
            return "str", "".join(value for _, value in parts)
        return "other", ""

    def single(self) -> tuple[str, str]:
        tok = self.take()
        if tok.kind == "id":
            nxt = self.peek()
            if nxt is not None and nxt.kind == "op" and nxt.text == "(":
                self.skip_parens()
                return "other", ""
            return "field", tok.text
        if tok.kind == "str":
            return "str", tok.text
        if tok.kind == "num":
            return "num", tok.text
        if tok.kind == "op" and tok.text == "(":
            self.i -= 1
            self.skip_parens()
            return "other", ""
        raise Unsupported(f"unexpected {tok.text!r}")

    def skip_parens(self) -> None:
        self.expect("op", "(")
        depth = 1
        while depth:
            tok = self.take()
            if tok.kind == "op" and tok.text == "(":
                depth += 1
            elif tok.kind == "op" and tok.text == ")":
                depth -= 1

    def predicate(self) -> Requirement:
        left_kind, left = self.operand()
        tok = self.take()
        if tok.kind == "kw" and tok.text == "NOT":
            tok = self.take()  # NOT LIKE / NOT IN / ...: negated, no clause
            self.rest_of_predicate(tok)
            return ()
        if tok.kind == "kw" and tok.text in ("LIKE", "GLOB"):
            right_kind, pattern = self.operand()
            escape: str | None = None
            if self.accept("kw", "ESCAPE"):
                escape = self.expect("str").text
                if len(escape) != 1:
                    raise Unsupported("multi-character ESCAPE")
            if left_kind != "field" or right_kind != "str":
                return ()
            keys = _keys(left, self.aliases)
            if tok.text == "GLOB":
                return _field_clause(_glob_segments(pattern), keys, raw=left == RAW_COLUMN)
            if escape not in (None, "\\"):
                raise Unsupported("unexpected ESCAPE character")
            segments = _anchored(_like_segments(pattern, escape))
            return _field_clause(segments, keys, raw=left == RAW_COLUMN)
        if tok.kind == "kw" and tok.text == "REGEXP":
            right_kind, pattern = self.operand()
            if left_kind != "field" or right_kind != "str":
                return ()
            return _regex_clause(pattern, raw=left == RAW_COLUMN)
        if tok.kind == "op" and tok.text == "=":
            right_kind, value = self.operand()
            if left_kind != "field" or left == RAW_COLUMN:
                return ()
            keys = _keys(left, self.aliases)
            if right_kind == "str" and _usable(value):
                forms = {f'"{_esc(k)}":"{_esc(value)}"' for k in keys} | {
                    f'"{_esc(k)}":{value}' for k in keys
                }
                return (frozenset(ascii_lower(f) for f in forms),)
            if right_kind == "num" and re.fullmatch(r"-?\d+", value) and len(value) <= _MAX_INT_DIGITS:
                return (frozenset(ascii_lower(f'"{_esc(k)}":{value}') for k in keys),)
            return ()
        self.rest_of_predicate(tok)
        return ()

    def rest_of_predicate(self, tok: _Tok) -> None:
        """Consume the right side of a predicate that gives no clause."""
        if tok.kind == "op" and tok.text in ("<>", "!=", "<", ">", "<=", ">=", "="):
            self.operand()
        elif tok.kind == "kw" and tok.text in ("LIKE", "GLOB", "REGEXP"):
            self.operand()
            if self.accept("kw", "ESCAPE"):
                self.expect("str")
        elif tok.kind == "kw" and tok.text == "IS":
            self.accept("kw", "NOT")
            self.expect("kw", "NULL")
        elif tok.kind == "kw" and tok.text == "IN":
            self.skip_parens()
        else:
            raise Unsupported(f"unexpected {tok.text!r}")


def _best(req: Requirement) -> Clause:
    """The clause most likely to be rare: longest shortest literal, then fewest literals."""
    return max(req, key=lambda c: (min(map(len, c)), -len(c)))


_PREFIX = re.compile(r"^\s*SELECT\s+\*\s+FROM\s+\S+\s+WHERE\s+", re.IGNORECASE)


def condition_of(where_sql: str) -> str:
    """The condition of pySigma's ``SELECT * FROM <table> WHERE <condition>``."""
    m = _PREFIX.match(where_sql)
    if m is None:
        raise Unsupported("not a SELECT * ... WHERE query")
    return where_sql[m.end() :]


def requirement(where_sql: str, aliases: dict[str, tuple[str, ...]] | None = None) -> Requirement:
    """Clauses every event matched by the rule's SQL satisfies; empty: no prefilter for this rule.

    ``aliases``: the rule's column aliases (a column reads its field, else the first alias present).
    Cached: the scheduled detection pass builds its engine every few seconds."""
    return _requirement(where_sql, tuple(sorted((aliases or {}).items())))


@lru_cache(maxsize=8192)
def _requirement(where_sql: str, aliases: tuple[tuple[str, tuple[str, ...]], ...]) -> Requirement:
    try:
        return _Parser(_tokens(condition_of(where_sql)), dict(aliases)).parse()
    except (Unsupported, IndexError, RecursionError):
        return ()


@lru_cache(maxsize=256)
def literal_index(requirements: tuple[Requirement, ...]) -> LiteralIndex:
    """The (cached) index of a group's requirements."""
    return LiteralIndex(requirements)


class LiteralIndex:
    """All literals of a set of requirements, searched in one Aho-Corasick pass per event."""

    def __init__(self, requirements: Iterable[Requirement]) -> None:
        self.ids: dict[str, int] = {}
        requirements_list = list(requirements)
        for req in requirements_list:
            for clause in req:
                for lit in clause:
                    self.ids.setdefault(lit, len(self.ids))
        self.single_clause = len({clause for req in requirements_list for clause in req}) == 1
        self._automaton: ahocorasick_rs.BytesAhoCorasick | None = None
        if self.ids:
            self._automaton = ahocorasick_rs.BytesAhoCorasick(
                [lit.encode("utf-8") for lit in self.ids],
                matchkind=ahocorasick_rs.MATCHKIND_LEFTMOST_FIRST
                if self.single_clause
                else ahocorasick_rs.MATCHKIND_STANDARD,
            )

    def scan(self, rows: Iterable[tuple[int, bytes]]) -> tuple[set[int], dict[int, set[int]]]:
        """(all rowids, literal id -> rowids whose stored JSON contains it); the UTF-8 JSON is lowered
        here with ``bytes.lower`` (ASCII only, as SQLite's ``LIKE`` and ``NOCASE``)."""
        members: set[int] = set()
        found: dict[int, set[int]] = {}
        if self._automaton is None:
            members.update(rowid for rowid, _ in rows)
            return members, found
        search = self._automaton.find_matches_as_indexes
        if self.single_clause:
            # One clause in all: an event is a candidate when any of its literals occurs, which the
            # (much faster) leftmost non-overlapping search answers.
            hits_any: set[int] = set()
            for rowid, data in rows:
                members.add(rowid)
                if search(data.lower()):
                    hits_any.add(rowid)
            if hits_any:
                for idx in self.ids.values():
                    found[idx] = hits_any
            return members, found
        for rowid, data in rows:
            members.add(rowid)
            for idx in {m[0] for m in search(data.lower(), overlapping=True)}:
                hits = found.get(idx)
                if hits is None:
                    found[idx] = {rowid}
                else:
                    hits.add(rowid)
        return members, found

    def candidates(self, req: Requirement, found: dict[int, set[int]]) -> set[int]:
        """Rowids that satisfy every clause of ``req`` (``req`` must not be empty)."""
        unions: list[set[int]] = []
        for clause in req:
            sets = [found[self.ids[lit]] for lit in clause if self.ids[lit] in found]
            if not sets:
                return set()
            unions.append(sets[0] if len(sets) == 1 else set().union(*sets))
        unions.sort(key=len)
        result = set(unions[0])
        for other in unions[1:]:
            if not result:
                break
            result &= other
        return result
