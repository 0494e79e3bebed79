"""Reader feedback that does what its button says.

- "More like this" keeps the card (marked liked, at its place), pulls the profile towards the story and
  reports which similar stories the new list brought in.
- "Not interested" hides the card, adds the story as a direction to avoid and reports how many similar
  stories moved down or out.

The profile update itself is `newsrec.profiles.apply_feedback`; what is added here is the page's side of
it: the liked story stays eligible (apply_feedback marks it read), the card is kept where it was, and
"similar" is measured the same way for both messages and tests: the story's nearest neighbours in the index.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from newsrec.errors import InputError
from newsrec.types import Recommendation, RecommendResult, UserProfile
from newsrec.ui.i18n import t
from newsrec.ui.reasons import clip

if TYPE_CHECKING:
    from newsrec.pipeline import Recommender

SIMILAR_N = 10  # a story's "similar stories": its nearest neighbours in the index ...
SIMILAR_MIN = 0.2  # ... that are at least this close (cosine); further ones share a word, not a topic
MAX_NAMED = 3  # titles named in a message


@dataclass(frozen=True)
class Outcome:
    """What one click changed, for the message above the cards."""

    action: str  # "like" / "dislike"
    news_id: str
    title: str
    changed: tuple[str, ...]  # like: similar stories brought in; dislike: similar stories moved down or out


def similar_ids(recommender: Recommender, news_id: str, n: int = SIMILAR_N) -> set[str]:
    """The story's `n` nearest neighbours in the index that are at least SIMILAR_MIN close (itself excluded)."""
    vector = recommender.index.embeddings([news_id])[0]
    return {i for i, score in recommender.index.search(vector, n + 1) if i != news_id and score >= SIMILAR_MIN}


def closeness(recommender: Recommender, result: RecommendResult, news_id: str) -> float:
    """Rank-discounted mean cosine of the other cards in `result` to the story (1/log2(rank + 1), as in DCG):
    higher after a like, lower after a dislike. The discount counts similar stories moving up, not only in."""
    ranked = [(r.rank, r.item.id) for r in result.reranked if r.item.id != news_id and recommender.index.has(r.item.id)]
    if not ranked:
        return 0.0
    weights = 1.0 / np.log2(np.array([rank for rank, _ in ranked]) + 1.0)
    cosines = recommender.index.embeddings([i for _, i in ranked]) @ recommender.index.embeddings([news_id])[0]
    return float(weights @ cosines / weights.sum())


def update_profile(recommender: Recommender, profile: UserProfile, news_id: str, liked: bool) -> UserProfile:
    """The session profile after one click; the liked story itself stays eligible for the list."""
    from newsrec.profiles import apply_feedback

    item = recommender.corpus.news.get(news_id)
    if item is None or not recommender.index.has(news_id):
        raise InputError(f"unknown news item {news_id!r}")
    embedding = recommender.index.embeddings([news_id])[0]
    updated = apply_feedback(profile, item, embedding, liked=liked)
    if liked:  # apply_feedback treats a liked story as read; the page keeps showing it
        updated = replace(updated, read_ids=updated.read_ids - {news_id})
    return updated


def keep_card(result: RecommendResult, kept: Recommendation) -> RecommendResult:
    """The new list with the liked card at its old rank when the rerun did not place it in the top k."""
    ranked = [r for r in result.reranked if r.item.id != kept.item.id]
    if len(ranked) < len(result.reranked):  # the rerun kept it on its own
        return result
    k = len(result.reranked) or kept.rank
    position = min(kept.rank, len(ranked) + 1) - 1
    ranked.insert(position, kept)
    ranked = [replace(r, rank=i) for i, r in enumerate(ranked[:k], 1)]
    return replace(result, reranked=ranked)


def outcome(
    recommender: Recommender, action: str, news_id: str, before: RecommendResult | None, after: RecommendResult
) -> Outcome:
    """Which similar stories the click brought in (like) or pushed down or out (dislike)."""
    similar = similar_ids(recommender, news_id)
    old = {r.item.id: r.rank for r in before.reranked} if before else {}
    new = {r.item.id: r.rank for r in after.reranked}
    if action == "like":
        changed = [r.item.id for r in after.reranked if r.item.id in similar and r.item.id not in old]
    else:
        changed = [i for i, rank in old.items() if i in similar and (i not in new or new[i] > rank)]
    title = recommender.corpus.news[news_id].title
    return Outcome(action, news_id, title, tuple(changed))


def message(result: Outcome, titles: dict[str, str], lang: str = "en") -> str:
    title = clip(result.title, 40)
    if result.action == "dislike":
        return t("dislike_done", lang, title=title, count=len(result.changed))
    if not result.changed:
        return t("like_none", lang, title=title)
    named = "；".join if lang == "zh" else "; ".join
    quoted = [("《{}》" if lang == "zh" else "“{}”").format(clip(titles[i], 36)) for i in result.changed[:MAX_NAMED]]
    return t("like_done", lang, title=title, count=len(result.changed), titles=named(quoted))
