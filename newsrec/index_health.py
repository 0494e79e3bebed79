"""Health of the embedded Chroma store: checked before it is opened, rebuilt instead of crashing.

The vector store is derived data (the corpus is the truth), so a damaged one is moved aside and built
again from the corpus by the next sync, with a warning. Damage shows in two ways:
- chroma.sqlite3: `PRAGMA quick_check` on a read-only connection (SQLite reports, never crashes);
- the HNSW segment files: Chroma's native code segfaults on garbage in `data_level0.bin`, taking the
  process with it, so they are opened first in a throwaway subprocess that loads every collection and
  runs one query. A crash there is a finding, not a crash of ours.

The probe costs a Python start plus loading the store (about 3-5 s on 2 busy cores; see README), so it
runs only when the store's files changed since the last time they were verified: after each check that
passes, and after each completed sync, the files' sizes and modification times, and a CRC-32 of the HNSW
segment files, are recorded in `newsrec-health.json` next to the store. The probe also checks that sampled
items are found by their own vectors (garbage in length.bin or link_lists.bin changes results silently).
The Chroma server (settings.chroma_url) is checked by its owner.
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
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

from newsrec.config import Settings
from newsrec.errors import NewsrecError

log = logging.getLogger(__name__)

MANIFEST = "newsrec-health.json"
SQLITE = "chroma.sqlite3"
PROBE_TIMEOUT_S = 300
REBUILD_HINT = "run `python -m newsrec index --rebuild` (the index is rebuilt from the corpus)"

# Loads every collection's HNSW index (a query forces it into memory), then asks it for up to 32 of its own
# items spread over the collection: each should come back among its own 10 nearest (or an identical vector first).
# Garbage in length.bin or link_lists.bin need not crash hnswlib; it breaks the graph, which this self-recall
# shows: damaged files lose most items. A healthy graph can lose a few: HNSW's neighbour selection can leave a
# group of identical vectors unreachable (the tests' hashing embedder gives 1,100 stories 64 distinct vectors; 3-4
# builds in 10 then lost one group of 12-33 items, with writes of 1, 100, 300 or 1,024 records alike, so the
# write size is not the cause). So more than a quarter of the sample must be lost for an alarm.
_PROBE = """
import sys
import chromadb
from chromadb.config import Settings
client = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))
for collection in client.list_collections():
    count = collection.count()
    step = max(1, count // 32)
    sampled, lost = 0, []
    for offset in range(0, count, step)[:32]:
        sample = collection.get(limit=1, offset=offset, include=["embeddings"])
        if not sample["ids"]:
            continue
        sampled += 1
        vector = sample["embeddings"][0]
        found = collection.query(query_embeddings=[vector], n_results=min(10, count), include=["distances"])
        if sample["ids"][0] not in found["ids"][0] and not (found["distances"][0] and found["distances"][0][0] < 1e-4):
            lost.append(sample["ids"][0])
    if len(lost) * 4 > sampled:
        print(f"collection {collection.name}: {len(lost)} of {sampled} sampled items are not found by their own "
              f"vectors (e.g. {lost[0]})")
        sys.exit(3)
print("ok")
"""
HNSW_FILES = ("data_level0.bin", "length.bin", "link_lists.bin", "header.bin")  # checksummed, not just stat'ed


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


@contextmanager
def write_lock_if_free(settings: Settings) -> Iterator[bool]:
    """The store's write lock if nobody holds it (yields True), else yields False at once, without waiting: a
    serving app that notices another writer at work keeps answering from what it has and switches later."""
    if settings.chroma_url:
        yield True
        return
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(settings.chroma_dir.with_name(f"{settings.chroma_dir.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def fingerprint(store: Path) -> dict[str, list[int]]:
    """(size, mtime_ns) of the files that hold the store's data (SQLite's -wal/-shm change on reads too), plus a
    CRC-32 of the HNSW segment files: a rewrite that keeps size and mtime (a copy with `touch -r`, a bad disk
    block) must not pass as verified, and garbage there can segfault Chroma. CRC-32 runs at GB/s; a 100k-item
    2048-d index (~800 MB) costs well under a second."""
    files = {}
    for path in sorted(store.rglob("*")):
        if path.is_file() and path.name != MANIFEST and not path.name.endswith(("-wal", "-shm", "-journal")):
            stat = path.stat()
            entry = [stat.st_size, stat.st_mtime_ns]
            if path.name in HNSW_FILES:
                entry.append(_crc32(path))
            files[str(path.relative_to(store))] = entry
    return files


def _crc32(path: Path) -> int:
    import zlib

    value = 0
    with open(path, "rb") as handle:
        while block := handle.read(4 * 2**20):
            value = zlib.crc32(block, value)
    return value


def record_healthy(settings: Settings) -> None:
    """Remember the store's files as verified (after a passed check or a completed sync)."""
    store = settings.chroma_dir
    if settings.chroma_url or not (store / SQLITE).is_file():
        return
    try:
        (store / MANIFEST).write_text(json.dumps(fingerprint(store)))
    except OSError as error:  # a read-only store still works; it is just probed again next time
        log.debug("cannot record store health: %s", error)


