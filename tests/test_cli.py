"""The CLI contract on the embedded demo corpus, through real subprocesses (as scripts would call it)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def newsrec(*args: str, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEWSREC_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "newsrec", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One data dir for the module, so the demo index is built once."""
    return tmp_path_factory.mktemp("cli_home")


def test_users_lists_the_demo_personas(home):
    result = newsrec("users", "--json", home=home)
    assert result.returncode == 0, result.stderr
    users = json.loads(result.stdout)
    assert len(users) >= 8
    assert all(10 <= user["history"] <= 30 and user["persona"] for user in users)


def test_recommend_json_contract(home):
    user = json.loads(newsrec("users", "--json", home=home).stdout)[0]["id"]
    result = newsrec("recommend", "--user", user, "--query", "solid-state battery", "--k", "5", "--json", home=home)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert {"mode", "user", "query", "retrieval", "reranked", "timings_ms"} <= set(payload)
    assert payload["mode"] == "lite" and payload["user"] == user and payload["query"] == "solid-state battery"
    assert len(payload["reranked"]) == 5 and len(payload["retrieval"]) == 5
    assert set(payload["retrieval"][0]) >= {"id", "title", "score", "rank"}
    assert set(payload["reranked"][0]) >= {"id", "title", "score", "rank", "retrieval_rank", "explanation"}
    assert payload["query_matched"] is True and payload["notice"] == ""
    assert all(isinstance(r["duplicate_ids"], list) for r in payload["retrieval"] + payload["reranked"])
    assert {"retrieve", "rerank", "total"} <= set(payload["timings_ms"])
    titles = " ".join(r["title"].lower() for r in payload["reranked"][:3])
    assert any(term in titles for term in ("battery", "solid-state", "电池"))


def test_recommend_for_you_and_chinese_query(home):
    user = json.loads(newsrec("users", "--json", home=home).stdout)[0]["id"]
    feed = json.loads(newsrec("recommend", "--user", user, "--json", home=home).stdout)
    assert feed["query"] == "" and len(feed["reranked"]) == 10
    chinese = json.loads(
        newsrec("recommend", "--user", user, "--query", "最新电池技术突破", "--json", home=home).stdout
    )
    assert any("电池" in r["title"] for r in chinese["reranked"][:3])


def test_a_query_that_matches_nothing_says_so(home):
    payload = json.loads(newsrec("recommend", "--user", "u07", "--query", "zxqv blorp", "--json", home=home).stdout)
    assert payload["query_matched"] is False and "zxqv blorp" in payload["notice"]
    assert len(payload["reranked"]) == 10  # the reader's For-you feed instead


def test_errors_are_one_clean_line(home):
    result = newsrec("recommend", "--user", "nobody", "--json", home=home)
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown user 'nobody'") and "Traceback" not in result.stderr
    missing = newsrec("users", "--corpus", "does-not-exist", home=home)
    assert missing.returncode == 2 and "unknown corpus" in missing.stderr


def test_bench_pipeline_reports_throughput_latency_and_recall(home):
    result = newsrec("bench", "pipeline", "--requests", "6", "--candidates", "20", "--json", home=home)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["corpus"] == "demo" and figures["items"] >= 150
    assert figures["index_items_per_s"] > 0 and figures["requests"] == 6
    assert 0 < figures["recommend_p50_ms"] <= figures["recommend_p95_ms"]
    # 176 items: HNSW finds (nearly) every exact neighbour; a wrong exact ranking or id mix-up would not.
    assert 0.9 <= figures["index_recall_at_20"] <= 1.0


def test_bench_pipeline_prints_a_table_not_a_dict():
    from rich.console import Console

    from newsrec.cli.bench import figures_table

    console = Console(record=True, width=100)
    console.print(figures_table({"corpus": "demo", "recommend_p50_ms": 12.5, "index_recall_at_20": 0.99}, "bench"))
    text = console.export_text()
    assert "{" not in text and "'corpus'" not in text
    assert re.search(r"recommend p50 ms\s*│\s*12\.5 ms", text) and re.search(r"index recall at 20\s*│\s*0\.990", text)


@pytest.mark.parametrize(
    ("batch_nice", "started_at", "expected"),
    [(None, 0, 10), ("3", 0, 3), ("0", 0, 0), ("5", 15, 15)],  # the default; a value; off; never raised (from 0)
)
def test_batch_commands_lower_their_own_cpu_priority(tmp_path, batch_nice, started_at, expected):
    """`ingest` and `index` run at NEWSREC_BATCH_NICE (default 10): an import must not starve an app serving on the
    same machine. The niceness is read after the command ran, in its own process."""
    source = tmp_path / "news.jsonl"
    source.write_text(json.dumps({"id": "n1", "title": "Battery plant opens", "body": "A battery story."}) + "\n")
    env = {**os.environ, "NEWSREC_HOME": str(tmp_path / "home")}
    env.pop("NEWSREC_BATCH_NICE", None)
    if batch_nice is not None:
        env["NEWSREC_BATCH_NICE"] = batch_nice
    code = (
        "import os, sys; from newsrec.cli import main; "
        f"rc = main(['ingest', {str(source)!r}, '--corpus', 'nice', '--no-index']); print(rc, os.nice(0))"
    )
    done = subprocess.run(
        ["nice", "-n", str(started_at), sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    expected = max(expected, min(19, os.nice(0) + started_at))  # `nice -n` adds to this (pytest's) niceness
    assert done.stdout.split()[-2:] == ["0", str(expected)], done.stderr[-1500:]  # after the ingest's report


def test_a_bad_batch_niceness_is_a_clean_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "newsrec", "index", "--corpus", "demo"],
        cwd=REPO_ROOT,
        env={**os.environ, "NEWSREC_HOME": str(tmp_path), "NEWSREC_BATCH_NICE": "-5"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "NEWSREC_BATCH_NICE must be a whole number from 0" in done.stderr
