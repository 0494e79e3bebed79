"""Honest feeds and reasons on the demo corpus in lite mode (issue 18, "Honest feeds and reasons").

Story sets are written down by id from reading assets/demo/news.jsonl. Grace (u03) is a private investor
(markets, earnings, commodities, macro); the corpus files farm-gate apple and pear stories under
finance/agriculture, a subcategory she never reads. Daniel (u01) follows EV batteries.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from newsrec.config import Settings
from newsrec.pipeline import Recommender
from newsrec.types import Reason, Recommendation
from newsrec.ui.feedback import update_profile
from newsrec.ui.reasons import sentence, why

# Farm-gate stories: harvests, purchase prices, cold storage, pear growers, oranges, co-op sales, exports.
FARM_GATE = {"n037", "n038", "n041", "n043", "n105", "n106", "n177", "n178", "n182"}
FRUIT = FARM_GATE | {"n040", "n042", "n044", "n045", "n179", "n180", "n181"}
# Apple the company; n029 (MacBook launch, en) and n030 (the same story in Chinese).
APPLE_COMPANY = {"n029", "n030", "n031", "n032", "n033", "n034", "n035", "n036"}
MACBOOK, MACBOOK_ZH = "n029", "n030"

pytestmark = pytest.mark.slow  # embeds the demo corpus with the real lite model once


@pytest.fixture(scope="module")
def recommender(tmp_path_factory) -> Recommender:
    settings = Settings(home=tmp_path_factory.mktemp("reasons_home"), embedder="lite", reranker="lite")
    return Recommender.from_settings(settings)


def ids(recommendations) -> list[str]:
    return [r.item.id for r in recommendations]


# --- interest labels -------------------------------------------------------------------------------------


def test_interest_labels_are_whole_words_of_the_reads(recommender):
    """Labels were top tf-idf pieces: "ease · natural · costs" for Grace, and 双十 cut out of 双十一."""
    for user in sorted(recommender.corpus.users):
        profile = recommender.profile(user)
        for interest in profile.interests:
            reads = [recommender.corpus.news[i] for i in interest.news_ids]
            names = {item.subcategory or item.category for item in reads}
            parts = interest.label.split(" · ")
            assert parts and set(parts) <= names, (user, interest.label, names)  # the reads' own topic names
            assert interest.topics == parts
        assert profile.summary.count("Interests: ") == 1
    grace = recommender.profile("u03")
    assert grace.interests[0].label == "economy · markets · earnings"
    labels = " ".join(interest.label for interest in grace.interests)
    assert "双十" not in labels and "ease" not in labels and "natural" not in labels


def test_interest_labels_read_in_the_pages_language(recommender):
    grace = recommender.profile("u03")
    reason = Reason("interest", 0.5, grace.interests[0].label)
    assert sentence(reason, "en") == "Fits the reader's interest in economy, markets and earnings."
    assert sentence(reason, "zh") == "符合读者对宏观经济、市场和财报的兴趣。"
    assert not re.search(r"[a-z]", sentence(reason, "zh"))


# --- slots that do not come from the reader's interests ---------------------------------------------------


def test_grace_farm_gate_fill_ins_never_claim_an_interest(recommender):
    """Her feed holds farm-gate stories: they are labelled as outside her topics, not as her 双十一 interest."""
    feed = recommender.recommend("u03", k=20).reranked
    farm = [r for r in feed if r.item.id in FARM_GATE]
    assert farm, ids(feed)
    for card in farm:
        kinds = [reason.kind for reason in card.reasons]
        assert "interest" not in kinds and "history" not in kinds, (card.item.id, card.explanation)
        # finance is most of her reading, agriculture is not: a new subject, not "outside her usual topics"
        assert "new_subject" in kinds and "outside" not in kinds, (card.item.id, kinds)
        assert "close to the interest" not in card.explanation
        assert "A subject new to them: agriculture." in why(card, "en"), why(card, "en")
        assert "读者没读过的主题：农业。" in why(card, "zh"), why(card, "zh")


# Reason kinds that say the card is unlike the reading, and those that say it is like it.
UNLIKE = {"outside", "new_subject", "trending", "weak"}
LIKE = {"history", "interest"}


def contradictions(card: Recommendation, profile, query: str) -> list[str]:
    """What a card's reasons say against each other or against the reader's profile."""
    kinds = [reason.kind for reason in card.reasons]
    found = []
    if set(kinds) & UNLIKE and set(kinds) & LIKE:
        found.append(f"both like and unlike the reading: {kinds}")
    read_category = profile.categories.get(card.item.category, 0.0) > 0
    if "outside" in kinds and read_category:
        found.append(f"outside the usual topics, yet {card.item.category} is read")
    if "category" in kinds and not read_category:
        found.append(f"claims {card.item.category}, which the reader does not read")
    if "new_subject" in kinds and any(
        key == f"{card.item.category}/{card.item.subcategory}" for key in profile.subcategories
    ):
        found.append(f"a new subject, yet {card.item.subcategory} is read")
    if "query" in kinds and not query:
        found.append("matches a query in a For-you feed")
    if "read" in kinds and not query:
        found.append("a read story in a For-you feed")
    if len(kinds) != len(set(kinds)):
        found.append(f"a reason twice: {kinds}")
    return found


@pytest.mark.parametrize("query", ["", "apple", "电池"])
def test_no_card_reason_contradicts_another_across_readers(recommender, query):
    """u06's card said "outside the reader's usual topics; tech is 95% of reading" (a tech story of a subject
    he never read); every reader's cards, feed and search, must hold reasons that agree with each other."""
    problems = []
    for user in sorted(recommender.corpus.users):
        profile = recommender.profile(user)
        for card in recommender.recommend(user, query=query, k=20).reranked:
            problems += [
                f"{user} {card.item.id}: {p} ({card.explanation})" for p in contradictions(card, profile, query)
            ]
    assert not problems, "\n".join(problems)


