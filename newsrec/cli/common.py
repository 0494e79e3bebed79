"""Flags shared by several commands, and the Settings they resolve to."""

from __future__ import annotations

import argparse
import json
import sys

from newsrec.config import Settings


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", help="corpus name (default: the embedded demo corpus)")
    parser.add_argument("--embedder", help="lite | qwen3-vl-embedding-2b | qwen3-vl-embedding-8b (default: auto)")
    parser.add_argument("--reranker", help="lite | qwen3-vl-reranker-2b | qwen3-vl-reranker-8b (default: auto)")
    parser.add_argument("--reranker-model", help="HF id or local folder of the reranker checkpoint")
    parser.add_argument("--embedder-model", help="HF id or local folder of the embedder checkpoint")
    parser.add_argument("--reranker-url", help="rerank through this server (`newsrec serve` or `vllm serve`)")


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
