"""Train, measure and save: fit the learned ranker on the training users of a log, measure it against
popularity on the test users (newsrec/evaluation/offline.py), and save it as the corpus's next model.

It lives in the evaluation layer because it evaluates; newsrec/learning/ trains and never imports back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from newsrec.evaluation import offline
from newsrec.learning import store
from newsrec.learning.stage import LearnedStage
from newsrec.learning.train import Progress, train_split
from newsrec.types import Impression

if TYPE_CHECKING:
    from newsrec.pipeline import Recommender

__all__ = ["train_and_save"]


def train_and_save(
    recommender: Recommender,
    impressions: Sequence[Impression],
    kind: str = "auto",
    seed: int = 0,
    progress: Progress | None = None,
    log_name: str = "",
) -> store.SavedModel:
    """Fit on the training users of the split, measure on the test users, save as the corpus's next version.

    What `train` does and what `ingest` does for a log with enough users; the pipeline then serves with it.
    """
    trained, split = train_split(recommender, impressions, kind, seed, progress)
    saved = store.SavedModel(
        ranker=trained.ranker,
        corpus=recommender.corpus.name,
        version="",
        data_hash=store.data_hash(split.train),
        reranker=recommender.reranker.name,
        embedder=recommender.embedder.name,
        prior=trained.prior.to_dict(),
    )
    stage = LearnedStage(saved, trained.builder, recommender.embedder, recommender.lexical)
    scorers = [
        offline.PopularityScorer(split.train, recommender.corpus.news),
        offline.RerankScorer(offline.PipelineScores(recommender, stage), "learned"),
    ]
    summary = offline.evaluate(split.test, scorers, n_boot=200).summary.set_index("scorer")
    saved.metrics = {
        scorer: {m: round(float(summary.loc[scorer, m]), 4) for m in ("auc", "mrr", "ndcg@5", "ndcg@10")}
        for scorer in summary.index
    }
    saved.meta = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "split_seed": seed,
        "train_impressions": len(split.train),
        "test_impressions": len(split.test),
        "model_choice_validation_auc": trained.selection,
        "position_corrected_prior": trained.prior.position_corrected,
        "log": log_name or recommender.corpus.name,
    }
    store.save(recommender.settings.home, saved)
    return saved
