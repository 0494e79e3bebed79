"""Editorial rules: what an editor may ask of every feed, who it applies to, and when.

A rule is data (id, kind, scope, params, validity window, author, note), checked when it is built so a bad
rule fails with one message that lists the valid choices. `RuleSet` holds the rules of one corpus plus the
version they were published as; it reads and writes a small JSON document so rules can live in version
control. Applying rules to a feed is apply.py; storing versions is store.py.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from newsrec.data.corpus import format_time, parse_time
from newsrec.errors import InputError
from newsrec.types import NewsItem, RuleEffect, User, UserProfile

__all__ = [
    "BLOCK_TARGETS",
    "BOOST_TARGETS",
    "KINDS",
    "MAX_POINTS",
    "PRIORITY_LEVELS",
    "Reader",
    "Rule",
    "RuleEffect",
    "RuleSet",
    "Scope",
    "reader_from",
]

KINDS = ("pin", "block", "boost", "bury", "priority", "quota", "reach")
BLOCK_TARGETS = ("story", "publisher", "keyword", "label")
BOOST_TARGETS = ("category", "publisher", "language", "keyword", "freshness")
PRIORITY_LEVELS = ("must-see", "normal", "low")
SEGMENT_KEYS = ("tag", "reads", "lang")
MAX_POINTS = 20.0  # a boost or bury moves a card by at most this many points of the 0-100 match
MUST_SEE_SLOT = 3  # a must-see story is shown at this slot or higher (a soft pin); several take 3, 4, ...
LOW_POINTS = 10.0  # a "low" priority story loses this many points
MAX_SLOT = 100
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


# --- readers and scopes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """What a scope may look at: persona tags, the categories the reader reads, the reader's language."""

    user_id: str
    tags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # categories of the reader's history, most read first
    language: str = ""  # "en", "zh", or "" (no history)
    read_ids: frozenset[str] = frozenset()  # stories the reader has read (reach plans skip them)


def reader_from(user: User | None, profile: UserProfile, news: Mapping[str, NewsItem] | None = None) -> Reader:
    """The Reader of a corpus user (or a guest, `user` None) and the profile built from the same history;
    `news` (the corpus's stories) lets the language come from the history when no *-reader tag says it."""
    categories = tuple(name for name, _ in sorted(profile.categories.items(), key=lambda kv: (-kv[1], kv[0])))
    return Reader(
        user_id=profile.user_id or (user.id if user else ""),
        tags=tuple(sorted(user.tags)) if user else (),
        categories=categories,
        language=_history_language(user, profile, news or {}),
        read_ids=frozenset(profile.read_ids),
    )


def _history_language(user: User | None, profile: UserProfile, news: Mapping[str, NewsItem]) -> str:
    """The reader's language: a "zh-reader"/"en-reader" tag when there is exactly one, else the language of most
    of the history's stories (ties: alphabetical), "" without either."""
    tags = [tag[: -len("-reader")] for tag in (user.tags if user else []) if tag.endswith("-reader")]
    if len(tags) == 1:
        return tags[0]
    counts: dict[str, int] = {}
    for news_id in sorted(profile.read_ids):
        language = news[news_id].language if news_id in news else ""
        if language:
            counts[language] = counts.get(language, 0) + 1
    return min(counts, key=lambda lang: (-counts[lang], lang)) if counts else ""


