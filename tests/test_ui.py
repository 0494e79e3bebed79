"""Dashboard pieces without a browser: card HTML, charts, labels, session handlers and the Blocks tree."""

from __future__ import annotations

import importlib.util
import re
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from newsrec.config import Settings
from newsrec.data.corpus import Corpus, save_corpus
from newsrec.errors import InputError
from newsrec.types import HistoryEntry, ImageRef, NewsItem, Recommendation, RecommendResult, User
from newsrec.ui import cards, charts
from newsrec.ui.i18n import LABELS, lang_code, t
from newsrec.ui.state import Controls, Dashboard, RecommenderLoader, Session

REPO_ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)
XSS = "<img src=x onerror=alert(1)> Stadium lights fail during derby"


def item(news_id: str, title: str = "", category: str = "tech", **fields) -> NewsItem:
    return NewsItem(id=news_id, title=title or f"story {news_id}", category=category, published_at=NOW, **fields)


def rec(news_id: str, rank: int, retrieval_rank: int, score: float = 0.5, **fields) -> Recommendation:
    return Recommendation(
        item=item(news_id, **fields),
        score=score,
        rank=rank,
        retrieval_score=0.3,
        retrieval_rank=retrieval_rank,
        explanation=f"why {news_id}",
    )


def hand_made_result() -> RecommendResult:
    """Retrieval a,b,c,d; reranked c (▲2), a (▼1), x (new, from #7), b (▼2): d drops out."""
    retrieval = [rec(i, r, r, score=1 - r / 10) for r, i in enumerate("abcd", 1)]
    reranked = [rec("c", 1, 3, 0.9), rec("a", 2, 1, 0.8), rec("x", 3, 7, 0.7, category="sports"), rec("b", 4, 2, 0.6)]
    return RecommendResult("lite", "u1", "q", retrieval, reranked, {"retrieve": 5.0, "rerank": 2.0, "total": 8.0})


# --- cards -----------------------------------------------------------------------------------------


def test_corpus_text_is_escaped_everywhere():
    evil = rec("n<1>", 1, 1, title=XSS, body='"><script>alert(2)</script>', source="<b>src</b>")
    evil.explanation = "like “<svg onload=alert(3)>”"
    evil.item.images = [ImageRef("images/a.png", caption="<i>cap</i>")]
    html = cards.news_card(evil, lambda image: "gradio_api/file=/x/a.png", retrieval_k=10)
    for raw in ("<img src=x", "<script>", "<svg", "<b>src", "<i>cap", 'n<1>"'):
        assert raw not in html
    assert "&lt;img src=x onerror=alert(1)&gt; Stadium lights fail during derby" in html
    assert 'data-news-id="n&lt;1&gt;"' in html and 'class="news-card"' in html
    user = User("u", "U", persona="<b>bold</b> reader", history=[HistoryEntry("n<1>")])
    history = cards.history_html(user, {"n<1>": evil.item}, cards.no_images)
    assert "<b>bold" not in history and "&lt;img src=x" in history


def test_rank_move_badges():
    result = hand_made_result()
    badges = {r.item.id: cards.rank_move(r, len(result.retrieval)) for r in result.reranked}
    assert "▲2" in badges["c"] and "▼1" in badges["a"] and "▼2" in badges["b"]
    assert "new · #7" in badges["x"]
    assert "=" in cards.rank_move(rec("z", 2, 2), 10)


def test_results_html_has_cards_scores_and_actions():
    result = hand_made_result()
    html = cards.results_html(result, cards.no_images, judgments=True)
    assert re.findall(r'data-news-id="(\w)" data-rank', html) == ["c", "a", "x", "b"]
    assert 'data-score="0.900000"' in html and "<b>0.900</b>" in html
    for action in ("like", "dislike", "relevant", "not-relevant"):
        assert html.count(f'data-action="{action}"') == 4
    assert "data-action" not in cards.results_html(result, cards.no_images).split("card-actions")[1].split("</div>")[1]
    assert "Pick a reader" in cards.results_html(None, cards.no_images)
    empty = RecommendResult("lite", "u1", "q", [], [], {})
    assert "No recommendations" in cards.results_html(empty, cards.no_images)


