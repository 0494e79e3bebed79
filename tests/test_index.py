"""NewsIndex: incremental sync by content hash, crash safety, search, filters, persistence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import HashingEmbedder

from newsrec.config import Settings
from newsrec.data.corpus import Corpus
from newsrec.errors import InputError
from newsrec.index import NewsIndex, SyncStats, chroma_client, collection_name
from newsrec.types import ImageRef, NewsItem

REPO_ROOT = Path(__file__).resolve().parent.parent

TITLES = {
    "n1": ("Solid-state battery breakthrough", "tech"),
    "n2": ("Battery factory opens in Texas", "tech"),
    "n3": ("Governor tours southern border", "politics"),
    "n4": ("Senate votes on border funding", "politics"),
    "n5": ("Argentina win the World Cup final", "sports"),
    "n6": ("Central bank holds interest rates", "economy"),
    "n7": ("Refugees arrive at the Polish border", "politics"),
}


def make_corpus(titles: dict[str, tuple[str, str]] = TITLES) -> Corpus:
    news = {
        news_id: NewsItem(
            id=news_id,
            title=title,
            category=category,
            language="en",
            published_at=datetime(2024, 3, int(news_id[1:]), tzinfo=timezone.utc),
            images=[ImageRef(uri=f"images/{news_id}.jpg")] if news_id in {"n1", "n3"} else [],
        )
        for news_id, (title, category) in titles.items()
    }
    return Corpus(name="test", root=Path("."), news=news)


class FailingEmbedder(HashingEmbedder):
    """Raises on the `fail_on`-th call to embed_documents, like a model crashing mid-build."""

    def __init__(self, fail_on: int):
        super().__init__()
        self.batches = 0
        self.fail_on = fail_on

    def embed_documents(self, items):
        self.batches += 1
        if self.batches == self.fail_on:
            raise RuntimeError("simulated crash")
        return super().embed_documents(items)


@pytest.fixture
def settings(chroma_mode) -> Settings:
    # NEWSREC_HOME is a fresh temp dir per test (conftest); each test runs on the embedded store and on a
    # real `chroma run` server (chroma_mode sets NEWSREC_CHROMA_URL).
    return Settings.from_env()


def stored(index: NewsIndex) -> dict[str, tuple[str, np.ndarray]]:
    """id -> (stored content hash, stored vector), read straight from Chroma."""
    result = index.collection.get(include=["metadatas", "embeddings"])
    return {
        news_id: (meta["content_hash"], np.asarray(vector, dtype=np.float32))
        for news_id, meta, vector in zip(result["ids"], result["metadatas"], result["embeddings"], strict=True)
    }


def assert_consistent(index: NewsIndex, corpora: list[Corpus]) -> None:
    """Every stored vector is the embedding of the item version whose hash is stored next to it."""
    versions = {item.content_hash(): item for corpus in corpora for item in corpus.news.values()}
    reference = HashingEmbedder()
    for news_id, (digest, vector) in stored(index).items():
        assert digest in versions, news_id
        assert versions[digest].id == news_id
        np.testing.assert_allclose(vector, reference.embed_documents([versions[digest]])[0], atol=1e-6)


def test_collection_names_follow_chroma_rules():
    assert collection_name("demo", "lite-minilm-l6") == "demo--lite-minilm-l6"
    odd = collection_name("我的 新闻", "qwen3/vl..embedding")
    assert odd != collection_name("我的-新闻", "qwen3/vl..embedding")  # sanitised forms stay distinct
    long = collection_name("c" * 100, "e")
    for name in [odd, long, collection_name("a", "b"), collection_name("_x", "y_")]:
        assert 3 <= len(name) <= 63, name
        assert name[0].isalnum() and name[-1].isalnum(), name
        assert ".." not in name
        assert all(ch.isalnum() or ch in "._-" for ch in name), name


def test_sync_adds_then_leaves_unchanged(settings, fake_embedder):
    corpus = make_corpus()
    index = NewsIndex(settings, "test", fake_embedder)
    first = index.sync(corpus)
    assert isinstance(first, SyncStats)
    assert (first.added, first.updated, first.unchanged, first.removed) == (7, 0, 0, 0)
    assert fake_embedder.calls == 7 and len(index) == 7
    second = NewsIndex(settings, "test", fake_embedder).sync(corpus)
    assert (second.added, second.updated, second.unchanged, second.removed) == (0, 0, 7, 0)
    assert fake_embedder.calls == 7  # nothing re-embedded


def test_changed_item_is_the_only_one_reembedded(settings, fake_embedder):
    corpus = make_corpus()
    index = NewsIndex(settings, "test", fake_embedder)
    index.sync(corpus)
    before = index.embeddings(["n1", "n2"])
    corpus.news["n2"] = replace(corpus.news["n2"], title="Football club signs new striker")
    calls = fake_embedder.calls
    stats = index.sync(corpus)
    assert (stats.added, stats.updated, stats.unchanged, stats.removed) == (0, 1, 6, 0)
    assert fake_embedder.calls - calls == 1
    after = index.embeddings(["n1", "n2"])  # the in-memory matrix was refreshed
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_allclose(after[1], fake_embedder.embed_documents([corpus.news["n2"]])[0], atol=1e-6)
    assert index.search(fake_embedder.embed_queries(["football striker"])[0], 1)[0][0] == "n2"


def test_removed_items_are_deleted(settings, fake_embedder):
    corpus = make_corpus()
    index = NewsIndex(settings, "test", fake_embedder)
    index.sync(corpus)
    assert index.has("n3")
    del corpus.news["n3"]
    corpus.news["n8"] = NewsItem(id="n8", title="Wildfire spreads in California", category="climate")
    stats = index.sync(corpus)
    assert (stats.added, stats.updated, stats.unchanged, stats.removed) == (1, 0, 6, 1)
    assert not index.has("n3") and index.has("n8")
    assert len(index) == 7 and sorted(index.all_ids()) == sorted(corpus.news)
    assert "n3" not in [news_id for news_id, _ in index.search(index.embeddings(["n4"])[0], 10)]
    with pytest.raises(InputError, match="n3"):
        index.embeddings(["n3"])


def test_search_returns_nearest_items_with_cosine_similarity(settings, fake_embedder):
    index = NewsIndex(settings, "test", fake_embedder)
    assert index.search(np.ones(fake_embedder.dim), 5) == []  # empty collection
    index.sync(make_corpus())
    query = fake_embedder.embed_queries(["battery breakthrough"])[0]
    results = index.search(query, 3)
    assert results[0][0] == "n1"
    similarities = [similarity for _, similarity in results]
    assert similarities == sorted(similarities, reverse=True)
    expected = float(index.embeddings(["n1"])[0] @ query)  # vectors are unit length: dot = cosine
    assert similarities[0] == pytest.approx(expected, abs=1e-4)
    # An item's own vector finds itself at similarity 1.
    own = index.search(index.embeddings(["n5"])[0], 1)
    assert own[0][0] == "n5" and own[0][1] == pytest.approx(1.0, abs=1e-4)
    assert len(index.search(query, 1000)) == 7  # n beyond the collection size
    assert index.search(query, 0) == []
    with pytest.raises(InputError, match="64-d"):
        index.search(np.ones(10), 3)


def test_metadata_filters(settings, fake_embedder):
    index = NewsIndex(settings, "test", fake_embedder)
    index.sync(make_corpus())
    query = fake_embedder.embed_queries(["border"])[0]
    politics = index.search(query, 10, where={"category": {"$in": ["politics"]}})
    assert sorted(news_id for news_id, _ in politics) == ["n3", "n4", "n7"]
    with_image = index.search(query, 10, where={"has_image": True})
    assert sorted(news_id for news_id, _ in with_image) == ["n1", "n3"]
    march_5 = int(datetime(2024, 3, 5, tzinfo=timezone.utc).timestamp())
    recent = index.search(query, 10, where={"$and": [{"published_at": {"$gte": march_5}}, {"language": "en"}]})
    assert sorted(news_id for news_id, _ in recent) == ["n5", "n6", "n7"]
    with pytest.raises(InputError, match="invalid filter"):
        index.search(query, 3, where={"category": {"$bogus": 1}})


def test_embeddings_matrix_and_ids_agree(settings, fake_embedder):
    corpus = make_corpus()
    index = NewsIndex(settings, "test", fake_embedder)
    index.sync(corpus)
    ids, matrix = index.all_ids(), index.matrix()
    assert matrix.shape == (7, fake_embedder.dim) and matrix.dtype == np.float32
    assert not matrix.flags.writeable
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(index.embeddings(ids[::-1]), matrix[::-1])
    reference = fake_embedder.embed_documents([corpus.news[news_id] for news_id in ids])
    np.testing.assert_allclose(matrix, reference, atol=1e-6)
    assert index.embeddings([]).shape == (0, fake_embedder.dim)


def test_progress_callback_and_bar(settings, fake_embedder):
    calls: list[tuple[int, int]] = []
    index = NewsIndex(settings, "test", fake_embedder)
    index.sync(make_corpus(), progress=True, on_progress=lambda done, total: calls.append((done, total)), batch_size=3)
    assert calls == [(0, 7), (3, 7), (6, 7), (7, 7)]
    calls.clear()
    index.sync(make_corpus(), on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 0)]


def test_failure_mid_sync_leaves_a_consistent_index_that_the_next_sync_completes(settings):
    corpus = make_corpus()
    crashing = FailingEmbedder(fail_on=2)
    index = NewsIndex(settings, "test", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        index.sync(corpus, batch_size=2)
    assert len(index) == 2  # batch 1 landed, batch 2 did not, nothing after it ran
    assert_consistent(index, [corpus])

    # Change a stored item and crash again before it is re-embedded: the old version must stay whole.
    changed = make_corpus()
    first_id = next(iter(stored(index)))
    changed.news[first_id] = replace(changed.news[first_id], title="Completely different headline about tennis")
    with pytest.raises(RuntimeError):
        NewsIndex(settings, "test", FailingEmbedder(fail_on=1)).sync(changed, batch_size=2)
    assert_consistent(index, [corpus, changed])
    assert stored(index)[first_id][0] == corpus.news[first_id].content_hash()

    healthy = HashingEmbedder()
    index = NewsIndex(settings, "test", healthy)
    stats = index.sync(changed, batch_size=2)
    assert (stats.added, stats.updated, stats.unchanged, stats.removed) == (5, 1, 1, 0)
    assert healthy.calls == 6
    assert len(index) == 7
    assert_consistent(index, [changed])
    assert index.sync(changed).unchanged == 7


def test_embedder_with_wrong_output_shape_is_rejected(settings):
    class Broken(HashingEmbedder):
        def embed_documents(self, items):
            return np.zeros((len(items), 3), np.float32)

    with pytest.raises(RuntimeError, match="shape"):
        NewsIndex(settings, "test", Broken()).sync(make_corpus())


def test_collections_are_separate_per_corpus_and_embedder(settings, fake_embedder):
    class Other(HashingEmbedder):
        name = "fake-other"

    NewsIndex(settings, "test", fake_embedder).sync(make_corpus())
    assert len(NewsIndex(settings, "test", Other())) == 0
    assert len(NewsIndex(settings, "other-corpus", fake_embedder)) == 0

    class Wider(HashingEmbedder):  # same name, new vector size: old vectors are unusable and dropped
        dim = 32

    assert len(NewsIndex(settings, "test", Wider())) == 0


def test_index_persists_across_processes(settings, fake_embedder, newsrec_home):
    NewsIndex(settings, "test", fake_embedder).sync(make_corpus())
    script = f"""