@dataclass(frozen=True)
class Scope:
    """Who a rule applies to: everyone, a segment (AND of tag=/reads=/lang= conditions), or listed readers."""

    kind: str = "all"  # "all" | "segment" | "readers"
    conditions: tuple[tuple[str, str], ...] = ()  # segment: (key, value) pairs, sorted
    readers: tuple[str, ...] = ()  # readers: sorted user ids

    @classmethod
    def parse(cls, text: str | None) -> Scope:
        """`all`, `segment:tag=investor,lang=zh`, or `readers:u01,u02` (whitespace ignored)."""
        text = (text or "all").strip()
        if text == "all":
            return cls()
        head, _, body = text.partition(":")
        head = head.strip()
        if head == "segment":
            conditions = []
            for part in filter(None, (p.strip() for p in body.split(","))):
                key, eq, value = part.partition("=")
                key, value = key.strip(), value.strip()
                if not eq or key not in SEGMENT_KEYS or not value:
                    raise InputError(
                        f"bad segment condition {part!r}; use {' | '.join(k + '=VALUE' for k in SEGMENT_KEYS)}, "
                        "joined by ',' (e.g. segment:reads=sports,lang=zh)"
                    )
                conditions.append((key, value))
            if not conditions:
                raise InputError("empty segment; e.g. segment:tag=investor or segment:reads=sports,lang=zh")
            return cls(kind="segment", conditions=tuple(sorted(set(conditions))))
        if head == "readers":
            ids = sorted({p.strip() for p in body.split(",") if p.strip()})
            if not ids:
                raise InputError("empty reader list; e.g. readers:u01,u02")
            return cls(kind="readers", readers=tuple(ids))
        raise InputError(
            f"unknown scope {text!r}; use all, segment:KEY=VALUE[,...] (keys: tag, reads, lang) or readers:ID,..."
        )

    def __str__(self) -> str:
        if self.kind == "segment":
            return "segment:" + ",".join(f"{k}={v}" for k, v in self.conditions)
        if self.kind == "readers":
            return "readers:" + ",".join(self.readers)
        return "all"

    def matches(self, reader: Reader) -> bool:
        if self.kind == "all":
            return True
        if self.kind == "readers":
            return reader.user_id in self.readers
        for key, value in self.conditions:
            if key == "tag" and value not in reader.tags:
                return False
            if key == "reads" and value not in reader.categories:
                return False
            if key == "lang" and reader.language != value:
                return False
        return True


