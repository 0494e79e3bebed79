"""Fault suite, round two (issue 20): damaged or hostile stored state (judgments, models, corpus files) and
bounded inputs. Run alone with `-m faults`.

Each damaged file must give one message naming the file and the fix (the CLI: exit 2, no traceback; the
app: that same message as a Gradio error), or heal with a warning that says what was kept.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from newsrec.config import Settings
from newsrec.data.corpus import load_corpus
from newsrec.data.ingest import ingest
from newsrec.errors import InputError
from newsrec.evaluation.judgments import JudgmentStore

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
    command = [sys.executable, "-m", "newsrec", *args]
    return subprocess.run(command, env=environment, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def load_app_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("newsrec_app_faults_store", REPO / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


# --- judgments: spreadsheet-safe export, damaged store ------------------------------------------------------


def test_judgments_csv_export_is_spreadsheet_safe(tmp_path):
    from newsrec.ui.state import Dashboard

    store = JudgmentStore(path=tmp_path / "j.sqlite")
    hostile = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    for n, text in enumerate(hostile):
        store.record(f"u{n}", text, f"n{n}", True, config='=HYPERLINK("http://evil")', rank=1)
    store.record("plain", "solar power", "n9", False, config="rerank:lite", rank=2)
    news = {"n0": SimpleNamespace(title="=1+2 headline"), "n9": SimpleNamespace(title="A - B")}
    fake = SimpleNamespace(judgments=store, rec=SimpleNamespace(corpus=SimpleNamespace(news=news)))
    path = Dashboard.export_judgments(fake, tmp_path / "out.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    cells = [cell for row in rows for cell in row.values() if cell]
    assert not [cell for cell in cells if cell[0] in "=+-@\t\r"], cells
    queries = {row["user_id"]: row["query"] for row in rows}
    assert queries["u0"] == "'=cmd|' /C calc'!A0" and queries["u3"] == "'@SUM(A1)"
    assert queries["plain"] == "solar power"  # ordinary text is unchanged, inner "-" too
    titles = {row["news_id"]: row["title"] for row in rows}
    assert titles["n0"] == "'=1+2 headline" and titles["n9"] == "A - B"


def test_garbage_judgments_file_is_moved_aside_and_the_app_starts(newsrec_home, caplog):
    path = newsrec_home / "judgments.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a database\x00" * 400)
    app = load_app_module()
    with caplog.at_level(logging.WARNING):
        store = app._judgments(Settings.from_env())  # what the app does at start
    assert store is not None and store.recovered == 0
    assert "recovered 0 readable judgment" in caplog.text
    aside = [p for p in newsrec_home.iterdir() if p.name.startswith("judgments.sqlite.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")  # kept for a person
    store.record("u1", "q", "n1", True, config="lite", rank=1)
    assert [j.news_id for j in JudgmentStore(Settings.from_env()).judgments()] == ["n1"]


def test_damaged_judgments_page_keeps_every_readable_judgment(tmp_path, caplog):
    path = tmp_path / "judgments.sqlite"
    store = JudgmentStore(path=path)
    for n in range(600):
        store.record(f"user-{n:04d}", f"query about topic {n} " + "x" * 60, f"news-{n}", n % 2 == 0, config="c")
    before = {(j.user_id, j.news_id, j.relevant) for j in store.judgments()}
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
    assert pages > 8
    data = bytearray(path.read_bytes())
    victim = pages // 2  # a leaf page in the middle of the table
    data[(victim - 1) * page_size : victim * page_size] = b"\xa5" * page_size
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        healed = JudgmentStore(path=path)
    after = {(j.user_id, j.news_id, j.relevant) for j in healed.judgments()}
    assert after < before and len(after) >= len(before) - 60  # one page lost, nothing else
    assert healed.recovered == len(after)
    assert f"recovered {len(after)} readable judgment" in caplog.text


# --- models: valid JSON of the wrong types --------------------------------------------------------------------


def test_model_json_with_wrong_types_is_one_message_naming_the_file(newsrec_home):
    from newsrec.learning import store
    from newsrec.learning.ranker import LearnedRanker

    ranker = LearnedRanker("logistic", ["a", "b"], coef=[0.5, -0.2], mean=[0.0, 1.0], scale=[1.0, 2.0])
    folder = store.save(newsrec_home, store.SavedModel(ranker, "feed", "", "h", "lite", "lite"))
    assert store.load(newsrec_home, "feed").ranker.coef == [0.5, -0.2]
    payload = json.loads((folder / "model.json").read_text())
    for damage in ({"coef": ["0.5", "-0.2"]}, {"mean": [0.0]}, {"intercept": "1"}, {"features": "ab"}):
        (folder / "model.json").write_text(json.dumps({**payload, "ranker": {**payload["ranker"], **damage}}))
        with pytest.raises(InputError) as caught:
            store.load(newsrec_home, "feed")
        message = str(caught.value)
        assert str(folder / "model.json") in message and "newsrec train" in message, message


# --- corpus files that are not UTF-8 ---------------------------------------------------------------------------


def small_corpus(tmp_path: Path, name: str = "feed") -> Path:
    source = tmp_path / "src"
    source.mkdir()
    rows = [{"id": f"n{i}", "title": f"Story {i}", "body": "text"} for i in range(6)]
    (source / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (source / "users.jsonl").write_text(json.dumps({"id": "u1", "history": ["n0", "n1"]}) + "\n")
    impressions = {"id": "i1", "user_id": "u1", "candidates": ["n2", "n3"], "labels": [1, 0]}
    (source / "impressions.jsonl").write_text(json.dumps(impressions) + "\n")
    ingest(source / "news.jsonl", Settings.from_env(), corpus=name)
    return Settings.from_env().corpus_dir(name)


@pytest.mark.parametrize("damaged", ["CURRENT", "news.jsonl", "users.jsonl", "impressions.jsonl"])
def test_non_utf8_corpus_files_name_the_file_and_the_fix(tmp_path, newsrec_home, damaged):
    root = small_corpus(tmp_path)
    generation = root / (root / "CURRENT").read_text().strip()
    target = root / damaged if damaged == "CURRENT" else generation / damaged
    assert target.is_file()
    data = target.read_bytes()
    target.write_bytes(data[:10] + b"\xff\xfe\xc3" + data[10:])
    with pytest.raises(InputError) as caught:
        load_corpus(Settings.from_env(), "feed")
    message = str(caught.value)
    assert str(target) in message
    assert ("ingest" in message) or ("gen-" in message)  # the fix
    # The CLI: exit 2 and that message, no traceback.
    done = cli("recommend", "--corpus", "feed", "--user", "u1", "--embedder", "lite", "--reranker", "lite")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-1500:]
    assert target.name in done.stderr
    # The app: the same message as a Gradio error, not "the upstream app has raised an exception".
    import gradio as gr

    app = load_app_module()
    with pytest.raises(gr.Error) as shown:
        app.friendly(lambda: load_corpus(Settings.from_env(), "feed"))()
    assert shown.value.message == message


# --- bounds: history cap, a byte cap per file, CSV recovery ----------------------------------------------------


def test_history_is_capped_at_ingest_with_a_note(tmp_path):
    from newsrec.config import MAX_HISTORY

    assert MAX_HISTORY == Settings().max_history == 500
    rows = [{"id": f"n{i}", "title": f"Story {i}"} for i in range(50)]
    (tmp_path / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    long = [f"n{i % 50}" for i in range(20_000)]
    users = [{"id": "heavy", "history": long}, {"id": "light", "history": ["n1", "n2"]}]
    (tmp_path / "users.jsonl").write_text("".join(json.dumps(u) + "\n" for u in users))
    report = ingest(tmp_path / "news.jsonl", Settings.from_env(), corpus="hist")
    corpus = load_corpus(Settings.from_env(), "hist")
    heavy = [entry.news_id for entry in corpus.users["heavy"].history]
    assert heavy == long[-500:]  # the last 500 reads, in order
    assert [entry.news_id for entry in corpus.users["light"].history] == ["n1", "n2"]
    notes = [p.reason for p in report.problems]
    assert any("1 reader histories longer than 500 reads: kept the last 500" in note for note in notes), notes


def test_profile_reads_only_the_last_n_of_an_uncapped_stored_history(monkeypatch):
    import numpy as np

    from newsrec import pipeline
    from newsrec.types import HistoryEntry

    sizes = []

    def fake_build_profile(user_id, known, news, embeddings, idf, now):
        sizes.append(len(known))
        assert len(known) <= 500, "the profile was built from the whole history"
        return SimpleNamespace(read_ids=set())

    monkeypatch.setattr(pipeline, "build_profile", fake_build_profile)
    news = {f"n{i}": object() for i in range(1000)}
    fake = SimpleNamespace(
        settings=Settings(),
        corpus=SimpleNamespace(news=news),
        index=SimpleNamespace(has=lambda _id: True, embeddings=lambda ids: np.zeros((len(ids), 4))),
        idf={},
        now=None,
    )
    history = [HistoryEntry(news_id=f"n{i % 1000}") for i in range(100_000)]  # a corpus from before the cap
    profile = pipeline.Recommender._build_profile(fake, "u", history)
    assert sizes == [500]
    assert len(profile.read_ids) == 1000  # everything read still counts as read (never recommended again)


BOUNDED_INGEST = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
from newsrec import config
config.INGEST_MAX_FILE_BYTES = 16 * 2**20
from newsrec.cli import main
sys.exit(main(["ingest", "/dev/zero", "--format", "jsonl", "--corpus", "zero", "--no-index"]))
"""


