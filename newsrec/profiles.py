"""User interest profiles from reading history, and live updates from session feedback.

A profile keeps several interests rather than one mean vector: a reader of both EV-battery and NBA
news has two directions in embedding space, and their average points at neither. Interests come from
average-linkage clustering of the history embeddings (deterministic, no random restarts), each
weighted by the recency of its reads.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np

from newsrec.lexical import tokenize
from newsrec.types import HistoryEntry, ImageRef, Interest, NewsItem, UserProfile

HALF_LIFE_DAYS = 14.0  # a read two weeks old counts half as much as one from today
CLUSTER_DISTANCE = 0.6  # cosine distance at which two reads stop belonging to one interest
MAX_INTERESTS = 5
MAX_PROFILE_IMAGES = 3
FEEDBACK_STEP = 0.5  # how far "more like this" pulls the nearest interest towards the liked item
NEW_INTEREST_SIMILARITY = 0.35  # a liked item less similar than this to every interest starts a new one
MAX_LABEL_PARTS = 3  # topic names (or shared title words) in an interest's label
LABEL_SEPARATOR = " · "


def recency_weights(history: Sequence[HistoryEntry], news: Mapping[str, NewsItem], now: datetime | None) -> np.ndarray:
    """Exponential decay by age of the read; by position when the log has no times (e.g. MIND without time)."""
    times = [entry.timestamp or getattr(news.get(entry.news_id), "published_at", None) for entry in history]
    if now is not None and all(times):
        ages = np.array([max((now - t).total_seconds(), 0.0) / 86400 for t in times])
        return 0.5 ** (ages / HALF_LIFE_DAYS)
    # Position as a proxy for time: the latest read weighs 1, the first about 0.5.
    n = len(history)
    return 0.5 ** (np.arange(n - 1, -1, -1) / max(n, 1))


def cluster_interests(vectors: np.ndarray, max_interests: int = MAX_INTERESTS) -> np.ndarray:
    """Cluster label per row of (N, D) unit vectors."""
    if len(vectors) == 1:
        return np.zeros(1, dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage  # ~1 s to import: only when a history is clustered

    tree = linkage(vectors, method="average", metric="cosine")
    labels = fcluster(tree, t=CLUSTER_DISTANCE, criterion="distance")
    if labels.max() > max_interests:
        labels = fcluster(tree, t=max_interests, criterion="maxclust")
    return labels - 1


def _title_term_scores(
    items: Sequence[NewsItem], weights: Sequence[float], idf: Mapping[str, float]
) -> tuple[Counter[str], Counter[str]]:
    """Recency-weighted tf-idf of the items' title terms, and how many titles hold each term."""
    scores: Counter[str] = Counter()
    titles: Counter[str] = Counter()
    for item, weight in zip(items, weights, strict=True):
        for term in dict.fromkeys(tokenize(item.title)):  # each term once per title, in title order
            if len(term) > 1 and not term.isdigit():
                scores[term] += float(weight) * idf.get(term, 1.0)
                titles[term] += 1
    return scores, titles


