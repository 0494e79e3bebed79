"""`python -m newsrec bench scale`: the first-stage index at archive sizes (10^4 to 10^6 stories).

For each size it builds a Chroma collection with the settings `newsrec/hnsw.py` picks for that size and
reports build time, memory (resident set growth and disk), recall@100 against exact search, and search
latency p50/p95/p99. The vectors are synthetic, so a million costs no encoding:

- `synthetic` (default): random vectors with the statistics of real lite embeddings: a Gaussian with a
  power-law spectrum and a common mean direction, fitted to NeMig-en's 10,814 lite vectors (eigenvalue
  i ~ i^-1.27 over 512 dimensions, total variance 0.763, mean norm 0.487). At 10,814 vectors it gives
  recall@100 0.966 with the small-corpus settings where the real vectors give 0.971, so it is a slightly
  pessimistic stand-in.
- `uniform`: uniform unit vectors, the worst case for any graph index (no neighbourhood structure: all
  cosines are near 0). It needs far larger settings for the same recall; shown for reference.

The query side of the first stage is a reader's interest vector or a query embedding, both in the same
space as documents, so held-out vectors from the same distribution serve as queries.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from newsrec.bench import disk_mb, rss_bytes
from newsrec.hnsw import HnswSettings, hnsw_for

# Fitted to NeMig-en's lite (USE-Multilingual) document vectors; see the module docstring.
SPECTRUM_EXPONENT = 1.27
TOTAL_VARIANCE = 0.763
MEAN_NORM = 0.487
DIM = 512
_BUILD_BATCH = 5_000  # vectors per add(); below every Chroma server's max batch size


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("scale", help="the index at 10^4-10^6 stories: build, memory, recall, latency")
    parser.add_argument("--items", default="20000,100000", help="comma-separated sizes (default 20000,100000)")
    parser.add_argument("--vectors", choices=["synthetic", "uniform"], default="synthetic")
    parser.add_argument("--queries", type=int, default=200, help="held-out queries for recall and latency")
    parser.add_argument("--k", type=int, default=100, help="results per query (the first stage's candidates)")
    parser.add_argument("--chroma-url", default="", help="measure a `chroma run` server instead of the embedded store")
    parser.add_argument(
        "--stories",
        default="",
        metavar="CORPUS",
        help="time the whole `recommend` on stories recombined from this ingested corpus (e.g. nemig), with its "
        "readers; see newsrec/bench/stories.py",
    )
    parser.add_argument(
        "--story-vectors",
        choices=["derived", "encoded"],
        default="derived",
        help="with --stories: vectors mixed from the source's stored ones (default), or encoded by the embedder",
    )
    parser.add_argument("--readers", type=int, default=100, help="with --stories: For-you requests (one per reader)")
    parser.add_argument("--search-queries", type=int, default=100, help="with --stories: query requests")
    parser.add_argument("--cold", type=int, default=20, help="with --stories: requests of readers without history")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def synthetic_vectors(count: int, rng: np.random.Generator, dim: int = DIM) -> np.ndarray:
    """(count, dim) float32 unit vectors with the spectrum of real lite embeddings (see the module docstring)."""
    variances = np.arange(1, dim + 1, dtype=np.float64) ** -SPECTRUM_EXPONENT
    variances *= TOTAL_VARIANCE / variances.sum()
    # The mean along the first axis, the variance along all axes: the spectrum is what matters, and cosine
    # recall does not change under rotation, so no random basis is needed.
    vectors = rng.standard_normal((count, dim)) * np.sqrt(variances)
    vectors[:, 0] += MEAN_NORM
    return _unit(vectors)


def uniform_vectors(count: int, rng: np.random.Generator, dim: int = DIM) -> np.ndarray:
    return _unit(rng.standard_normal((count, dim)))


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = vectors.astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def exact_top(queries: np.ndarray, vectors: np.ndarray, k: int, chunk: int = 100_000) -> np.ndarray:
    """(Q, k) row numbers of each query's k nearest vectors by cosine, in chunks so 10^6 rows fit in memory."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for begin in range(0, len(vectors), chunk):
        scores = queries @ vectors[begin : begin + chunk].T  # (Q, chunk)
        rows = np.broadcast_to(np.arange(begin, begin + scores.shape[1]), scores.shape)
        scores, rows = np.hstack([best_scores, scores]), np.hstack([best_rows, rows])
        keep = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        best_scores, best_rows = np.take_along_axis(scores, keep, 1), np.take_along_axis(rows, keep, 1)
    return best_rows


