"""The second stage's final score: the corpus's learned model when it has one, else a default blend.

    learned:  score = sum of the model's feature contributions (+ base) + QUERY_WEIGHT x query part
    blend:    score = the reranker's score (its own parts when it has them) + prior_weight x CTR log-odds

Both return per-candidate contributions that add up to the score, which the explanation and the card
reasons are made from. The reranker's score is cached by the pipeline; this stage is computed per
request (a few milliseconds for 100 candidates), so the cache never holds a stale model's output.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from newsrec.data.corpus import Corpus
from newsrec.learning import store
from newsrec.learning.features import MODEL_FEATURE, FeatureBuilder
from newsrec.learning.popularity import ExposurePopularity
from newsrec.rerankers import Reranker
from newsrec.rerankers.lite import LiteReranker
from newsrec.types import Candidate, Impression, RerankRequest, UserProfile

log = logging.getLogger(__name__)

# Logs hold no queries, so no model learns the query's weight; this fixed one (log-odds per unit of the
# lite query part, which is at most 0.6) lets a full query match outweigh any learned personal signal.
QUERY_WEIGHT = 8.0


class SecondStage(Protocol):
    name: str  # shown with the results and part of what identifies a score
    prior: ExposurePopularity | None  # the CTR prior it scores with (the first stage's trending source too)

    def score(
        self,
        request: RerankRequest,
        pool: Sequence[Candidate],
        model_scores: np.ndarray,
        leave_out: Impression | None = None,
    ) -> tuple[np.ndarray, list[dict[str, float]]]:
        """(scores (N,), contributions per candidate adding up to its score)."""
        ...


class BlendStage:
    """The reranker's score plus a popularity prior term when the corpus has impressions to count."""

    def __init__(self, reranker: Reranker, prior: ExposurePopularity | None = None, prior_weight: float = 0.3):
        self.reranker, self.prior, self.prior_weight = reranker, prior, prior_weight
        self.name = f"{reranker.name}+prior" if prior is not None else reranker.name

    def score(self, request, pool, model_scores, leave_out=None):
        if hasattr(self.reranker, "score_components"):  # its own named parts (lite); they sum to its score
            parts = [dict(p) for p in self.reranker.score_components(request, pool)]
        else:
            parts = [{MODEL_FEATURE: float(s)} for s in model_scores]
        if self.prior is not None and len(pool):
            prior = self.prior.logit([c.item.id for c in pool], leave_out)
            for p, value in zip(parts, prior, strict=True):
                p["popularity"] = float(self.prior_weight * value)
        return np.array([sum(p.values()) for p in parts], dtype=np.float64), parts


class LearnedStage:
    """A saved model over named features; the reranker's score is one of them when it is a model."""

    def __init__(self, saved: store.SavedModel, builder: FeatureBuilder, embedder=None, lexical=None):
        self.saved, self.builder = saved, builder
        self.prior = builder.prior
        self.query_part = LiteReranker(embedder=embedder, lexical=lexical)  # lexical: the corpus's IDF weights
        self.name = f"learned:{saved.model_id}"

    def score(self, request, pool, model_scores, leave_out=None):
        if not len(pool):
            return np.zeros(0), []
        profile = request.profile or UserProfile(user_id="")
        uses_model = MODEL_FEATURE in self.saved.ranker.features
        matrix = self.builder.build(profile, pool, request.now, model_scores if uses_model else None, leave_out)
        parts = self.saved.ranker.named(matrix)
        if request.query.strip():
            query = self.query_part.score_components(request, pool)
            for p, q in zip(parts, query, strict=True):
                p["query"] = QUERY_WEIGHT * q.get("query", 0.0)
        return np.array([sum(p.values()) for p in parts], dtype=np.float64), parts


def build_stage(
    home,
    corpus: Corpus,
    reranker: Reranker,
    embedder,
    prior_weight: float = 0.3,
    lexical=None,
) -> SecondStage:
    """The stage the pipeline runs for `corpus`: its latest compatible model, else the default blend.

    The prior is the one a model was trained with, else one counted from all the corpus's impressions
    (none without impressions). Evaluation builds its stages from training users instead (offline.py).
    """
    prior = None
    saved = store.load(home, corpus.name)
    if saved is not None and (saved.reranker, saved.embedder) != (reranker.name, embedder.name):
        log.warning(
            "model %s was trained with reranker %s and embedder %s, not %s and %s: using the default blend",
            saved.model_id,
            saved.reranker,
            saved.embedder,
            reranker.name,
            embedder.name,
        )
        saved = None
    if saved is not None and saved.prior:  # the prior the model was trained with (e.g. demo logs built on the fly)
        prior = ExposurePopularity.from_dict(saved.prior, corpus.news)
    if prior is None and corpus.impressions:
        prior = ExposurePopularity.fit(corpus.impressions, corpus.news)
    if saved is not None:
        return LearnedStage(saved, FeatureBuilder(saved.ranker.features, corpus.news, prior), embedder, lexical)
    return BlendStage(reranker, prior, prior_weight)