def test_history_is_newest_first_and_skips_unknown_items():
    news = {i: item(i, title=f"title {i}") for i in ("h1", "h2", "h3")}
    history = [HistoryEntry(i, NOW - timedelta(days=3 - n)) for n, i in enumerate(("h1", "gone", "h2", "h3"))]
    html = cards.history_html(User("u", "U", "reads tech", history), news, cards.no_images)
    assert re.findall(r'class="history-card" data-news-id="(\w+)"', html) == ["h3", "h2", "h1"]
    assert "reads tech" in html
    assert "no history" in cards.history_html(User("v", "V"), news, cards.no_images)


def test_side_by_side_marks_moves_between_the_lists():
    html = cards.side_by_side_html(hand_made_result(), cards.no_images, judgments=True)
    left, right = html.split('class="side-col reranked"')
    assert re.findall(r'side-row" data-news-id="(\w)"', left) == list("abcd")
    assert re.findall(r'side-row" data-news-id="(\w)"', right) == list("caxb")
    assert "→ #2" in left and "→ #1" in left and "→ ✕" in left  # a went to #2, c to #1, d dropped out
    assert "new · #7" in right and 'data-action="relevant"' in right


def test_a_story_without_a_served_picture_gets_a_category_placeholder():
    link = cards.no_images
    no_image = cards.thumbnail(item("n", category="sports"), link)
    assert "placeholder cat-sports" in no_image and "<img" not in no_image


def test_system_panel_shows_models_timings_and_cache_rate():
    html = cards.system_html({"Mode": "lite", "Reranker": "<x>"}, hand_made_result(), cache_totals=(3, 4))
    assert "lite" in html and "&lt;x&gt;" in html and "rerank 2" in html and "3/4 hits (75%)" in html


# --- charts ----------------------------------------------------------------------------------------


def test_score_distributions_plot_each_stage_on_its_own_axis():
    fig = charts.score_distributions(hand_made_result())
    retrieval, reranked = fig.data
    assert list(retrieval.y) == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert list(reranked.y) == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert retrieval.xaxis == "x" and reranked.xaxis == "x2"


def test_rank_shift_draws_one_line_per_item_coloured_by_direction():
    result = hand_made_result()
    result.retrieval[3].item.title = XSS
    fig = charts.rank_shift(result)
    lines = [trace for trace in fig.data if trace.showlegend is False]
    assert len(lines) == 5  # a, b, c, d and the newcomer x
    legend = {trace.name: trace.line.color for trace in fig.data if trace.showlegend is not False}
    assert legend == {"moved up": charts.UP, "moved down": charts.DOWN, "same rank": charts.SAME,
                      "new from beyond the top k": charts.NEW}  # fmt: skip
    assert fig.layout.yaxis.title.text and fig.layout.xaxis.title.text  # axis titles
    by_end = {tuple(trace.y): trace.line.color for trace in lines}
    assert by_end[(3, 1)] == charts.UP and by_end[(1, 2)] == charts.DOWN
    assert by_end[(5, 3)] == charts.NEW and by_end[(4, 5)] == charts.DOWN  # d fell out of the top 4
    hover = [text for trace in lines for text in trace.text]
    assert not any("<img" in text for text in hover) and any("&lt;img" in text for text in hover)


def test_category_mix_compares_shares():
    fig = charts.category_mix({"tech": 0.75, "world": 0.25}, hand_made_result())
    history, recommended = fig.data
    assert list(history.x) == list(recommended.x)
    shares = dict(zip(recommended.x, recommended.y, strict=True))
    assert shares["tech"] == pytest.approx(0.75) and shares["sports"] == pytest.approx(0.25)
    assert sum(recommended.y) == pytest.approx(1.0)
    assert charts.history_category_shares({}, ["a", "a", "b", ""]) == {"a": 0.5, "b": 0.25, "—": 0.25}


