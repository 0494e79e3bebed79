"""Score parts and reasons for cards whose pipeline left them empty.

A pipeline fills `Recommendation.contributions` and `.reasons` itself when it can; for one that does not,
the page still shows a legible match. If the reranker can split its score (`score_components`, as the lite
reranker does) the parts come from there, used only when they add up to the score shown; the reasons are
then the largest positive parts, with what to quote: the query terms found in the story, the words of the
nearest interest, the category, the story's date, the rejected story it resembles.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from newsrec.lexical import tokenize
from newsrec.types import Candidate, Reason, Recommendation, RecommendResult, RerankRequest, UserProfile
from newsrec.ui.reasons import reasons_from_parts

if TYPE_CHECKING:
    from newsrec.pipeline import Recommender

TOLERANCE = 1e-3  # parts must add up to the score shown, or they are not used


def complete(
    recommender: Recommender, result: RecommendResult, profile: UserProfile, instruction: str = ""
) -> RecommendResult:
    """`result` with contributions and reasons filled where the pipeline gave none (nothing else changes)."""
    todo = [rec for rec in result.reranked if not rec.contributions or not rec.reasons]
    if not todo:
        return result
    vectors = _vectors(recommender, [rec.item.id for rec in todo])
    split = _split(recommender, result, profile, instruction, todo, vectors)
    filled: dict[str, Recommendation] = {}
    for rec, vector, parts in zip(todo, vectors, split, strict=True):
        contributions = rec.contributions or parts
        reasons = rec.reasons or _reasons(contributions, rec, vector, profile, result.query, recommender.corpus.news)
        filled[rec.item.id] = replace(rec, contributions=contributions, reasons=reasons)
    return replace(result, reranked=[filled.get(rec.item.id, rec) for rec in result.reranked])


def _vectors(recommender: Recommender, ids: list[str]) -> list[np.ndarray | None]:
    known = [i for i in ids if recommender.index.has(i)]
    rows = dict(zip(known, recommender.index.embeddings(known), strict=True)) if known else {}
    return [rows.get(i) for i in ids]


def _split(recommender, result, profile, instruction, todo, vectors) -> list[dict[str, float]]:
    splitter = getattr(recommender.reranker, "score_components", None)
    if splitter is None or any(v is None for v in vectors):
        return [{} for _ in todo]
    request = RerankRequest(
        query=result.query,
        profile=profile,
        instruction=instruction or recommender.settings.instruction,
        now=recommender.now,
        query_vector=recommender.embedder.embed_queries([result.query])[0] if result.query else None,
    )
    candidates = [Candidate(r.item, r.retrieval_score, r.retrieval_rank, v) for r, v in zip(todo, vectors, strict=True)]
    parts = splitter(request, candidates)
    return [p if abs(sum(p.values()) - r.score) <= TOLERANCE else {} for r, p in zip(todo, parts, strict=True)]


def _reasons(contributions, rec: Recommendation, vector, profile: UserProfile, query: str, news) -> list[Reason]:
    reasons = []
    for reason in reasons_from_parts(contributions):
        kind, detail = _detail(reason.kind, rec, vector, profile, query, news)
        reasons.append(replace(reason, kind=kind, detail=detail))
    return reasons


def _detail(kind: str, rec: Recommendation, vector, profile: UserProfile, query: str, news) -> tuple[str, str]:
    """(kind, what to quote); an interest without words (one liked story) is quoted by that story's title."""
    item = rec.item
    if kind == "query":
        found = [term for term in tokenize(query) if term in set(tokenize(item.text))]
        return kind, " ".join(dict.fromkeys(found)) or query
    if kind == "category":
        return kind, item.category
    if kind == "fresh":
        return kind, item.published_at.strftime("%Y-%m-%d") if item.published_at else ""
    if kind == "interest" and vector is not None and profile.interests:
        best = max(profile.interests, key=lambda interest: float(interest.vector @ vector))
        if best.keywords:
            return kind, " · ".join(best.keywords[:3])
        if best.news_ids and best.news_ids[0] in news:
            return "history", news[best.news_ids[0]].title
        return kind, best.label
    if kind == "avoid" and vector is not None and profile.avoid:
        nearest = max(profile.avoid, key=lambda interest: float(interest.vector @ vector))
        known = nearest.news_ids and nearest.news_ids[0] in news
        return kind, news[nearest.news_ids[0]].title if known else nearest.label
    return kind, ""
