"""Training the learned ranker on a corpus's impressions, the way `train` and `evaluate --scorer learned` do.

Rows are (impression, candidate) pairs of training users only, features built as the pipeline builds
them at serving time (the profile from the impression's own history), labels = clicked. The CTR prior
of a training row is counted out of fold: from the other users' impressions (5 folds by user hash),
else the prior would already know the label. (Leaving out only the row's own impression is not enough:
it lowers exactly the clicked rows' prior, and the model learns that popularity hurts.) Model
kind "auto" compares, by AUC over the same 5 user folds of the training users (fit on four, measured on
the fifth), both kinds over all features and the logistic model over the CTR prior alone. It keeps
LightGBM only if it beats the logistic model by more than SELECTION_MARGIN, and the personal features
only if they beat the prior alone by that margin: test users never take part in the choice. (On NeMig-en
the trees won validation by 0.008 and lost on test users, 0.518 against 0.528.)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from newsrec.errors import InputError
from newsrec.learning import ranker as ranking
from newsrec.learning import store
from newsrec.learning.features import FeatureBuilder, feature_names
from newsrec.learning.popularity import ExposurePopularity
from newsrec.learning.split import split_users
from newsrec.rerankers.lite import LiteReranker
from newsrec.types import Candidate, Impression, RerankRequest

if TYPE_CHECKING:
    from newsrec.pipeline import Recommender

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
FOLDS = 5  # out-of-fold CTR priors for training rows
SELECTION_MARGIN = 0.01  # validation AUC gap below which two models count as equal (noise at ~2,000 impressions)
PRIOR_FEATURES = ("popularity", "exposure")  # the item-only model that personal features must beat


@dataclass
class Trained:
    ranker: ranking.LearnedRanker
    prior: ExposurePopularity
    builder: FeatureBuilder
    selection: dict[str, float] = field(default_factory=dict)  # validation AUC per kind tried


def uses_model_score(recommender: Recommender) -> bool:
    """Whether the reranker's score is a feature: yes for a model, no for the lite formula (its parts already are)."""
    return not isinstance(recommender.reranker, LiteReranker)


def candidates_of(recommender: Recommender, news_ids: Sequence[str]) -> tuple[list[int], list[Candidate]]:
    """(positions of the ids the index knows, their candidates with embeddings)."""
    news, index = recommender.corpus.news, recommender.index
    known = [i for i, news_id in enumerate(news_ids) if news_id in news and index.has(news_id)]
    if not known:
        return [], []
    vectors = recommender.index.embeddings([news_ids[i] for i in known])  # (N, D)
    return known, [
        Candidate(item=recommender.corpus.news[news_ids[i]], retrieval_score=0.0, retrieval_rank=0, embedding=v)
        for i, v in zip(known, vectors, strict=True)
    ]


def impression_features(
    recommender: Recommender, builder: FeatureBuilder, impression: Impression
) -> tuple[list[int], np.ndarray]:
    """(known candidate positions, their (N, F) features) for one impression, labels never read."""
    known, candidates = candidates_of(recommender, impression.candidates)
    if not candidates:
        return [], np.zeros((0, len(builder.names)))
    profile = recommender.profile_from_history(impression.history, user_id=impression.user_id)
    model_scores = None
    if "model" in builder.names:
        request = RerankRequest(
            query="", profile=profile, instruction=recommender.settings.instruction, now=recommender.now
        )
        model_scores = recommender.reranker.score(request, candidates)
    matrix = builder.build(profile, candidates, recommender.now, model_scores)
    return known, matrix


def fold_of(user_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"fold:{user_id}".encode()).digest()[:4], "little") % FOLDS