# --- labels ----------------------------------------------------------------------------------------


def test_every_label_has_both_languages():
    for key, entry in LABELS.items():
        assert entry.get("en") and entry.get("zh"), key
        assert set(re.findall(r"{(\w+)", entry["en"])) == set(re.findall(r"{(\w+)", entry["zh"])), key
    assert t("run", "zh") == "推荐" and t("unknown-key") == "unknown-key"
    assert lang_code("中文") == "zh" and lang_code("English") == "en" and lang_code(None) == "en"


# --- handlers on a real pipeline (fake embedder, any reranker) -------------------------------------


class ConstantReranker:
    """Any object with the Reranker shape: prefers short titles. The dashboard must not care what it is."""

    name = "fake-constant"

    def score(self, request, candidates):
        return [1.0 / (1 + len(c.item.title)) for c in candidates]


class Judgments:
    def __init__(self):
        self.rows = []

    def record(self, user_id, query, news_id, relevant, config, rank=None):
        self.rows.append((user_id, query, news_id, relevant, config, rank))

    def judgments(self, user_id=None, query=None, config=None):
        from newsrec.evaluation.judgments import Judgment

        return [
            Judgment(u, q, n, c, r, k, 0.0)
            for u, q, n, r, c, k in self.rows
            if user_id in (None, u) and query in (None, q) and config in (None, c)
        ]


TOPICS = {
    "battery": ("autos", "solid-state battery energy density charging EV"),
    "nba": ("sports", "Lakers Warriors LeBron Curry NBA game"),
    "apple": ("tech", "Apple launch event iPhone chip"),
    "orchard": ("world", "apple harvest orchard fruit prices farmers"),
}


@pytest.fixture
def corpus_settings(newsrec_home) -> Settings:
    return tiny_corpus()


def tiny_corpus() -> Settings:
    """Four topics of six stories under NEWSREC_HOME, a reader of EV and NBA news, and a newcomer."""
    settings = Settings.from_env(corpus="tiny", embedder="lite", reranker="lite")
    news = {}
    for topic, (category, words) in TOPICS.items():
        for i in range(6):
            terms = words.split()
            title = f"{terms[i % len(terms)]} {terms[0]} story {i}"
            news[f"{topic}-{i}"] = NewsItem(
                f"{topic}-{i}", title, f"{words} report {i}", category, published_at=NOW - timedelta(days=i)
            )
    news["xss"] = NewsItem("xss", XSS, "derby apple", "sports", published_at=NOW)
    history = [HistoryEntry(n, NOW - timedelta(hours=5 - i)) for i, n in enumerate(["battery-0", "nba-0", "nba-1"])]
    users = {"fan": User("fan", "Fan", "EV and NBA reader", history), "new": User("new", "Newcomer")}
    save_corpus(Corpus("tiny", settings.corpus_dir("tiny"), news, users))
    return settings


def make_dashboard(settings, fake_embedder, reranker=None, judgments=None) -> Dashboard:
    from newsrec.pipeline import Recommender
    from newsrec.rerankers.lite import LiteReranker

    reranker = reranker or LiteReranker(fake_embedder)
    recommender = Recommender.from_settings(settings, embedder=fake_embedder, reranker=reranker)
    return Dashboard(recommender, cards.no_images, judgments)