import json, sys
sys.path.insert(0, {str(REPO_ROOT / "tests")!r})
from conftest import HashingEmbedder
from newsrec.config import Settings
from newsrec.index import NewsIndex
embedder = HashingEmbedder()
index = NewsIndex(Settings.from_env(), "test", embedder)
hits = index.search(embedder.embed_queries(["world cup final"])[0], 2)
print(json.dumps({{"count": len(index), "top": hits[0][0], "embedded": embedder.calls}}))
"""
    env = {**os.environ, "NEWSREC_HOME": str(newsrec_home), "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"count": 7, "top": "n5", "embedded": 0}


def test_chroma_url_is_validated(settings):
    with pytest.raises(InputError, match="http"):
        chroma_client(replace(settings, chroma_url="ftp://example.org"))
    with pytest.raises(InputError, match="cannot reach"):
        chroma_client(replace(settings, chroma_url="http://127.0.0.1:9"))  # discard port: nothing listens


# --- Chroma server mode: headers, batch sizes, clear errors (issue 11) -----------------------------------


class _AuthProxy:
    """A reverse proxy in front of the Chroma server that wants one header, as a deployment's proxy would."""

    def __init__(self, upstream: str, header: str, value: str):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        host, port = upstream.removeprefix("http://").split(":")
        self.refused = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                if self.headers.get(header) != value:
                    proxy.refused += 1
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "connection"}}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, item in response.getheaders():
                    if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                        self.send_header(key, item)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_chroma_headers_reach_the_server_through_a_proxy(chroma_server, fake_embedder, monkeypatch):
    from newsrec.errors import ServiceUnavailableError

    proxy = _AuthProxy(chroma_server, "X-Chroma-Token", "s3cret")
    try:
        monkeypatch.setenv("NEWSREC_CHROMA_URL", proxy.url)
        monkeypatch.setenv("NEWSREC_CHROMA_HEADERS", '{"X-Chroma-Token": "s3cret"}')
        index = NewsIndex(Settings.from_env(), "proxied", fake_embedder)
        index.sync(make_corpus())
        assert index.search(fake_embedder.embed_queries(["world cup final"])[0], 1)[0][0] == "n5"
        monkeypatch.setenv("NEWSREC_CHROMA_HEADERS", "X-Chroma-Token=wrong")
        with pytest.raises((InputError, ServiceUnavailableError)):
            NewsIndex(Settings.from_env(), "proxied", fake_embedder)
        assert proxy.refused > 0
    finally:
        proxy.close()


