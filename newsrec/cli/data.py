"""`users` and `index`: look at a corpus and bring its vector index up to date."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from newsrec.cli.common import (
    add_encode_flags,
    add_model_flags,
    corpus_name,
    encode_engine,
    lower_batch_priority,
    print_json,
    settings_from_args,
)
from newsrec.data.corpus import load_corpus


def register(subparsers: argparse._SubParsersAction) -> None:
    users = subparsers.add_parser("users", help="list the simulated users of a corpus")
    users.add_argument("--corpus", type=corpus_name, help="corpus name (default: the embedded demo corpus)")
    users.add_argument("--json", action="store_true", help="print JSON")
    users.set_defaults(func=list_users)

    index = subparsers.add_parser("index", help="build or update the vector index of a corpus")
    add_model_flags(index)
    index.add_argument(
        "--rebuild", action="store_true", help="drop the corpus's HNSW index and build it again from stored vectors"
    )
    index.add_argument(
        "--re-encode", action="store_true", help="with --rebuild: also forget stored vectors and encode every story"
    )
    add_encode_flags(index)
    index.set_defaults(func=build_index)


def list_users(args: argparse.Namespace) -> int:
    corpus = load_corpus(settings_from_args(args))
    rows = [
        {"id": user.id, "name": user.name, "persona": user.persona, "history": len(user.history)}
        for user in corpus.users.values()
    ]
    if args.json:
        print_json(rows)
        return 0
    table = Table(title=f"Users of corpus {corpus.name!r} ({len(rows)})")
    for column in ("id", "name", "history", "persona"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["id"], row["name"], str(row["history"]), row["persona"])
    Console().print(table)
    return 0


def build_index(args: argparse.Namespace) -> int:
    from newsrec.embedders import get_embedder
    from newsrec.index import NewsIndex
    from newsrec.pipeline import model_options

    lower_batch_priority()  # as `ingest`: an index build must not starve an app on the same machine
    settings = settings_from_args(args)
    corpus = load_corpus(settings)
    embedder = get_embedder(settings.resolved_embedder, **model_options(settings, settings.embedder_model, corpus))
    engine = encode_engine(args, settings, embedder)  # checked before anything is dropped
    index = NewsIndex(settings, corpus.name, embedder)
    if args.rebuild:
        stats = index.rebuild(corpus, re_encode=args.re_encode, progress=True, engine=engine)
    else:
        stats = index.sync(corpus, progress=True, engine=engine)
    Console().print(f"index {corpus.name!r} with {embedder.name}: {stats}")
    if settings.resolved_reranker != "lite":  # the Qwen3-VL reranker's photo features (rerankers/qwen3_vl.py)
        from newsrec.rerankers import get_reranker

        reranker = get_reranker(
            settings.resolved_reranker, embedder=embedder, **model_options(settings, settings.reranker_model, corpus)
        )
        if hasattr(reranker, "prepare_documents"):
            Console().print(
                f"photo features for {reranker.name}: {reranker.prepare_documents(list(corpus.news.values()))} encoded"
            )
    return 0
