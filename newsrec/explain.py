"""One-line explanations: which interest, history item, category and query terms a recommendation matched.

Computed from embeddings and the profile, independent of the reranker, so the Qwen3-VL reranker's
results are explained in the same words as the lite reranker's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from newsrec.lexical import tokenize
from newsrec.types import NewsItem, UserProfile

INTEREST_MATCH = 0.3  # cosine above which an item is said to match an interest
HISTORY_MATCH = 0.45  # ... or to be close to one history item


def explain(
    item: NewsItem,
    embedding: np.ndarray | None,
    profile: UserProfile | None,
    history_vectors: Mapping[str, np.ndarray],
    history_titles: Mapping[str, str],
    query: str = "",
) -> tuple[str, list[str]]:
    """(explanation line, history news ids it is closest to)."""
    reasons: list[str] = []
    matched: list[str] = []
    if query.strip():
        terms = set(tokenize(query)) & set(tokenize(item.text))
        if terms:
            reasons.append("query terms: " + ", ".join(sorted(terms)[:4]))
    if profile is not None and embedding is not None:
        if profile.interests:
            similarities = [float(interest.vector @ embedding) for interest in profile.interests]
            best = int(np.argmax(similarities))
            if similarities[best] >= INTEREST_MATCH:
                reasons.append(f"interest “{profile.interests[best].label}” ({similarities[best]:.2f})")
        if history_vectors:
            ids = list(history_vectors)
            similarities = np.stack([history_vectors[i] for i in ids]) @ embedding
            order = np.argsort(-similarities)
            matched = [ids[i] for i in order[:3] if similarities[i] >= HISTORY_MATCH]
            if matched:
                reasons.append(f"like “{history_titles.get(matched[0], matched[0])[:50]}”")
        share = profile.categories.get(item.category, 0.0)
        if share >= 0.1:
            reasons.append(f"{item.category} is {share:.0%} of reading")
    fallback = (
        "matches the query; unlike the reading history" if query.strip() else "recent story outside the usual interests"
    )
    return ("; ".join(reasons) or fallback), matched