def ranked(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """(key, score) pairs, highest score first, ties by key: the same order in every process.

    `Counter.most_common` breaks ties by insertion order, and insertion order followed the iteration order
    of a set of strings, which Python salts per process (PYTHONHASHSEED): labels changed between runs.
    """
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def salient_terms(items: Sequence[NewsItem], weights: Sequence[float], idf: Mapping[str, float], top: int) -> list[str]:
    """Terms of the items' titles ranked by recency-weighted tf-idf."""
    return [term for term, _ in ranked(_title_term_scores(items, weights, idf)[0])[:top]]


def repeated_terms(items: Sequence[NewsItem], weights: Sequence[float], idf: Mapping[str, float]) -> dict[str, float]:
    """Title terms found in at least two reads, weighted by the reads' recency share x idf, strongest first.

    A theme the embedder misses shows up as a word the reader's titles keep repeating ("AI" across
    medical-imaging, translation and farm-drone stories); a word of a single read says little.
    """
    scores, titles = _title_term_scores(items, weights, idf)
    total = float(sum(weights)) or 1.0
    return {term: score / total for term, score in ranked(scores) if titles[term] >= 2}


def term_reads(items: Sequence[NewsItem], embeddings: np.ndarray, terms: Mapping[str, float]) -> dict[str, np.ndarray]:
    """For each repeated term, the (n, D) embeddings of the reads whose titles hold it, in reading order.

    A word has the sense of the stories it was read in: "apple" in a tech reader's titles is the company,
    in an apple grower's the fruit; "增长" (growth) in an investor's GDP story is not an orchard's export
    growth. The lite reranker counts a term for a candidate only as far as the candidate resembles them.
    """
    rows: dict[str, list[int]] = {term: [] for term in terms}
    for row, item in enumerate(items):
        for term in dict.fromkeys(tokenize(item.title)):
            if term in rows:
                rows[term].append(row)
    return {term: np.asarray(embeddings[held], dtype=np.float32) for term, held in rows.items() if held}


def build_profile(
    user_id: str,
    history: Sequence[HistoryEntry],
    news: Mapping[str, NewsItem],
    embeddings: np.ndarray,
    idf: Mapping[str, float] | None = None,
    now: datetime | None = None,
) -> UserProfile:
    """Profile from the history entries whose items exist; `embeddings` is (len(known), D), aligned with them."""
    idf = idf or {}
    known = [entry for entry in history if entry.news_id in news]
    profile = UserProfile(user_id=user_id, read_ids={entry.news_id for entry in history})
    if not known:
        profile.summary = "New reader with no reading history yet."
        return profile
    if len(embeddings) != len(known):
        raise ValueError(f"got {len(embeddings)} embeddings for {len(known)} known history items")
    items = [news[entry.news_id] for entry in known]
    weights = recency_weights(known, news, now)
    labels = cluster_interests(embeddings)

    total = float(weights.sum())
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        centre = (weights[rows, None] * embeddings[rows]).sum(axis=0)
        centre /= np.linalg.norm(centre) or 1.0
        strength = weights[rows] * (embeddings[rows] @ centre)
        order = rows[np.argsort(-strength, kind="stable")]
        members = [items[i] for i in rows]
        keywords = salient_terms(members, weights[rows], idf, top=5)
        topics = interest_topics(members, weights[rows])
        profile.interests.append(
            Interest(
                label=interest_label(topics, members, weights[rows], idf, items[order[0]]),
                vector=centre.astype(np.float32),
                weight=float(weights[rows].sum() / total),
                news_ids=[items[i].id for i in order],
                keywords=keywords,
                members=embeddings[order].astype(np.float32),
                topics=topics,
            )
        )
    profile.interests.sort(key=lambda interest: -interest.weight)

    categories: Counter[str] = Counter()
    subcategories: Counter[str] = Counter()
    for item, weight in zip(items, weights, strict=True):
        categories[item.category or "uncategorised"] += float(weight) / total
        subcategories[subcategory_key(item)] += float(weight) / total
    profile.categories = dict(ranked(categories))
    profile.subcategories = dict(ranked(subcategories))
    profile.keywords = salient_terms(items, weights, idf, top=12)
    profile.terms = repeated_terms(items, weights, idf)
    profile.term_reads = term_reads(items, embeddings, profile.terms)
    profile.images = representative_images(items, weights)
    profile.summary = summarise(profile, items, weights)
    return profile


def topic(item: NewsItem) -> str:
    """An item's topic name: its subcategory, else its category, else "" (NeMig and MIND have both)."""
    return item.subcategory or item.category


def interest_topics(items: Sequence[NewsItem], weights: Sequence[float]) -> list[str]:
    """The members' topics by recency-weighted count, ties by name; at most MAX_LABEL_PARTS."""
    shares: Counter[str] = Counter()
    for item, weight in zip(items, weights, strict=True):
        if topic(item):
            shares[topic(item)] += float(weight)
    return [name for name, _ in ranked(shares)[:MAX_LABEL_PARTS]]


def interest_label(
    topics: Sequence[str],
    items: Sequence[NewsItem],
    weights: Sequence[float],
    idf: Mapping[str, float],
    representative: NewsItem,
) -> str:
    """A name of whole words for an interest, the same in every process.

    The corpus's own topic names when its items have them ("markets · economy · earnings"): they are whole
    words an editor filed the stories under, and the page can translate them. Without them, the title
    words at least two member titles share; else the interest's most representative title. Never the
    top tf-idf words of the titles: for a one-story interest they were "ease, natural and costs", and
    jieba's pieces such as 双十 (of 双十一) read as nonsense.
    """
    if topics:
        return LABEL_SEPARATOR.join(topics)
    scores, titles = _title_term_scores(items, weights, idf)
    shared = [term for term, _ in ranked(scores) if titles[term] >= 2][:MAX_LABEL_PARTS]
    if shared:
        return LABEL_SEPARATOR.join(shared)
    return clip_title(representative.title)


def clip_title(title: str, limit: int = 40) -> str:
    """A title cut at a word boundary (any character for Chinese), with "…" when cut."""
    title = " ".join(title.split())
    if len(title) <= limit:
        return title
    cut = title[:limit]
    if title[limit].isalnum() and " " in cut:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,.;:-") + "…"


def subcategory_key(item: NewsItem) -> str:
    """An item's key in `UserProfile.subcategories`: "category/subcategory", or the category alone.

    A subcategory name means something only inside its category: the demo's "ev-battery" holds funding
    rounds under finance and cell tests under autos.
    """
    category = item.category or "uncategorised"
    return f"{category}/{item.subcategory}" if item.subcategory else category


def representative_images(items: Sequence[NewsItem], weights: np.ndarray) -> list[ImageRef]:
    """First image of the most recent-weighted reads that have one, for VL rerankers' query side."""
    images = []
    for index in np.argsort(-weights, kind="stable"):
        if items[index].images:
            images.append(items[index].images[0])
        if len(images) == MAX_PROFILE_IMAGES:
            break
    return images


def summarise(profile: UserProfile, items: Sequence[NewsItem], weights: np.ndarray) -> str:
    """A short paragraph for a reranker prompt: stable wording, strongest signals first, no raw article text."""
    categories = ", ".join(f"{name} {share:.0%}" for name, share in list(profile.categories.items())[:4])
    interests = "; ".join(interest.label for interest in profile.interests[:4] if interest.label)
    recent = [items[i].title for i in np.argsort(-weights, kind="stable")[:3]]
    parts = [f"Reads mostly: {categories}." if categories else "", f"Interests: {interests}." if interests else ""]
    if recent:
        parts.append("Recently read: " + "; ".join(f'"{title[:80]}"' for title in recent) + ".")
    return " ".join(part for part in parts if part)


def apply_feedback(profile: UserProfile, item: NewsItem, embedding: np.ndarray, liked: bool) -> UserProfile:
    """Return a new profile updated by one session signal; the original stays untouched (the UI can reset)."""
    embedding = np.asarray(embedding, dtype=np.float32)
    if not liked:
        avoid = Interest(label=item.title[:60], vector=embedding, weight=1.0, news_ids=[item.id])
        rejected = set(tokenize(item.title))  # its words no longer speak for the reader's interests
        return replace(
            profile,
            disliked_ids=[*profile.disliked_ids, item.id],
            avoid=[*profile.avoid, avoid],
            read_ids=profile.read_ids | {item.id},
            terms={term: weight for term, weight in profile.terms.items() if term not in rejected},
            term_reads={term: reads for term, reads in profile.term_reads.items() if term not in rejected},
        )
    interests = [replace(interest) for interest in profile.interests]
    similarities = [float(interest.vector @ embedding) for interest in interests]
    if similarities and max(similarities) >= NEW_INTEREST_SIMILARITY:
        nearest = interests[int(np.argmax(similarities))]
        moved = nearest.vector + FEEDBACK_STEP * embedding
        nearest.vector = (moved / np.linalg.norm(moved)).astype(np.float32)
        nearest.weight += 0.25
        nearest.news_ids = [item.id, *nearest.news_ids]
        if nearest.members is not None:
            nearest.members = np.vstack([embedding, nearest.members])
    else:
        topics = [topic(item)] if topic(item) else []
        label = LABEL_SEPARATOR.join(topics) or clip_title(item.title)
        interest = Interest(label=label, vector=embedding, weight=0.25, news_ids=[item.id], topics=topics)
        interest.members = embedding[None, :]
        interests.append(interest)
    total = sum(interest.weight for interest in interests)
    for interest in interests:
        interest.weight /= total
    interests.sort(key=lambda interest: -interest.weight)  # stable: equal weights keep their order
    categories = dict(profile.categories)
    if item.category:
        categories[item.category] = categories.get(item.category, 0.0) + 0.1
        norm = sum(categories.values())
        categories = {name: share / norm for name, share in ranked(categories)}
    return replace(
        profile,
        interests=interests,
        categories=categories,
        liked_ids=[*profile.liked_ids, item.id],
        read_ids=profile.read_ids | {item.id},
    )


def idf_table(items: Sequence[NewsItem]) -> dict[str, float]:
    """Inverse document frequency of title terms over a corpus, for salient-term ranking."""
    df: Counter[str] = Counter()
    for item in items:
        df.update(set(tokenize(item.title)))
    n = max(len(items), 1)
    return {term: math.log((n + 1) / (count + 1)) + 1.0 for term, count in df.items()}