def test_ingest_of_an_endless_stream_stops_at_the_byte_cap():
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero on this system")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", BOUNDED_INGEST], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr[-1500:]
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    assert "/dev/zero: more than 16,777,216 bytes" in done.stderr and "split the file" in done.stderr


def test_big_regular_file_is_refused_before_reading(tmp_path, monkeypatch):
    from newsrec import config

    monkeypatch.setattr(config, "INGEST_MAX_FILE_BYTES", 1000)
    big = tmp_path / "news.jsonl"
    big.write_text("".join(json.dumps({"id": f"n{i}", "title": f"Story {i}"}) + "\n" for i in range(100)))
    with pytest.raises(InputError, match="more than 1,000 bytes"):
        ingest(big, Settings.from_env(), corpus="big")


def test_csv_recovery_resumes_at_the_next_well_formed_row(tmp_path):
    lines = ["id,title"] + [f"r{i},Row {i}" for i in range(2, 5)] + ['r5,"Opens a quote and never closes it']
    lines += [f"r{i},Row {i}" for i in range(6, 12)]  # the 6 valid rows after line 5 of 11
    (tmp_path / "feed.csv").write_text("\n".join(lines) + "\n")
    report = ingest(tmp_path / "feed.csv", Settings.from_env(), corpus="csvq")
    kept = set(load_corpus(Settings.from_env(), "csvq").news)
    assert kept == {f"r{i}" for i in (2, 3, 4, 6, 7, 8, 9, 10, 11)}
    reasons = [f"{Path(p.file).name}:{p.line}: {p.reason}" for p in report.problems]
    assert any(r.startswith("feed.csv:5: malformed CSV") and "resumed at line 6" in r for r in reasons), reasons
    # A legitimately quoted multi-line body is still one row.
    (tmp_path / "multi.csv").write_text('id,title,body\nm1,One,"line one\nline two"\nm2,Two,plain\n')
    ingest(tmp_path / "multi.csv", Settings.from_env(), corpus="multi")
    news = load_corpus(Settings.from_env(), "multi").news
    assert news["m1"].body == "line one\nline two" and set(news) == {"m1", "m2"}


