"""The remote reranker: vLLM request/response contract, retries, circuit breaker, lite fallback with a
notice, and (slow) equality with the in-process Qwen3-VL reranker through a real `newsrec serve`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import HashingEmbedder, free_port
from PIL import Image

from newsrec.config import Settings
from newsrec.data.corpus import Corpus, save_corpus
from newsrec.qwen3_vl.prompt import document_text, query_text
from newsrec.rerankers.lite import LiteReranker
from newsrec.rerankers.remote import CircuitBreaker, RemoteReranker
from newsrec.types import Candidate, HistoryEntry, ImageRef, NewsItem, RerankRequest, User, UserProfile

FIXTURES = Path(__file__).parent / "fixtures" / "vllm"
REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = "Qwen/Qwen3-VL-Reranker-8B"


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


class FakeServer:
    """An httpx transport playing a vLLM server: answers /v1/models and /v1/rerank, or fails on demand."""

    def __init__(self, failures: list | None = None):
        self.failures = list(failures or [])  # per rerank call: an int status, an exception, or None (answer)
        self.requests: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        body = json.loads(request.content)
        self.requests.append(body)
        failure = self.failures.pop(0) if self.failures else None
        if isinstance(failure, Exception):
            raise failure
        if isinstance(failure, int):
            return httpx.Response(failure, json=recorded("error_response.json"))
        # vLLM answers best first; scores here are 1/(index+2) so the client must map them back by index.
        results = [{"index": i, "relevance_score": 1 / (i + 2)} for i in range(len(body["documents"]))]
        response = {**recorded("rerank_response.json"), "results": results[::-1]}
        return httpx.Response(200, json=response)


def photo(path: Path, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (96, 160, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)
    return path


@pytest.fixture
def scene(tmp_path):
    photo(tmp_path / "images" / "a.jpg", 1)
    photo(tmp_path / "images" / "p.jpg", 2)
    embedder = HashingEmbedder()
    items = [
        NewsItem(
            "n1", "Flooding in the valley", "Rescue teams evacuated two villages.", images=[ImageRef("images/a.jpg")]
        ),
        NewsItem("n2", "Rate decision", "The bank held rates.", images=[ImageRef("images/missing.jpg")]),
        NewsItem("n3", "Derby", ""),
    ]
    vectors = embedder.embed_documents(items)
    candidates = [Candidate(item, 0.5, i + 1, vectors[i]) for i, item in enumerate(items)]
    profile = UserProfile("u1", summary="climate and floods", images=[ImageRef("images/p.jpg")])
    request = RerankRequest(query="floods", profile=profile, instruction="news instruction")
    return tmp_path, embedder, candidates, request


def remote(server: FakeServer, root: Path, embedder, **options) -> RemoteReranker:
    options.setdefault("backoff_seconds", 0.0)
    return RemoteReranker(
        "http://rerank.test:8000/v1", Settings(), embedder, root, transport=httpx.MockTransport(server), **options
    )


# --- the vLLM contract ----------------------------------------------------------------------------------


def test_request_has_vllm_shape_and_the_in_process_prompt_sides(scene):
    root, embedder, candidates, request = scene
    server = FakeServer()
    reranker = remote(server, root, embedder)
    scores = reranker.score(request, candidates)

    assert reranker.name == f"remote-{MODEL}@http://rerank.test:8000"  # server and model key the score cache
    sent = server.requests[0]
    assert set(sent) <= set(recorded("rerank_request.json")) | {"instruction"}
    assert sent["model"] == MODEL and sent["instruction"] == "news instruction"
    # Query side: the typed query and the interests, with the profile photo first.
    parts = sent["query"]["content"]
    assert [p["type"] for p in parts] == ["image_url", "text"]
    assert parts[1]["text"] == query_text("floods", "climate and floods")
    assert base64.b64decode(parts[0]["image_url"]["url"].split(",", 1)[1]) == (root / "images/p.jpg").read_bytes()
    assert parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    # Documents: photos then "title\nbody"; a missing photo is skipped, as the in-process reranker does.
    first, second, third = sent["documents"]
    assert [p["type"] for p in first["content"]] == ["image_url", "text"]
    assert first["content"][1]["text"] == document_text(
        "Flooding in the valley", "Rescue teams evacuated two villages."
    )
    assert second == document_text("Rate decision", "The bank held rates.") and third == "Derby"
    # Results come best first; each score goes back to its own candidate.
    assert list(scores) == pytest.approx([1 / 2, 1 / 3, 1 / 4])
    assert scores.cacheable and not scores.notice


def test_recorded_vllm_response_is_read_by_index(scene):
    root, embedder, candidates, request = scene
    response = recorded("rerank_response.json")  # 3 results for 4 documents (top_n=3), best first
    transport = httpx.MockTransport(
        lambda r: (
            httpx.Response(200, json=response)
            if r.url.path == "/v1/rerank"
            else httpx.Response(200, json={"data": [{"id": MODEL}]})
        )
    )
    reranker = RemoteReranker("http://x:1", Settings(), embedder, root, transport=transport)
    four = reranker.score(request, [*candidates, candidates[0]])
    assert "3 of 4" in four.notice and not four.cacheable  # an incomplete answer is not trusted
    full = {**response, "results": [*response["results"], {"index": 2, "relevance_score": 0.5}]}
    transport.handler = lambda r: httpx.Response(200, json=full)
    scores = reranker.score(request, [*candidates, candidates[0]])
    assert list(scores) == pytest.approx([0.8731, 0.8731, 0.5, 0.9412]) and not scores.notice


# --- failures -----------------------------------------------------------------------------------------


def test_transient_errors_are_retried(scene):
    root, embedder, candidates, request = scene
    server = FakeServer(failures=[503, httpx.ReadTimeout("slow")])
    scores = remote(server, root, embedder, retries=2).score(request, candidates)
    assert len(server.requests) == 3 and not scores.notice and scores.cacheable


def test_down_server_falls_back_to_lite_with_a_notice_and_the_breaker_opens(scene):
    root, embedder, candidates, request = scene
    now = [0.0]
    server = FakeServer(failures=[httpx.ConnectError("refused")] * 9)
    breaker = CircuitBreaker(threshold=2, reset_seconds=30, clock=lambda: now[0])
    reranker = remote(server, root, embedder, retries=1, breaker=breaker)
    lite = LiteReranker(embedder).score(request, candidates)

    first = reranker.score(request, candidates)
    assert list(first) == pytest.approx(lite)
    assert "unavailable" in first.notice and "lite" in first.notice and not first.cacheable
    reranker.score(request, candidates)
    assert breaker.state == "open" and len(server.requests) == 4  # 2 calls x (1 try + 1 retry)
    third = reranker.score(request, candidates)
    assert len(server.requests) == 4 and "too many recent failures" in third.notice  # fails fast, no call
    now[0] = 31.0  # half-open: one trial call, which succeeds and closes the breaker
    server.failures = []
    recovered = reranker.score(request, candidates)
    assert not recovered.notice and breaker.state == "closed" and len(server.requests) == 5


def test_client_errors_are_not_retried(scene):
    root, embedder, candidates, request = scene
    server = FakeServer(failures=[404])
    scores = remote(server, root, embedder, retries=3).score(request, candidates)
    assert len(server.requests) == 1 and "does not exist" in scores.notice


def test_pipeline_shows_the_notice_and_does_not_cache_fallback_scores(newsrec_home):
    from newsrec.pipeline import Recommender

    embedder = HashingEmbedder()
    settings = Settings.from_env(corpus="tiny", embedder="lite")
    now = datetime(2026, 11, 20, tzinfo=timezone.utc)
    news = {
        f"n{i}": NewsItem(
            f"n{i}", f"battery story {i}", "solid-state battery", "autos", published_at=now - timedelta(i)
        )
        for i in range(8)
    }
    corpus = Corpus(name="tiny", root=settings.corpus_dir("tiny"), news=news)
    corpus.users = {"fan": User("fan", history=[HistoryEntry("n0")])}
    save_corpus(corpus)
    server = FakeServer(failures=[httpx.ConnectError("refused")] * 4)
    reranker = remote(server, corpus.root, embedder, retries=0)
    recommender = Recommender.from_settings(settings, embedder=embedder, reranker=reranker)
    down = recommender.recommend("fan", query="battery")
    assert "unavailable" in down.notice and down.reranked
    again = recommender.recommend("fan", query="battery")  # the server is still down
    assert again.cache_hits == 0  # the fallback scores were not cached under the remote reranker's name
    server.failures = []
    reranker.breaker.success()
    fine = recommender.recommend("fan", query="battery")
    assert not fine.notice and fine.reranker.startswith("remote-")
    assert recommender.recommend("fan", query="battery").cache_hits == fine.candidates


def test_remote_is_selected_by_url_setting(monkeypatch):
    monkeypatch.setenv("NEWSREC_RERANKER_URL", "http://127.0.0.1:9")
    assert Settings.from_env().resolved_reranker == "remote"
    from newsrec.errors import InputError
    from newsrec.rerankers.remote import _base_url

    with pytest.raises(InputError, match="not http"):
        _base_url("ftp://x")


# --- equality with the in-process reranker, through a real server ------------------------------------------


@pytest.mark.slow
def test_recommend_through_newsrec_serve_equals_in_process(tmp_path, qwen_files_dir, newsrec_home):
    """The tiny random Qwen3-VL checkpoint, served by `python -m newsrec serve` on a loopback port."""
    from newsrec.pipeline import Recommender
    from newsrec.qwen3_vl.random_model import make_random_checkpoint
    from newsrec.rerankers import get_reranker

    checkpoint = make_random_checkpoint(tmp_path / "tiny", "tiny", qwen_files_dir, seed=0)
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NEWSREC_HOME": str(newsrec_home)}
    env.pop("NEWSREC_RERANKER_URL", None)
    command = [sys.executable, "-m", "newsrec", "serve", "--port", str(port), "--device", "cpu"]
    command += ["--reranker", "qwen3-vl-reranker-2b", "--reranker-model", str(checkpoint), "--embedder", "lite"]
    command += ["--serve-embedder"]  # the lite embedder at /v1/embeddings too: compared below
    server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        settings = Settings.from_env(corpus="eq", embedder="lite")
        now = datetime(2026, 11, 20, tzinfo=timezone.utc)
        root = settings.corpus_dir("eq")
        news = {}
        for i in range(16):
            images = [ImageRef(f"images/{i}.jpg")] if i % 3 == 0 else []
            if images:
                photo(root / images[0].uri, i)
            topic = ["flood rescue", "battery cars", "election night", "football derby"][i % 4]
            news[f"n{i}"] = NewsItem(
                f"n{i}", f"{topic} {i}", f"{topic} report {i}", published_at=now - timedelta(i), images=images
            )
        corpus = Corpus(name="eq", root=root, news=news)
        corpus.users = {"u": User("u", history=[HistoryEntry("n0"), HistoryEntry("n4"), HistoryEntry("n1")])}
        save_corpus(corpus)
        embedder = HashingEmbedder()
        local = get_reranker(
            "qwen3-vl-reranker-2b", model=str(checkpoint), device="cpu", settings=settings, image_root=root
        )
        _wait_for(f"http://127.0.0.1:{port}/health", server)
        far = RemoteReranker(f"http://127.0.0.1:{port}", settings, embedder, root)
        assert far.model == "qwen3-vl-reranker-2b"  # the name the server was started with, not its cache key
        for query in ("flood", ""):
            want = Recommender.from_settings(settings, embedder=embedder, reranker=local).recommend("u", query=query)
            got = Recommender.from_settings(settings, embedder=embedder, reranker=far).recommend("u", query=query)
            assert not got.notice, got.notice
            assert len(got.reranked) == len(want.reranked) >= 4  # a search lists only what matches it
            assert [r.item.id for r in got.reranked] == [r.item.id for r in want.reranked]
            diff = max(abs(a.score - b.score) for a, b in zip(got.reranked, want.reranked, strict=True))
            assert diff <= 1e-5, diff
        concurrent_callers_equal_in_process(f"http://127.0.0.1:{port}", local, root)
        remote_embedder_equals_in_process(f"http://127.0.0.1:{port}", settings, corpus)
    finally:
        server.terminate()
        server.wait(timeout=30)


def concurrent_callers_equal_in_process(url: str, local, root: Path) -> None:
    """Callers with distinct queries (some with a profile photo) at once: the server merges them into
    shared decoder calls (score_many); each still gets the in-process engine's scores and token counts."""
    from concurrent.futures import ThreadPoolExecutor

    from newsrec.qwen3_vl.prompt import ScoreRequest, Side
    from newsrec.serving.scorers import ImageDecoder

    photo_url = "data:image/jpeg;base64," + base64.b64encode((root / "images" / "0.jpg").read_bytes()).decode()
    documents = ["flood rescue in the valley", {"content": [{"type": "image_url", "image_url": {"url": photo_url}}]}]
    documents += [f"election night report {i}" for i in range(3)]
    queries: list = [f"news about topic {i} " * (1 + i % 3) for i in range(12)]  # prefixes of different lengths
    queries[1::3] = [{"content": [{"type": "image_url", "image_url": {"url": photo_url}}, {"type": "text", "text": q}]}
                     for q in queries[1::3]]  # fmt: skip

    def ask(query) -> dict:
        body = {"query": query, "documents": documents, "return_documents": False}
        return httpx.post(f"{url}/v1/rerank", json=body, timeout=120).json()

    turns_before = _metric(url, "newsrec_batch_pairs_count")
    with ThreadPoolExecutor(len(queries)) as pool:
        answers = list(pool.map(ask, queries))
    turns = _metric(url, "newsrec_batch_pairs_count") - turns_before
    decoder = ImageDecoder(local.engine.options.max_pixels, 2**24)
    photo = decoder.decode(photo_url)

    def side(item) -> Side:
        if isinstance(item, str):
            return Side(item)
        texts = [part["text"] for part in item["content"] if part["type"] == "text"]
        return Side("".join(texts), [photo])

    sides = [side(d) for d in documents]
    for query, answer in zip(queries, answers, strict=True):
        want = local.engine.score_many([ScoreRequest(local.settings.instruction, side(query), sides)])[0]
        got = [0.0] * len(documents)
        for result in answer["results"]:
            got[result["index"]] = result["relevance_score"]
        assert np.max(np.abs(np.asarray(got) - want.scores)) <= 1e-5
        assert answer["usage"]["prompt_tokens"] == sum(want.tokens)
    assert turns < len(queries)  # some callers shared a worker turn (one score_many call)


def remote_embedder_equals_in_process(url: str, settings: Settings, corpus: Corpus) -> None:
    """NEWSREC_EMBEDDER_URL: the served lite embedder gives the in-process lite vectors, same name and size."""
    from newsrec.embedders import get_embedder

    local = get_embedder("lite", settings=settings)
    remote = get_embedder("remote", settings=replace(settings, embedder_url=url), image_root=corpus.root)
    assert (remote.name, remote.dim) == (local.name, local.dim)
    items = list(corpus.news.values())  # some with photos (sent, and ignored by lite as in-process)
    np.testing.assert_allclose(remote.embed_documents(items), local.embed_documents(items), atol=1e-5)
    queries = ["flood rescue", "", "选举之夜"]
    np.testing.assert_allclose(remote.embed_queries(queries), local.embed_queries(queries), atol=1e-5)


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _wait_for(url: str, process: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stdout.read().decode()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds} s")
