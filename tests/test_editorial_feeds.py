"""Rules where feeds are made besides `recommend`: batch scoring and offline evaluation."""

from __future__ import annotations

import pandas as pd

from newsrec.batch import batch_rerank, iter_scores
from newsrec.editorial import Rule, RuleSet, RuleStore
from newsrec.editorial.scoring import RuledScorer
from newsrec.types import HistoryEntry, Impression, NewsItem, User
from tests.test_batch import EMBEDDER, all_pairs, settings  # noqa: F401 - the fixture

BLOCK_CARS_FOR_U1 = {
    "id": "B1",
    "kind": "block",
    "scope": "readers:u1",
    "params": {"target": "keyword", "value": "battery"},
}


def test_batch_rerank_skips_pairs_blocked_for_their_reader(settings, tmp_path):  # noqa: F811
    plain = batch_rerank(all_pairs(tmp_path), tmp_path / "plain", settings, embedder=EMBEDDER, rules="live")
    assert plain.blocked == 0  # no rule set: every known pair is scored
    RuleStore(settings.home, "batch").publish("ana", 0, ruleset=RuleSet(rules=(Rule.from_dict(BLOCK_CARS_FOR_U1),)))
    stats = batch_rerank(all_pairs(tmp_path), tmp_path / "ruled", settings, embedder=EMBEDDER, rules="live")
    rows = pd.concat(iter_scores(tmp_path / "ruled"))
    u1 = rows[rows["user"] == "u1"]
    assert stats.blocked == 3 and not u1["news_id"].isin(["n0", "n4", "n8"]).any()  # battery stories, u1 only
    assert (
        len(rows) == stats.scored_pairs == plain.scored_pairs - 3
        and rows[rows["query"] == "battery"]["news_id"].nunique() == 12
    )
    none = batch_rerank(all_pairs(tmp_path), tmp_path / "none", settings, embedder=EMBEDDER, rules="none")
    assert none.blocked == 0 and none.scored_pairs == plain.scored_pairs


class _Fixed:
    name = "fixed"

    def score(self, impression: Impression) -> list[float]:
        return [float(len(impression.candidates) - i) for i in range(len(impression.candidates))]


def test_evaluation_scores_follow_the_rules():
    news = {f"n{i}": NewsItem(f"n{i}", f"story {i}", category="sports" if i < 4 else "world") for i in range(8)}
    users = {"u1": User("u1", tags=["fan"], history=[HistoryEntry("n7")])}
    impression = Impression("i1", "u1", ["n7"], [f"n{i}" for i in range(7)], [0] * 7)
    ruleset = RuleSet(
        rules=(
            Rule.from_dict({"id": "Q1", "kind": "quota", "params": {"category": "sports", "max": 2, "top": 3}}),
            Rule.from_dict(
                {"id": "B1", "kind": "block", "scope": "segment:tag=fan", "params": {"target": "story", "value": "n1"}}
            ),
        )
    )
    from datetime import datetime, timezone

    scorer = RuledScorer(_Fixed(), ruleset, news, users, datetime(2026, 12, 6, tzinfo=timezone.utc))
    scores = scorer.score(impression)
    order = [impression.candidates[i] for i in sorted(range(7), key=lambda i: -scores[i])]
    assert order[:3] == ["n0", "n2", "n4"] and order[-1] == "n1"  # capped in the top 3, blocked last
    other = Impression("i2", "u9", [], impression.candidates, [0] * 7)  # not a fan: only the quota acts
    assert [other.candidates[i] for i in sorted(range(7), key=lambda i: -scorer.score(other)[i])][:3] == [
        "n0",
        "n1",
        "n4",
    ]
    assert RuledScorer(_Fixed(), RuleSet(), news, users, datetime(2026, 12, 6, tzinfo=timezone.utc)).score(
        impression
    ) == _Fixed().score(impression)
    assert isinstance(pd.Series(scores).sum(), float)


def test_cards_say_what_the_rules_did_in_both_languages():
    from newsrec.editorial.apply import EDITOR_PART, _explained
    from newsrec.types import Recommendation, RecommendResult, RuleEffect
    from newsrec.ui import cards

    card = Recommendation(
        item=NewsItem("n1", "Story one", category="world"),
        score=0.56,
        rank=1,
        retrieval_score=0.4,
        retrieval_rank=3,
        contributions={"interest": 0.5, EDITOR_PART: 0.06},
        rules=[RuleEffect("U1", "boost", "+6 points", 6.0, action="points")],
    )
    card = _explained(card)
    result = RecommendResult("lite", "u1", "", [card], [card], {}, blocked=2)
    english = cards.results_html(result, cards.no_images, "en")
    chinese = cards.results_html(result, cards.no_images, "zh")
    assert "Editors&#x27; rule U1: +6 points." in english or "Editors' rule U1: +6 points." in english
    assert "编辑规则 U1：+6 分。" in chinese and "编辑规则屏蔽了 2 条新闻。" in chinese
    assert "2 stories blocked by editorial rules." in english
    assert "editors&#x27; rules" in english or "editors' rules" in english  # the part in the score breakdown
    plain = cards.results_html(RecommendResult("lite", "u1", "", [card], [card], {}), cards.no_images, "en")
    assert "blocked by editorial rules" not in plain
