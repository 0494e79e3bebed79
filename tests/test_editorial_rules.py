"""Editorial rules are exact: on the ten demo personas (the real lite pipeline) and on 1,000 NeMig-en readers."""

from __future__ import annotations

import collections
import json
import math
import shutil
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from newsrec.cli import main
from newsrec.config import Settings
from newsrec.editorial import Reader, Rule, RuleSet, RuleStore, Scope, apply_rules, plan_reach, reader_from
from newsrec.editorial.feed import EditorialFeeds
from newsrec.editorial.store import labelled_news
from newsrec.pipeline import Recommender
from newsrec.types import Recommendation
from newsrec.ui import reasons

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
K = 10


def rules(*rows: dict) -> RuleSet:
    return RuleSet(rules=tuple(Rule.from_dict(row) for row in rows))


def ids(feed) -> list[str]:
    return [rec.item.id for rec in feed.items]


# --- the ten personas through the real pipeline ---------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    settings = Settings.from_env(home=tmp_path_factory.mktemp("home"), embedder="lite", reranker="lite")
    rec = Recommender.from_settings(settings)
    users = sorted(rec.corpus.users)
    ranked = {u: rec.recommend(u, k=50).reranked for u in users}
    readers = {u: reader_from(rec.corpus.users[u], rec.profile(u), rec.corpus.news) for u in users}
    return rec, ranked, readers


def feeds(demo, ruleset, news=None, plan=None, now=NOW) -> dict:
    rec, ranked, readers = demo
    return {
        u: apply_rules(
            ruleset, ranked[u], reader=readers[u], news=news or rec.corpus.news, k=K, now=now, reach_plan=plan
        )
        for u in ranked
    }


@pytest.fixture
def no_rules(demo):
    """No rule set on disk before and after the test (the module shares one NEWSREC_HOME)."""
    folder = demo[0].settings.home / "editorial"
    shutil.rmtree(folder, ignore_errors=True)
    yield
    shutil.rmtree(folder, ignore_errors=True)


def test_readers_carry_persona_tags_and_languages(demo):
    _, _, readers = demo
    assert "farmer" in readers["u07"].tags and readers["u07"].language == "zh"
    assert readers["u01"].language == "en" and "sports" in readers["u02"].categories
    assert Scope.parse("segment:tag=zh-reader").matches(readers["u05"])
    assert not Scope.parse("segment:tag=zh-reader,reads=sports").matches(readers["u05"])


def test_pin_is_at_its_slot_in_scope_and_nowhere_else(demo):
    rec, ranked, readers = demo
    plain = feeds(demo, None)
    scope = "segment:tag=zh-reader"
    story = "n120"
    assert all(story not in ids(plain[u]) for u in plain)  # nobody gets it without the pin
    edited = feeds(demo, rules({"id": "P1", "kind": "pin", "scope": scope, "params": {"story": story, "slot": 2}}))
    in_scope = [u for u in readers if Scope.parse(scope).matches(readers[u])]
    assert 3 <= len(in_scope) < len(readers)
    for u, feed in edited.items():
        if u in in_scope:
            assert ids(feed)[1] == story and len(feed.items) == K
            card = feed.items[1]
            assert [e.detail for e in card.rules] == ["pinned at 2"] and card.rank == 2
            assert any("固定在第 2 位" in line for line in reasons.why(card, "zh"))
            assert card.explanation.startswith("Editors: pinned at 2")
            assert [r.rank for r in feed.items] == list(range(1, K + 1))
            assert ids(feed)[:1] + ids(feed)[2:] == [i for i in ids(plain[u]) if i != story][: K - 1]
        else:
            assert ids(feed) == ids(plain[u]) and not any(card.rules for card in feed.items)


