"""`bench pipeline` (index items/s and recall, recommend latency) and `bench rerank` (Qwen3-VL engine vs reference)."""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from newsrec.cli.common import add_model_flags, figures_table, print_json, print_table, settings_from_args

if TYPE_CHECKING:  # the CLI imports the index lazily, so `--help` stays fast
    from newsrec.index import NewsIndex


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks (figures, not tests)")
    commands = bench.add_subparsers(dest="bench_command", required=True)

    pipeline = commands.add_parser("pipeline", help="index build items/s and recall, recommend p50/p95 latency")
    add_model_flags(pipeline)
    pipeline.add_argument("--requests", type=int, default=200, help="recommend calls to time")
    pipeline.add_argument("--candidates", type=int, default=100)
    pipeline.add_argument("--json", action="store_true")
    pipeline.set_defaults(func=bench_pipeline)

    from newsrec.bench.serve import add_parser as add_serve_parser

    add_serve_parser(commands)

    from newsrec.bench.load import add_parser as add_load_parser

    add_load_parser(commands)

    from newsrec.bench.scale import add_parser as add_scale_parser

    add_scale_parser(commands)

    from newsrec.cli.audit import add_bench_parser as add_audit_parser

    add_audit_parser(commands)
    try:
        from newsrec.bench.rerank import add_parser
    except ImportError:
        return
    add_parser(commands)


def bench_pipeline(args: argparse.Namespace) -> int:
    from newsrec.data.corpus import load_corpus
    from newsrec.index import NewsIndex
    from newsrec.pipeline import Recommender

    settings = settings_from_args(args)
    corpus = load_corpus(settings)
    recommender = Recommender.from_settings(settings, show_progress=not args.json)

    # Index throughput on a throwaway store, so the figure is a full build and the user's index is untouched.
    with tempfile.TemporaryDirectory() as scratch:
        fresh = NewsIndex(replace(settings, home=Path(scratch)), corpus.name, recommender.embedder)
        started = time.perf_counter()
        stats = fresh.sync(corpus, progress=not args.json)
        index_seconds = time.perf_counter() - started
        recall = hnsw_recall(fresh, k=args.candidates)

    users = list(corpus.users) or [""]
    titles = [item.title for item in corpus.news.values()]
    rng = np.random.default_rng(0)
    latencies, stages = [], {"retrieve": [], "rerank": []}
    for i in range(args.requests):
        user = users[i % len(users)]
        # Half "For you" feeds, half queries made of a few words from a random headline.
        query = None if i % 2 == 0 else " ".join(titles[rng.integers(len(titles))].split()[:4])
        profile = recommender.profile(user) if user else recommender.profile_from_history([])
        result = recommender.recommend(user, query=query, candidates=args.candidates, profile=profile)
        latencies.append(result.timings_ms["total"])
        for stage in stages:
            stages[stage].append(result.timings_ms[stage])
    figures = {
        "corpus": corpus.name,
        "items": len(corpus.news),
        "embedder": recommender.embedder.name,
        "reranker": recommender.reranker.name,
        "index_items_per_s": round(stats.added / index_seconds, 1) if index_seconds else None,
        "index_seconds": round(index_seconds, 2),
        f"index_recall_at_{args.candidates}": recall,
        "requests": args.requests,
        "candidates": args.candidates,
        "recommend_p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "recommend_p95_ms": round(float(np.percentile(latencies, 95)), 1),
        **{f"{stage}_p50_ms": round(float(np.percentile(v, 50)), 1) for stage, v in stages.items()},
    }
    if args.json:
        print_json(figures)
    else:
        print_table(figures_table(figures, f"bench pipeline · {corpus.name}"))
    return 0


def hnsw_recall(index: NewsIndex, k: int, queries: int = 200, seed: int = 0) -> float | None:
    """Mean share of the exact top-k (by cosine over every stored vector) that Chroma's HNSW search returns,
    with stored items' own vectors as queries: what approximate search costs the first stage."""
    ids, matrix = index.all_ids(), index.matrix()
    if not ids or k <= 0:
        return None
    k = min(k, len(ids))
    picks = np.random.default_rng(seed).choice(len(ids), size=min(queries, len(ids)), replace=False)
    found = []
    for row in picks:
        exact = {ids[i] for i in np.argsort(-(matrix @ matrix[row]), kind="stable")[:k]}
        found.append(len(exact & {news_id for news_id, _ in index.search(matrix[row], k)}) / k)
    return round(float(np.mean(found)), 3)
