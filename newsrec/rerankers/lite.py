"""The lite reranker: a transparent personalised score that runs anywhere in microseconds per item.

    score = w_query    * query relevance      (cosine of query and item, and share of query terms in the item)
          + w_interest * interest affinity    (best cosine to one of the reader's interests, scaled by its weight)
          + w_category * category affinity    (the item's category share in the reader's history)
          + w_fresh    * freshness            (halves every FRESH_HALF_LIFE_DAYS of age)
          - w_avoid    * rejection similarity (cosine to items the reader marked "not interested")

Each part lies in [0, 1]. With a query the query term dominates; without one (the "For you" feed) the
profile terms share its weight. The weights are plain constants, documented in README, so an editor
can tell why one item beats another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from newsrec.embedders import Embedder
from newsrec.lexical import tokenize
from newsrec.rerankers import register_reranker
from newsrec.types import Candidate, Interest, RerankRequest

FRESH_HALF_LIFE_DAYS = 7.0


@dataclass(frozen=True)
class LiteWeights:
    query: float
    interest: float
    category: float
    fresh: float
    avoid: float = 0.3


WITH_QUERY = LiteWeights(query=0.6, interest=0.25, category=0.08, fresh=0.07)
FOR_YOU = LiteWeights(query=0.0, interest=0.6, category=0.2, fresh=0.2)


class LiteReranker:
    name = "lite-personal-v1"

    def __init__(self, embedder: Embedder | None = None):
        self.embedder = embedder  # only used when a request carries no query vector

    def score(self, request: RerankRequest, candidates: Sequence[Candidate]) -> list[float]:
        return [sum(parts.values()) for parts in self.score_components(request, candidates)]

    def score_components(self, request: RerankRequest, candidates: Sequence[Candidate]) -> list[dict[str, float]]:
        """Weighted parts of each candidate's score; they add up to the score."""
        if not candidates:
            return []
        docs = _embeddings(candidates)  # (N, D)
        query = request.query.strip()
        weights = WITH_QUERY if query else FOR_YOU
        profile = request.profile
        parts = {
            "query": self._query_relevance(request, candidates, docs) if query else np.zeros(len(candidates)),
            "interest": np.zeros(len(candidates)),
            "category": np.zeros(len(candidates)),
            "fresh": _freshness(request, candidates),
            "avoid": np.zeros(len(candidates)),
        }
        if profile is not None:
            if profile.interests:
                parts["interest"] = _interest_affinity(docs, profile.interests)
            if profile.categories:
                top_share = max(profile.categories.values())
                parts["category"] = np.array(
                    [profile.categories.get(c.item.category, 0.0) / top_share for c in candidates]
                )
            if profile.avoid:
                rejected = np.stack([interest.vector for interest in profile.avoid])
                parts["avoid"] = -np.clip(docs @ rejected.T, 0, 1).max(axis=1)
        return [
            {name: float(getattr(weights, name) * values[i]) for name, values in parts.items()}
            for i in range(len(candidates))
        ]

    def _query_relevance(self, request: RerankRequest, candidates: Sequence[Candidate], docs: np.ndarray) -> np.ndarray:
        query_vector = request.query_vector
        if query_vector is None and self.embedder is not None:
            query_vector = self.embedder.embed_queries([request.query])[0]
        semantic = np.clip(docs @ query_vector, 0, 1) if query_vector is not None else np.zeros(len(candidates))
        # Term overlap carries Chinese queries, which the English-only lite embedder reads poorly.
        terms = set(tokenize(request.query))
        overlap = np.array([_overlap(terms, c) for c in candidates])
        return 0.5 * semantic + 0.5 * overlap


def _interest_affinity(docs: np.ndarray, interests: Sequence[Interest]) -> np.ndarray:
    """(N,) in [0, 1]: cosine to the nearest interest, scaled by 0.5 + 0.5 x its weight relative to the top one.

    An item is close to an interest if it is close to its centre or to one of its reads (a reader of
    three Lakers stories wants the fourth even if it sits off the centre).
    """
    weights = np.array([interest.weight for interest in interests])
    scale = 0.5 + 0.5 * weights / weights.max()
    affinity = np.zeros(len(docs))
    for interest, factor in zip(interests, scale, strict=True):
        closeness = docs @ interest.vector
        if interest.members is not None and len(interest.members):
            closeness = np.maximum(closeness, (docs @ interest.members.T).max(axis=1))
        affinity = np.maximum(affinity, np.clip(closeness, 0, 1) * factor)
    return affinity


def _overlap(terms: set[str], candidate: Candidate) -> float:
    if not terms:
        return 0.0
    text_terms = set(tokenize(candidate.item.text))
    return len(terms & text_terms) / len(terms)


def _embeddings(candidates: Sequence[Candidate]) -> np.ndarray:
    missing = [c.item.id for c in candidates if c.embedding is None]
    if missing:
        raise ValueError(f"lite reranker needs candidate embeddings; missing for {missing[:3]}")
    return np.stack([c.embedding for c in candidates]).astype(np.float32)


def _freshness(request: RerankRequest, candidates: Sequence[Candidate]) -> np.ndarray:
    dates = [c.item.published_at for c in candidates]
    now = request.now or max((d for d in dates if d), default=None)
    if now is None:
        return np.zeros(len(candidates))
    ages = np.array([max((now - d).total_seconds() / 86400, 0.0) if d else np.inf for d in dates])
    return 0.5 ** (ages / FRESH_HALF_LIFE_DAYS)


@register_reranker("lite")
def lite_reranker(embedder: Embedder | None = None, **_options) -> LiteReranker:
    return LiteReranker(embedder=embedder)
