"""The data that flows through the pipeline: ingest -> index -> profile -> retrieve -> rerank -> present.

Plain dataclasses, no behaviour beyond small derived properties, so every stage (and every test) can
build them by hand.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class ImageRef:
    """One image of a news item: a local path (relative to the corpus folder or absolute) or a URL."""

    uri: str
    caption: str = ""


@dataclass
class NewsItem:
    id: str
    title: str
    body: str = ""  # abstract or full text
    category: str = ""
    subcategory: str = ""
    language: str = ""  # "en", "zh", ...; "" when unknown
    published_at: datetime | None = None  # timezone-aware UTC when known
    source: str = ""
    url: str = ""
    images: list[ImageRef] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # sensitivity labels from ingest ("legal", "under-16", ...)

    @property
    def text(self) -> str:
        """Title and body as one string, the unit that text models embed and score."""
        return f"{self.title}\n{self.body}".strip()

    def content_hash(self) -> str:
        """Hash of everything a model sees; re-embedding is needed exactly when it changes."""
        payload = {
            "title": self.title,
            "body": self.body,
            "category": self.category,
            "subcategory": self.subcategory,
            "language": self.language,
            "images": [asdict(image) for image in self.images],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class HistoryEntry:
    news_id: str
    timestamp: datetime | None = None


@dataclass
class User:
    id: str
    name: str = ""
    persona: str = ""  # a sentence describing the simulated reader; shown in the UI
    history: list[HistoryEntry] = field(default_factory=list)  # oldest first
    tags: list[str] = field(default_factory=list)  # persona tags ("engineer", "zh-reader"), for editorial segments


@dataclass
class Impression:
    """One logged page view, for offline evaluation: what the user had read and what they were shown."""

    id: str
    user_id: str
    history: list[str]
    candidates: list[str]
    labels: list[int]  # 1 = clicked, aligned with candidates
    timestamp: datetime | None = None


@dataclass
class Interest:
    """One cluster of a user's reading: a direction in embedding space plus the words that name it."""

    label: str  # short human-readable name of whole words, e.g. "ev-battery · sodium-ion · charging"
    vector: np.ndarray  # (D,) L2-normalised
    weight: float  # share of the recency-weighted history, sums to 1 over a profile's interests
    news_ids: list[str] = field(default_factory=list)  # history items in this cluster, strongest first
    keywords: list[str] = field(default_factory=list)
    members: np.ndarray | None = None  # (n, D) embeddings of those history items, same order as news_ids
    topics: list[str] = field(default_factory=list)  # the reads' subcategories (else categories), strongest first


@dataclass
class UserProfile:
    user_id: str
    interests: list[Interest] = field(default_factory=list)
    categories: dict[str, float] = field(default_factory=dict)  # recency-weighted share per category
    subcategories: dict[str, float] = field(default_factory=dict)  # ... per "category/subcategory"
    keywords: list[str] = field(default_factory=list)  # salient terms of the history, strongest first
    terms: dict[str, float] = field(default_factory=dict)  # title terms repeated across reads -> weight
    # term -> (n, D) embeddings of the reads whose titles hold it: the sense in which the reader met the word
    term_reads: dict[str, np.ndarray] = field(default_factory=dict)
    summary: str = ""  # one short paragraph for a reranker prompt
    read_ids: set[str] = field(default_factory=set)  # excluded from recommendations
    images: list[ImageRef] = field(default_factory=list)  # representative history images, for VL rerankers
    liked_ids: list[str] = field(default_factory=list)  # session feedback: "more like this"
    disliked_ids: list[str] = field(default_factory=list)  # session feedback: "not interested"
    avoid: list[Interest] = field(default_factory=list)  # directions the reader rejected (one per "not interested")

    def fingerprint(self) -> str:
        """Stable hash of everything a reranker may read from this profile (used in score-cache keys)."""
        digest = hashlib.sha256()
        payload = {
            "summary": self.summary,
            "images": [image.uri for image in self.images],
            "categories": {name: round(share, 6) for name, share in self.categories.items()},
            "subcategories": {name: round(share, 6) for name, share in self.subcategories.items()},
            "weights": [round(interest.weight, 6) for interest in self.interests],
            "terms": {term: round(weight, 6) for term, weight in self.terms.items()},
        }
        digest.update(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode())
        for interest in [*self.interests, *self.avoid]:
            digest.update(np.round(np.asarray(interest.vector, dtype=np.float32), 5).tobytes())
        for term in sorted(self.term_reads):  # sorted: the same digest in every process
            digest.update(term.encode())
            digest.update(np.round(np.asarray(self.term_reads[term], dtype=np.float32), 5).tobytes())
        return digest.hexdigest()[:16]


