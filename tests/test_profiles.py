from datetime import datetime, timedelta, timezone

import numpy as np

from newsrec.profiles import apply_feedback, build_profile, recency_weights
from newsrec.types import HistoryEntry, NewsItem

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)


def _unit(*values):
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def _history(news, days_ago):
    return [HistoryEntry(news_id, NOW - timedelta(days=d)) for news_id, d in zip(news, days_ago, strict=True)]


NEWS = {
    "b1": NewsItem("b1", "Solid-state battery hits 500 Wh/kg", category="autos"),
    "b2": NewsItem("b2", "Battery factory doubles solid-state output", category="autos"),
    "b3": NewsItem("b3", "Sodium-ion battery for cheap EVs", category="autos"),
    "n1": NewsItem("n1", "Lakers beat Warriors as LeBron scores 40", category="sports"),
    "n2": NewsItem("n2", "Curry leads Warriors past Lakers", category="sports"),
}
VECTORS = {
    "b1": _unit(1, 0.1, 0),
    "b2": _unit(1, 0.2, 0),
    "b3": _unit(0.9, 0, 0.2),
    "n1": _unit(0, 0.1, 1),
    "n2": _unit(0.1, 0, 1),
}


def _profile(ids, days_ago):
    history = _history(ids, days_ago)
    return build_profile("u", history, NEWS, np.stack([VECTORS[i] for i in ids]), now=NOW)


def test_recency_weights_decay_with_age_and_fall_back_to_position():
    weights = recency_weights(_history(["b1", "b2"], [28, 0]), NEWS, NOW)
    assert weights[1] == 1.0 and abs(weights[0] - 0.25) < 1e-9  # two half-lives old
    untimed = recency_weights([HistoryEntry("b1"), HistoryEntry("b2"), HistoryEntry("b3")], {}, NOW)
    assert untimed[2] == 1.0 and untimed[0] < untimed[1] < untimed[2]


def test_two_topics_give_two_interests_with_their_own_items():
    profile = _profile(["b1", "n1", "b2", "n2", "b3"], [10, 9, 3, 2, 1])
    assert len(profile.interests) == 2
    groups = [set(interest.news_ids) for interest in profile.interests]
    assert {"b1", "b2", "b3"} in groups and {"n1", "n2"} in groups
    assert abs(sum(interest.weight for interest in profile.interests) - 1) < 1e-6
    assert profile.interests[0].weight > profile.interests[1].weight  # three battery reads outweigh two NBA reads
    for interest in profile.interests:
        assert abs(np.linalg.norm(interest.vector) - 1) < 1e-5
    assert set(profile.categories) == {"autos", "sports"} and abs(sum(profile.categories.values()) - 1) < 1e-6
    assert "battery" in profile.keywords
    assert "autos" in profile.summary and "Recently read" in profile.summary
    assert profile.read_ids == {"b1", "b2", "b3", "n1", "n2"}


def test_recent_reads_weigh_more_than_old_ones():
    recent_battery = _profile(["n1", "n2", "b1", "b2"], [30, 29, 1, 0])
    recent_nba = _profile(["b1", "b2", "n1", "n2"], [30, 29, 1, 0])
    assert recent_battery.categories["autos"] > 0.8 and recent_nba.categories["sports"] > 0.8


def test_empty_history_gives_an_empty_profile_not_an_error():
    profile = build_profile("new", [], NEWS, np.zeros((0, 3)), now=NOW)
    assert profile.interests == [] and profile.summary


def test_feedback_moves_the_nearest_interest_and_never_mutates_the_original():
    profile = _profile(["b1", "n1", "b2", "n2"], [4, 3, 2, 1])
    before = {interest.label: interest.vector.copy() for interest in profile.interests}
    item = NewsItem("b9", "New battery chemistry", category="autos")
    liked = apply_feedback(profile, item, _unit(1, 0, 0.1), liked=True)
    assert "b9" in liked.liked_ids and "b9" in liked.read_ids
    battery = next(i for i in liked.interests if "b9" in i.news_ids)
    assert battery.vector @ _unit(1, 0, 0.1) > max(v @ _unit(1, 0, 0.1) for v in before.values())
    assert {interest.label: interest.vector.tolist() for interest in profile.interests} == {
        k: v.tolist() for k, v in before.items()
    }
    assert "b9" not in profile.read_ids


def test_feedback_on_a_new_topic_starts_a_new_interest():
    profile = _profile(["b1", "b2"], [2, 1])
    liked = apply_feedback(profile, NewsItem("t1", "Travel to Kyoto"), _unit(0, 1, 0), liked=True)
    assert len(liked.interests) == len(profile.interests) + 1


def test_not_interested_excludes_the_item_and_records_the_direction():
    profile = _profile(["b1", "b2"], [2, 1])
    disliked = apply_feedback(profile, NEWS["n1"], VECTORS["n1"], liked=False)
    assert "n1" in disliked.read_ids and disliked.disliked_ids == ["n1"]
    assert len(disliked.avoid) == 1 and profile.avoid == []
    assert disliked.fingerprint() != profile.fingerprint()


def test_repeated_title_words_need_two_reads_and_a_dislike_drops_its_words():
    profile = _profile(["b1", "b2", "b3", "n1", "n2"], [5, 4, 3, 2, 1])
    assert {"battery", "solid", "state", "lakers", "warriors"} <= set(profile.terms)
    assert "sodium" not in profile.terms and "curry" not in profile.terms  # one read each
    disliked = apply_feedback(profile, NEWS["n1"], VECTORS["n1"], liked=False)
    assert "lakers" not in disliked.terms and "warriors" not in disliked.terms
    assert "battery" in disliked.terms and "lakers" in profile.terms  # the original stays untouched
