"""Embedders turn news items and queries into L2-normalised vectors for the first stage.

An embedder is anything with the `Embedder` shape (like Chroma's EmbeddingFunction): the lite
multilingual USE model on CPU, Qwen3-VL-Embedding on GPU. `get_embedder(name)` builds one from the registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from newsrec.errors import InputError
from newsrec.types import NewsItem

__all__ = ["Embedder", "EmbedderRecipe", "register_embedder", "get_embedder", "EMBEDDERS"]


@runtime_checkable
class Embedder(Protocol):
    name: str  # stable id; part of the Chroma collection name, so changing models never mixes vectors
    dim: int

    def embed_documents(self, items: Sequence[NewsItem]) -> np.ndarray:
        """(N, dim) float32, rows L2-normalised."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, rows L2-normalised; texts may be empty strings."""
        ...


EmbedderFactory = Callable[..., Embedder]
EMBEDDERS: dict[str, EmbedderFactory] = {}


def register_embedder(name: str) -> Callable[[EmbedderFactory], EmbedderFactory]:
    def decorator(factory: EmbedderFactory) -> EmbedderFactory:
        EMBEDDERS[name] = factory
        return factory

    return decorator


@dataclass(frozen=True)
class EmbedderRecipe:
    """How to build an embedder again in another process (newsrec/encoding.py): its registry name and the
    factory's options, all picklable. `get_embedder` leaves one on what it builds, as `embedder.recipe`."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Embedder:
        return get_embedder(self.name, **self.options)


def get_embedder(name: str, **options) -> Embedder:
    """Build the embedder registered under `name`.

    Factories receive `settings`, `image_root` and, when configured, `model` (HF id or local folder);
    each takes what it uses and ignores the rest.
    """
    _load_builtin()
    if name not in EMBEDDERS:
        raise InputError(f"unknown embedder {name!r}; choose one of: {', '.join(sorted(EMBEDDERS))}")
    embedder = EMBEDDERS[name](**options)
    # So worker processes can build it too; a class with __slots__ refuses, and encodes in the calling process.
    with contextlib.suppress(AttributeError):
        embedder.recipe = EmbedderRecipe(name, dict(options))
    return embedder


def _load_builtin() -> None:
    # Importing the modules runs their @register_embedder; heavy imports stay inside the factories.
    from newsrec.embedders import lite, multilingual, qwen3_vl, remote  # noqa: F401