# --- streaming ingest: one line in memory, never the file ------------------------------------------------------

PADDING = "x" * 200_000  # a column the reader does not use (raw HTML, MIND's entity lists): 200 KB per row


def padded_source(folder: Path, fmt: str, rows: int) -> Path:
    """A file of `rows` news rows, each carrying PADDING in a column ingest does not keep."""
    if fmt == "jsonl":
        path = folder / "feed.jsonl"
        with path.open("w") as out:
            for i in range(rows):
                out.write(json.dumps({"id": f"p{i}", "title": f"Story {i}", "html": PADDING}) + "\n")
    elif fmt == "csv":
        path = folder / "feed.csv"
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["id", "title", "html"])
            for i in range(rows):
                writer.writerow([f"p{i}", f"Story {i}", PADDING])
    else:  # MIND news.tsv: id, category, subcategory, title, abstract, url, title entities, abstract entities
        path = folder / "news.tsv"
        with path.open("w") as out:
            for i in range(rows):
                out.write(f"p{i}\tnews\tworld\tStory {i}\tabstract\thttps://x.org/{i}\t{PADDING}\t[]\n")
    return path


def peak_bytes(call) -> tuple[int, object]:
    """Peak traced Python allocation while `call` runs (bytes, str, lists, dicts: everything a reader holds)."""
    import tracemalloc

    tracemalloc.start()
    try:
        try:
            result = call()
        except InputError as error:
            result = error
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "mind"])
def test_streamed_ingest_holds_a_line_not_the_file(tmp_path, fmt):
    source = padded_source(tmp_path, fmt, 160)  # 32 MB
    size = source.stat().st_size
    peak, report = peak_bytes(lambda: ingest(source, Settings.from_env(), fmt=fmt, corpus=f"pad-{fmt}"))
    assert not isinstance(report, Exception), report
    assert report.items_written == 160
    assert peak < size / 8, f"peak {peak / 2**20:.1f} MiB reading a {size / 2**20:.1f} MiB file"


