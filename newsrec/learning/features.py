"""Named features of (reader, candidate) pairs: what the learned ranker weighs.

    retrieval   cosine to the reader's closest interest centre (the For-you first stage's content part)
    interest    the lite reranker's interest affinity (closest interest or history item, by its weight)
    category    the item's category share in the reader's history
    fresh       the lite reranker's freshness (halves each week of age)
    avoid       minus the similarity to items the reader marked "not interested"
    publisher   share of the reader's history from the item's publisher
    popularity  log-odds of the item's exposure-aware CTR prior (0 = an average item)
    exposure    log(1 + the item's exposure-weighted shows in the log): how much it was shown at all
    model       the configured reranker's score, when it is a model of its own (e.g. Qwen3-VL)

The personal parts come from `LiteReranker.score_components` of a For-you request, so they mean the
same with or without a query; the query itself is not a learned feature (impression logs carry no
queries) and is added by the second stage with a fixed weight. The display slot is not a feature.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from newsrec.learning.popularity import ExposurePopularity
from newsrec.rerankers.lite import LiteReranker
from newsrec.types import Candidate, Impression, NewsItem, RerankRequest, UserProfile

LITE_PARTS = ("interest", "category", "fresh", "avoid")  # keys of LiteReranker.score_components we learn from
BASE_FEATURES = ("retrieval", *LITE_PARTS, "publisher", "popularity", "exposure")
MODEL_FEATURE = "model"


def feature_names(with_model: bool) -> list[str]:
    return [*BASE_FEATURES, *([MODEL_FEATURE] if with_model else [])]


class FeatureBuilder:
    """Turns one request's candidates into an (N, F) matrix in the order of `names`."""

    def __init__(self, names: Sequence[str], news: Mapping[str, NewsItem], prior: ExposurePopularity | None = None):
        self.names = list(names)
        self.news = news
        self.prior = prior
        self.lite = LiteReranker()  # reads candidate embeddings only; no model of its own

    def build(
        self,
        profile: UserProfile,
        candidates: Sequence[Candidate],
        now=None,
        model_scores: Sequence[float] | None = None,
        leave_out: Impression | None = None,
    ) -> np.ndarray:
        """(N, F). `leave_out`: the training impression these rows come from, kept out of the CTR prior."""
        n = len(candidates)
        columns: dict[str, np.ndarray] = {}
        if n == 0:
            return np.zeros((0, len(self.names)))
        wanted = set(self.names)  # only what the model weighs: a popularity-only model needs no lite parts
        if profile.interests and "retrieval" in wanted:
            docs = np.stack([c.embedding for c in candidates]).astype(np.float32)  # (N, D)
            centres = np.stack([interest.vector for interest in profile.interests])  # (I, D)
            columns["retrieval"] = (docs @ centres.T).max(axis=1)
        if wanted & set(LITE_PARTS):
            parts = self.lite.score_components(RerankRequest(query="", profile=profile, now=now), candidates)
            for name in LITE_PARTS:
                columns[name] = np.array([p.get(name, 0.0) for p in parts])
        if "publisher" in wanted:
            columns["publisher"] = self._publisher_share(profile, candidates)
        if self.prior is not None:
            ids = [c.item.id for c in candidates]
            if "popularity" in wanted:
                columns["popularity"] = self.prior.logit(ids, leave_out)
            if "exposure" in wanted:
                columns["exposure"] = np.log1p(self.prior.shows(ids))
        if model_scores is not None:
            columns[MODEL_FEATURE] = np.asarray(model_scores, dtype=np.float64)
        matrix = np.zeros((n, len(self.names)))
        for j, name in enumerate(self.names):
            if name in columns:
                matrix[:, j] = columns[name]
        return matrix

    def _publisher_share(self, profile: UserProfile, candidates: Sequence[Candidate]) -> np.ndarray:
        sources = Counter(self.news[i].source for i in profile.read_ids if i in self.news and self.news[i].source)
        total = sum(sources.values())
        if not total:
            return np.zeros(len(candidates))
        return np.array([sources.get(c.item.source, 0) / total for c in candidates])
