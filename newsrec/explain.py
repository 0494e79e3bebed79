"""Why a card is shown, from the parts of its score: structured reasons and one English line.

The second stage gives each card named contributions that add up to its score (the learned model's
per-feature terms, or the reranker's parts plus the popularity prior). Parts are grouped by kind, each
kind's share is its part over the sum of the parts' sizes, and the strongest positive kinds become the
reasons, with what to quote (an interest's words, a history title, a category, the query terms). A kind
whose part is about zero is never claimed: no "matches the query" when the query did not count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from newsrec.lexical import tokenize
from newsrec.profiles import subcategory_key, topic
from newsrec.types import Interest, NewsItem, Reason, UserProfile

# Cosine from which an item is said to be like one history item, or close to an interest's centre.
# USE finds Chinese texts broadly alike, so a reason must not claim closeness on any positive part.
# Calibrated on the demo corpus (tests/test_showcase.py::test_interest_claim_floor_is_calibrated): over
# the ten personas' unread stories, the cosine to the nearest interest centre reaches 0.45 for 54% of
# the stories on the persona's topic (tests/test_demo_corpus.py's rules) and 2.6% of the rest; at 0.40,
# 72% and 5.9%, and 老李's 双十一 and Apple-revenue stories reach 0.40 to his apple interest.
HISTORY_MATCH = 0.45
INTEREST_MATCH = 0.45
RELATED_FLOOR = 0.25  # below this cosine even a same-topic story is unrelated (USE's related_scale floor)
MIN_SHARE = 0.1  # a kind must carry at least this share of the score's parts to be a reason
MAX_REASONS = 3

# feature / part name -> reason kind; "base" (the model's constant) is no reason
KINDS = {
    "query": "query",
    "retrieval": "interest",
    "interest": "interest",
    "category": "category",
    "publisher": "publisher",
    "popularity": "popularity",
    "exposure": "popularity",
    "fresh": "fresh",
    "model": "model",
    "avoid": "avoid",
}


@dataclass
class Explanation:
    line: str
    reasons: list[Reason] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)  # history news ids the item is closest to


def explain(
    item: NewsItem,
    contributions: Mapping[str, float],
    embedding: np.ndarray | None,
    profile: UserProfile | None,
    history_vectors: Mapping[str, np.ndarray],
    history_titles: Mapping[str, str],
    query: str = "",
    source: str = "",
    variety: bool = False,
    query_words: Sequence[str] | None = None,
) -> Explanation:
    """Reasons and the English line for one card, from its score's `contributions`.

    `query_words` are the query's words the item says (LexicalIndex.matched_words), quoted by a query reason.
    `variety` says that more stories of the card's subject, new to the reader, were held below the page
    (ranking.cap_new_subjects). `source` is where the For-you feed found the card ("trending" for the trending
    recall): a card that is close to no read and to no interest's topics says it is trending, outside the usual
    topics (a category the reader does not read), or a new subject (its subcategory) within a category they read.
    """
    by_kind: dict[str, float] = {}
    for name, value in contributions.items():
        if name in KINDS:
            by_kind[KINDS[name]] = by_kind.get(KINDS[name], 0.0) + float(value)
    total = sum(abs(v) for v in by_kind.values())
    shares = {kind: value / total for kind, value in by_kind.items()} if total > 1e-9 else {}
    # a search can list a story the reader has read: say so, and never call it "like" itself
    others = {news_id: vector for news_id, vector in history_vectors.items() if news_id != item.id}
    matched = _closest_history(embedding, others)
    reasons: list[Reason] = []
    for kind, share in sorted(shares.items(), key=lambda kv: -kv[1]):
        if share < MIN_SHARE or len(reasons) == MAX_REASONS:
            break
        reasons.append(
            _reason(kind, share, item, embedding, profile, matched, history_titles, query, source, query_words)
        )
    if shares.get("avoid", 0.0) <= -MIN_SHARE:
        reasons.append(Reason("avoid", shares["avoid"]))
    if variety:  # a fact about the feed: more stories of this new subject were held below the page
        reasons.append(Reason("variety", 0.0, item.subcategory))
    if profile is not None and item.id in profile.read_ids:
        reasons.insert(0, Reason("read", 0.0))  # a fact about the card, not a part of its score
    return Explanation(line=render(reasons, item, profile, query), reasons=reasons, matched=matched)


def _closest_history(embedding: np.ndarray | None, history_vectors: Mapping[str, np.ndarray]) -> list[str]:
    if embedding is None or not history_vectors:
        return []
    ids = list(history_vectors)
    similarities = np.stack([history_vectors[i] for i in ids]) @ embedding  # (H,)
    return [ids[i] for i in np.argsort(-similarities, kind="stable")[:3] if similarities[i] >= HISTORY_MATCH]


def _reason(kind, share, item, embedding, profile, matched, history_titles, query, source="", words=None) -> Reason:
    if kind == "query":
        # the lexical index's words (stems, synonyms, translations) when given: "苹果 → apples" on an English
        # card, where the words both texts share would be none
        terms = list(words) if words is not None else sorted(set(tokenize(query)) & set(tokenize(item.text)))
        return Reason("query", share, ", ".join(terms[:4]))
    if kind == "interest":
        if matched:
            return Reason("history", share, history_titles.get(matched[0], matched[0]))
        if profile is not None and profile.interests and embedding is not None:
            best = claimed_interest(item, embedding, profile.interests)
            if best is not None:
                return Reason("interest", share, best.label)
            # the part counted, but the item is close to no read and outside every interest's topics: say
            # what the slot is rather than claim an interest (USE finds Chinese texts broadly alike, so an
            # apple-export story sat at cosine 0.45 to an investor's 双十一 read)
            if not query.strip():
                if source == "trending":
                    return Reason("trending", share)
                if subcategory_key(item) in profile.subcategories:
                    return Reason("weak", share)  # a subject read now and then, far from every read of it
                if item.subcategory and profile.categories.get(item.category, 0.0) > 0:
                    # a category the reader reads, a subject they do not: "outside the usual topics" next to
                    # "finance is 92% of reading" contradicted itself; name the subject that is new instead
                    return Reason("new_subject", share, item.subcategory)
                return Reason("outside", share)
            return Reason("weak", share)
        return Reason("interest", share)
    if kind == "category":
        return Reason("category", share, item.category)
    if kind == "publisher":
        return Reason("publisher", share, item.source)
    return Reason(kind, share)


def resembles_reading(
    item: NewsItem, embedding: np.ndarray | None, profile: UserProfile, history_vectors: Mapping[str, np.ndarray]
) -> bool:
    """Whether a card may say it is like the reading: close to a read (not itself) or claimed by an interest."""
    others = {news_id: vector for news_id, vector in history_vectors.items() if news_id != item.id}
    if _closest_history(embedding, others):
        return True
    return embedding is not None and claimed_interest(item, embedding, profile.interests) is not None


def claimed_interest(item: NewsItem, embedding: np.ndarray, interests: Sequence[Interest]) -> Interest | None:
    """The interest a card may say it fits, or None: the closest one (cosine) among those that claim it.

    An interest claims an item of one of its topics (the corpus's subcategories, else categories) at
    the related level (`RELATED_FLOOR`), or any item at INTEREST_MATCH when neither names a topic.
    """
    name = topic(item)
    best, best_cosine = None, -np.inf
    for interest in interests:
        cosine = float(interest.vector @ embedding)
        if name and interest.topics:
            claims = name in interest.topics and cosine >= RELATED_FLOOR
        else:
            claims = cosine >= INTEREST_MATCH
        if claims and cosine > best_cosine:
            best, best_cosine = interest, cosine
    return best


def render(reasons: list[Reason], item: NewsItem, profile: UserProfile | None, query: str = "") -> str:
    """The reasons as one English line (the CLI and JSON show it; the page phrases `reasons` itself)."""
    words = []
    for reason in reasons:
        if reason.kind == "query":
            words.append(f"matches the query ({reason.detail})" if reason.detail else "matches the query")
        elif reason.kind == "history":
            title = reason.detail if len(reason.detail) <= 50 else reason.detail[:49].rstrip() + "…"
            words.append(f"like “{title}”")
        elif reason.kind == "interest":
            words.append(f"close to the interest “{reason.detail}”" if reason.detail else "close to the reading")
        elif reason.kind == "category":
            share = profile.categories.get(item.category, 0.0) if profile else 0.0
            words.append(f"{item.category} is {share:.0%} of reading" if share else f"a {item.category} story")
        elif reason.kind == "publisher":
            words.append(f"from {reason.detail}, a publisher the reader follows")
        elif reason.kind == "weak":
            words.append("only loosely like the reading")
        elif reason.kind == "outside":
            words.append("outside the reader's usual topics")
        elif reason.kind == "new_subject":
            words.append(f"a subject new to the reader ({reason.detail})")
        elif reason.kind == "trending":
            words.append("trending with readers")
        elif reason.kind == "variety":
            words.append(f"more {reason.detail} stories held back for variety")
        elif reason.kind == "read":
            words.append("already read")
        elif reason.kind == "popularity":
            words.append("often clicked when shown")
        elif reason.kind == "fresh":
            words.append("a fresh story")
        elif reason.kind == "model":
            words.append("the relevance model rates it highly")
        elif reason.kind == "avoid":
            words.append("held back: like stories marked not interested")
    if words:
        return "; ".join(words)
    return "no strong match to the query; closest to the reading" if query.strip() else "an average match"
