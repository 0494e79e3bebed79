"""A running recommender follows the store: other processes' ingests and index rebuilds are picked up, not fatal.

The app holds one Recommender for hours while `ingest` and `index --rebuild` run in other shells. Before each
recommendation it makes two cheap checks (two stat calls):
- the corpus's CURRENT names a newer generation: the corpus is read again (all files from one committed
  generation), the index is synced from it under the store's write lock, and the derived state (lexical
  index, IDF, trends, the second stage, profiles) is rebuilt (the lexical index tokenizes only new or changed
  stories). A generation committed moments ago whose new items the index lacks waits for its writer's own sync
  (config.FOLLOW_INDEX_GRACE_S) instead of this process embedding another process's batch on a request;
- the vector store's health manifest changed (every completed sync rewrites it): another process wrote
  vectors, so this process's Chroma client, whose view of the segment files and collection ids is now
  stale ("Error finding id", "Collection ... does not exist"), is reopened. While another process still holds
  the store's write lock (also when it takes the lock between this reopen and the sync) the request is answered
  from the state already loaded (no waiting behind a writer, which `ingest` and `index` run at a lower CPU
  priority, NEWSREC_BATCH_NICE); a later request switches. One request makes the switch; the others answer from
  the loaded state meanwhile. Each switch is logged with its phases (and appended to NEWSREC_SWITCH_LOG if set).
A store failure during a request (a rebuilt or deleted collection, also on a Chroma server) first reopens the
collection that exists now without the write lock (`NewsIndex.reopen_to_read`, the embedded store), else reopens
under the lock and re-syncs from the committed corpus (a deleted collection comes back empty), and retries, at
most STORE_RETRIES times.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from newsrec.errors import NewsrecError

log = logging.getLogger(__name__)

_LOCK = threading.RLock()  # one follower at a time
STORE_RETRIES = 2  # tries after a store failure, each after a reopen and a sync
F = TypeVar("F", bound=Callable[..., Any])


def live_generation(corpus: Any) -> str:
    """The generation CURRENT names now ("" for corpora without generations, e.g. the demo)."""
    from newsrec.data import store

    if not getattr(corpus, "generation", ""):
        return ""
    try:
        folder = store.generation_dir(Path(corpus.root))
    except (OSError, NewsrecError):
        return corpus.generation  # unreadable pointer: keep serving what is loaded; the next write repairs it
    return folder.name if folder != Path(corpus.root) else ""


def follow_store(rec: Any) -> None:
    """Pick up another process's committed writes (see the module docstring)."""
    if not _changed(rec):
        return
    # One request switches; requests arriving meanwhile answer from the state already loaded instead of queueing
    # behind the switch (which may wait for another process's write lock and rebuilds the derived state).
    if not _LOCK.acquire(blocking=False):
        return
    try:
        newer, elsewhere = _newer_generation(rec), rec.index.changed_elsewhere()
        if not (newer or elsewhere):
            return  # another request switched while this one waited for the lock
        if newer and not elsewhere and _still_waiting(rec):
            return  # the generation still waits for its writer's sync (no store write since): nothing to reopen or read
        switch = Switch("reload" if newer else "reopen")
        if not rec.index.reopen(wait=False):
            # Another process is writing right now (an ingest's sync, a rebuild): answer from the state we
            # have instead of making every request wait for it; a later request switches. Should the store
            # fail meanwhile, `follows_store` waits and retries.
            return
        switch.mark("reopen")
        if newer and not _reload_corpus(rec, switch):
            switch.kind = "reopen"  # the corpus switch waits for a later request (a writer took the lock meanwhile)
        switch.done()
    finally:
        _LOCK.release()


class Switch:
    """Timings of one switch, logged and, with NEWSREC_SWITCH_LOG set, appended to that file as a JSON line (the
    request timeline of `bench load` shows which requests overlapped one, and what the switch spent its time on)."""

    def __init__(self, kind: str):
        self.kind, self.started, self.cpu_started = kind, time.time(), time.thread_time()
        self.phases: dict[str, float] = {}
        self.extra: dict[str, Any] = {}
        self._last = time.perf_counter()

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = round(now - self._last, 4)
        self._last = now

    def done(self, **extra: Any) -> None:
        from newsrec.config import switch_log_path

        event = {
            "kind": self.kind,
            "started": self.started,
            "ended": time.time(),
            "cpu_s": round(time.thread_time() - self.cpu_started, 4),  # this thread's CPU; the rest is waiting
            "phases_s": self.phases,
            **self.extra,
            **extra,
        }
        log.info("switch to another writer's state: %s", event)
        path = switch_log_path()
        if path is not None:
            try:
                with path.open("a", encoding="utf-8") as file:
                    file.write(json.dumps(event) + "\n")
            except OSError as error:  # a diagnostic file must never fail a request
                log.warning("could not append to NEWSREC_SWITCH_LOG %s: %s", path, error)


def _newer_generation(rec: Any) -> bool:
    return live_generation(rec.corpus) not in ("", rec.corpus.generation)


def _changed(rec: Any) -> bool:
    return rec.index.changed_elsewhere() or _newer_generation(rec)


def _still_waiting(rec: Any) -> bool:
    """The live generation is the one a switch already found waiting for its writer, and still within the grace."""
    from newsrec import config
    from newsrec.data import store

    if getattr(rec, "_follow_waiting", None) != live_generation(rec.corpus):
        return False
    try:
        committed = (Path(rec.corpus.root) / store.POINTER).stat().st_mtime
    except OSError:
        return False
    return time.time() - committed < config.FOLLOW_INDEX_GRACE_S