def test_must_see_pin_for_all_readers(demo):
    edited = feeds(
        demo,
        rules(
            {"id": "M1", "kind": "priority", "params": {"story": "n050", "level": "must-see"}},
            {"id": "P0", "kind": "pin", "params": {"story": "n050", "slot": 1}},
        ),
    )
    assert all(ids(feed)[0] == "n050" for feed in edited.values())
    soft = feeds(demo, rules({"id": "M1", "kind": "priority", "params": {"story": "n050", "level": "must-see"}}))
    plain = feeds(demo, None)
    for u, feed in soft.items():  # a soft pin: at slot 3 or higher, never lower
        assert "n050" in ids(feed)[:3]
        if "n050" in ids(plain[u])[:3]:
            assert ids(feed) == ids(plain[u])


def test_blocked_label_never_appears_in_scope_and_is_backfilled(demo):
    rec, ranked, readers = demo
    plain = feeds(demo, None)
    labelled = {i for feed in plain.values() for i in ids(feed)[:3]}  # stories every feed would show near the top
    news = labelled_news(rec.corpus.news, {i: ["graphic"] for i in labelled})
    scope = Scope.parse("segment:lang=en")
    edited = feeds(
        demo,
        rules({"id": "B1", "kind": "block", "scope": str(scope), "params": {"target": "label", "value": "graphic"}}),
        news,
    )
    for u, feed in edited.items():
        if scope.matches(readers[u]):
            assert not labelled & set(ids(feed)) and len(feed.items) == K
            assert feed.blocked == len(labelled & set(ids(plain[u]))) > 0
            assert "blocked by editorial rules" in feed.notice
        else:
            assert ids(feed) == ids(plain[u]) and feed.blocked == 0


def test_block_publisher_and_keyword(demo):
    rec, _, _ = demo
    edited = feeds(
        demo,
        rules(
            {"id": "B1", "kind": "block", "params": {"target": "publisher", "value": "Pacific Wire"}},
            {"id": "B2", "kind": "block", "params": {"target": "keyword", "value": "苹果"}},
        ),
    )
    for feed in edited.values():
        for card in feed.items:
            assert card.item.source != "Pacific Wire" and "苹果" not in card.item.text


def test_sports_cap_and_category_minimum_hold_in_every_feed(demo):
    plain = feeds(demo, None)
    assert max(sum(c.item.category == "sports" for c in f.items) for f in plain.values()) > 2  # the cap must act
    capped = feeds(demo, rules({"id": "Q1", "kind": "quota", "params": {"category": "sports", "max": 2}}))
    for u, feed in capped.items():
        assert sum(c.item.category == "sports" for c in feed.items) <= 2 and len(feed.items) == K
        if sum(c.item.category == "sports" for c in plain[u].items) > 2:
            assert any(e.detail == "swapped in for quota Q1" for c in feed.items for e in c.rules)
    least = feeds(demo, rules({"id": "Q2", "kind": "quota", "params": {"category": "science", "min": 2, "top": 5}}))
    for u, feed in least.items():
        shown = sum(c.item.category == "science" for c in feed.items[:5])
        assert shown >= 2 or any("Quota Q2" in n for n in feed.notices), u


def test_boost_shows_its_points_on_the_card(demo):
    plain = feeds(demo, None)
    boosted = feeds(
        demo, rules({"id": "U1", "kind": "boost", "params": {"target": "category", "value": "travel", "weight": 0.5}})
    )
    rec, ranked, _ = demo
    before = {c.item.id: c.score for c in ranked["u04"]}
    for card in boosted["u04"].items:
        if card.item.category == "travel":
            assert [e.points for e in card.rules] == [10.0]
            assert card.score == pytest.approx(before[card.item.id] + 0.10)
            assert card.contributions["editor"] == pytest.approx(0.10)
            assert sum(card.contributions.values()) == pytest.approx(card.score)
    travel = lambda f: sum(c.item.category == "travel" for c in f.items)  # noqa: E731
    assert sum(travel(f) for f in boosted.values()) > sum(travel(f) for f in plain.values())


