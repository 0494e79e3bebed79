"""`train`: fit the learned ranker on a corpus's impressions and save it as the corpus's second stage.

The model is fitted on the training users of the user split and measured on the others, so the saved
metrics are honest; the pipeline then uses it for that corpus (`recommend`, the dashboard, `evaluate
--scorer rerank`) as long as the reranker and embedder it was trained with are the configured ones.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from newsrec.cli.common import add_model_flags, print_json
from newsrec.cli.evaluate import _progress, open_log
from newsrec.evaluation import offline
from newsrec.learning import store
from newsrec.learning.ranker import KINDS
from newsrec.learning.train import train_split


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fit the learned ranker on a corpus's impression log and save it for the pipeline",
        description="Fit on training users (hash split), measure on the rest, save under NEWSREC_HOME/models/.",
    )
    parser.add_argument("--news", help="MIND news.tsv (or its folder), ingested as a corpus on first use")
    parser.add_argument("--behaviors", help="MIND behaviors.tsv (default: next to --news)")
    parser.add_argument("--kind", choices=["auto", *KINDS], default="auto", help="model (default: auto, by validation)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the user split (default: 0)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run_train, limit=None)
    add_model_flags(parser)


def run_train(args: argparse.Namespace) -> int:
    settings, news_log, recommender = open_log(args, need_pipeline=True)
    progress, callback = _progress(args.json, len(news_log.impressions), "building training rows")
    if progress:
        progress.start()
    try:
        trained, split = train_split(recommender, news_log.impressions, args.kind, args.seed, callback)
    finally:
        if progress:
            progress.stop()
    saved = store.SavedModel(
        ranker=trained.ranker,
        corpus=recommender.corpus.name,
        version="",
        data_hash=store.data_hash(split.train),
        reranker=recommender.reranker.name,
        embedder=recommender.embedder.name,
        prior=trained.prior.to_dict(),
    )
    from newsrec.learning.stage import LearnedStage

    stage = LearnedStage(saved, trained.builder, recommender.embedder, recommender.lexical)
    scorers = [
        offline.PopularityScorer(split.train, recommender.corpus.news),
        offline.RerankScorer(offline.PipelineScores(recommender, stage), "learned"),
    ]
    report = offline.evaluate(split.test, scorers, n_boot=200)
    summary = report.summary.set_index("scorer")
    saved.metrics = {
        scorer: {m: round(float(summary.loc[scorer, m]), 4) for m in ("auc", "mrr", "ndcg@5", "ndcg@10")}
        for scorer in summary.index
    }
    saved.meta = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "split_seed": args.seed,
        "train_impressions": len(split.train),
        "test_impressions": len(split.test),
        "model_choice_validation_auc": trained.selection,
        "position_corrected_prior": trained.prior.position_corrected,
        "log": news_log.name,
    }
    folder = store.save(settings.home, saved)
    if args.json:
        print_json({"model_id": saved.model_id, "folder": str(folder), "metrics": saved.metrics, **saved.meta})
        return 0
    table = Table(title=f"{saved.model_id}: {len(split.test)} test impressions (users not trained on)")
    for column in ("scorer", "auc", "mrr", "ndcg@5", "ndcg@10"):
        table.add_column(column, justify="right")
    for scorer, values in saved.metrics.items():
        table.add_row(scorer, *(f"{v:.4f}" for v in values.values()))
    console = Console()
    console.print(table)
    weights = ", ".join(
        f"{name} {value:.3f}" for name, value in zip(saved.ranker.features, saved.ranker.coef, strict=False)
    )
    console.print(f"features: {', '.join(saved.ranker.features)}" + (f"\nweights: {weights}" if weights else ""))
    console.print(f"saved to {folder}")
    return 0
