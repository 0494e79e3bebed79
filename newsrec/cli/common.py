"""Flags shared by several commands, the checks every flag value passes, and the Settings they resolve to.

Values are checked where argparse reads them, so a bad one ends the command with a one-line error and
exit code 2 before any work: corpus names that could leave NEWSREC_HOME, numbers outside the ranges the
dashboard's sliders allow (config.py), text that is not valid UTF-8.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from newsrec.config import Settings
from newsrec.errors import InputError

if TYPE_CHECKING:
    import rich.table


def corpus_name(value: str) -> str:
    from newsrec.data.corpus import check_corpus_name

    try:
        return check_corpus_name(utf8_text(value))
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def utf8_text(value: str) -> str:
    """Command-line text as given, or an error when the shell passed bytes that are not UTF-8 (Python keeps
    them as lone surrogates, which every tokenizer and file write would choke on later)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{value.encode('utf-8', 'replace')[:60]!r} is not valid UTF-8") from None
    return value


def in_range(kind: type, low: float, high: float) -> Callable[[str], float]:
    """argparse type: a `kind` (int or float) within [low, high]."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if isinstance(value, float) and not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside the allowed range {kind(low)}..{kind(high)}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=corpus_name, help="corpus name (default: the embedded demo corpus)")
    parser.add_argument("--embedder", help="lite | qwen3-vl-embedding-2b | qwen3-vl-embedding-8b (default: auto)")
    parser.add_argument("--reranker", help="lite | qwen3-vl-reranker-2b | qwen3-vl-reranker-8b (default: auto)")
    parser.add_argument("--reranker-model", type=utf8_text, help="HF id or local folder of the reranker checkpoint")
    parser.add_argument("--embedder-model", type=utf8_text, help="HF id or local folder of the embedder checkpoint")
    parser.add_argument(
        "--reranker-url", type=utf8_text, help="rerank through this server (`newsrec serve` or `vllm serve`)"
    )


def add_encode_flags(parser: argparse.ArgumentParser) -> None:
    """Where the index encodes the stories it lacks vectors for (newsrec/encoding.py)."""
    parser.add_argument(
        "--workers",
        type=in_range(int, 0, 256),
        default=None,
        help="encoding worker processes (0 = in this process; default: NEWSREC_ENCODE_WORKERS), or Ray actors",
    )
    parser.add_argument(
        "--engine", choices=["local", "ray"], default="local", help="encode on this machine or on a Ray cluster"
    )
    parser.add_argument(
        "--ray-address", type=utf8_text, default=None, help="Ray cluster address (default: a local Ray)"
    )


def check_encode_flags(args: argparse.Namespace) -> None:
    if getattr(args, "ray_address", None) and getattr(args, "engine", "local") != "ray":
        raise InputError("--ray-address needs --engine ray")


def encode_engine(args: argparse.Namespace, settings: Settings, embedder) -> object | None:
    """The engine the encode flags ask for; None = the index's default (NEWSREC_ENCODE_WORKERS)."""
    from newsrec.encoding import make_engine, usable_cores

    check_encode_flags(args)
    engine, workers = getattr(args, "engine", "local"), getattr(args, "workers", None)
    if engine == "local" and workers is None:
        return None
    if engine == "ray" and not workers:
        workers = settings.encode_workers or usable_cores()
    return make_engine(engine, int(workers), getattr(embedder, "recipe", None), getattr(args, "ray_address", None))


def add_rules_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules",
        choices=["live", "draft", "none"],
        default="live",
        help="editorial rules to apply: the corpus's live set (default), its draft, or none",
    )


def lower_batch_priority() -> int:
    """Lower this process's CPU priority to NEWSREC_BATCH_NICE (never raise it: an already nicer process stays
    so); encode workers started later inherit it. Returns the niceness now in force."""
    from newsrec.config import batch_nice

    target = batch_nice()
    if not hasattr(os, "nice"):  # Windows: no niceness
        return 0
    current = os.nice(0)
    if target > current:
        current = os.nice(target - current)
        logging.getLogger(__name__).info("batch job: CPU niceness %d (NEWSREC_BATCH_NICE)", current)
    return current


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        corpus=getattr(args, "corpus", None),
        embedder=getattr(args, "embedder", None),
        reranker=getattr(args, "reranker", None),
        reranker_model=getattr(args, "reranker_model", None),
        embedder_model=getattr(args, "embedder_model", None),
        reranker_url=getattr(args, "reranker_url", None),
    )


def print_json(payload) -> None:
    json.dump(payload, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def print_table(table, stderr: bool = False) -> None:
    """Print a rich Table without ever cutting a number: right-aligned (numeric) columns do not wrap or
    shrink; text columns give way first, and when the numbers alone are wider than the terminal (or the
    80 columns rich assumes for a pipe) the table is printed at the width it needs."""
    from rich.console import Console

    console = Console(stderr=stderr)
    needed = 1  # the left border; each column adds its padding and right border (3)
    for column in table.columns:
        if column.justify == "right":
            column.no_wrap, column.overflow = True, "fold"
            cells = [len(str(cell)) for cell in column._cells]
            column.min_width = max(column.min_width or 0, len(str(column.header)), *cells)
            needed += column.min_width + 3
        else:  # text folds (rather than being cut) down to a narrow column
            column.overflow = "fold"
            needed += 8 + 3
    if needed > console.width:
        console = Console(stderr=stderr, width=needed)
    console.print(table)


# units of the figures, by name suffix, for the table (the JSON keeps the raw names)
UNITS = {"_ms": "ms", "_per_s": "items/s", "_seconds": "s"}


def figures_table(figures: dict, title: str) -> rich.table.Table:
    """The figures as a two-column table: what was measured, and its value with its unit."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        unit = next((u for suffix, u in UNITS.items() if name.endswith(suffix)), "")
        shown = "—" if value is None else f"{value:.3f}" if isinstance(value, float) and value < 1 else str(value)
        table.add_row(name.replace("_", " "), f"{shown} {unit}".strip())
    return table
