"""Fault suite, round two (issue 20): a running recommender (what the app holds) and other writers.

Another process ingests into the served corpus or rebuilds its index; the recommender must pick that up
and keep answering. Run alone with `-m faults`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_faults import write_source

from newsrec.config import Settings
from newsrec.data.corpus import load_corpus
from newsrec.data.ingest import ingest

pytestmark = [pytest.mark.faults, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "newsrec", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )


def served(tmp_path: Path):
    from newsrec.pipeline import Recommender

    ingest(write_source(tmp_path / "a", "a", items=200, users=5), Settings.from_env(), corpus="live")
    settings = Settings.from_env(corpus="live", embedder="lite", reranker="lite")
    return Recommender.from_settings(settings)


def test_a_served_recommender_follows_another_process_ingest(tmp_path):
    rec = served(tmp_path)  # built, nothing served yet
    done = cli("ingest", str(write_source(tmp_path / "b", "b", items=150)), "--corpus", "live", "--embedder", "lite")
    assert done.returncode == 0, done.stderr[-1500:]
    result = rec.recommend("u1", k=5)  # the old code: "Error finding id ... run `index --rebuild`"
    assert len(result.reranked) == 5
    assert len(rec.corpus.news) == 350 and rec.index.has("b0") and len(rec.index) == 350
    found = rec.recommend("u1", query="Story b7 about b", k=3)
    assert "b7" in [card.item.id for card in found.reranked]  # the other process's items are served


def test_index_rebuild_while_serving_is_safe(tmp_path):
    rec = served(tmp_path)
    assert len(rec.recommend("u2", k=5).reranked) == 5
    done = cli("index", "--corpus", "live", "--rebuild", "--embedder", "lite")
    assert done.returncode == 0, done.stderr[-1500:]
    result = rec.recommend("u2", k=5)  # the old code: "Collection ... does not exist" until a restart
    assert len(result.reranked) == 5 and len(rec.index) == 200


def test_sync_from_a_stale_snapshot_keeps_the_other_writers_vectors(tmp_path, fake_embedder):
    from newsrec.index import NewsIndex

    ingest(write_source(tmp_path / "a", "a", items=30), Settings.from_env(), corpus="race")
    stale = load_corpus(Settings.from_env(), "race")  # a writer read the corpus here ...
    index = NewsIndex(Settings.from_env(), "race", fake_embedder)
    index.sync(stale)
    # ... meanwhile another writer committed its items and indexed them
    ingest(write_source(tmp_path / "b", "b", items=20), Settings.from_env(), corpus="race")
    NewsIndex(Settings.from_env(), "race", fake_embedder).sync(load_corpus(Settings.from_env(), "race"))
    assert len(index) == 50
    index.sync(stale)  # the old code deleted b0..b19 here: "removed" came from the stale snapshot
    assert len(index) == 50 and all(index.has(f"b{i}") for i in range(20))


REBUILD_ELSEWHERE = """
import sys
from conftest import HashingEmbedder
from newsrec.config import Settings
from newsrec.data.corpus import load_corpus
from newsrec.index import NewsIndex

