"""Rerank score cache: an in-memory LRU in front of a SQLite table under the data dir.

Keys hash everything a score depends on (reranker, instruction, query, profile, document content), so
a hit is always the score the model would give again; changing any of them simply misses.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path


def score_key(
    reranker: str, instruction: str, query: str, profile_fingerprint: str, content_hash: str, now: str
) -> str:
    parts = [reranker, instruction, query, profile_fingerprint, content_hash, now]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class ScoreCache:
    def __init__(self, path: Path | None, max_memory_items: int = 50_000):
        self.max_memory_items = max_memory_items
        self._memory: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._db = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, score REAL NOT NULL)")

    def get_many(self, keys: list[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        with self._lock:
            for key in keys:
                if key in self._memory:
                    self._memory.move_to_end(key)
                    found[key] = self._memory[key]
            missing = [key for key in keys if key not in found]
            if self._db is not None and missing:
                for start in range(0, len(missing), 500):  # SQLite caps bound parameters per statement
                    chunk = missing[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    for key, score in self._db.execute(f"SELECT key, score FROM scores WHERE key IN ({marks})", chunk):
                        found[key] = score
                        self._remember(key, score)
        return found

    def put_many(self, items: Iterable[tuple[str, float]]) -> None:
        rows = [(key, float(score)) for key, score in items]
        with self._lock:
            for key, score in rows:
                self._remember(key, score)
            if self._db is not None and rows:
                with self._db:
                    self._db.executemany("INSERT OR REPLACE INTO scores (key, score) VALUES (?, ?)", rows)

    def _remember(self, key: str, score: float) -> None:
        self._memory[key] = score
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_memory_items:
            self._memory.popitem(last=False)
