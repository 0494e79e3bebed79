"""`batch-rerank` (offline scoring of many pairs, locally or on Ray) and `cache import` (load its output)."""

from __future__ import annotations

import argparse

from rich.console import Console

from newsrec.cli.common import add_model_flags, add_rules_flag, print_json, settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    batch = subparsers.add_parser(
        "batch-rerank", help="score (user or query, news id) pairs from parquet into score-cache rows (resumable)"
    )
    batch.add_argument("--pairs", required=True, help="parquet with news_id and user and/or query columns")
    batch.add_argument("--out", required=True, help="output folder of parquet parts (rerun to resume)")
    batch.add_argument("--engine", choices=["local", "ray"], default="local", help="score here or on Ray Data")
    batch.add_argument("--ray-address", default=None, help="Ray cluster address (default: a local Ray)")
    batch.add_argument("--workers", type=int, default=1, help="Ray workers, each with its own reranker")
    batch.add_argument("--gpus-per-worker", type=float, default=0, help="Ray GPUs per worker (1 on GPU nodes)")
    batch.add_argument("--chunk-pairs", type=int, default=4096, help="pairs per output part (the resume unit)")
    batch.add_argument("--import", dest="import_cache", action="store_true", help="also load into the score cache")
    batch.add_argument("--json", action="store_true")
    add_rules_flag(batch)
    add_model_flags(batch)
    batch.set_defaults(func=run_batch)

    cache = subparsers.add_parser("cache", help="the rerank score cache")
    commands = cache.add_subparsers(dest="cache_command", required=True)
    load = commands.add_parser("import", help="load batch-rerank output into the score cache")
    load.add_argument("path", help="batch-rerank output folder (or one parquet part)")
    load.set_defaults(func=run_import)


def run_batch(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from newsrec.batch import batch_rerank

    settings = settings_from_args(args)
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=args.json) as progress:
        task = progress.add_task("scoring chunks", total=None)
        stats = batch_rerank(
            args.pairs,
            args.out,
            settings,
            engine=args.engine,
            chunk_pairs=args.chunk_pairs,
            ray_address=args.ray_address,
            ray_workers=args.workers,
            ray_gpus=args.gpus_per_worker,
            on_chunk=lambda done, total: progress.update(task, completed=done, total=total),
            rules=args.rules,
        )
    figures = {
        "pairs": stats.pairs,
        "groups": stats.groups,
        "chunks": stats.chunks,
        "skipped_chunks": stats.skipped_chunks,
        "unknown_news": stats.unknown_news,
        **({"blocked": stats.blocked} if stats.blocked else {}),  # pairs editorial blocks left out
        "seconds": round(stats.seconds, 2),
        "scoring_seconds": round(stats.scoring_seconds, 2),
        "pairs_per_s": round(stats.pairs_per_second, 1),  # scoring only (includes loading the reranker)
        "out": args.out,
    }
    if args.import_cache:
        figures["imported"] = _import(args.out, settings)
    print_json(figures) if args.json else Console().print(figures)
    return 0


def run_import(args: argparse.Namespace) -> int:
    counts = _import(args.path, settings_from_args(args))
    Console().print({"imported": counts})
    return 0


def _import(path: str, settings) -> dict[str, int]:
    from newsrec.batch import import_scores
    from newsrec.cache import ScoreCache

    return import_scores(path, ScoreCache(settings.cache_dir / "rerank_scores.sqlite"))
