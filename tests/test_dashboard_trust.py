"""Issue 13 without a browser: deep links, feedback direction, visible judgments, one legible score,
reasons in the page's language, notices, honest system facts, charts and tables that read alone."""

from __future__ import annotations

import csv
import re

import pandas as pd
import plotly.io
import pytest
from test_ui import hand_made_result, make_dashboard, rec, tiny_corpus

from newsrec.types import Reason
from newsrec.ui import cards, charts, deeplink, reasons, scores
from newsrec.ui.feedback import closeness, similar_ids
from newsrec.ui.i18n import LABELS, t
from newsrec.ui.state import Controls

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


@pytest.fixture
def corpus_settings(newsrec_home):
    return tiny_corpus()


# --- deep links ------------------------------------------------------------------------------------


def test_deep_link_round_trip_and_bad_values_fall_back():
    defaults = Controls(k=10, candidates=100, instruction="judge")
    state = deeplink.LinkState("u07", "apple harvest", "zh", Controls(5, 50, 0.25, 7, ["world", "tech"], "judge"))
    query = deeplink.to_query(state, defaults)
    assert query.startswith("?user=u07&q=apple+harvest&lang=zh&k=5&candidates=50&diversity=0.25&freshness=7")
    params = dict(re.findall(r"[?&](\w+)=([^&]*)", query))
    assert params["cat"] == "tech"  # repeated key; a plain dict keeps the last one
    from starlette.datastructures import QueryParams

    back = deeplink.parse(QueryParams(query[1:]), defaults, users=["u07"], categories=["world", "tech"])
    assert back == state
    bad = deeplink.parse({"user": "nobody", "k": "999", "candidates": "x", "lang": "fr", "diversity": "nan"}, defaults)
    assert bad.user == "nobody"  # no list of readers given: kept
    strict = deeplink.parse({"user": "nobody", "k": "999", "candidates": "x", "lang": "fr"}, defaults, users=["u07"])
    assert (strict.user, strict.controls.k, strict.controls.candidates, strict.lang) == ("", 10, 100, "en")
    # out-of-range numbers fall back to the defaults (as the docs say), they are not clamped to the range
    far = deeplink.parse({"k": "0", "candidates": "5000", "diversity": "2", "freshness": "-1"}, defaults)
    assert (far.controls.k, far.controls.candidates, far.controls.diversity, far.controls.half_life_days) == (
        10,
        100,
        0.0,
        0.0,
    )
    assert deeplink.to_query(deeplink.LinkState(controls=defaults), defaults) == "?"


def test_view_carries_its_deep_link_and_a_missing_reader_is_no_error(corpus_settings, fake_embedder):
    dash = make_dashboard(corpus_settings, fake_embedder)
    session, _ = dash.select_user("fan")
    session, view = dash.run(session, "NBA game", Controls(k=5, candidates=20))
    assert 'data-link="?user=fan&amp;q=NBA+game&amp;k=5&amp;candidates=20"' in view.results
    # the race: a run that reaches the server before the session knows its reader uses the picker's value
    session, view = dash.run(type(session)(), "NBA game", Controls(k=5, candidates=20), user_id="fan")
    assert session.user_id == "fan" and view.results.count('class="news-card') == 5


# --- feedback means what it says ----------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "story report"])
def test_more_like_this_keeps_the_card_and_brings_in_similar_stories(corpus_settings, fake_embedder, query):
    dash = make_dashboard(corpus_settings, fake_embedder)
    session, _ = dash.select_user("fan")
    session, _ = dash.run(session, query, Controls(k=6, candidates=25))
    shown = [r.item.id for r in session.result.reranked]
    liked = shown[-1]
    before = closeness(dash.rec, session.result, liked)
    session, view = dash.feedback(session, "like", liked, Controls(k=6, candidates=25))
    after_ids = [r.item.id for r in session.result.reranked]
    assert liked in after_ids and after_ids.index(liked) + 1 <= len(shown)  # kept, not removed
    card = view.results.split(f'data-news-id="{liked}"')[0].rsplit("<article", 1)[1]
    assert 'class="news-card liked' in card  # marked liked
    assert closeness(dash.rec, session.result, liked) > before  # more similar stories after a like
    brought = session.last_feedback.changed
    assert all(i in similar_ids(dash.rec, liked) and i not in shown for i in brought)
    title = dash.rec.corpus.news[liked].title
    if brought:
        assert f"Kept “{title}” and brought in {len(brought)} similar" in view.results
        assert "similar to “" in view.results  # the new cards say whom they resemble
    else:
        assert f"Kept “{title}”; no more similar stories" in view.results


