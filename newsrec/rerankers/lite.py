"""The lite reranker: a transparent personalised score that runs anywhere in microseconds per item.

    score = w_query    * query relevance      (newsrec/relevance.py: multilingual cosine fused with the
                                               IDF-weighted share of the query's terms the item has)
          + w_interest * interest affinity    (best cosine to one of the reader's interests, scaled by its weight,
                                               blended with the title words the reading repeats)
          + w_category * category affinity    (the item's subcategory share in the reader's history; an unread
                                               subcategory counts half its category, as far as the item resembles
                                               the reading)
          + w_fresh    * freshness            (halves every FRESH_HALF_LIFE_DAYS of age)
          - w_avoid    * rejection similarity (closeness to items the reader marked "not interested", counted
                                               only beyond same-topic closeness: `near_scale`)

Each part lies in [0, 1]. With a query the profile parts count only as far as the item matches it (they
reorder what matches); without one (the "For you" feed) the profile terms share the weight. The weights
are plain constants, documented in README, so an editor can tell why one item beats another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from newsrec.embedders import Embedder
from newsrec.lexical import LexicalIndex, tokenize
from newsrec.profiles import subcategory_key
from newsrec.relevance import CosineScale, query_relevance, related_scale
from newsrec.rerankers import register_reranker
from newsrec.types import Candidate, Interest, RerankRequest, UserProfile

FRESH_HALF_LIFE_DAYS = 7.0


@dataclass(frozen=True)
class LiteWeights:
    query: float
    interest: float
    category: float
    fresh: float
    avoid: float = 0.3


WITH_QUERY = LiteWeights(query=0.45, interest=0.2, category=0.3, fresh=0.05)
# With a query, the profile parts count in full for items whose query relevance reaches this, and in
# proportion below it: personalisation reorders what matches; it brings in nothing that does not.
QUERY_GATE = 0.25
RELATIVE_GATE = 0.8  # ... and in full only from this share of the best query relevance among the candidates
FOR_YOU = LiteWeights(query=0.0, interest=0.65, category=0.25, fresh=0.1)
# Share of the interest part taken by the reading's repeated title words (profiles.repeated_terms): the
# multilingual encoder puts every orchard story near an AI-farm-drone read, while the word "AI" in eight
# of ten titles says what the reader follows.
TERM_SHARE = 0.3


class LiteReranker:
    name = "lite-personal-v2"

    def __init__(self, embedder: Embedder | None = None, lexical: LexicalIndex | None = None):
        self.embedder = embedder  # its match range scales cosines; it embeds the query if a request has no vector
        self.lexical = lexical  # the corpus's lexical index (IDF weights); without it, one over the candidates
        # title -> its distinct terms in title order (jieba is not free); a tuple, not a set: the float sum
        # over them must run in the same order in every process
        self._title_terms: dict[str, tuple[str, ...]] = {}

    def score(self, request: RerankRequest, candidates: Sequence[Candidate]) -> list[float]:
        return [sum(parts.values()) for parts in self.score_components(request, candidates)]

    def score_components(self, request: RerankRequest, candidates: Sequence[Candidate]) -> list[dict[str, float]]:
        """Weighted parts of each candidate's score; they add up to the score."""
        if not candidates:
            return []
        docs = _embeddings(candidates)  # (N, D)
        query = request.query.strip()
        weights = WITH_QUERY if query else FOR_YOU
        profile = request.profile
        parts = {
            "query": self._query_relevance(request, candidates, docs) if query else np.zeros(len(candidates)),
            "interest": np.zeros(len(candidates)),
            "category": np.zeros(len(candidates)),
            "fresh": _freshness(request, candidates),
            "avoid": np.zeros(len(candidates)),
        }
        if profile is not None:
            if profile.interests:
                ids = [c.item.id for c in candidates]
                parts["interest"] = _interest_affinity(docs, ids, profile.interests, related_scale(self.embedder))
                if profile.terms:
                    words = self._term_affinity(candidates, docs, profile)
                    parts["interest"] = (1 - TERM_SHARE) * parts["interest"] + TERM_SHARE * words
            if profile.categories:
                parts["category"] = _category_affinity(candidates, profile, parts["interest"], feed=not query)
                # The mirror image: a story in a category the reader never opens counts half its content
                # similarity (USE reads 苹果 in a headset story as close to an apple grower's reading).
                unread = np.array([_category(c) not in profile.categories for c in candidates])
                parts["interest"] = np.where(unread, 0.5, 1.0) * parts["interest"]
            if profile.avoid:
                rejected = np.stack([interest.vector for interest in profile.avoid])
                parts["avoid"] = -near_scale(self.embedder)((docs @ rejected.T).max(axis=1))
        if query:  # personalisation reorders what matches the query; it brings in nothing that does not
            # ... nor lifts a half match over the best ones: the gate opens relative to the list's best match
            gate = np.clip(parts["query"] / max(QUERY_GATE, RELATIVE_GATE * float(parts["query"].max())), 0, 1)
            for name in ("interest", "category", "fresh"):
                parts[name] = parts[name] * gate
        return [
            {name: float(getattr(weights, name) * values[i]) for name, values in parts.items()}
            for i in range(len(candidates))
        ]

    def _term_affinity(self, candidates: Sequence[Candidate], docs: np.ndarray, profile: UserProfile) -> np.ndarray:
        """(N,) in [0, 1]: weight of the reading's repeated title words in the item's title, relative to the top one.

        A word counts in the sense the reader read it: as far as the item resembles the reads whose titles hold
        it (their best cosine through the embedder's `related_scale`), so "apple" repeated in a tech reader's
        Apple-company titles does not speak for a fruit-price story. A word read across unrelated stories is a
        theme of its own ("AI" in medical-imaging, farm-drone and coding reads) and counts that much wherever
        it appears (`_breadth`). A term the profile keeps no reads for (a hand-built profile) counts in full.
        """
        terms = profile.terms
        top = max(terms.values())
        scale = related_scale(self.embedder)
        sense: dict[str, np.ndarray] = {}  # term -> (N,) how far each item shares the term's sense
        affinity = np.zeros(len(candidates))
        for i, candidate in enumerate(candidates):
            title = candidate.item.title
            own = self._title_terms.get(title)
            if own is None:
                own = self._title_terms[title] = tuple(dict.fromkeys(tokenize(title)))
            total = 0.0
            for term in own:  # title order: the float sum runs the same way in every process
                weight = terms.get(term, 0.0)
                if not weight:
                    continue
                reads = profile.term_reads.get(term)
                if reads is None or not len(reads):
                    total += weight
                    continue
                if term not in sense:
                    sense[term] = np.maximum(scale((docs @ reads.T).max(axis=1)), _breadth(reads, scale))
                total += weight * float(sense[term][i])
            affinity[i] = min(total / top, 1.0)
        return affinity

    def _query_relevance(self, request: RerankRequest, candidates: Sequence[Candidate], docs: np.ndarray) -> np.ndarray:
        query_vector = request.query_vector
        if query_vector is None and self.embedder is not None:
            query_vector = self.embedder.embed_queries([request.query])[0]
        cosines = docs @ query_vector if query_vector is not None else np.zeros(len(candidates))
        lexical = self.lexical or LexicalIndex.build([c.item for c in candidates])
        scored = lexical.score(request.query)
        rows = lexical.rows  # built once per index: a dict over the whole corpus per request was O(corpus)
        at = np.array([rows.get(c.item.id, -1) for c in candidates])
        terms = np.where(at >= 0, scored.coverage[at], 0.0)
        held = np.where(at >= 0, scored.held[at], 0.0)
        covers = np.where(at >= 0, scored.covers[at], False)
        full = np.where(at >= 0, scored.full[at], False)
        headline = None if scored.headline is None else np.where(at >= 0, scored.headline[at], False)
        known = None if scored.known is None else np.where(at >= 0, scored.known[at], False)
        categories = [c.item.category for c in candidates]
        read = request.profile.subcategories if request.profile is not None else {}
        familiar = np.array([subcategory_key(c.item) in read for c in candidates], dtype=bool)
        return query_relevance(cosines, terms, self.embedder, categories, held, covers, full, familiar, headline, known)


