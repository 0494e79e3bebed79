"""The Newsroom tab's handlers without a browser: form -> rule, the draft and live sets, publish and rollback,
public-Space drafts, tokens, labels, deep links, the feed's rules choice, and every label in both languages."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest
from test_ui import make_dashboard, tiny_corpus

from newsrec.editorial.rules import MAX_POINTS, Rule, RuleSet, Scope
from newsrec.editorial.store import RuleStore, TokenError, VersionConflict
from newsrec.errors import InputError
from newsrec.ui import deeplink, newsroom
from newsrec.ui.i18n import LABELS, t
from newsrec.ui.newsroom import Desk, DeskState, RuleForm
from newsrec.ui.newsroom_labels import LABELS as NEWSROOM_LABELS
from newsrec.ui.state import Controls

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


@pytest.fixture
def corpus_settings(newsrec_home):
    return tiny_corpus()


@pytest.fixture
def desk(corpus_settings, fake_embedder, monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("NEWSREC_EDITOR_TOKEN", raising=False)
    dash = make_dashboard(corpus_settings, fake_embedder)
    return Desk(dash.rec), dash


# --- the form ---------------------------------------------------------------------------------------------


def test_each_kind_shows_only_its_fields():
    assert newsroom.visible_fields("pin") == {"story", "slot"}
    assert newsroom.visible_fields("block", target="label") == {"target", "label"}
    assert newsroom.visible_fields("block", target="publisher") == {"target", "publisher"}
    assert newsroom.visible_fields("boost", on="freshness") == {"on", "weight", "half_life_h"}
    assert newsroom.visible_fields("bury", on="keyword") == {"on", "weight", "keyword"}
    assert newsroom.visible_fields("quota", quota_mode="at_most") == {"quota_mode", "category", "quota_k", "quota_n"}
    assert newsroom.visible_fields("quota", quota_mode="stories") == {"quota_mode", "stories", "quota_m"}
    assert newsroom.visible_fields("reach") == {"story", "reach_p", "reach_k"}
    assert {"seg_tag", "seg_reads", "seg_lang"} <= newsroom.visible_fields("pin", scope="segment")
    assert "readers" in newsroom.visible_fields("pin", scope="readers")
    with pytest.raises(InputError, match="unknown rule kind"):
        newsroom.visible_fields("promote")


FORMS = [
    RuleForm(kind="pin", story="Title (nba-3)", slot=2),
    RuleForm(kind="block", target="label", label="legal", scope="segment", seg_reads="sports", seg_lang="en"),
    RuleForm(kind="block", target="publisher", publisher="Daily"),
    RuleForm(kind="boost", on="category", category="tech", weight=6),
    RuleForm(kind="bury", on="freshness", half_life_h=12, weight=20),
    RuleForm(kind="priority", story="nba-1", level="must-see", scope="readers", readers=["new", "fan"]),
    RuleForm(kind="quota", quota_mode="at_most", category="sports", quota_k=2, quota_n=10),
    RuleForm(kind="quota", quota_mode="at_least", category="finance", quota_m=1),
    RuleForm(kind="quota", quota_mode="stories", stories=["nba-2", "nba-1"], quota_m=1),
    RuleForm(
        kind="reach", story="nba-4", reach_p=60, reach_k=5, valid_from="2026-11-20", valid_until="2026-11-21 06:00"
    ),
]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f"{f.kind}-{f.target}-{f.on}-{f.quota_mode}")
def test_form_makes_the_rule_and_the_rule_fills_the_form_back(form):
    rule = newsroom.rule_from_form(form, RuleSet())
    assert rule.kind == form.kind and rule.id == f"{form.kind}-1"  # a blank id takes the kind's next number
    again = newsroom.rule_from_form(newsroom.form_from_rule(rule), RuleSet())
    assert again == rule  # editing a rule with the form changes nothing until a control changes


def test_form_values_become_the_rules_params():
    pin = newsroom.rule_from_form(FORMS[0], RuleSet())
    assert dict(pin.params) == {"story": "nba-3", "slot": 2}  # the picker's "title (id)" label gives the id
    block = newsroom.rule_from_form(FORMS[1], RuleSet())
    assert dict(block.params) == {"target": "label", "value": "legal"}
    assert block.scope == Scope.parse("segment:reads=sports,lang=en")
    boost = newsroom.rule_from_form(FORMS[3], RuleSet())
    assert boost.points == pytest.approx(6.0)  # the slider is in score points; the rule stores points / MAX_POINTS
    assert dict(newsroom.rule_from_form(FORMS[6], RuleSet()).params) == {"category": "sports", "max": 2, "top": 10}
    reach = newsroom.rule_from_form(FORMS[9], RuleSet())
    assert reach.params["share"] == pytest.approx(0.6) and reach.valid_from.isoformat() == "2026-11-20T00:00:00+00:00"
    taken = RuleSet(rules=(pin,))
    assert newsroom.rule_from_form(FORMS[0], taken).id == "pin-2"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (RuleForm(kind="pin"), "pick a story"),
        (RuleForm(kind="block", target="keyword", keyword="  "), "pick the keyword"),
        (RuleForm(kind="boost", on="category", category="tech", weight=MAX_POINTS + 1), "between 1 and"),
        (RuleForm(kind="pin", story="a", scope="segment"), "segment needs at least one condition"),
        (RuleForm(kind="pin", story="a", scope="readers"), "pick at least one reader"),
        (RuleForm(kind="pin", story="a", valid_from="tomorrow"), "not a date"),
        (RuleForm(kind="pin", story="a", valid_from="2026-11-21", valid_until="2026-11-20"), "after valid_from"),
        (RuleForm(kind="pin", story="a", rule_id="bad id!"), "invalid rule id"),
    ],
)
def test_bad_forms_say_what_to_fix(form, message):
    with pytest.raises(InputError, match=message):
        newsroom.rule_from_form(form, RuleSet())


# --- draft, live, publish, rollback ------------------------------------------------------------------------


def test_save_publish_edit_and_roll_back_through_the_store(desk):
    desk, _ = desk
    state = DeskState()
    view = desk.overview(state)
    assert 'data-live-version="0"' in view.badges and view.versions == [] and view.version is None
    state, message = desk.save(state, RuleForm(kind="pin", story="nba-3", slot=1, author="ed"))
    assert message == "Saved rule pin-1 to the draft."
    assert [r.id for r in RuleStore(desk.rec.settings.home, "tiny").draft().rules] == ["pin-1"]  # in the store
    view = desk.overview(state)
    assert 'data-changed="1"' in view.badges and list(view.draft_rows.iloc[0])[-1] == "new"
    state, message = desk.publish(state, "ed")
    assert message == "Published v1." and state.seen_live == 1
    view = desk.overview(state)
    assert 'data-live-version="1"' in view.badges and 'data-changed="0"' in view.badges
    assert len(view.live_rows) == 1 and view.versions[0][1] == "v1"

    state, _ = desk.save(state, RuleForm(kind="block", target="keyword", keyword="derby"))
    state, _ = desk.remove(state, "pin-1")
    state, message = desk.publish(state, "ed")
    assert message == "Published v2."
    assert [r.id for r in desk.live().rules] == ["block-1"]
    diff = desk.diff_html(state, "v1")  # what rolling back to v1 would change
    assert 'class="added" data-rule="pin-1"' in diff and 'class="removed" data-rule="block-1"' in diff
    state, message = desk.rollback(state, "v1", "chief")
    assert message == "Rolled back: v3 is live, with the rules of v1."
    assert [r.id for r in desk.live().rules] == ["pin-1"] and desk.live().author == "chief"
    assert "No difference." in desk.diff_html(state, "v1")


def test_a_stale_tab_gets_a_version_conflict_and_loses_nothing(desk):
    desk, _ = desk
    mine, theirs = DeskState(), DeskState()
    desk.overview(mine), desk.overview(theirs)  # both tabs show live v0
    theirs, _ = desk.save(theirs, RuleForm(kind="pin", story="nba-3", slot=1))
    theirs, _ = desk.publish(theirs, "them")
    with pytest.raises(VersionConflict, match="version 1 is live now"):
        desk.publish(mine, "me")
    assert [r.id for r in desk.draft(mine).rules] == ["pin-1"]  # the draft is still there
    desk.overview(mine)  # the tab refreshes and sees v1: now it may publish
    assert desk.publish(mine, "me")[1] == "Published v2."


def test_publishing_needs_the_editor_token_when_it_is_set(desk, monkeypatch):
    desk, _ = desk
    monkeypatch.setenv("NEWSREC_EDITOR_TOKEN", "s3cret")
    state, _ = desk.save(DeskState(), RuleForm(kind="pin", story="nba-3", slot=1))
    with pytest.raises(TokenError, match="missing"):
        desk.publish(state, "ed")
    with pytest.raises(TokenError, match="wrong"):
        desk.publish(state, "ed", "guess")
    assert desk.publish(state, "ed", "s3cret")[1] == "Published v1."


def test_on_a_public_space_the_draft_stays_in_the_session(corpus_settings, fake_embedder, monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/newsrec")
    dash = make_dashboard(corpus_settings, fake_embedder)
    desk = Desk(dash.rec)
    state, _ = desk.save(DeskState(), RuleForm(kind="pin", story="nba-3", slot=1))
    other, _ = desk.save(DeskState(), RuleForm(kind="block", target="keyword", keyword="derby"))
    assert [r.id for r in state.draft.rules] == ["pin-1"] and [r.id for r in other.draft.rules] == ["block-1"]
    assert RuleStore(dash.rec.settings.home, "tiny").draft().rules == ()  # nothing reached the store
    with pytest.raises(InputError, match="publishing is off"):
        desk.publish(state, "visitor")
    with pytest.raises(InputError, match="publishing is off"):
        desk.set_labels(state, "nba-3", ["legal"])


def test_labels_are_set_on_a_story_and_offered_in_the_pickers(desk):
    desk, _ = desk
    state, message = desk.set_labels(DeskState(), "nba-3", ["legal", " legal", "under-16"])
    assert message.startswith("Labels of “") and message.endswith(": legal, under-16.")
    assert desk.labels_of("nba-3") == ["legal", "under-16"]
    assert "legal" in desk.choices(state)["labels"]
    with pytest.raises(InputError, match="pick a story"):
        desk.set_labels(state, "nope", ["legal"])


# --- the feed applies the rules ------------------------------------------------------------------------------


def test_the_feed_applies_the_draft_or_live_set_and_says_so_on_the_card(desk):
    desk, dash = desk
    session, _ = dash.select_user("fan")
    plain, _ = dash.run(session, "", Controls(k=5, candidates=20, rules="draft"))
    shown = [r.item.id for r in plain.result.reranked]
    story = next(i for i in sorted(dash.rec.corpus.news) if i not in shown and i not in {"battery-0", "nba-0", "nba-1"})
    state, _ = desk.save(DeskState(), RuleForm(kind="pin", story=story, slot=2))
    session, view = dash.run(session, "", Controls(k=5, candidates=20, rules="draft"))
    pinned = session.result.reranked[1]
    assert pinned.item.id == story and [e.rule_id for e in pinned.rules] == ["pin-1"]
    assert f'data-news-id="{story}" data-rank="2"' in view.results
    assert "Pinned at slot 2 by the editors (rule pin-1)." in view.results
    live, _ = dash.run(session, "", Controls(k=5, candidates=20, rules="live"))  # nothing published yet
    assert [r.item.id for r in live.result.reranked] == shown
    desk.publish(state, "ed")
    live, _ = dash.run(session, "", Controls(k=5, candidates=20, rules="live"))
    assert live.result.reranked[1].item.id == story
    none, _ = dash.run(session, "", Controls(k=5, candidates=20, rules="none"))
    assert [r.item.id for r in none.result.reranked] == shown


def test_a_session_draft_reaches_only_that_sessions_feed(desk):
    desk, dash = desk
    session, _ = dash.select_user("fan")
    rule = Rule("b1", "block", params={"target": "keyword", "value": "nba"})
    plain, _ = dash.run(session, "", Controls(k=5, candidates=20, rules="draft"))
    assert any("nba" in r.item.text.lower() for r in plain.result.reranked)
    own = type(session)(user_id="fan", draft=RuleSet(rules=(rule,)))
    edited, _ = dash.run(own, "", Controls(k=5, candidates=20, rules="draft"))
    assert not any("nba" in r.item.text.lower() for r in edited.result.reranked)


# --- deep links and labels ------------------------------------------------------------------------------------


def test_newsroom_deep_link_round_trip_and_bad_values_fall_back():
    wanted = newsroom.parse_link({"tab": "newsroom", "rules": "v3", "panel": "segment:reads=sports,lang=zh",
                                  "compare": "reranked:retrieval"})  # fmt: skip
    assert (wanted.tab, wanted.version, wanted.panel, wanted.compare) == (
        "newsroom", 3, "segment:reads=sports,lang=zh", "reranked:retrieval")  # fmt: skip
    query = newsroom.link_query(wanted)
    assert query == "?tab=newsroom&rules=v3&panel=segment%3Areads%3Dsports%2Clang%3Dzh&compare=reranked%3Aretrieval"
    from starlette.datastructures import QueryParams

    assert newsroom.parse_link(QueryParams(query[1:])) == wanted
    bad = newsroom.parse_link({"tab": "x", "rules": "v0", "panel": "sample:-2", "compare": "a:b"})
    assert bad == newsroom.NewsroomLink()
    assert newsroom.parse_link({"panel": "sample:200"}).panel == "sample:200"
    assert newsroom.link_query(newsroom.NewsroomLink()) == "?tab=newsroom"


def test_the_feeds_rules_choice_travels_in_the_main_deep_link():
    defaults = Controls()
    state = deeplink.LinkState("u01", "", "en", Controls(rules="draft"))
    assert deeplink.to_query(state, defaults) == "?user=u01&rules=draft"
    assert deeplink.parse({"rules": "draft"}, defaults).controls.rules == "draft"
    assert deeplink.parse({"rules": "v3"}, defaults).controls.rules == "live"  # a version is the Newsroom's


def test_every_newsroom_label_is_in_both_languages():
    assert set(NEWSROOM_LABELS) <= set(LABELS)
    for key, entry in NEWSROOM_LABELS.items():
        assert entry["en"] and entry["zh"], key
        assert CJK.search(entry["zh"]), key
    form_keys = {f"kind_{k}" for k in newsroom.KINDS} | {f"level_{x}" for x in newsroom.LEVELS}
    form_keys |= {f"quota_{q}" for q in newsroom.QUOTA_MODES} | {f"scope_{s}" for s in newsroom.SCOPES}
    form_keys |= {f"on_{o}" for o in (*newsroom.BLOCK_TARGETS, *newsroom.BOOST_ON)}
    assert form_keys <= set(NEWSROOM_LABELS)
    assert t("nr_weight", "zh", max=20) == "权重（分数点，最多为 0–100 匹配度中的 20 点）"


def test_rule_table_says_what_each_rule_does_in_both_languages(desk):
    desk, _ = desk
    state, _ = desk.save(DeskState(), RuleForm(kind="quota", quota_mode="at_most", category="sports", quota_k=2,
                                               quota_n=10, scope="segment", seg_lang="zh"))  # fmt: skip
    en, zh = desk.overview(state, "en").draft_rows, desk.overview(state, "zh").draft_rows
    assert list(en.columns)[:3] == ["id", "kind", "what"] and list(zh.columns)[:3] == ["编号", "类型", "内容"]
    assert en.iloc[0, 2] == "quota: ≤ 2 × sports / top 10" and zh.iloc[0, 1] == "配额"
    assert zh.iloc[0, 3] == "读者语言=zh" and en.iloc[0, 4] == "always" and zh.iloc[0, 4] == "长期"
    assert {f.name for f in fields(RuleForm)} >= set(newsroom.FORM_FIELDS)


# --- the what-if preview -------------------------------------------------------------------------------------


def test_preview_shows_who_loses_a_blocked_story_with_charts_tables_and_exports(desk):
    desk, _ = desk
    state, _ = desk.save(DeskState(), RuleForm(kind="block", target="keyword", keyword="nba"))
    state, shown = desk.preview(state, "personas", "draft:live", k=5)
    readers = shown.per_reader
    assert list(readers["reader"]) == ["Fan"]  # the panel: readers with a persona
    fan = readers.iloc[0]
    assert fan["# left"] >= 1 and "nba" in fan["left"].lower() and "nba" not in fan["entered"].lower()
    assert 0 <= fan["Jaccard@k"] < 1
    stories = shown.per_story
    nba = stories[stories["story"].str.contains("nba", case=False)]
    assert len(nba) and (nba["reach % (draft)"] == 0).all() and (nba["reach % (live)"] == 100).all()
    assert len(shown.figures) == 4 and all(fig.layout.title.text for fig in shown.figures)
    assert "Fan" not in shown.summary and "1 readers · 1 with a different feed" in shown.summary
    names = sorted(p.rsplit("/", 1)[1] for p in shown.csv_files)
    assert names == ["exposure.csv", "readers.csv", "stories.csv", "summary.csv"]
    from pathlib import Path

    page = Path(shown.html_file).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script src=" not in page  # self-contained
    assert state.link == "?tab=newsroom"  # personas and draft:live are the defaults
    zh = desk.render(state.report, "zh")
    assert list(zh.per_reader.columns)[:3] == ["读者", "新进入", "移出"] and "线上 → 草稿" in zh.summary
    assert {trace.name for trace in zh.figures[0].data} == {"线上", "草稿"}  # the charts name the sides in zh too


def test_preview_compares_reranked_with_retrieval_and_rejects_bad_panels(desk):
    desk, _ = desk
    state, shown = desk.preview(DeskState(), "sample:2", "reranked:retrieval", k=5)
    assert len(shown.per_reader) == 2 and "retrieval only" in shown.summary
    assert state.link == "?tab=newsroom&panel=sample%3A2&compare=reranked%3Aretrieval"
    with pytest.raises(InputError, match="unknown panel"):
        desk.preview(DeskState(), "everyone", "draft:live")
    with pytest.raises(InputError, match="give X:Y"):
        desk.preview(DeskState(), "personas", "draft:tomorrow")
