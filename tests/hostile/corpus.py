"""The hostile-input corpus: items that broke (or could break) a door, each with the outcome it must get.

Every item is raw bytes (so invalid UTF-8, NaN literals and 5,000-digit numbers can be written) and starts
with ``{"source_ref":"<marker>"`` so its dead letter can be found. ``good`` items must be stored (text
cleaned: NUL removed, U+FFFD for invalid UTF-8 and lone surrogates); bad items must be refused with a
reason and kept as dead letters. Categories have at least 10 items each; ``files()`` groups them into the
corpus files that the CLI and folder doors read once each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

SOURCE = "hostile"


@dataclass(frozen=True)
class Item:
    category: str
    marker: str
    raw: bytes
    good: bool


def _item(category: str, n: int, rest: str | bytes, *, good: bool, source: str = SOURCE) -> Item:
    marker = f"{category}-{n:03d}"
    head = f'{{"source_ref":"{marker}","source":{json.dumps(source)}'.encode()
    tail = rest.encode("utf-8", "surrogatepass") if isinstance(rest, str) else rest
    return Item(category, marker, head + tail, good)


def _fields(title: str = "hostile test", severity: str = "low", **extra: object) -> str:
    parts = [f'"title":{json.dumps(title)}', f'"severity":{json.dumps(severity)}']
    parts += [f"{json.dumps(k)}:{json.dumps(v)}" for k, v in extra.items()]
    return "," + ",".join(parts) + "}"


def _nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def nul() -> list[Item]:
    c = "nul"
    out = [
        _item(c, 0, ',"title":"a\\u0000b","severity":"low"}', good=True),
        _item(c, 1, ',"title":"t","severity":"low","description":"x\\u0000y\\u0000"}', good=True),
        _item(c, 2, ',"title":"t","severity":"low","raw":{"k\\u0000":"v\\u0000"}}', good=True),
        _item(c, 3, ',"title":"t","severity":"low","entities":{"hosts":["h\\u0000st"]}}', good=True),
        _item(c, 4, ',"title":"t","severity":"low","rule":{"id":"r\\u0000","name":"n\\u0000"}}', good=True),
        _item(c, 5, ',"title":"\\u0000\\u0000x","severity":"low"}', good=True),
        _item(c, 6, ',"title":"t","severity":"low","raw":{"a":["\\u0000",{"b":"\\u0000"}]}}', good=True),
        _item(c, 7, ',"title":"t","severity":"low","rule":{"tags":["attack.t1059\\u0000"]}}', good=True),
        _item(c, 8, ',"title":"t","severity":"lo\\u0000w"}', good=True),  # NUL removed: "low"
        _item(c, 9, ',"title":"\\u0000","severity":"low"}', good=False),  # empty once cleaned
        _item(c, 10, _fields(), good=False, source="src\x00x"),  # NUL in an identifier: refused
    ]
    return out


def nan_infinity() -> list[Item]:
    c = "nan"
    values = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1.5e999"]
    out = [
        _item(c, i, f',"title":"t","severity":"low","raw":{{"v":{v}}}}}', good=False)
        for i, v in enumerate(values)
    ]
    out += [
        _item(c, 6, ',"title":"t","severity":"low","raw":{"a":[1,2,NaN]}}', good=False),
        _item(c, 7, ',"title":"t","severity":"low","raw":{"a":{"b":{"c":Infinity}}}}', good=False),
        _item(c, 8, ',"title":"t","severity":NaN}', good=False),
        _item(c, 9, ',"title":"t","severity":"low","timestamp":NaN}', good=False),
        _item(c, 10, ',"title":"t","severity":"low","raw":{"v":1.5}}', good=True),  # a finite float
    ]
    return out


def lone_surrogates() -> list[Item]:
    c = "surrogate"
    texts = ["\\ud800", "\\udfff", "a\\ud83d", "\\ude00b", "\\udc00\\ud800", "x\\ud800y\\udbff"]
    out = [_item(c, i, f',"title":"{t}","severity":"low"}}', good=True) for i, t in enumerate(texts)]
    out += [
        _item(c, 6, ',"title":"t","severity":"low","description":"\\ud800"}', good=True),
        _item(c, 7, ',"title":"t","severity":"low","raw":{"\\ud800":"\\udfff"}}', good=True),
        _item(c, 8, ',"title":"t","severity":"low","entities":{"users":["\\ud800"]}}', good=True),
        _item(c, 9, ',"title":"ok \\ud83d\\ude00 pair","severity":"low"}', good=True),  # a valid pair
        _item(c, 10, ',"title":"t","severity":"\\ud800"}', good=False),
    ]
    return out


def invalid_utf8() -> list[Item]:
    c = "utf8"
    bad = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80\x80", b"\xe2\x82"]
    out = [_item(c, i, b',"title":"a' + b + b'b","severity":"low"}', good=True) for i, b in enumerate(bad)]
    out += [
        _item(c, 6, b',"title":"t","severity":"low","description":"\xfe\xfe"}', good=True),
        _item(c, 7, b',"title":"t","severity":"low","raw":{"\xff":"\xff"}}', good=True),
        _item(c, 8, b',"title":"t","severity":"low","entities":{"hosts":["\xc0\xaf"]}}', good=True),
        _item(c, 9, b',"title":"caf\xc3\xa9","severity":"low"}', good=True),  # valid UTF-8
        _item(c, 10, b',"title":"t","severity":"lo\xffw"}', good=False),
    ]
    return out


def deep_nesting() -> list[Item]:
    c = "deep"
    depths = [33, 40, 64, 100, 256, 999, 1500, 5000, 20000]
    out = [
        _item(c, i, f',"title":"t","severity":"low","raw":{{"x":{_nested(d)}}}}}', good=False)
        for i, d in enumerate(depths)
    ]
    out += [
        _item(c, 9, f',"title":"t","severity":"low","extra":{_nested(3000)}}}', good=False),
        _item(c, 10, f',"title":"t","severity":"low","raw":{{"x":{_nested(20)}}}}}', good=True),
        _item(
            c, 11, ',"title":"t","severity":"low","raw":' + '{"a":' * 300 + "1" + "}" * 300 + "}", good=False
        ),
    ]
    return out


def huge_numbers() -> list[Item]:
    c = "huge"
    sizes = [41, 100, 4300, 4301, 5000, 100_000]
    out = [
        _item(c, i, f',"title":"t","severity":"low","raw":{{"n":{"9" * n}}}}}', good=False)
        for i, n in enumerate(sizes)
    ]
    out += [
        _item(c, 6, f',"title":"t","severity":"low","raw":{{"n":-{"1" * 5000}}}}}', good=False),
        _item(c, 7, f',"title":"t","severity":"low","raw":{{"n":0.{"1" * 5000}}}}}', good=False),
        _item(c, 8, f',"title":"t","severity":"low","timestamp":{"9" * 5000}}}', good=False),
        _item(c, 9, ',"title":"t","severity":"low","raw":{"n":1e308}}', good=True),
        _item(
            c,
            10,
            ',"title":"t","severity":"low","raw":{"n":340282366920938463463374607431768211455}}',
            good=True,
        ),
        _item(c, 11, ',"title":"t","severity":"low","timestamp":1e300}', good=False),
    ]
    return out


def extreme_timestamps() -> list[Item]:
    c = "time"
    bad = [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00",
        "1969-12-31T23:59:59Z",
        "2500-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999+00:00",
        "not a time",
        "2024-13-45T99:99:99Z",
    ]
    out = [_item(c, i, _fields(timestamp=t), good=False) for i, t in enumerate(bad)]
    out += [
        _item(c, 8, _fields(timestamp="2024-06-01T12:00:00+14:00"), good=True),
        _item(c, 9, _fields(timestamp="2024-06-01T12:00:00"), good=True),
        _item(c, 10, ',"title":"t","severity":"low","timestamp":-99999999999999}', good=False),
    ]
    return out


def oversize() -> list[Item]:
    c = "oversize"
    out = [
        _item(c, 0, _fields(title="t" * 501), good=False),
        _item(c, 1, _fields(description="d" * 70_000), good=False),
        _item(c, 2, _fields(raw={"blob": "b" * 300_000}), good=False),
        _item(c, 3, _fields(entities={"hosts": [f"h{i}" for i in range(501)]}), good=False),
        _item(c, 4, _fields(rule={"tags": [f"t{i}" for i in range(201)]}), good=False),
        _item(c, 5, _fields(rule={"id": "r" * 201}), good=False),
        _item(c, 6, _fields(entities={"users": ["u" * 2049]}), good=False),
        _item(c, 7, _fields(raw={"k" * 1001: 1}), good=False),
        _item(c, 8, _fields(raw={"list": list(range(250_000))}), good=False),
        _item(c, 9, _fields(title="t" * 500), good=True),
        _item(c, 10, _fields(entities={"hosts": [f"h{i}" for i in range(500)]}), good=True),
        _item(c, 11, _fields(rule={"name": "n" * 501}), good=False),
    ]
    return out


def malformed() -> list[Item]:
    c = "malformed"
    rests = [
        ',"title":"t"',
        ',"title":"t",,}',
        ',"title":}',
        ",",
        ',"title":"t","severity":"low"}}',
        ',"a":[}',
    ]
    out = [_item(c, i, r, good=False) for i, r in enumerate(rests)]
    out += [
        _item(c, 6, _fields(severity="extreme"), good=False),
        _item(c, 7, _fields(tool="shell"), good=False),  # unknown field in the generic format
        _item(c, 8, ',"title":["t"],"severity":"low"}', good=False),
        _item(c, 9, ',"title":"t","severity":"low","raw":"not an object"}', good=False),
        _item(c, 10, _fields(), good=True),
    ]
    return out


def vendor() -> list[Item]:
    """Vendor shapes with hostile values: the mapping must refuse or clean them, never crash."""
    c = "vendor"

    def wazuh(n: int, rule: str, good: bool) -> Item:
        marker = f"{c}-{n:03d}"
        body = f',"id":"{marker}","timestamp":"2024-06-01T10:00:00Z","rule":{rule},"agent":{{"name":"h1"}}}}'
        return _item(c, n, body, good=good)

    def elastic(n: int, extra: str, good: bool) -> Item:
        marker = f"{c}-{n:03d}"
        body = f',"kibana.alert.uuid":"{marker}","kibana.alert.rule.name":"r"{extra}}}'
        return _item(c, n, body, good=good)

    return [
        wazuh(0, '{"level":NaN,"description":"d","id":"1"}', False),
        wazuh(1, '{"level":' + "9" * 5000 + ',"description":"d","id":"1"}', False),
        wazuh(2, '{"level":3,"description":"d\\u0000","id":"1"}', True),
        wazuh(3, '{"level":[1,2],"description":"d","id":"1"}', True),  # odd level: documented default
        wazuh(4, '{"level":{"x":1},"description":{"y":2},"id":{"z":3}}', False),  # no usable title
        wazuh(5, '{"level":5,"description":"' + "d" * 600 + '","id":"1"}', True),  # title cut to 500
        elastic(6, ',"kibana.alert.risk_score":Infinity', False),
        elastic(7, ',"@timestamp":"0001-01-01T00:00:00+14:00"', False),
        elastic(8, ',"@timestamp":1e300', False),
        elastic(9, ',"kibana.alert.severity":"\\ud800"', True),
        elastic(10, ',"host.name":' + _nested(40, '"h"'), False),
        elastic(11, ',"kibana.alert.risk_score":"12"', True),
    ]


def control() -> list[Item]:
    """Terminal escapes, bidi and zero-width characters: stored as data (shown escaped by the CLI/UI)."""
    c = "control"
    texts = [
        "\\u001b[2J\\u001b[H cleared",
        "\\u001b]8;;http://evil/\\u0007link\\u001b]8;;\\u0007",
        "\\u202eevil\\u202c",
        "zero\\u200bwidth",
        "bell\\u0007",
        "back\\bspace",
        "\\r\\ncarriage",
        "\\u009bCSI",
        "\\u2066isolate\\u2069",
        "tab\\there",
    ]
    out = [_item(c, i, f',"title":"{t}","severity":"low"}}', good=True) for i, t in enumerate(texts)]
    out += [_item(c, 10, _fields(), good=False, source="s\x1b[31m")]  # control char in an identifier
    return out


def mixed_batches(count: int = 30) -> list[list[Item]]:
    """Batches mixing good and bad items of every category (fixed order, no randomness)."""
    pool = corpus()
    batches = []
    for b in range(count):
        picked = pool[b::count][:8]
        batches.append(picked)
    return batches


CATEGORIES = (
    nul,
    nan_infinity,
    lone_surrogates,
    invalid_utf8,
    deep_nesting,
    huge_numbers,
    extreme_timestamps,
    oversize,
    malformed,
    vendor,
    control,
)


def corpus() -> list[Item]:
    items = [item for make in CATEGORIES for item in make()]
    assert len({i.marker for i in items}) == len(items)
    return items


def files() -> dict[str, list[Item]]:
    """The corpus files: one per category, NDJSON, good and bad items mixed in each."""
    return {make.__name__: make() for make in CATEGORIES}


def ndjson(items: list[Item]) -> bytes:
    return b"\n".join(i.raw for i in items) + b"\n"


def array(items: list[Item]) -> bytes:
    return b"[" + b",\n".join(i.raw for i in items) + b"]"
