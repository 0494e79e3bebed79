"""Benchmarks that print figures (not tests): `newsrec bench rerank` lives in rerank.py."""

from __future__ import annotations

import json
import sys


def print_json(payload) -> None:
    """The figures as JSON on stdout (as the CLI prints them; bench sits below the CLI, so it has its own)."""
    json.dump(payload, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")
