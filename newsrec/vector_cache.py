"""Document vectors kept apart from the index, so the index can be rebuilt without encoding again.

Encoding is what indexing costs (the lite encoder does ~300 stories/s on 2 cores: a million stories take
about an hour); building the HNSW graph from stored vectors is several times cheaper. Every vector the
index embeds also lands here, keyed by the item's content hash (a hash of everything the model sees), in
one file per embedder name (a different checkpoint has a different name). `index --rebuild`, new HNSW
settings or a damaged Chroma store then re-insert vectors instead of re-encoding them.

SQLite (WAL) rather than .npy shards: point reads by key, and several ingests writing at once. Like the
score cache it is disposable: a damaged file is moved aside with a warning and the cache starts empty.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from newsrec.cache import move_aside

__all__ = ["VectorCache"]

log = logging.getLogger(__name__)

# SQLite allows at most 32,766 host parameters per statement (999 before 3.32); stay far below either.
_KEYS_PER_QUERY = 500


class VectorCache:
    """(dim,) float32 vectors of one embedder, by content hash. Unusable storage degrades to no caching."""

    def __init__(self, path: Path, dim: int):
        self.path, self.dim = path, int(dim)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError):  # read-only or locked: not damage
                log.warning("vector cache %s unavailable (%s): every vector is encoded", path, error)
                return
            move_aside(path, f"vector cache ({error})")
            self._db = self._connect()
        except OSError as error:
            log.warning("vector cache %s unavailable (%s): every vector is encoded", path, error.strerror or error)

    @classmethod
    def for_embedder(cls, home: Path, embedder_name: str, dim: int) -> VectorCache:
        slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", embedder_name).strip(".-") or "embedder"
        return cls(home / "vectors" / f"{slug}.sqlite", dim)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
            db.execute("SELECT count(*) FROM vectors WHERE rowid = 1").fetchone()  # reads a page: fails on garbage
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors among `keys`; a stored vector of the wrong size or not finite counts as a miss."""
        keys = list(keys)
        found: dict[str, np.ndarray] = {}
        if self._db is None or not keys:
            return found
        with self._lock:
            try:
                for begin in range(0, len(keys), _KEYS_PER_QUERY):
                    chunk = keys[begin : begin + _KEYS_PER_QUERY]
                    marks = ",".join("?" * len(chunk))
                    rows = self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk)
                    for key, blob in rows:
                        vector = np.frombuffer(blob, dtype=np.float32)
                        if vector.shape == (self.dim,) and np.isfinite(vector).all():
                            found[key] = vector
            except sqlite3.DatabaseError as error:
                log.warning("vector cache %s unreadable (%s): encoding instead", self.path, error)
                return {}
        return found

    def missing(self, keys: Iterable[str]) -> set[str]:
        """The keys among `keys` that the cache does not hold (reads keys only, not vectors; a stored vector of the
        wrong size still counts as held here, and as a miss in `get_many`)."""
        asked = set(keys)
        if self._db is None or not asked:
            return asked
        ordered, wanted = sorted(asked), set(asked)
        with self._lock:
            try:
                for begin in range(0, len(ordered), _KEYS_PER_QUERY):
                    chunk = ordered[begin : begin + _KEYS_PER_QUERY]
                    marks = ",".join("?" * len(chunk))
                    wanted.difference_update(
                        key for (key,) in self._db.execute(f"SELECT key FROM vectors WHERE key IN ({marks})", chunk)
                    )
            except sqlite3.DatabaseError as error:
                log.warning("vector cache %s unreadable (%s): encoding instead", self.path, error)
                return asked
        return wanted

    def put_many(self, vectors: Mapping[str, np.ndarray]) -> None:
        if self._db is None or not vectors:
            return
        rows = [(key, np.asarray(v, dtype=np.float32).reshape(self.dim).tobytes()) for key, v in vectors.items()]
        with self._lock:
            try:
                with self._db:
                    self._db.executemany("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", rows)
            except sqlite3.DatabaseError as error:  # full disk, read-only: the index itself still gets the vectors
                log.warning("vector cache %s not written (%s)", self.path, error)

    def clear(self) -> None:
        if self._db is None:
            return
        with self._lock, self._db:
            self._db.execute("DELETE FROM vectors")

    def __len__(self) -> int:
        if self._db is None:
            return 0
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
