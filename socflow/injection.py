"""Prompt-injection flags on alert text (first version: a few obvious patterns).

The contract (stable; the AI-trust work replaces the body of ``detect`` with the full detector):

    detect(fields: Mapping[str, str]) -> InjectionFinding | None

``fields`` maps a field name (``title``, ``description``, ``rule.name``, ...) to its text. The result is
``None`` when nothing looks like an instruction to a model, else the first finding: which field, which
pattern (a short stable name) and a one-line reason for analysts. ``detect`` never raises on any text and
never returns text copied from the alert beyond a short, cleaned excerpt in ``reason``.

Ingest calls it once per alert; a finding sets ``alerts.injection_flag`` and ``cases.injection_flag``
(with the reason), which the auto-close policy refuses (``socflow.policy``) and the API shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from socflow.untrusted import clean_text

MAX_SCAN_CHARS: Final = 20_000


@dataclass(frozen=True)
class InjectionFinding:
    reason: str
    field: str
    pattern: str


_PATTERNS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    (
        "ignore_instructions",
        re.compile(
            r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|any|your)\b"
            r".{0,40}\b(instructions?|prompts?|rules?|directions?|guidelines?)\b",
            re.I | re.S,
        ),
    ),
    (
        "role_marker",
        re.compile(
            r"(<\|?(im_start|im_end|system|assistant|user|eot_id|start_header_id)\|?>"
            r"|^\s*(system|assistant)\s*:|\[/?INST\]|<</?SYS>>|###\s*(system|instruction))",
            re.I | re.M,
        ),
    ),
    (
        "verdict_steering",
        re.compile(
            r"\b(classify|mark|label|treat|report)\b.{0,30}\b(this|it|the alert)\b.{0,30}"
            r"\b(as\s+)?(benign|false[\s_-]?positive|safe|harmless)\b",
            re.I | re.S,
        ),
    ),
    (
        "new_instructions",
        re.compile(r"\b(new|updated|real)\s+instructions?\s*:|\byou\s+are\s+now\b|\bact\s+as\b", re.I),
    ),
)


def detect(fields: Mapping[str, str]) -> InjectionFinding | None:
    """The first instruction-like pattern in ``fields`` (see the module docstring), or ``None``."""
    for name, text in fields.items():
        if not isinstance(text, str) or not text:
            continue
        sample = text[:MAX_SCAN_CHARS]
        for pattern, regex in _PATTERNS:
            match = regex.search(sample)
            if match:
                excerpt = clean_text(match.group(0), 80).replace("\n", " ")
                return InjectionFinding(
                    reason=f"{name} looks like an instruction to a model ({pattern}): {excerpt!r}",
                    field=str(name)[:100],
                    pattern=pattern,
                )
    return None