def endless_rows(fifo: Path, stop) -> None:
    """An export that never ends: valid rows (with a big column ingest does not keep) into a named pipe."""
    try:
        with fifo.open("w") as out:
            i = 0
            while not stop.is_set():
                out.write(json.dumps({"id": f"e{i}", "title": f"Endless {i}", "html": PADDING}) + "\n")
                i += 1
    except (BrokenPipeError, OSError):
        pass  # the reader stopped at the cap and closed its end


@pytest.mark.parametrize("stream", ["dev-zero", "endless-rows"])
def test_endless_stream_stops_at_the_cap_in_bounded_memory_and_loses_nothing(tmp_path, monkeypatch, stream):
    import threading

    from newsrec import config

    settings = Settings.from_env()
    kept = tmp_path / "kept.jsonl"
    kept.write_text("".join(json.dumps({"id": f"k{i}", "title": f"Kept {i}"}) + "\n" for i in range(5)))
    ingest(kept, settings, corpus="keep")
    cap = 32 * 2**20
    monkeypatch.setattr(config, "INGEST_MAX_FILE_BYTES", cap)
    monkeypatch.setattr(config, "INGEST_MAX_LINE_CHARS", 2**20)
    stop = threading.Event()
    if stream == "dev-zero":
        if not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero on this system")
        source, writer = Path("/dev/zero"), None
    else:
        source = tmp_path / "export.jsonl"
        os.mkfifo(source)
        writer = threading.Thread(target=endless_rows, args=(source, stop), daemon=True)
        writer.start()
    try:
        peak, error = peak_bytes(lambda: ingest(source, settings, fmt="jsonl", corpus="keep"))
    finally:
        stop.set()
        if writer is not None:
            writer.join(timeout=30)
    assert isinstance(error, InputError), error
    assert f"{source}: more than {cap:,} bytes" in str(error) and "split the file" in str(error)
    assert peak < cap / 4, f"peak {peak / 2**20:.1f} MiB before refusing a stream at the {cap // 2**20} MiB cap"
    assert set(load_corpus(settings, "keep").news) == {f"k{i}" for i in range(5)}  # the committed corpus is whole