def test_not_interested_hides_the_card_and_demotes_similar_stories(corpus_settings, fake_embedder):
    dash = make_dashboard(corpus_settings, fake_embedder)
    session, _ = dash.select_user("fan")
    session, _ = dash.run(session, "", Controls(k=8, candidates=25))
    disliked = session.result.reranked[0].item.id
    before = closeness(dash.rec, session.result, disliked)
    session, view = dash.feedback(session, "dislike", disliked, Controls(k=8, candidates=25))
    assert disliked not in {r.item.id for r in session.result.reranked}
    assert closeness(dash.rec, session.result, disliked) < before  # fewer similar stories after a dislike
    title = dash.rec.corpus.news[disliked].title
    assert f"Hid 1 story; fewer like “{title}”" in view.results


# --- judgments on the cards ------------------------------------------------------------------------------


def test_judgments_show_on_cards_after_a_rerun_and_export_as_csv(corpus_settings, fake_embedder, tmp_path):
    from newsrec.evaluation.judgments import JudgmentStore

    store = JudgmentStore(corpus_settings)
    dash = make_dashboard(corpus_settings, fake_embedder, judgments=store)
    session, _ = dash.select_user("fan")
    session, view = dash.run(session, "NBA game", Controls(k=5, candidates=20))
    assert "data-judgment" not in view.results and 'data-count="0"' in view.judged
    first, second = (r.item.id for r in session.result.reranked[:2])
    dash.judge(session, first, relevant=True)
    dash.judge(session, second, relevant=False)
    fresh = make_dashboard(corpus_settings, fake_embedder, judgments=JudgmentStore(corpus_settings))  # a reload
    again, view = fresh.run(fresh.select_user("fan")[0], "NBA game", Controls(k=5, candidates=20))
    assert f'data-news-id="{first}" data-rank="1" data-judgment="relevant"' in view.results
    assert f'data-news-id="{second}" data-rank="2" data-judgment="not-relevant"' in view.results
    assert "Judged relevant" in view.results and 'data-count="2"' in view.judged
    assert 'data-judgment="relevant"' in view.side_by_side
    with open(fresh.export_judgments(tmp_path / "j.csv"), encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["news_id"], r["relevant"]) for r in rows} >= {(first, "1"), (second, "0")}
    assert rows[0]["title"] and rows[0]["query"] == "NBA game"
    from newsrec.evaluation.judged import load_judgments  # the same verdicts as a test set for evaluate --judgments

    (judged,) = load_judgments(fresh.export_judged_set(tmp_path / "j.jsonl"))
    assert (judged.user, judged.query, judged.kind) == ("fan", "NBA game", "editor")
    assert judged.labels[first] == 1 and judged.labels[second] == 0


# --- one legible score, reasons in words ----------------------------------------------------------------


def test_match_and_its_parts_add_up_to_the_same_integer():
    card = rec("a", 1, 1, score=0.6789)
    card.contributions = {"query": 0.3333, "interest": 0.2222, "fresh": 0.1234, "avoid": 0.0}
    total, split = scores.match(card, 100)
    assert total == 68 and sum(split.values()) == 68 and list(split) == ["query", "interest", "fresh"]
    html = cards.news_card(card, cards.no_images, 10)
    assert 'data-match="68"' in html and 'data-part="query"' in html and "<b>+33</b>" in html
    plain = rec("b", 1, 1, score=0.42)  # no parts: the whole score is the model's
    assert scores.match(plain, 100) == (42, {"model": 42})
    assert scores.scale_for([2.0, -1.0]) == 50  # logits: relative to the largest
    broken = rec("c", 1, 1, score=0.9)
    broken.contributions = {"query": 0.2}  # parts that do not add up show the gap
    assert scores.match(broken, 100)[1] == {"query": 20, "other": 70}
    legend = cards.results_html(hand_made_result(), cards.no_images)
    assert 'class="score-legend"' in legend and "Retrieval:" in legend and "Match (0–100)" in legend


def test_reasons_read_as_sentences_in_both_languages():
    card = rec("a", 1, 1)
    card.reasons = [
        Reason("interest", 0.4, "solid · northstar · semi"),
        Reason("history", 0.2, "Voltaris unveils 400 Wh/kg solid-state cell aimed at long-range electric trucks"),
        Reason("category", 0.1, "autos"),
    ]
    english = reasons.why(card, "en")
    assert english[0] == "Fits the reader's interest in solid, northstar and semi."
    quoted = re.search(r"“(.*)”", english[1]).group(1)
    assert quoted.endswith("…") and quoted[:-1].split()[-1] in card.reasons[1].detail.split()  # a whole word
    chinese = reasons.why(card, "zh")
    assert chinese[0] == "符合读者对solid、northstar和semi的兴趣。" and "常读汽车类新闻" in chinese[2]
    assert all(CJK.search(line) for line in chinese)
    card.reasons = []
    card.explanation = 'interest "x" (0.40)'
    assert reasons.why(card, "en") == ['interest "x" (0.40)'] and CJK.search(reasons.why(card, "zh")[0])
    assert reasons.clip("电池" * 40, 10) == "电池电池…"


