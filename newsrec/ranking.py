"""Post-ranking controls applied to the reranked list: freshness decay, diversity (MMR), category and subject caps."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from newsrec.types import NewsItem


def freshness_decay(
    scores: np.ndarray, items: Sequence[NewsItem], now: datetime | None, half_life_days: float
) -> np.ndarray:
    """Multiply each score by 0.5 ** (age / half-life); items without a date count as old as the oldest one."""
    if half_life_days <= 0 or now is None:
        return scores
    ages = [
        max((now - item.published_at).total_seconds() / 86400, 0.0) if item.published_at else None for item in items
    ]
    oldest = max((age for age in ages if age is not None), default=0.0)
    ages_array = np.array([oldest if age is None else age for age in ages])
    # Scores can be negative (the lite reranker's "avoid" term); shift so decay never raises a score.
    floor = min(float(scores.min()), 0.0) if len(scores) else 0.0
    return (scores - floor) * 0.5 ** (ages_array / half_life_days) + floor


def mmr_order(scores: np.ndarray, embeddings: np.ndarray, lambda_: float, k: int) -> list[int]:
    """Maximal marginal relevance (Carbonell & Goldstein 1998): indices of a k-item list.

    lambda_=1 is plain score order; lower values penalise similarity to items already picked.
    Written by hand: it is a dozen lines, and the ranking libraries we use do not offer it.
    """
    k = min(k, len(scores))
    if lambda_ >= 1.0 or k == 0:
        return list(np.argsort(-scores, kind="stable")[:k])
    span = float(scores.max() - scores.min()) or 1.0
    relevance = (scores - scores.min()) / span  # put relevance and cosine on the same [0, 1] scale
    similarity = embeddings @ embeddings.T  # (N, N)
    picked: list[int] = [int(np.argmax(relevance))]
    max_similarity = similarity[picked[0]].copy()
    while len(picked) < k:
        value = lambda_ * relevance - (1 - lambda_) * max_similarity
        value[picked] = -np.inf
        choice = int(np.argmax(value))
        picked.append(choice)
        max_similarity = np.maximum(max_similarity, similarity[choice])
    return picked


def cap_categories(order: Sequence[int], items: Sequence[NewsItem], cap: int, k: int) -> list[int]:
    """Keep at most `cap` items per category, filling from further down the order; cap=0 means no cap."""
    if cap <= 0:
        return list(order[:k])
    counts: Counter[str] = Counter()
    kept = []
    for index in order:
        category = items[index].category
        if counts[category] < cap:
            counts[category] += 1
            kept.append(index)
        if len(kept) == k:
            break
    return kept


def cap_new_subjects(subjects: Sequence[str], cap: int, k: int) -> tuple[list[int], set[str]]:
    """Positions of a ranked list with the cards of a new subject past the first `cap` moved after the first `k`.

    `subjects[i]` names the subject of the list's i-th card when the reader never read it ("" for a familiar
    subject, never capped). An editor expects a feed not to repeat one narrow story type the reader has shown
    no interest in: it may try a new subject, not fill the page with it. Held-back cards keep their order below
    the page. Returns the new order of positions and the subjects that were capped. cap=0 means no cap.
    """
    if cap <= 0:
        return list(range(len(subjects))), set()
    counts: Counter[str] = Counter()
    kept: list[int] = []
    held: list[int] = []
    for position, subject in enumerate(subjects):
        if subject and counts[subject] >= cap and len(kept) < k:
            held.append(position)
            continue
        counts[subject] += 1
        kept.append(position)
    return kept[:k] + held + kept[k:], {subjects[position] for position in held}
