"""The dashboard's knobs as one value: what the handlers (state.py) read and deep links (deeplink.py) carry."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Controls"]


@dataclass
class Controls:
    """The dashboard's knobs, in the units the widgets show."""

    k: int = 10
    candidates: int = 100
    diversity: float = 0.0  # 0 = pure relevance; the pipeline's MMR lambda is 1 - diversity
    half_life_days: float = 0.0  # 0 = no freshness decay
    categories: list[str] = field(default_factory=list)
    instruction: str = ""
    rules: str = "live"  # the editorial rule set the feed applies: live | draft | none (newsrec/editorial)
