"""Fault suite (issue 10): crashes, concurrency, damaged state and hostile input. Run alone with `-m faults`.

Crash tests run the real CLI in a subprocess that SIGKILLs itself at a chosen call (the k-th row
serialised, the k-th rename, ...), then check what a reader sees and that a rerun completes the work.
Nothing here needs the network: the slow image server listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from newsrec.config import Settings
from newsrec.data.corpus import load_corpus
from newsrec.data.ingest import ingest

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parent.parent

# Runs `python -m newsrec ARGS` after wrapping one function: at its k-th call the process pauses (writes
# a marker file, then waits until the test creates the release file, at most `seconds`) or kills itself with
# SIGKILL, before or after the real call.
RUNNER = textwrap.dedent(
    """
    import importlib, json, os, signal, sys, time
    spec = json.loads(os.environ["FAULT_SPEC"])
    module_name, attr = spec["target"].rsplit(".", 1)
    module = importlib.import_module(module_name)
    real = getattr(module, attr)
    calls = [0]

    def hit():
        if spec["action"] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        open(spec["marker"], "w").close()
        deadline = time.monotonic() + spec.get("seconds", 3)
        while time.monotonic() < deadline and not os.path.exists(spec.get("release", "")):
            time.sleep(0.05)

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == spec["at"] and not spec.get("after"):
            hit()
        result = real(*args, **kwargs)
        if calls[0] == spec["at"] and spec.get("after"):
            hit()
        return result

    setattr(module, attr, wrapper)
    from newsrec.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def newsrec(*args: str, fault: dict | None = None, wait: bool = True, timeout: float = 120):
    """Run the CLI in a subprocess (with a fault when given); returns the CompletedProcess or the Popen."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    if fault:
        command = [sys.executable, "-c", RUNNER, *args]
        env["FAULT_SPEC"] = json.dumps(fault)
    else:
        command = [sys.executable, "-m", "newsrec", *args]
    if not wait:
        return subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


# A paused writer holds its lock until the test creates the release file (at most HOLD_S): the test releases it
# once the other process has shown what it must (it waits, it gave up), however long that process took to start.
HOLD_S = 120


def held(release: Path) -> dict:
    return {"release": str(release), "seconds": HOLD_S}


def wait_for_file(path: Path, process: subprocess.Popen, seconds: float = HOLD_S) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path.name} did not appear within {seconds} s"
        time.sleep(0.05)


def started_with_log(log: Path, *args: str) -> subprocess.Popen:
    """`python -m newsrec ARGS` without waiting, its stderr in `log`."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "newsrec", *args]
    with log.open("w") as stderr:  # the child has its own copy of the file
        return subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)


def wait_for_text(log: Path, text: str, process: subprocess.Popen, seconds: float = HOLD_S) -> None:
    """Until `text` is in `log`; fails when the process ends without writing it (it did not wait) or in time."""
    deadline = time.monotonic() + seconds
    while text not in log.read_text(errors="replace"):
        assert process.poll() is None or text in log.read_text(errors="replace"), (
            f"exited ({process.returncode}) without {text!r}: {log.read_text(errors='replace')[-1500:]}"
        )
        assert time.monotonic() < deadline, f"no {text!r} within {seconds} s"
        time.sleep(0.05)


