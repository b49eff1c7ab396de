"""The SigmaHQ rule pack: a versioned set of Sigma rules, converted once and cached by content hash.

A pack is a folder::

    pack.json           manifest: name, source repository, commit, built-at, counts, converter version
    rules.json.gz       the rule files, unmodified, as {path: YAML text} (paths relative to the SigmaHQ
                        checkout, e.g. ``rules/windows/process_creation/proc_creation_win_....yml``); rules
                        whose log source is not supported are listed in compiled.json.gz but not shipped
    compiled.json.gz    one record per rule: metadata (id, title, status, level, folder, log source, tags),
                        its content hash, and either the converted query or the reason it did not convert
    LICENSE-SIGMA.md    Detection Rule License 1.1 (the rules keep their ``author`` field: the attribution)

The shipped pack lives in ``tools/siem/pack/sigmahq``; ``socflow siem rules update PATH`` builds a new one
from a SigmaHQ release folder into the detection data directory, which then wins over the shipped one.

Selection (``RuleFilter``): documented defaults are status ``stable`` or ``test``, level ``medium`` and up,
folders ``rules`` and ``rules-emerging-threats`` (threat-hunting rules off). Per-rule overrides (``siem rules
enable|disable``) win over the filter. Custom rule folders are converted through the same content-hash cache
(a ``compiled.json.gz`` in the cache directory), so start-up never re-converts an unchanged rule.

Nothing is dropped silently: every rule of the pack is a :class:`PackRule`, converted or not, with a reason.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from socflow.errors import SigmaConversionError
from tools.siem.sigma_rules import CompiledRule, compile_rule, parse_rule

SHIPPED_PACK = Path(__file__).parent / "pack" / "sigmahq"
PACK_FOLDERS = ("rules", "rules-emerging-threats", "rules-threat-hunting")
CUSTOM_FOLDER = "custom"
#: Bumped whenever ``compile_rule``'s output changes, so cached conversions are not reused across versions.
CONVERTER_VERSION = "1"
LEVELS = ("informational", "low", "medium", "high", "critical")
STATUSES = ("stable", "test", "experimental", "deprecated", "unsupported")
DEFAULT_STATUSES = ("stable", "test")
DEFAULT_MIN_LEVEL = "medium"
DEFAULT_FOLDERS = ("rules", "rules-emerging-threats", CUSTOM_FOLDER)
MAX_RULE_BYTES = 512 * 1024

#: Why a rule is not runnable: its log source is not Windows event logs (expected for most non-Windows
#: rules), or the conversion itself failed (a real failure, listed one by one).
UNSUPPORTED = "unsupported_logsource"
FAILED = "conversion_failed"
INVALID = "invalid_rule"


def content_hash(text: str) -> str:
    return hashlib.sha256(f"{CONVERTER_VERSION}\x1f{text}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class PackRule:
    """One rule of a pack (or custom folder): metadata, and its conversion or the reason there is none."""

    path: str
    folder: str
    content_hash: str
    rule_id: str
    title: str
    status: str
    level: str
    product: str
    category: str
    service: str
    tags: tuple[str, ...] = ()
    compiled: CompiledRule | None = None
    error_kind: str | None = None
    error: str | None = None

    @property
    def windows(self) -> bool:
        return self.compiled is not None

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "compiled" and v not in (None, (), [])}
        data["tags"] = list(self.tags)
        if self.compiled is not None:
            data["compiled"] = compiled_to_json(self.compiled)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PackRule:
        compiled = data.get("compiled")
        return cls(
            path=data["path"],
            folder=data["folder"],
            content_hash=data["content_hash"],
            rule_id=data["rule_id"],
            title=data.get("title", ""),
            status=data.get("status", ""),
            level=data.get("level", ""),
            product=data.get("product", ""),
            category=data.get("category", ""),
            service=data.get("service", ""),
            tags=tuple(data.get("tags", ())),
            compiled=compiled_from_json(compiled) if compiled else None,
            error_kind=data.get("error_kind"),
            error=data.get("error"),
        )


def compiled_to_json(rule: CompiledRule) -> dict[str, Any]:
    data = asdict(rule)
    data["aliases"] = {k: list(v) for k, v in rule.aliases.items()}
    return data


def compiled_from_json(data: dict[str, Any]) -> CompiledRule:
    return CompiledRule(
        rule_id=data["rule_id"],
        title=data["title"],
        level=data["level"],
        tags=tuple(data["tags"]),
        description=data["description"],
        fields=tuple(data["fields"]),
        where_sql=data["where_sql"],
        logsource_sql=data["logsource_sql"],
        logsource_params=tuple(data["logsource_params"]),
        aliases={k: tuple(v) for k, v in data.get("aliases", {}).items()},
        source=data.get("source", ""),
    )


def _meta(text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return doc if isinstance(doc, dict) else {}


def convert_text(path: str, folder: str, text: str) -> PackRule:
    """Convert one rule file's text (never raises: a failure is a PackRule with a reason)."""
    digest = content_hash(text)
    meta = _meta(text)
    raw_logsource = meta.get("logsource")
    logsource: dict[str, Any] = raw_logsource if isinstance(raw_logsource, dict) else {}
    base: dict[str, Any] = {
        "path": path,
        "folder": folder,
        "content_hash": digest,
        "rule_id": str(meta.get("id") or path),
        "title": str(meta.get("title") or "")[:300],
        "status": str(meta.get("status") or "").lower(),
        "level": str(meta.get("level") or "").lower(),
        "product": str(logsource.get("product") or "").lower(),
        "category": str(logsource.get("category") or "").lower(),
        "service": str(logsource.get("service") or "").lower(),
        "tags": tuple(str(t) for t in meta.get("tags") or () if isinstance(t, str)),
    }
    if len(text) > MAX_RULE_BYTES:
        return PackRule(**base, error_kind=INVALID, error=f"rule file over {MAX_RULE_BYTES} bytes")
    try:
        rule = parse_rule(text, source=path)
    except SigmaConversionError as exc:
        return PackRule(**base, error_kind=INVALID, error=str(exc)[:500])
    try:
        compiled = compile_rule(rule, source=path)
    except SigmaConversionError as exc:
        message = str(exc)
        kind = UNSUPPORTED if "log source" in message else FAILED
        return PackRule(**base, error_kind=kind, error=message[:500])
    return PackRule(**base, compiled=compiled)


