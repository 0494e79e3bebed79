"""Health of the embedded Chroma store: checked before it is opened, rebuilt instead of crashing.

The vector store is derived data (the corpus is the truth), so a damaged one is moved aside and built
again from the corpus by the next sync, with a warning. Damage shows in two ways:
- chroma.sqlite3: `PRAGMA quick_check` on a read-only connection (SQLite reports, never crashes);
- the HNSW segment files: Chroma's native code segfaults on garbage in `data_level0.bin`, taking the
  process with it, so they are opened first in a throwaway subprocess that loads every collection and
  runs one query. A crash there is a finding, not a crash of ours.

The probe costs a Python start plus loading the store (about 3-5 s on 2 busy cores; see README), so it
runs only when the store's files changed since the last time they were verified: after each check that
passes, and after each completed sync, the files' sizes and modification times are recorded in
`newsrec-health.json` next to the store. The Chroma server (settings.chroma_url) is checked by its owner.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from newsrec.config import Settings
from newsrec.errors import NewsrecError

log = logging.getLogger(__name__)

MANIFEST = "newsrec-health.json"
SQLITE = "chroma.sqlite3"
PROBE_TIMEOUT_S = 300
REBUILD_HINT = "run `python -m newsrec index --rebuild` (the index is rebuilt from the corpus)"

# Loads every collection's HNSW index (a query forces it into memory) and counts its items.
_PROBE = """
import sys
import chromadb
from chromadb.config import Settings
client = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))
for collection in client.list_collections():
    sample = collection.get(limit=1, include=["embeddings"])
    if sample["ids"]:
        collection.query(query_embeddings=[sample["embeddings"][0]], n_results=1, include=["distances"])
print("ok")
"""


class StoreError(NewsrecError):
    """The vector store failed; the message names the fix."""


@contextmanager
def write_lock(settings: Settings) -> Iterator[None]:
    """One writer at a time on the embedded store: Chroma's local store does not coordinate processes, so two
    concurrent syncs (two ingests, an ingest and the app's first build) take turns. Waits, saying so."""
    if settings.chroma_url:  # a server orders its own writes
        yield
        return
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(settings.chroma_dir.with_name(f"{settings.chroma_dir.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("the vector index is being updated by another process; waiting for it to finish")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def fingerprint(store: Path) -> dict[str, list[int]]:
    """(size, mtime_ns) of the files that hold the store's data (SQLite's -wal/-shm change on reads too)."""
    files = {}
    for path in sorted(store.rglob("*")):
        if path.is_file() and path.name != MANIFEST and not path.name.endswith(("-wal", "-shm", "-journal")):
            stat = path.stat()
            files[str(path.relative_to(store))] = [stat.st_size, stat.st_mtime_ns]
    return files


def record_healthy(settings: Settings) -> None:
    """Remember the store's files as verified (after a passed check or a completed sync)."""
    store = settings.chroma_dir
    if settings.chroma_url or not (store / SQLITE).is_file():
        return
    try:
        (store / MANIFEST).write_text(json.dumps(fingerprint(store)))
    except OSError as error:  # a read-only store still works; it is just probed again next time
        log.debug("cannot record store health: %s", error)


def problem(settings: Settings) -> str | None:
    """Why the embedded store cannot be used safely, or None (also None for no store yet, or a server)."""
    store = settings.chroma_dir
    if settings.chroma_url or not (store / SQLITE).is_file():
        return None
    try:
        recorded = json.loads((store / MANIFEST).read_text())
    except (OSError, ValueError):
        recorded = None
    if recorded == fingerprint(store):
        return None
    found = _sqlite_problem(store / SQLITE) or _probe_problem(store)
    if found is None:
        record_healthy(settings)
    return found


def _sqlite_problem(path: Path) -> str | None:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as error:
        return f"{path.name} is not a readable SQLite database ({error})"
    result = rows[0][0] if rows else "no result"
    return None if result == "ok" else f"{path.name} failed its integrity check ({result.splitlines()[0][:200]})"


def _probe_problem(store: Path) -> str | None:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(store)],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
    except subprocess.TimeoutExpired:
        return f"opening it took over {PROBE_TIMEOUT_S} s"
    log.info("store probe took %.1f s", time.perf_counter() - started)
    if done.returncode < 0:
        return f"opening its vector files crashed Chroma (signal {-done.returncode})"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return f"Chroma cannot open it ({last[:300]})"
    return None


def ensure_healthy(settings: Settings) -> None:
    """Check the embedded store before it is opened; a damaged one is moved aside so that the next sync
    rebuilds it from the corpus. Logs what happened; raises only when the move itself fails."""
    if settings.chroma_url or not (settings.chroma_dir / SQLITE).is_file():
        return
    with write_lock(settings):  # not while another process is writing: its half-done state is no damage
        found = problem(settings)
        if found is not None:
            _move_aside(settings, found)


def _move_aside(settings: Settings, found: str) -> None:
    store = settings.chroma_dir
    aside = store.with_name(f"{store.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        store.rename(aside)
    except OSError as error:
        raise StoreError(f"the vector store at {store} is damaged: {found}; moving it aside failed ({error})") from None
    log.warning("the vector store was damaged (%s): moved to %s; the index is rebuilt from the corpus", found, aside)


def explain(error: Exception) -> StoreError:
    """A Chroma error as one clear line that names the fix."""
    return StoreError(f"the vector store failed ({type(error).__name__}: {str(error)[:300]}); {REBUILD_HINT}")


def _is_store_failure(error: Exception) -> bool:
    from chromadb.errors import ChromaError, InvalidArgumentError

    if isinstance(error, sqlite3.DatabaseError):
        return True
    if isinstance(error, InvalidArgumentError):  # also bad filters, which the caller reports; not those
        return "Error executing plan" in str(error) or "log store" in str(error)
    return isinstance(error, ChromaError)


class GuardedCollection:
    """A Chroma collection whose failures (damaged files, internal errors) surface as one StoreError that
    names the fix, instead of a raw InternalError traceback; everything else passes through unchanged."""

    def __init__(self, collection):
        self._collection = collection

    def __getattr__(self, name: str):
        attribute = getattr(self._collection, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            try:
                return attribute(*args, **kwargs)
            except Exception as error:
                if _is_store_failure(error):
                    raise explain(error) from error
                raise

        return call