def test_expired_and_future_rules_have_no_effect(demo):
    plain = feeds(demo, None)
    window = [
        {"valid_until": (NOW - timedelta(hours=1)).isoformat()},
        {"valid_from": (NOW + timedelta(hours=1)).isoformat()},
    ]
    for extra in window:
        edited = feeds(
            demo,
            rules(
                {"id": "P1", "kind": "pin", "params": {"story": "n120", "slot": 1}, **extra},
                {"id": "B1", "kind": "block", "params": {"target": "publisher", "value": "Pacific Wire"}, **extra},
            ),
        )
        assert all(edited[u].items == plain[u].items for u in plain)
    live = feeds(
        demo,
        rules({"id": "P1", "kind": "pin", "params": {"story": "n120", "slot": 1}, **window[0]}),
        now=NOW - timedelta(hours=2),
    )
    assert all(ids(f)[0] == "n120" for f in live.values())  # the same rule inside its window acts


def test_reach_target_met_or_shortfall_explained(demo):
    rec, ranked, readers = demo
    story = "n100"
    ruleset = rules({"id": "R1", "kind": "reach", "params": {"story": story, "top": 5, "share": 0.6}})
    plan = plan_reach(ruleset, ranked, readers, k=K, now=NOW)
    outcome = plan.outcomes["R1"]
    assert outcome.met and outcome.needed == 6 and outcome.why == ""
    edited = feeds(demo, ruleset, plan=plan)
    reached = [u for u, f in edited.items() if story in ids(f)[:5]]
    assert len(reached) >= 6
    placed = set(plan.placements["R1"])
    position = {u: next((i for i, c in enumerate(ranked[u]) if c.item.id == story), 99) for u in ranked}
    others = [u for u in ranked if u not in placed and position[u] >= 5]
    assert all(position[u] <= position[o] for u in placed for o in others)  # the readers who rank it highest
    blocked = rules(
        {"id": "R1", "kind": "reach", "params": {"story": story, "top": 5, "share": 1.0}},
        {"id": "B1", "kind": "block", "scope": "segment:tag=zh-reader", "params": {"target": "story", "value": story}},
    )
    short = plan_reach(blocked, ranked, readers, k=K, now=NOW).outcomes["R1"]
    assert not short.met and "blocked for" in short.why and short.achieved < 1.0


def test_no_rules_gives_the_same_objects(demo):
    rec, ranked, readers = demo
    for ruleset in (
        None,
        RuleSet(),
        rules({"id": "P1", "kind": "pin", "scope": "readers:nobody", "params": {"story": "n1", "slot": 1}}),
    ):
        for u in ranked:
            feed = apply_rules(ruleset, ranked[u], reader=readers[u], news=rec.corpus.news, k=K, now=NOW)
            assert feed.items == ranked[u][:K] and all(a is b for a, b in zip(feed.items, ranked[u][:K], strict=True))


def _json_without_timings(capsys) -> dict:
    payload = json.loads(capsys.readouterr().out)
    payload.pop("timings_ms")
    return payload


def test_recommend_json_byte_identical_without_rules(demo, no_rules, capsys, monkeypatch):
    rec = demo[0]
    monkeypatch.setattr(Recommender, "from_settings", classmethod(lambda cls, *a, **kw: rec))  # the CLI's own path
    home = rec.settings.home
    outputs = {}
    for user in ("u02", "u07", "guest"):
        for flags in ([], ["--rules", "none"]):
            assert main(["recommend", "--user", user, "--json", *flags]) == 0
            outputs[user, tuple(flags)] = _json_without_timings(capsys)
        assert outputs[user, ()] == outputs[user, ("--rules", "none")]
        assert "rules" not in json.dumps(outputs[user, ()]["reranked"])
    RuleStore(home, "demo").publish("ana", 0, ruleset=RuleSet())  # an empty live set changes nothing either
    assert main(["recommend", "--user", "u02", "--json"]) == 0
    assert _json_without_timings(capsys) == outputs["u02", ()]
    RuleStore(home, "demo").publish(
        "ana", 1, ruleset=rules({"id": "P1", "kind": "pin", "params": {"story": "n120", "slot": 2}})
    )
    assert main(["recommend", "--user", "u02", "--json"]) == 0
    pinned = _json_without_timings(capsys)
    assert pinned["reranked"][1]["id"] == "n120" and pinned["reranked"][1]["rules"][0]["detail"] == "pinned at 2"
    assert main(["recommend", "--user", "u02", "--json", "--rules", "none"]) == 0
    assert _json_without_timings(capsys) == outputs["u02", ()]