# -- conversion cache ----------------------------------------------------------------------------------


class ConversionCache:
    """Converted rules by content hash, persisted as one gzip'd JSON file (atomically replaced)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        self.hits = self.misses = 0
        self._dirty = False
        if path is not None and path.is_file():
            try:
                with gzip.open(path, "rt", encoding="utf-8") as handle:
                    for record in json.load(handle):
                        self.records[record["content_hash"]] = record
            except (OSError, ValueError, KeyError, TypeError):
                self.records = {}  # a corrupt cache is rebuilt, never trusted

    def convert(self, path: str, folder: str, text: str) -> PackRule:
        digest = content_hash(text)
        record = self.records.get(digest)
        if record is not None and record.get("path") == path and record.get("folder") == folder:
            self.hits += 1
            return PackRule.from_json(record)
        self.misses += 1
        rule = convert_text(path, folder, text)
        self.records[digest] = rule.to_json()
        self._dirty = True
        return rule

    def save(self, keep: Iterable[str] | None = None) -> None:
        if self.path is None or not self._dirty:
            return
        records = self.records
        if keep is not None:
            wanted = set(keep)
            records = {k: v for k, v in records.items() if k in wanted}
        write_json_gz(self.path, sorted(records.values(), key=lambda r: (r["folder"], r["path"])))
        self._dirty = False


def write_json_gz(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
            handle.write(json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- packs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackInfo:
    name: str
    source: str
    commit: str
    built_at: str
    converter_version: str
    path: Path

    @property
    def version(self) -> str:
        return f"{self.name}@{self.commit[:12]}"


def _folder_of(rel: str) -> str | None:
    head = rel.split("/", 1)[0]
    return head if head in PACK_FOLDERS else None


def iter_release_folder(root: Path) -> Iterator[tuple[str, str, str]]:
    """(relative path, folder, text) of every rule under a SigmaHQ checkout/release folder."""
    for folder in PACK_FOLDERS:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.yml")):
            rel = path.relative_to(root).as_posix()
            yield rel, folder, path.read_text(encoding="utf-8", errors="replace")


def build_pack(
    source_root: Path,
    out_dir: Path,
    *,
    commit: str,
    name: str = "sigmahq",
    source: str = "github.com/SigmaHQ/sigma",
    licence: Path | None = None,
    cache: ConversionCache | None = None,
) -> tuple[PackInfo, list[PackRule]]:
    """Convert a SigmaHQ release folder into a pack folder (rules.json.gz, compiled.json.gz, pack.json)."""
    files = list(iter_release_folder(source_root))
    if not files:
        raise SigmaConversionError(f"{source_root}: no rules under {', '.join(PACK_FOLDERS)}")
    cache = cache or ConversionCache(None)
    rules = [cache.convert(rel, folder, text) for rel, folder, text in files]
    shipped = {
        rel: text for (rel, _, text), rule in zip(files, rules, strict=True) if rule.error_kind != UNSUPPORTED
    }
    write_json_gz(out_dir / "rules.json.gz", shipped)
    write_json_gz(out_dir / "compiled.json.gz", [r.to_json() for r in rules])
    licence = licence or next(
        (p for p in (source_root / "LICENSE-SIGMA.md", source_root / "LICENSE") if p.is_file()), None
    )
    if licence is not None:
        (out_dir / "LICENSE-SIGMA.md").write_text(licence.read_text(encoding="utf-8"), encoding="utf-8")
    kinds = Counter(r.error_kind or "converted" for r in rules)
    manifest = {
        "name": name,
        "source": source,
        "commit": commit,
        "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "converter_version": CONVERTER_VERSION,
        "rules": len(rules),
        "counts": dict(sorted(kinds.items())),
        "licence": "Detection Rule License (DRL) 1.1; rule authors are credited in each rule's author field",
    }
    (out_dir / "pack.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return read_info(out_dir), rules


def read_info(pack_dir: Path) -> PackInfo:
    try:
        manifest = json.loads((pack_dir / "pack.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SigmaConversionError(f"{pack_dir}: not a rule pack ({exc})") from exc
    return PackInfo(
        name=str(manifest.get("name", "?")),
        source=str(manifest.get("source", "")),
        commit=str(manifest.get("commit", "")),
        built_at=str(manifest.get("built_at", "")),
        converter_version=str(manifest.get("converter_version", "")),
        path=pack_dir,
    )


def read_pack_rules(pack_dir: Path) -> list[PackRule]:
    """The pack's converted records; a converter-version mismatch re-converts from rules.json.gz."""
    info = read_info(pack_dir)
    if info.converter_version == CONVERTER_VERSION and (pack_dir / "compiled.json.gz").is_file():
        with gzip.open(pack_dir / "compiled.json.gz", "rt", encoding="utf-8") as handle:
            return [PackRule.from_json(r) for r in json.load(handle)]
    return [convert_text(rel, folder, text) for rel, folder, text in iter_pack_texts(pack_dir)]


