"""The dense first stage: news vectors in a Chroma collection, kept in step with the corpus.

One collection per (corpus, embedder), so vectors of different models never mix. `sync` embeds only
items whose content hash changed, and writes each batch's vectors together with its hashes in one
upsert: a crash mid-way leaves every stored item either fully old or fully new, and the next `sync`
picks up where it stopped. Next to Chroma's HNSW search, the index keeps an in-memory (N, D) matrix
of all vectors for exact lookups (profiles, MMR, brute-force scoring of a fixed candidate list).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import numpy as np

from newsrec import encoding, hnsw, index_health
from newsrec.config import Settings
from newsrec.data.corpus import Corpus
from newsrec.embedders import Embedder
from newsrec.encoding import EncodeEngine, Pending
from newsrec.errors import InputError, ServiceUnavailableError
from newsrec.types import NewsItem
from newsrec.vector_cache import VectorCache

__all__ = ["NewsIndex", "SyncStats", "collection_name", "chroma_client"]

log = logging.getLogger(__name__)

# Items embedded and upserted together: the unit of progress and of crash safety. Large enough that the
# embedding workers rarely wait for each other at the end of a batch (256 embeds ~10% slower).
SYNC_BATCH = 1024
ProgressCallback = Callable[[int, int], None]  # (items embedded so far, items to embed)
# Fewer items to encode than this stay in this process even when NEWSREC_ENCODE_WORKERS asks for processes:
# starting a worker (imports, model load) costs about as much as encoding a few hundred stories.
PROCESS_MIN_ITEMS = 2_000


@dataclass(frozen=True)
class SyncStats:
    added: int
    updated: int
    unchanged: int
    removed: int
    seconds: float

    @property
    def embedded(self) -> int:
        return self.added + self.updated

    def __str__(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, {self.removed} removed "
            f"in {self.seconds:.1f} s"
        )


def collection_name(corpus_name: str, embedder_name: str) -> str:
    """A Chroma-legal name: 3-63 of [a-zA-Z0-9._-], alphanumeric at both ends, no '..'.

    63 is the older servers' limit (1.x allows 512), kept so an HttpClient works against either. When
    the readable form had to change, a short hash of the original keeps distinct pairs distinct.
    """
    raw = f"{corpus_name}--{embedder_name}"
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", raw)
    slug = re.sub(r"\.{2,}", ".", slug).strip("._-")
    if slug == raw and 3 <= len(slug) <= 63:
        return slug
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{slug[:54].rstrip('._-')}-{digest}".lstrip("._-")


def chroma_client(settings: Settings) -> Any:
    """An embedded PersistentClient under settings.chroma_dir, or an HttpClient for settings.chroma_url.

    The server client sends settings.chroma_headers (NEWSREC_CHROMA_HEADERS; Chroma 1.x has no auth of its
    own, a proxy in front checks them) and reports failures as ServiceUnavailableError.
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if not settings.chroma_url:
        settings.chroma_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)
    url = urlparse(settings.chroma_url if "://" in settings.chroma_url else f"http://{settings.chroma_url}")
    if url.scheme not in {"http", "https"} or not url.hostname:
        raise InputError(f"chroma URL {settings.chroma_url!r} is not http(s)://host[:port]")
    ssl = url.scheme == "https"
    try:
        port = url.port or (443 if ssl else 8000)
    except ValueError:
        raise InputError(f"chroma URL {settings.chroma_url!r} has an invalid port") from None
    try:
        client = chromadb.HttpClient(
            host=url.hostname, port=port, ssl=ssl, headers=dict(settings.chroma_headers), settings=chroma_settings
        )
    except Exception as error:  # chromadb raises ValueError or httpx errors, depending on how it failed
        raise InputError(f"cannot reach the Chroma server at {settings.chroma_url}: {error}") from None
    return _Guarded(client, settings.chroma_url)


class _Guarded:
    """A Chroma HttpClient, or one of its collections, whose calls turn transport, auth and missing-collection
    failures into one clear ServiceUnavailableError (server down mid-run, proxy refusing, collection deleted)."""

    def __init__(self, target: Any, url: str, collection: str = ""):
        self._target, self._url, self._collection = target, url, collection

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            with _server_errors(self._url, name, self._collection):
                result = attribute(*args, **kwargs)
            if not self._collection and name.endswith("collection") and result is not None:
                return _Guarded(result, self._url, result.name)  # get_collection, get_or_create_collection, ...
            return result

        return call