def test_chroma_headers_setting_parses_json_and_pairs():
    from newsrec.config import parse_headers

    assert parse_headers('{"Authorization": "Bearer t"}') == {"Authorization": "Bearer t"}
    assert parse_headers("X-A=1, X-B=two") == {"X-A": "1", "X-B": "two"}
    assert parse_headers("") == {}
    for bad in ("{not json", "[1]", "novalue"):
        with pytest.raises(InputError, match="NEWSREC_CHROMA_HEADERS"):
            parse_headers(bad)


def test_writes_respect_the_servers_max_batch_size(settings, fake_embedder, monkeypatch):
    index = NewsIndex(settings, "test", fake_embedder)
    monkeypatch.setattr(index, "client", _SmallBatches(index.client, 3))
    sizes = []
    upsert = index.collection.upsert
    monkeypatch.setattr(
        index, "collection", _Spy(index.collection, "upsert", lambda **kw: sizes.append(len(kw["ids"])) or upsert(**kw))
    )
    index.sync(make_corpus(), batch_size=1024)
    assert sizes and max(sizes) <= 3 and sum(sizes) == 7


def test_collection_deleted_under_a_running_index_is_a_clear_error(chroma_server, fake_embedder, monkeypatch):
    from newsrec.errors import ServiceUnavailableError

    monkeypatch.setenv("NEWSREC_CHROMA_URL", chroma_server)
    index = NewsIndex(Settings.from_env(), "gone", fake_embedder)
    index.sync(make_corpus())
    index.client.delete_collection(index.name)
    with pytest.raises(ServiceUnavailableError, match="missing on the Chroma server"):
        index.search(fake_embedder.embed_queries(["border"])[0], 3)


