"""Rules inside offline evaluation: a scorer wrapper that reorders each logged impression as the rules would.

Evaluation scores a fixed candidate list per impression (newsrec/evaluation/offline.py). With rules, the
candidates are ranked by the wrapped scorer, `apply_rules` edits that ranking for the impression's reader
(blocks drop to the bottom, pins and quotas move stories), and the scores handed back are the edited ranks
(higher = shown first), so every metric measures the feed the reader would have seen. Stories the rules would
fetch from outside the impression are not part of it and are left out. Reach placements need a panel and are
not applied here. Readers with no acting rule keep the scorer's own scores, unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from newsrec.editorial.apply import apply_rules
from newsrec.editorial.rules import Reader, RuleSet
from newsrec.types import Impression, NewsItem, Recommendation, User


def impression_reader(impression: Impression, users: Mapping[str, User], news: Mapping[str, NewsItem]) -> Reader:
    """The reader of a logged impression: tags from the corpus user (when known), categories and language from
    the history the impression logged."""
    counts: dict[str, int] = {}
    languages: dict[str, int] = {}
    for news_id in impression.history:
        item = news.get(news_id)
        if item is not None:
            if item.category:
                counts[item.category] = counts.get(item.category, 0) + 1
            if item.language:
                languages[item.language] = languages.get(item.language, 0) + 1
    user = users.get(impression.user_id)
    return Reader(
        user_id=impression.user_id,
        tags=tuple(sorted(user.tags)) if user else (),
        categories=tuple(sorted(counts, key=lambda c: (-counts[c], c))),
        language=min(languages, key=lambda lang: (-languages[lang], lang)) if languages else "",
        read_ids=frozenset(impression.history),
    )


class RuledScorer:
    """`scorer` with the rule set applied to each impression's ranking (see the module docstring)."""

    def __init__(
        self,
        scorer,
        ruleset: RuleSet,
        news: Mapping[str, NewsItem],
        users: Mapping[str, User],
        now: datetime,
        fresh_now: datetime | None = None,
    ):
        self.scorer, self.ruleset, self.news, self.users = scorer, ruleset, news, users
        self.now, self.fresh_now = now, fresh_now
        self.name = scorer.name
        if hasattr(scorer, "shared"):
            self.shared = scorer.shared

    def score(self, impression: Impression) -> list[float]:
        scores = [float(s) for s in self.scorer.score(impression)]
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        ranked = [
            Recommendation(
                item=self.news.get(impression.candidates[i]) or NewsItem(id=impression.candidates[i], title=""),
                score=scores[i],
                rank=rank,
                retrieval_score=0.0,
                retrieval_rank=rank,
            )
            for rank, i in enumerate(order, 1)
        ]
        reader = impression_reader(impression, self.users, self.news)
        feed = apply_rules(
            self.ruleset, ranked, reader=reader, news=self.news, k=len(ranked), now=self.now, fresh_now=self.fresh_now
        )
        if len(feed.items) == len(ranked) and all(a is b for a, b in zip(feed.items, ranked, strict=True)):
            return scores
        position = {}
        for rank, rec in enumerate(feed.items):
            position.setdefault(rec.item.id, rank)
        n = len(scores)
        edited = [0.0] * n
        left_out = [i for i in order if impression.candidates[i] not in position]  # blocked: last, in their order
        for i, news_id in enumerate(impression.candidates):
            if news_id in position:
                edited[i] = float(2 * n - position[news_id])
        for rank, i in enumerate(left_out):
            edited[i] = float(n - rank - 1) - n
        return edited