def write_source(folder: Path, prefix: str, items: int, users: int = 0, impressions: int = 0, body: str = "") -> Path:
    """news.jsonl (+ users.jsonl, impressions.jsonl) whose users read only this source's items."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"{prefix}{i}" for i in range(items)]
    rows = [{"id": i, "title": f"Story {i} about {prefix}", "body": body, "category": prefix} for i in ids]
    (folder / "news.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if users:
        user_rows = [{"id": f"u{n}", "history": ids[n % items : n % items + 5]} for n in range(users)]
        (folder / "users.jsonl").write_text("".join(json.dumps(row) + "\n" for row in user_rows))
    if impressions:
        imp_rows = [
            {
                "id": f"{prefix}-imp{n}",
                "user_id": f"u{n}",
                "candidates": ids[n % items : n % items + 2],
                "labels": [1, 0],
            }
            for n in range(impressions)
        ]
        (folder / "impressions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in imp_rows))
    return folder / "news.jsonl"


def corpus_state(name: str) -> tuple[frozenset, dict, frozenset]:
    corpus = load_corpus(Settings.from_env(), name)
    histories = {user.id: tuple(entry.news_id for entry in user.history) for user in corpus.users.values()}
    return frozenset(corpus.news), histories, frozenset(imp.id for imp in corpus.impressions)


def corpus_lines(root: Path) -> list[str]:
    """Ids of news.jsonl as stored, duplicates included."""
    folder = root / (root / "CURRENT").read_text().strip() if (root / "CURRENT").exists() else root
    return [json.loads(line)["id"] for line in (folder / "news.jsonl").read_text().splitlines()]


# --- corpus writes: crashes and concurrency ---------------------------------------------------------------


# (function, k-th call, before/after): rows serialised mid-news, mid-users, mid-impressions; the renames.
# The second ingest writes 80 news rows, then 20 users, then 20 impressions, then renames.
KILL_POINTS = [
    ("newsrec.data.corpus.news_to_dict", 10, False),
    ("newsrec.data.corpus.user_to_dict", 5, False),
    ("newsrec.data.corpus.impression_to_dict", 5, False),
    ("os.replace", 1, False),
    ("os.replace", 1, True),
]


@pytest.mark.slow
@pytest.mark.parametrize(("target", "at", "after"), KILL_POINTS)
def test_kill_during_ingest_leaves_old_or_new_corpus_and_rerun_completes(tmp_path, target, at, after):
    first = write_source(tmp_path / "a", "a", items=40, users=20, impressions=10)
    second = write_source(tmp_path / "b", "b", items=40, users=20, impressions=10)
    settings = Settings.from_env()
    ingest(first, settings, corpus="feed")
    old = corpus_state("feed")
    killed = newsrec(
        "ingest",
        str(second),
        "--corpus",
        "feed",
        "--no-index",
        fault={"target": target, "at": at, "after": after, "action": "kill"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after_kill = corpus_state("feed")
    assert after_kill == old or after_kill[0] == old[0] | {f"b{i}" for i in range(40)}, "a half-written corpus"
    root = Settings.from_env().corpus_dir("feed")
    assert not [p.name for p in root.iterdir() if p.name.endswith(".tmp")]  # the reader's start cleaned up
    assert len(list(root.glob("gen-*"))) <= 2
    if after_kill != old:  # the kill came after the switch: every file must be the new one
        assert after_kill[2] == old[2] | {f"b-imp{n}" for n in range(10)}
        assert after_kill[1]["u0"][0] == "b0"

    ingest(second, settings, corpus="feed")
    news, histories, impressions = corpus_state("feed")
    assert news == {f"a{i}" for i in range(40)} | {f"b{i}" for i in range(40)}  # nothing lost
    lines = corpus_lines(root)
    assert len(lines) == len(set(lines)) == 80  # nothing duplicated
    assert histories["u0"][0] == "b0" and len(impressions) == 20
    leftovers = [p.name for p in root.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers and len(list(root.glob("gen-*"))) <= 2


PAUSE_TARGET = "newsrec.data.corpus.news_to_dict"  # first row written: after the read and the merge


@pytest.mark.slow
def test_concurrent_ingests_into_one_corpus_lose_nothing(tmp_path):
    first = write_source(tmp_path / "a", "a", items=300)
    second = write_source(tmp_path / "b", "b", items=300)
    marker, release = tmp_path / "paused", tmp_path / "release"
    # The first writer pauses after reading and merging, just before it writes: the old code's window. It holds
    # the corpus lock until the second one says it waits for it (not for a fixed time, which a slow or loaded
    # machine's start of the second process could outlast).
    slow = newsrec(
        "ingest",
        str(first),
        "--corpus",
        "conc",
        "--no-index",
        fault={"target": PAUSE_TARGET, "at": 1, "action": "pause", "marker": str(marker), **held(release)},
        wait=False,
    )
    wait_for_file(marker, slow)
    fast = started_with_log(tmp_path / "fast.log", "ingest", str(second), "--corpus", "conc", "--no-index")
    try:
        wait_for_text(tmp_path / "fast.log", "being written by another process; waiting", fast)
    finally:
        release.touch()
    out, err = slow.communicate(timeout=120)
    fast.wait(timeout=120)
    assert slow.returncode == 0 and fast.returncode == 0, (err, (tmp_path / "fast.log").read_text())
    news, _, _ = corpus_state("conc")
    assert len(news) == 600


@pytest.mark.slow
def test_lock_timeout_fails_clearly(tmp_path):
    first = write_source(tmp_path / "a", "a", items=20)
    second = write_source(tmp_path / "b", "b", items=20)
    marker, release = tmp_path / "paused", tmp_path / "release"
    holder = newsrec(
        "ingest",
        str(first),
        "--corpus",
        "busy",
        "--no-index",
        fault={"target": PAUSE_TARGET, "at": 1, "action": "pause", "marker": str(marker), **held(release)},
        wait=False,
    )
    wait_for_file(marker, holder)
    try:  # the lock is held until the blocked writer has given up, however long its start takes
        blocked = newsrec("ingest", str(second), "--corpus", "busy", "--no-index", "--lock-timeout", "0.5")
    finally:
        release.touch()
    holder.communicate(timeout=120)
    assert blocked.returncode == 2
    assert "locked by another writer; gave up after 0.5 s" in blocked.stderr and "Traceback" not in blocked.stderr
    assert corpus_state("busy")[0] == {f"a{i}" for i in range(20)}


def test_readers_always_see_one_generation(tmp_path):
    """A reader (recommend, index) loading the corpus while ingests rewrite it never mixes files of two
    versions: each version rewrites every item and every user, and a read must find a single version."""
    settings = Settings.from_env()
    sources = []
    for version in range(6):
        folder = tmp_path / f"v{version}"
        folder.mkdir()
        # Many items, few users: a read of news.jsonl outlasts the write of users.jsonl, the old code's window.
        news = [{"id": f"n{i}", "title": f"v{version} story {i}", "body": "text " * 40} for i in range(3000)]
        users = [{"id": f"u{n}", "persona": f"v{version}", "history": [f"n{n}"]} for n in range(20)]
        (folder / "news.jsonl").write_text("".join(json.dumps(row) + "\n" for row in news))
        (folder / "users.jsonl").write_text("".join(json.dumps(row) + "\n" for row in users))
        sources.append(folder / "news.jsonl")
    ingest(sources[0], settings, corpus="live")
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from newsrec.cli import main\n"
            "for path in sys.argv[1:]:\n"
            "    assert main(['ingest', path, '--corpus', 'live', '--no-index', '--json']) == 0",
            *map(str, sources[1:]),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
    )
    reads = 0
    try:
        while writer.poll() is None or reads == 0:
            corpus = load_corpus(settings, "live")
            versions = {item.title.split()[0] for item in corpus.news.values()}
            versions |= {user.persona for user in corpus.users.values()}
            assert len(versions) == 1, f"read {reads}: files of versions {sorted(versions)} mixed"
            reads += 1
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0 and reads > 1


# --- disposable state heals itself ------------------------------------------------------------------------


def test_corrupt_score_cache_is_moved_aside_and_recreated(tmp_path, caplog):
    from newsrec.cache import ScoreCache

    path = tmp_path / "cache" / "rerank_scores.sqlite"
    first = ScoreCache(path)
    first.put_many([("k", 0.5)])
    first._db.close()  # the old code has no close(); closing checkpoints the WAL into the file
    path.write_bytes(os.urandom(8192))  # random bytes over the database
    cache = ScoreCache(path)
    assert cache.get_many(["k"]) == {}  # a miss: the score is computed again
    cache.put_many([("k", 0.25)])
    assert ScoreCache(path).get_many(["k"]) == {"k": 0.25}
    assert "damaged" in caplog.text and list(path.parent.glob("rerank_scores.sqlite.corrupt-*"))


def test_score_cache_damaged_after_open_recovers(tmp_path):
    from newsrec.cache import ScoreCache

    path = tmp_path / "scores.sqlite"
    cache = ScoreCache(path, max_memory_items=1)
    cache.put_many([("a", 0.1), ("b", 0.2)])
    cache._db.close()
    path.write_bytes(b"\0" * 4096 + os.urandom(4096))
    cache._db = __import__("sqlite3").connect(path, check_same_thread=False)
    assert cache.get_many(["a"]) == {}  # evicted from memory, unreadable on disk: a miss, not a crash
    cache.put_many([("a", 0.3)])
    assert ScoreCache(path).get_many(["a"]) == {"a": 0.3}


def test_implausible_cached_scores_are_scored_again(tmp_path):
    import sqlite3

    from newsrec.cache import ScoreCache

    path = tmp_path / "scores.sqlite"
    ScoreCache(path).put_many([("good", 0.7), ("edited", 0.1), ("nan", 0.2)])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE scores SET score = 9e27 WHERE key = 'edited'")
        db.execute("UPDATE scores SET score = 'x' WHERE key = 'nan'")
    assert ScoreCache(path).get_many(["good", "edited", "nan"]) == {"good": 0.7}


# --- hostile input ----------------------------------------------------------------------------------------


def test_slow_drip_image_server_is_cut_off_at_one_overall_deadline(monkeypatch):
    """A server that sends its headers, then one byte every 0.2 s, forever: the download must end at the
    deadline (3 x timeout) although no single read ever waits long enough to time out."""
    import socketserver
    import threading

    from newsrec import images

    class Drip(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(4096)
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n")
            try:
                for _ in range(600):
                    self.request.sendall(b"\xff")
                    time.sleep(0.2)
            except OSError:
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(images, "is_public_address", lambda address: True)  # loopback allowed in this test only
    outcome: dict = {}

    def fetch():
        started = time.monotonic()
        try:
            images.fetch_remote_image(
                f"http://127.0.0.1:{server.server_address[1]}/a.jpg", Settings(allow_remote_images=True), timeout=0.5
            )
        except images.ImageError as error:
            outcome["error"] = str(error)
        outcome["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(timeout=15)
    server.shutdown()
    assert not worker.is_alive(), "the download was never cut off"
    assert "too slow" in outcome["error"] and outcome["seconds"] < 4


def _reasons(report) -> list[str]:
    return [f"{Path(p.file).name}:{p.line}: {p.reason}" for p in report.problems]


def test_field_caps_id_rules_and_control_characters(tmp_path):
    rows = [
        {"id": "big", "title": "T" * 5_000_000, "body": "b" * 200_000},
        {"id": "../x", "title": "path id"},
        {"id": "x" * 100_000, "title": "long id"},
        {"id": "rtl\u202egnp.exe", "title": "override id"},
        {"id": "nul", "title": "N\x00U\x00L", "body": "keeps\nlines\x07"},
        {"id": "ok", "title": "Fine"},
    ]
    (tmp_path / "feed.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    settings = Settings.from_env()
    report = ingest(tmp_path / "feed.jsonl", settings, corpus="caps")
    corpus = load_corpus(settings, "caps")
    assert set(corpus.news) == {"big", "nul", "ok"}
    assert len(corpus.news["big"].title) == 1_000 and len(corpus.news["big"].body) == 100_000
    assert corpus.news["nul"].title == "NUL" and corpus.news["nul"].body == "keeps\nlines"
    reasons = _reasons(report)
    assert "feed.jsonl:1: title: 5,000,000 characters cut to 1,000" in reasons
    assert "feed.jsonl:1: body: 200,000 characters cut to 100,000" in reasons
    assert "feed.jsonl:2: id '../x' contains a path separator; row skipped" in reasons
    assert "feed.jsonl:3: id of 100,000 characters (limit 200); row skipped" in reasons
    assert any(r.startswith("feed.jsonl:4: id 'rtl") and "contains control" in r for r in reasons), reasons
    assert "feed.jsonl:5: title: 2 control or bidi-override character(s) removed" in reasons


def test_csv_unclosed_quote_is_reported_not_swallowed(tmp_path):
    # Issue 20 changed this: the rows after the broken line are kept (reading resumes at the next line).
    (tmp_path / "feed.csv").write_text('id,title\n1,"Opens a quote\n2,Second\n3,Third\n')
    (tmp_path / "mid.csv").write_text('id,title\n1,"Opens\n2,Two\n3,"Three",x\n4,Four\n')
    settings = Settings.from_env()
    report = ingest(tmp_path / "feed.csv", settings, corpus="quote")
    assert any(r.startswith("feed.csv:2: malformed CSV") and "line 2 skipped" in r for r in _reasons(report))
    assert set(load_corpus(settings, "quote").news) == {"2", "3"}
    report = ingest(tmp_path / "mid.csv", settings, corpus="mid")
    assert set(load_corpus(settings, "mid").news) == {"2", "4"}  # no title swallowed the rows after it
    assert any(r.startswith("mid.csv:2:") and "line 2 skipped" in r for r in _reasons(report))
    assert any(r.startswith("mid.csv:4: expected 2 columns, found 3") for r in _reasons(report))


def test_deep_json_is_a_row_error(tmp_path):
    deep = '{"id": "d", "title": "deep", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    inner: list = ["x"]
    for _ in range(40):
        inner = [inner]
    nested = {"id": "n", "title": "nested", "images": inner}
    lines = [deep, json.dumps(nested), json.dumps({"id": "ok", "title": "Fine"})]
    (tmp_path / "feed.jsonl").write_text("\n".join(lines) + "\n")
    settings = Settings.from_env()
    report = ingest(tmp_path / "feed.jsonl", settings, corpus="deep")
    assert set(load_corpus(settings, "deep").news) == {"ok"}
    assert "feed.jsonl:1: nested deeper than 32 levels; row skipped" in _reasons(report)
    assert "feed.jsonl:2: nested deeper than 32 levels; row skipped" in _reasons(report)


def test_parquet_values_of_the_wrong_type_are_rejected(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"id": ["a", "b", "c"], "title": ["One", "Two", "Three"], "body": [{"a": 1.0}, None, None]})
    frame["category"] = [None, None, ["x", "y"]]
    frame.to_parquet(tmp_path / "feed.parquet")
    settings = Settings.from_env()
    report = ingest(tmp_path / "feed.parquet", settings, corpus="types")
    assert set(load_corpus(settings, "types").news) == {"b"}  # nothing stored as "{'a': 1.0}"
    reasons = _reasons(report)
    assert "feed.parquet:1: body: expected text, found dict; row skipped" in reasons, reasons
    assert "feed.parquet:3: category: expected text, found ndarray; row skipped" in reasons, reasons


def test_image_paths_stay_inside_the_source_folder(tmp_path):
    from PIL import Image

    source, outside = tmp_path / "source", tmp_path / "outside"
    source.mkdir()
    outside.mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(outside / "secret.jpg")
    Image.new("RGB", (8, 8), (4, 5, 6)).save(source / "own.jpg")
    (source / "link.jpg").symlink_to(outside / "secret.jpg")
    rows = [
        {"id": "abs", "title": "A", "images": [str(outside / "secret.jpg")]},
        {"id": "abs-missing", "title": "B", "images": [str(outside / "nothing.jpg")]},
        {"id": "dots", "title": "C", "images": ["../outside/secret.jpg"]},
        {"id": "dots-missing", "title": "D", "images": ["../outside/nothing.jpg"]},
        {"id": "link", "title": "E", "images": ["link.jpg"]},
        {"id": "own", "title": "F", "images": ["own.jpg"]},
    ]
    (source / "feed.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    settings = Settings.from_env()
    report = ingest(source / "feed.jsonl", settings, corpus="confined")
    corpus = load_corpus(settings, "confined")
    assert [item.id for item in corpus.news.values() if item.images] == ["own"]
    own = corpus.news["own"].images[0].uri
    assert own.startswith("media/") and (corpus.root / own).read_bytes() == (source / "own.jpg").read_bytes()
    messages = {
        r.split(": ", 1)[1].replace(rows[int(r.split(":")[1]) - 1]["images"][0], "<path>") for r in _reasons(report)
    }
    assert messages == {"image <path>: no such file inside the source folder (dropped)"}  # same words, found or not


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["users", "--corpus", "../../x"], "invalid corpus name"),
        (["index", "--corpus", "../x"], "invalid corpus name"),
        (["recommend", "--user", "guest", "--corpus", "/etc"], "invalid corpus name"),
        (["evaluate", "--corpus", "a/../../b"], "invalid corpus name"),
        (["recommend", "--user", "guest", "--k", "1000000000"], "outside the allowed range 1..30"),
        (["recommend", "--user", "guest", "--diversity", "5"], "outside the allowed range 0.0..1.0"),
        (["recommend", "--user", "guest", "--half-life", "-3"], "outside the allowed range 0.0..30.0"),
        (["recommend", "--user", "guest", "--diversity", "nan"], "outside the allowed range"),
        (["recommend", "--user", "guest", "--candidates", "5000"], "outside the allowed range 10..300"),
        (["recommend", "--user", "guest", "--query", "caf\udcff"], "is not valid UTF-8"),
    ],
)
def test_cli_rejects_bad_corpus_names_ranges_and_text(argv, expected, capsys):
    from newsrec.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and expected in capsys.readouterr().err


def test_non_utf8_query_bytes_exit_2_without_traceback():
    argv = [b"recommend", b"--user", b"guest", b"--query", b"caf\xff"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "newsrec", *argv], env=env, cwd=REPO, capture_output=True, timeout=120)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2 and "not valid UTF-8" in stderr and "Traceback" not in stderr, stderr[-800:]


def test_query_with_lone_surrogates_is_an_input_error():
    """Through the API a query arrives as JSON, where "\\udcff" decodes to a lone surrogate."""
    from newsrec.errors import InputError
    from newsrec.pipeline import _clean_query

    with pytest.raises(InputError, match="not valid UTF-8"):
        _clean_query(json.loads('"caf\\udcff"'))
    assert _clean_query(" café 😀 ") == "café 😀"


def test_unwritable_data_folder_is_a_clean_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    env = {**os.environ, "PYTHONPATH": str(REPO), "NEWSREC_HOME": str(blocker / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "newsrec", "recommend", "--user", "guest", "--embedder", "lite", "--reranker", "lite"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-800:]
    assert "NEWSREC_HOME" in done.stderr


# --- the dashboard serves pictures only ------------------------------------------------------------------


def _launch_kwargs_of_app(monkeypatch, corpus: str) -> dict:
    """What app.main passes to launch() (the page and the model loader are stubbed: only the launch matters)."""
    import importlib.util

    import gradio as gr

    spec = importlib.util.spec_from_file_location("newsrec_app_faults", REPO / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    captured: dict = {}

    class Launched(Exception):
        pass

    def fake_launch(self, **kwargs):
        captured.update(kwargs)
        raise Launched

    class NoLoader:
        def start(self):
            pass

        def get(self, on_wait=None):
            raise AssertionError("not used")

    monkeypatch.setenv("NEWSREC_CORPUS", corpus)
    monkeypatch.setenv("NEWSREC_EMBEDDER", "lite")
    monkeypatch.setenv("NEWSREC_RERANKER", "lite")
    monkeypatch.setattr(gr.Blocks, "launch", fake_launch)
    monkeypatch.setattr(app, "make_loader", lambda settings: NoLoader())
    with pytest.raises(Launched):
        app.main(["--port", "0"])
    return {key: captured[key] for key in ("allowed_paths", "blocked_paths", "app_kwargs") if key in captured}


@pytest.mark.slow
def test_app_serves_pictures_only(tmp_path, monkeypatch, newsrec_home):
    import socket
    import sqlite3
    from urllib.parse import quote

    import gradio as gr
    import httpx
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (16, 16), (9, 99, 199)).save(photo)
    (tmp_path / "news.jsonl").write_text(json.dumps({"id": "a", "title": "Pictured", "images": ["photo.png"]}) + "\n")
    (tmp_path / "users.jsonl").write_text(json.dumps({"id": "u1", "history": ["a"]}) + "\n")
    settings = Settings.from_env()
    ingest(tmp_path / "news.jsonl", settings, corpus="site")
    corpus = load_corpus(settings, "site")
    root = corpus.root
    picture = corpus.news["a"].images[0].uri  # media/<sha>.png
    live = root / (root / "CURRENT").read_text().strip() if (root / "CURRENT").exists() else root
    (root / "media").mkdir(exist_ok=True)
    planted = {
        "news": live / "news.jsonl",
        "users": live / "users.jsonl",
        "svg": root / "media" / "evil.svg",
        "html": root / "media" / "evil.html",
        "legacy-news": root / "news.jsonl",
        "cache": newsrec_home / "cache" / "rerank_scores.sqlite",
        "chroma": newsrec_home / "chroma" / "chroma.sqlite3",
    }
    planted["svg"].write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    planted["html"].write_text("<script>alert(1)</script>")
    if not planted["legacy-news"].exists():
        planted["legacy-news"].write_text("{}\n")
    for db in (planted["cache"], planted["chroma"]):
        db.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(db).execute("CREATE TABLE t (x)")
    (root / "media" / "sneaky.png").symlink_to(planted["users"])

    kwargs = _launch_kwargs_of_app(monkeypatch, "site")
    monkeypatch.undo()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with gr.Blocks() as demo:
        gr.Markdown("probe")
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            for name, path in planted.items():
                absolute = str(path.resolve())
                for route in (
                    f"/gradio_api/file={absolute}",
                    f"/gradio_api/file/{absolute}",
                    f"/file={absolute}",
                    f"/file/{absolute}",
                    f"/gradio_api/file={os.path.relpath(absolute)}",
                    f"/newsrec-media/{path.name}",
                    f"/newsrec-media/{quote('../' + path.name, safe='')}",
                    f"/newsrec-media/..%2F{path.name}",
                    f"/static/{quote('../../' + absolute, safe='')}",
                ):
                    response = client.get(route)
                    assert response.status_code in (403, 404), (name, route, response.status_code)
            assert client.get("/newsrec-media/sneaky.png").status_code == 404  # a symlink out of the folder
            good = client.get("/" + picture.replace("media/", "newsrec-media/"))
            assert good.status_code == 200 and good.headers["content-type"] == "image/png"
            assert good.content == photo.read_bytes() and good.headers["x-content-type-options"] == "nosniff"
            assert client.get("/").headers["x-content-type-options"] == "nosniff"
    finally:
        demo.close()

    from newsrec.ui.media import image_linker

    link = image_linker(corpus)
    assert link(corpus.news["a"].images[0]) == picture.replace("media/", "newsrec-media/")  # relative, no path
    assert link(type(corpus.news["a"].images[0])(str(planted["svg"]))) is None


# --- the vector index: crashes and damage ------------------------------------------------------------------

# Builds or updates the index of corpus argv[1] with the tests' hashing embedder, in batches of argv[2];
# FAULT_SPEC kills the process at the k-th Chroma upsert. Prints what a reader then finds.
INDEX_JOB = textwrap.dedent(
    """
    import json, os, signal, sys, time
    sys.path[:0] = [sys.argv[3], sys.argv[3] + "/tests"]
    import numpy as np
    from chromadb.api.models.Collection import Collection
    from conftest import HashingEmbedder
    from newsrec.config import Settings
    from newsrec.data.corpus import load_corpus
    from newsrec.index import NewsIndex

    spec = json.loads(os.environ.get("FAULT_SPEC") or "null")
    if spec:
        real, calls = Collection.upsert, [0]

        def upsert(self, *args, **kwargs):
            calls[0] += 1
            if calls[0] == spec["at"] and spec.get("pause"):
                open(spec["marker"], "w").close()
                deadline = time.monotonic() + spec["pause"]
                while time.monotonic() < deadline and not os.path.exists(spec.get("release", "")):
                    time.sleep(0.05)
            elif calls[0] == spec["at"] and not spec["after"]:
                os.kill(os.getpid(), signal.SIGKILL)
            result = real(self, *args, **kwargs)
            if calls[0] == spec["at"] and spec["after"]:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        Collection.upsert = upsert
    settings = Settings.from_env()
    corpus = load_corpus(settings, sys.argv[1])
    embedder = HashingEmbedder()
    index = NewsIndex(settings, corpus.name, embedder)
    stats = index.sync(corpus, batch_size=int(sys.argv[2]))
    stored = index._stored_hashes()
    current = {news_id: item.content_hash() for news_id, item in corpus.news.items()}
    query = embedder.embed_queries(["story 7"])[0]
    sample = sorted(corpus.news)[:: max(1, len(corpus.news) // 20)][:20]
    pairs = zip(sample, index.embeddings(sample))
    # found: its own id among the 10 nearest, or a vector identical to it first (the hashing embedder makes
    # near-duplicates). HNSW search is approximate, so top-1 self recall is not guaranteed on a healthy graph
    # either; the damage this looks for (a header lagging its data) loses most items, not one.
    tops = [(news_id, index.search(vector, 10)) for news_id, vector in pairs]
    found_self = sum(news_id in {i for i, _ in hits} or hits[0][1] > 1 - 1e-4 for news_id, hits in tops)
    print(json.dumps({
        "count": len(index), "embedded": stats.embedded, "consistent": stored == current,
        "hits": len(index.search(query, 5)), "rows": len(index.all_ids()), "unique": len(set(index.all_ids())),
        "self_found": found_self, "self_sampled": len(sample),
    }))
    """
)


def index_job(corpus: str, batch: int = 100, fault: dict | None = None, wait: bool = True, log: Path | None = None):
    """The INDEX_JOB script in a subprocess; without waiting, its stderr goes to `log` when given (to be watched)."""
    env = {**os.environ, "FAULT_SPEC": json.dumps(fault) if fault else ""}
    command = [sys.executable, "-c", INDEX_JOB, corpus, str(batch), str(REPO)]
    if not wait and log is not None:
        with log.open("w") as stderr:  # the child has its own copy of the file
            return subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True)
    if not wait:
        return subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def small_corpus(tmp_path: Path, name: str, items: int) -> None:
    ingest(write_source(tmp_path / name, "n", items=items), Settings.from_env(), corpus=name)


@pytest.mark.slow
@pytest.mark.parametrize(("at", "after"), [(3, False), (6, True)])
def test_kill_during_index_then_rerun_completes_it(tmp_path, at, after):
    small_corpus(tmp_path, "idx", 1000)
    killed = index_job("idx", fault={"at": at, "after": after})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    rerun = index_job("idx")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    found = json.loads(rerun.stdout.strip().splitlines()[-1])
    expected_left = 1000 - (at if after else at - 1) * 100  # batches stored before the kill are kept
    # Issue 20: after a kill -9 mid-sync, Chroma's persisted HNSW files can be left inconsistent (a header that
    # lags its data; most items no longer found by their own vector, also after the resumed sync). The health
    # check now sees that and rebuilds; either way every item must be found by its own vector afterwards.
    rebuilt = "the vector store was damaged" in rerun.stderr
    assert found["embedded"] == (1000 if rebuilt else expected_left), (found, rerun.stderr[-1000:])
    assert found["self_found"] == found["self_sampled"] == 20, found
    assert {key: found[key] for key in ("count", "consistent", "hits", "rows", "unique")} == {
        "count": 1000,
        "consistent": True,
        "hits": 5,
        "rows": 1000,
        "unique": 1000,
    }


@pytest.mark.slow
def test_two_processes_indexing_take_turns(tmp_path):
    """Chroma's embedded store does not coordinate processes: a second sync (another ingest's index update,
    the app's first build) waits for the first instead of writing beside it."""
    small_corpus(tmp_path, "one", 300)
    small_corpus(tmp_path, "two", 300)
    marker, release = tmp_path / "paused", tmp_path / "release"
    # The first holds the store's lock until the second says it waits (a fixed 6 s pause was about what a loaded
    # 2-core machine needs to start the second process and reach the lock).
    fault = {"at": 2, "after": False, "pause": HOLD_S, "marker": str(marker), "release": str(release)}
    first = index_job("one", fault=fault, wait=False)
    wait_for_file(marker, first)
    second = index_job("two", wait=False, log=tmp_path / "second.log")
    try:
        wait_for_text(tmp_path / "second.log", "being updated by another process; waiting", second)
    finally:
        release.touch()
    out, err = first.communicate(timeout=120)
    second_out, _ = second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, (err[-1000:], (tmp_path / "second.log").read_text())
    for result in (out, second_out):
        found = json.loads(result.strip().splitlines()[-1])
        assert found["count"] == 300 and found["consistent"] and found["unique"] == 300


def _damage(path: Path, where: str = "all") -> None:
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        if where == "all":
            handle.write(os.urandom(size))
        else:  # the second half: the header survives, the pages do not
            handle.seek(size // 2)
            handle.write(os.urandom(size - size // 2))


@pytest.mark.slow
# Chroma writes HNSW files once 1,000 items are in (its sync threshold); below that garbage there is harmless.
@pytest.mark.parametrize(("damaged", "items"), [("data_level0.bin", 1100), ("chroma.sqlite3", 300)])
def test_damaged_store_is_detected_before_opening_and_rebuilt(tmp_path, damaged, items, newsrec_home):
    small_corpus(tmp_path, "dmg", items)
    assert index_job("dmg").returncode == 0
    target = next((newsrec_home / "chroma").rglob(damaged))
    _damage(target, "all" if damaged == "data_level0.bin" else "half")
    again = index_job("dmg")  # the old code segfaults here (signal 11) or fails with InternalError
    assert again.returncode == 0, (again.returncode, again.stderr[-2000:])
    found = json.loads(again.stdout.strip().splitlines()[-1])
    assert found["count"] == items and found["embedded"] == items and found["consistent"] and found["hits"] == 5
    assert "the vector store was damaged" in again.stderr and "rebuilt from the corpus" in again.stderr
    assert list(newsrec_home.glob("chroma.damaged-*"))  # kept aside for a post-mortem, not deleted
    third = index_job("dmg")  # healthy again, and the recorded state spares it the probe
    assert third.returncode == 0 and json.loads(third.stdout.strip().splitlines()[-1])["embedded"] == 0


def test_chroma_failures_become_one_message_naming_the_fix():
    from chromadb.errors import InternalError, InvalidArgumentError

    from newsrec.index_health import GuardedCollection, StoreError

    class Broken:
        metadata = {"dim": 3}

        def query(self, **kwargs):
            raise InternalError("Error executing plan: Error sending backfill request to compactor")

        def get(self, **kwargs):
            raise InvalidArgumentError("Error executing plan: Failed to pull logs from the log store")

        def delete(self, **kwargs):
            raise InvalidArgumentError("Expected where to have exactly one operator")

    guarded = GuardedCollection(Broken())
    assert guarded.metadata == {"dim": 3}
    for call in (guarded.query, guarded.get):
        with pytest.raises(StoreError, match=r"vector store failed .*python -m newsrec index --rebuild"):
            call()
    with pytest.raises(InvalidArgumentError):  # a bad filter is the caller's error, reported as such
        guarded.delete()


def test_index_rebuild_flag_recreates_the_collection(tmp_path, monkeypatch, fake_embedder):
    from newsrec.cli import main

    small_corpus(tmp_path, "rb", 50)
    monkeypatch.setattr("newsrec.embedders.get_embedder", lambda *args, **kwargs: fake_embedder)
    assert main(["index", "--corpus", "rb"]) == 0
    assert fake_embedder.calls == 50
    assert main(["index", "--corpus", "rb"]) == 0
    assert fake_embedder.calls == 50  # nothing changed, nothing embedded
    assert main(["index", "--corpus", "rb", "--rebuild"]) == 0
    assert fake_embedder.calls == 50  # a new collection from the vector cache: nothing encoded again
    assert main(["index", "--corpus", "rb", "--rebuild", "--re-encode"]) == 0
    assert fake_embedder.calls == 100  # everything embedded again