def test_chroma_server_going_down_mid_run_is_a_clear_error(chroma_server, fake_embedder, monkeypatch):
    from newsrec.errors import ServiceUnavailableError

    proxy = _AuthProxy(chroma_server, "X-Chroma-Token", "t")
    monkeypatch.setenv("NEWSREC_CHROMA_URL", proxy.url)
    monkeypatch.setenv("NEWSREC_CHROMA_HEADERS", "X-Chroma-Token=t")
    index = NewsIndex(Settings.from_env(), "outage", fake_embedder)
    index.sync(make_corpus())
    proxy.close()  # the server's front door goes away while the app runs
    with pytest.raises(ServiceUnavailableError, match="unreachable"):
        index.search(fake_embedder.embed_queries(["border"])[0], 3)


def test_reads_and_writes_page_within_chroma_clouds_limits(chroma_server, fake_embedder, monkeypatch):
    """Against a real server that refuses, as Chroma Cloud does, more than N results per read or query and
    more than N records per write: with chroma_page_size = N everything pages; without, the build fails."""
    monkeypatch.setenv("NEWSREC_CHROMA_URL", chroma_server)
    monkeypatch.setenv("NEWSREC_CHROMA_PAGE_SIZE", "7")
    settings = Settings.from_env()
    assert settings.chroma_page_size == 7
    titles = {f"n{i}": (f"story {i} about {['border', 'battery', 'rates'][i % 3]} news", "world") for i in range(1, 31)}
    corpus = make_corpus(titles)
    calls: list[tuple[str, int]] = []
    index = NewsIndex(settings, "paged", fake_embedder, client=_CloudLimits(chroma_client(settings), 7, calls))
    assert index.sync(corpus).added == 30
    assert sorted(index.all_ids()) == sorted(titles)  # the whole collection, read 7 at a time
    vectors = np.asarray(fake_embedder.embed_documents([corpus.news[i] for i in index.all_ids()]))
    np.testing.assert_allclose(index.matrix(), vectors, atol=1e-6)
    assert {name for name, _ in calls} >= {"get", "upsert"} and max(n for _, n in calls) == 7
    # A second sync reads the stored hashes in pages and deletes in chunks.
    changed = dict(list(titles.items())[:18])
    changed["n2"] = ("a rewritten headline", "world")
    stats = index.sync(make_corpus(changed))
    assert (stats.removed, stats.updated, stats.unchanged) == (12, 1, 17)
    assert len(index) == 18 and sorted(index.all_ids()) == sorted(changed)
    assert len(index.search(fake_embedder.embed_queries(["border"])[0], 20)) == 7  # capped at the page size

    monkeypatch.setenv("NEWSREC_CHROMA_PAGE_SIZE", "1000")  # no paging against the same limits: refused
    unpaged = NewsIndex(Settings.from_env(), "unpaged", fake_embedder, client=_CloudLimits(chroma_client(settings), 7))
    with pytest.raises(ValueError, match="Chroma Cloud"):
        unpaged.sync(corpus)
    with pytest.raises(InputError, match="NEWSREC_CHROMA_PAGE_SIZE"):
        monkeypatch.setenv("NEWSREC_CHROMA_PAGE_SIZE", "0")
        Settings.from_env()


