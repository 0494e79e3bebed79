"""`audit`: preview two feeds (draft vs live rules, reranked vs retrieval, ...) across a panel of readers,
and `bench audit`: what such a panel costs (seconds per stage, readers/s, CPU seconds)."""

from __future__ import annotations

import argparse
import os
import resource
import time

from rich.console import Console
from rich.table import Table

from newsrec.cli.common import add_model_flags, in_range, print_json, settings_from_args, utf8_text
from newsrec.config import K_RANGE

PANEL_HELP = "personas | sample:N | segment:<expr> (e.g. segment:reads=sports,lang=en)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit", help="what-if preview: compare two feeds across a panel of readers")
    parser.add_argument("--panel", default="personas", type=utf8_text, help=PANEL_HELP + " (default: personas)")
    parser.add_argument(
        "--compare",
        default="draft:live",
        type=utf8_text,
        help="X:Y, X previewed against the baseline Y, each from draft, live, none (= reranked, no rules), "
        "reranked, retrieval (default: draft:live, the draft against live; none:retrieval shows what reranking does)",
    )
    parser.add_argument("--k", type=in_range(int, *K_RANGE), default=10, help="feed length audited (1-30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of a sample:N panel (default 0)")
    parser.add_argument("--csv", type=utf8_text, help="write the tables as CSV into this folder (or .zip file)")
    parser.add_argument("--html", type=utf8_text, help="write a self-contained HTML report to this file")
    parser.add_argument("--lang", choices=("en", "zh"), default="en", help="language of the HTML report")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_model_flags(parser)
    parser.set_defaults(func=run_audit)


def add_bench_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("audit", help="cost of a panel preview: seconds per stage, readers/s")
    parser.add_argument("--panel", default="personas", type=utf8_text, help=PANEL_HELP + " (default: personas)")
    parser.add_argument("--k", type=in_range(int, *K_RANGE), default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--baseline",
        type=int,
        default=0,
        help="also time one-at-a-time `recommend` for the first N panel readers and compare their top k",
    )
    parser.add_argument("--json", action="store_true")
    add_model_flags(parser)
    parser.set_defaults(func=run_bench)


def _recommender(args: argparse.Namespace):
    from newsrec.pipeline import Recommender

    return Recommender.from_settings(settings_from_args(args), show_progress=not args.json)


def run_audit(args: argparse.Namespace) -> int:
    from newsrec.editorial import report as exports
    from newsrec.editorial.audit import parse_compare, preview
    from newsrec.editorial.panel import PanelCost, build_panel

    shown, baseline = parse_compare(args.compare)  # checked before the models load
    a, b = baseline, shown  # the report's A is the baseline: "entered" are the stories X brings in (as in the tab)
    recommender = _recommender(args)
    panel = build_panel(args.panel, recommender, seed=args.seed)
    cost = PanelCost()
    result = preview(recommender, panel, a, b, k=args.k, cost=cost)
    result.meta["seconds"] = {stage: round(value, 3) for stage, value in cost.seconds.items()}
    result.meta["cpu_seconds"] = {stage: round(value, 3) for stage, value in cost.cpu_seconds.items()}
    if args.csv:
        exports.to_csv(result, args.csv)
    if args.html:
        from pathlib import Path

        Path(args.html).write_text(exports.to_html(result, args.lang), encoding="utf-8")
    if args.json:
        print_json(result.to_dict())
        return 0
    console = Console()
    console.print(f"{panel.description} · {b} against {a} · top {args.k}")
    table = Table(title="summary")
    for column in ("metric", a, b, "delta"):
        table.add_column(column, justify="right")
    for row in result.summary.itertuples(index=False):
        table.add_row(row.metric, *(_fmt(v) for v in (row.a, row.b, row.delta)))
    console.print(table)
    moved = result.stories[result.stories["reach_delta"] != 0]
    stories = Table(title=f"reach changes ({len(moved)} stories; the largest shown)")
    for column in ("story", "title", a, b):
        stories.add_column(column, overflow="fold")
    top = moved.reindex(moved["reach_delta"].abs().sort_values(ascending=False, kind="stable").index).head(15)
    for row in top.itertuples(index=False):
        stories.add_row(row.news_id, row.title[:60], f"{row.reach_a:.0%}", f"{row.reach_b:.0%}")
    console.print(stories)
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from newsrec.editorial.audit import compare, jaccard
    from newsrec.editorial.panel import PanelCost, build_panel, panel_feeds

    started = time.perf_counter()
    recommender = _recommender(args)
    load_seconds = time.perf_counter() - started
    panel = build_panel(args.panel, recommender, seed=args.seed)
    recommender._profiles.clear()  # the panel's profiles are part of its cost (segments built some)
    cpu, wall = _cpu(), time.perf_counter()
    cost = PanelCost()
    feeds = panel_feeds(recommender, panel, k=args.k, cost=cost)
    panel_wall, panel_cpu = time.perf_counter() - wall, _cpu() - cpu
    cpu, wall = _cpu(), time.perf_counter()
    warm = PanelCost()
    retrieval = panel_feeds(recommender, panel, k=args.k, stage="retrieval", explain_cards=False, cost=warm)
    compare(retrieval, feeds, panel, recommender.corpus.news, args.k, recommender=recommender)
    compare_wall, compare_cpu = time.perf_counter() - wall, _cpu() - cpu
    figures = {
        "corpus": recommender.corpus.name,
        "stories": len(recommender.corpus.news),
        "panel": panel.spec,
        "readers": len(panel),
        "mode": recommender.mode,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "model_load_seconds": round(load_seconds, 2),
        "panel_seconds": round(panel_wall, 3),
        "panel_cpu_seconds": round(panel_cpu, 3),
        "readers_per_s": round(len(panel) / panel_wall, 1) if panel_wall else None,
        **{f"{stage}_seconds": round(value, 3) for stage, value in cost.seconds.items()},
        **{f"{stage}_cpu_seconds": round(value, 3) for stage, value in cost.cpu_seconds.items()},
        "retrieval_feeds_and_compare_seconds": round(compare_wall, 3),
        "retrieval_feeds_and_compare_cpu_seconds": round(compare_cpu, 3),
    }
    if args.baseline > 0:
        ids = panel.user_ids[: args.baseline]
        cpu, wall = _cpu(), time.perf_counter()
        single = {user_id: recommender.recommend(user_id, k=args.k).reranked for user_id in ids}
        seconds = time.perf_counter() - wall
        figures["baseline_readers"] = len(ids)
        figures["baseline_seconds"] = round(seconds, 3)
        figures["baseline_cpu_seconds"] = round(_cpu() - cpu, 3)
        figures["baseline_seconds_per_1000"] = round(seconds / len(ids) * 1000, 2)
        same = [[c.item.id for c in single[u]] == [c.item.id for c in feeds[u].items] for u in ids]
        overlap = [jaccard([c.item.id for c in single[u]], [c.item.id for c in feeds[u].items]) for u in ids]
        figures["identical_top_k_share"] = round(sum(same) / len(ids), 4)
        figures["mean_jaccard_vs_recommend"] = round(sum(overlap) / len(ids), 4)
    if args.json:
        print_json(figures)
    else:
        from newsrec.cli.common import figures_table

        Console().print(figures_table(figures, f"bench audit · {panel.description}"))
    return 0


def _cpu() -> float:
    """User + system CPU seconds of this process: less sensitive to a busy machine than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _fmt(value) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "—" if number != number else f"{number:.4g}"
