"""`evaluate` (offline metrics on an impression log) and `ab-test` (simulated A/B test on the same log).

A log is one of: MIND files (`--news PATH/news.tsv --behaviors PATH/behaviors.tsv`, read in place; the
pipeline scorers also need them as a corpus, ingested on first use), an ingested corpus with impressions
(`--corpus NAME`), or, by default, the demo logs built from the demo corpus's simulated readers.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from newsrec.cli.common import (
    add_model_flags,
    add_rules_flag,
    print_json,
    print_table,
    settings_from_args,
    utf8_text,
)
from newsrec.config import DEMO_CORPUS, Settings
from newsrec.errors import InputError
from newsrec.evaluation import ab, offline, split
from newsrec.evaluation.demo_logs import demo_log
from newsrec.evaluation.metrics import ACCURACY_METRICS, BEYOND_METRICS
from newsrec.learning.ranker import KINDS

log = logging.getLogger(__name__)

PIPELINE_SCORERS = {"retrieval", "rerank", "learned"}


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate",
        help="offline metrics (AUC, MRR, nDCG, diversity, ...) of scorers on an impression log",
        description="Score every impression of a log with each scorer and report MIND metrics with 95% CIs.",
    )
    _add_log_flags(evaluate)
    evaluate.add_argument(
        "--scorer",
        action="append",
        choices=offline.SCORER_NAMES,
        help="scorer to evaluate (repeatable; default: all, less 'learned' under --split none)",
    )
    evaluate.add_argument(
        "--split",
        choices=split.SPLITS,
        help="user: count and train on 80%% of the users (by hash), measure the rest; none: every impression, "
        "popularity leaving its own clicks out (default: user when the log has enough users)",
    )
    evaluate.add_argument(
        "--model-kind", choices=["auto", *KINDS], default="auto", help="what 'learned' fits (default: auto)"
    )
    evaluate.add_argument("--top-k", type=int, default=10, help="list size for the beyond-accuracy metrics")
    evaluate.add_argument("--dump-scores", metavar="FILE", help="write one JSON line of scores per impression")
    evaluate.add_argument(
        "--judgments",
        metavar="FILE",
        type=utf8_text,
        help="instead of a log: graded judgments (JSONL: user, query, labels) of searches and For-you feeds; "
        "reports judged nDCG@10, P@5 and 'nothing matches' answers (lite models unless --embedder/--reranker)",
    )
    add_rules_flag(evaluate)
    evaluate.set_defaults(func=run_evaluate)

    test = subparsers.add_parser(
        "ab-test",
        help="simulated A/B test of pipeline configurations on an impression log",
        description="Assign users to variants by hash, get outcomes by replay and a click model, and compare.",
    )
    _add_log_flags(test)
    test.add_argument(
        "--variants",
        nargs="+",
        default=["A=retrieval", "B=rerank"],
        metavar="NAME=SCORER[,mmr=L]",
        help="variants, the first is the control (default: A=retrieval B=rerank)",
    )
    test.add_argument("--experiment", default="ab", help="experiment name: part of the assignment hash")
    test.add_argument("--mode", choices=[*ab.MODES, "both"], default="both", help="how outcomes are obtained")
    test.add_argument("--k", type=int, default=3, help="slots each variant shows per impression (default: 3)")
    test.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    test.set_defaults(func=run_ab_test)


def _add_log_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--news", help="MIND news.tsv (or its folder)")
    parser.add_argument("--behaviors", help="MIND behaviors.tsv (default: next to --news)")
    parser.add_argument("--limit", type=int, help="evaluate a fixed random sample of N impressions (see --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and the random parts (default: 0)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_model_flags(parser)


# --- shared: which log, which pipeline ----------------------------------------------------------------------


def open_log(args: argparse.Namespace, need_pipeline: bool):
    """(settings, log, recommender or None) for the flags given."""
    settings = settings_from_args(args)
    if args.behaviors and not args.news:
        raise InputError("--behaviors needs --news (the news.tsv its ids refer to)")
    if args.news:
        news_log = offline.load_mind_log(args.news, args.behaviors)
        name = args.corpus or _corpus_name(Path(args.news))
        settings = dataclasses.replace(settings, corpus=name)
        if need_pipeline:
            _ensure_corpus(settings, Path(args.news), name, quiet=args.json)
    elif args.corpus and args.corpus != DEMO_CORPUS:
        news_log = offline.corpus_log(settings, args.corpus)
    else:
        settings = dataclasses.replace(settings, corpus=DEMO_CORPUS)
        news_log = demo_log(settings, seed=args.seed)
    recommender = None
    if need_pipeline:
        from newsrec.pipeline import Recommender

        recommender = Recommender.from_settings(settings, show_progress=not args.json)
    return settings, news_log, recommender


def _corpus_name(news: Path) -> str:
    from newsrec.data.ingest import default_corpus_name

    return default_corpus_name(news if news.is_dir() else news.parent)


def _ensure_corpus(settings: Settings, news: Path, name: str, quiet: bool) -> None:
    """The pipeline needs the log's news as a corpus (and index); ingest it once, reuse it afterwards."""
    from newsrec.data.corpus import corpus_exists

    if corpus_exists(settings.corpus_dir(name)):
        return
    from newsrec.data.ingest import ingest

    if not quiet:
        Console(stderr=True).print(f"ingesting {news} as corpus {name!r} (first use; reused afterwards)")
    ingest(news if news.is_dir() else news.parent, settings, fmt="mind", corpus=name)


