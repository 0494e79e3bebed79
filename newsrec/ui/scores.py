"""One legible score per card: a 0–100 match and the named parts that add up to it.

The parts come from `Recommendation.contributions` (the pipeline's own split of the score). When a pipeline
leaves them empty, the dashboard asks a reranker that can split its score (`score_components`, as the lite
reranker does) and, failing that, shows the whole score as one "model" part. Every part is scaled by the
same factor as the score, and the displayed integers are rounded so that they add up to the displayed
match exactly (largest remainder), so an editor can check the sum by eye.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from newsrec.types import Recommendation
from newsrec.ui.i18n import t

# display order of the parts the pipeline names today; unknown parts follow, largest first
PART_ORDER = ("query", "interest", "history", "category", "popularity", "fresh", "model", "avoid")


def scale_for(scores: Sequence[float]) -> float:
    """Factor from the reranker's scale to 0–100: x100 for scores in [0, 1], else relative to the largest."""
    if not scores:
        return 100.0
    largest = max(abs(s) for s in scores)
    return 100.0 if largest <= 1.0 else 100.0 / largest


def parts(rec: Recommendation) -> dict[str, float]:
    """The card's score split into named parts; the whole score as "model" when nothing splits it."""
    if rec.contributions:
        return dict(rec.contributions)
    return {"model": rec.score}


def rounded(values: Mapping[str, float], total: int) -> dict[str, int]:
    """Integers that add up to `total`, each as close to its value as that allows (largest remainder)."""
    floors = {name: math.floor(value) for name, value in values.items()}
    left = total - sum(floors.values())
    by_remainder = sorted(values, key=lambda name: floors[name] - values[name])  # largest remainder first
    for name in by_remainder[: max(left, 0)]:
        floors[name] += 1
    for name in by_remainder[::-1][: max(-left, 0)]:
        floors[name] -= 1
    return floors


def match(rec: Recommendation, scale: float) -> tuple[int, dict[str, int]]:
    """(match 0–100, integer parts that add up to it), parts in display order, zero parts left out."""
    raw = {name: value * scale for name, value in parts(rec).items()}
    total = round(rec.score * scale)
    gap = rec.score * scale - sum(raw.values())
    if abs(gap) >= 0.5:  # parts that do not add up (a plug-in's bug) show their gap instead of hiding it
        raw["other"] = raw.get("other", 0.0) + gap
    split = rounded(raw, total)
    order = sorted(split, key=lambda n: (PART_ORDER.index(n) if n in PART_ORDER else len(PART_ORDER), -raw[n]))
    return total, {name: split[name] for name in order if split[name] != 0}


def part_label(name: str, lang: str) -> str:
    key = f"part_{name}"
    label = t(key, lang)
    return name if label == key else label
