"""Sigma hunting on the embedded backend: conversion, log-source restriction, case rules, errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from socflow.errors import SigmaConversionError
from tools.siem import EmbeddedSiem, UnknownSigmaFieldError, compile_rule, parse_rule

SYSMON = "Microsoft-Windows-Sysmon/Operational"

RULE_WHOAMI = """
title: Whoami Execution
id: 11111111-1111-4111-8111-111111111111
status: test
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|endswith: '\\whoami.exe'
    filter:
        CommandLine|contains: 'benign-marker'
    condition: selection and not filter
level: high
tags: [attack.discovery, attack.t1033]
"""


@pytest.fixture
def siem() -> Iterator[EmbeddedSiem]:
    store = EmbeddedSiem(":memory:")
    store.insert_events(
        [
            {
                "EventID": 1,
                "Channel": SYSMON,
                "Computer": "A",
                "Image": "C:\\Windows\\System32\\WHOAMI.EXE",
                "CommandLine": "whoami /all",
                "OriginalFileName": "whoami.exe",
                "TimeCreated": "2025-01-01T00:00:01Z",
            },
            {
                "EventID": 1,
                "Channel": SYSMON,
                "Computer": "B",
                "Image": "C:\\Windows\\System32\\whoami.exe",
                "CommandLine": "whoami benign-marker",
                "TimeCreated": "2025-01-01T00:00:02Z",
            },
            # Same image, wrong log source (image load): must not match a process_creation rule.
            {
                "EventID": 7,
                "Channel": SYSMON,
                "Computer": "C",
                "Image": "C:\\Windows\\System32\\whoami.exe",
                "TimeCreated": "2025-01-01T00:00:03Z",
            },
            # Security 4688: NewProcessName stands in for Image.
            {
                "EventID": 4688,
                "Channel": "Security",
                "Computer": "D",
                "NewProcessName": "C:\\Windows\\System32\\whoami.exe",
                "TimeCreated": "2025-01-01T00:00:04Z",
            },
        ]
    )
    yield store
    store.close()


def test_process_creation_rule_matches_sysmon_1_and_security_4688_only(siem: EmbeddedSiem) -> None:
    assert [e.host for e in siem.hunt(RULE_WHOAMI)] == ["A", "D"]


def test_equality_is_case_insensitive_and_regex_works(siem: EmbeddedSiem) -> None:
    rule = RULE_WHOAMI.replace("Image|endswith: '\\whoami.exe'", "OriginalFileName: 'WHOAMI.exe'")
    assert [e.host for e in siem.hunt(rule)] == ["A"]
    rule = RULE_WHOAMI.replace("Image|endswith: '\\whoami.exe'", "CommandLine|re: 'who[a-z]+ /a'")
    assert [e.host for e in siem.hunt(rule)] == ["A"]


def test_keyword_rules_search_the_raw_event(siem: EmbeddedSiem) -> None:
    rule = """
title: k
id: 22222222-2222-4222-8222-222222222222
logsource: {product: windows, service: sysmon}
detection:
    keywords: ['benign-marker']
    condition: keywords
"""
    assert [e.host for e in siem.hunt(rule)] == ["B"]


def test_unknown_field_is_named() -> None:
    bad = RULE_WHOAMI.replace("CommandLine|contains", "Command'Line|contains")
    with pytest.raises(UnknownSigmaFieldError) as info:
        compile_rule(parse_rule(bad))
    assert info.value.field == "Command'Line"
    assert "Command'Line" in str(info.value)
    with pytest.raises(UnknownSigmaFieldError) as info:
        compile_rule(parse_rule(RULE_WHOAMI), known_fields={"Image", "EventID", "Channel"})
    assert info.value.field == "CommandLine"


def test_non_windows_and_invalid_rules_fail_to_convert() -> None:
    linux = RULE_WHOAMI.replace("product: windows", "product: linux")
    with pytest.raises(SigmaConversionError, match="linux"):
        compile_rule(parse_rule(linux))
    with pytest.raises(SigmaConversionError, match=r"my-rule\.yml"):
        parse_rule("title: x\ndetection: {}\n", source="my-rule.yml")


def test_compiled_rule_metadata() -> None:
    compiled = compile_rule(parse_rule(RULE_WHOAMI))
    assert compiled.level == "high"
    assert compiled.tags == ("attack.discovery", "attack.t1033")
    sql, params = compiled.sql()
    assert "json_extract" in sql and "COLLATE NOCASE" in sql
    assert set(params) == {SYSMON, "1", "Security", "4688"}


def test_a_thousand_values_stay_under_sqlite_depth_limit(siem: EmbeddedSiem) -> None:
    values = "\n".join(f"            - 'pkg-{i}@1.0'" for i in range(1500))
    rule = f"""
title: many
id: 44444444-4444-4444-8444-444444444444
logsource: {{category: process_creation, product: windows}}
detection:
    selection:
        CommandLine|contains:
{values}
            - '/all'
    condition: selection
"""
    assert [e.host for e in siem.hunt(rule)] == ["A"]