class _CloudLimits:
    """A Chroma client, or one of its collections, refusing what Chroma Cloud refuses: a read or query of
    more than `limit` results (a get without a limit reads everything), a write of more than `limit`."""

    def __init__(self, target, limit: int, calls: list | None = None):
        self._target, self._limit, self._calls = target, limit, calls if calls is not None else []

    def __getattr__(self, name):
        attribute = getattr(self._target, name)
        if name.endswith("collection") and name != "delete_collection":
            return lambda *args, **kwargs: _CloudLimits(attribute(*args, **kwargs), self._limit, self._calls)
        if name not in {"get", "query", "upsert", "add", "update", "delete"}:
            return attribute

        def call(*args, **kwargs):
            if name == "get":
                size = len(kwargs["ids"]) if kwargs.get("ids") is not None else kwargs.get("limit") or 10**9
            elif name == "query":
                size = kwargs.get("n_results", 10)
            else:
                size = len(kwargs.get("ids") or [])
            if size > self._limit:
                raise ValueError(f"Chroma Cloud: {name} of {size} records; the limit is {self._limit}")
            self._calls.append((name, size))
            return attribute(*args, **kwargs)

        return call


class _SmallBatches:
    def __init__(self, client, size):
        self._client, self._size = client, size

    def get_max_batch_size(self):
        return self._size

    def __getattr__(self, name):
        return getattr(self._client, name)


