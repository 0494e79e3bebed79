"""Why a card is shown, as short sentences in the page's language.

The pipeline hands over structured `Reason(kind, share, detail)`s; this module phrases them: one template
per kind and language, the detail quoted, interest names turned from "solid · northstar · semi" into
"solid, northstar and semi", long quotes cut at a word boundary with a real ellipsis. A recommendation
without reasons falls back to its parts (`contributions`, kinds only), then (in English) to the pipeline's
one-line `explanation`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import replace

from newsrec.profiles import LABEL_SEPARATOR
from newsrec.types import Reason, Recommendation
from newsrec.ui.i18n import t

MAX_REASONS = 3
QUOTE_WIDTH = 48  # display columns; CJK characters take two
KNOWN = (
    "read", "query", "interest", "history", "category", "publisher", "popularity", "fresh", "model", "avoid", "weak",
    "outside", "trending", "new_subject", "variety",
)  # fmt: skip
_SEPARATORS = re.compile(r"\s*[·,;/|、，]\s*")


def _width(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def clip(text: str, width: int = QUOTE_WIDTH) -> str:
    """`text` cut to `width` columns at a word boundary (any character for CJK), with "…" when cut."""
    text = " ".join(str(text).split())
    if sum(_width(c) for c in text) <= width:
        return text
    used, end = 0, 0
    for i, char in enumerate(text):
        used += _width(char)
        if used > width - 1:  # leave a column for the ellipsis
            break
        end = i + 1
    cut = text[:end]
    if end < len(text) and text[end].isalnum() and _width(text[end]) != 2:
        space = cut.rfind(" ")
        if space > 0:  # never split a Latin word; a single over-long word is cut where it must be
            cut = cut[:space]
    return cut.rstrip(" ,.;:·-—") + "…"


def phrase(terms: str | Sequence[str], lang: str = "en", limit: int = 3) -> str:
    """Interest words as a natural phrase: "a, b and c" / "a、b和c" (at most `limit` words)."""
    words = [w for w in (_SEPARATORS.split(terms) if isinstance(terms, str) else terms) if w.strip()][:limit]
    words = [w.strip() for w in words]
    if len(words) <= 1:
        return "".join(words)
    if lang == "zh":
        return "、".join(words[:-1]) + "和" + words[-1]
    return ", ".join(words[:-1]) + " and " + words[-1]


def sentence(reason: Reason, lang: str = "en") -> str:
    """One reason in words; unknown kinds name themselves rather than disappear."""
    kind = reason.kind if reason.kind in KNOWN else "other"
    detail = reason.detail.strip()
    if kind in ("interest", "new_subject", "variety") and detail:
        detail = phrase([topic_name(part, lang) for part in detail.split(LABEL_SEPARATOR.strip())], lang)
    elif kind == "category" and detail:
        detail = category_name(detail, lang)
        detail = detail[:1].upper() + detail[1:]  # it starts the sentence
    if detail:
        return t(f"why_{kind}", lang, detail=clip(detail))
    return t(f"why_{kind}_plain", lang, kind=reason.kind)


def topic_name(name: str, lang: str) -> str:
    """An interest label's part in the page's language: a known topic or category name, else as it is."""
    name = name.strip()
    label = t(f"topic_{name.lower()}", lang)
    return category_name(name, lang) if label == f"topic_{name.lower()}" else label


def category_name(category: str, lang: str) -> str:
    """The demo taxonomy's top-level categories in the page's language ("sports" -> "体育"); others as they are."""
    key = f"cat_{category.lower()}"
    label = t(key, lang)
    return category if label == key else label


def reasons_from_parts(contributions: Mapping[str, float], limit: int = MAX_REASONS) -> list[Reason]:
    """Reasons without details from the positive parts of a score, largest first (plus a demotion)."""
    positive = sorted(((v, k) for k, v in contributions.items() if v > 0), reverse=True)[:limit]
    reasons = [Reason(kind, share) for share, kind in positive]
    if contributions.get("avoid", 0.0) < 0:
        reasons.append(Reason("avoid", contributions["avoid"]))
    return reasons


def rule_lines(rec: Recommendation, lang: str = "en") -> list[str]:
    """What editorial rules did to the card (newsrec/editorial), one sentence each."""
    lines = []
    for effect in rec.rules:
        points = f"{effect.points:+g}"
        lines.append(t(f"rule_{effect.action}", lang, slot=effect.slot, rule=effect.rule_id, points=points))
    return lines


def why(rec: Recommendation, lang: str = "en") -> list[str]:
    """The card's reasons as sentences: the editors' rules first, then the pipeline's reasons, else its parts,
    else its explanation."""
    if rec.rules:
        plain = replace(
            rec,
            rules=[],
            reasons=[r for r in rec.reasons if r.kind != "editor"],
            contributions={name: v for name, v in rec.contributions.items() if name != "editor"},
            explanation="",  # it starts with the rules in English, already said above
        )
        rest = why(plain, lang)
        return rule_lines(rec, lang) + [line for line in rest if line != t("why_none", lang)]
    read = [r for r in rec.reasons if r.kind == "read"]  # a fact about the card, always shown first
    reasons = read + sorted((r for r in rec.reasons if r.kind != "read"), key=lambda r: -abs(r.share))[:MAX_REASONS]
    if not reasons and set(rec.contributions) - {"model"}:
        reasons = reasons_from_parts(rec.contributions)
    if reasons:
        return [sentence(reason, lang) for reason in reasons]
    if lang == "en" and rec.explanation:
        return [rec.explanation]
    return [t("why_none", lang)]