def _breadth(reads: np.ndarray, scale: CosineScale) -> float:
    """In [0, 1]: how unrelated the (n >= 2, D) reads holding a term are to each other (1 - their mean closeness)."""
    n = len(reads)
    if n < 2:
        return 0.0
    cosines = reads @ reads.T
    mean = (float(cosines.sum()) - float(np.trace(cosines))) / (n * (n - 1))
    return 1.0 - float(scale(mean))


def near_scale(embedder: object | None) -> CosineScale:
    """How close a story must be to a story marked "not interested" to be held back with it.

    "Not interested" in one story is not a rejection of its whole topic: under "Apple launch event" the
    MacBook story sits at cosine 0.4-0.5 to every Apple-company story and to the apple-price story alike
    (USE), and demoting all of them turned the search to fruit. Only what is closer than a same-topic
    item (the embedder's `related_scale.full`) counts, fully from halfway to an identical vector: the
    same story in the other language (0.82) is held back, the headset story (0.50) is not. An embedder
    that states no calibrated scale keeps the plain clipped cosine.
    """
    related = getattr(embedder, "related_scale", None)
    if related is None:
        return CosineScale()
    return CosineScale(floor=related.full, full=(related.full + 1.0) / 2)


def _interest_affinity(
    docs: np.ndarray, ids: Sequence[str], interests: Sequence[Interest], scale: CosineScale
) -> np.ndarray:
    """(N,) in [0, 1]: closeness to the nearest interest, scaled by 0.5 + 0.5 x its weight relative to the top one.

    An item is close to an interest if it is close to its centre or to one of its reads (a reader of
    three Lakers stories wants the fourth even if it sits off the centre); a read story (search shows
    them) is not close to itself. Closeness is the cosine read through the embedder's `related_scale`:
    0 for what unrelated items score, 1 for a same-topic item.
    """
    weights = np.array([interest.weight for interest in interests])
    factors = 0.5 + 0.5 * weights / weights.max()
    affinity = np.zeros(len(docs))
    for interest, factor in zip(interests, factors, strict=True):
        closeness = docs @ interest.vector  # (N,)
        if interest.members is not None and len(interest.members):
            to_reads = docs @ interest.members.T  # (N, M)
            to_reads[np.array(ids)[:, None] == np.array(interest.news_ids)[None, :]] = -1.0
            closeness = np.maximum(closeness, to_reads.max(axis=1))
        affinity = np.maximum(affinity, scale(closeness) * factor)
    return affinity


