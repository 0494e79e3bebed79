"""What-if audit: two sets of panel feeds (A, B) compared per reader, per story and over the whole panel.

Every metric reads only the feeds (top k per reader), the corpus and the index's story embeddings:

- per reader: stories that entered (in B, not in A) and left; Jaccard@k; rank-biased overlap (RBO, p=0.9);
- per story: reach = share of the panel's readers with it in their top k, under A and under B;
- exposure shares by category, publisher (source) and language: each (reader, slot) shown counts one;
- Gini coefficient of exposure over the catalogue's stories (0 = every story shown equally often,
  1 = one story takes every slot); catalogue coverage = distinct stories shown / stories in the catalogue;
- intra-list diversity (ILD): mean pairwise 1 - cosine of a feed's story embeddings;
- calibration: KL(p || q~) between the reader's history category distribution p and the feed's q,
  with q~ = (1 - CALIBRATION_ALPHA) q + CALIBRATION_ALPHA p (Steck, RecSys 2018), so a category the feed
  lacks gives a large but finite divergence; 0 = the feed mirrors the reading;
- popularity bias: average popularity of the stories shown (ARP), popularity being a story's clicks in the
  corpus's impressions when it has any, else how many readers' histories hold it.

Tables are pandas DataFrames, sorted deterministically, so CSV exports are the same in every process.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from newsrec.editorial.panel import Panel
from newsrec.errors import InputError
from newsrec.types import NewsItem, Recommendation

RBO_P = 0.9  # persistence: the top 10 carry about 86% of the weight
CALIBRATION_ALPHA = 0.01  # Steck's smoothing of the feed's distribution towards the reading's
EXPOSURE_DIMENSIONS = ("category", "source", "language")
UNKNOWN = "(none)"  # the value shown for a story without a category, publisher or language


@dataclass
class AuditReport:
    """A vs B over one panel. `meta` is the header (panel, corpus, what A and B are, k)."""

    meta: dict[str, Any]
    readers: pd.DataFrame  # one row per reader
    stories: pd.DataFrame  # one row per story shown under A or B
    exposure: pd.DataFrame  # one row per (dimension, value)
    summary: pd.DataFrame  # one row per panel-level metric: a, b, delta
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    feeds: dict[str, Any] = field(default_factory=dict)  # "a"/"b" -> reader id -> EditedFeed, when `preview` made it

    def __post_init__(self) -> None:
        self.tables = {
            "summary": self.summary,
            "readers": self.readers,
            "stories": self.stories,
            "exposure": self.exposure,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the header and every table as a list of records."""
        return {
            "meta": self.meta,
            **{name: _records(frame) for name, frame in self.tables.items()},
        }


# --- the metrics, each on plain lists so tests and other callers can use them alone ---------------------------


def jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    """|A ∩ B| / |A ∪ B| of two top-k lists; 1.0 for two empty lists."""
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def rbo(a: Sequence[str], b: Sequence[str], p: float = RBO_P) -> float:
    """Extrapolated rank-biased overlap (Webber, Moffat & Zobel 2010, eq. 32) of two rankings to depth k.

        RBO_ext = (X_k / k) p^k + (1 - p) / p * sum_{d=1..k} (X_d / d) p^d,   X_d = |a[:d] ∩ b[:d]|

    1 for identical lists, 0 for disjoint ones; agreement at the top weighs most. Written here because no
    installed library has it: ranx has rank-biased precision (a relevance metric), not overlap; ir-measures
    is not installed and has no RBO either; the PyPI `rbo` package is a small single-maintainer module, and
    the formula is the few lines below.
    """
    k = max(len(a), len(b))
    if k == 0:
        return 1.0
    seen_a: set[str] = set()
    seen_b: set[str] = set()
    overlap = 0  # X_d, updated as depth d grows: what the new items add to the intersection
    total = 0.0
    for d in range(1, k + 1):
        x = a[d - 1] if d <= len(a) else None
        y = b[d - 1] if d <= len(b) else None
        if x is not None and x == y:
            overlap += 1
        else:
            overlap += (x is not None and x in seen_b) + (y is not None and y in seen_a)
        if x is not None:
            seen_a.add(x)
        if y is not None:
            seen_b.add(y)
        total += overlap / d * p**d
    return float(overlap / k * p**k + (1 - p) / p * total)


def gini(values: Sequence[float] | np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = all equal); 0 for an empty or all-zero list."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = len(x), float(x.sum()) if len(x) else 0.0
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(((2 * ranks - n - 1) * x).sum() / (n * total))


