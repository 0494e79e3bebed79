from datetime import datetime, timedelta, timezone

import numpy as np

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
