"""Query relevance in [0, 1], one definition for the first stage, the lite reranker and the empty state.

    relevance = DENSE_SHARE * dense + (1 - DENSE_SHARE) * lexical

- dense: the query-item cosine read through the embedder's `query_scale`: 0 under its calibrated match
  threshold (no match at all), 1 from the cosine where a query meets its best items. The multilingual
  embedder reads across languages and meaning; alone it confuses Apple the company with apples.
- lexical: the IDF-weighted share of the query's terms an item contains (LexicalIndex.match); it tells
  收购价 from 售价 and `harvest` from `headset`, and a generic word (prices, 突破) moves it little.

Fusing the scores, not the ranks (reciprocal rank fusion, before), keeps how strongly each side matched:
an item that only shares the word "prices" ranked 5th lexically, and rank fusion lifted it as high as
a dense 5th that was truly about the query.

A query matches nothing when no item shares a topical term with it and no item's cosine reaches the
threshold; the pipeline then says so and shows the reader's For-you feed (`query_matched`).

The query's sense: USE puts "Apple launch event" as close to apple wholesale prices as to the MacBook
launch (cosine 0.35 both), and the word "apple" is in both, so neither side tells Apple from apples.
The items that match most of the query's terms do: given the items' categories, a partial match
(under SENSE_COVERAGE) in a category none of the full matches has counts OFF_SENSE of its relevance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DENSE_SHARE = 0.5  # the two sides count alike: each catches what the other misses
SENSE_COVERAGE = 0.5  # an item with this share of the query's (IDF-weighted) terms is a full match
OFF_SENSE = 0.5  # what a partial match outside the full matches' categories keeps of its relevance
# A clear semantic match on its own, on the embedder's query scale: for the lite encoder (floor 0.25, full 0.5)
# a cosine of 0.425. Calibrated on the judged development set (assets/demo/judgments-dev.jsonl): for topics the
# corpus does not cover, or covers only nearly (Bundesliga -> Chinese football, COVID vaccine -> flu vaccine),
# the closest story reaches up to 0.41; a covered query that no story matches in words needs more than that.
CLEAR_MATCH = 0.7
PART_SHARE = 0.5  # a partial match that holds half the query's weight is related (typhoon of "Typhoon X")


@dataclass(frozen=True)
class CosineScale:
    """How to read an embedder's cosines: `floor` and under = unrelated (0), `full` and over = fully related (1).

    Embedders state theirs as `query_scale` (query vs item) and `related_scale` (item vs item); one that
    states none (Qwen3-VL, not calibrated yet) keeps the plain clipped cosine.
    """

    floor: float = 0.0
    full: float = 1.0

    def __call__(self, cosines: np.ndarray | float) -> np.ndarray:
        span = max(self.full - self.floor, 1e-6)
        return np.clip((np.asarray(cosines, dtype=np.float64) - self.floor) / span, 0.0, 1.0)


def query_scale(embedder: object | None) -> CosineScale:
    return getattr(embedder, "query_scale", None) or CosineScale()


def related_scale(embedder: object | None) -> CosineScale:
    return getattr(embedder, "related_scale", None) or CosineScale()


def query_relevance(
    cosines: np.ndarray,
    coverage: np.ndarray,
    embedder: object | None,
    categories: Sequence[str] | None = None,
    held: np.ndarray | None = None,
    covers: np.ndarray | None = None,
    full: np.ndarray | None = None,
    familiar: np.ndarray | None = None,
    headline: np.ndarray | None = None,
    known: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) in [0, 1] from query-item cosines and lexical coverage (LexicalIndex.score), both (N,).

    With the items' `categories`, partial matches outside the full matches' categories count less
    (`sense_factor`). With `held` and `covers` (LexicalMatch: the share of the query's concepts each item
    holds, and whether that covers the query) and an embedder with a calibrated `query_scale`, items the
    query does not admit (`admitted`) score 0.
    """
    coverage = np.asarray(coverage, dtype=np.float64)
    relevance = DENSE_SHARE * query_scale(embedder)(cosines) + (1 - DENSE_SHARE) * coverage
    if full is None:
        full = coverage >= SENSE_COVERAGE
    if categories is not None:
        relevance = relevance * sense_factor(full, categories, familiar)
    if held is not None and covers is not None and getattr(embedder, "query_scale", None) is not None:
        admit = admitted(cosines, held, covers, embedder, categories, full, familiar, headline, known)
        relevance = np.where(admit, relevance, 0.0)
    return relevance


