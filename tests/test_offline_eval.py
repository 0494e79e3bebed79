"""Offline evaluation: scorers, the evaluation loop, score dumps, MIND logs, demo logs and the CLI."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from newsrec.cli import main
from newsrec.config import Settings
from newsrec.data.corpus import Corpus, save_corpus
from newsrec.errors import InputError
from newsrec.evaluation import metrics
from newsrec.evaluation.offline import (
    ItemContext,
    PopularityScorer,
    RandomScorer,
    evaluate,
    load_mind_log,
    make_scorers,
    sample,
)
from newsrec.pipeline import Recommender
from newsrec.rerankers.lite import LiteReranker
from newsrec.types import HistoryEntry, Impression, NewsItem, User

TOPICS = {
    "battery": ("autos", "solid-state battery cell energy density charging electric car"),
    "nba": ("sports", "Lakers Warriors basketball NBA playoff game points"),
    "rates": ("finance", "central bank interest rates inflation bonds markets"),
    "quake": ("world", "earthquake rescue teams aftershock relief shelters"),
}


class Oracle:
    """Ranks the clicked item first: a perfect (cheating) scorer, to pin the metrics at 1."""

    name = "oracle"

    def score(self, impression):
        return [float(label) for label in impression.labels]


def topic_log(users_per_topic: int = 6, seed: int = 0) -> tuple[dict[str, NewsItem], list[Impression]]:
    """Readers of one topic each; every impression shows one story of their topic and one of each other."""
    rng = np.random.default_rng(seed)
    news = {}
    for topic, (category, words) in TOPICS.items():
        vocabulary = words.split()
        for i in range(12):
            picked = " ".join(rng.choice(vocabulary, size=5))
            news[f"{topic}-{i}"] = NewsItem(id=f"{topic}-{i}", title=f"{picked} {i}", body=words, category=category)
    impressions = []
    for topic in TOPICS:
        for u in range(users_per_topic):
            user = f"{topic}-reader-{u}"
            history = [f"{topic}-{i}" for i in rng.choice(6, size=3, replace=False)]
            candidates = [f"{other}-{int(rng.integers(6, 12))}" for other in TOPICS]
            labels = [int(other == topic) for other in TOPICS]
            impressions.append(Impression(f"imp-{user}", user, history, candidates, labels))
    return news, impressions


# --- scorers ---------------------------------------------------------------------------------------------


def test_random_scorer_is_reproducible_and_near_half():
    _, impressions = topic_log(users_per_topic=30)
    scorer = RandomScorer(seed=3)
    assert scorer.score(impressions[0]) == RandomScorer(seed=3).score(impressions[0])
    aucs = [metrics.auc(i.labels, scorer.score(i)) for i in impressions]
    assert 0.4 < np.mean(aucs) < 0.6


def test_popularity_leaves_the_scored_impressions_own_clicks_out():
    log = [
        Impression("1", "u1", [], ["a", "b", "c"], [1, 0, 0]),
        Impression("2", "u2", [], ["a", "b", "c"], [1, 0, 0]),
        Impression("3", "u3", [], ["a", "b", "c"], [0, 0, 1]),
    ]
    scorer = PopularityScorer(log)
    # scoring impression 1 = counting only the others (the log's CTR and slot rates aside)
    without_own = PopularityScorer(log[1:]).model
    without_own.p0, without_own.slot_ctr = scorer.model.p0, scorer.model.slot_ctr
    assert scorer.score(log[0]) == pytest.approx(list(without_own.ctr(["a", "b", "c"])))
    first = scorer.score(log[0])
    assert first[0] == pytest.approx(first[2]) and first[0] > first[1]  # a: 1 of 2 left; c: 1 of 2; b: 0
    unseen = Impression("9", "u9", [], ["a", "z"], [0, 1])
    a, z = scorer.score(unseen)
    assert a > scorer.model.p0 == pytest.approx(z)  # a: 2 of 3 clicked; z: never shown, gets the log's CTR


def test_a_perfect_scorer_scores_one_and_random_scores_less():
    news, impressions = topic_log()
    report = evaluate(impressions, [Oracle(), RandomScorer()], ItemContext.build(news, impressions), k=2)
    summary = report.summary.set_index("scorer")
    for metric in metrics.ACCURACY_METRICS:
        assert summary.loc["oracle", metric] == pytest.approx(1.0)
        assert summary.loc["random", metric] < 0.9
    low, high = summary.loc["random", "auc_low"], summary.loc["random", "auc_high"]
    assert low < summary.loc["random", "auc"] < high
    assert summary.loc["oracle", "calibration"] < summary.loc["random", "calibration"]  # top-2 keeps the topic
    assert 0 < summary.loc["oracle", "coverage"] <= 1
    assert len(report.rows) == 2 * len(impressions)
    assert report.to_json()["impressions"] == len(impressions)


def test_dumped_scores_recompute_the_same_metrics(tmp_path):
    news, impressions = topic_log()
    dump = tmp_path / "scores.jsonl"
    report = evaluate(impressions, [RandomScorer(), PopularityScorer(impressions)], dump=dump)
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    assert len(lines) == 2 * len(impressions)
    assert set(lines[0]) == {"impression_id", "scorer", "candidates", "scores", "labels"}
    rows = report.rows.set_index(["scorer", "impression_id"])
    for line in lines:
        recomputed = metrics.accuracy(line["labels"], line["scores"], line["impression_id"])
        assert recomputed["auc"] == pytest.approx(rows.loc[(line["scorer"], line["impression_id"]), "auc"])
        assert recomputed["ndcg@5"] == pytest.approx(rows.loc[(line["scorer"], line["impression_id"]), "ndcg@5"])


def test_bad_scorer_output_and_empty_input_are_clear_errors():
    class Short:
        name = "short"

        def score(self, impression):
            return [0.0]

    _, impressions = topic_log(users_per_topic=1)
    with pytest.raises(InputError, match="returned 1 scores"):
        evaluate(impressions, [Short()])
    with pytest.raises(InputError, match="no impressions"):
        evaluate([], [RandomScorer()])
    with pytest.raises(InputError, match="unknown scorer"):
        make_scorers(["bert"], impressions)
    with pytest.raises(InputError, match="needs the pipeline"):
        make_scorers(["rerank"], impressions)


def test_sample_is_fixed_and_in_log_order():
    _, impressions = topic_log(users_per_topic=10)
    picked = sample(impressions, 7, seed=1)
    assert picked == sample(impressions, 7, seed=1) and len(picked) == 7
    positions = [impressions.index(i) for i in picked]
    assert positions == sorted(positions)
    assert sample(impressions, None) == impressions


# --- the pipeline scorers --------------------------------------------------------------------------------


def test_pipeline_scorers_beat_random_on_topical_readers(fake_embedder):
    news, impressions = topic_log(users_per_topic=8)
    settings = Settings.from_env(corpus="topics", embedder="lite", reranker="lite")
    now = datetime(2026, 11, 20, tzinfo=timezone.utc)
    for item in news.values():
        item.published_at = now
    corpus = Corpus(name="topics", root=settings.corpus_dir("topics"), news=news)
    corpus.users = {"x": User("x", history=[HistoryEntry("battery-0")])}
    save_corpus(corpus)
    recommender = Recommender.from_settings(settings, embedder=fake_embedder, reranker=LiteReranker(fake_embedder))
    scorers = make_scorers(["random", "retrieval", "rerank"], impressions, recommender)
    report = evaluate(impressions, scorers, ItemContext.from_recommender(recommender, impressions), k=2)
    auc = report.summary.set_index("scorer")["auc"]
    assert auc["retrieval"] > 0.8 and auc["rerank"] > 0.8 and auc["random"] < 0.7
    diversity = report.summary.set_index("scorer")["diversity"]
    assert not np.isnan(diversity["rerank"])


# --- logs ------------------------------------------------------------------------------------------------


def write_mind(folder, behaviors_name="behaviors.tsv"):
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        ("N1", "sports", "nba", "Lakers win", "abstract"),
        ("N2", "sports", "nba", "Warriors lose", "abstract"),
        ("N3", "finance", "rates", "Rates rise", "abstract"),
        ("N4", "finance", "rates", "Bonds fall", "abstract"),
    ]
    (folder / "news.tsv").write_text("".join("\t".join(r) + "\turl\t[]\t[]\n" for r in rows))
    behaviors = [
        "1\tU1\tN1\tN2-1 N3-0 N4-0",
        "2\tU2\tN3\tN4-1 N1-0 N9-0",  # N9 is unknown: dropped
        "3\tU1\tN1 N2\tN3-0 N4-1",
        "4\tU3\t\tN1-1 N2-0",
    ]
    (folder / behaviors_name).write_text("\n".join(behaviors) + "\n")
    return folder


def test_mind_log_is_read_in_place_and_unknown_ids_dropped(tmp_path, newsrec_home):
    folder = write_mind(tmp_path / "mini")
    log = load_mind_log(folder / "news.tsv", folder / "behaviors.tsv")
    assert log.name == "mini" and len(log.news) == 4 and len(log.impressions) == 4
    second = next(i for i in log.impressions if i.id == "2")
    assert second.candidates == ["N4", "N1"] and second.labels == [1, 0]
    assert not (newsrec_home / "corpora").exists()  # nothing written
    other = write_mind(tmp_path / "other", behaviors_name="elsewhere.tsv")
    (other / "news.tsv").rename(tmp_path / "news_only.tsv")
    log = load_mind_log(tmp_path / "news_only.tsv", other / "elsewhere.tsv")
    assert len(log.impressions) == 4
    with pytest.raises(InputError):
        load_mind_log(tmp_path / "missing.tsv")


# --- CLI -------------------------------------------------------------------------------------------------


def test_cli_evaluate_and_ab_test_on_a_mind_log(tmp_path, capsys):
    folder = write_mind(tmp_path / "mini")
    dump = tmp_path / "dump.jsonl"
    code = main(
        ["evaluate", "--news", str(folder / "news.tsv"), "--scorer", "random", "--scorer", "popularity"]
        + ["--dump-scores", str(dump), "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["scorer"] for s in out["scorers"]] == ["random", "popularity"] and out["impressions"] == 4
    assert len(dump.read_text().splitlines()) == 8
    code = main(["ab-test", "--news", str(folder), "--variants", "A=random", "B=popularity", "--k", "1", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["mode"] for r in out["results"]] == ["replay", "simulate"]
    assert code == 0
    assert main(["ab-test", "--news", str(folder), "--variants", "A=random", "B=bert"]) == 2
    assert "unknown scorer" in capsys.readouterr().err
    assert main(["evaluate", "--behaviors", str(folder / "behaviors.tsv")]) == 2


@pytest.mark.slow
def test_nemig_sample_random_and_popularity(nemig_dir):
    log = load_mind_log(nemig_dir / "news.tsv", nemig_dir / "behaviors.tsv")
    assert len(log.impressions) == 15_000
    picked = sample(log.impressions, 300, seed=0)
    report = evaluate(
        picked, make_scorers(["random", "popularity"], log.impressions), ItemContext.build(log.news, log.impressions)
    )
    summary = report.summary.set_index("scorer")
    assert summary.loc["random", "scored"] > 250  # impressions with a click and a non-click
    assert 0.4 < summary.loc["random", "auc"] < 0.6
    assert 0.0 < summary.loc["popularity", "mrr"] <= 1.0


# --- dashboard tab -----------------------------------------------------------------------------------------


def test_evaluation_tab_handlers_and_block(fake_embedder):
    import gradio as gr

    from newsrec.ui import evaluation_tab as tab

    settings = Settings.from_env(embedder="lite", reranker="lite")
    base = Recommender.from_settings(settings, embedder=fake_embedder, reranker=LiteReranker(fake_embedder))
    assert tab.dataset_choices(settings) == [tab.DEMO_CHOICE]
    report = tab.run_offline(lambda: base, tab.DEMO_CHOICE, ["random", "rerank"], 60, 10)
    table = tab.metrics_table(report)
    assert list(table["scorer"]) == ["random", "rerank"] and "diversity@10" in table
    for figure in (tab.metric_bars(report), tab.per_user_distribution(report), tab.diversity_vs_accuracy(report)):
        assert len(figure.data) == 2
    result = tab.run_ab(lambda: base, tab.DEMO_CHOICE, "A=random B=rerank", "simulate", 3, 200)
    assert len(tab.ab_figure(result).data) == len(result.comparisons) >= 3
    assert tab.judgments_table(settings).empty
    with gr.Blocks():
        tab.build_evaluation_tab(lambda: base)


@pytest.mark.slow
def test_nemig_sample_through_the_pipeline(nemig_dir, fake_embedder):
    """Real impressions through retrieval and rerank: a corpus of just the news a 150-impression sample names."""
    log = load_mind_log(nemig_dir / "news.tsv", nemig_dir / "behaviors.tsv")
    picked = sample(log.impressions, 150, seed=0)
    needed = {i for imp in picked for i in [*imp.history, *imp.candidates]}
    settings = Settings.from_env(corpus="nemig-sample", embedder="lite", reranker="lite")
    corpus = Corpus("nemig-sample", settings.corpus_dir("nemig-sample"), {i: log.news[i] for i in needed})
    save_corpus(corpus)
    recommender = Recommender.from_settings(settings, embedder=fake_embedder, reranker=LiteReranker(fake_embedder))
    scorers = make_scorers(["random", "retrieval", "rerank"], log.impressions, recommender)
    report = evaluate(picked, scorers, ItemContext.from_recommender(recommender, log.impressions), k=3)
    summary = report.summary.set_index("scorer")
    assert (summary["impressions"] == 150).all()
    for scorer in ("retrieval", "rerank"):
        assert 0.3 < summary.loc[scorer, "auc"] < 0.8  # real clicks are noisy: no scorer is near perfect
        assert 0.0 < summary.loc[scorer, "diversity"] < 1.5