def test_notice_and_duplicate_notes():
    result = hand_made_result()
    html = cards.results_html(result, cards.no_images)
    assert '<div id="notice" role="status" hidden></div>' in html
    result.query_matched, result.notice = False, "Nothing matched “zzz”; showing the For-you feed."
    result.reranked[0].duplicate_ids = ["a-zh"]
    marks = cards.Marks(languages={"a-zh": "zh"})
    html = cards.results_html(result, cards.no_images, lang="zh", marks=marks)
    assert '<div id="notice" role="status">Nothing matched “zzz”; showing the For-you feed.</div>' in html
    assert "另有中文版本" in html
    assert '<span class="cat cat-tech">科技</span>' in html and ">体育<" in html  # the taxonomy switches too
    assert "Also in Chinese" in cards.results_html(result, cards.no_images, marks=marks)


# --- honesty ----------------------------------------------------------------------------------------------


def test_system_tab_says_why_and_candidates_below_k_are_raised_visibly(corpus_settings, fake_embedder, monkeypatch):
    import newsrec.config

    dash = make_dashboard(corpus_settings, fake_embedder)
    session, _ = dash.select_user("fan")
    session, view = dash.run(session, "", Controls(k=12, candidates=10))
    assert session.result.candidates >= 12 and len(session.result.reranked) == 12
    assert "Candidates raised from 10 to 12" in view.results
    lite = type("Lite", (), {})()
    lite.mode, lite.settings = "lite", type(corpus_settings)(embedder="auto", reranker="auto")
    lite.embedder = lite.reranker = type("M", (), {"name": "lite-x"})()
    monkeypatch.setattr(newsrec.config, "cuda_available", lambda: False)
    from newsrec.ui.state import mode_reason

    assert mode_reason(lite, "cpu") == "lite: no CUDA device"
    assert mode_reason(lite, "cpu", "zh") == "轻量：没有 CUDA 设备"
    assert "Why this mode" in view.system and "检索" not in view.system
    zh = dash.view(session, "zh").system
    assert "召回" in zh and "重排" in zh and "retrieve" not in zh  # stage names switch too


# --- charts and tables --------------------------------------------------------------------------------------


def test_score_chart_shares_one_scale_and_every_chart_has_axis_titles():
    result = hand_made_result()
    fig = charts.score_distributions(result)
    assert fig.layout.yaxis2.matches == "y"  # one y-scale for both stages
    assert fig.layout.yaxis.title.text  # the boxes are named by their stage below them
    shared = charts.score_distributions(result, "zh")
    assert "分数" in shared.layout.yaxis.title.text and "分数分布" in shared.layout.title.text
    mix = charts.category_mix({"tech": 1.0}, result)
    assert mix.layout.xaxis.title.text and mix.layout.yaxis.title.text


def test_every_chart_keeps_the_white_template():
    """The charts module makes plotly_white the default (assigning it per figure cost ~20 ms a figure)."""
    result = hand_made_result()
    figures = [charts.score_distributions(result), charts.rank_shift(result), charts.category_mix({}, result)]
    white = plotly.io.templates["plotly_white"].layout.to_plotly_json()
    assert all(fig.layout.template.layout.to_plotly_json() == white for fig in figures)


def test_ab_table_columns_are_stable_and_translated():
    from newsrec.ui.evaluation_tab import AB_COLUMNS, ab_table

    empty = ab_table([])
    filled = ab_table([{"coverage": 0.5, "variant": "A", "ctr": 0.1, "config": "retrieval", "users": 3}])
    assert list(empty.columns) == list(filled.columns)  # the filled table keeps the empty one's order
    assert list(filled.columns) == ["variant", "config", "users", "impressions", "CTR", "clicks per user",
                                    "dwell per user (s)", "diversity", "coverage"]  # fmt: skip
    assert len(AB_COLUMNS) == len(filled.columns)
    zh = ab_table([], "zh")
    assert not [c for c in zh.columns if not CJK.search(c) and c not in {"CTR"}]
    assert isinstance(zh, pd.DataFrame)


def test_every_new_label_is_translated():
    for key, entry in LABELS.items():
        if key.startswith(("cat_", "col_", "lang_")) or key in {"title"}:
            continue
        assert CJK.search(entry["zh"]), f"{key}: {entry['zh']!r} has no Chinese"
    assert t("why_query", "zh", detail="x") == "符合搜索“x”。"