def _pack_texts(pack_dir: Path) -> dict[str, str]:
    with gzip.open(pack_dir / "rules.json.gz", "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def iter_pack_texts(pack_dir: Path) -> Iterator[tuple[str, str, str]]:
    for rel, text in sorted(_pack_texts(pack_dir).items()):
        folder = _folder_of(rel)
        if folder is not None:
            yield rel, folder, text


def rule_text(pack_dir: Path, path: str) -> str | None:
    """The YAML of one shipped rule (rules whose log source is not supported are not shipped)."""
    try:
        return _pack_texts(pack_dir).get(path)
    except (OSError, ValueError):
        return None


def custom_rules(directories: Iterable[Path], cache: ConversionCache) -> list[PackRule]:
    """Rules of custom folders (folder ``custom``), converted through the cache."""
    out: list[PackRule] = []
    for directory in directories:
        for path in sorted(directory.rglob("*.yml")):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                out.append(
                    PackRule(
                        path=str(path), folder=CUSTOM_FOLDER, content_hash="", rule_id=str(path), title="",
                        status="", level="", product="", category="", service="",
                        error_kind=INVALID, error=f"cannot read: {exc}",
                    )
                )  # fmt: skip
                continue
            out.append(cache.convert(str(path), CUSTOM_FOLDER, text))
    return out


# -- selection -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleFilter:
    """Which converted rules run. Overrides (rule id -> enabled) win over the filter."""

    statuses: tuple[str, ...] = DEFAULT_STATUSES
    min_level: str = DEFAULT_MIN_LEVEL
    folders: tuple[str, ...] = DEFAULT_FOLDERS
    overrides: dict[str, bool] = field(default_factory=dict)

    def by_filter(self, rule: PackRule) -> bool:
        level = LEVELS.index(rule.level) if rule.level in LEVELS else LEVELS.index("medium")
        return (
            rule.status in self.statuses
            and level >= LEVELS.index(self.min_level)
            and rule.folder in self.folders
        )

    def enabled(self, rule: PackRule) -> bool:
        if rule.compiled is None:
            return False
        override = self.overrides.get(rule.rule_id)
        return override if override is not None else self.by_filter(rule)


@dataclass
class RuleSet:
    """A pack plus custom rules, with the filter applied: what ``siem rules list`` shows, detection runs."""

    info: PackInfo | None
    rules: list[PackRule]
    rule_filter: RuleFilter

    def enabled(self) -> list[CompiledRule]:
        return [r.compiled for r in self.rules if r.compiled is not None and self.rule_filter.enabled(r)]

    def windows(self) -> list[PackRule]:
        return [r for r in self.rules if r.compiled is not None]

    def failures(self) -> list[PackRule]:
        return [r for r in self.rules if r.error_kind in (FAILED, INVALID)]

    def unsupported(self) -> list[PackRule]:
        return [r for r in self.rules if r.error_kind == UNSUPPORTED]

    def find(self, key: str) -> PackRule | None:
        for rule in self.rules:
            if key in (rule.rule_id, rule.path) or rule.path.endswith("/" + key):
                return rule
        return None


def active_pack_dir(data_dir: Path | None) -> Path:
    """The updated pack in the data directory when there is one, else the shipped pack."""
    if data_dir is not None and (data_dir / "pack.json").is_file():
        return data_dir
    return SHIPPED_PACK


def load_rule_set(
    *,
    pack_dir: Path | None = None,
    custom_dirs: Iterable[Path] = (),
    rule_filter: RuleFilter | None = None,
    cache_path: Path | None = None,
    include_pack: bool = True,
) -> RuleSet:
    """The pack (converted records read from the pack, never re-converted) plus custom folders."""
    rules: list[PackRule] = []
    info: PackInfo | None = None
    if include_pack:
        pack_dir = pack_dir or SHIPPED_PACK
        info = read_info(pack_dir)
        rules.extend(read_pack_rules(pack_dir))
    dirs = list(custom_dirs)
    if dirs:
        cache = ConversionCache(cache_path)
        customs = custom_rules(dirs, cache)
        cache.save(keep=[r.content_hash for r in customs])
        rules.extend(customs)
    return RuleSet(info=info, rules=rules, rule_filter=rule_filter or RuleFilter())