def test_interest_claims_name_an_interest_of_the_storys_topic(recommender):
    for user in sorted(recommender.corpus.users):
        profile = recommender.profile(user)
        by_label = {interest.label: interest for interest in profile.interests}
        for card in recommender.recommend(user).reranked:
            for reason in card.reasons:
                if reason.kind == "interest":
                    topic = card.item.subcategory or card.item.category
                    assert topic in by_label[reason.detail].topics, (user, card.item.id, reason.detail)


def test_trending_slots_say_trending(recommender):
    """A For-you slot the trending recall found, outside every interest, says so (not an interest)."""
    from newsrec.explain import explain

    profile = recommender.profile("u03")
    item = recommender.corpus.news["n084"]  # a tennis title: far from an investor's reading
    vector = recommender.index.embeddings(["n084"])[0]
    parts = {"interest": 0.2, "category": 0.0, "popularity": 0.1}
    trending = explain(item, parts, vector, profile, {}, {}, "", source="trending")
    assert [r.kind for r in trending.reasons][:1] == ["trending"] and "interest" not in trending.line
    rec = Recommendation(item, 0.3, 1, 0.1, 1, reasons=trending.reasons)
    assert "Trending with readers now." in why(rec, "en") and "读者正在热读。" in why(rec, "zh")
    assert explain(item, parts, vector, profile, {}, {}, "").reasons[0].kind == "outside"  # sports: not read
    farm = recommender.corpus.news["n106"]  # pear growers: finance (read), agriculture (not read)
    farm_vector = recommender.index.embeddings(["n106"])[0]
    first = explain(farm, parts, farm_vector, profile, {}, {}, "").reasons[0]
    assert (first.kind, first.detail) == ("new_subject", "agriculture")


# --- not interested inside a search ------------------------------------------------------------------------


def test_dislike_in_a_search_holds_back_the_story_not_the_querys_sense(recommender):
    """Disliking the MacBook story under "Apple launch event" demoted every Apple-company story and the
    search turned to fruit: the disliked story was the only full match, so nothing told the sense any more."""
    query = "Apple launch event"
    profile = recommender.profile("u01")
    before = recommender.recommend("u01", query=query, profile=profile).reranked
    assert MACBOOK in ids(before)
    disliked = update_profile(recommender, profile, MACBOOK, liked=False)
    after = recommender.recommend("u01", query=query, profile=disliked).reranked
    assert MACBOOK not in ids(after) and MACBOOK_ZH not in ids(after)
    # nothing else is held back: the other stories keep their order and their scores
    kept = [i for i in ids(before) if i not in {MACBOOK, MACBOOK_ZH}]
    assert ids(after)[: len(kept)] == kept, (ids(before), ids(after))
    for card in after:
        assert card.contributions.get("avoid", 0.0) == 0.0, card.item.id
    old = {r.item.id: r.score for r in before}
    for card in after:
        if card.item.id in old:
            assert card.score == pytest.approx(old[card.item.id]), card.item.id
    # Apple-company stories stay above every fruit story they led before
    company = [i for i in ids(after) if i in APPLE_COMPANY]
    assert len(company) >= len(set(kept) & APPLE_COMPANY) >= 3, ids(after)
    fruit_before = set(ids(before)) & FRUIT
    new_fruit = (set(ids(after)) & FRUIT) - fruit_before
    assert len(new_fruit) <= 1, new_fruit  # at most the one freed slot, at the end of the list
    assert all(ids(after).index(i) == len(after) - 1 for i in new_fruit)


