"""中文 where the dashboard still showed English: the no-match notice, subcategory chips, the category
filter's options, the A/B verdicts (no internal metric names) and scorer names in the metrics table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from newsrec.evaluation import ab
from newsrec.types import NewsItem, Recommendation, RecommendResult
from newsrec.ui import cards
from newsrec.ui.evaluation_tab import metrics_view, verdict_lines


def _rec(news_id: str, **fields) -> Recommendation:
    item = NewsItem(id=news_id, title=f"story {news_id}", **fields)
    return Recommendation(item=item, score=0.5, rank=1, retrieval_score=0.3, retrieval_rank=1, explanation="")


def test_no_match_notice_in_chinese_keeps_other_notices():
    fallback = "The reranker server (http://x) is unavailable (timeout); this list is ranked by the lite reranker."
    result = RecommendResult("lite", "u07", "zxqv blorp", [_rec("a")], [_rec("a")], {})
    result.query_matched = False
    result.notice = f"Nothing matches “zxqv blorp”; showing your For-you feed instead. {fallback}"
    html = cards.results_html(result, cards.no_images, lang="zh")
    notice = html.split('<div id="notice"', 1)[1].split("</div>", 1)[0]
    assert "没有与“zxqv blorp”相符的新闻" in notice and "Nothing matches" not in notice
    assert "lite reranker" in notice  # another part of the notice is kept, not dropped
    english = cards.results_html(result, cards.no_images, lang="en")
    assert "Nothing matches “zxqv blorp”" in english


def test_subcategory_chip_in_chinese():
    card = cards.news_card(_rec("a", category="finance", subcategory="agriculture"), cards.no_images, 10, lang="zh")
    assert "财经 / 农业" in card and "agriculture" not in card
    card_en = cards.news_card(_rec("a", category="finance", subcategory="agriculture"), cards.no_images, 10)
    assert "finance / agriculture" in card_en
    unknown = cards.news_card(_rec("a", category="finance", subcategory="my-desk"), cards.no_images, 10, lang="zh")
    assert "财经 / my-desk" in unknown


def test_category_filter_options_follow_the_language():
    from newsrec.ui.state import Dashboard

    class Corpus:
        news = {"a": NewsItem("a", "t", category="sports"), "b": NewsItem("b", "t", category="finance")}

    class Rec:
        corpus = Corpus()

    dash = Dashboard.__new__(Dashboard)
    dash.rec = Rec()
    assert dash.category_options("zh") == [("财经", "finance"), ("体育", "sports")]
    assert dash.category_options("en") == [("finance", "finance"), ("sports", "sports")]


@pytest.fixture
def comparisons() -> ab.ABResult:
    rng = np.random.default_rng(0)
    control, treatment = rng.normal(1.0, 0.2, 200), rng.normal(1.3, 0.2, 200)
    significant = ab.compare(control, treatment, "clicks_per_user", names=("A", "B"), n_boot=200, n_perm=200)
    same = ab.compare(control, control + 0.001, "dwell_per_user", names=("A", "B"), n_boot=200, n_perm=200)
    result = ab.ABResult.__new__(ab.ABResult)
    result.comparisons, result.notes = [significant, same], []
    return result


def test_ab_verdicts_in_chinese_without_internal_names(comparisons):
    zh = verdict_lines(comparisons, "zh")
    assert "人均点击" in zh and "人均阅读时长" in zh and "无显著差异" in zh
    en = verdict_lines(comparisons, "en")
    assert "clicks per user" in en and "no significant difference in dwell per user" in en
    for text in (zh, en):
        assert "clicks_per_user" not in text and "dwell_per_user" not in text
    assert zh.count("\n- ") == 1 and zh.startswith("- **")  # one bullet each, the significant one in bold


def test_metrics_table_names_scorers_in_chinese():
    class Report:
        k = 10
        summary = pd.DataFrame(
            [
                {"scorer": s, "impressions": 5, "auc": 0.5, "mrr": 0.4, "ndcg@5": 0.3, "ndcg@10": 0.2,
                 "diversity": 0.1, "novelty": 0.2, "calibration": 0.3, "coverage": 0.4, "seconds": 1.0}
                for s in ("random", "popularity", "rerank")
            ]
        )  # fmt: skip

    table = metrics_view(Report(), "zh")
    assert list(table.iloc[:, 0]) == ["随机", "热度", "重排"]
    assert "评分器" in table.columns and "覆盖率@10" in table.columns
