"""Benchmarks that print figures (not tests): `newsrec bench rerank` lives in rerank.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def print_json(payload) -> None:
    """The figures as JSON on stdout (as the CLI prints them; bench sits below the CLI, so it has its own)."""
    json.dump(payload, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def rss_bytes() -> int:
    """This process's resident memory."""
    import psutil

    return psutil.Process().memory_info().rss


def disk_mb(folder: Path) -> float:
    """What the files under `folder` take, in MiB."""
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20, 1)