def intra_list_diversity(vectors: np.ndarray) -> float:
    """Mean pairwise 1 - cosine over a list's (n, D) unit vectors; NaN below two items."""
    n = len(vectors)
    if n < 2:
        return float("nan")
    similarity = np.asarray(vectors, dtype=np.float64) @ np.asarray(vectors, dtype=np.float64).T
    upper = similarity[np.triu_indices(n, k=1)]
    return float(np.mean(1.0 - upper))


def calibration_kl(history: Mapping[str, float], feed: Mapping[str, float], alpha: float = CALIBRATION_ALPHA) -> float:
    """KL(p || (1 - alpha) q + alpha p) in nats, p = history category counts, q = feed category counts.

    Both are normalised here; NaN when the reader has no history or the feed is empty.
    """
    p_total, q_total = sum(history.values()), sum(feed.values())
    if p_total <= 0 or q_total <= 0:
        return float("nan")
    kl = 0.0
    for category in sorted(history):
        p = history[category] / p_total
        if p <= 0:
            continue
        q = (1 - alpha) * feed.get(category, 0.0) / q_total + alpha * p
        kl += p * np.log(p / q)
    return float(kl)


def story_popularity(corpus: Any) -> dict[str, float]:
    """Clicks per story in the corpus's impressions; without impressions, reads in the readers' histories."""
    counts: Counter[str] = Counter()
    if corpus.impressions:
        for impression in corpus.impressions:
            counts.update(
                news_id for news_id, label in zip(impression.candidates, impression.labels, strict=False) if label > 0
            )
    else:
        for user in corpus.users.values():
            counts.update({entry.news_id for entry in user.history})
    return {news_id: float(count) for news_id, count in counts.items()}


def popularity_source(corpus: Any) -> str:
    return "clicks in impressions" if corpus.impressions else "reads in histories"


# --- compare ---------------------------------------------------------------------------------------------------