def store_stamp(settings: Settings) -> tuple[int, int] | None:
    """(mtime_ns, size) of the health manifest, rewritten after every completed sync by any process: a cheap
    stat that tells a running app that another process wrote to the store. None for a server or no store."""
    if settings.chroma_url:
        return None
    try:
        stat = (settings.chroma_dir / MANIFEST).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


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
    found = _sqlite_problem(store / SQLITE) or _segments_problem(store) or _probe_problem(store)
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


# header.bin of Chroma's persistent hnswlib: a format version, then hnswlib's own header fields.
_HEADER = "<iQQQQQQiIQQQdQ"


def _segments_problem(store: Path) -> str | None:
    """Structural check of each persisted HNSW segment, read as plain files (nothing native runs, so garbage
    cannot crash us): header fields, data_level0.bin and length.bin sizes against the element count, and
    every upper-level link list in link_lists.bin (sizes, link counts <= maxM, neighbour ids < count).
    Hand-written: Chroma has no integrity check for these files, and garbage in link_lists.bin neither
    crashes hnswlib nor shows in a few queries."""
    import struct

    import numpy as np

    for header_path in sorted(store.glob("*/header.bin")):
        folder = header_path.parent
        name = folder.name
        try:
            header = header_path.read_bytes()
            if len(header) < struct.calcsize(_HEADER):
                return f"segment {name}: header.bin is {len(header)} bytes"
            fields = struct.unpack_from(_HEADER, header)
            count, per_element, max_m = fields[3], fields[4], fields[9]
            if not (0 <= count <= fields[2] and 0 < per_element < 2**24 and 0 < max_m < 2**12):
                return f"segment {name}: header.bin holds implausible values"
            # Chroma writes element data before it updates the header's count, so the files may hold more
            # elements than the header says (a sync in progress or killed), never fewer or a partial one.
            for file, unit in (("data_level0.bin", per_element), ("length.bin", 4)):
                if (folder / file).is_file():
                    size = (folder / file).stat().st_size
                    if size < count * unit or size % unit:
                        return f"segment {name}: {file} is {size:,} bytes for {count:,} elements of {unit} bytes"
            links = (folder / "link_lists.bin").read_bytes() if (folder / "link_lists.bin").is_file() else b""
        except OSError as error:
            return f"segment {name}: unreadable ({error})"
        per_level, position = max_m * 4 + 4, 0
        for element in range(count if links else 0):
            if position + 4 > len(links):
                return f"segment {name}: link_lists.bin ends early (element {element})"
            size = struct.unpack_from("<I", links, position)[0]
            position += 4
            if size % per_level or position + size > len(links):
                return f"segment {name}: link_lists.bin has a bad list size at element {element}"
            for level in range(size // per_level):
                start = position + level * per_level
                n = struct.unpack_from("<H", links, start)[0]
                if n > max_m or (np.frombuffer(links, "<u4", n, start + 4) >= count).any():
                    return f"segment {name}: link_lists.bin has a bad link list at element {element}"
            position += size
    return None


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
    if done.returncode == 3:
        return f"its vector files are inconsistent ({done.stdout.strip()[-300:]})"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return f"Chroma cannot open it ({last[:300]})"
    return None


def remove_orphan_segments(settings: Settings) -> list[str]:
    """Delete the HNSW segment folders of the embedded store that no collection owns any more; returns their names.
    Chroma 1.5's `delete_collection` drops the collection's rows but leaves its segment folder, so every
    `index --rebuild` left the old graph behind (24 MB for NeMig's 10,814 stories, ~2.4 GB at 1M), and the health
    manifest checksummed each of them after every write. The caller holds the write lock: no other writer is
    creating a segment meanwhile. A reader of a deleted collection already gets "does not exist" from Chroma."""
    import shutil
    import uuid

    store = settings.chroma_dir
    if settings.chroma_url or not (store / SQLITE).is_file():
        return []
    folders = []
    try:  # listed before the segments are read: Chroma adds a segment's row before its folder, so a folder listed
        for folder in sorted(store.iterdir()):  # here whose collection exists is owned by the time they are read
            with suppress(ValueError):
                if folder.is_dir() and str(uuid.UUID(folder.name)) == folder.name:
                    folders.append(folder)
    except OSError as error:
        log.warning("segment folders not cleaned up: cannot list the store (%s)", error)
        return []
    try:
        with sqlite3.connect(f"file:{store / SQLITE}?mode=ro", uri=True) as db:
            owned = {str(row[0]) for row in db.execute("SELECT id FROM segments")}
    except sqlite3.DatabaseError as error:
        log.warning("segment folders not cleaned up: cannot read the store's segments (%s)", error)
        return []
    removed = []
    for folder in folders:
        if folder.name not in owned:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    if removed:
        log.info("removed %d segment folder(s) of deleted collections: %s", len(removed), ", ".join(removed))
    return removed


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