def _progress(quiet: bool, total: int, label: str):
    if quiet:
        return None, None
    progress = Progress(transient=True, console=Console(stderr=True))
    task = progress.add_task(label, total=total)
    return progress, lambda done, _total: progress.update(task, completed=done)


# --- evaluate ----------------------------------------------------------------------------------------------


def run_evaluate(args: argparse.Namespace) -> int:
    if args.judgments:
        from newsrec.cli.judged import run_judged

        return run_judged(args)
    if args.top_k < 1:
        raise InputError("--top-k must be at least 1")
    names = args.scorer or list(offline.SCORER_NAMES)
    _, news_log, recommender = open_log(args, need_pipeline=bool(PIPELINE_SCORERS & set(names)))
    counted, measured, how = offline.split_log(news_log.impressions, args.split, args.seed)
    if how == "none" and not args.scorer:
        names = [name for name in names if name != "learned"]
    impressions = offline.sample(measured, args.limit, args.seed)
    training, train_progress = _progress(args.json, len(counted), f"training on {len(counted)} impressions")
    if training and "learned" in names:
        training.start()
    try:
        scorers = offline.make_scorers(
            names,
            counted,
            recommender,
            seed=args.seed,
            split=how,
            news=news_log.news,
            model_kind=args.model_kind,
            progress=train_progress,
        )
    finally:
        if training:
            training.stop()
    scorers = _with_rules(scorers, args, news_log, recommender)
    if recommender is not None:
        context = offline.ItemContext.from_recommender(recommender, news_log.impressions)
    else:
        context = offline.ItemContext.build(news_log.news, news_log.impressions)
    progress, callback = _progress(args.json, len(impressions), f"evaluating {len(impressions)} impressions")
    if progress:
        progress.start()
    try:
        report = offline.evaluate(impressions, scorers, context, k=args.top_k, progress=callback, dump=args.dump_scores)
    finally:
        if progress:
            progress.stop()
    note = _list_size_note(impressions, args.top_k)
    about = describe_split(how, counted, measured)
    if args.json:
        print_json(
            {
                "log": news_log.name,
                "split": how,
                "about": about,
                "sample_seed": args.seed,
                **report.to_json(),
                "note": note,
            }
        )
    else:
        print_evaluation(news_log.name, report, note, recommender)
        print_paired(report)
        Console().print(about)
    return 0


def _with_rules(scorers, args: argparse.Namespace, news_log, recommender) -> list:
    """The scorers with the corpus's rule set applied to each impression (none: unchanged)."""
    from datetime import datetime, timezone

    from newsrec.editorial.scoring import RuledScorer
    from newsrec.editorial.store import RuleStore, labelled_news, load_rules

    settings = recommender.settings if recommender is not None else settings_from_args(args)
    if recommender is not None:
        corpus = recommender.corpus.name
    else:
        corpus = args.corpus or (_corpus_name(Path(args.news)) if args.news else DEMO_CORPUS)
    ruleset = load_rules(settings.home, corpus, args.rules)
    if ruleset is None:
        return scorers
    news = labelled_news(news_log.news, RuleStore(settings.home, corpus).labels())
    users = recommender.corpus.users if recommender is not None else {}
    fresh = recommender.now if recommender is not None else None
    now = datetime.now(timezone.utc)
    return [RuledScorer(scorer, ruleset, news, users, now, fresh) for scorer in scorers]


def describe_split(how: str, counted, measured) -> str:
    users = len({impression.user_id for impression in measured})
    if how == "user":
        return (
            f"user split: popularity and models from {len(counted)} impressions of training users; "
            f"measured on {len(measured)} impressions of {users} other users"
        )
    return f"no split: {len(measured)} impressions of {users} users; popularity leaves each one's own clicks out"


