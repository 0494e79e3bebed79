"""Editor judgments: durable across restarts (a new store, even a new process), upserted, nDCG per config."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from newsrec.config import Settings
from newsrec.errors import InputError
from newsrec.evaluation.judgments import JudgmentStore, condensed_ndcg


def test_judgments_survive_a_restart_and_live_under_the_data_dir(newsrec_home):
    store = JudgmentStore(Settings.from_env())
    store.record("u01", "solid-state battery", "n001", True, "rerank:lite", rank=1)
    store.record("u01", "solid-state battery", "n002", False, "rerank:lite", rank=2)
    assert store.path.parent == newsrec_home
    del store
    # a fresh process, as after an app restart
    code = (
        "from newsrec.config import Settings; from newsrec.evaluation.judgments import JudgmentStore;"
        "print(len(JudgmentStore(Settings.from_env()).judgments()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "2"
    reopened = JudgmentStore(Settings.from_env())
    kept = reopened.judgments(user_id="u01", query=" solid-state battery ")
    assert [(j.news_id, j.relevant, j.rank) for j in kept] == [("n001", True, 1), ("n002", False, 2)]


def test_judging_again_replaces_the_verdict():
    store = JudgmentStore()
    store.record("u01", "", "n001", True, "retrieval")
    store.record("u01", "", "n001", False, "retrieval")
    store.record("u01", "", "n001", True, "rerank:lite")  # another config is another judgment
    assert [j.relevant for j in store.judgments(config="retrieval")] == [False]
    assert len(store.judgments()) == 2


def test_ndcg_by_config_orders_by_shown_rank():
    store = JudgmentStore()
    # config A put the relevant item first; config B put it third
    for rank, (news_id, relevant) in enumerate([("n1", True), ("n2", False), ("n3", False)], 1):
        store.record("u1", "q", news_id, relevant, "A", rank=rank)
    for rank, (news_id, relevant) in enumerate([("n2", False), ("n3", False), ("n1", True)], 1):
        store.record("u1", "q", news_id, relevant, "B", rank=rank)
    store.record("u2", "", "n9", False, "B", rank=1)  # a list with nothing relevant scores 0
    scores = store.ndcg_by_config()
    assert scores["A"] == {"ndcg": 1.0, "lists": 1, "judgments": 3}
    assert scores["B"]["lists"] == 2 and scores["B"]["judgments"] == 4
    assert scores["B"]["ndcg"] == pytest.approx((1 / math.log2(4) + 0.0) / 2)


def test_condensed_ndcg():
    assert condensed_ndcg([True, False]) == 1.0
    assert condensed_ndcg([False, True]) == pytest.approx(1 / math.log2(3))
    assert condensed_ndcg([False, False]) == 0.0
    assert condensed_ndcg([False, True], k=1) == 0.0


def test_bad_judgments_are_refused_clearly():
    store = JudgmentStore()
    with pytest.raises(InputError, match="user_id"):
        store.record("", "q", "n1", True, "A")
    with pytest.raises(InputError, match="config"):
        store.record("u", "q", "n1", True, " ")
    with pytest.raises(InputError, match="longer"):
        store.record("u", "x" * 5000, "n1", True, "A")
    with pytest.raises(InputError, match="rank"):
        store.record("u", "q", "n1", True, "A", rank=0)
    assert store.judgments() == []
