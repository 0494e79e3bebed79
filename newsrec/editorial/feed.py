"""A feed with rules: ask the recommender for a deeper list, then apply the rule set (the glue every caller uses).

`EditorialFeeds(recommender, which="live")` wraps a Recommender. `recommend()` takes the same arguments as
`Recommender.recommend` and, when a rule set is in force, asks for a deep list (DEPTH stories, never more
than the recall size, so the stories and their order above k are exactly those of a plain call) and hands it to
`apply_rules`. With no rule set it is a plain call, so feeds without rules stay byte-identical.

Reach targets need every reader's list. For a single call, the plan for the rule set is computed once over the
corpus's readers (all of them up to REACH_PANEL, else a fixed sample by hash of the id) and kept: for a
published version on disk under editorial/<corpus>/reach/<version>.json, for a draft in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from newsrec.editorial.apply import EditedFeed, ReachPlan, apply_rules, blocks, plan_reach
from newsrec.editorial.panel import ranked_lists
from newsrec.editorial.rules import Reader, RuleSet, reader_from
from newsrec.editorial.store import RuleStore, labelled_news, load_rules
from newsrec.pipeline import GUEST, Recommender
from newsrec.types import RecommendResult, UserProfile

log = logging.getLogger(__name__)

DEPTH = 50  # stories asked of the second stage when rules apply: room to backfill blocks and fill quotas
REACH_PANEL = 1000  # readers a single-call reach plan is computed over


class EditorialFeeds:
    """Feeds of one recommender under one rule set ("live", "draft", "none", or a RuleSet given directly)."""

    def __init__(
        self,
        recommender: Recommender,
        which: str = "live",
        ruleset: RuleSet | None = None,
        depth: int = DEPTH,
    ):
        self.recommender = recommender
        self.which = which if ruleset is None else "given"
        home, corpus = recommender.settings.home, recommender.corpus.name
        self.store = RuleStore(home, corpus)
        self.ruleset = ruleset if ruleset is not None else load_rules(home, corpus, which)
        self.depth = depth
        self._stamp = self._files_stamp()
        self._load_labels()

    def _load_labels(self) -> None:
        overlay = self.store.labels() if self.ruleset is not None else {}
        self.news = labelled_news(self.recommender.corpus.news, overlay) if overlay else self.recommender.corpus.news
        self._plan: ReachPlan | None = None

    def _files_stamp(self) -> tuple:
        stamp = []
        for name in ("LIVE", "draft.json", "labels.json"):
            try:
                info = (self.store.root / name).stat()
                stamp.append((info.st_mtime_ns, info.st_size))
            except FileNotFoundError:
                stamp.append(None)
        return tuple(stamp)

    def refresh(self) -> None:
        """Reload the rule set and labels when another process published, edited the draft or set labels (three
        stat calls per feed), so a running dashboard follows `rules publish` without a restart."""
        if self.which not in ("live", "draft"):
            return
        stamp = self._files_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self.ruleset = load_rules(self.store.root.parent.parent, self.store.corpus, self.which)
            self._load_labels()

    def reader(self, user_id: str, profile: UserProfile | None = None) -> Reader:
        rec = self.recommender
        user = rec.corpus.users.get(user_id)
        return reader_from(user, profile or rec.profile(user_id), rec.corpus.news)

    def recommend(self, user_id: str, *, now: datetime | None = None, **kwargs) -> RecommendResult:
        """`Recommender.recommend` with the rule set applied to the reranked list (see the module docstring)."""
        rec = self.recommender
        self.refresh()
        if self.ruleset is None:
            return rec.recommend(user_id, **kwargs)
        k = kwargs.pop("k", None) or rec.settings.k
        candidates = kwargs.get("candidates") or rec.settings.candidates
        deep = max(k, min(self.depth, candidates))
        result = rec.recommend(user_id, k=deep, **kwargs)
        tick = time.perf_counter()
        now = now or datetime.now(timezone.utc)
        feed = self.apply(user_id, result, k=k, now=now, profile=kwargs.get("profile"))
        if len(feed.items) < k and len(result.reranked) == deep < candidates:  # blocks/quotas ate the list: go deeper
            result = rec.recommend(user_id, k=candidates, **kwargs)
            feed = self.apply(user_id, result, k=k, now=now, profile=kwargs.get("profile"))
        result.reranked = feed.items
        result.retrieval = result.retrieval[:k]
        result.blocked, result.rule_notices = feed.blocked, list(feed.notices)
        result.timings_ms["rules"] = round((time.perf_counter() - tick) * 1000, 2)
        result.timings_ms["total"] = round(result.timings_ms["total"] + result.timings_ms["rules"], 2)
        return result

    def apply(
        self, user_id: str, result: RecommendResult, *, k: int, now: datetime, profile: UserProfile | None = None
    ) -> EditedFeed:
        plan = self.reach_plan(now) if any(r.kind == "reach" for r in self.ruleset.rules) else None
        return apply_rules(
            self.ruleset,
            result.reranked,
            reader=self.reader(user_id, profile),
            news=self.news,
            k=k,
            now=now,
            reach_plan=plan,
            fresh_now=self.recommender.now,
        )

    def blocked(self, user_id: str, news_ids: list[str], now: datetime | None = None) -> list[bool]:
        """For each story, whether a block rule in force keeps it from this reader (batch scoring skips those)."""
        if self.ruleset is None:
            return [False] * len(news_ids)
        now = now or datetime.now(timezone.utc)
        reader = self.reader(user_id) if user_id else Reader("")
        rules = [r for r in self.ruleset.active(now) if r.kind == "block" and r.scope.matches(reader)]
        return [news_id in self.news and any(blocks(r, self.news[news_id]) for r in rules) for news_id in news_ids]

    # --- reach across the corpus's readers ------------------------------------------------------

    def panel_ids(self) -> list[str]:
        ids = sorted(self.recommender.corpus.users) or [GUEST]
        if len(ids) <= REACH_PANEL:
            return ids
        return sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())[:REACH_PANEL]

    def _plan_path(self) -> Path | None:
        if self.which == "live" and self.ruleset is not None and self.ruleset.version:
            return self.store.root / "reach" / f"{self.ruleset.version:06d}.json"
        return None

    def reach_plan(self, now: datetime) -> ReachPlan:
        if self._plan is not None:
            return self._plan
        path = self._plan_path()
        if path is not None and path.is_file():
            try:
                self._plan = ReachPlan.from_dict(json.loads(path.read_text(encoding="utf-8")))
                return self._plan
            except (json.JSONDecodeError, KeyError, TypeError):
                log.warning("reach plan %s is unreadable; computing it again", path)
        rec = self.recommender
        k = max((r.params["top"] for r in self.ruleset.rules if r.kind == "reach"), default=rec.settings.k)
        ids, depth = self.panel_ids(), max(k, min(self.depth, rec.settings.candidates))
        if ids == [GUEST]:
            ranked = {GUEST: rec.recommend(GUEST, k=depth).reranked}
        else:  # the batched panel path: ~5x less CPU than one recommend per reader (docs/audit.md)
            ranked = ranked_lists(rec, ids, depth=depth)
        readers = {user_id: self.reader(user_id) for user_id in ids}
        self._plan = plan_reach(self.ruleset, ranked, readers, k=k, now=now)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(self._plan.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        return self._plan