class _Spy:
    def __init__(self, target, name, replacement):
        self._target, self._name, self._replacement = target, name, replacement

    def __getattr__(self, name):
        return self._replacement if name == self._name else getattr(self._target, name)


def test_the_embedded_store_is_read_by_id_not_by_offset(fake_embedder, monkeypatch):
    """Chroma's embedded store answers a limit/offset page by skipping `offset` rows, so paging a large collection
    by offset grows with its square (a 1M collection's start-up had not finished after 30 minutes). Every read of
    the whole collection goes by id in pages of chroma_page_size, and sees every record once."""
    monkeypatch.setenv("NEWSREC_CHROMA_PAGE_SIZE", "4")
    settings = Settings.from_env()
    titles = {f"n{i}": (f"story {i} about {['border', 'battery', 'rates'][i % 3]} news", "world") for i in range(1, 19)}
    corpus = make_corpus(titles)
    index = NewsIndex(settings, "by-id", fake_embedder)
    index.sync(corpus)
    gets: list[dict] = []
    real_get = index.collection.get

    def spy(**kwargs):
        gets.append(kwargs)
        return real_get(**kwargs)

    monkeypatch.setattr(index.collection, "get", spy, raising=False)
    index._invalidate()
    assert sorted(index.all_ids()) == sorted(titles) and len(index.all_ids()) == 18
    changed = dict(list(titles.items())[:10])
    assert index.sync(make_corpus(changed)).removed == 8  # the stored hashes are read the same way
    assert gets and not any(call.get("offset") for call in gets)
    assert max(len(call.get("ids") or []) for call in gets) == 4


def _many_stories(n: int) -> Corpus:
    topics = ["border", "battery", "rates", "election", "harvest"]
    news = {
        f"n{i}": NewsItem(id=f"n{i}", title=f"story {i} on {topics[i % 5]} and {topics[i * 3 % 5]}", category="world")
        for i in range(1, n + 1)
    }
    return Corpus(name="test", root=Path("."), news=news)