@pytest.mark.parametrize("reranker", ["lite", "fake"])
def test_run_feedback_and_reset(corpus_settings, fake_embedder, reranker):
    dash = make_dashboard(corpus_settings, fake_embedder, ConstantReranker() if reranker == "fake" else None)
    session, history = dash.select_user("fan")
    assert history.count("history-card") == 3
    session, view = dash.run(session, "apple launch event", Controls(k=8, candidates=20))
    shown = re.findall(r'class="news-card" data-news-id="([^"]+)"', view.results)
    assert len(shown) == 8 and not {"battery-0", "nba-0", "nba-1"} & set(shown)
    assert view.results.count('class="score rerank"') == 8
    assert "Retrieval only" in view.side_by_side and len(view.shift.data) >= 8
    assert session.cache_lookups > 0 and dash.rec.reranker.name in view.system
    again, repeat = dash.run(session, "apple launch event", Controls(k=8, candidates=20))
    assert 'data-run="1"' in view.results and 'data-run="2"' in repeat.results  # a rerun still updates the page
    assert again.cache_hits > session.cache_hits  # the second run reads the rerank scores from the cache

    disliked = shown[0]
    session, view = dash.feedback(session, "dislike", disliked, Controls(k=8, candidates=20))
    assert f'data-news-id="{disliked}"' not in view.results
    assert session.profile.disliked_ids == [disliked] and "1 hidden" in view.results
    assert dash.rec.profile("fan").disliked_ids == []  # the shared profile is untouched

    session, view = dash.feedback(session, "like", shown[1], Controls(k=8, candidates=20))
    assert session.profile.liked_ids == [shown[1]]

    session, view = dash.reset(session, Controls(k=8, candidates=20))
    assert session.profile is None and f'data-news-id="{disliked}"' in view.results


def test_controls_reach_the_pipeline(corpus_settings, fake_embedder):
    dash = make_dashboard(corpus_settings, fake_embedder)
    session, _ = dash.select_user("new")
    session, view = dash.run(session, "", Controls(k=5, candidates=30, categories=["sports"], diversity=0.5))
    assert session.result.query == "" and len(session.result.reranked) == 5
    assert {r.item.category for r in session.result.reranked} == {"sports"}
    assert "&lt;img src=x" in view.results and "<img src=x" not in view.results


def test_judgments_are_recorded_for_every_list_that_showed_the_item(corpus_settings, fake_embedder):
    store = Judgments()
    dash = make_dashboard(corpus_settings, fake_embedder, judgments=store)
    session, _ = dash.select_user("fan")
    session, view = dash.run(session, "NBA game", Controls(k=5, candidates=20))
    assert 'data-action="relevant"' in view.results
    both = next(
        r.item.id for r in session.result.reranked if r.item.id in {x.item.id for x in session.result.retrieval}
    )
    message = dash.judge(session, both, relevant=True)
    assert dash.rec.corpus.news[both].title in message and both not in message  # the toast names the title
    configs = {row[4] for row in store.rows}
    assert configs == {"retrieval:fake-hashing", f"rerank:{dash.rec.reranker.name}"}
    assert all(row[:4] == ("fan", "NBA game", both, True) for row in store.rows)
    with pytest.raises(InputError):
        dash.judge(session, "not-shown", relevant=False)


def test_bad_input_is_an_input_error(corpus_settings, fake_embedder):
    dash = make_dashboard(corpus_settings, fake_embedder)
    with pytest.raises(InputError, match="unknown user"):
        dash.select_user("nobody")
    _, view = dash.run(Session(), "query", Controls())  # no reader yet (a page still loading): no error toast
    assert "Pick a reader" in view.results
    session, _ = dash.select_user("fan")
    with pytest.raises(InputError, match="unknown news"):
        dash.feedback(session, "dislike", "nope", Controls())
    with pytest.raises(InputError, match="limit"):
        dash.run(session, "x" * 5000, Controls())
    assert dash.user_choices()[0] == ("Fan — EV and NBA reader", "fan")
    assert dash.category_choices() == ["autos", "sports", "tech", "world"]
    assert dash.facts()["Mode"] == "custom (qwen3-vl)" and "25 news · 2 readers" in dash.facts()["Corpus"]


# --- loader and the app module ----------------------------------------------------------------------