def test_a_line_over_the_line_cap_is_reported_and_the_rows_after_it_kept(tmp_path, monkeypatch):
    from newsrec import config

    monkeypatch.setattr(config, "INGEST_MAX_LINE_CHARS", 1000)
    rows = [
        {"id": "a", "title": "First"},
        {"id": "long", "title": "Long", "body": "y" * 5000},
        {"id": "b", "title": "B"},
    ]
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = ingest(path, Settings.from_env(), corpus="lines")
    assert set(load_corpus(Settings.from_env(), "lines").news) == {"a", "b"}
    reasons = [f"{Path(p.file).name}:{p.line}: {p.reason}" for p in report.problems]
    assert "feed.jsonl:2: line longer than 1,000 characters; skipped" in reasons, reasons


# --- the vector store: damage that keeps size and mtime -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("damaged", ["data_level0.bin", "length.bin", "link_lists.bin"])
def test_hnsw_damage_with_size_and_mtime_kept_is_found_and_rebuilt(tmp_path, damaged, newsrec_home):
    from test_faults import index_job, write_source

    ingest(write_source(tmp_path / "src", "n", items=1100), Settings.from_env(), corpus="dmg")
    first = index_job("dmg")
    assert first.returncode == 0, first.stderr[-2000:]
    target = next((newsrec_home / "chroma").rglob(damaged))
    stat = target.stat()
    target.write_bytes(os.urandom(stat.st_size))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # what a size + mtime manifest cannot see
    assert target.stat().st_size == stat.st_size and target.stat().st_mtime_ns == stat.st_mtime_ns
    again = index_job("dmg")  # the old code segfaults here (data_level0) or answers from garbage (length)
    assert again.returncode == 0, (again.returncode, again.stderr[-2000:])
    assert "the vector store was damaged" in again.stderr and "rebuilt from the corpus" in again.stderr
    found = json.loads(again.stdout.strip().splitlines()[-1])
    assert found["embedded"] == 1100 and found["consistent"] and found["hits"] == 5
    assert json.loads(first.stdout.strip().splitlines()[-1])["count"] == found["count"] == 1100
    assert list(newsrec_home.glob("chroma.damaged-*"))


def test_healthy_store_passes_the_structural_check(tmp_path, newsrec_home):
    from test_faults import index_job, write_source

    from newsrec import index_health

    ingest(write_source(tmp_path / "src", "n", items=1100), Settings.from_env(), corpus="ok")
    assert index_job("ok").returncode == 0
    store = newsrec_home / "chroma"
    assert list(store.rglob("link_lists.bin")) and index_health._segments_problem(store) is None
    (store / index_health.MANIFEST).unlink()
    assert index_health.problem(Settings.from_env()) is None  # no false alarm from the full check either