def compare(
    feeds_a: Mapping[str, Any],
    feeds_b: Mapping[str, Any],
    panel: Panel,
    news: Mapping[str, NewsItem],
    k: int = 10,
    *,
    recommender: Any = None,
    labels: tuple[str, str] = ("A", "B"),
    embeddings: Any = None,
    histories: Mapping[str, Sequence[str]] | None = None,
    popularity: Mapping[str, float] | None = None,
    catalogue: int | None = None,
) -> AuditReport:
    """Compare two panel feeds (dicts of reader id -> EditedFeed or list of Recommendation).

    `recommender` supplies what the metrics need beyond the feeds (story embeddings, histories,
    popularity, catalogue size); each can also be passed alone (`embeddings(ids) -> (n, D)` callable,
    reader id -> history news ids, news id -> popularity, number of stories in the catalogue).
    """
    if recommender is not None:
        embeddings = embeddings or recommender.index.embeddings
        histories = histories or {
            user_id: [entry.news_id for entry in recommender.corpus.users[user_id].history]
            for user_id in panel.user_ids
            if user_id in recommender.corpus.users
        }
        popularity = popularity if popularity is not None else story_popularity(recommender.corpus)
        catalogue = catalogue or len([i for i in recommender.corpus.news if recommender.index.has(i)])
    histories = histories or {}
    popularity = popularity or {}
    catalogue = catalogue or len(news)
    lists_a = {user_id: _ids(feeds_a.get(user_id), k) for user_id in panel.user_ids}
    lists_b = {user_id: _ids(feeds_b.get(user_id), k) for user_id in panel.user_ids}
    vectors = _vector_lookup(embeddings, lists_a, lists_b)

    rows = []
    for user_id in panel.user_ids:
        a, b = lists_a[user_id], lists_b[user_id]
        history = Counter(_category(news[i]) for i in histories.get(user_id, []) if i in news)
        row: dict[str, Any] = {
            "user_id": user_id,
            "entered": " ".join(i for i in b if i not in set(a)),
            "left": " ".join(i for i in a if i not in set(b)),
            "n_entered": sum(i not in set(a) for i in b),
            "n_left": sum(i not in set(b) for i in a),
            "jaccard": jaccard(a, b),
            "rbo": rbo(a, b),
        }
        for side, ids in (("a", a), ("b", b)):
            row[f"ild_{side}"] = intra_list_diversity(np.stack([vectors[i] for i in ids])) if vectors else np.nan
            feed_categories = Counter(_category(news[i]) for i in ids if i in news)
            row[f"calibration_{side}"] = calibration_kl(history, feed_categories)
            row[f"popularity_{side}"] = float(np.mean([popularity.get(i, 0.0) for i in ids])) if ids else np.nan
        rows.append(row)
    readers = pd.DataFrame(rows, columns=_READER_COLUMNS)

    n = len(panel.user_ids) or 1
    reach_a = Counter(i for ids in lists_a.values() for i in ids)
    reach_b = Counter(i for ids in lists_b.values() for i in ids)
    shown = sorted(set(reach_a) | set(reach_b))
    stories = pd.DataFrame(
        [
            {
                "news_id": i,
                "title": news[i].title if i in news else "",
                "category": _category(news[i]) if i in news else UNKNOWN,
                "source": _value(news.get(i), "source"),
                "language": _value(news.get(i), "language"),
                "reach_a": reach_a[i] / n,
                "reach_b": reach_b[i] / n,
                "reach_delta": (reach_b[i] - reach_a[i]) / n,
                "readers_a": reach_a[i],
                "readers_b": reach_b[i],
            }
            for i in shown
        ],
        columns=_STORY_COLUMNS,
    )
    if len(stories):
        stories = stories.sort_values(["reach_delta", "reach_b", "news_id"], ascending=[False, False, True])
        stories = stories.reset_index(drop=True)

    exposure = _exposure(lists_a, lists_b, news)
    exposures_a = np.zeros(catalogue)
    exposures_b = np.zeros(catalogue)
    exposures_a[: len(reach_a)] = sorted(reach_a.values(), reverse=True)[:catalogue]
    exposures_b[: len(reach_b)] = sorted(reach_b.values(), reverse=True)[:catalogue]
    summary_rows = [
        ("readers", len(panel.user_ids), len(panel.user_ids)),
        ("gini_exposure", gini(exposures_a), gini(exposures_b)),
        ("coverage", len(reach_a) / catalogue, len(reach_b) / catalogue),
        ("distinct_stories", len(reach_a), len(reach_b)),
        ("ild", _mean(readers["ild_a"]), _mean(readers["ild_b"])),
        ("calibration_kl", _mean(readers["calibration_a"]), _mean(readers["calibration_b"])),
        ("popularity", _mean(readers["popularity_a"]), _mean(readers["popularity_b"])),
        ("jaccard_mean", np.nan, _mean(readers["jaccard"])),  # overlap of A and B: one value, under b
        ("rbo_mean", np.nan, _mean(readers["rbo"])),
        ("blocked", _blocked(feeds_a), _blocked(feeds_b)),
    ]
    summary = pd.DataFrame(summary_rows, columns=["metric", "a", "b"])
    summary["delta"] = summary["b"] - summary["a"]
    meta = {
        "panel": panel.spec,
        "panel_description": panel.description,
        "corpus": panel.corpus,
        "readers": len(panel.user_ids),
        "a": labels[0],
        "b": labels[1],
        "k": k,
        "catalogue": catalogue,
        "rbo_p": RBO_P,
        "calibration_alpha": CALIBRATION_ALPHA,
        "popularity": popularity_source(recommender.corpus) if recommender is not None else "given",
    }
    return AuditReport(meta=meta, readers=readers, stories=stories, exposure=exposure, summary=summary)


_READER_COLUMNS = [
    "user_id",
    "entered",
    "left",
    "n_entered",
    "n_left",
    "jaccard",
    "rbo",
    "ild_a",
    "ild_b",
    "calibration_a",
    "calibration_b",
    "popularity_a",
    "popularity_b",
]
_STORY_COLUMNS = [
    "news_id",
    "title",
    "category",
    "source",
    "language",
    "reach_a",
    "reach_b",
    "reach_delta",
    "readers_a",
    "readers_b",
]


def _exposure(lists_a: Mapping[str, list[str]], lists_b: Mapping[str, list[str]], news: Mapping[str, NewsItem]):
    rows = []
    for dimension in EXPOSURE_DIMENSIONS:
        counts = {}
        for side, lists in (("a", lists_a), ("b", lists_b)):
            counts[side] = Counter(
                _category(news[i]) if dimension == "category" else _value(news.get(i), dimension)
                for ids in lists.values()
                for i in ids
            )
        totals = {side: sum(c.values()) or 1 for side, c in counts.items()}
        for value in sorted(set(counts["a"]) | set(counts["b"])):
            share_a, share_b = counts["a"][value] / totals["a"], counts["b"][value] / totals["b"]
            rows.append(
                {
                    "dimension": dimension,
                    "value": value,
                    "slots_a": counts["a"][value],
                    "slots_b": counts["b"][value],
                    "share_a": share_a,
                    "share_b": share_b,
                    "share_delta": share_b - share_a,
                }
            )
    columns = ["dimension", "value", "slots_a", "slots_b", "share_a", "share_b", "share_delta"]
    return pd.DataFrame(rows, columns=columns)