def admitted(
    cosines: np.ndarray,
    held: np.ndarray,
    covers: np.ndarray,
    embedder: object | None,
    categories: Sequence[str] | None = None,
    full: np.ndarray | None = None,
    familiar: np.ndarray | None = None,
    headline: np.ndarray | None = None,
    known: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) bool: the items a query admits. One shared common word ("price", "event") is not enough.

    An item is admitted when it
    - covers the query: holds its distinctive terms (LexicalMatch.covers); or
    - holds every word of the query that some item has, where the query also has a word no item has
      (`known`, LexicalMatch.known), and is semantically related to the whole query (cosine at the scale's
      floor): 战况 is in no story, so words cannot tell whether an NBA story says "NBA最新战况"; its meaning
      can, while 牙齿健康 stays apart from a clinic story that says 健康 (cosine 0.13, under the floor); or
    - is a clear semantic match: its cosine reads CLEAR_MATCH or more on the embedder's query scale; or
    - where some item covers the query: holds PART_SHARE of it, or part of it with a cosine at the
      scale's floor (semantically related at all).
    All only in the query's sense (with `categories`, `sense_factor`): an item neither in the categories of
    the `full` matches (LexicalMatch.full) nor `familiar` to the reader is left out. For Daniel, "Apple
    launch event" fully matches the MacBook launch (tech); the apple wholesale-price story (finance/
    commodities, which he never reads) holds "apple" but not "launch event", and stays out.

    With `headline` (LexicalMatch.headline), an item that holds part of the query only in its body and whose
    cosine is under the scale's floor only mentions it and does not cover it: a world tour with a Tokyo date is
    not "Tokyo travel", an online-clinic story that says 健康 in passing is not 牙齿健康. Its title or desk labels,
    or its meaning, must say the query; or its body all of the query (a product named only in the body).
    """
    cosines = np.asarray(cosines, dtype=np.float64)
    held = np.asarray(held, dtype=np.float64)
    covers = np.asarray(covers, dtype=bool)
    scale = query_scale(embedder)
    if headline is not None:
        mention = ~np.asarray(headline, dtype=bool) & (cosines < scale.floor) & (held < 1.0 - 1e-9)
        covers = covers & ~mention
        full = None if full is None else np.asarray(full, dtype=bool) & ~mention
    if known is not None:
        covers = covers | (np.asarray(known, dtype=bool) & (cosines >= scale.floor))
    related = scale(cosines) >= CLEAR_MATCH
    if covers.any():
        related |= (held >= PART_SHARE) | ((held > 0) & (cosines >= scale.floor))
    admit = covers | related
    if categories is not None and covers.any():
        full = covers if full is None else np.asarray(full, dtype=bool)
        admit &= full | (sense_factor(full, categories, familiar) == 1.0)
    return admit


def sense_factor(full: np.ndarray, categories: Sequence[str], familiar: np.ndarray | None = None) -> np.ndarray:
    """(N,): 1, or OFF_SENSE for an item that is not a full match and lies outside the query's sense.

    In sense: in a category of a full match, or `familiar` to the reader (a subcategory the reader reads):
    the reader settles what the query means. A topic spans categories (battery cells under autos, science
    and tech), and a battery engineer reads them all; an apple grower reads no phones. Without a full match
    (a one-word query the items only mention, a query answered in another language) nothing says which
    sense is meant, and every item keeps its relevance.
    """
    full = np.asarray(full, dtype=bool)
    categories = np.asarray(list(categories), dtype=object)
    if not full.any():
        return np.ones(len(full))
    in_sense = np.isin(categories, sorted(set(categories[full])))
    if familiar is not None:
        in_sense |= np.asarray(familiar, dtype=bool)
    return np.where(full | in_sense, 1.0, OFF_SENSE)


def matches(relevance: np.ndarray) -> bool:
    """Whether anything matched the query: an admitted item (relevance above 0)."""
    relevance = np.asarray(relevance)
    return bool(relevance.size and relevance.max() > 0)