@dataclass
class Candidate:
    """A news item recalled by the first stage, with what the retriever knew about it."""

    item: NewsItem
    retrieval_score: float
    retrieval_rank: int  # 1-based
    embedding: np.ndarray | None = None  # (D,) L2-normalised document embedding, when the index has one
    source: str = ""  # For-you recall source: "interest", "trending" or "newest"; "" for a search


@dataclass
class RerankRequest:
    """Everything a reranker may look at besides the candidates themselves."""

    query: str  # what the user typed; "" for the "For you" feed
    profile: UserProfile | None = None
    instruction: str = ""  # task instruction for instruction-following rerankers
    now: datetime | None = None  # reference time for freshness; None = latest item in the corpus
    query_vector: np.ndarray | None = None  # (D,) first-stage query embedding, so rerankers need not re-embed


@dataclass(frozen=True)
class Reason:
    """One part of why a card is shown, kept structured so the page can phrase it in its own language.

    `kind` names the part ("query", "interest", "history", "category", "popularity", "fresh", "model",
    "avoid", ...); `share` is its part of the score; `detail` is what to quote (an interest's words,
    a history title, a category).
    """

    kind: str
    share: float
    detail: str = ""


@dataclass(frozen=True)
class RuleEffect:
    """What one editorial rule did to one card (newsrec/editorial): "pinned at 2", "+6 points", ...

    `points` is the change on the card's 0-100 match scale (0 when the rule moved the card without scoring it).
    """

    rule_id: str
    kind: str
    detail: str  # in English, e.g. "pinned at 2"; pages in other languages phrase `action` and `slot` instead
    points: float = 0.0
    action: str = ""  # "pinned" | "placed" | "must-see" | "points" | "quota" | "fetched"
    slot: int = 0  # the slot a pin/placement/must-see put the card at


@dataclass
class Recommendation:
    item: NewsItem
    score: float  # score of the stage that produced this list
    rank: int  # 1-based rank in this list
    retrieval_score: float
    retrieval_rank: int
    explanation: str = ""  # one line: which interests / history items / categories it matched
    matched_history: list[str] = field(default_factory=list)  # history news ids it is closest to
    contributions: dict[str, float] = field(default_factory=dict)  # named parts of `score`, adding up to it
    reasons: list[Reason] = field(default_factory=list)  # the strongest parts, in words the UI can translate
    duplicate_ids: list[str] = field(default_factory=list)  # the same story in other languages, merged into this slot
    rules: list[RuleEffect] = field(default_factory=list)  # editorial rules that acted on this card (none: empty)


@dataclass
class RecommendResult:
    mode: str  # "lite" or "qwen3-vl"
    user_id: str
    query: str
    retrieval: list[Recommendation]  # retrieval-only ranking (top k)
    reranked: list[Recommendation]  # final ranking (top k)
    timings_ms: dict[str, float]  # "retrieve", "rerank", "total" (and finer stages when known)
    reranker: str = ""
    embedder: str = ""
    candidates: int = 0  # how many candidates the reranker scored
    cache_hits: int = 0
    cache_misses: int = 0
    query_matched: bool = True  # False when nothing matched the query and the list is the reader's For-you feed
    notice: str = ""  # a sentence for the reader about the list (e.g. why it fell back), "" when there is none
    blocked: int = 0  # stories editorial rules kept out of this top k (newsrec/editorial)
    rule_notices: list[str] = field(default_factory=list)  # editorial rules that could not act fully, in English
    nearest: list[str] = field(default_factory=list)  # no exact match: the nearest stories' ids, which the list shows
