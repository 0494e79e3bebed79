from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from newsrec.rerankers.lite import FOR_YOU, WITH_QUERY, LiteReranker
from newsrec.types import Candidate, Interest, NewsItem, RerankRequest, UserProfile

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)


def _unit(*values):
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def _candidate(news_id, title, vector, category="autos", days_old=0):
    item = NewsItem(news_id, title, category=category, published_at=NOW - timedelta(days=days_old))
    return Candidate(item=item, retrieval_score=0.0, retrieval_rank=0, embedding=vector)


BATTERY = _candidate("b", "Solid-state battery breakthrough", _unit(1, 0, 0))
NBA = _candidate("n", "Lakers beat Warriors", _unit(0, 1, 0), category="sports")
OLD_BATTERY = _candidate("o", "Battery plant opens", _unit(1, 0.1, 0), days_old=21)
PROFILE = UserProfile(
    user_id="u",
    interests=[Interest(label="battery", vector=_unit(1, 0, 0), weight=1.0, news_ids=["h1"])],
    categories={"autos": 0.8, "sports": 0.2},
)


def test_components_add_up_to_the_score_and_follow_the_documented_weights():
    reranker = LiteReranker()
    request = RerankRequest(query="", profile=PROFILE, now=NOW)
    parts = reranker.score_components(request, [BATTERY, NBA])
    scores = reranker.score(request, [BATTERY, NBA])
    assert [sum(p.values()) for p in parts] == scores
    assert parts[0]["query"] == 0 and abs(parts[0]["interest"] - FOR_YOU.interest) < 1e-6
    assert (
        abs(parts[0]["category"] - FOR_YOU.category) < 1e-9 and abs(parts[1]["category"] - FOR_YOU.category / 4) < 1e-9
    )
    assert scores[0] > scores[1]


def test_a_query_outweighs_the_profile():
    request = RerankRequest(query="Lakers Warriors", profile=PROFILE, now=NOW, query_vector=_unit(0, 1, 0))
    battery, nba = LiteReranker().score_components(request, [BATTERY, NBA])
    assert abs(nba["query"] - WITH_QUERY.query) < 1e-6  # cosine 1 and every query term present
    assert sum(nba.values()) > sum(battery.values())


def test_freshness_and_rejections_lower_the_score():
    request = RerankRequest(query="", profile=PROFILE, now=NOW)
    fresh, old = LiteReranker().score(request, [BATTERY, OLD_BATTERY])
    assert fresh > old
    rejected = UserProfile(**{**PROFILE.__dict__, "avoid": [Interest(label="x", vector=_unit(1, 0, 0), weight=1.0)]})
    assert LiteReranker().score(RerankRequest(query="", profile=rejected, now=NOW), [BATTERY])[0] < fresh


def test_a_subcategory_counts_only_inside_its_category():
    """An investor's battery funding rounds (finance/ev-battery) are no reason for a cell test (autos/ev-battery)."""
    from newsrec.profiles import build_profile
    from newsrec.types import HistoryEntry

    reads = [
        NewsItem("h1", "Cell startup raises $600 million", category="finance", subcategory="ev-battery"),
        NewsItem("h2", "Stocks hit a record", category="finance", subcategory="markets"),
        NewsItem("h3", "Gold climbs", category="finance", subcategory="markets"),
    ]
    vectors = np.stack([_unit(1, 0, 0), _unit(0, 1, 0), _unit(0, 1, 0.1)])
    profile = build_profile("u", [HistoryEntry(r.id) for r in reads], {r.id: r for r in reads}, vectors)
    assert set(profile.subcategories) == {"finance/ev-battery", "finance/markets"}
    deal = _candidate("d", "Battery maker raises funds", _unit(1, 0, 0), category="finance")
    cell = _candidate("c", "Battery cell passes nail test", _unit(1, 0, 0), category="autos")
    deal.item.subcategory = cell.item.subcategory = "ev-battery"
    request = RerankRequest(query="", profile=profile, now=NOW)
    deal_parts, cell_parts = LiteReranker().score_components(request, [deal, cell])
    assert deal_parts["category"] > 0 and cell_parts["category"] == 0  # autos: a category never read


def test_a_partial_match_in_another_sense_counts_less():
    """ "Apple launch event": the one full match is tech, so "apple" alone in a finance story (the fruit's
    prices) counts half, while "apple" alone in another tech story counts in full."""
    launch = _candidate("l", "Apple unveils laptops at its launch event", _unit(1, 0, 0), category="tech")
    headset = _candidate("h", "Apple headset drops to 480 grams", _unit(1, 0, 0), category="tech")
    fruit = _candidate("f", "Apple prices slide at wholesale markets", _unit(1, 0, 0), category="finance")
    request = RerankRequest(query="Apple launch event", profile=None, now=NOW, query_vector=_unit(1, 0, 0))
    parts = LiteReranker().score_components(request, [launch, headset, fruit])
    launch_q, headset_q, fruit_q = (p["query"] for p in parts)
    assert launch_q > headset_q > fruit_q > 0
    assert fruit_q == pytest.approx(headset_q / 2)


def test_a_repeated_title_word_counts_in_the_sense_it_was_read():
    """ "Apple" repeated in a tech reader's Apple-company titles says nothing for a fruit-price story; a word read
    across unrelated stories ("AI" in medicine, farming and code) is a theme of its own and counts wherever it
    appears (issue 18: the tech reader's For-you had apple-fruit stories)."""
    from newsrec.profiles import build_profile
    from newsrec.types import HistoryEntry

    def profile_of(reads: list[NewsItem], vectors: list[np.ndarray]) -> UserProfile:
        return build_profile("u", [HistoryEntry(r.id) for r in reads], {r.id: r for r in reads}, np.stack(vectors))

    company = [
        NewsItem("h1", "Apple unveils MacBook Pro", category="tech"),
        NewsItem("h2", "Apple headset gets lighter", category="tech"),
    ]
    tech_reader = profile_of(company, [_unit(1, 0, 0, 0), _unit(1, 0.1, 0, 0)])
    assert "apple" in tech_reader.terms
    chips = _candidate("c", "Apple to use its own modem chips", _unit(1, 0.05, 0, 0), category="tech")
    fruit = _candidate("f", "Apple prices slide at wholesale markets", _unit(0, 0, 0, 1), category="tech")
    request = RerankRequest(query="", profile=tech_reader, now=NOW)
    chips_parts, fruit_parts = LiteReranker().score_components(request, [chips, fruit])
    assert chips_parts["interest"] == pytest.approx(FOR_YOU.interest, abs=0.01)
    assert fruit_parts["interest"] == pytest.approx(0.0, abs=0.005)  # the old code gave it the word's full share
    assert len(tech_reader.term_reads["apple"]) == 2  # the reads that give the word its sense

    themes = [
        NewsItem("a1", "AI spots lung nodules in CT scans", category="tech"),
        NewsItem("a2", "AI drones cut pesticide use on cotton", category="tech"),
        NewsItem("a3", "AI coding assistants cut bug-fix time", category="tech"),
    ]
    ai_reader = profile_of(themes, [_unit(1, 0, 0, 0), _unit(0, 1, 0, 0), _unit(0, 0, 1, 0)])
    travel = _candidate("t", "AI travel agents book whole trips", _unit(0, 0, 0, 1), category="tech")
    (travel_parts,) = LiteReranker().score_components(RerankRequest(query="", profile=ai_reader, now=NOW), [travel])
    assert travel_parts["interest"] == pytest.approx(FOR_YOU.interest * 0.3, abs=0.01)  # TERM_SHARE, in full