@pytest.mark.parametrize(("lost", "alarm"), [(0, False), (3, False), (8, False), (9, True), (32, True)])
def test_the_store_probe_alarms_on_a_graph_that_loses_many_items_not_a_few(tmp_path, monkeypatch, capsys, lost, alarm):
    """A healthy HNSW graph can leave a group of identical vectors unreachable (the hashing embedder's 1,100
    test stories have 64 distinct vectors; 3-4 builds in 10 lost one group, whatever the write size), which
    made the probe raise a false alarm on one lost item and the store be moved aside and rebuilt. Damage loses
    most items: more than a quarter of the 32 sampled must be lost for an alarm."""
    import chromadb
    import numpy as np
    from chromadb.api.models.Collection import Collection
    from chromadb.api.shared_system_client import SharedSystemClient
    from chromadb.config import Settings as ChromaSettings

    from newsrec import index_health

    store = tmp_path / "store"
    client = chromadb.PersistentClient(path=str(store), settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.create_collection("probe", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    ids = [f"n{i:02d}" for i in range(64)]
    collection.add(ids=ids, embeddings=np.random.default_rng(7).normal(size=(64, 8)).astype(np.float32))
    sampled = ids[::2]  # the probe samples every (64 // 32)-th record, in the store's order (ids added in order)
    gone = set(sampled[:lost])
    real_query = Collection.query

    def query(self, *args, **kwargs):  # the graph "loses" these items: their own vector finds others
        found = real_query(self, *args, **kwargs)
        if found["ids"][0] and found["ids"][0][0] in gone:
            found["ids"][0] = [i for i in ids if i not in gone][: len(found["ids"][0])]
            found["distances"][0] = [0.5] * len(found["ids"][0])
        return found

    monkeypatch.setattr(Collection, "query", query)
    monkeypatch.setattr(sys, "argv", ["probe", str(store)])
    try:
        exec(compile(index_health._PROBE, "probe", "exec"), {"__name__": "probe"})
        exit_code = 0
    except SystemExit as stop:
        exit_code = stop.code
    finally:
        SharedSystemClient.clear_system_cache()
    out = capsys.readouterr().out
    assert exit_code == (3 if alarm else 0), out
    assert (f"{lost} of 32 sampled items are not found" in out) if alarm else out.strip() == "ok"


# --- the photo-feature store (Qwen3-VL) -----------------------------------------------------------------------


def _feature_store(tmp_path: Path, photos: int = 2, nan: bool = False):
    """A store with one shard holding `photos` photos of grid (1, 4, 4) = 4 tokens, and their file records."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from newsrec.qwen3_vl.feature_store import FeatureStore
    from newsrec.qwen3_vl.vision_cache import VisionFeatures

    store = FeatureStore(tmp_path / "home", "fp", 1, 2, torch.float32)
    features, files = {}, []
    for n in range(photos):
        embeds = torch.full((4, 8), float("nan") if nan and n == 0 else float(n))
        features[f"k{n}"] = VisionFeatures((1, 4, 4), embeds, torch.ones(3, 4, 8))
        photo = tmp_path / f"p{n}.jpg"
        photo.write_bytes(b"photo %d" % n)
        files.append(FeatureStore.file_record(photo, f"k{n}"))
    store.put(features, files)
    return store, FeatureStore, torch


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_feature_shard_is_moved_aside_and_photos_encoded_again(tmp_path, damage, caplog):
    store, FeatureStore, torch = _feature_store(tmp_path)
    shard = next(store.dir.glob("shard-*.safetensors"))
    data = shard.read_bytes()
    shard.write_bytes(os.urandom(len(data)) if damage == "garbage" else data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        reopened = FeatureStore(tmp_path / "home", "fp", 1, 2, torch.float32)  # the old code raised here
    assert len(reopened) == 0 and reopened.get("k0") is None
    assert reopened.file_key(tmp_path / "p0.jpg") is None  # so the reranker decodes and encodes the photo
    assert not shard.exists() and (store.dir / f"damaged-{shard.name}").exists()
    assert "photo-feature shard" in caplog.text and "moved aside" in caplog.text


def test_feature_shard_metadata_that_disagrees_with_its_tensors_is_moved_aside(tmp_path):
    from safetensors.torch import save_file

    store, FeatureStore, torch = _feature_store(tmp_path)
    bad = store.dir / "shard-bad.safetensors"
    tensors = {"kx.embeds": torch.zeros(4, 8), "kx.deepstack": torch.zeros(3, 4, 8)}
    save_file(tensors, str(bad), metadata={"grids": json.dumps({"kx": [1, 8, 8]})})  # 16 tokens claimed, 4 stored
    reopened = FeatureStore(tmp_path / "home", "fp", 1, 2, torch.float32)
    assert "kx" not in reopened and not bad.exists()
    assert reopened.get("k1") is not None and reopened.get("k1").embeds.shape == (4, 8)  # the good shard stays


def test_nan_features_are_never_scored(tmp_path, caplog):
    store, FeatureStore, torch = _feature_store(tmp_path, nan=True)
    with caplog.at_level(logging.WARNING):
        assert store.file_key(tmp_path / "p0.jpg") is None  # NaN: the photo is encoded from its pixels instead
    assert "non-finite features for k0" in caplog.text
    assert len(list(store.dir.glob("damaged-shard-*"))) == 1
    fresh = FeatureStore(tmp_path / "home", "fp", 1, 2, torch.float32)
    assert fresh.file_key(tmp_path / "p0.jpg") is None and "k0" not in fresh


# --- a full disk and a read-only NEWSREC_HOME ----------------------------------------------------------------

# Runs the CLI with one function replaced by one that raises what the OS (or SQLite under Chroma) raises on a
# full disk or a read-only mount: root in a container can write anywhere, so the condition is injected.
DISK_RUNNER = """
import errno, importlib, json, os, sys
spec = json.loads(os.environ["DISK_FAULT"])
module_name, attr = spec["target"].split(":")
owner = importlib.import_module(module_name)
if "." in attr:
    cls_name, attr = attr.split(".")
    owner = getattr(owner, cls_name)
real = getattr(owner, attr)

def failing(*args, **kwargs):
    if spec["kind"] == "enospc":
        raise OSError(errno.ENOSPC, "No space left on device", spec.get("file"))
    if spec["kind"] == "erofs":
        raise OSError(errno.EROFS, "Read-only file system", spec.get("file"))
    from chromadb.errors import InternalError
    raise InternalError("Database error: error returned from database: (code: 13) database or disk is full")

setattr(owner, attr, failing)
from newsrec.cli import main
sys.exit(main(sys.argv[1:]))
"""

LITE = ["--embedder", "lite", "--reranker", "lite"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "target", "kind", "words"),
    [
        (["ingest", "{src}", "--corpus", "disk", "--no-index"], "os:replace", "enospc", "is full"),
        (["index", "--corpus", "disk", "--embedder", "lite"], "chromadb.api.models.Collection:Collection.upsert",
         "sqlite-full", "is full"),
        (["recommend", "--corpus", "disk", "--user", "u1", *LITE], "filelock:FileLock.acquire", "erofs", "read-only"),
        (["index", "--corpus", "disk", "--embedder", "lite"], "filelock:FileLock.acquire", "erofs", "read-only"),
        (["index", "--corpus", "disk", "--rebuild", "--embedder", "lite"], "filelock:FileLock.acquire", "erofs",
         "read-only"),
        (["recommend", "--corpus", "disk", "--user", "u1", *LITE], "chromadb.api.models.Collection:Collection.query",
         "sqlite-full", "is full"),
    ],
)  # fmt: skip
def test_full_disk_and_read_only_home_exit_2_with_a_hint(tmp_path, newsrec_home, argv, target, kind, words):
    root = small_corpus(tmp_path, "disk")
    argv = [arg.replace("{src}", str(tmp_path / "src" / "news.jsonl")) for arg in argv]
    if argv[0] == "recommend" and "query" in target:
        assert cli("index", "--corpus", "disk", "--embedder", "lite").returncode == 0
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    env["DISK_FAULT"] = json.dumps({"target": target, "kind": kind, "file": str(newsrec_home / "chroma.lock")})
    done = subprocess.run(
        [sys.executable, "-c", DISK_RUNNER, *argv], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert words in done.stderr and "NEWSREC_HOME" in done.stderr, done.stderr[-800:]
    assert set(load_corpus(Settings.from_env(), "disk").news) == {f"n{i}" for i in range(6)}  # nothing lost
    assert root.is_dir()


def test_the_app_shows_the_disk_hint_not_a_generic_error(newsrec_home):
    import errno

    import gradio as gr

    app = load_app_module()

    def full():
        raise OSError(errno.ENOSPC, "No space left on device", str(newsrec_home / "cache" / "x"))

    with pytest.raises(gr.Error) as shown:
        app.friendly(full)()
    assert "is full" in shown.value.message and "NEWSREC_HOME" in shown.value.message
    with pytest.raises(ZeroDivisionError):  # anything else is a bug and stays one
        app.friendly(lambda: 1 / 0)()


# --- the app on a read-only NEWSREC_HOME: browse, no writes ----------------------------------------------------


def _home_state(home: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under the home with its size and content: what "nothing was written" is checked against."""
    files = sorted(path for path in home.rglob("*") if path.is_file())
    return {str(path.relative_to(home)): (path.stat().st_size, path.read_bytes()) for path in files}


@pytest.fixture(params=["bind-mount", "injected"])
def read_only_home(request, tmp_path, newsrec_home, monkeypatch):
    """The home made read-only for real (a read-only bind mount over itself, needs mount rights) or, where
    mounting is not allowed, by the write probe failing as a read-only mount makes it fail (root in a container
    writes anywhere, so a plain chmod proves nothing)."""
    if request.param == "injected":
        import errno

        from newsrec import read_only

        def erofs(home):
            raise OSError(errno.EROFS, "Read-only file system", str(home))

        monkeypatch.setattr(read_only, "_probe", erofs)
        yield newsrec_home
        return
    try:
        mounted = subprocess.run(["mount", "--bind", str(newsrec_home), str(newsrec_home)], capture_output=True)
    except FileNotFoundError:  # no mount(8) on this machine
        pytest.skip("no `mount` command here: injected case only")
    if mounted.returncode != 0:
        pytest.skip(f"no mount rights here ({mounted.stderr.decode(errors='replace').strip()}): injected case only")
    try:
        # Some containers allow a bind mount but not making it read-only: a skip with the reason, not an error.
        remounted = subprocess.run(["mount", "-o", "remount,ro,bind", str(newsrec_home)], capture_output=True)
        if remounted.returncode != 0:
            reason = remounted.stderr.decode(errors="replace").strip()
            pytest.skip(f"cannot remount read-only here ({reason}): injected case only")
        yield newsrec_home
    finally:
        subprocess.run(["umount", str(newsrec_home)], capture_output=True)


@pytest.fixture
def indexed_home(tmp_path, newsrec_home):
    """A corpus ingested and indexed (lite) before the home turns read-only."""
    small_corpus(tmp_path, "ro")
    assert cli("index", "--corpus", "ro", "--embedder", "lite").returncode == 0
    return newsrec_home


@pytest.mark.slow
def test_the_app_starts_read_only_on_a_read_only_home(indexed_home, read_only_home, monkeypatch):
    from newsrec.ui.state import Controls, Session

    before = _home_state(read_only_home)
    monkeypatch.setenv("NEWSREC_CORPUS", "ro")
    settings = Settings.from_env(embedder="lite", reranker="lite")
    app = load_app_module()
    loader = app.make_loader(settings).start()  # the old code: "attempt to write a readonly database" / judgments
    dash = app.dashboard_factory(loader)()
    session, view = dash.run(Session(), "", Controls(k=3, candidates=6), "en", user_id="u1")
    assert len(session.result.reranked) == 3  # browsing works
    assert dash.rec.settings.read_only and "read-only" in view.system and "private copy" in view.system
    assert "只读" in dash.view(session, "zh").system
    assert 'data-action="relevant"' not in view.results  # no judgment buttons that cannot work
    said = dash.judge(session, session.result.reranked[0].item.id, True, "en")
    assert "unavailable" in said and "read-only" in said and not dash.judgments.judgments()
    _, liked = dash.feedback(session, "like", session.result.reranked[0].item.id, Controls(k=3, candidates=6))
    assert liked.results  # session feedback is in memory only: it still works
    assert _home_state(read_only_home) == before  # nothing written to the home


def test_a_writable_home_is_not_read_only(newsrec_home):
    from newsrec.read_only import browse_settings

    settings = Settings.from_env()
    assert browse_settings(settings) is settings and not list(newsrec_home.glob(".newsrec-write-probe-*"))