# --- rules ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One editorial rule. `params` by kind (all values JSON):

    - pin: story, slot (1-based)
    - block: target (story | publisher | keyword | label), value
    - boost / bury: target (category | publisher | language | keyword | freshness), value, weight (0-1]:
      the card gains (boost) or loses (bury) weight x 20 points; for freshness, value is a half-life in hours
      and the points fade with the story's age
    - priority: story, level (must-see | normal | low)
    - quota: category or stories (a list), top (n, default: the feed's k), and max or min
    - reach: story, top (k), share (0-1 of the in-scope readers)
    """

    id: str
    kind: str
    scope: Scope = field(default_factory=Scope)
    params: Mapping = field(default_factory=dict)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    author: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        validate(self)

    def active(self, now: datetime) -> bool:
        """Within its validity window at `now` (from inclusive, until exclusive)."""
        if self.valid_from and now < self.valid_from:
            return False
        return not (self.valid_until and now >= self.valid_until)

    @property
    def points(self) -> float:
        """Signed score points of a boost/bury/low priority at full strength (0 for other kinds)."""
        if self.kind in ("boost", "bury"):
            sign = 1.0 if self.kind == "boost" else -1.0
            return sign * float(self.params["weight"]) * MAX_POINTS
        if self.kind == "priority" and self.params["level"] == "low":
            return -LOW_POINTS
        return 0.0

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "scope": str(self.scope),
            "params": {key: self.params[key] for key in sorted(self.params)},
            "valid_from": format_time(self.valid_from),
            "valid_until": format_time(self.valid_until),
            "author": self.author,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, row: Mapping) -> Rule:
        if not isinstance(row, Mapping):
            raise InputError(f"a rule must be a JSON object, got {type(row).__name__}")
        unknown = sorted(set(row) - {"id", "kind", "scope", "params", "valid_from", "valid_until", "author", "note"})
        if unknown:
            raise InputError(
                f"rule {row.get('id')!r}: unknown field(s) {', '.join(unknown)}; "
                "fields: id, kind, scope, params, valid_from, valid_until, author, note"
            )
        params = row.get("params") or {}
        if not isinstance(params, Mapping):
            raise InputError(f"rule {row.get('id')!r}: params must be a JSON object")
        return cls(
            id=str(row.get("id") or ""),
            kind=str(row.get("kind") or ""),
            scope=Scope.parse(row.get("scope") or "all"),
            params=_normalise(str(row.get("kind") or ""), dict(params)),
            valid_from=parse_time(row.get("valid_from")),
            valid_until=parse_time(row.get("valid_until")),
            author=str(row.get("author") or ""),
            note=str(row.get("note") or ""),
        )


def _normalise(kind: str, params: dict) -> dict:
    """JSON numbers as the types the rule uses (slot 2.0 -> 2), so equal rules compare and diff equal."""
    for key in ("slot", "top", "max", "min"):
        if isinstance(params.get(key), float) and params[key].is_integer():
            params[key] = int(params[key])
    if kind == "quota" and isinstance(params.get("stories"), list):
        params["stories"] = sorted({str(s) for s in params["stories"]})
    return params


def _need(rule_id: str, params: Mapping, key: str, kind: type, what: str):
    value = params.get(key)
    if value is None or (kind is str and not str(value).strip()):
        raise InputError(f"rule {rule_id!r}: {rule_kind_help(params, key, what)}")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InputError(f"rule {rule_id!r}: {key} must be a whole number, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise InputError(f"rule {rule_id!r}: {key} must be a number, got {value!r}")
    return value


def rule_kind_help(params: Mapping, key: str, what: str) -> str:
    return f"missing {key} ({what}); got params {dict(params)!r}"


def _allowed(rule_id: str, params: Mapping, allowed: Iterable[str]) -> None:
    extra = sorted(set(params) - set(allowed))
    if extra:
        raise InputError(f"rule {rule_id!r}: unknown param(s) {', '.join(extra)}; valid: {', '.join(sorted(allowed))}")


def validate(rule: Rule) -> None:
    """Raise InputError naming what is wrong and the valid choices."""
    rid, p = rule.id, rule.params
    if not _ID.fullmatch(rid or ""):
        raise InputError(
            f"invalid rule id {rid!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if rule.kind not in KINDS:
        raise InputError(f"rule {rid!r}: unknown kind {rule.kind!r}; valid kinds: {', '.join(KINDS)}")
    if rule.valid_from and rule.valid_until and rule.valid_until <= rule.valid_from:
        raise InputError(f"rule {rid!r}: valid_until must be after valid_from")
    if rule.kind == "pin":
        _allowed(rid, p, ("story", "slot"))
        _need(rid, p, "story", str, "the news id to pin")
        slot = _need(rid, p, "slot", int, "the 1-based slot")
        if not 1 <= slot <= MAX_SLOT:
            raise InputError(f"rule {rid!r}: slot must be 1..{MAX_SLOT}, got {slot}")
    elif rule.kind == "block":
        _allowed(rid, p, ("target", "value"))
        target = _need(rid, p, "target", str, " | ".join(BLOCK_TARGETS))
        if target not in BLOCK_TARGETS:
            raise InputError(f"rule {rid!r}: cannot block by {target!r}; valid targets: {', '.join(BLOCK_TARGETS)}")
        _need(rid, p, "value", str, f"the {target} to block")
    elif rule.kind in ("boost", "bury"):
        _allowed(rid, p, ("target", "value", "weight"))
        target = _need(rid, p, "target", str, " | ".join(BOOST_TARGETS))
        if target not in BOOST_TARGETS:
            raise InputError(
                f"rule {rid!r}: cannot {rule.kind} by {target!r}; valid targets: {', '.join(BOOST_TARGETS)}"
            )
        if target == "freshness":
            hours = _need(rid, p, "value", float, "half-life in hours")
            if hours <= 0:
                raise InputError(f"rule {rid!r}: the freshness half-life must be above 0 hours, got {hours}")
        else:
            _need(rid, p, "value", str, f"the {target}")
        weight = _need(rid, p, "weight", float, f"0-1; 1 = {MAX_POINTS:g} points")
        if not 0 < weight <= 1:
            raise InputError(f"rule {rid!r}: weight must be in (0, 1] (1 = {MAX_POINTS:g} points), got {weight}")
    elif rule.kind == "priority":
        _allowed(rid, p, ("story", "level"))
        _need(rid, p, "story", str, "the news id")
        level = _need(rid, p, "level", str, " | ".join(PRIORITY_LEVELS))
        if level not in PRIORITY_LEVELS:
            raise InputError(f"rule {rid!r}: unknown priority {level!r}; valid levels: {', '.join(PRIORITY_LEVELS)}")
    elif rule.kind == "quota":
        _allowed(rid, p, ("category", "stories", "top", "max", "min"))
        if ("category" in p) == ("stories" in p):
            raise InputError(
                f"rule {rid!r}: a quota names either a category or a list of stories (params category or stories)"
            )
        if "stories" in p and (not isinstance(p["stories"], list) or not p["stories"]):
            raise InputError(f"rule {rid!r}: stories must be a non-empty list of news ids")
        if "category" in p:
            _need(rid, p, "category", str, "the category")
        if ("max" in p) == ("min" in p):
            raise InputError(f"rule {rid!r}: a quota has either max (at most) or min (at least)")
        bound = _need(rid, p, "max" if "max" in p else "min", int, "a count")
        if bound < 0 or ("min" in p and bound < 1):
            raise InputError(f"rule {rid!r}: {'max must be >= 0' if 'max' in p else 'min must be >= 1'}, got {bound}")
        if "stories" in p and "max" in p:
            raise InputError(f"rule {rid!r}: a story-list quota takes min; to keep stories out, block them")
        if "top" in p and not 1 <= _need(rid, p, "top", int, "n") <= MAX_SLOT:
            raise InputError(f"rule {rid!r}: top must be 1..{MAX_SLOT}")
    elif rule.kind == "reach":
        _allowed(rid, p, ("story", "top", "share"))
        _need(rid, p, "story", str, "the news id")
        top = _need(rid, p, "top", int, "the top k it must reach")
        share = _need(rid, p, "share", float, "0-1 of the in-scope readers")
        if not 1 <= top <= MAX_SLOT or not 0 < share <= 1:
            raise InputError(f"rule {rid!r}: top must be 1..{MAX_SLOT} and share in (0, 1], got {top}, {share}")


# --- rule sets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSet:
    """The rules of one corpus, sorted by id, and which published version they are (0 = never published)."""

    rules: tuple[Rule, ...] = ()
    version: int = 0
    author: str = ""
    published_at: datetime | None = None
    note: str = ""
    based_on: int = 0  # a draft: the live version it was edited from (publish checks it)

    def __post_init__(self) -> None:
        ids = [rule.id for rule in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise InputError(f"duplicate rule id(s): {', '.join(duplicates)}")
        object.__setattr__(self, "rules", tuple(sorted(self.rules, key=lambda r: r.id)))

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise InputError(f"no rule {rule_id!r}; rules: {', '.join(r.id for r in self.rules) or 'none'}")

    def with_rule(self, rule: Rule) -> RuleSet:
        """This set with `rule` added, or replacing the rule of the same id."""
        return replace(self, rules=tuple([r for r in self.rules if r.id != rule.id] + [rule]))

    def without(self, rule_id: str) -> RuleSet:
        self.rule(rule_id)
        return replace(self, rules=tuple(r for r in self.rules if r.id != rule_id))

    def active(self, now: datetime) -> list[Rule]:
        return [rule for rule in self.rules if rule.active(now)]

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "based_on": self.based_on,
            "author": self.author,
            "published_at": format_time(self.published_at),
            "note": self.note,
            "rules": [rule.to_dict() for rule in self.rules],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data) -> RuleSet:
        if isinstance(data, list):  # a bare list of rules is accepted too
            data = {"rules": data}
        if not isinstance(data, Mapping):
            raise InputError("a rule set is a JSON object with a 'rules' list (or a bare list of rules)")
        rules = data.get("rules") or []
        if not isinstance(rules, list):
            raise InputError("'rules' must be a list of rule objects")
        return cls(
            rules=tuple(Rule.from_dict(row) for row in rules),
            version=int(data.get("version") or 0),
            based_on=int(data.get("based_on") or 0),
            author=str(data.get("author") or ""),
            published_at=parse_time(data.get("published_at")),
            note=str(data.get("note") or ""),
        )

    @classmethod
    def from_json(cls, text: str, source: str = "rule set") -> RuleSet:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"{source}: not valid JSON ({error.msg} at line {error.lineno})") from None
        return cls.from_dict(data)


def rules_of(rules: Sequence[Rule], kind: str) -> list[Rule]:
    return [rule for rule in rules if rule.kind == kind]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