def print_paired(report: offline.EvaluationReport) -> None:
    if report.paired.empty:
        return
    table = Table(title=f"paired difference to {offline.BASELINE} (same impressions; 95% CI, users resampled)")
    table.add_column("scorer")
    for metric in ACCURACY_METRICS:
        table.add_column(f"Δ{metric}", justify="right")
    for row in report.paired.to_dict(orient="records"):
        cells = [f"{row[m]:+.3f} [{row[m + '_low']:+.3f}, {row[m + '_high']:+.3f}]" for m in ACCURACY_METRICS]
        table.add_row(row["scorer"], *cells)
    print_table(table)


def _list_size_note(impressions, k: int) -> str:
    sizes = sorted(len(impression.candidates) for impression in impressions)
    median = sizes[len(sizes) // 2]
    if median <= k:
        return (
            f"half the impressions show {median} or fewer candidates, so the top-{k} is the whole list and the "
            f"beyond-accuracy metrics barely differ between scorers; try --top-k {max(1, median // 2)}"
        )
    return ""


def print_evaluation(name: str, report: offline.EvaluationReport, note: str, recommender) -> None:
    console = Console()
    what = f" · reranker {recommender.reranker.name}, embedder {recommender.embedder.name}" if recommender else ""
    table = Table(title=f"{name}: {report.rows['impression_id'].nunique()} impressions{what}")
    table.add_column("scorer")
    short = {"diversity": "ILD", "novelty": "novelty", "calibration": "JS-cal"}
    for column in (*ACCURACY_METRICS, *(f"{short[m]}@{report.k}" for m in BEYOND_METRICS), f"cov@{report.k}", "s"):
        table.add_column(column, justify="right")
    for row in report.summary.to_dict(orient="records"):
        cells = [_cell(row, m) for m in (*ACCURACY_METRICS, *BEYOND_METRICS)]
        table.add_row(row["scorer"], *cells, _fmt(row["coverage"]), f"{row['seconds']:.1f}")
    print_table(table)
    scored = int(report.summary["scored"].iloc[0]) if len(report.summary) else 0
    console.print(
        f"mean ± the wider half of its 95% bootstrap CI (users resampled; exact bounds in --json); accuracy "
        f"over the {scored} impressions with both a click and a non-click; {report.seconds:.1f} s in all"
    )
    if note:
        console.print(f"note: {note}")


def _cell(row: dict, metric: str) -> str:
    if math.isnan(row[metric]):
        return "–"
    half = max(row[metric] - row[metric + "_low"], row[metric + "_high"] - row[metric])
    return f"{row[metric]:.3f}±{half:.3f}"


def _fmt(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.4f}"


# --- ab-test -------------------------------------------------------------------------------------------------


def run_ab_test(args: argparse.Namespace) -> int:
    variants = [ab.Variant.parse(spec) for spec in args.variants]
    if not 0 < args.alpha < 1:
        raise InputError("--alpha must lie strictly between 0 and 1")
    names = [variant.scorer for variant in variants]
    _, news_log, recommender = open_log(args, need_pipeline=bool(PIPELINE_SCORERS & set(names)))
    impressions = offline.sample(news_log.impressions, args.limit, args.seed)
    scorers = {s.name: s for s in offline.make_scorers(names, news_log.impressions, recommender, seed=args.seed)}
    context = (
        offline.ItemContext.from_recommender(recommender, news_log.impressions)
        if recommender is not None
        else offline.ItemContext.build(news_log.news, news_log.impressions)
    )
    rank_fn = ab.make_rank_fn(scorers, context.embed)
    modes = list(ab.MODES) if args.mode == "both" else [args.mode]
    results = []
    for mode in modes:
        results.append(
            ab.run_experiment(
                impressions,
                variants,
                rank_fn,
                experiment=args.experiment,
                mode=mode,
                k=args.k,
                alpha=args.alpha,
                seed=args.seed,
                read_seconds=ab.reading_seconds(news_log.news),
                embed=context.embed,
            )
        )
    if args.json:
        print_json({"log": news_log.name, "impressions": len(impressions), "results": [r.to_json() for r in results]})
    else:
        for result in results:
            print_ab(news_log.name, len(impressions), result)
    return 0


def print_ab(name: str, n: int, result: ab.ABResult) -> None:
    console = Console()
    table = Table(title=f"A/B {result.experiment!r} on {name} ({n} impressions) · {result.mode}, top-{result.k}")
    for column in ("variant", "users", "impressions", *ab.COMPARED, "coverage"):
        table.add_column(column, justify="right")
    for row in result.variants:
        table.add_row(
            row["config"],
            str(row["users"]),
            str(row["impressions"]),
            *(_fmt(row[m]) for m in ab.COMPARED),
            _fmt(row["coverage"]),
        )
    print_table(table)
    for comparison in result.comparisons:
        console.print(("* " if comparison.significant else "  ") + comparison.verdict)
    for note in result.notes:
        console.print(f"note: {note}")
