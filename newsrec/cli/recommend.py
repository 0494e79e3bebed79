"""`recommend`: the two-stage pipeline for one user, printed as a table or the documented JSON."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from newsrec.cli.common import (
    add_model_flags,
    add_rules_flag,
    in_range,
    print_json,
    print_table,
    settings_from_args,
    utf8_text,
)
from newsrec.config import CANDIDATES_RANGE, CATEGORY_CAP_RANGE, DIVERSITY_RANGE, HALF_LIFE_RANGE, K_RANGE
from newsrec.pipeline import Filters, Recommender
from newsrec.types import RecommendResult


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("recommend", help="recommend news to a user (retrieval-only and reranked)")
    parser.add_argument(
        "--user", required=True, type=utf8_text, help="user id (see `python -m newsrec users`), or guest"
    )
    parser.add_argument("--query", default=None, type=utf8_text, help="search text; omit for the 'For you' feed")
    parser.add_argument("--k", type=in_range(int, *K_RANGE), default=10, help="results to show (1-30)")
    parser.add_argument(
        "--candidates", type=in_range(int, *CANDIDATES_RANGE), default=100, help="first-stage recall size (10-300)"
    )
    parser.add_argument(
        "--category", action="append", default=[], type=utf8_text, help="keep only this category (repeatable)"
    )
    parser.add_argument(
        "--language", action="append", default=[], type=utf8_text, help="keep only this language (repeatable)"
    )
    parser.add_argument(
        "--diversity",
        type=in_range(float, *DIVERSITY_RANGE),
        default=None,
        help="0 = pure relevance (default) .. 1 = most diverse, as the dashboard slider (MMR lambda = 1 - diversity)",
    )
    parser.add_argument(
        "--half-life",
        type=in_range(float, *HALF_LIFE_RANGE),
        default=None,
        help="freshness half-life, 0-30 days; 0 = off",
    )
    parser.add_argument(
        "--category-cap", type=in_range(int, *CATEGORY_CAP_RANGE), default=None, help="at most N results per category"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_rules_flag(parser)
    add_model_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from newsrec.editorial.feed import EditorialFeeds

    # one request per process: the embedder loads only if the query needs it (a For-you feed does not)
    recommender = Recommender.from_settings(settings_from_args(args), show_progress=not args.json, warm_up=False)
    feeds = EditorialFeeds(recommender, args.rules)
    result = feeds.recommend(
        args.user,
        query=args.query,
        k=args.k,
        candidates=args.candidates,
        filters=Filters(categories=args.category, languages=args.language),
        mmr_lambda=None if args.diversity is None else 1.0 - args.diversity,
        half_life_days=args.half_life,
        category_cap=args.category_cap,
    )
    if args.json:
        print_json(result_to_json(result))
    else:
        print_result(result)
    return 0


def result_to_json(result: RecommendResult) -> dict:
    return {
        "mode": result.mode,
        "user": result.user_id,
        "query": result.query,
        "query_matched": result.query_matched,
        "notice": result.notice,
        "nearest": result.nearest,
        "retrieval": [
            {"id": r.item.id, "title": r.item.title, "score": r.score, "rank": r.rank, "duplicate_ids": r.duplicate_ids}
            for r in result.retrieval
        ],
        "reranked": [
            {
                "id": r.item.id,
                "title": r.item.title,
                "score": r.score,
                "rank": r.rank,
                "retrieval_rank": r.retrieval_rank,
                "explanation": r.explanation,
                "duplicate_ids": r.duplicate_ids,
                "contributions": {name: round(value, 6) for name, value in r.contributions.items()},
                "reasons": [{"kind": x.kind, "share": round(x.share, 4), "detail": x.detail} for x in r.reasons],
                **({"rules": [_effect(e) for e in r.rules]} if r.rules else {}),  # absent without rules
            }
            for r in result.reranked
        ],
        **({"blocked": result.blocked} if result.blocked else {}),  # these two only when rules acted
        **({"rule_notices": result.rule_notices} if result.rule_notices else {}),
        "timings_ms": result.timings_ms,
        "reranker": result.reranker,
        "embedder": result.embedder,
    }


def _effect(effect) -> dict:
    return {"rule": effect.rule_id, "kind": effect.kind, "detail": effect.detail, "points": effect.points}


def print_result(result: RecommendResult) -> None:
    title = f"{result.mode} · user {result.user_id} · " + (f"query {result.query!r}" if result.query else "For you")
    table = Table(title=title)
    for column in ("#", "was", "score"):
        table.add_column(column, justify="right")
    for column in ("category", "title", "why"):
        table.add_column(column, overflow="fold")
    for r in result.reranked:
        table.add_row(
            str(r.rank), str(r.retrieval_rank), f"{r.score:.3f}", r.item.category, r.item.title, r.explanation
        )  # the explanation starts with "Editors: ..." when rules acted on the card
    console = Console()
    if result.notice:
        console.print(result.notice)
    if result.blocked:
        console.print(f"{result.blocked} {'story' if result.blocked == 1 else 'stories'} blocked by editorial rules.")
    for line in result.rule_notices:
        console.print(line)
    print_table(table)
    console.print("timings (ms): " + ", ".join(f"{stage} {ms:.1f}" for stage, ms in result.timings_ms.items()))
