"""The batch engine's literal prefilter: it must find exactly what the unfiltered engine finds.

The prefilter only skips a rule on an event when a literal every match needs is absent from the event's
stored JSON; these tests compare both engines on every enabled pack rule over the regression samples, and on
hand-made events built to trip an unsound prefilter (values stored as JSON arrays, numbers or booleans,
escaped backslashes and quotes, ASCII-only case folding, Unicode that case-insensitive regexes fold, the
Security-log aliases of ``process_creation``)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tools.siem.embedded import EmbeddedSiem
from tools.siem.engine import BatchDetector
from tools.siem.pack import RuleSet, load_rule_set
from tools.siem.prefilter import requirement
from tools.siem.sigma_rules import CompiledRule, compile_rule, parse_rule

SYSMON = "Microsoft-Windows-Sysmon/Operational"


@pytest.fixture(scope="module")
def pack() -> RuleSet:
    return load_rule_set()


def _both(siem: EmbeddedSiem, rules: list[CompiledRule]) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    upto = siem.max_rowid()
    filtered = BatchDetector(rules).matches(siem, 0, upto)
    unfiltered = BatchDetector(rules, prefilter=False).matches(siem, 0, upto)
    return filtered, unfiltered


def test_prefiltered_engine_matches_the_unfiltered_one_for_every_enabled_rule(
    regression_dir: Path, pack: RuleSet
) -> None:
    rules = pack.enabled()
    with EmbeddedSiem(":memory:") as siem:
        siem.load([regression_dir])
        detector = BatchDetector(rules)
        started = time.perf_counter()
        filtered = detector.matches(siem, 0, siem.max_rowid())
        filtered_seconds = time.perf_counter() - started
        started = time.perf_counter()
        unfiltered = BatchDetector(rules, prefilter=False).matches(siem, 0, siem.max_rowid())
        unfiltered_seconds = time.perf_counter() - started
    assert len(unfiltered) >= 150  # the regression samples fire most enabled rules that have one
    for rule in rules:
        assert filtered.get(rule.rule_id) == unfiltered.get(rule.rule_id), rule.rule_id
    # the prefilter did its job: most rules have literals and most evaluations were skipped
    assert detector.stats.rules_filtered >= 2000
    assert detector.stats.skipped > detector.stats.evaluations
    print(f"prefiltered {filtered_seconds:.2f} s, unfiltered {unfiltered_seconds:.2f} s")


def _rule(detection: str, logsource: str = "product: windows\n  service: sysmon") -> CompiledRule:
    text = f"title: t\nid: {uuid.uuid5(uuid.NAMESPACE_URL, logsource + detection)}\nstatus: test\n"
    text += f"logsource:\n  {logsource}\ndetection:\n{detection}\nlevel: high\n"
    return compile_rule(parse_rule(text))


def _event(event_id: int, **fields: Any) -> dict[str, Any]:
    return {"Channel": SYSMON, "EventID": event_id, "Computer": "ws1", **fields}


ADVERSARIAL_RULES = {
    "endswith": "  sel:\n    Image|endswith: '\\cmd.exe'\n  condition: sel",
    "startswith": "  sel:\n    Image|startswith: 'C:\\Windows\\'\n  condition: sel",
    "equals": "  sel:\n    OriginalFileName: 'Cmd.Exe'\n  condition: sel",
    "quote": "  sel:\n    CommandLine|contains: 'say \"hi\"'\n  condition: sel",
    "in_array": "  sel:\n    Tags|contains: 'alpha\", \"beta'\n  condition: sel",
    "array_compact": "  sel:\n    Tags|contains: 'alpha\",\"beta'\n  condition: sel",
    "number_like": "  sel:\n    Count|contains: '123'\n  condition: sel",
    "number_eq": "  sel:\n    Count: 4104\n  condition: sel",
    "boolean": "  sel:\n    Flag|startswith: '1'\n  condition: sel",
    "eventid": "  sel:\n    EventID: 1\n  condition: sel",
    "unicode": "  sel:\n    CommandLine|contains: 'ÉCOLE'\n  condition: sel",
    "regex_ci": "  sel:\n    CommandLine|re: '(?i)invoke-mask'\n  condition: sel",
    "regex_cs": "  sel:\n    CommandLine|re: 'Get-Secret[0-9]+'\n  condition: sel",
    "or_not": "  a:\n    Image|endswith: '\\a.exe'\n  b:\n    CommandLine|contains: 'zzz'\n"
    "  condition: a or not b",
    "keyword": "  keywords:\n    - 'mimikatz'\n  condition: keywords",
    "and_or": "  a:\n    Image|endswith:\n      - '\\powershell.exe'\n      - '\\pwsh.exe'\n"
    "  b:\n    CommandLine|contains|all:\n      - '-enc'\n      - 'hidden'\n  condition: a and b",
}


def test_prefilter_is_sound_on_values_built_to_trip_it() -> None:
    rules = {name: _rule(det) for name, det in ADVERSARIAL_RULES.items()}
    process = _rule(
        "  sel:\n    Image|endswith: '\\whoami.exe'\n  condition: sel",
        "category: process_creation\n  product: windows",
    )
    events = [
        _event(1, Image="C:\\WINDOWS\\System32\\CMD.EXE", OriginalFileName="cmd.exe"),
        _event(1, Image="C:\\Windows\\x.exe", CommandLine='say "hi" to ÉCOLE and école'),
        _event(3, Tags=["alpha", "beta"], Count=123, Flag=True),
        _event(3, Tags=["x"], Count=4104.0, Flag=False),
        _event(3, Count="4104", CommandLine="INVOKE-MASK and ſecret"),  # text '4104' is not the number
        _event(3, CommandLine="invoKe-maſk", Image="C:\\b.exe"),  # long s: (?i) folds it to 's'
        _event(3, CommandLine="inᴠoke-mask Get-Secret12"),
        _event(7, Image="C:\\tools\\a.exe", CommandLine="zzz"),
        _event(7, Image="C:\\tools\\B.exe", CommandLine="MIMIKATZ"),
        _event(1, Image="C:\\Windows\\POWERSHELL.EXE", CommandLine="-ENC x -w Hidden"),
        {
            "Channel": "Security",
            "EventID": 4688,
            "Computer": "dc1",
            "NewProcessName": "C:\\Windows\\whoami.exe",
        },
        _event(5, Image="C:\\K\\cmd.exe\\"),  # Kelvin sign; endswith fails on the trailing backslash
    ]
    with EmbeddedSiem(":memory:") as siem:
        siem.insert_events(events)
        filtered, unfiltered = _both(siem, [*rules.values(), process])
    assert filtered == unfiltered
    fired = {name for name, rule in rules.items() if rule.rule_id in filtered}
    # not vacuous: these must fire (each exercises one way a prefilter could wrongly skip)
    assert fired == {
        "endswith",
        "startswith",
        "equals",
        "quote",
        "array_compact",
        "number_like",
        "number_eq",
        "boolean",
        "eventid",
        "unicode",
        "regex_ci",
        "regex_cs",
        "or_not",
        "keyword",
        "and_or",
    }  # in_array: SQLite reads an array as compact JSON, without the space
    assert process.rule_id in filtered  # the Security-log alias NewProcessName
    assert len(filtered[rules["regex_ci"].rule_id]) == 2  # INVOKE-MASK, and invoKe-maſk through (?i)


def test_requirements_are_derived_only_where_every_match_needs_them() -> None:
    sql = "SELECT * FROM sigma_events WHERE "
    # AND keeps every clause; anchored literals carry the JSON around them
    [image, cmd] = requirement(
        sql + "Image LIKE '%\\\\cmd.exe' ESCAPE '\\' AND CommandLine LIKE '%/c%whoami%' ESCAPE '\\'"
    )
    assert image == {'\\\\cmd.exe"', "\\cmd.exe"} and cmd == {"whoami"}
    # OR: one clause, the union; NOT, regexes without literals, comparisons and short literals give none
    [either] = requirement(sql + "Image LIKE '%\\\\a.exe' ESCAPE '\\' OR OriginalFileName='b.exe'")
    assert either == {'\\\\a.exe"', "\\a.exe", '"originalfilename":"b.exe"', '"originalfilename":b.exe'}
    assert requirement(sql + "NOT Image LIKE '%\\\\a.exe' ESCAPE '\\'") == ()
    assert requirement(sql + "Image LIKE '%\\\\a.exe' ESCAPE '\\' OR NOT CommandLine LIKE '%x%'") == ()
    assert requirement(sql + "CommandLine REGEXP '\\w+ \\d+'") == ()
    assert requirement(sql + "CommandLine REGEXP '\\w+`\\w+`'") == (frozenset({"`"}),)  # rare alone
    assert requirement(sql + "Count > 5 AND Image LIKE '%ab%' ESCAPE '\\'") == ()
    # a case-insensitive regex stops its literal runs at letters that fold to non-ASCII (k, s, i)
    [run] = requirement(sql + "CommandLine REGEXP '(?i)powershell'")
    assert run == {"power"}
    # numbers: integer equality is found as the stored JSON; LIKE on digits could be a real's text
    assert requirement(sql + "EventID=4104") == (frozenset({'"eventid":4104'}),)
    assert requirement(sql + "Count LIKE '%123%' ESCAPE '\\'") == ()
    # keyword searches look at the stored JSON itself; unreadable SQL means no prefilter, never an error
    assert requirement(sql + "__raw LIKE '%' || 'Mimikatz' || '%' ESCAPE '\\'") == (frozenset({"mimikatz"}),)
    assert requirement(sql + "Image LIKE ") == ()
    # the Security alias of Image is searched too
    [alias] = requirement(sql + "Image LIKE 'C:\\\\W%' ESCAPE '\\'", {"Image": ("NewProcessName",)})
    assert '"newprocessname":"c:\\\\w' in alias and '"image":"c:\\\\w' in alias
