"""Observable extraction: IPs, domains, URLs, hashes, users, hosts, processes and emails.

Values come from the alert's declared entities and from its free text (title, description), including
defanged forms such as ``hxxp://evil[.]com`` or ``10.0.0[.]5``, which are refanged before storage.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from socflow.enums import ObservableType
from socflow.schemas import AlertIn

_REFANG = [
    (re.compile(r"\[\.\]|\(\.\)|\{\.\}|\[dot\]", re.I), "."),
    (re.compile(r"\[:\]"), ":"),
    (re.compile(r"\[@\]|\[at\]", re.I), "@"),
    (re.compile(r"\bhxxp(s?)://", re.I), r"http\1://"),
    (re.compile(r"\bfxp://", re.I), "ftp://"),
]
_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`]{1,2000}", re.I)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
_DOMAIN = re.compile(r"\b(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,24})\b")
_HASH = re.compile(r"\b(?:[A-Fa-f0-9]{32}|[A-Fa-f0-9]{40}|[A-Fa-f0-9]{64})\b")
# Domains that are really file names in SOC text.
_FILE_SUFFIXES = (
    ".exe",
    ".dll",
    ".ps1",
    ".bat",
    ".cmd",
    ".vbs",
    ".js",
    ".sys",
    ".msi",
    ".tmp",
    ".log",
    ".txt",
)


def refang(text: str) -> str:
    for pattern, replacement in _REFANG:
        text = pattern.sub(replacement, text)
    return text


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def extract_from_text(text: str) -> set[tuple[ObservableType, str]]:
    """Observables found in free text (defanged forms included)."""
    found: set[tuple[ObservableType, str]] = set()
    text = refang(text[: 64 * 1024])
    for url in _URL.findall(text):
        found.add((ObservableType.url, url.rstrip(".,);]")))
    emails = set(_EMAIL.findall(text))
    found.update((ObservableType.email, e.lower()) for e in emails)
    for ip in _IPV4.findall(text):
        found.add((ObservableType.ip, ip))
    email_domains = {e.split("@", 1)[1].lower() for e in emails}
    for domain in _DOMAIN.findall(text):
        d = domain.lower()
        if d.endswith(_FILE_SUFFIXES) or _IPV4.fullmatch(d) or d in email_domains:
            continue
        found.add((ObservableType.domain, d))
    for h in _HASH.findall(text):
        found.add((ObservableType.hash, h.lower()))
    return found


def extract(alert: AlertIn) -> list[tuple[ObservableType, str]]:
    """All observables of an alert, sorted and unique."""
    e = alert.entities
    found: set[tuple[ObservableType, str]] = set()

    def add(kind: ObservableType, values: Iterable[str], *, lower: bool = False) -> None:
        for v in values:
            v = refang(v.strip())
            found.add((kind, v.lower() if lower else v))

    add(ObservableType.host, e.hosts)
    add(ObservableType.user, e.users)
    add(ObservableType.process, e.processes)
    add(ObservableType.hash, e.hashes, lower=True)
    add(ObservableType.domain, e.domains, lower=True)
    add(ObservableType.url, e.urls)
    add(ObservableType.email, e.emails, lower=True)
    for ip in e.ips:
        ip = refang(ip.strip())
        if _valid_ip(ip):
            found.add((ObservableType.ip, ip))
    found |= extract_from_text(" ".join(filter(None, [alert.title, alert.description])))
    return sorted(found)