@contextmanager
def _server_errors(url: str, operation: str, collection: str = ""):
    import httpx
    from chromadb.errors import ChromaAuthError, NotFoundError

    try:
        yield
    except NotFoundError:
        if not collection:
            raise
        raise ServiceUnavailableError(
            f"collection {collection!r} is missing on the Chroma server at {url} (deleted while in use?); "
            "run the command again to rebuild it"
        ) from None
    except ChromaAuthError as error:
        raise ServiceUnavailableError(
            f"the Chroma server at {url} refused {operation}: {error} (check NEWSREC_CHROMA_HEADERS)"
        ) from None
    except httpx.TransportError as error:
        raise ServiceUnavailableError(
            f"the Chroma server at {url} is unreachable during {operation}: {error}"
        ) from None


@dataclass
class _Batch:
    """One upsert's worth of items: vectors from the cache, and the engine's work for the rest."""

    items: list[NewsItem]
    hashes: dict[str, str]  # content hash by item id (of the whole sync)
    cached: dict[str, np.ndarray]  # by content hash
    missing: list[NewsItem]  # not in the cache: the engine encodes them
    encoding: Pending | None


class _Lazy:
    """An engine started on its first submit: a rebuild from the vector cache starts no worker."""

    def __init__(self, engine: EncodeEngine, embedder: Embedder):
        self.engine, self.embedder, self.started = engine, embedder, False
        self.lookahead = engine.lookahead

    def submit(self, items: list[NewsItem]) -> Pending:
        if not self.started:
            self.started = True
            self.engine.start(self.embedder)
        return self.engine.submit(items)

    def close(self) -> None:
        if self.started:
            self.engine.close()


def _metadata(item: NewsItem, content_hash: str) -> dict[str, Any]:
    return {
        "category": item.category,
        "language": item.language,
        "published_at": int(item.published_at.timestamp()) if item.published_at else 0,
        "has_image": bool(item.images),
        "content_hash": content_hash,
    }


