"""Editor relevance judgments, stored durably in SQLite under the data dir, and nDCG per configuration.

    store = JudgmentStore(settings)
    store.record("u1", "solid-state battery", "n42", relevant=True, config="rerank:lite", rank=1)
    store.ndcg_by_config()   # {"rerank:lite": {"ndcg": 0.83, "lists": 4, "judgments": 19}, ...}
    store.export_jsonl(path) # a test set for `python -m newsrec evaluate --judgments path`

One row per (user, query, news item, config): judging again overwrites the earlier verdict (editors change
their minds). Every write commits at once, so nothing is lost when the app stops.

nDCG from judgments is computed on the judged items of each list only ("condensed" lists, Sakai 2007):
items an editor skipped are neither counted relevant nor irrelevant, so an unfinished judging session does
not punish a configuration. Items are ordered by the rank they were shown at.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from newsrec.config import Settings
from newsrec.errors import InputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    user_id    TEXT NOT NULL,
    query      TEXT NOT NULL,       -- "" for the "For you" feed
    news_id    TEXT NOT NULL,
    config     TEXT NOT NULL,       -- the pipeline configuration that produced the list
    relevant   INTEGER NOT NULL,    -- 1 / 0
    rank       INTEGER,             -- 1-based position the item was shown at; NULL when unknown
    created_at REAL NOT NULL,       -- unix time of the latest verdict
    PRIMARY KEY (user_id, query, news_id, config)
)
"""
MAX_FIELD = 2000


@dataclass(frozen=True)
class Judgment:
    user_id: str
    query: str
    news_id: str
    config: str
    relevant: bool
    rank: int | None
    created_at: float


class JudgmentStore:
    def __init__(self, settings: Settings | None = None, path: Path | str | None = None):
        settings = settings or Settings.from_env()
        self.path = Path(path) if path else settings.home / "judgments.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A short-lived connection per call: safe from Gradio's worker threads; WAL lets readers and a
        # writer work at the same time. The inner `with` commits (or rolls back) before closing.
        connection = sqlite3.connect(self.path, timeout=10)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            with connection:
                yield connection
        finally:
            connection.close()

    def record(
        self, user_id: str, query: str, news_id: str, relevant: bool, config: str, rank: int | None = None
    ) -> Judgment:
        """Store (or replace) an editor's verdict on one shown item."""
        fields = {"user_id": user_id, "news_id": news_id, "config": config}
        for name, value in fields.items():
            if not str(value or "").strip():
                raise InputError(f"a judgment needs a non-empty {name}")
        for name, value in {**fields, "query": query}.items():
            if len(str(value or "")) > MAX_FIELD:
                raise InputError(f"judgment {name} is longer than {MAX_FIELD} characters")
        if rank is not None and int(rank) < 1:
            raise InputError(f"rank must be 1 or more, got {rank}")
        judgment = Judgment(
            user_id=str(user_id),
            query=(query or "").strip(),
            news_id=str(news_id),
            config=str(config),
            relevant=bool(relevant),
            rank=None if rank is None else int(rank),
            created_at=time.time(),
        )
        with self._connect() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    judgment.user_id,
                    judgment.query,
                    judgment.news_id,
                    judgment.config,
                    int(judgment.relevant),
                    judgment.rank,
                    judgment.created_at,
                ),
            )
        return judgment

    def judgments(
        self, user_id: str | None = None, query: str | None = None, config: str | None = None
    ) -> list[Judgment]:
        """Stored judgments, optionally filtered, oldest first."""
        clauses, values = [], []
        for column, value in (("user_id", user_id), ("query", query), ("config", config)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value.strip() if column == "query" else value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT user_id, query, news_id, config, relevant, rank, created_at FROM judgments"
                f"{where} ORDER BY created_at, rowid",
                values,
            ).fetchall()
        return [Judgment(u, q, n, c, bool(r), k, t) for u, q, n, c, r, k, t in rows]

    def export_jsonl(self, path: Path | str) -> Path:
        """Every judgment as a judged-relevance test set (JSONL, see `judged_records`) at `path`."""
        path = Path(path)
        with path.open("w", encoding="utf-8") as handle:
            for record in judged_records(self.judgments()):
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return path

    def ndcg_by_config(self, k: int = 10) -> dict[str, dict[str, float]]:
        """Mean nDCG@k over the judged (user, query) lists of each config, with list and judgment counts."""
        lists: dict[tuple[str, str, str], list[Judgment]] = defaultdict(list)
        for judgment in self.judgments():
            lists[(judgment.config, judgment.user_id, judgment.query)].append(judgment)
        per_config: dict[str, list[float]] = defaultdict(list)
        counts: dict[str, int] = defaultdict(int)
        for (config, _, _), judged in lists.items():
            counts[config] += len(judged)
            # shown rank first; unranked items after the ranked ones, in the order they were judged
            judged.sort(key=lambda j: (j.rank is None, j.rank or 0, j.created_at))
            per_config[config].append(condensed_ndcg([j.relevant for j in judged], k))
        return {
            config: {
                "ndcg": _nanmean(values),
                "lists": len(values),
                "judgments": counts[config],
            }
            for config, values in sorted(per_config.items())
        }


def judged_records(judgments: Iterable[Judgment]) -> list[dict]:
    """Verdicts as the judged-relevance format (evaluation/judged.py): one record per (user, query).

    ✓ = 1, ✗ = 0; an item judged under several configs keeps its latest verdict (the editor's last word).
    A list judged all ✗ has no relevant story, so `evaluate --judgments` expects "nothing matches" for it.
    """
    lists: dict[tuple[str, str], dict[str, tuple[float, int]]] = defaultdict(dict)
    for judgment in judgments:
        labels = lists[(judgment.user_id, judgment.query)]
        earlier = labels.get(judgment.news_id)
        if earlier is None or judgment.created_at >= earlier[0]:
            labels[judgment.news_id] = (judgment.created_at, int(judgment.relevant))
    return [
        {
            "user": user,
            "query": query,
            "labels": {news_id: grade for news_id, (_, grade) in sorted(labels.items())},
            "kind": "for-you" if not query else "editor",
            "lang": _language(query),
        }
        for (user, query), labels in sorted(lists.items())
    ]


def _language(query: str) -> str:
    if any("\u3400" <= ch <= "\u9fff" for ch in query):
        return "zh"
    return "en" if any(ch.isascii() and ch.isalpha() for ch in query) else ""


def condensed_ndcg(relevant: list[bool], k: int = 10) -> float:
    """nDCG@k of a list of binary verdicts in shown order; 0 when nothing is relevant (the list failed)."""
    gains = [float(r) for r in relevant]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(gains, reverse=True)[:k]))
    return dcg / ideal if ideal > 0 else 0.0


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan
