"""`python -m newsrec COMMAND`: one module per command group, each adding its sub-commands.

Library errors (`NewsrecError`) and permission errors become one clean line on stderr and exit code 2;
nothing else is caught.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module

from newsrec.errors import NewsrecError
from newsrec.storage_errors import storage_hint

# Each module has `register(subparsers)`; its sub-commands set `func(args) -> int`.
COMMAND_MODULES = [
    "newsrec.cli.ingest",
    "newsrec.cli.data",
    "newsrec.cli.recommend",
    "newsrec.cli.bench",
    "newsrec.cli.evaluate",
    "newsrec.cli.serve",
    "newsrec.cli.batch",
    "newsrec.cli.train",
    "newsrec.cli.rules",
    "newsrec.cli.audit",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m newsrec", description="Multimodal news recommender.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue  # command group not present in this build
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except NewsrecError as error:
        # a wrapped disk failure (e.g. Chroma's "database or disk is full" inside a StoreError) gets the disk's fix
        hint = storage_hint(error.__cause__) if error.__cause__ is not None else None
        print(f"error: {hint or error}", file=sys.stderr)
        return 2
    except Exception as error:
        hint = storage_hint(error)  # a full disk or a read-only NEWSREC_HOME, in whatever library's words
        if hint is None and not isinstance(error, (NotADirectoryError, FileExistsError)):
            raise
        if hint is not None:
            print(f"error: {hint}", file=sys.stderr)
            return 2
        # typically an unwritable NEWSREC_HOME, where corpora, the index and caches live
        print(
            f"error: cannot write {error.filename or 'the data folder'}: {error.strerror}. "
            "Set NEWSREC_HOME to a folder you can write.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130