class NewsIndex:
    """Vectors of one corpus under one embedder. Search with a query vector, read stored vectors by id."""

    def __init__(self, settings: Settings, corpus_name: str, embedder: Embedder, *, client: Any = None):
        self.settings = settings
        self.corpus_name = corpus_name
        self.embedder = embedder
        self.name = collection_name(corpus_name, embedder.name)
        self.page_size = max(1, int(settings.chroma_page_size))
        if client is None:
            index_health.ensure_healthy(settings)  # a damaged store is moved aside (and rebuilt), not opened
        self._own_client = client is None
        self._lock = threading.RLock()
        self._ids: list[str] | None = None  # row order of _matrix
        self._rows: dict[str, int] = {}
        self._matrix: np.ndarray | None = None  # (N, D) float32, loaded lazily
        self._count: int | None = None  # records in the collection, asked once per write (Chroma counts all rows)
        # Every vector embedded here is kept apart from Chroma too, so a rebuild never encodes again.
        self.vectors = VectorCache.for_embedder(settings.scratch or settings.home, embedder.name, embedder.dim)
        with index_health.write_lock(settings):  # client creation and collection creation: one process at a time
            self.client = client if client is not None else chroma_client(settings)
            self.collection = self._open_collection()
            self._seen = index_health.store_stamp(settings)

    # --- other writers ------------------------------------------------------------------------------------

    def changed_elsewhere(self) -> bool:
        """True when another process completed a write to the embedded store since this one last looked (its
        health manifest is rewritten after every completed sync, so a changed stamp means a committed write)."""
        return self._own_client and index_health.store_stamp(self.settings) != self._seen

    def reopen(self, wait: bool = True) -> bool:
        """Open the store afresh: a client of this process keeps its own view of Chroma's files (segments,
        collection ids), which another process's ingest or `index --rebuild` leaves stale ("Error finding id",
        "Collection ... does not exist"). Waits for a writer that is still at work, then switches; with
        `wait=False` returns False at once instead while another process holds the store's write lock."""
        if not self._own_client:
            self._invalidate()
            return True
        lock = index_health.write_lock(self.settings) if wait else index_health.write_lock_if_free(self.settings)
        with self._lock, lock as free:
            if free is False:
                return False
            self._reopen_locked()
        return True

    def reopen_to_read(self) -> bool:
        """Reopen without the store's write lock, for a reader whose collection another process replaced (`index
        --rebuild` swaps a new one in and deletes the old): opens the collection that exists now and never creates
        one, so a reader does not wait behind the writers that queue for the lock after the swap. False where that
        cannot be done safely (a Chroma server, no store file yet, no collection by this name: a swap in progress
        or a deleted collection); the caller then reopens under the lock."""
        from chromadb.api.shared_system_client import SharedSystemClient

        if (
            self.settings.chroma_url
            or not self._own_client
            or not (self.settings.chroma_dir / "chroma.sqlite3").exists()
        ):
            return False
        with self._lock:
            SharedSystemClient.clear_system_cache()
            client = chroma_client(self.settings)
            try:
                collection = client.get_collection(self.name)
            except Exception as error:  # chromadb's NotFoundError, or a store another process is changing
                log.info("index %s: no collection to reopen without the lock (%s)", self.name, error)
                return False
            self.client, self.collection = client, index_health.GuardedCollection(collection)
            self._invalidate()
            self._seen = index_health.store_stamp(self.settings)
        log.info("index %s reopened (the collection another process swapped in)", self.name)
        return True

    def _reopen_locked(self) -> None:
        """Reopen the client and the collection; the caller holds the store's write lock."""
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient.clear_system_cache()  # else chromadb hands back the cached, stale system
        self.client = chroma_client(self.settings)
        self.collection = self._open_collection()
        self._invalidate()
        self._seen = index_health.store_stamp(self.settings)
        log.info("index %s reopened after another process wrote to the store", self.name)

    def _follow_locked(self) -> None:
        """Under the store's write lock, before a write: reopen if another process committed a write since this
        one last looked. An `index --rebuild` elsewhere swaps the collection (a new one renamed in, the old one
        deleted) while this process waits for the lock, and a write through the handle opened before then fails
        ("Collection [...] does not exist"): an ingest opening its index, a serving app that reopened the store
        and then waited for the lock to sync its newer corpus."""
        if self.changed_elsewhere():
            self._reopen_locked()

    def _open_collection(self, graph: hnsw.HnswSettings | None = None, name: str = "") -> Any:
        """Open the collection (or `name`), or create it with `graph` (default: the settings for a small corpus)."""
        metadata = self._metadata() | ({"staging": True} if name else {})
        graph = graph or hnsw.hnsw_for(0, self.settings)
        collection = self.client.get_or_create_collection(
            name or self.name,
            configuration=graph.configuration(),
            metadata=metadata,
            embedding_function=None,  # we always pass vectors; Chroma's default would fetch a model
        )
        stored_dim = (collection.metadata or {}).get("dim")
        if stored_dim is not None and int(stored_dim) != int(self.embedder.dim):
            # Same name, different vector size: the vectors are useless to this embedder. Start over.
            log.warning(
                "collection %s holds %s-d vectors, embedder gives %d-d: rebuilding",
                self.name,
                stored_dim,
                self.embedder.dim,
            )
            self.client.delete_collection(name or self.name)
            return self._open_collection(graph, name)
        return index_health.GuardedCollection(collection)

    def _metadata(self) -> dict[str, Any]:
        return {"corpus": self.corpus_name, "embedder": self.embedder.name, "dim": int(self.embedder.dim)}

    # --- sync ----------------------------------------------------------------------------------------

    def sync(
        self,
        corpus: Corpus,
        progress: bool = False,
        on_progress: ProgressCallback | None = None,
        batch_size: int | None = None,
        engine: EncodeEngine | None = None,
        wait: bool = True,
    ) -> SyncStats | None:
        """Bring the collection in line with `corpus`: embed new and changed items, drop removed ones.

        `on_progress(done, total)` is called before the first batch and after each one (total is the
        number of items to embed, possibly 0); `progress=True` also draws a rich progress bar. `engine`
        computes the vectors the vector cache lacks (newsrec/encoding.py); default: `settings.encode_workers`
        worker processes for a large enough job, else this process. `batch_size`: items per batch (default
        SYNC_BATCH; a rebuild with every vector cached writes in the store's largest batches). With `wait=False`
        returns None at once, doing nothing, while another process holds the store's write lock (a serving app
        never queues behind a batch writer, which may run at a lower CPU priority).
        """
        start = time.perf_counter()
        lock = index_health.write_lock(self.settings) if wait else index_health.write_lock_if_free(self.settings)
        with self._lock, lock as free:
            if free is False:
                return None
            self._follow_locked()  # the store as committed now, not as this process last opened it
            corpus = _committed(corpus)  # the diff comes from the corpus as committed now, never a stale snapshot
            wanted = hnsw.hnsw_for(len(corpus.news), self.settings)
            if self._needs_new_graph(wanted):
                return self._rebuild_locked(corpus, wanted, start, progress, on_progress, batch_size, engine)
            stored = self._stored_hashes()
            current = {news_id: item.content_hash() for news_id, item in corpus.news.items()}
            todo = [news_id for news_id, digest in current.items() if stored.get(news_id) != digest]
            # Similar lengths in each batch means little padding: ~30% faster MiniLM embedding than corpus order.
            todo.sort(key=lambda news_id: len(corpus.news[news_id].text))
            added = sum(news_id not in stored for news_id in todo)
            removed = [news_id for news_id in stored if news_id not in current]
            try:
                for chunk in self._chunks(removed):
                    self.collection.delete(ids=chunk)
                self._embed_and_upsert(
                    [corpus.news[i] for i in todo], current, progress, on_progress, batch_size or SYNC_BATCH, engine
                )
            finally:
                if todo or removed:
                    self._invalidate()
            self._committed_write()
        stats = SyncStats(
            added=added,
            updated=len(todo) - added,
            unchanged=len(current) - len(todo),
            removed=len(removed),
            seconds=time.perf_counter() - start,
        )
        log.info("index %s: %s", self.name, stats)
        return stats

    def rebuild(
        self,
        corpus: Corpus,
        re_encode: bool = False,
        progress: bool = False,
        on_progress: ProgressCallback | None = None,
        batch_size: int | None = None,
        engine: EncodeEngine | None = None,
    ) -> SyncStats:
        """`index --rebuild`: a new HNSW graph for every story of the committed corpus, built beside the live
        collection and switched in at the end, so readers in other processes keep searching the old graph all
        along. Vectors come from the vector cache (those it lacks are copied from the live collection first); with
        `re_encode` the cache of this embedder is emptied and every story is encoded again."""
        start = time.perf_counter()
        with self._lock, index_health.write_lock(self.settings):
            self._follow_locked()
            corpus = _committed(corpus)
            wanted = hnsw.hnsw_for(len(corpus.news), self.settings)
            return self._rebuild_locked(
                corpus, wanted, start, progress, on_progress, batch_size, engine, re_encode=re_encode
            )

    def _needs_new_graph(self, wanted: hnsw.HnswSettings) -> bool:
        """Give the collection the HNSW settings for the corpus's size (newsrec/hnsw.py): a new ef_search changes in
        place; True when the graph degree or ef_construction differ, which only a rebuild can change."""
        current = hnsw.from_configuration(getattr(self.collection, "configuration", None))
        if current is None or current == wanted:
            return False
        if wanted.same_graph(current):
            self.collection.modify(configuration={"hnsw": {"ef_search": wanted.ef_search}})
            log.info("index %s: ef_search %d -> %d", self.name, current.ef_search, wanted.ef_search)
            return False
        log.warning(
            "index %s: HNSW graph settings change (M %d -> %d, ef_construction %d -> %d); rebuilding from stored "
            "vectors",
            self.name,
            current.max_neighbors,
            wanted.max_neighbors,
            current.ef_construction,
            wanted.ef_construction,
        )
        return True

    def _rebuild_locked(
        self,
        corpus: Corpus,
        graph: hnsw.HnswSettings,
        start: float,
        progress: bool,
        on_progress: ProgressCallback | None,
        batch_size: int | None,
        engine: EncodeEngine | None,
        re_encode: bool = False,
    ) -> SyncStats:
        """Fill a staging collection with `graph` from the committed `corpus`, then swap it in for the live one
        (delete + rename, both quick). The caller holds the store's write lock. A crash before the swap leaves
        the live collection untouched and a staging one that the next rebuild drops; a crash between delete and
        rename leaves no live collection, which the next sync re-creates and fills from the vector cache."""
        hashes = {news_id: item.content_hash() for news_id, item in corpus.news.items()}
        lacking: set[str] = set(hashes.values())
        if re_encode:
            self.vectors.clear()
        else:
            lacking = self.vectors.missing(hashes.values())
            try:
                if lacking:  # an unchanged corpus's vectors are all cached: the live collection is not read
                    self._keep_vectors(lacking)
                    lacking = self.vectors.missing(lacking)
            except Exception as error:  # a damaged store: what the cache already holds still counts
                log.warning("index %s: could not copy its vectors before the rebuild (%s)", self.name, error)
        if batch_size is None:  # none asked: with nothing to encode, the staging is written in the largest batches
            batch_size = SYNC_BATCH if lacking else self._write_batch()
        staging_name = collection_name(self.corpus_name, f"{self.embedder.name}~staging")
        with contextlib.suppress(Exception):  # left over by an interrupted rebuild
            self.client.delete_collection(staging_name)
        live = self.collection
        self.collection = self._open_collection(graph, name=staging_name)
        items = sorted(corpus.news.values(), key=lambda item: len(item.text))
        try:
            self._embed_and_upsert(items, hashes, progress, on_progress, batch_size, engine)
        except BaseException:
            self.collection = live
            with contextlib.suppress(Exception):
                self.client.delete_collection(staging_name)
            raise
        with contextlib.suppress(Exception):  # gone already (deleted by hand, or a damaged store moved aside)
            self.client.delete_collection(self.name)
        self.collection.modify(name=self.name, metadata=self._metadata())  # (no longer marked staging)
        self.collection = self._open_collection()
        self._invalidate()
        index_health.remove_orphan_segments(self.settings)  # the old graph's folder, which Chroma leaves behind
        self._committed_write()
        stats = SyncStats(len(items), 0, 0, 0, time.perf_counter() - start)
        log.info(
            "index %s rebuilt (M %d, ef_construction %d): %s",
            self.name,
            graph.max_neighbors,
            graph.ef_construction,
            stats,
        )
        return stats

    def _committed_write(self) -> None:
        index_health.record_healthy(self.settings)  # the files as this write left them are known good
        self._seen = index_health.store_stamp(self.settings)  # (other processes see the stamp change)

    def _keep_vectors(self, wanted: set[str] | None = None) -> int:
        """Copy into the vector cache every stored vector it lacks (by content hash; only those in `wanted` when
        given); returns how many stored records it looked at. Only the missing vectors are read from Chroma."""
        kept = 0
        for page in self._pages(["metadatas"]):
            hashes = {
                news_id: str(meta["content_hash"])
                for news_id, meta in zip(page["ids"], page["metadatas"], strict=True)
                if meta and meta.get("content_hash") and (wanted is None or str(meta["content_hash"]) in wanted)
            }
            absent = self.vectors.missing(hashes.values())
            missing = [news_id for news_id, digest in hashes.items() if digest in absent]
            if missing:
                stored = self.collection.get(ids=missing, include=["embeddings"])
                self.vectors.put_many(
                    {
                        hashes[news_id]: vector
                        for news_id, vector in zip(stored["ids"], stored["embeddings"], strict=True)
                    }
                )
            kept += len(hashes)
        return kept

    def _stored_hashes(self) -> dict[str, str]:
        return {
            news_id: str((meta or {}).get("content_hash", ""))
            for page in self._pages(["metadatas"])
            for news_id, meta in zip(page["ids"], page["metadatas"], strict=True)
        }

    def _pages(self, include: list[str]) -> Iterator[dict[str, Any]]:
        """The whole collection, `chroma_page_size` records per get (Chroma Cloud answers at most 300).

        The embedded store is read by id, after one listing of every id: it answers a limit/offset page by skipping
        `offset` rows, so reading a collection page by page grew with its square (100,000 records: 10.8 s by
        offset, 1.2 s by id; a 1M collection's start-up had not finished after 30 minutes). A server keeps the
        offset pages, whose listing of every id at once it may refuse."""
        size = self.page_size
        if self.settings.chroma_url:
            offset = 0
            while True:
                page = self.collection.get(include=include, limit=size, offset=offset)
                yield page
                if len(page["ids"]) < size:
                    return
                offset += size
        ids = self.collection.get(include=[])["ids"]
        if not ids:
            yield {"ids": [], **{field: [] for field in include}}
        for begin in range(0, len(ids), size):
            yield self.collection.get(ids=ids[begin : begin + size], include=include)

    def _embed_and_upsert(
        self,
        items: list[NewsItem],
        hashes: dict[str, str],
        progress: bool,
        on_progress: ProgressCallback | None,
        batch_size: int,
        engine: EncodeEngine | None = None,
    ) -> None:
        total = len(items)
        batch_size = max(1, min(int(batch_size), self._write_batch()))
        if on_progress:
            on_progress(0, total)
        if not total:
            return
        engine = engine or self._default_engine(total)
        bar = _ProgressBar(f"embedding {self.corpus_name} ({self.embedder.name})", total) if progress else None
        # The upserts run on this thread, one batch after another: Chroma's Rust core holds the GIL while it
        # writes, so a writer thread would only stall in-process encoding. Worker engines get the next batch
        # before the current one is written (`lookahead`), so they encode while this thread writes.
        queue: deque[_Batch] = deque()
        done = 0
        engine = _Lazy(engine, self.embedder)  # workers start only when the cache lacks a vector
        try:
            for begin in range(0, total, batch_size):
                queue.append(self._submit(items[begin : begin + batch_size], hashes, engine))
                while len(queue) > engine.lookahead:
                    done += self._store(queue[0])
                    queue.popleft()  # only once stored: a batch that fails stays queued for _cache_finished
                    self._report(bar, on_progress, done, total)
            while queue:
                done += self._store(queue[0])
                queue.popleft()
                self._report(bar, on_progress, done, total)
        except BaseException:
            self._cache_finished(queue)  # vectors that came back are kept even when the batch cannot be stored
            raise
        finally:
            engine.close()
            if bar is not None:
                bar.close()

    def _default_engine(self, total: int) -> EncodeEngine:
        """`settings.encode_workers` processes when the embedder is a CPU model that can be rebuilt in them and
        the job is large enough to pay for starting them (~2 s each); else this process."""
        workers = int(self.settings.encode_workers)
        recipe = getattr(self.embedder, "recipe", None)
        parallel = bool(getattr(self.embedder, "parallel_processes", False))  # a GPU model stays one copy
        if workers and parallel and recipe is not None and total >= PROCESS_MIN_ITEMS:
            try:
                return encoding.make_engine("local", workers, recipe)
            except InputError as error:  # a recipe that does not pickle: encode here, as before
                log.info("index %s: encoding in this process (%s)", self.name, error)
        return encoding.InProcess()

    def _submit(self, batch: list[NewsItem], hashes: dict[str, str], engine: _Lazy) -> _Batch:
        """The batch with its cached vectors, and the rest handed to the engine."""
        cached = self.vectors.get_many(hashes[item.id] for item in batch)
        missing = [item for item in batch if hashes[item.id] not in cached]
        return _Batch(batch, hashes, cached, missing, engine.submit(missing) if missing else None)

    def _store(self, pending: _Batch) -> int:
        """Wait for the batch's vectors, cache them, upsert them with their hashes; returns the batch size."""
        batch, hashes = pending.items, pending.hashes
        vectors = self._vectors_for(pending)
        # Vectors and content hashes land in the same upsert, so a stored hash always describes
        # the stored vector: an interrupted sync leaves old-or-new items, never a mismatch.
        self.collection.upsert(
            ids=[item.id for item in batch],
            embeddings=vectors,
            metadatas=[_metadata(item, hashes[item.id]) for item in batch],
        )
        return len(batch)

    def _vectors_for(self, pending: _Batch) -> np.ndarray:
        """(len(batch), D) vectors: from the vector cache where it had them, the rest encoded (and cached)."""
        cached = pending.cached
        if pending.missing:
            encoded = self._checked(pending.encoding.result(), pending.missing)
            fresh = {pending.hashes[item.id]: vector for item, vector in zip(pending.missing, encoded, strict=True)}
            self.vectors.put_many(fresh)
            cached = {**cached, **fresh}
        return np.stack([cached[pending.hashes[item.id]] for item in pending.items]).astype(np.float32, copy=False)

    def _cache_finished(self, queue: deque[_Batch]) -> None:
        for pending in queue:
            if pending.encoding is None:
                continue
            try:
                for items, vectors in pending.encoding.finished():
                    vectors = self._checked(vectors, items)
                    self.vectors.put_many({pending.hashes[item.id]: v for item, v in zip(items, vectors, strict=True)})
            except Exception as error:  # noqa: BLE001 - salvage is best effort; the original error is raised
                log.warning("index %s: vectors of an unfinished batch not cached (%s)", self.name, error)

    @staticmethod
    def _report(bar: _ProgressBar | None, on_progress: ProgressCallback | None, done: int, total: int) -> None:
        if bar is not None:
            bar.update(done)
        if on_progress:
            on_progress(done, total)

    def _checked(self, vectors: Any, batch: Sequence[NewsItem]) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        expected = (len(batch), int(self.embedder.dim))
        if vectors.shape != expected:
            raise RuntimeError(f"embedder {self.embedder.name} returned shape {vectors.shape}, expected {expected}")
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            ids = [item.id for item, is_bad in zip(batch, bad, strict=True) if is_bad]
            raise RuntimeError(f"embedder {self.embedder.name} returned non-finite vectors for {ids[:5]}")
        return vectors

    def _write_batch(self) -> int:
        """Most records per upsert or delete: the store's own batch limit (5,461 for Chroma 1.5's embedded store),
        and for a server the page size too (Chroma Cloud refuses writes of more than 300). So the embedded store
        takes a sync's batches whole, and a rebuild with every vector cached writes in batches of the limit: the
        same CPU as writes of 300, with fewer waits on one core (docs/performance.md). Batch size is not why a few
        items of a healthy graph can miss their own nearest: see index_health._PROBE."""
        limit = max(1, int(self.client.get_max_batch_size()))
        return min(limit, self.page_size) if self.settings.chroma_url else limit

    def _chunks(self, ids: list[str]) -> list[list[str]]:
        size = self._write_batch()
        return [ids[i : i + size] for i in range(0, len(ids), size)]

    # --- search --------------------------------------------------------------------------------------

    def search(self, query_vec: Any, n: int, where: dict | None = None) -> list[tuple[str, float]]:
        """Up to `n` (news_id, cosine similarity) pairs, best first, among items matching `where`.

        `where` is a Chroma metadata filter over category, language, published_at (epoch seconds),
        has_image and content_hash, e.g. {"category": {"$in": ["tech"]}}. HNSW search is approximate.
        """
        query = np.asarray(query_vec, dtype=np.float32).reshape(-1)
        if query.shape != (int(self.embedder.dim),):
            raise InputError(f"query vector has {query.size} values; this index holds {self.embedder.dim}-d vectors")
        if n <= 0:
            return []
        if n > self.page_size:
            log.warning("asked for %d nearest items; Chroma answers at most %d (chroma_page_size)", n, self.page_size)
            n = self.page_size
        count = self._stored_count()
        if not count:
            return []
        from chromadb.errors import InvalidArgumentError

        try:
            result = self.collection.query(
                query_embeddings=[query], n_results=min(int(n), count), where=where or None, include=["distances"]
            )
        except (ValueError, InvalidArgumentError) as error:  # client- and server-side checks of `where`
            raise InputError(f"invalid filter {where!r}: {error}") from None
        # Chroma's cosine distance is 1 - cosine similarity.
        return [(news_id, 1.0 - float(d)) for news_id, d in zip(result["ids"][0], result["distances"][0], strict=True)]

    # --- stored vectors ------------------------------------------------------------------------------

    def _load(self) -> None:
        with self._lock:
            if self._matrix is not None:
                return
            start = time.perf_counter()
            ids: list[str] = []
            blocks = []
            dim = int(self.embedder.dim)
            for page in self._pages(["embeddings"]):
                if page["ids"]:
                    ids += page["ids"]
                    blocks.append(np.asarray(page["embeddings"], dtype=np.float32).reshape(len(page["ids"]), dim))
            matrix = np.concatenate(blocks) if ids else np.zeros((0, dim), np.float32)
            # Another process writing between two pages shifts the offsets: a repeated record is dropped here,
            # a skipped one is missing until the next load (as with any read of a collection being written).
            if len(set(ids)) != len(ids):
                first = {news_id: row for row, news_id in reversed(list(enumerate(ids)))}
                keep = sorted(first.values())
                ids, matrix = [ids[row] for row in keep], matrix[keep]
            matrix.setflags(write=False)  # shared with callers through matrix(); nobody may edit it
            self._ids, self._rows, self._matrix = ids, {news_id: row for row, news_id in enumerate(ids)}, matrix
            log.debug("loaded %d vectors of %s in %.2f s", len(ids), self.name, time.perf_counter() - start)

    def _invalidate(self) -> None:
        with self._lock:
            self._ids, self._rows, self._matrix, self._count = None, {}, None, None

    def _stored_count(self) -> int:
        """The collection's size, kept between writes: Chroma's count() reads every record (10 ms at 100,000 stories,
        more than the search itself), and every search needs it. Each write here invalidates it (`_invalidate`),
        another process's write reopens the index (`reopen`), which invalidates it too."""
        with self._lock:
            if self._count is None:
                self._count = int(self.collection.count())
            return self._count

    def embeddings(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids), D) float32 stored vectors, from memory; every id must be in the index (see `has`)."""
        self._load()
        try:
            rows = [self._rows[news_id] for news_id in ids]
        except KeyError as error:
            raise InputError(f"news item {error.args[0]!r} is not in index {self.name}") from None
        return self._matrix[rows] if rows else np.zeros((0, int(self.embedder.dim)), np.float32)

    def has(self, news_id: str) -> bool:
        self._load()
        return news_id in self._rows

    def all_ids(self) -> list[str]:
        """Ids in the row order of `matrix()`."""
        self._load()
        return list(self._ids or [])

    def matrix(self) -> np.ndarray:
        """(N, D) float32 read-only matrix of every stored vector, rows in `all_ids()` order."""
        self._load()
        return self._matrix

    def __len__(self) -> int:
        return int(self.collection.count())


def _committed(corpus: Corpus) -> Corpus:
    """`corpus` re-read from its folder when another writer committed a newer generation since it was read: a
    sync from the older snapshot would delete the other writer's vectors. In-memory corpora pass unchanged."""
    from pathlib import Path

    from newsrec.data import store
    from newsrec.data.corpus import corpus_exists, read_corpus

    root = getattr(corpus, "root", None)
    generation = getattr(corpus, "generation", "")
    if not root or not generation or not corpus_exists(Path(root)):
        return corpus
    try:
        if store.generation_dir(Path(root)).name == generation:
            return corpus
        fresh = read_corpus(Path(root), corpus.name)
    except (OSError, InputError) as error:
        log.warning("cannot re-read corpus %s (%s): syncing the copy in memory", corpus.name, error)
        return corpus
    log.info(
        "corpus %s changed since it was read (%s -> %s): syncing the committed one",
        corpus.name,
        generation,
        getattr(fresh, "generation", "?"),
    )
    return fresh


class _ProgressBar:
    """A rich progress bar on stderr, for CLI builds; the UI passes on_progress instead."""

    def __init__(self, description: str, total: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, rate="")

    def update(self, done: int) -> None:
        self._progress.update(self._task, completed=done)
        speed = self._progress.tasks[0].speed  # rich's moving estimate, None until it has two samples
        self._progress.update(self._task, rate=f"{speed:,.0f} items/s" if speed else "")

    def close(self) -> None:
        self._progress.stop()