def _category_affinity(
    candidates: Sequence[Candidate], profile: UserProfile, interest: np.ndarray, feed: bool = False
) -> np.ndarray:
    """(N,) in [0, 1]: the item's subcategory share of the reading, relative to the reader's top subcategory.

    A category alone is often ambiguous: finance holds an apple grower's crop prices and battery-recycling
    deals alike, so "finance is 52% of reading" must not lift a battery story into his feed. An item whose
    subcategory the reader never read gets half its category's relative share, and only as far as it
    resembles the reading (interest affinity). A subcategory counts within its category
    (`subcategory_key`): an investor's battery funding rounds (finance/ev-battery) say nothing for cell
    tests (autos/ev-battery). Items without a subcategory count by their category, so
    where subcategories are absent or map one-to-one onto categories (NeMig) this is the category share.
    """
    by_subcategory = bool(profile.subcategories)  # a hand-built profile may have categories only
    shares = profile.subcategories if by_subcategory else profile.categories
    top_share = max(shares.values())
    top_category = max(profile.categories.values())
    affinity = np.zeros(len(candidates))
    for i, candidate in enumerate(candidates):
        key = subcategory_key(candidate.item) if by_subcategory else _category(candidate)
        share = shares.get(key, 0.0)
        if share and by_subcategory and feed:
            # For-you: the category's share carries the reader's mix (health 96% of the reading outweighs
            # travel 4%, however thinly the health reads spread over subcategories); the subcategory ranks
            # within it. A search keeps the plain subcategory share: there the query sets the topic.
            category_share = profile.categories.get(_category(candidate), 0.0) / top_category
            affinity[i] = category_share * (0.5 + 0.5 * share / top_share)
        elif share:
            affinity[i] = share / top_share
        else:
            gate = interest[i] if len(profile.interests) else 1.0
            affinity[i] = 0.5 * profile.categories.get(_category(candidate), 0.0) / top_category * gate
    return affinity


def _category(candidate: Candidate) -> str:
    return candidate.item.category or "uncategorised"  # the profile's name for items without one


def _embeddings(candidates: Sequence[Candidate]) -> np.ndarray:
    missing = [c.item.id for c in candidates if c.embedding is None]
    if missing:
        raise ValueError(f"lite reranker needs candidate embeddings; missing for {missing[:3]}")
    return np.stack([c.embedding for c in candidates]).astype(np.float32)


def _freshness(request: RerankRequest, candidates: Sequence[Candidate]) -> np.ndarray:
    dates = [c.item.published_at for c in candidates]
    now = request.now or max((d for d in dates if d), default=None)
    if now is None:
        return np.zeros(len(candidates))
    ages = np.array([max((now - d).total_seconds() / 86400, 0.0) if d else np.inf for d in dates])
    return 0.5 ** (ages / FRESH_HALF_LIFE_DAYS)


@register_reranker("lite")
def lite_reranker(embedder: Embedder | None = None, lexical: LexicalIndex | None = None, **_options) -> LiteReranker:
    return LiteReranker(embedder=embedder, lexical=lexical)
