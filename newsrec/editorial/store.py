"""Rule sets of a corpus on disk: one draft, numbered published versions, the live pointer, a labels overlay.

    NEWSREC_HOME/editorial/<corpus>/draft.json        the rules being edited (based_on: the live version it began from)
    NEWSREC_HOME/editorial/<corpus>/versions/000003.json  a published version: rules, author, time, note, diff
    NEWSREC_HOME/editorial/<corpus>/LIVE              "3": the version feeds use (absent: no rules)
    NEWSREC_HOME/editorial/<corpus>/labels.json       news id -> sensitivity labels set by editors
    NEWSREC_HOME/editorial/<corpus>/.lock             the write lock (newsrec.data.store.corpus_lock)

Every write goes to a temp file that is fsynced and then renamed over the old one (os.replace), under the
same OS file lock that corpus writes use, so a crash leaves the old or the new file and two writers never
interleave. Publishing is compare-and-swap: the caller says which live version it expects; if another
editor published in between, it gets a VersionConflict naming both versions, and its draft is kept.
A version is never rewritten; rollback publishes an old version's rules as a new version.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from newsrec.data.corpus import check_corpus_name
from newsrec.data.store import corpus_lock, fsync_dir
from newsrec.editorial.rules import RuleSet
from newsrec.errors import InputError
from newsrec.types import NewsItem

TOKEN_ENV = "NEWSREC_EDITOR_TOKEN"
LIVE, DRAFT, LABELS, VERSIONS = "LIVE", "draft.json", "labels.json", "versions"


class VersionConflict(InputError):
    """Another editor published first: the live version is not the one this publish expected."""


class TokenError(InputError):
    """Publishing needs NEWSREC_EDITOR_TOKEN and the one given is missing or wrong."""


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path} is corrupt (not valid JSON: {error.msg} at line {error.lineno}); "
            "restore it from a published version (`rules show --version N --json`) or delete it"
        ) from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is corrupt (not UTF-8 text); restore it or delete it") from None


def diff(a: RuleSet | None, b: RuleSet) -> dict[str, list]:
    """What changed from `a` to `b`: rule ids added and removed, and for changed rules the fields that differ."""
    old = {rule.id: rule.to_dict() for rule in (a.rules if a else ())}
    new = {rule.id: rule.to_dict() for rule in b.rules}
    changed = []
    for rule_id in sorted(set(old) & set(new)):
        fields = sorted(key for key in new[rule_id] if old[rule_id].get(key) != new[rule_id].get(key))
        if fields:
            changed.append({"id": rule_id, "fields": fields})
    return {"added": sorted(set(new) - set(old)), "removed": sorted(set(old) - set(new)), "changed": changed}


class RuleStore:
    """The editorial files of one corpus (see the module docstring)."""

    def __init__(self, home: Path | str, corpus: str, lock_timeout: float | None = 30.0):
        self.corpus = check_corpus_name(corpus)
        self.root = Path(home) / "editorial" / self.corpus
        self.lock_timeout = lock_timeout

    # --- reading ------------------------------------------------------------------------------

    def _load(self, path: Path) -> RuleSet:
        try:
            return RuleSet.from_dict(_read_json(path))
        except InputError as error:
            if str(error).startswith(str(path)):
                raise
            raise InputError(f"{path}: {error}") from None

    def live_version(self) -> int:
        path = self.root / LIVE
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return 0
        if not text.isdigit():
            raise InputError(f"{path} is corrupt (holds {text[:40]!r}, not a version number); fix or delete it")
        return int(text)

    def live(self) -> RuleSet | None:
        """The published set feeds use, or None when nothing was ever published."""
        version = self.live_version()
        return self.version(version) if version else None

    def version(self, number: int) -> RuleSet:
        path = self.root / VERSIONS / f"{number:06d}.json"
        if not path.is_file():
            known = ", ".join(str(v["version"]) for v in self.versions()) or "none"
            raise InputError(f"corpus {self.corpus!r} has no rule-set version {number}; versions: {known}")
        return self._load(path)

    def draft(self) -> RuleSet:
        """The draft, or a copy of the live set (an empty set when none) when nobody has edited yet."""
        path = self.root / DRAFT
        if path.is_file():
            return self._load(path)
        live = self.live()
        if live is None:
            return RuleSet()
        return replace(live, based_on=live.version, version=0, author="", published_at=None, note="")

    def versions(self) -> list[dict]:
        """Every published version, oldest first: version, author, time, note, rule count and diff."""
        folder = self.root / VERSIONS
        rows = []
        for path in sorted(folder.glob("[0-9]*.json")) if folder.is_dir() else []:
            data = _read_json(path)
            rows.append(
                {
                    "version": int(data.get("version") or 0),
                    "author": data.get("author", ""),
                    "published_at": data.get("published_at"),
                    "note": data.get("note", ""),
                    "rules": len(data.get("rules") or []),
                    "diff": data.get("diff") or {},
                }
            )
        return rows

    def diff(self, a: int, b: int) -> dict[str, list]:
        return diff(self.version(a) if a else None, self.version(b))

    def labels(self) -> dict[str, list[str]]:
        path = self.root / LABELS
        if not path.is_file():
            return {}
        data = _read_json(path)
        if not isinstance(data, dict):
            raise InputError(f"{path} is corrupt (expected an object of news id -> labels)")
        return {str(k): sorted({str(x) for x in v}) for k, v in data.items()}

    # --- writing ------------------------------------------------------------------------------

    def _lock(self):
        return corpus_lock(self.root, self.lock_timeout)

    def save_draft(self, ruleset: RuleSet) -> RuleSet:
        """Replace the draft. A draft with based_on 0 while a live set exists starts from the live version."""
        with self._lock():
            if not ruleset.based_on:
                ruleset = replace(ruleset, based_on=self.live_version())
            ruleset = replace(ruleset, version=0, published_at=None)
            (self.root / VERSIONS).mkdir(parents=True, exist_ok=True)
            _write_atomic(self.root / DRAFT, ruleset.to_json())
        return ruleset

    def publish(
        self,
        author: str,
        expected_version: int | None = None,
        *,
        note: str = "",
        token: str | None = None,
        ruleset: RuleSet | None = None,
    ) -> RuleSet:
        """Publish the draft (or `ruleset`, e.g. a dashboard session's own draft) as the next version.

        `expected_version` (default: the set's based_on) must be the live version now, else VersionConflict; the
        stored draft is left as it was and the rejected set is kept under rejected/, so nothing is lost.
        """
        check_token(token)
        with self._lock():
            candidate = self.draft() if ruleset is None else ruleset
            try:
                return self._publish(candidate, author, expected_version, note, reset_draft=ruleset is None)
            except VersionConflict:
                self._keep_rejected(candidate, author)
                raise

    def _keep_rejected(self, ruleset: RuleSet, author: str) -> None:
        folder = self.root / "rejected"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in author)[:40] or "anonymous"
        _write_atomic(folder / f"{stamp}-{safe}.json", ruleset.to_json())

    def rollback(
        self, version: int, author: str, *, expected_version: int | None = None, token: str | None = None
    ) -> RuleSet:
        """Publish the rules of an earlier `version` as a new version (history is never rewritten)."""
        check_token(token)
        with self._lock():
            old = self.version(version)
            live = self.live_version()
            result = self._publish(
                replace(old, based_on=live),
                author,
                live if expected_version is None else expected_version,
                f"rollback to version {version}",
            )
            _write_atomic(
                self.root / DRAFT, replace(result, version=0, based_on=result.version, published_at=None).to_json()
            )
            return result

    def _publish(
        self, draft: RuleSet, author: str, expected: int | None, note: str, reset_draft: bool = True
    ) -> RuleSet:
        live = self.live_version()
        expected = draft.based_on if expected is None else expected
        if expected != live:
            raise VersionConflict(
                f"version conflict on corpus {self.corpus!r}: you expected live version {expected}, "
                f"but version {live} is live now (someone published meanwhile). Your rules are kept (the draft, and a "
                f"copy in {self.root / 'rejected'}); review `rules show --version {live}`, then publish again with "
                f"--expect {live}."
            )
        if not author.strip():
            raise InputError("publishing needs an author (--author NAME)")
        number = max([row["version"] for row in self.versions()] + [live]) + 1
        published = replace(
            draft,
            version=number,
            based_on=live,
            author=author.strip(),
            note=note or draft.note,
            published_at=datetime.now(timezone.utc).replace(microsecond=0),
        )
        payload = published.to_dict()
        payload["diff"] = diff(self.version(live) if live else None, published)
        folder = self.root / VERSIONS
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(folder / f"{number:06d}.json", json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        _write_atomic(self.root / LIVE, f"{number}\n")
        if reset_draft:  # the stored draft was published: it now starts from the new version
            _write_atomic(
                self.root / DRAFT, replace(published, version=0, based_on=number, published_at=None).to_json()
            )
        return published

    def set_labels(self, news_id: str, labels: list[str]) -> dict[str, list[str]]:
        """Set (replace) the editor labels of one story; an empty list removes the entry."""
        with self._lock():
            current = self.labels()
            cleaned = sorted({label.strip() for label in labels if label.strip()})
            if cleaned:
                current[news_id] = cleaned
            else:
                current.pop(news_id, None)
            _write_atomic(
                self.root / LABELS, json.dumps(dict(sorted(current.items())), ensure_ascii=False, indent=2) + "\n"
            )
            return current


def check_token(given: str | None) -> None:
    """When NEWSREC_EDITOR_TOKEN is set, publishing needs the same token (--token or the environment)."""
    expected = os.environ.get(TOKEN_ENV, "")
    if not expected:
        return
    import hmac

    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise TokenError(
            f"publishing on this installation needs the editor token: pass --token, or set {TOKEN_ENV} "
            "to the token (the one given is " + ("missing" if not given else "wrong") + ")"
        )


def load_rules(home: Path | str, corpus: str, which: str = "live") -> RuleSet | None:
    """The rule set a feed uses: "live" (None when none is published), "draft", or "none" (None)."""
    if which not in ("live", "draft", "none"):
        raise InputError(f"unknown rule set {which!r}; use live, draft or none")
    if which == "none":
        return None
    store = RuleStore(home, corpus)
    return store.live() if which == "live" else store.draft()


def labelled_news(news: Mapping[str, NewsItem], overlay: Mapping[str, list[str]]) -> dict[str, NewsItem]:
    """The corpus's stories with the editors' labels added to the ingested ones (copies; the corpus is untouched)."""
    merged = dict(news)
    for news_id, labels in overlay.items():
        if news_id in merged:
            item = merged[news_id]
            merged[news_id] = replace(item, labels=sorted(set(item.labels) | set(labels)))
    return merged
