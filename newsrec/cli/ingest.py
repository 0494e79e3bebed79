"""`ingest`: import a dataset into a corpus, report every skipped row, then bring the index up to date."""

from __future__ import annotations

import argparse
import dataclasses
import logging

from rich.console import Console
from rich.table import Table

from newsrec.cli.common import (
    add_encode_flags,
    check_encode_flags,
    corpus_name,
    encode_engine,
    in_range,
    lower_batch_priority,
    print_json,
    utf8_text,
)
from newsrec.config import Settings
from newsrec.data.ingest import FORMATS, IngestReport, ingest
from newsrec.errors import InputError

log = logging.getLogger(__name__)

PROBLEMS_SHOWN = 50  # the table is for reading; --json carries every problem


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="import news (jsonl, csv, parquet, MIND, NewsImages) into a corpus",
        description="Import a dataset into a corpus under NEWSREC_HOME/corpora; re-running upserts (last wins).",
    )
    parser.add_argument("path", type=utf8_text, help="file or folder to import")
    parser.add_argument("--format", default="auto", choices=FORMATS, help="input format (default: detect)")
    parser.add_argument("--images", metavar="DIR", help="folder for relative image paths and <id>.jpg images")
    parser.add_argument("--corpus", type=corpus_name, help="corpus name (default: the file's or folder's name)")
    parser.add_argument(
        "--max-images", type=in_range(int, 0, 20), default=3, help="images kept per item (0-20; default: 3)"
    )
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="read a corpus field from another column, e.g. --map title=headline (repeatable)",
    )
    parser.add_argument("--allow-remote-images", action="store_true", help="keep http(s) image URLs")
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="when another ingest is writing this corpus, wait at most this long (default: wait until it ends)",
    )
    parser.add_argument("--no-index", action="store_true", help="write the corpus only; index it later")
    parser.add_argument(
        "--no-train",
        action="store_true",
        help="do not fit the learned ranker on the corpus's impression log (default: fit it; lite reranker, 50+ users)",
    )
    parser.add_argument("--embedder", help="embedder for the index (default: auto)")
    add_encode_flags(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run_ingest)


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        target, sep, source = pair.partition("=")
        if not sep or not target.strip() or not source.strip():
            raise InputError(f"--map {pair!r}: expected FIELD=COLUMN, e.g. --map title=headline")
        mapping[target.strip()] = source.strip()
    return mapping


def run_ingest(args: argparse.Namespace) -> int:
    check_encode_flags(args)
    lower_batch_priority()  # a batch import must not starve an app serving on the same machine (NEWSREC_BATCH_NICE)
    settings = Settings.from_env(
        embedder=args.embedder,
        max_images=args.max_images,
        allow_remote_images=True if args.allow_remote_images else None,
    )
    report = ingest(
        args.path,
        settings,
        fmt=args.format,
        corpus=args.corpus,
        images_dir=args.images,
        mapping=parse_mapping(args.map),
        lock_timeout=args.lock_timeout,
    )
    index = None if args.no_index else update_index(settings, report.corpus, quiet=args.json, args=args)
    model = None
    if not (args.no_index or args.no_train) and report.impressions:
        from newsrec.cli.train import train_after_ingest

        model = train_after_ingest(settings, report.corpus, quiet=args.json)
    if args.json:
        stats = dataclasses.asdict(index) if dataclasses.is_dataclass(index) else index
        print_json({**dataclasses.asdict(report), "index": stats, "model": model})
    else:
        print_report(report, index)
        if model:
            Console().print(f"model: {model}")
    return 0


def update_index(settings: Settings, name: str, quiet: bool = False, args: argparse.Namespace | None = None) -> object:
    """Embed only the changed items (the index compares content hashes); returns its SyncStats, or a note
    when this build has no index module."""
    try:
        from newsrec.index import NewsIndex
    except ModuleNotFoundError as error:
        if error.name != "newsrec.index":
            raise
        return "skipped: this build has no newsrec.index; run `python -m newsrec index` later"
    from newsrec.data.corpus import load_corpus
    from newsrec.embedders import get_embedder

    corpus = load_corpus(settings, name)
    options = {"settings": settings, "image_root": corpus.root}
    if settings.embedder_model:
        options["model"] = settings.embedder_model
    embedder = get_embedder(settings.resolved_embedder, **options)
    engine = encode_engine(args, settings, embedder) if args is not None else None
    extra = {"engine": engine} if engine is not None else {}  # none: the index's default (NEWSREC_ENCODE_WORKERS)
    return NewsIndex(settings, name, embedder).sync(corpus, progress=not quiet, **extra)  # SyncStats


def print_report(report: IngestReport, index: object) -> None:
    console = Console()
    summary = Table(title=f"ingest into corpus {report.corpus!r}", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right", overflow="fold")
    for label, value in (
        ("source", report.path),
        ("format", report.format),
        ("rows read", report.rows_read),
        ("news items written", report.items_written),
        ("  new / changed", f"{report.new} / {report.changed}"),
        ("  with images", report.with_images),
        ("users", report.users),
        ("impressions", report.impressions),
        ("items in corpus", report.corpus_items),
        ("problems", len(report.problems)),
        ("seconds", f"{report.seconds:.2f}"),
    ):
        summary.add_row(label, str(value))
    console.print(summary)
    if report.problems:
        problems = Table(title="problems (rows skipped or repaired)")
        problems.add_column("file", overflow="fold")
        problems.add_column("line", justify="right")
        problems.add_column("reason", overflow="fold")
        for problem in report.problems[:PROBLEMS_SHOWN]:
            problems.add_row(problem.file, str(problem.line or "-"), problem.reason)
        console.print(problems)
        if len(report.problems) > PROBLEMS_SHOWN:
            console.print(f"... and {len(report.problems) - PROBLEMS_SHOWN} more (use --json to see all)")
    if index is not None:
        console.print(f"index: {index}")
