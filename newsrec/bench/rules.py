"""`python -m newsrec.bench.rules`: what editorial rules add to a feed, on the demo corpus in lite mode.

Measures `apply_rules` alone over each persona's deep list (a pin, a must-see, a label block for a segment, a
category cap, a boost and a keyword block), and `EditorialFeeds.recommend` against a plain `recommend` for the
same readers. Prints p50/p95 in ms; run it twice and report the machine's load (`uptime`) with the figures.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from newsrec.config import Settings
from newsrec.editorial import Rule, RuleSet, apply_rules
from newsrec.editorial.feed import EditorialFeeds
from newsrec.pipeline import Recommender

RULES = [
    {"id": "aid-pin", "kind": "pin", "params": {"story": "n051", "slot": 1}},
    {"id": "aid-must-see", "kind": "priority", "params": {"story": "n051", "level": "must-see"}},
    {
        "id": "no-distressing",
        "kind": "block",
        "scope": "segment:tag=world-news",
        "params": {"target": "label", "value": "distressing"},
    },
    {"id": "sports-cap", "kind": "quota", "params": {"category": "sports", "max": 2}},
    {"id": "boost-science", "kind": "boost", "params": {"target": "category", "value": "science", "weight": 0.3}},
    {"id": "no-casino", "kind": "block", "params": {"target": "keyword", "value": "casino"}},
]


def _p(values: list[float]) -> str:
    ordered = sorted(values)
    return f"p50 {statistics.median(ordered):.2f} ms, p95 {ordered[int(0.95 * (len(ordered) - 1))]:.2f} ms"


def main(rounds: int = 30) -> None:
    settings = Settings.from_env(home=Path(tempfile.mkdtemp()), embedder="lite", reranker="lite")
    rec = Recommender.from_settings(settings)
    ruleset = RuleSet(rules=tuple(Rule.from_dict(row) for row in RULES))
    feeds = EditorialFeeds(rec, ruleset=ruleset)
    users = sorted(rec.corpus.users)
    now = datetime.now(timezone.utc)
    deep = {u: rec.recommend(u, k=50).reranked for u in users}
    readers = {u: feeds.reader(u) for u in users}
    alone = []
    for _ in range(rounds):
        for u in users:
            tick = time.perf_counter()
            apply_rules(ruleset, deep[u], reader=readers[u], news=feeds.news, k=10, now=now)
            alone.append((time.perf_counter() - tick) * 1000)
    plain, ruled = [], []
    for _ in range(max(1, rounds // 6)):
        for u in users:
            tick = time.perf_counter()
            rec.recommend(u, k=10)
            plain.append((time.perf_counter() - tick) * 1000)
            tick = time.perf_counter()
            feeds.recommend(u, k=10)
            ruled.append((time.perf_counter() - tick) * 1000)
    print(f"apply_rules alone (n={len(alone)}): {_p(alone)}")
    print(f"recommend without rules (n={len(plain)}): {_p(plain)}")
    print(f"recommend with 6 rules (n={len(ruled)}): {_p(ruled)}")


if __name__ == "__main__":
    main()
