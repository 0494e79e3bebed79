"""Rerankers score (request, candidate) pairs for the second stage.

The lite reranker is a transparent personalised formula; Qwen3-VL-Reranker is a multimodal
cross-encoder. Both have the `Reranker` shape, so the pipeline and the UI never care which runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from newsrec.errors import InputError
from newsrec.types import Candidate, RerankRequest

__all__ = ["Reranker", "register_reranker", "get_reranker", "RERANKERS"]


@runtime_checkable
class Reranker(Protocol):
    name: str  # stable id, part of score-cache keys

    def score(self, request: RerankRequest, candidates: Sequence[Candidate]) -> list[float]:
        """One relevance score per candidate, higher is better (probabilities in [0, 1] for Qwen3-VL)."""
        ...


RerankerFactory = Callable[..., Reranker]
RERANKERS: dict[str, RerankerFactory] = {}


def register_reranker(name: str) -> Callable[[RerankerFactory], RerankerFactory]:
    def decorator(factory: RerankerFactory) -> RerankerFactory:
        RERANKERS[name] = factory
        return factory

    return decorator


def get_reranker(name: str, **options) -> Reranker:
    """Build the reranker registered under `name`.

    The pipeline passes every factory the same options: `settings`, `image_root` (the corpus folder that
    relative image paths resolve against), `embedder`, and `model` (HF id or local folder) when configured.
    Each factory takes what it uses and ignores the rest.
    """
    _load_builtin()
    if name not in RERANKERS:
        raise InputError(f"unknown reranker {name!r}; choose one of: {', '.join(sorted(RERANKERS))}")
    return RERANKERS[name](**options)


def _load_builtin() -> None:
    from newsrec.rerankers import lite, qwen3_vl, remote  # noqa: F401
