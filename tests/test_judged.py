"""The judged-relevance evaluator (newsrec/evaluation/judged.py) on synthetic runs with answers worked out here.

No recommender: `score_lines` takes plain ranked lists, so each number can be checked against an independent
numpy computation or by hand.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from newsrec.errors import InputError
from newsrec.evaluation.judged import (
    JudgedLine,
    JudgedReport,
    LineRun,
    StoryGroups,
    check_known,
    for_you_precision,
    parse_judgments,
    score_lines,
)

pytestmark = pytest.mark.slow  # ranx compiles its numba kernels on first use (cached afterwards)


def line(query: str, labels: dict[str, int], kind: str = "topic", user: str = "u01", number: int = 1) -> JudgedLine:
    return JudgedLine(line=number, user=user, query=query, labels=labels, kind=kind)


def numpy_ndcg10(ranked: list[str], qrels: dict[str, int]) -> float:
    """nDCG@10 with gain 2^grade - 1 and discount log2(rank + 1), written out independently."""
    gains = np.array([2.0 ** qrels.get(doc, 0) - 1 for doc in ranked[:10]])
    ideal = np.sort(np.array([2.0**g - 1 for g in qrels.values()]))[::-1][:10]
    dcg = (gains / np.log2(np.arange(2, len(gains) + 2))).sum()
    idcg = (ideal / np.log2(np.arange(2, len(ideal) + 2))).sum()
    return float(dcg / idcg)


def numpy_p5(ranked: list[str], qrels: dict[str, int]) -> float:
    return float(np.mean([qrels.get(doc, 0) > 0 for doc in (ranked[:5] + [None] * 5)[:5]]))


def test_ndcg_and_p5_agree_with_an_independent_computation():
    rng = np.random.default_rng(7)
    docs = [f"n{i:03d}" for i in range(1, 31)]
    runs, expected = [], []
    for q in range(12):
        judged_docs = rng.choice(docs, size=int(rng.integers(2, 14)), replace=False)
        qrels = {str(d): int(rng.integers(0, 3)) for d in judged_docs}
        qrels[str(judged_docs[0])] = 2  # at least one relevant story
        ranked = [str(d) for d in rng.choice(docs, size=int(rng.integers(0, 15)), replace=False)]
        runs.append(LineRun(line(f"q{q}", qrels, number=q + 1), [[doc] for doc in ranked]))
        expected.append((numpy_ndcg10(ranked, qrels), numpy_p5(ranked, qrels)))
    scores = score_lines(runs, StoryGroups())
    for score, (ndcg, p5) in zip(scores, expected, strict=True):
        assert score.ndcg10 == pytest.approx(ndcg, abs=1e-9)
        assert score.p5 == pytest.approx(p5, abs=1e-9)
    report = JudgedReport.build(scores)
    assert report.queries.ndcg10 == pytest.approx(np.mean([e[0] for e in expected]))
    assert report.by_kind["topic"].covered == 12


def test_language_copies_count_once_with_the_best_grade():
    groups = StoryGroups([["n016", "n015"]])  # the same story in zh and en
    assert groups.key("n016") == groups.key("n015") == "n015"
    judged = line("LeBron", {"n015": 1, "n016": 2, "n019": 2})
    # The page shows the zh copy first, then (unmerged) the en copy, then n019: the copy earns nothing.
    unmerged = LineRun(judged, [["n016"], ["n015"], ["n019"]])
    # Another page merged the copies into one slot.
    merged = LineRun(judged, [["n016", "n015"], ["n019"]])
    a, b = score_lines([unmerged, merged], groups)
    assert a.qrels == b.qrels == {"n015": 2, "n019": 2}  # one story, its best grade
    assert a.ranked == ["n015", "n019"] and b.ranked == ["n015", "n019"]
    assert a.ndcg10 == pytest.approx(1.0) and b.ndcg10 == pytest.approx(1.0)
    # A merge only the result list made (here n020 with n019) joins the groups for that line.
    extra = score_lines([LineRun(line("x", {"n019": 2, "n020": 1}), [["n020", "n019"]])], StoryGroups())[0]
    assert extra.qrels == {"n019": 2} and extra.ranked == ["n019"] and extra.ndcg10 == pytest.approx(1.0)


def test_nothing_matches_accounting():
    runs = [
        LineRun(line("bitcoin", {}, kind="uncovered", number=1), [], nothing_matches=True),  # right
        LineRun(line("cricket", {}, kind="uncovered", number=2), [["n001"], ["n002"]]),  # wrong: it answered
        LineRun(line("Bundesliga", {"n091": 0}, kind="near-topic", number=3), [["n091"]], nothing_matches=True),
        # covered, but "nothing matches" with the For-you feed shown: wrong, and the feed scores as no answer
        LineRun(line("earnings", {"n032": 2}, kind="single-word", number=4), [["n032"]], nothing_matches=True),
        LineRun(line("gold", {"n099": 2}, kind="topic", number=5), [["n099"]]),
    ]
    scores = score_lines(runs, StoryGroups())
    assert math.isnan(scores[0].ndcg10)  # uncovered lines have no nDCG
    assert scores[3].ranked == [] and scores[3].ndcg10 == 0.0
    assert scores[4].ndcg10 == pytest.approx(1.0)
    report = JudgedReport.build(scores)
    assert (report.queries.uncovered, report.queries.said_nothing) == (3, 2)
    assert report.queries.nothing_share == pytest.approx(2 / 3)
    assert (report.queries.covered, report.queries.wrongly_nothing) == (2, 1)
    assert report.queries.wrong_share == pytest.approx(0.5)
    assert report.by_kind["uncovered"].said_nothing == 1 and report.by_kind["near-topic"].said_nothing == 1
    assert report.queries.ndcg10 == pytest.approx(0.5)
    payload = report.to_json()
    assert payload["queries"]["nothing_matches_share"] == pytest.approx(0.6667)
    json.dumps(payload)  # machine-readable: no NaN, no sets


def test_for_you_leaves_read_stories_out_and_divides_p10_by_what_can_be_found():
    relevant = {f"n{i:03d}": 2 for i in range(1, 5)}  # four relevant unread stories
    judged = line("", {**relevant, "n050": 2, "n051": 1}, kind="for-you")
    # n050 was read; n051 was read in its other language copy (n052): both leave the judgments
    groups = StoryGroups([["n051", "n052"]])
    run = LineRun(judged, [["n001"], ["n009"], ["n002"], ["n050"], ["n003"]], read_ids=frozenset({"n050", "n052"}))
    score = score_lines([run], groups)[0]
    assert set(score.qrels) == set(relevant) and score.dropped_read == 2
    assert score.p10 == pytest.approx(3 / 4)  # 3 found of min(10, 4)
    assert score.p5 == pytest.approx(3 / 5)
    report = JudgedReport.build([score])
    assert report.for_you.lines == 1 and report.queries.lines == 0 and report.for_you.p10 == pytest.approx(0.75)
    # with more than 10 relevant stories the denominator stops at 10
    many = {f"n{i:03d}": 1 for i in range(1, 30)}
    assert for_you_precision([f"n{i:03d}" for i in range(1, 11)], many) == 1.0
    assert for_you_precision(["n001", "x"], many) == pytest.approx(0.1)


def test_malformed_files_name_the_line_and_the_problem():
    good = json.dumps({"user": "u01", "query": "battery", "labels": {"n001": 2}})
    cases = {
        "{not json": "line 2: not valid JSON",
        "[1, 2]": "line 2: expected a JSON object",
        json.dumps({"user": "u01", "labels": {}}): "line 2: missing field 'query'",
        json.dumps({"user": "", "query": "x", "labels": {}}): "line 2: 'user' must be a non-empty string",
        json.dumps({"user": "u01", "query": 3, "labels": {}}): "line 2: 'query' must be a string",
        json.dumps({"user": "u01", "query": "x", "labels": ["n001"]}): "line 2: 'labels' must be an object",
        json.dumps({"user": "u01", "query": "x", "labels": {"n001": "2"}}): "grade of 'n001' must be an integer",
        json.dumps({"user": "u01", "query": "x", "labels": {"n001": 7}}): "grade of 'n001' must be an integer",
        json.dumps({"user": "u01", "query": "x", "labels": {"n001": True}}): "grade of 'n001' must be an integer",
        json.dumps({"user": "u01", "query": "x", "labels": {}, "kind": 5}): "'kind' must be a string",
    }
    for bad, message in cases.items():
        with pytest.raises(InputError, match=message):
            parse_judgments([good, bad], "dev.jsonl")
    with pytest.raises(InputError, match="no judgments"):
        parse_judgments(["", "  "], "empty.jsonl")
    judged = parse_judgments([good, "", json.dumps({"user": "u99", "query": "", "labels": {"n001": 1}})], "f")
    assert [j.line for j in judged] == [1, 3] and judged[1].for_you and judged[0].kind == "(no kind)"
    with pytest.raises(InputError, match="f, line 3: unknown user 'u99'"):
        check_known(judged, {"n001"}, {"u01"}, "f")
    with pytest.raises(InputError, match="f, line 1: unknown news id 'n001'"):
        check_known(judged, {"n002"}, {"u01", "u99"}, "f")