def test_feed_glue_reads_a_new_live_version_without_restart(demo, no_rules):
    rec, _, _ = demo
    feeds_ = EditorialFeeds(rec, "live")
    plain = [c.item.id for c in feeds_.recommend("u03", k=K).reranked]
    RuleStore(rec.settings.home, "demo").publish(
        "ana", 0, ruleset=rules({"id": "P1", "kind": "pin", "params": {"story": "n120", "slot": 1}})
    )
    result = feeds_.recommend("u03", k=K)
    assert result.reranked[0].item.id == "n120" and len(result.reranked) == K and "rules" in result.timings_ms
    assert [c.item.id for c in result.reranked[1:]] == [i for i in plain if i != "n120"][: K - 1]


# --- 1,000 NeMig-en readers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nemig_panel():
    """1,000 real readers of NeMig-en with cheap deep lists: stories ranked by how often the log's histories hold
    them (never the click labels), readers' own categories first, read stories left out."""
    from tests.conftest import SHARED

    folder = SHARED / "data" / "nemig-en"
    if not (folder / "behaviors.tsv").is_file():
        pytest.skip(f"{folder} is absent: this test reads the real NeMig-en log in ../shared")
    from newsrec.evaluation.offline import load_mind_log

    log = load_mind_log(folder / "news.tsv", folder / "behaviors.tsv")
    popularity = collections.Counter(i for imp in log.impressions for i in set(imp.history))
    popular = [i for i, _ in sorted(popularity.items(), key=lambda kv: (-kv[1], kv[0]))[:1500] if i in log.news]
    history: dict[str, set[str]] = collections.defaultdict(set)
    for imp in log.impressions:
        history[imp.user_id] |= set(imp.history)
    users = sorted(history)[:1000]
    categories = sorted({log.news[i].category for i in popular})
    column = np.array([categories.index(log.news[i].category) for i in popular])
    weight = np.array([popularity[i] for i in popular], dtype=float)
    ranked, readers = {}, {}
    for user in users:
        cats = collections.Counter(log.news[i].category for i in history[user] if i in log.news)
        share = np.array([cats.get(c, 0) for c in categories], dtype=float) / max(1, cats.total())
        score = weight * (1 + share[column])
        score[[n for n, i in enumerate(popular) if i in history[user]]] = -1.0  # read: never recommended
        order = np.lexsort((np.arange(len(popular)), -score))[:200]
        ranked[user] = [
            Recommendation(item=log.news[popular[n]], score=1.0 / r, rank=r, retrieval_score=0.0, retrieval_rank=r)
            for r, n in enumerate(order, 1)
            if score[n] >= 0
        ]
        readers[user] = Reader(
            user, (), tuple(sorted(cats, key=lambda c: (-cats[c], c))), "en", frozenset(history[user])
        )
    return log, ranked, readers