def _awaits_its_writer(rec: Any, corpus: Any) -> bool:
    """A generation committed moments ago whose new items the index lacks: its writer indexes them right after the
    commit. Syncing here would embed that writer's whole batch on this request (the app's CPU, under the GIL) and
    write to the store beside it; the switch waits for the writer's sync instead (its store stamp reopens the index;
    the next request switches). Past config.FOLLOW_INDEX_GRACE_S (`ingest --no-index`) the app indexes them."""
    from newsrec import config
    from newsrec.data import store

    try:
        missing = len(corpus.news) - rec.index._stored_count()
        committed = (Path(corpus.root) / store.POINTER).stat().st_mtime
    except (AttributeError, OSError):
        return False
    return missing > 0 and time.time() - committed < config.FOLLOW_INDEX_GRACE_S


def _reload_corpus(rec: Any, switch: Switch | None = None) -> bool:
    from newsrec.data.corpus import read_corpus
    from newsrec.learning.stage import build_stage
    from newsrec.lexical import LexicalIndex
    from newsrec.profiles import idf_table
    from newsrec.recall import ForYouRecall

    switch = switch or Switch("reload")
    corpus = read_corpus(Path(rec.corpus.root), rec.corpus.name)
    switch.mark("read_corpus")
    if _awaits_its_writer(rec, corpus):
        switch.extra["waits_for"] = "the writer to index the new generation"
        rec._follow_waiting = corpus.generation
        return False
    # Under the store's write lock, from the committed corpus; never waiting for it: a writer that took it since
    # `reopen` (an ingest's sync, a rebuild, possibly at a lower CPU priority) would hold this request for its whole
    # run. A later request switches.
    stats = rec.index.sync(corpus, wait=False)
    switch.mark("sync")
    if stats is None:
        return False
    items = list(corpus.news.values())
    lexical = LexicalIndex.build(items)
    lexical.enable_translation(rec.embedder, items, rec.index)  # as the Recommender's constructor does
    switch.mark("lexical")
    stage = build_stage(rec.settings.home, corpus, rec.reranker, rec.embedder, rec.settings.prior_weight, lexical)
    switch.mark("stage")
    recall = ForYouRecall(stage.prior, corpus.news, rec.settings.trend_weight)
    if hasattr(rec.reranker, "prepare_documents"):
        rec.reranker.prepare_documents(items)
    switch.mark("recall")
    if getattr(rec.reranker, "lexical", None) is not None:
        rec.reranker.lexical = lexical
    rec.corpus, rec.lexical, rec.idf, rec.now = corpus, lexical, idf_table(items), corpus.latest
    rec.stage, rec.recall, rec._profiles = stage, recall, {}
    switch.mark("swap")
    switch.extra |= {"items": len(items), "sync": str(stats)}
    log.warning(
        "corpus %s changed on disk (now %s, %d items; index: %s): reloaded",
        corpus.name,
        corpus.generation,
        len(items),
        stats,
    )
    return True


def follows_store(method: F) -> F:
    """Decorate a Recommender request method: follow the store first; on a store failure reopen and retry (twice at
    most)."""
    from newsrec.errors import ServiceUnavailableError
    from newsrec.index_health import StoreError

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        state = None
        try:
            # Inside the try: the switch itself reads the store, which another process's rebuild may swap under it.
            follow_store(self)
            state = _state(self)
            return method(self, *args, **kwargs)
        except (StoreError, ServiceUnavailableError) as error:
            for attempt in range(1, STORE_RETRIES + 1):
                log.warning("the vector store failed (%s): reopening it and trying again (%d)", error, attempt)
                with _LOCK:
                    # First the collection that exists now, without the write lock: after another process's
                    # rebuild swapped its collection in, the ingests queued behind it hold the lock in turn, and
                    # every request of this process would wait for them all.
                    if attempt > 1 or not self.index.reopen_to_read():
                        self.index.reopen()
                        # A deleted collection reopens empty (get_or_create): without a sync the retry would
                        # "succeed" with no candidates at all. The sync fills it from the committed corpus (a no-op
                        # when another process already re-created and filled it).
                        log.warning("index re-synced after the failure: %s", self.index.sync(self.corpus))
                    self._profiles = {}
                try:
                    return method(self, *args, **kwargs)
                except StoreError as again:
                    # A rebuild that started after the reopen swapped its collection in under the retry (seen in
                    # `bench load --writers`: "Collection ... does not exist" twice in a row). It holds the store
                    # lock to its end, so the next reopen waits for it and the next try finds its collection.
                    if attempt == STORE_RETRIES:
                        raise
                    error = again
        except Exception as error:
            if state is None or (_state(self) == state and not _changed(self)):
                raise
            # The request overlapped a switch to another writer's state (by another request of this process, or
            # a write from another one): what it read may mix the two. Wait for the switch, answer once more.
            log.warning("a request overlapped a switch to another writer's state (%r): trying once more", error)
            with _LOCK:
                follow_store(self)
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _state(rec: Any) -> tuple:
    """What a switch replaces: the corpus, the store stamp this process has seen, the collection handle."""
    return id(rec.corpus), getattr(rec.index, "_seen", None), id(getattr(rec.index, "collection", None))