def test_loader_reports_progress_and_reraises_errors():
    gate = threading.Event()

    def build(on_progress):
        on_progress(3, 10)
        gate.wait(5)
        return "recommender"

    loader = RecommenderLoader(build).start()
    seen = []

    def on_wait(done, total):
        seen.append((done, total))
        if (done, total) == (3, 10):  # the build finishes once the waiting caller has seen its progress (not after
            gate.set()  # a fixed 0.3 s, which a loaded machine's build thread could sleep through before reporting)

    assert loader.get(on_wait=on_wait, poll_s=0.05) == "recommender"
    assert (3, 10) in seen and loader.ready and loader.seconds is not None

    def fail(on_progress):
        raise InputError("no corpus")

    broken = RecommenderLoader(fail).start()
    for _ in range(2):  # every caller sees the build's error, not a hang
        with pytest.raises(InputError, match="no corpus"):
            broken.get()


def load_app():
    spec = importlib.util.spec_from_file_location("newsrec_app", REPO_ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_app_binds_per_env_and_space(monkeypatch):
    app = load_app()
    for name in ("NEWSREC_HOST", "NEWSREC_PORT", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "SPACE_ID"):
        monkeypatch.delenv(name, raising=False)
    args = app.parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 7860)
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8000")
    monkeypatch.setenv("NEWSREC_PORT", "9000")
    assert app.parse_args([]).port == 9000 and app.parse_args(["--port", "1234"]).port == 1234
    monkeypatch.setenv("SPACE_ID", "someone/newsrec")
    assert app.parse_args(["--host", "127.0.0.1"]).host == "0.0.0.0"


def test_page_has_the_stable_element_ids():
    app = load_app()
    demo = app.build_demo(lambda progress=None: None, Settings())
    ids = {block.elem_id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    assert {"user-picker", "history", "query", "run", "results", "side-by-side", "charts", "system"} <= ids
    assert {"export", "export-jsonl"} <= ids  # judgments as CSV, and as a test set for `evaluate --judgments`
    assert {"tab-newsroom", "feed-rules", "nr-kind", "nr-save", "nr-publish", "nr-run"} <= ids
    assert len(app.LABEL_KEYS) == 21


def test_handlers_turn_input_errors_into_gradio_errors():
    import gradio as gr

    app = load_app()

    def broken(progress=None):
        raise InputError("unknown user 'x'")

    on_load, on_user, *_ = app.make_handlers(broken)
    with pytest.raises(gr.Error, match="unknown user"):
        on_user("x", "English")


def test_short_titles_count_cjk_as_two_columns():
    assert charts._short("NBA杯小组赛：库里34分", 10) == "NBA杯小组…"
    assert charts._short("short") == "short" and charts._short("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"


@pytest.mark.slow
def test_dashboard_runs_with_the_qwen3_vl_reranker(corpus_settings, fake_embedder, qwen_files_dir, tmp_path):
    """A saved random-weight Qwen3-VL-Reranker through the real loading path: the page is built the same way."""
    pytest.importorskip("transformers")
    from newsrec.qwen3_vl.random_model import make_random_checkpoint
    from newsrec.rerankers import get_reranker

    checkpoint = make_random_checkpoint(tmp_path / "tiny", "tiny", qwen_files_dir, seed=0)
    reranker = get_reranker(
        "qwen3-vl-reranker-2b",
        model=str(checkpoint),
        device="cpu",
        settings=corpus_settings,
        image_root=corpus_settings.corpus_dir("tiny"),
    )
    dash = make_dashboard(corpus_settings, fake_embedder, reranker)
    session, _ = dash.select_user("fan")
    session, view = dash.run(session, "NBA game", Controls(k=5, candidates=12))
    assert view.results.count('class="news-card"') == 5
    scores = [r.score for r in session.result.reranked]
    assert all(0.0 <= s <= 1.0 for s in scores)  # yes/no probabilities
    assert dash.facts()["Mode"] == "Qwen3-VL" and "qwen3-vl-reranker-2b" in view.system
    disliked = session.result.reranked[0].item.id
    session, view = dash.feedback(session, "dislike", disliked, Controls(k=5, candidates=12))
    assert disliked not in {r.item.id for r in session.result.reranked} and f'"{disliked}"' not in view.results
    assert len(view.shift.data) >= 5