def test_dislike_holds_back_the_same_story_in_the_other_language(recommender):
    """The Chinese copy of the disliked MacBook story is held back; the headset story (same company) is not."""
    from newsrec.types import Candidate, RerankRequest

    profile = update_profile(recommender, recommender.profile("u06"), MACBOOK, liked=False)
    shown = [MACBOOK_ZH, "n031"]
    vectors = recommender.index.embeddings(shown)
    pool = [Candidate(recommender.corpus.news[i], 0.0, 1, v) for i, v in zip(shown, vectors, strict=True)]
    parts = recommender.reranker.score_components(RerankRequest(query="", profile=profile), pool)
    assert parts[0]["avoid"] < -0.1 and parts[1]["avoid"] == 0.0, parts


# --- freshness control -----------------------------------------------------------------------------------


def test_freshness_off_means_no_freshness_part_and_no_recent_reason(recommender):
    off = recommender.recommend("u03", half_life_days=0)
    on = recommender.recommend("u03", half_life_days=7)
    for card in off.reranked:
        assert "fresh" not in card.contributions, card.contributions
        assert all(reason.kind != "fresh" for reason in card.reasons)
        assert "fresh story" not in card.explanation
        assert card.score == pytest.approx(sum(card.contributions.values()))
        assert not any("Published recently" in line for line in why(card, "en"))
    assert any("fresh" in card.contributions and card.contributions["fresh"] > 0 for card in on.reranked)
    assert np.isfinite([card.score for card in off.reranked]).all()


# --- category mix -------------------------------------------------------------------------------------

# How far a For-you top 10 may stray from the reader's reading shares, as total variation distance between
# the two category distributions (half the sum of absolute share differences; 0 = the same mix, 1 = disjoint).
# 0.6 is a regression guard at today's worst reader (u05, 0.56: her health reading meets four travel stories),
# not a target: see docs/reasons.md, "Category mix".
MIX_TOLERANCE = 0.6


def category_distance(feed, shares: dict[str, float]) -> float:
    counts: dict[str, int] = {}
    for card in feed:
        counts[card.item.category] = counts.get(card.item.category, 0) + 1
    names = sorted(set(counts) | set(shares))
    return 0.5 * sum(abs(counts.get(name, 0) / len(feed) - shares.get(name, 0.0)) for name in names)


def test_grace_top_five_leads_with_finance(recommender):
    """Finance is 92% of Grace's reading: her first card and at least four of her top five are finance stories."""
    profile = recommender.profile("u03")
    largest = max(sorted(profile.categories), key=profile.categories.get)
    assert largest == "finance", profile.categories
    top = recommender.recommend("u03", k=10).reranked[:5]
    assert top[0].item.category == largest, ids(top)
    assert sum(card.item.category == largest for card in top) >= 4, [(c.item.id, c.item.category) for c in top]


def test_for_you_category_mix_stays_close_to_reading_shares(recommender):
    """Every reader's top 10 keeps within MIX_TOLERANCE of their reading's category shares, and their largest
    category holds at least as many slots as any other (Daniel, u01, 53% autos, got five tech and four autos
    cards while the category part counted subcategories alone)."""
    for user in sorted(recommender.corpus.users):
        profile = recommender.profile(user)
        feed = recommender.recommend(user, k=10).reranked
        assert len(feed) == 10, user
        categories = [card.item.category for card in feed]
        assert category_distance(feed, profile.categories) <= MIX_TOLERANCE, (user, categories)
        largest = max(sorted(profile.categories), key=profile.categories.get)
        assert categories.count(largest) >= max(categories.count(name) for name in categories), (user, categories)