settings = Settings.from_env()
NewsIndex(settings, sys.argv[1], HashingEmbedder()).rebuild(load_corpus(settings, sys.argv[1]))
"""


def test_a_sync_through_a_handle_opened_before_another_process_rebuilt_the_index(tmp_path, fake_embedder):
    """An ingest opens the index, then another process's `index --rebuild` swaps the collection (a new one renamed
    in, the old one deleted) before the ingest's sync takes the store's lock. The old code synced through the
    handle of the deleted collection ("Collection [...] does not exist"): the ingest failed, one of the ways
    `bench load --writers` could exit 1."""
    from newsrec.index import NewsIndex

    ingest(write_source(tmp_path / "a", "a", items=30), Settings.from_env(), corpus="swap")
    index = NewsIndex(Settings.from_env(), "swap", fake_embedder)  # opened, as `ingest` does before it syncs
    index.sync(load_corpus(Settings.from_env(), "swap"))
    ingest(write_source(tmp_path / "b", "b", items=20), Settings.from_env(), corpus="swap")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    done = subprocess.run(
        [sys.executable, "-c", REBUILD_ELSEWHERE, "swap"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-1500:]
    stats = index.sync(load_corpus(Settings.from_env(), "swap"))  # the collection it opened is gone now
    assert stats.added == 0 and len(index) == 50 and index.has("b19")  # the rebuild had already added b0..b19


def test_a_switch_that_waits_for_another_process_rebuild_serves_the_rebuilt_index(tmp_path, monkeypatch):
    """A request switches to a newer corpus: it reopens the store while nobody writes, then reads the corpus
    while another process's `index --rebuild` takes the store's lock and swaps the collection; its sync waits
    for that lock. The old code then synced through the handle it had just opened, whose collection the rebuild
    had deleted, and the request failed (the bench load test's exit 1)."""
    import newsrec.data.corpus as corpus_module

    rec = served(tmp_path)
    assert len(rec.recommend("u1", k=5).reranked) == 5
    ingest(write_source(tmp_path / "b", "b", items=150), Settings.from_env(), corpus="live")  # a newer generation
    real, rebuilt = corpus_module.read_corpus, []

    def rebuild_meanwhile(*args, **kwargs):
        if not rebuilt:  # the request has reopened the store; the rebuild gets the lock before its sync
            rebuilt.append(cli("index", "--corpus", "live", "--rebuild", "--embedder", "lite"))
        return real(*args, **kwargs)

    monkeypatch.setattr(corpus_module, "read_corpus", rebuild_meanwhile)
    found = rec.recommend("u1", query="Story b7 about b", k=3)
    assert rebuilt and rebuilt[0].returncode == 0, rebuilt[0].stderr[-1500:]
    assert "b7" in [card.item.id for card in found.reranked]
    assert len(rec.corpus.news) == 350 and len(rec.index) == 350


def test_chroma_client_is_created_inside_the_store_lock(monkeypatch, fake_embedder):
    from filelock import FileLock, Timeout

    import newsrec.index as index_module

    settings = Settings.from_env()
    real = index_module.chroma_client
    held = []

    def probing(settings_):
        other = FileLock(settings_.chroma_dir.with_name(f"{settings_.chroma_dir.name}.lock"))
        try:
            other.acquire(timeout=0)
        except Timeout:
            held.append(True)
        else:
            other.release()
            held.append(False)
        return real(settings_)

    monkeypatch.setattr(index_module, "chroma_client", probing)
    worker = threading.Thread(target=lambda: index_module.NewsIndex(settings, "locked", fake_embedder))
    worker.start()
    worker.join(timeout=120)
    assert held == [True]  # another process creating its client at the same moment waits for this one


def _server_collection(url: str, name: str):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    host, port = url.removeprefix("http://").split(":")
    client = chromadb.HttpClient(host=host, port=int(port), settings=ChromaSettings(anonymized_telemetry=False))
    return client, name


def test_a_deleted_server_collection_heals_after_the_cli_recreates_it(tmp_path, chroma_server, monkeypatch):
    """The issue's case on a real `chroma run`: the collection is deleted under the app, the CLI re-creates it;
    the app used to keep failing ("collection ... is missing on the Chroma server") until a restart."""
    monkeypatch.setenv("NEWSREC_CHROMA_URL", chroma_server)
    client, _ = _server_collection(chroma_server, "")
    for collection in client.list_collections():  # a clean server, as with a fresh temp dir
        client.delete_collection(collection.name)
    rec = served(tmp_path)
    assert len(rec.recommend("u1", k=5).reranked) == 5
    client.delete_collection(rec.index.name)
    done = cli("index", "--corpus", "live", "--embedder", "lite")  # re-creates it (a new collection id)
    assert done.returncode == 0, done.stderr[-1500:]
    assert client.get_collection(rec.index.name).count() == 200
    result = rec.recommend("u1", k=5)
    assert len(result.reranked) == 5 and len(rec.index) == 200
    # Deleted with nobody re-creating it: the app re-creates and re-fills it from the committed corpus.
    client.delete_collection(rec.index.name)
    result = rec.recommend("u2", query="Story a7 about a", k=3)
    assert "a7" in [card.item.id for card in result.reranked]
    assert client.get_collection(rec.index.name).count() == 200 and len(rec.index) == 200


def test_bench_load_with_writers_loses_nothing_and_serves_throughout(newsrec_home):
    """The cheap version of issue 20's load figure: the dashboard under load while another process ingests and
    one rebuilds the served corpus; no request fails, and corpus and index hold the union of all writes."""
    import json

    env = {"NEWSREC_EMBEDDER": "lite", "NEWSREC_RERANKER": "lite", "GRADIO_ANALYTICS_ENABLED": "False"}
    done = subprocess.run(
        [sys.executable, "-m", "newsrec", "bench", "load", "--concurrency", "4", "--requests", "40"]
        + ["--writers", "1", "--writer-items", "150", "--json"],
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.stdout.lstrip().startswith("{"), done.stdout[:500] + done.stderr[-3000:]  # nothing but the JSON
    figures = json.loads(done.stdout)
    # On failure, show what the benchmark found (errors, writers' exit codes and stderr, counts), not the log tail.
    found = {key: figures.get(key) for key in ("errors", "writers_failed", "writers", "counts")}
    found["first_errors"] = [figures[phase]["first_errors"] for phase in ("without_writers", "with_writers")]
    if done.returncode:  # a string, so pytest shows all of it
        pytest.fail(json.dumps(found, ensure_ascii=False, indent=1)[:6000])
    assert figures["errors"] == 0 and figures["writers_failed"] == 0
    assert [w["writer"] for w in figures["writers"]] == ["ingest 0", "index --rebuild"]
    assert figures["without_writers"]["completed"] == figures["with_writers"]["completed"] == 40
    assert figures["requests_while_writing"] > 0  # the writers ran while the app was under load
    # the request timeline: every timed request of both phases, and the app's switches to the writers' state
    timeline = figures["timeline"]
    assert len(timeline["without_writers"]) == len(timeline["with_writers"]) == 40
    assert all(row["ok"] and row["end"] > row["start"] for row in timeline["with_writers"])
    assert figures["switches"]["count"] == len(timeline["switches"])
    summary = figures["switches"]
    assert summary["requests_overlapping"] + summary["requests_not_overlapping"] == 40
    counts = figures["counts"]
    assert counts["nothing_lost"] and counts["expected_items"] == 350 and counts["corpus_items"] == 350
    assert list(counts["index"].values()) == [350]
    assert figures["p95_ratio"] > 0  # both phases measured in one run


def test_bench_load_counts_a_session_that_cannot_connect_and_runs_the_rest():
    """A session whose client cannot connect (a loaded machine, a refused connection) is one error of the run. The
    old code created the client before its try: the thread died before the barrier where the other sessions wait
    to start the timed requests (and the writers), and the benchmark hung until the test's timeout."""
    import argparse
    import functools
    import itertools
    import time

    import gradio_client

    from newsrec.bench import load

    made = itertools.count()

    class Client:
        def __init__(self, url, verbose=False, httpx_kwargs=None):
            if next(made) == 0:
                raise ConnectionError("connection refused")

        def predict(self, *args, api_name):
            return [{"choices": [["Reader 1", "u1"]]}] if api_name == "/on_load" else None

    api = {name: {"parameters": []} for name in ("/on_load", "/on_user", "/on_run")}
    args = argparse.Namespace(concurrency=3, requests=6, load_api="/on_load", user_api="/on_user", run_api="/on_run")
    result, started = load.LoadResult(), []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gradio_client, "Client", Client)
        # (a barrier that gives up after 20 s, so that the old code fails this test instead of hanging pytest)
        patch.setattr(threading, "Barrier", functools.partial(threading.Barrier, timeout=20))
        run = threading.Thread(
            target=load._phase,
            args=("http://127.0.0.1:9", api, ["u1"], args, result, time.perf_counter()),
            kwargs={"on_ready": lambda: started.append(True)},
            daemon=True,
        )
        run.start()
        run.join(timeout=60)
    assert not run.is_alive(), "the sessions that connected waited for the one that did not"
    assert len(result.errors) == 1 and "connection refused" in result.errors[0]
    assert len(result.latencies) == 6 and started == [True]  # the others made every request; the writers started


def test_bench_load_latencies_keep_milliseconds():
    """A lite request on a quick machine can take a few milliseconds: rounded to 0.01 s, p95 came out 0.0 and the
    p95 ratio None (the load test's `p95_ratio > 0` raised a TypeError)."""
    import argparse

    from newsrec.bench import load

    args = argparse.Namespace(concurrency=2, requests=4)
    figures = load._figures(load.LoadResult(latencies=[0.002, 0.003, 0.003, 0.004]), 0.5, args)
    assert 0 < figures["p50_s"] <= figures["p95_s"] <= figures["p99_s"] < 0.005
    assert load._ratio(load._p95([0.004] * 4), load._p95([0.002] * 4)) == 2.0 and load._ratio(1.0, 0.0) is None


def test_a_request_that_overlaps_a_switch_is_answered_once_more_from_the_new_state():
    """Another request of the process switched to a new corpus while this one ran: what it read may mix the two
    (an id the old index lacks, say). It is answered once more instead of failing; a failure with no switch
    around it is the caller's, as before."""
    from types import SimpleNamespace

    from newsrec.follow import follows_store

    class Index:
        _seen, collection = (1, 1), object()

        def changed_elsewhere(self):
            return False

    class Rec:
        def __init__(self):
            self.corpus, self.index, self.calls = SimpleNamespace(generation=""), Index(), 0

        @follows_store
        def recommend(self, switch: bool):
            self.calls += 1
            if self.calls == 1:
                if switch:
                    self.corpus = SimpleNamespace(generation="")  # what another request's switch does
                raise KeyError("n999")  # read from a state half switched
            return "answered"

    rec = Rec()
    assert rec.recommend(True) == "answered" and rec.calls == 2
    with pytest.raises(KeyError):
        Rec().recommend(False)


def test_a_switch_never_waits_for_a_writer_that_took_the_store_lock(tmp_path, monkeypatch):
    """Another process committed a corpus generation; between the app's reopen and its sync a writer (an ingest's
    sync, a rebuild; with NEWSREC_BATCH_NICE at a lower CPU priority) takes the store's write lock. The request
    answers from the state it has at once instead of waiting for that writer; a later request switches. Each switch
    is noted in NEWSREC_SWITCH_LOG."""
    import json
    import time

    from filelock import FileLock

    from newsrec import config

    switches = tmp_path / "switches.jsonl"
    monkeypatch.setenv("NEWSREC_SWITCH_LOG", str(switches))
    monkeypatch.setattr(config, "FOLLOW_INDEX_GRACE_S", 0.0)  # no writer indexes b*: the app does
    rec = served(tmp_path)
    ingest(write_source(tmp_path / "b", "b", items=150), Settings.from_env(), corpus="live")  # corpus only
    settings = rec.settings
    writer = FileLock(settings.chroma_dir.with_name(f"{settings.chroma_dir.name}.lock"))
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:  # another writer: holds the lock until told (a thread's FileLock excludes this one's)
        writer.acquire()
        taken.set()
        release.wait(120)
        writer.release()

    real_reopen = rec.index.reopen

    def reopen_then_a_writer_arrives(wait: bool = True) -> bool:
        opened = real_reopen(wait=wait)
        if opened and not taken.is_set():
            threading.Thread(target=hold, daemon=True).start()
            taken.wait(30)
        return opened

    monkeypatch.setattr(rec.index, "reopen", reopen_then_a_writer_arrives)
    releaser = threading.Timer(40, release.set)  # the old code waits here for the writer: 40 s
    releaser.start()
    try:
        started = time.perf_counter()
        result = rec.recommend("u1", k=5)
        assert time.perf_counter() - started < 20 and len(result.reranked) == 5
        assert len(rec.corpus.news) == 200  # answered from the state it had
    finally:
        release.set()
        releaser.cancel()
    time.sleep(0.5)  # the writer thread lets go
    rec.recommend("u1", k=5)
    assert len(rec.corpus.news) == 350 and rec.index.has("b0")  # a later request switched (and indexed b*)
    events = [json.loads(line) for line in switches.read_text().splitlines()]
    assert [event["kind"] for event in events] == ["reopen", "reload"]
    assert events[-1]["items"] == 350 and {"read_corpus", "sync", "lexical", "stage"} <= set(events[-1]["phases_s"])


def test_a_profile_outside_recommend_follows_the_store_after_a_failure(tmp_path, monkeypatch):
    """The dashboard's charts and the editorial feeds build a reader's profile outside `recommend`; a store failure
    there (another process's rebuild dropped the collection it read) is retried after a reopen, as in `recommend`."""
    from newsrec.index_health import StoreError

    rec = served(tmp_path)
    real, failures = rec.index.embeddings, []

    def embeddings_after_a_rebuild(ids):
        if not failures:
            failures.append(ids)
            raise StoreError("the vector store failed (NotFoundError: Collection [x] does not exist.)")
        return real(ids)

    monkeypatch.setattr(rec.index, "embeddings", embeddings_after_a_rebuild)
    profile = rec.profile("u3")  # the old code: the StoreError reached the dashboard as an error
    assert failures and profile.read_ids and len(profile.interests) >= 1


def test_a_retry_that_fails_again_under_a_rebuild_is_tried_once_more(tmp_path, monkeypatch):
    """A rebuild that starts after the retry's reopen swaps its collection in under the retry: the request fails a
    second time with the same "does not exist". One more reopen (which waits for that rebuild) answers it; a store
    that keeps failing still ends in the error, after STORE_RETRIES tries."""
    from newsrec.index_health import StoreError

    rec = served(tmp_path)
    real, failures = rec.index.search, []

    def search_under_rebuilds(*args, **kwargs):
        if len(failures) < 2:
            failures.append(1)
            raise StoreError("the vector store failed (NotFoundError: Collection [x] does not exist.)")
        return real(*args, **kwargs)

    monkeypatch.setattr(rec.index, "search", search_under_rebuilds)
    assert len(rec.recommend("u1", query="Story a7", k=5).reranked) == 5  # the old code: failed at the 2nd failure
    assert len(failures) == 2
    from newsrec.follow import STORE_RETRIES

    failures.clear()

    def always_failing(*args, **kwargs):
        failures.append(1)
        raise StoreError("the vector store failed (disk I/O error)")

    monkeypatch.setattr(rec.index, "search", always_failing)
    with pytest.raises(StoreError):
        rec.recommend("u1", query="Story a7", k=5)
    assert len(failures) == 1 + STORE_RETRIES


def test_a_new_generation_without_vectors_waits_for_its_writer_then_the_grace(tmp_path, monkeypatch):
    """An ingest commits the corpus, then indexes it. A request in between does not embed that writer's batch on the
    app's request path (CPU under the GIL, and a write to the store beside the writer's): it serves the previous
    generation; past config.FOLLOW_INDEX_GRACE_S (an `ingest --no-index`) the app indexes the items itself."""
    import newsrec.data.corpus as corpus_module
    from newsrec import config

    rec = served(tmp_path)
    ingest(write_source(tmp_path / "b", "b", items=150), Settings.from_env(), corpus="live")  # commit, no index yet
    reads, real_read = [], corpus_module.read_corpus
    monkeypatch.setattr(corpus_module, "read_corpus", lambda *a, **k: reads.append(1) or real_read(*a, **k))
    for _ in range(3):
        rec.recommend("u1", k=5)
    assert len(rec.corpus.news) == 200 and len(rec.index) == 200  # the old code embedded b0..b149 right here
    assert len(reads) == 1  # found waiting once; the next requests do not read the corpus again while it waits
    monkeypatch.setattr(config, "FOLLOW_INDEX_GRACE_S", 0.0)  # as if the writer never indexes them
    rec.recommend("u1", k=5)
    assert len(rec.corpus.news) == 350 and len(rec.index) == 350 and rec.index.has("b0")


def test_a_bilingual_corpus_keeps_query_translation_after_a_switch(tmp_path):
    """A switch to another writer's state rebuilds the lexical index; it must get its translator back as well."""
    from newsrec.pipeline import Recommender

    ingest(REPO / "assets" / "demo", Settings.from_env(), corpus="zhen")
    rec = Recommender.from_settings(Settings.from_env(corpus="zhen", embedder="lite", reranker="lite"))
    assert rec.lexical.translator is not None  # en + zh stories and the lite encoder

    def english(query: str) -> list[str]:
        return [
            card.item.id for card in rec.recommend("guest", query=query, k=5).reranked if card.item.language == "en"
        ]

    before = english("钠离子电池")  # sodium-ion batteries
    assert before  # English stories, reached through translation
    done = cli("ingest", str(write_source(tmp_path / "b", "b", items=20)), "--corpus", "zhen", "--embedder", "lite")
    assert done.returncode == 0, done.stderr[-1500:]
    after = english("钠离子电池")
    assert len(rec.corpus.news) == len(load_corpus(Settings.from_env(), "zhen").news)  # it switched
    assert rec.lexical.translator is not None and after == before  # the old code: no translator, no English story


def test_a_request_after_another_process_rebuild_does_not_wait_for_the_writers_queued_behind_it(tmp_path, monkeypatch):
    """`index --rebuild` swapped a new collection in and deleted the one this process had open; ingests then hold
    the store's write lock in turn. The request's retry opens the collection that exists now, without that lock;
    the old code reopened under the lock and every request of the app waited for the writers."""
    from newsrec.index_health import StoreError

    rec = served(tmp_path)
    assert len(rec.recommend("u1", k=5).reranked) == 5
    done = cli("index", "--corpus", "live", "--rebuild", "--embedder", "lite")
    assert done.returncode == 0, done.stderr[-1500:]
    stale = rec.index.collection
    real_search = type(rec.index).search

    def search(index, *args, **kwargs):
        if index.collection is stale:  # what the deleted collection's handle answers (seen in `bench load --writers`)
            raise StoreError("the vector store failed (NotFoundError: Collection [...] does not exist.)")
        return real_search(index, *args, **kwargs)

    monkeypatch.setattr(type(rec.index), "search", search)
    settings = Settings.from_env()
    lock = settings.chroma_dir.with_name(f"{settings.chroma_dir.name}.lock")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time; from filelock import FileLock; held = FileLock({str(lock)!r}); held.acquire(); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"  # a writer holds the lock (as an ingest's sync would)
        answered: list = []
        request = threading.Thread(target=lambda: answered.append(rec.recommend("u1", k=5)), daemon=True)
        request.start()
        request.join(timeout=30)
        assert answered, "the request waited for the store's write lock"
        assert len(answered[0].reranked) == 5 and len(rec.index) == 200
    finally:
        holder.kill()
        holder.wait()