def measure(
    items: int,
    *,
    kind: str,
    queries: int,
    k: int,
    seed: int,
    client,
    graph: HnswSettings | None = None,
    folder: Path | None = None,
) -> dict:
    """Build one collection of `items` vectors on `client` and measure it; the collection is deleted after.
    `folder`: the embedded store's directory, for its size on disk."""
    rng = np.random.default_rng(seed)
    make = synthetic_vectors if kind == "synthetic" else uniform_vectors
    graph = graph or hnsw_for(items)
    name = f"bench-scale-{items}"
    if name in {c.name if hasattr(c, "name") else c for c in client.list_collections()}:
        client.delete_collection(name)
    collection = client.create_collection(name, configuration=graph.configuration(), embedding_function=None)
    vectors = np.empty((items, DIM), dtype=np.float32)
    vectors.fill(0)  # touch the pages now, so the resident-set growth below is the store's, not this array's
    rss_before = rss_bytes()
    build_seconds = 0.0
    for begin in range(0, items, _BUILD_BATCH):
        end = min(items, begin + _BUILD_BATCH)
        vectors[begin:end] = make(end - begin, rng)  # generated outside the timed part
        ids = [f"s{row}" for row in range(begin, end)]
        started = time.perf_counter()
        collection.add(ids=ids, embeddings=vectors[begin:end])
        build_seconds += time.perf_counter() - started
    rss_growth = rss_bytes() - rss_before
    probes = make(queries, rng)
    exact = exact_top(probes, vectors, min(k, items))
    latencies, found = [], []
    for probe, truth in zip(probes, exact, strict=True):
        started = time.perf_counter()
        result = collection.query(query_embeddings=[probe], n_results=min(k, items), include=[])
        latencies.append((time.perf_counter() - started) * 1000)
        got = {int(news_id[1:]) for news_id in result["ids"][0]}
        found.append(len(got & set(truth.tolist())) / len(truth))
    figures = {
        "items": items,
        "vectors": kind,
        "hnsw_m": graph.max_neighbors,
        "hnsw_ef_construction": graph.ef_construction,
        "hnsw_ef_search": graph.ef_search,
        "build_seconds": round(build_seconds, 1),
        "build_items_per_s": round(items / build_seconds, 1) if build_seconds else None,
        f"recall_at_{k}": round(float(np.mean(found)), 3),
        "search_p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "search_p95_ms": round(float(np.percentile(latencies, 95)), 2),
        "search_p99_ms": round(float(np.percentile(latencies, 99)), 2),
        # resident-set growth of this process over the build (the embedded store lives in it; a server's is
        # not seen here), and the raw vectors' size for comparison
        "rss_growth_mb": round(rss_growth / 2**20, 1),
        "vectors_mb": round(vectors.nbytes / 2**20, 1),
    }
    if folder is not None:
        figures["disk_mb"] = disk_mb(folder)
    client.delete_collection(name)
    return figures


def run(args: argparse.Namespace) -> int:
    from newsrec.config import Settings
    from newsrec.errors import InputError
    from newsrec.index import chroma_client

    try:
        sizes = [int(size) for size in str(args.items).replace("_", "").split(",") if size.strip()]
    except ValueError:
        raise InputError(f"--items takes comma-separated whole numbers, not {args.items!r}") from None
    if not sizes or min(sizes) < 1 or args.queries < 1 or args.k < 1:
        raise InputError("--items, --queries and --k must be positive")
    if args.stories:
        return _run_stories(args, sizes)
    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="newsrec-scale-"))
    try:
        for size in sizes:
            settings = replace(Settings.from_env(), home=scratch / str(size), chroma_url=args.chroma_url)
            client = chroma_client(settings)
            figures = measure(
                size,
                kind=args.vectors,
                queries=args.queries,
                k=args.k,
                seed=args.seed,
                client=client,
                graph=hnsw_for(size, settings),
                folder=None if args.chroma_url else settings.chroma_dir,
            )
            rows.append(figures)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    title = f"bench scale · {args.vectors} vectors" + (f" · {args.chroma_url}" if args.chroma_url else "")
    return _report(rows, args.json, title)


def _report(rows: list[dict], as_json: bool, title: str) -> int:
    from rich.console import Console
    from rich.table import Table

    from newsrec.bench import print_json

    if as_json:
        print_json(rows)
        return 0
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column.replace("_", " "), justify="right")
    for figures in rows:
        table.add_row(*("—" if value is None else str(value) for value in figures.values()))
    Console().print(table)
    return 0


def _run_stories(args: argparse.Namespace, sizes: list[int]) -> int:
    """`--stories CORPUS`: per size, a synthetic corpus from CORPUS indexed in a scratch home; `recommend` timed."""
    from newsrec.bench.stories import measure_stories
    from newsrec.config import Settings
    from newsrec.data.corpus import load_corpus
    from newsrec.embedders import get_embedder
    from newsrec.errors import InputError
    from newsrec.index import NewsIndex
    from newsrec.pipeline import model_options

    if min(args.readers, args.search_queries, args.cold) < 0:
        raise InputError("--readers, --search-queries and --cold must not be negative")
    settings = Settings.from_env()
    source = load_corpus(settings, args.stories)
    embedder = get_embedder(settings.resolved_embedder, **model_options(settings, settings.embedder_model, source))
    index = NewsIndex(settings, source.name, embedder)
    index.sync(source)  # a no-op when the corpus is indexed already
    source_vectors = index.embeddings(list(source.news))
    rows = []
    for size in sizes:
        scratch = Path(tempfile.mkdtemp(prefix="newsrec-scale-stories-"))
        try:
            home = replace(settings, home=scratch, scratch=None, chroma_url=args.chroma_url)
            rows.append(
                measure_stories(
                    source,
                    source_vectors,
                    embedder,
                    size,
                    settings=home,
                    readers=args.readers,
                    queries=args.search_queries,
                    cold=args.cold,
                    seed=args.seed,
                    vectors=args.story_vectors,
                )
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return _report(rows, args.json, f"bench scale · stories from {source.name} · {args.story_vectors} vectors")
