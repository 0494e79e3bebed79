"""The same story in two languages takes one slot in a list: cross-language near-duplicate merging.

A bilingual corpus reports one event twice (揭幕战湖人118比112力克勇士 and "Lakers edge Warriors 118-112").
Listing both wastes a slot; the page shows one card and notes the other language.

Two items are the same story when all of these hold (measured on the demo corpus's four real pairs
against every other cross-language pair, tests/test_dedupe.py):
- their languages differ (same-language duplicates are a different problem: wire copies, updates);
- their cosine reaches the embedder's `same_story_cosine` (USE-Multilingual: 0.6; the real pairs score
  0.71-0.82, while different games between the same two teams also reach 0.70);
- they share the story's numbers: at least two multi-digit figures (scores, magnitudes, prices), which is
  what tells two Lakers games apart; the real pairs share 3-6, other pairs above the cosine share 0-1;
- they were published within MAX_DAYS_APART days of each other, when both dates are known.
Stories without figures are never merged: with cosine alone, two different games between the same
teams look like one story, and a missing merge costs a slot while a wrong one hides a story.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta

import numpy as np

from newsrec.types import NewsItem

__all__ = ["same_story_groups", "figures"]

DEFAULT_SAME_STORY_COSINE = 0.8  # for embedders that state no calibrated value: only near-identical vectors
MIN_SHARED_FIGURES = 2
MAX_DAYS_APART = 3.0
_FIGURE = re.compile(r"\d+(?:[.,]\d+)*")


def figures(text: str) -> set[str]:
    """Multi-digit numbers of a text, thousands separators removed: `118`, `6.8`, `4300` (not `3` or `2`)."""
    found = set()
    for raw in _FIGURE.findall(text):
        value = raw.replace(",", "")
        if sum(ch.isdigit() for ch in value) >= 2:
            found.add(value)
    return found


def same_story_groups(items: Sequence[NewsItem], vectors: np.ndarray, embedder: object | None) -> list[list[int]]:
    """Indices of `items` (in list order) grouped by story: each group starts with the item that keeps the slot.

    `vectors` is (N, D), unit rows aligned with `items`; `embedder` made them and states its
    `same_story_cosine`. A group holds at most one item per language.
    """
    n = len(items)
    if n == 0:
        return []
    threshold = float(getattr(embedder, "same_story_cosine", DEFAULT_SAME_STORY_COSINE))
    vectors = np.asarray(vectors, dtype=np.float32).reshape(n, -1)
    languages = np.array([item.language for item in items])
    known = languages != ""
    if len(set(languages[known])) < 2:  # one language (NeMig, a filtered list): nothing to merge
        return [[i] for i in range(n)]
    # Cheap tests first, on the whole (N, N) matrix: only close pairs in two known languages go further.
    # einsum, not `@`: for a (100, 512) list BLAS's thread start-up costs 20-40x the product on a busy CPU.
    similarity = np.einsum("id,jd->ij", vectors, vectors)
    close = (similarity >= threshold) & (languages[:, None] != languages[None, :]) & known[:, None] & known
    numbers: dict[int, set[str]] = {}

    def figures_of(index: int) -> set[str]:
        if index not in numbers:
            numbers[index] = figures(items[index].text)
        return numbers[index]

    groups: dict[int, list[int]] = {}  # first index -> the group's indices
    for j in range(n):
        for i in np.flatnonzero(close[j, :j]):  # earlier items, best first; only those that keep a slot
            group = groups.get(int(i))
            if group is None or items[j].language in {items[m].language for m in group}:
                continue
            if _same_story(items[i], items[j], figures_of(int(i)), figures_of(j)):
                group.append(j)
                break
        else:
            groups[j] = [j]
    return list(groups.values())


def _same_story(a: NewsItem, b: NewsItem, figures_a: set[str], figures_b: set[str]) -> bool:
    """The tests after the cosine and the languages: publication dates, then shared figures."""
    if a.published_at and b.published_at and abs(a.published_at - b.published_at) > timedelta(days=MAX_DAYS_APART):
        return False
    return len(figures_a & figures_b) >= MIN_SHARED_FIGURES