def test_a_rebuild_of_an_unchanged_corpus_reads_nothing_from_chroma_and_writes_the_staging_in_few_batches(
    fake_embedder, monkeypatch
):
    """An unchanged corpus's vectors are all in the vector cache: the rebuild asks the cache which it lacks (none)
    instead of reading every record of the live collection, and fills the staging collection in writes of the
    embedded store's own limit, not 1,024-story sync batches nor the page size (a server's read limit)."""
    monkeypatch.setenv("NEWSREC_CHROMA_PAGE_SIZE", "4")
    settings = Settings.from_env()
    corpus = _many_stories(40)
    calls: list[tuple[str, int]] = []
    index = NewsIndex(settings, "rebuilt", fake_embedder, client=_CloudLimits(chroma_client(settings), 10**9, calls))
    index.sync(corpus, batch_size=16)
    assert max(n for name, n in calls if name == "upsert") == 16  # the sync's batches whole, not pages of 4
    calls.clear()
    embedded = fake_embedder.calls
    stats = index.rebuild(corpus)
    assert stats.added == 40 and fake_embedder.calls == embedded  # nothing encoded
    assert [name for name, _ in calls if name == "get"] == []  # the live collection is not read
    assert [(name, n) for name, n in calls if name == "upsert"] == [("upsert", 40)]  # one write of the whole corpus
    assert sorted(index.all_ids()) == sorted(corpus.news) and len(index) == 40
    vectors = np.asarray(fake_embedder.embed_documents([corpus.news[i] for i in index.all_ids()]))
    np.testing.assert_allclose(index.matrix(), vectors, atol=1e-6)
    for news_id in ("n1", "n17", "n40"):  # the new graph answers (with the item or an identical hashing vector)
        assert index.search(index.embeddings([news_id])[0], 1)[0][1] > 0.9999


def test_a_rebuild_copies_only_the_vectors_the_cache_lacks_from_the_live_collection(settings, fake_embedder):
    corpus = _many_stories(12)
    index = NewsIndex(settings, "partly", fake_embedder)
    index.sync(corpus)
    lost = sorted(corpus.news[i].content_hash() for i in ("n2", "n5", "n11"))
    with index.vectors._db:
        index.vectors._db.executemany("DELETE FROM vectors WHERE key = ?", [(key,) for key in lost])
    assert index.vectors.missing(item.content_hash() for item in corpus.news.values()) == set(lost)
    embedded = fake_embedder.calls
    assert index.rebuild(corpus).added == 12
    assert fake_embedder.calls == embedded  # the three came from the live collection, not the embedder
    assert index.vectors.missing(lost) == set() and len(index.vectors) == 12
    assert_consistent(index, [corpus])


def test_vector_cache_missing_reads_keys_only(tmp_path):
    from newsrec.vector_cache import VectorCache

    cache = VectorCache(tmp_path / "v.sqlite", 4)
    cache.put_many({f"k{i}": np.full(4, i, np.float32) for i in range(1200)})  # more keys than one query takes
    asked = [f"k{i}" for i in range(0, 1400, 2)]
    assert cache.missing(asked) == {f"k{i}" for i in range(1200, 1400, 2)}
    assert cache.missing([]) == set() and cache.missing(["k3", "k3"]) == set()


def test_a_rebuild_leaves_no_segment_folder_of_the_old_graph(fake_embedder, newsrec_home):
    """Chroma's delete_collection keeps the deleted collection's HNSW folder: each rebuild left the old graph on disk
    (24 MB for NeMig, ~2.4 GB at 1M stories), and the health manifest checksummed all of them after every write."""
    settings = Settings.from_env()
    corpus = _many_stories(30)
    index = NewsIndex(settings, "swept", fake_embedder)
    index.sync(corpus)
    other = NewsIndex(settings, "kept", fake_embedder)
    other.sync(make_corpus())

    def folders() -> set[str]:
        return {path.name for path in settings.chroma_dir.iterdir() if path.is_dir()}

    before = folders()
    assert len(before) == 2
    index.rebuild(corpus)
    index.rebuild(corpus)
    after = folders()
    assert len(after) == 2 and len(after & before) == 1  # the other collection's folder stays, the old graph's goes
    assert sorted(index.all_ids()) == sorted(corpus.news) and len(other) == 7
    assert index.search(index.embeddings(["n3"])[0], 1)[0][1] > 0.9999  # both graphs answer
    assert other.search(other.embeddings(["n3"])[0], 1)[0][0] == "n3"