def collect(
    recommender: Recommender,
    builder: FeatureBuilder,
    impressions: Sequence[Impression],
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training rows: features (N, F), labels (N,), impression number (N,), user of each row (N,).

    Each row's CTR prior comes from the impressions of the other folds' users (out of fold).
    """
    folds = [fold_of(impression.user_id) for impression in impressions]
    builders = [
        FeatureBuilder(
            builder.names,
            recommender.corpus.news,
            ExposurePopularity.fit(
                [i for i, f in zip(impressions, folds, strict=True) if f != fold], recommender.corpus.news
            ),
        )
        for fold in range(FOLDS)
    ]
    blocks, labels, groups, users = [], [], [], []
    for number, impression in enumerate(impressions):
        known, matrix = impression_features(recommender, builders[folds[number]], impression)
        blocks.append(matrix)
        labels.extend(int(impression.labels[i] > 0) for i in known)
        groups.extend([number] * len(known))
        users.extend([impression.user_id] * len(known))
        if progress:
            progress(number + 1, len(impressions))
    x = np.vstack(blocks) if blocks else np.zeros((0, len(builder.names)))
    return x, np.array(labels), np.array(groups), np.array(users)


def train(
    recommender: Recommender,
    impressions: Sequence[Impression],
    kind: str = "auto",
    progress: Progress | None = None,
    features: Sequence[str] | None = None,
) -> Trained:
    """Fit a ranker on `impressions` (training users only: the caller splits).

    `features`: fit exactly these (e.g. refitting a saved model's choice), else all, or the choice of "auto".
    """
    if kind not in (*ranking.KINDS, "auto"):
        raise InputError(f"unknown model kind {kind!r}; choose from: auto, {', '.join(ranking.KINDS)}")
    prior = ExposurePopularity.fit(impressions, recommender.corpus.news)
    builder = FeatureBuilder(feature_names(uses_model_score(recommender)), recommender.corpus.news, prior)
    x, y, groups, users = collect(recommender, builder, impressions, progress)
    if len(y) == 0 or len(np.unique(y)) < 2:
        raise InputError("the training impressions need both clicked and unclicked candidates the index knows")
    selection: dict[str, float] = {}
    names = all_names = builder.names
    if features is not None:
        unknown = sorted(set(features) - set(all_names))
        if unknown:
            raise InputError(f"unknown features {', '.join(unknown)}; this corpus and reranker give {all_names}")
        names = list(features)
    elif kind == "auto":
        folds = user_folds(users)

        def validate(candidate: str, features: Sequence[str]) -> float:
            """Mean AUC over the user folds: one held-out fifth of the training users is too noisy to choose by."""
            cols = [all_names.index(name) for name in features]
            aucs = []
            for held in folds:
                model = ranking.fit(candidate, x[~held][:, cols], y[~held], groups[~held], features)
                aucs.append(ranking.mean_auc(model.predict(x[held][:, cols]), y[held], groups[held]))
            return float(np.mean(aucs))

        for candidate in ranking.KINDS:
            selection[candidate] = validate(candidate, names)
        # the trees must beat the linear model by more than noise: simpler to explain, steadier on new users
        kind = "lightgbm" if selection["lightgbm"] > selection["logistic"] + SELECTION_MARGIN else "logistic"
        # Personal features must earn their place too: where they carry no click signal (NeMig-en), their
        # noise only costs accuracy on new users, so the CTR prior alone is kept unless they beat it.
        prior_only = [name for name in PRIOR_FEATURES if name in names]
        if prior_only and len(prior_only) < len(names):
            selection["prior only"] = validate("logistic", prior_only)
            if selection[kind] <= selection["prior only"] + SELECTION_MARGIN:
                kind, names = "logistic", prior_only
        log.info("model choice by validation AUC: %s -> %s over %s", selection, kind, ", ".join(names))
    if names != all_names:
        builder = FeatureBuilder(names, recommender.corpus.news, prior)
        x = x[:, [all_names.index(name) for name in names]]
    return Trained(ranking.fit(kind, x, y, groups, names), prior, builder, selection)


def user_folds(users: np.ndarray) -> list[np.ndarray]:
    """(N,) bool masks, one per fold: the rows of that fold's users (the folds of the out-of-fold prior)."""
    fold = {user: fold_of(user) for user in np.unique(users)}
    of_row = np.array([fold[user] for user in users])
    masks = [of_row == f for f in range(FOLDS)]
    if any(mask.all() or not mask.any() for mask in masks):  # tiny logs: every fifth row instead
        masks = [np.arange(len(users)) % FOLDS == f for f in range(FOLDS)]
    return masks


def train_split(recommender: Recommender, impressions: Sequence[Impression], kind: str, seed: int, progress=None):
    """(trained on training users, the split): what `train` saves and `evaluate --scorer learned` uses."""
    split = split_users(impressions, seed)
    return train(recommender, split.train, kind, progress), split


def is_current(recommender: Recommender, impressions: Sequence[Impression], seed: int = 0) -> bool:
    """Whether the corpus's latest model was trained on these very training impressions with these models."""
    saved = store.load(recommender.settings.home, recommender.corpus.name)
    if saved is None or (saved.reranker, saved.embedder) != (recommender.reranker.name, recommender.embedder.name):
        return False
    return saved.data_hash == store.data_hash(split_users(impressions, seed).train)