def test_nemig_panel_rules_are_exact(nemig_panel):
    log, ranked, readers = nemig_panel
    assert len(readers) == 1000
    big = "border_said_biden_president"
    plain = {u: apply_rules(None, ranked[u], reader=readers[u], news=log.news, k=K, now=NOW) for u in ranked}
    cap_before = max(sum(c.item.category == big for c in f.items) for f in plain.values())
    assert cap_before > 3
    pin_story = next(i for i in sorted(log.news) if all(i not in ids(f) for f in plain.values()))
    label_stories = {c.item.id for f in list(plain.values())[:50] for c in f.items[:2]}
    news = labelled_news(log.news, {i: ["legal"] for i in label_stories})
    publisher = collections.Counter(c.item.source for f in plain.values() for c in f.items).most_common(1)[0][0]
    reach_story = ranked[sorted(ranked)[0]][30].item.id
    ruleset = rules(
        {
            "id": "P1",
            "kind": "pin",
            "scope": "segment:reads=ukraine_russian_said_ukrainian",
            "params": {"story": pin_story, "slot": 3},
        },
        {"id": "B1", "kind": "block", "scope": f"segment:reads={big}", "params": {"target": "label", "value": "legal"}},
        {"id": "B2", "kind": "block", "params": {"target": "publisher", "value": publisher}},
        {"id": "Q1", "kind": "quota", "params": {"category": big, "max": 3}},
        {"id": "R1", "kind": "reach", "params": {"story": reach_story, "top": K, "share": 0.25}},
        {"id": "X1", "kind": "pin", "params": {"story": pin_story, "slot": 1}, "valid_until": "2020-01-01T00:00:00Z"},
    )
    plan = plan_reach(ruleset, ranked, readers, k=K, now=NOW)
    edited = {
        u: apply_rules(ruleset, ranked[u], reader=readers[u], news=news, k=K, now=NOW, reach_plan=plan) for u in ranked
    }
    pin_scope, block_scope = (
        Scope.parse("segment:reads=ukraine_russian_said_ukrainian"),
        Scope.parse(f"segment:reads={big}"),
    )
    assert 0 < sum(pin_scope.matches(r) for r in readers.values()) < 1000
    for u, feed in edited.items():
        shown = ids(feed)
        assert len(shown) == K or any(n.startswith(f"Only {len(shown)} stories are left") for n in feed.notices)
        if pin_scope.matches(readers[u]):
            assert shown[2] == pin_story if len(shown) == K else pin_story in shown  # short: stories ran out above it
        else:
            assert pin_story not in shown  # the expired X1 pin for everyone does nothing
        if block_scope.matches(readers[u]):
            assert not label_stories & set(shown)
        assert all(c.item.source != publisher for c in feed.items)
        assert sum(c.item.category == big for c in feed.items) <= 3
        if len(shown) < K:  # a short feed only when the deep list holds nothing more the rules allow
            allowed = {
                c.item.id
                for c in ranked[u]
                if c.item.source != publisher
                and c.item.category != big
                and not (block_scope.matches(readers[u]) and c.item.id in label_stories)
            }
            assert allowed <= set(shown)
    assert sum(len(f.items) == K for f in edited.values()) > 500
    outcome = plan.outcomes["R1"]
    reached = sum(reach_story in ids(f) for f in edited.values())
    assert reached >= outcome.needed == math.ceil(0.25 * 1000) or (not outcome.met and outcome.why)
    assert reached >= 250


def test_nemig_reach_shortfall_is_explained(nemig_panel):
    log, ranked, readers = nemig_panel
    story = ranked[sorted(ranked)[0]][0].item.id
    read_by = sum(story in r.read_ids for r in readers.values())
    ruleset = rules(
        {"id": "R1", "kind": "reach", "params": {"story": story, "top": 5, "share": 1.0}},
        {
            "id": "B1",
            "kind": "block",
            "scope": "readers:" + ",".join(sorted(readers)[:100]),
            "params": {"target": "story", "value": story},
        },
    )
    outcome = plan_reach(ruleset, ranked, readers, k=K, now=NOW).outcomes["R1"]
    assert not outcome.met and "blocked for 100" in outcome.why
    assert outcome.eligible == 1000 - 100 - sum(story in readers[u].read_ids for u in sorted(readers)[100:])
    if read_by:
        assert "already read by" in outcome.why
    assert replace(outcome, placed=outcome.needed).met  # the arithmetic the report rests on
