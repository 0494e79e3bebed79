"""`evaluate --judgments FILE`: judged relevance of searches and For-you feeds (newsrec/evaluation/judged.py)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys

from rich.console import Console
from rich.table import Table

from newsrec.cli.common import print_json, settings_from_args
from newsrec.config import DEMO_CORPUS
from newsrec.errors import InputError
from newsrec.evaluation.judged import (
    FOR_YOU,
    GroupSummary,
    JudgedReport,
    check_known,
    evaluate_judgments,
    load_judgments,
)
from newsrec.pipeline import GUEST, Recommender

# flags of the log evaluation that mean nothing for judged lines: refused rather than silently ignored
LOG_ONLY_FLAGS = ("news", "behaviors", "scorer", "split", "limit", "dump_scores")


def run_judged(args: argparse.Namespace) -> int:
    given = sorted(f"--{name.replace('_', '-')}" for name in LOG_ONLY_FLAGS if getattr(args, name) is not None)
    if given:
        raise InputError(f"--judgments scores judged lines, not a log; it takes no log flags ({', '.join(given)})")
    settings = settings_from_args(args)
    # lite unless asked otherwise: the judged floors are set for the CPU pipeline CI runs
    settings = dataclasses.replace(
        settings,
        corpus=args.corpus or DEMO_CORPUS,
        embedder=args.embedder or "lite",
        reranker=args.reranker or "lite",
    )
    judged = load_judgments(args.judgments)  # a malformed file fails before the models load
    recommender = Recommender.from_settings(settings, show_progress=not args.json)
    corpus = recommender.corpus
    check_known(judged, corpus.news, [*corpus.users, GUEST], args.judgments)
    progress = None
    if not args.json:
        from rich.progress import Progress

        bar = Progress(transient=True, console=Console(stderr=True))
        task = bar.add_task(f"running {len(judged)} judged lines", total=len(judged))
        progress = lambda done, _total: bar.update(task, completed=done)  # noqa: E731
        bar.start()
    try:
        report = evaluate_judgments(recommender, judged, progress=progress)
    finally:
        if not args.json:
            bar.stop()
    report.about = {"judgments": args.judgments, "corpus": corpus.name, **report.about}
    if args.json:
        print_json(report.to_json())
    else:
        print_judged(report)
    return 0


def print_judged(report: JudgedReport, console: Console | None = None) -> None:
    about = report.about
    table = Table(
        title=f"judged relevance · {about.get('judgments', '')} · {about.get('mode', '')} "
        f"(reranker {about.get('reranker', '')}, embedder {about.get('embedder', '')})"
    )
    for column in ("kind", "lines", "covered", "nDCG@10", "P@5", "P@10*", "said nothing†", "wrongly nothing‡"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    table.add_row(*_cells(report.queries), style="bold")
    for summary in report.by_kind.values():
        table.add_row(*_cells(summary))
    if report.for_you.lines:
        table.add_section()
        table.add_row(*_cells(report.for_you), style="bold")
    # piped output (CI logs, files) gets a width that fits the table; a terminal keeps its own
    console = console or Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    console.print(
        "nDCG@10 (gain 2^grade-1) and P@5 over covered lines (some grade > 0); *P@10 of For-you lines divides by "
        "min(10, the reader's judged relevant unread stories). †uncovered lines (no grade > 0) answered "
        "'nothing matches' (higher is better); ‡covered lines answered so (lower is better). "
        f"{len(report.lines)} lines in {report.seconds:.1f} s."
    )


def _cells(summary: GroupSummary) -> list[str]:
    name = "For you" if summary.name == FOR_YOU else summary.name
    nothing = f"{summary.said_nothing}/{summary.uncovered} ({summary.nothing_share:.0%})" if summary.uncovered else "–"
    wrong = f"{summary.wrongly_nothing}/{summary.covered} ({summary.wrong_share:.0%})" if summary.covered else "–"
    if summary.name == FOR_YOU:
        nothing = wrong = "–"
    return [
        name,
        str(summary.lines),
        str(summary.covered),
        _fmt(summary.ndcg10),
        _fmt(summary.p5),
        _fmt(summary.p10),
        nothing,
        wrong,
    ]


def _fmt(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.3f}"
