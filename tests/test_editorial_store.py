"""Versioned rule sets on disk: publish, conflicts, rollback, the editor token, corrupt files, the CLI."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from newsrec.cli import main
from newsrec.editorial import Rule, RuleSet, RuleStore, TokenError, VersionConflict, load_rules
from newsrec.errors import InputError

PIN = {"id": "P1", "kind": "pin", "params": {"story": "n001", "slot": 1}}
CAP = {"id": "Q1", "kind": "quota", "params": {"category": "sports", "max": 2}}


def _set(*rows: dict) -> RuleSet:
    return RuleSet(rules=tuple(Rule.from_dict(row) for row in rows))


def test_draft_publish_versions_and_diff(newsrec_home: Path):
    store = RuleStore(newsrec_home, "demo")
    assert store.live() is None and store.draft().rules == ()
    store.save_draft(_set(PIN))
    first = store.publish("ana", 0)
    assert first.version == 1 and store.live_version() == 1 and store.live().rules == first.rules
    store.save_draft(store.draft().with_rule(Rule.from_dict(CAP)).without("P1"))
    second = store.publish("bo")
    assert second.version == 2 and [r.id for r in store.live().rules] == ["Q1"]
    rows = store.versions()
    assert [(r["version"], r["author"]) for r in rows] == [(1, "ana"), (2, "bo")]
    assert rows[1]["diff"] == {"added": ["Q1"], "removed": ["P1"], "changed": []}
    assert store.diff(1, 2)["added"] == ["Q1"]
    assert load_rules(newsrec_home, "demo", "none") is None
    assert [r.id for r in load_rules(newsrec_home, "demo", "live").rules] == ["Q1"]


def test_publish_conflict_names_both_versions_and_loses_nothing(newsrec_home: Path):
    store = RuleStore(newsrec_home, "demo")
    mine, theirs = _set(PIN), _set(CAP)
    store.publish("ana", 0, ruleset=mine)
    with pytest.raises(VersionConflict) as error:
        store.publish("bo", 0, ruleset=theirs)
    assert "expected live version 0" in str(error.value) and "version 1 is live" in str(error.value)
    assert store.live_version() == 1 and [r.id for r in store.live().rules] == ["P1"]
    rejected = list((store.root / "rejected").glob("*-bo.json"))
    assert len(rejected) == 1 and [r.id for r in RuleSet.from_json(rejected[0].read_text()).rules] == ["Q1"]
    assert store.publish("bo", 1, ruleset=theirs).version == 2  # after review, on top of version 1
    assert [r["version"] for r in store.versions()] == [1, 2]


def _publish_at_once(home: str, author: str, rule: dict, barrier, results) -> None:
    store = RuleStore(home, "demo")
    barrier.wait()
    try:
        results[author] = f"ok {store.publish(author, 0, ruleset=_set(rule)).version}"
    except VersionConflict as error:
        results[author] = f"conflict {error}"


def test_two_processes_publishing_at_once(newsrec_home: Path):
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier, results = manager.Barrier(2), manager.dict()
        workers = [
            context.Process(target=_publish_at_once, args=(str(newsrec_home), name, rule, barrier, results))
            for name, rule in (("ana", PIN), ("bo", CAP))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        outcome = dict(results)
    assert sorted(v.split()[0] for v in outcome.values()) == ["conflict", "ok"], outcome
    winner = next(name for name, v in outcome.items() if v.startswith("ok"))
    loser = next(name for name in outcome if name != winner)
    store = RuleStore(newsrec_home, "demo")
    assert [r["version"] for r in store.versions()] == [1] and store.versions()[0]["author"] == winner
    assert "expected live version 0" in outcome[loser] and "version 1 is live" in outcome[loser]
    assert len(list((store.root / "rejected").glob(f"*-{loser}.json"))) == 1  # the loser's rules are kept


def test_rollback_restores_as_a_new_version(newsrec_home: Path):
    store = RuleStore(newsrec_home, "demo")
    store.publish("ana", 0, ruleset=_set(PIN))
    store.publish("ana", 1, ruleset=_set(CAP))
    restored = store.rollback(1, "bo")
    assert restored.version == 3 and store.live_version() == 3
    assert store.live().rules == store.version(1).rules and store.draft().rules == store.version(1).rules
    assert store.versions()[-1]["diff"] == {"added": ["P1"], "removed": ["Q1"], "changed": []}
    assert store.version(2).rules[0].id == "Q1"  # history is never rewritten


def test_token_required_when_set(newsrec_home: Path, monkeypatch):
    monkeypatch.setenv("NEWSREC_EDITOR_TOKEN", "s3cret")
    store = RuleStore(newsrec_home, "demo")
    store.save_draft(_set(PIN))
    for given in (None, "wrong"):
        with pytest.raises(TokenError, match="editor token"):
            store.publish("ana", 0, token=given)
    with pytest.raises(TokenError):
        store.rollback(1, "ana", token=None)
    assert store.live_version() == 0
    assert store.publish("ana", 0, token="s3cret").version == 1


def test_corrupt_files_name_the_file(newsrec_home: Path, capsys):
    store = RuleStore(newsrec_home, "demo")
    store.save_draft(_set(PIN))
    (store.root / "draft.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="draft.json is corrupt"):
        store.draft()
    assert main(["rules", "list", "--corpus", "demo"]) == 2
    assert "draft.json is corrupt" in capsys.readouterr().err
    (store.root / "LIVE").write_text("three\n", encoding="utf-8")
    with pytest.raises(InputError, match="LIVE is corrupt"):
        store.live()


def test_bad_rules_are_refused_with_the_valid_choices(newsrec_home: Path):
    with pytest.raises(InputError, match="valid kinds: pin, block, boost, bury, priority, quota, reach"):
        Rule.from_dict({"id": "x", "kind": "promote"})
    with pytest.raises(InputError, match="valid targets: story, publisher, keyword, label"):
        Rule.from_dict({"id": "x", "kind": "block", "params": {"target": "author", "value": "a"}})
    with pytest.raises(InputError, match="weight must be in"):
        Rule.from_dict({"id": "x", "kind": "boost", "params": {"target": "category", "value": "a", "weight": 3}})
    with pytest.raises(InputError, match="keys: tag, reads, lang"):
        Rule.from_dict({"id": "x", "kind": "pin", "scope": "everyone", "params": {"story": "a", "slot": 1}})
    with pytest.raises(InputError, match="duplicate rule id"):
        _set(PIN, PIN)


def test_cli_round_trip_json(newsrec_home: Path, tmp_path: Path, capsys, monkeypatch):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([PIN, CAP]), encoding="utf-8")
    assert main(["rules", "add", "--json", str(rules)]) == 0
    assert main(["rules", "rm", "P1"]) == 0
    assert main(["rules", "publish", "--author", "ana", "--json"]) == 0
    capsys.readouterr()
    assert main(["rules", "show", "--version", "1", "--json"]) == 0
    shown = RuleSet.from_json(capsys.readouterr().out)
    assert shown.version == 1 and [r.id for r in shown.rules] == ["Q1"]
    again = tmp_path / "again.json"  # what `show` printed goes back in unchanged (rules in version control)
    again.write_text(shown.to_json(), encoding="utf-8")
    assert main(["rules", "add", "--replace", "--json", str(again)]) == 0
    assert RuleStore(newsrec_home, "demo").draft().rules == shown.rules
    monkeypatch.setenv("NEWSREC_EDITOR_TOKEN", "t")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(json.dumps(PIN)))
    assert main(["rules", "add"]) == 0
    capsys.readouterr()
    monkeypatch.delenv("NEWSREC_EDITOR_TOKEN")
    monkeypatch.setenv("NEWSREC_EDITOR_TOKEN", "t")
    assert main(["rules", "publish", "--author", "bo", "--token", "nope"]) == 2
    assert "editor token" in capsys.readouterr().err
    assert main(["rules", "publish", "--author", "bo", "--token", "t", "--expect", "0"]) == 2
    assert "version conflict" in capsys.readouterr().err
    assert main(["rules", "publish", "--author", "bo", "--token", "t"]) == 0
    assert main(["rules", "rollback", "1", "--author", "bo", "--token", "t"]) == 0
    assert [r.id for r in RuleStore(newsrec_home, "demo").live().rules] == ["Q1"]
