"""batch-rerank: grouped scoring into score-cache rows, resumable chunks, cache import, and Ray Data."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from conftest import HashingEmbedder

from newsrec.batch import GroupScorer, batch_rerank, import_scores
from newsrec.cache import ScoreCache
from newsrec.config import Settings
from newsrec.data.corpus import Corpus, save_corpus
from newsrec.errors import InputError
from newsrec.rerankers.lite import LiteReranker
from newsrec.types import HistoryEntry, NewsItem, User

EMBEDDER = HashingEmbedder()  # the first stage's vectors; the reranker under test is lite or Qwen3-VL
NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)
TOPICS = ["battery cars charging", "football derby goal", "election results vote", "flood rescue river"]


def make_corpus(settings: Settings) -> Corpus:
    news = {
        f"n{i}": NewsItem(
            f"n{i}",
            f"{TOPICS[i % 4].split()[0]} story {i}",
            f"{TOPICS[i % 4]} report {i}",
            category=TOPICS[i % 4].split()[0],
            published_at=NOW - timedelta(days=i),
        )
        for i in range(12)
    }
    corpus = Corpus(name="batch", root=settings.corpus_dir("batch"), news=news)
    corpus.users = {
        "u1": User("u1", history=[HistoryEntry("n0"), HistoryEntry("n4")]),
        "u2": User("u2", history=[HistoryEntry("n1")]),
    }
    save_corpus(corpus)
    return corpus


@pytest.fixture
def settings(newsrec_home) -> Settings:
    settings = Settings.from_env(corpus="batch", embedder="lite", reranker="lite")
    make_corpus(settings)
    return settings


def write_pairs(path, rows) -> str:
    pd.DataFrame(rows, columns=["user", "query", "news_id"]).to_parquet(path, index=False)
    return str(path)


def all_pairs(tmp_path) -> str:
    rows = [("u1", "", f"n{i}") for i in range(12)]  # the For-you feed of u1, every item
    rows += [("", "battery", f"n{i}") for i in range(12)]  # a search without a reader
    rows += [("u2", "flood", f"n{i}") for i in range(0, 12, 3)]
    rows += [("u1", "", "n-unknown")]
    return write_pairs(tmp_path / "pairs.parquet", rows)


def test_scores_equal_the_pipeline_and_become_cache_hits(settings, tmp_path):
    from newsrec.pipeline import Recommender

    out = tmp_path / "scores"
    stats = batch_rerank(all_pairs(tmp_path), out, settings, chunk_pairs=10, embedder=EMBEDDER)
    assert stats.unknown_news == 1 and stats.groups == 3 and stats.chunks == 3  # groups of 12, 12 and 4 pairs
    scores = pd.concat(pd.read_parquet(p) for p in sorted(out.glob("part-*.parquet")))
    assert len(scores) == 28 and scores["key"].is_unique

    recommender = Recommender.from_settings(settings, embedder=EMBEDDER, reranker=LiteReranker(EMBEDDER))
    for (user, query), frame in scores.groupby(["user", "query"]):
        profile = recommender.profile(user) if user else recommender.profile_from_history([])
        _, want = recommender.score_candidates(profile, list(frame["news_id"]), query)
        np.testing.assert_allclose(frame["score"], want, atol=1e-9)
    assert set(scores["model"]) == {recommender.reranker.name}

    assert import_scores(out, recommender.cache) == {recommender.reranker.name: 28}
    fresh = Recommender.from_settings(
        settings, embedder=EMBEDDER, reranker=LiteReranker(EMBEDDER)
    )  # a new process would read the SQLite cache the same way
    result = fresh.recommend("u1", candidates=10)
    assert result.cache_hits == result.candidates > 0  # every candidate's score came from the batch
    assert fresh.recommend("", query="battery", profile=fresh.profile_from_history([])).cache_hits > 0


def test_rerun_skips_written_chunks_and_redoes_a_missing_one(settings, tmp_path, monkeypatch):
    pairs, out = all_pairs(tmp_path), tmp_path / "scores"
    batch_rerank(pairs, out, settings, chunk_pairs=10, embedder=EMBEDDER)
    before = {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}
    (out / "part-00001.parquet").unlink()
    calls = []
    original = GroupScorer.rows
    monkeypatch.setattr(GroupScorer, "rows", lambda self, group: calls.append(group.user) or original(self, group))
    stats = batch_rerank(pairs, out, settings, chunk_pairs=10, embedder=EMBEDDER)
    assert stats.skipped_chunks == 2 and len(calls) == 1
    assert {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}.keys() == before.keys()
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "part-00001.parquet"),
        pd.read_parquet(__import__("io").BytesIO(before["part-00001.parquet"])),
    )
    other = write_pairs(tmp_path / "other.parquet", [("u1", "", "n2")])
    with pytest.raises(InputError, match="another run"):
        batch_rerank(other, out, settings, chunk_pairs=10, embedder=EMBEDDER)


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (pd.DataFrame({"user": ["u1"]}), "news_id"),
        (pd.DataFrame({"news_id": ["n1"]}), "user` or a `query"),
    ],
)
def test_bad_pairs_files_are_clear_errors(settings, tmp_path, frame, words):
    frame.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(InputError, match=words):
        batch_rerank(tmp_path / "bad.parquet", tmp_path / "out", settings, embedder=EMBEDDER)
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="parquet"):
        batch_rerank(tmp_path / "junk.parquet", tmp_path / "out", settings, embedder=EMBEDDER)


def test_query_only_pairs_file(settings, tmp_path):
    pd.DataFrame({"query": ["flood", "flood"], "news_id": ["n3", "n7"]}).to_parquet(tmp_path / "q.parquet")
    stats = batch_rerank(tmp_path / "q.parquet", tmp_path / "out", settings, embedder=EMBEDDER)
    assert stats.groups == 1 and len(pd.read_parquet(tmp_path / "out" / "part-00000.parquet")) == 2


def test_cache_import_cli(settings, tmp_path, capsys):
    from newsrec.cli import main

    out = tmp_path / "scores"
    batch_rerank(all_pairs(tmp_path), out, settings, embedder=EMBEDDER)
    assert main(["cache", "import", str(out)]) == 0
    cache = ScoreCache(settings.cache_dir / "rerank_scores.sqlite")
    keys = list(pd.read_parquet(out / "part-00000.parquet")["key"])
    assert len(cache.get_many(keys)) == len(keys)


@pytest.mark.slow
def test_ray_engine_equals_local_with_the_tiny_checkpoint(settings, tmp_path, qwen_files_dir):
    """Ray Data map_batches in a local Ray on CPU, one tiny random Qwen3-VL per worker."""
    pytest.importorskip("ray")
    from dataclasses import replace

    from newsrec.qwen3_vl.random_model import make_random_checkpoint

    checkpoint = make_random_checkpoint(tmp_path / "tiny", "tiny", qwen_files_dir, seed=0)
    tiny = replace(settings, reranker="qwen3-vl-reranker-2b", reranker_model=str(checkpoint))
    pairs = write_pairs(
        tmp_path / "pairs.parquet", [("u1", "", "n2"), ("u1", "", "n3"), ("", "flood", "n3"), ("", "flood", "n7")]
    )
    local = batch_rerank(pairs, tmp_path / "local", tiny, chunk_pairs=2, embedder=EMBEDDER)
    import ray

    try:
        remote = batch_rerank(pairs, tmp_path / "ray", tiny, engine="ray", chunk_pairs=2, embedder=EMBEDDER)
    finally:
        ray.shutdown()
    assert local.chunks == remote.chunks == 2
    for part in ("part-00000.parquet", "part-00001.parquet"):
        a, b = pd.read_parquet(tmp_path / "local" / part), pd.read_parquet(tmp_path / "ray" / part)
        assert list(a["key"]) == list(b["key"]) and a["model"][0].startswith("qwen3-vl-reranker-2b-")
        np.testing.assert_allclose(a["score"], b["score"], atol=1e-5)
