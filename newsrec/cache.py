"""Rerank score cache: an in-memory LRU in front of a SQLite table under the data dir.

Keys hash everything a score depends on (reranker, instruction, query, profile, document content), so
a hit is always the score the model would give again; changing any of them simply misses.

The cache is disposable: a damaged database file is moved aside (`*.corrupt-<time>`) and recreated with
a warning, and a stored value that no reranker can produce (not finite, or beyond SCORE_LIMIT) counts as
a miss, so the candidate is scored again and the entry overwritten.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

# Rerankers give probabilities (Qwen3-VL) or sums of a few bounded parts (lite); anything beyond this is damage.
SCORE_LIMIT = 1e3


def score_key(
    reranker: str, instruction: str, query: str, profile_fingerprint: str, content_hash: str, now: str
) -> str:
    parts = [reranker, instruction, query, profile_fingerprint, content_hash, now]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def move_aside(path: Path, what: str) -> Path:
    """Move a damaged SQLite file (and its WAL/SHM) to `*.corrupt-<time>` and say so; returns the new name."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.replace(Path(f"{aside}{suffix}"))
    log.warning("%s: %s was damaged; moved to %s and started empty", what, path, aside.name)
    return aside


def plausible(score: object) -> bool:
    return isinstance(score, (int, float)) and math.isfinite(score) and abs(score) <= SCORE_LIMIT


class ScoreCache:
    def __init__(self, path: Path | None, max_memory_items: int = 50_000):
        self.max_memory_items = max_memory_items
        self.path = path
        self._memory: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = self._connect()
            except sqlite3.OperationalError as error:  # unwritable folder, locked file: run from memory
                log.warning("score cache %s unavailable (%s): caching in memory only", path, error)
            except sqlite3.DatabaseError as error:  # not a database, malformed: damage
                self._db = self._recreate(error)
            except OSError as error:
                log.warning("score cache %s unavailable (%s): caching in memory only", path, error.strerror or error)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, score REAL NOT NULL)")
            db.execute("SELECT count(*) FROM scores WHERE rowid = 1").fetchone()  # reads a page: fails on garbage
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _recreate(self, error: Exception) -> sqlite3.Connection:
        """Move the damaged file aside and start an empty cache; the scores come back on use."""
        if self._db is not None:
            self._db.close()
        move_aside(self.path, f"score cache ({error})")
        return self._connect()

    def get_many(self, keys: list[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        with self._lock:
            for key in keys:
                if key in self._memory:
                    self._memory.move_to_end(key)
                    found[key] = self._memory[key]
            missing = [key for key in keys if key not in found]
            if self._db is not None and missing:
                try:
                    rows = self._select(missing)
                except sqlite3.DatabaseError as error:
                    self._failed(error)
                    rows = []
                for key, score in rows:
                    if plausible(score):
                        found[key] = float(score)
                        self._remember(key, float(score))
                    else:
                        log.warning("score cache: ignoring implausible stored score %r (scored again)", score)
        return found

    def _select(self, keys: list[str]) -> list[tuple[str, object]]:
        rows = []
        for start in range(0, len(keys), 500):  # SQLite caps bound parameters per statement
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows += self._db.execute(f"SELECT key, score FROM scores WHERE key IN ({marks})", chunk).fetchall()
        return rows

    def put_many(self, items: Iterable[tuple[str, float]]) -> None:
        rows = [(key, float(score)) for key, score in items if plausible(float(score))]
        with self._lock:
            for key, score in rows:
                self._remember(key, score)
            if self._db is not None and rows:
                try:
                    with self._db:
                        self._db.executemany("INSERT OR REPLACE INTO scores (key, score) VALUES (?, ?)", rows)
                except sqlite3.DatabaseError as error:
                    self._failed(error)

    def _failed(self, error: sqlite3.DatabaseError) -> None:
        """A busy or unwritable file costs this lookup only; a damaged one is replaced."""
        if isinstance(error, sqlite3.OperationalError):
            log.warning("score cache %s: %s (lookup skipped)", self.path, error)
            return
        self._db = self._recreate(error)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _remember(self, key: str, score: float) -> None:
        self._memory[key] = score
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_memory_items:
            self._memory.popitem(last=False)
