"""`train`: fit the learned ranker on a corpus's impressions and save it as the corpus's second stage.

`ingest` runs the same for a log with enough users (train_after_ingest), so a user gets the learned stage
without a second command.

The model is fitted on the training users of the user split and measured on the others, so the saved
metrics are honest; the pipeline then uses it for that corpus (`recommend`, the dashboard, `evaluate
--scorer rerank`) as long as the reranker and embedder it was trained with are the configured ones.
"""

from __future__ import annotations

import argparse
import dataclasses

from rich.console import Console
from rich.table import Table

from newsrec.cli.common import add_model_flags, print_json, print_table
from newsrec.cli.evaluate import _progress, open_log
from newsrec.config import Settings
from newsrec.evaluation import offline
from newsrec.evaluation.split import MIN_USERS, default_split
from newsrec.evaluation.training import train_and_save
from newsrec.learning import store
from newsrec.learning.ranker import KINDS
from newsrec.learning.train import is_current


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
        saved = train_and_save(recommender, news_log.impressions, args.kind, args.seed, callback, news_log.name)
    finally:
        if progress:
            progress.stop()
    folder = store.models_dir(settings.home, saved.corpus) / saved.version
    if args.json:
        print_json({"model_id": saved.model_id, "folder": str(folder), "metrics": saved.metrics, **saved.meta})
        return 0
    print_model(saved, str(folder))
    return 0


def print_model(saved: store.SavedModel, folder: str) -> None:
    table = Table(title=f"{saved.model_id}: {saved.meta['test_impressions']} test impressions (users not trained on)")
    for column in ("scorer", "auc", "mrr", "ndcg@5", "ndcg@10"):
        table.add_column(column, justify="right")
    for scorer, values in saved.metrics.items():
        table.add_row(scorer, *(f"{v:.4f}" for v in values.values()))
    print_table(table)
    console = Console()
    weights = ", ".join(
        f"{name} {value:.3f}" for name, value in zip(saved.ranker.features, saved.ranker.coef, strict=False)
    )
    console.print(f"features: {', '.join(saved.ranker.features)}" + (f"\nweights: {weights}" if weights else ""))
    console.print(f"saved to {folder}")


def train_after_ingest(settings: Settings, name: str, quiet: bool = False) -> str | None:
    """`ingest`'s hook: a corpus whose log has enough users gets its learned second stage right away.

    Without it the pipeline would serve the default blend (reranker + 0.3 x CTR log-odds), whose fixed
    weight cannot suit every log: on NeMig-en the lite score carries no click signal and the blend
    trails popularity (AUC 0.517 vs 0.531), on the demo logs the same weight is the best one. `train`
    learns the weights from the corpus's own training users. Returns a line for the report, or None
    when the corpus has no impressions. Skipped where a model reranker would have to score every
    training candidate (minutes to hours), and where the log is too small to measure a model on.
    """
    from newsrec.data.corpus import load_corpus

    corpus = load_corpus(settings, name)
    if not corpus.impressions:
        return None
    users = len({impression.user_id for impression in corpus.impressions})
    if default_split(corpus.impressions) != "user":
        return f"not trained: the log has {users} users, a learned model needs {MIN_USERS} to be measured"
    if settings.resolved_reranker != "lite":
        return (
            f"not trained: reranker {settings.resolved_reranker} would score every logged candidate; "
            f"run `python -m newsrec train --corpus {name}` to fit the learned second stage"
        )
    from newsrec.pipeline import Recommender

    settings = dataclasses.replace(settings, corpus=name)
    recommender = Recommender.from_settings(settings, show_progress=not quiet)
    impressions = offline.corpus_log(settings, name).impressions
    if is_current(recommender, impressions):
        return "learned model unchanged: the latest one was trained on these impressions"
    progress, callback = _progress(quiet, len(impressions), "training the learned ranker")
    if progress:
        progress.start()
    try:
        saved = train_and_save(recommender, impressions, progress=callback, log_name=name)
    finally:
        if progress:
            progress.stop()
    auc = saved.metrics.get("learned", {}).get("auc", float("nan"))
    return f"learned model {saved.model_id} over {', '.join(saved.ranker.features)}: test-user AUC {auc:.3f}"
