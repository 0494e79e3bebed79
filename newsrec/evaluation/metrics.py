"""Per-impression metrics: the MIND accuracy metrics and beyond-accuracy metrics of a top-k list.

Accuracy follows the MIND benchmark's definitions (Wu et al., 2020, the `evaluate.py` of the MIND
competition), which differ from TREC tools in two places worth knowing:
- MRR averages the reciprocal rank of *every* clicked item (TREC's reciprocal_rank takes the first
  only); the two agree whenever an impression has one click, as nearly all NeMig impressions do.
- nDCG uses gain 2^rel - 1, which equals rel for the binary click labels of a log.
Tests cross-check MRR and nDCG against ranx. ranx has no AUC, so AUC is the Mann-Whitney statistic
from scipy's `rankdata` (ties count one half, as in sklearn's roc_auc_score).

Ties in the ranked metrics are broken by a random order seeded from the impression id: breaking them
by list position would leak the log's display order into a scorer that knows nothing (e.g. popularity
with all-zero counts), and a fixed seed keeps every run reproducible.

Beyond-accuracy metrics are written by hand because no ranking library we use offers them for a
single list with our inputs (embeddings, categories, popularity); each is a few lines of numpy.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

ACCURACY_METRICS = ("auc", "mrr", "ndcg@5", "ndcg@10")
BEYOND_METRICS = ("diversity", "novelty", "calibration")


def tie_key(impression_id: str, n: int) -> np.ndarray:
    """A reproducible random permutation of range(n), used as the secondary sort key."""
    seed = int.from_bytes(hashlib.sha256(str(impression_id).encode()).digest()[:8], "little")
    return np.random.default_rng(seed).permutation(n)


def rank_order(scores: Sequence[float], impression_id: str = "") -> np.ndarray:
    """Candidate indices best first; ties in random (seeded) order."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.lexsort((tie_key(impression_id, len(scores)), -scores))


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Probability that a random clicked item outscores a random unclicked one; NaN without both kinds."""
    labels = np.asarray(labels) > 0
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    from scipy.stats import rankdata  # loaded when measuring, not when the CLI starts

    ranks = rankdata(np.asarray(scores, dtype=np.float64))  # average ranks for ties
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def mrr(labels: Sequence[int], order: np.ndarray) -> float:
    """MIND MRR: mean of 1/rank over the clicked items, for the ranking `order` (indices best first)."""
    ranked = np.asarray(labels, dtype=np.float64)[order]
    if ranked.sum() == 0:
        return math.nan
    return float((ranked / np.arange(1, len(ranked) + 1)).sum() / ranked.sum())


def ndcg(labels: Sequence[int], order: np.ndarray, k: int) -> float:
    """MIND nDCG@k with gain 2^rel - 1 and discount log2(rank + 1)."""
    labels = np.asarray(labels, dtype=np.float64)
    if labels.sum() == 0:
        return math.nan

    def dcg(gains: np.ndarray) -> float:
        gains = gains[:k]
        return float(((2**gains - 1) / np.log2(np.arange(2, len(gains) + 2))).sum())

    return dcg(labels[order]) / dcg(np.sort(labels)[::-1])


def accuracy(labels: Sequence[int], scores: Sequence[float], impression_id: str = "") -> dict[str, float]:
    """AUC, MRR, nDCG@5 and nDCG@10 of one impression (NaN where undefined: no click, or only clicks)."""
    order = rank_order(scores, impression_id)
    return {
        "auc": auc(labels, scores),
        "mrr": mrr(labels, order),
        "ndcg@5": ndcg(labels, order, 5),
        "ndcg@10": ndcg(labels, order, 10),
    }


# --- beyond accuracy ----------------------------------------------------------------------------


def intra_list_diversity(embeddings: np.ndarray) -> float:
    """1 - mean pairwise cosine similarity of the listed items' embeddings (rows L2-normalised); NaN below 2."""
    n = len(embeddings)
    if n < 2:
        return math.nan
    vectors = np.asarray(embeddings, dtype=np.float64)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = vectors @ vectors.T  # (n, n)
    mean_pairwise = (similarity.sum() - np.trace(similarity)) / (n * (n - 1))
    return float(1.0 - mean_pairwise)


def popularity_table(interactions: Iterable[Iterable[str]]) -> tuple[Counter[str], int]:
    """How many users (or sessions) touched each item, and how many there were: input to `novelty`."""
    counts: Counter[str] = Counter()
    total = 0
    for items in interactions:
        counts.update(set(items))
        total += 1
    return counts, total


def novelty(news_ids: Sequence[str], counts: Counter[str], total: int) -> float:
    """Mean self-information -log2 p(item) of the list, with p = (users who read it + 1) / (users + 1).

    Add-one smoothing gives never-read items a finite, maximal novelty of log2(users + 1).
    """
    if not news_ids:
        return math.nan
    p = np.array([(counts.get(news_id, 0) + 1) / (total + 1) for news_id in news_ids])
    return float(-np.log2(p).mean())


def category_distribution(categories: Iterable[str]) -> dict[str, float]:
    counts = Counter(category or "(none)" for category in categories)
    total = sum(counts.values())
    return {category: count / total for category, count in counts.items()} if total else {}


def calibration(history_categories: Sequence[str], list_categories: Sequence[str]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between the history's and the list's category shares.

    0 = the list mirrors the reader's category mix (Steck 2018, "Calibrated recommendations"); JS rather
    than KL because it stays finite when the list has a category the history lacks. NaN without a history.
    """
    p, q = category_distribution(history_categories), category_distribution(list_categories)
    if not p or not q:
        return math.nan
    names = sorted(set(p) | set(q))
    from scipy.spatial.distance import jensenshannon

    distance = jensenshannon([p.get(n, 0.0) for n in names], [q.get(n, 0.0) for n in names], base=2)
    return float(distance**2)


def coverage(shown: Iterable[Iterable[str]], catalogue: Iterable[str]) -> float:
    """Share of the catalogue (here: every item that appeared as a candidate) that made some top-k list."""
    catalogue = set(catalogue)
    if not catalogue:
        return math.nan
    listed = set().union(*map(set, shown)) & catalogue
    return len(listed) / len(catalogue)


# --- aggregation ---------------------------------------------------------------------------------


def bootstrap_mean_ci(
    values: np.ndarray, groups: np.ndarray | None = None, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of `values` (NaN dropped) and its percentile-bootstrap CI.

    With `groups` (e.g. user ids) whole groups are resampled: impressions of one user are correlated, and
    resampling them one by one would give too narrow an interval.
    """
    values = np.asarray(values, dtype=np.float64)
    keep = ~np.isnan(values)
    values = values[keep]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    if groups is None:
        sums, counts = values, np.ones_like(values)
    else:
        _, inverse = np.unique(np.asarray(groups)[keep], return_inverse=True)
        sums, counts = np.bincount(inverse, weights=values), np.bincount(inverse).astype(np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(sums), size=(n_boot, len(sums)))  # (B, G)
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(values.mean()), float(low), float(high)