def _ids(feed: Any, k: int) -> list[str]:
    if feed is None:
        return []
    items: Sequence[Recommendation] = getattr(feed, "items", feed)
    return [card.item.id for card in items][:k]


def _vector_lookup(embeddings: Any, *lists: Mapping[str, list[str]]) -> dict[str, np.ndarray]:
    if embeddings is None:
        return {}
    ids = sorted({i for group in lists for ids in group.values() for i in ids})
    if not ids:
        return {}
    matrix = embeddings(ids) if callable(embeddings) else np.stack([embeddings[i] for i in ids])
    return dict(zip(ids, np.asarray(matrix), strict=True))


def _blocked(feeds: Mapping[str, Any]) -> int:
    return int(sum(getattr(feed, "blocked", 0) or 0 for feed in feeds.values()))


def _category(item: NewsItem) -> str:
    return item.category or UNKNOWN


def _value(item: NewsItem | None, name: str) -> str:
    return (getattr(item, name, "") or UNKNOWN) if item is not None else UNKNOWN


def _mean(column: pd.Series) -> float:
    values = pd.to_numeric(column, errors="coerce").dropna()
    return float(values.mean()) if len(values) else float("nan")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts, NaN as None (JSON has no NaN)."""
    clean = frame.astype(object).where(frame.notna(), None)
    return [{key: _plain(value) for key, value in row.items()} for row in clean.to_dict("records")]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- preview: named sides to feeds to a report ------------------------------------------------------------------

SIDES = ("draft", "live", "none", "reranked", "retrieval")  # none = reranked: the feed without rules


def parse_compare(text: str) -> tuple[str, str]:
    """`draft:live` -> ("draft", "live"): X previewed against the baseline Y, each one of SIDES.

    Callers put the baseline Y on the report's A side and X on its B side, so "entered" are the stories X
    brings in (the CLI and the Newsroom tab both do).
    """
    a, sep, b = (text or "").strip().lower().partition(":")
    if not sep or a not in SIDES or b not in SIDES:
        raise InputError(f"--compare {text!r}: give X:Y with X and Y from {', '.join(SIDES)} (e.g. draft:live)")
    return a, b


def side_ruleset(recommender: Any, side: str) -> Any:
    """The rule set a named side applies (None for none/reranked/retrieval, or when no rules are saved)."""
    if side not in ("draft", "live"):
        return None
    try:
        from newsrec.editorial.store import load_rules  # type: ignore[import-not-found]
    except ImportError:
        raise InputError(f"comparing {side} rules needs the rules package (newsrec/editorial/store.py)") from None
    return load_rules(recommender.settings.home, recommender.corpus.name, side)


def preview(
    recommender: Any,
    panel: Panel,
    a: Any = "draft",
    b: Any = "live",
    *,
    k: int = 10,
    depth: int = 50,
    now: Any = None,
    labels: tuple[str, str] | None = None,
    cost: Any = None,
    explain_cards: bool = False,
) -> AuditReport:
    """Feeds of the panel under A and under B, compared. A side is a name from SIDES or a RuleSet object
    (e.g. a visitor's session draft). The deep ranked lists are computed once per stage and shared."""
    from newsrec.editorial.panel import PanelCost, panel_feeds, ranked_lists

    cost = cost if cost is not None else PanelCost()
    ranked: dict[str, Any] = {}
    feeds = []
    for side in (a, b):
        stage = "retrieval" if side == "retrieval" else "rerank"
        ruleset = side_ruleset(recommender, side) if isinstance(side, str) else side
        if stage not in ranked:
            ranked[stage] = ranked_lists(recommender, panel.user_ids, stage=stage, depth=max(depth, k), cost=cost)
        feeds.append(
            panel_feeds(
                recommender,
                panel,
                ruleset=ruleset,
                stage=stage,
                k=k,
                depth=depth,
                now=now,
                explain_cards=explain_cards,
                cost=cost,
                ranked=ranked[stage],
            )
        )
    names = labels or tuple(side if isinstance(side, str) else "rules" for side in (a, b))
    tick = cost.start()
    report = compare(feeds[0], feeds[1], panel, recommender.corpus.news, k, recommender=recommender, labels=names)
    cost.add("compare", tick)
    report.feeds = {"a": feeds[0], "b": feeds[1]}
    return report
