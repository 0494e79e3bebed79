"""HNSW settings that follow the corpus size.

One fixed setting does not fit every corpus: with M=16 and ef_search=200, recall@100 against exact search
is 0.97 at 10k lite vectors but falls below 0.95 by 20k and to 0.87 at 100k. Search effort (ef_search) is
cheap at query time and can change on a live collection; graph degree (M, Chroma's `max_neighbors`) and
ef_construction fix the graph at build time, so changing them rebuilds the collection (newsrec/index.py does
that under the write lock, from the vector cache, without re-encoding).

The tiers were measured with `python -m newsrec bench scale` (docs/performance.md): synthetic vectors with the
spectrum of NeMig-en's lite embeddings, recall@100 over 200 held-out queries.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsrec.config import Settings

__all__ = ["HnswSettings", "hnsw_for"]


@dataclass(frozen=True)
class HnswSettings:
    max_neighbors: int  # M: graph degree; memory per item grows with it
    ef_construction: int  # candidate list while inserting; build time grows with it
    ef_search: int  # candidate list while searching; query time grows with it (must be >= results asked)
    space: str = "cosine"

    def configuration(self) -> dict:
        """Chroma's collection configuration for these settings."""
        return {
            "hnsw": {
                "space": self.space,
                "max_neighbors": self.max_neighbors,
                "ef_construction": self.ef_construction,
                "ef_search": self.ef_search,
            }
        }

    def same_graph(self, other: HnswSettings) -> bool:
        """True when a collection built with `other` can serve these settings by changing ef_search alone."""
        return (self.space, self.max_neighbors, self.ef_construction) == (
            other.space,
            other.max_neighbors,
            other.ef_construction,
        )


# (largest corpus size, settings), smallest first. The first row is what every collection used before sizes
# mattered, so existing small indexes are left as they are.
TIERS: tuple[tuple[int, HnswSettings], ...] = (
    (15_000, HnswSettings(max_neighbors=16, ef_construction=64, ef_search=200)),
    (150_000, HnswSettings(max_neighbors=16, ef_construction=64, ef_search=1000)),
    (2**62, HnswSettings(max_neighbors=32, ef_construction=128, ef_search=1000)),
)


def hnsw_for(items: int, settings: Settings | None = None) -> HnswSettings:
    """The settings for a corpus of `items` stories; non-zero `hnsw_*` settings (NEWSREC_HNSW_*) override."""
    chosen = next(tier for limit, tier in TIERS if items <= limit)
    if settings is None:
        return chosen
    return HnswSettings(
        max_neighbors=settings.hnsw_m or chosen.max_neighbors,
        ef_construction=settings.hnsw_ef_construction or chosen.ef_construction,
        ef_search=settings.hnsw_ef_search or chosen.ef_search,
        space=chosen.space,
    )


def from_configuration(configuration: dict | None) -> HnswSettings | None:
    """The settings a Chroma collection was made with (its `configuration`), or None when it does not say."""
    hnsw = (configuration or {}).get("hnsw") or {}
    try:
        return HnswSettings(
            max_neighbors=int(hnsw["max_neighbors"]),
            ef_construction=int(hnsw["ef_construction"]),
            ef_search=int(hnsw["ef_search"]),
            space=str(hnsw.get("space", "cosine")),
        )
    except (KeyError, TypeError, ValueError):
        return None
