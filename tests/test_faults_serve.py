"""Fault suite, round two (issue 20): `newsrec serve` under hostile callers, and the remote client under a
hostile server. Run alone with `-m faults`.

The server runs in process (an ASGI call or FastAPI's TestClient) with a small fake scorer; the bench test
starts a real uvicorn server on a loopback port.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import threading
import time

import httpx
import numpy as np
import pytest
from conftest import HashingEmbedder, free_port

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from newsrec.config import Settings  # noqa: E402
from newsrec.errors import ServiceUnavailableError  # noqa: E402
from newsrec.qwen3_vl.prompt import ScoreResult  # noqa: E402
from newsrec.rerankers.remote import RemoteReranker  # noqa: E402
from newsrec.serving import ServeLimits, create_app  # noqa: E402
from newsrec.types import Candidate, NewsItem, RerankRequest  # noqa: E402

pytestmark = pytest.mark.faults

JSON = {"content-type": "application/json"}


class TinyScorer:
    """Scores a document by its length; reads images (so the decoder runs) and counts what it was given."""

    name = "tiny"
    default_instruction = "rank"
    max_pixels = 64 * 32 * 32

    def __init__(self):
        self.pairs = 0

    def score_many(self, requests):
        self.pairs += sum(len(r.documents) for r in requests)
        return [ScoreResult([len(d.text) / 100 for d in r.documents], [1] * len(r.documents)) for r in requests]


def png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 0).save(buffer, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# --- the body limit while the body streams ----------------------------------------------------------------


def asgi_post(app, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """POST /v1/rerank straight through ASGI with a body in chunks; (status, chunks the server pulled)."""
    pulled = [0]
    sent: list[dict] = []

    async def receive():
        if pulled[0] < len(chunks):
            pulled[0] += 1
            return {"type": "http.request", "body": chunks[pulled[0] - 1], "more_body": pulled[0] < len(chunks)}
        await asyncio.sleep(3600)  # the client keeps the connection open
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/rerank",
        "raw_path": b"/v1/rerank",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }

    async def main():
        await asyncio.wait_for(app(scope, receive, send), timeout=30)

    asyncio.run(main())
    start = next(message for message in sent if message["type"] == "http.response.start")
    return start["status"], pulled[0]


def test_chunked_body_over_the_limit_is_refused_while_it_streams():
    app = create_app(TinyScorer(), ServeLimits(max_body_bytes=10_000))
    prefix = b'{"query": "q", "documents": ["'
    chunks = [prefix] + [b"x" * 1000] * 150 + [b'"]}']  # 150 KB, no Content-Length (chunked)
    status, pulled = asgi_post(app, chunks, [(b"transfer-encoding", b"chunked")])
    assert status == 413
    assert pulled <= 12, f"the server read {pulled} of {len(chunks)} chunks before refusing"
    # A lying Content-Length (small) with a large chunked body is refused the same way.
    status, pulled = asgi_post(app, chunks, [(b"content-length", b"100")])
    assert status == 413 and pulled <= 12
    # A chunked body under the limit still works through the buffered replay.
    with TestClient(app) as client:
        response = client.post("/v1/rerank", content=iter([prefix, b"short", b'"]}']), headers=JSON)
        assert response.status_code == 200, response.text
        assert "content-length" not in response.request.headers


# --- the pixel budget ----------------------------------------------------------------------------------------


def test_request_pixel_budget_refuses_before_decoding():
    scorer = TinyScorer()
    limits = ServeLimits(max_request_pixels=4000 * 4000)
    big = png(3000, 3000)  # a few KB of PNG, 9 M pixels
    with TestClient(create_app(scorer, limits)) as client:
        documents = [{"content": [{"type": "image_url", "image_url": {"url": big}}]}] * 1
        assert client.post("/v1/rerank", json={"query": "q", "documents": documents}).status_code == 200
        other = png(3000, 2999)  # a second distinct picture: 18 M pixels in all
        documents = [
            {"content": [{"type": "image_url", "image_url": {"url": url}}]} for url in (other, png(2999, 3000))
        ]
        started = time.perf_counter()
        response = client.post("/v1/rerank", json={"query": "q", "documents": documents})
        assert response.status_code == 400, response.text
        assert "pixels" in response.json()["error"]["message"]
        assert time.perf_counter() - started < 5
    assert scorer.pairs == 1  # the refused request reached no model


# --- invalid UTF-16 surrogates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"query": "caf\\ud800", "documents": ["a", "b"]}',
        b'{"query": "q", "documents": ["a", "b\\udfff c"]}',
        b'{"query": "q", "documents": ["a"], "instruction": "\\ud83d rank"}',
        b'{"queries": "q", "documents": [{"content": [{"type": "text", "text": "\\udc80"}]}]}',
    ],
)
def test_lone_surrogates_are_400_not_500(raw):
    with TestClient(create_app(TinyScorer()), raise_server_exceptions=False) as client:
        path = "/v1/score" if b"queries" in raw else "/v1/rerank"
        response = client.post(path, content=raw, headers=JSON)
        assert response.status_code == 400, response.text
        assert "surrogate" in response.json()["error"]["message"]
        # A valid surrogate pair (an emoji) is fine.
        fine = client.post("/v1/rerank", content=b'{"query": "\\ud83d\\ude00", "documents": ["a"]}', headers=JSON)
        assert fine.status_code == 200


# --- bounded metric labels -------------------------------------------------------------------------------------


def test_metric_labels_are_route_templates_and_unknown_paths_share_one():
    with TestClient(create_app(TinyScorer(), api_token="t")) as client:
        for n in range(300):
            client.get(f"/probe/{n}")  # unauthenticated, distinct paths
        client.post("/v1/rerank", json={"query": "q", "documents": ["a"]}, headers={"Authorization": "Bearer t"})
        metrics = client.get("/metrics", headers={"Authorization": "Bearer t"}).text
    routes = set(re.findall(r'newsrec_requests_total\{route="([^"]*)"', metrics))
    assert routes <= {"unmatched", "/v1/rerank", "/metrics"}, sorted(routes)[:5]
    assert 'newsrec_requests_total{route="unmatched",status="401"} 300.0' in metrics
    assert len(metrics) < 20_000


# --- the remote client against a broken server -----------------------------------------------------------------


def scene():
    embedder = HashingEmbedder()
    items = [NewsItem(f"n{i}", f"Story {i}", "") for i in range(3)]
    vectors = embedder.embed_documents(items)
    return embedder, [Candidate(item, 0.5, i + 1, vectors[i]) for i, item in enumerate(items)]


def ranked(*pairs) -> list[dict]:
    return [{"index": index, "relevance_score": score} for index, score in pairs]


@pytest.mark.parametrize(
    "results",
    [
        ranked((0, 1e300), (1, 0.2), (2, 0.1)),
        ranked((0, 0.3), (1, 0.2), (-1, 0.1)),
        ranked((0, 0.3), (1, 0.2), (3, 0.1)),
        ranked((0, 0.3), (0, 0.2), (2, 0.1)),
        ranked((0, "-inf"), (1, 0.2), (2, 0.1)),
    ],
)
def test_remote_client_rejects_out_of_range_scores_and_indices(results):
    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        return httpx.Response(200, json={"results": results})

    embedder, candidates = scene()
    reranker = RemoteReranker(
        "http://x:1", Settings(), embedder, transport=httpx.MockTransport(server), backoff_seconds=0.0
    )
    scores = reranker.score(RerankRequest(query="story"), candidates)
    assert scores.notice and "lite reranker" in scores.notice  # fallback plus notice
    assert not scores.cacheable  # never cached under the server's name
    assert all(np.isfinite(scores)) and all(abs(s) < 1e3 for s in scores)


def test_remote_embedder_rejects_out_of_range_indices():
    from newsrec.embedders.remote import _vectors

    payload = {"data": [{"index": -1, "embedding": [1.0, 0.0]}, {"index": 0, "embedding": [0.0, 1.0]}]}
    with pytest.raises(ServiceUnavailableError, match="index -1"):
        _vectors(payload, 2, 2)


def test_remote_embedder_rejects_non_finite_vectors_with_a_message_that_says_so():
    from newsrec.embedders.remote import _vectors

    for bad in ([float("nan"), 0.0], [float("inf"), 1.0]):
        payload = {"data": [{"index": 0, "embedding": [1.0, 0.0]}, {"index": 1, "embedding": bad}]}
        with pytest.raises(ServiceUnavailableError, match="1 vectors with NaN or infinite values"):
            _vectors(payload, 2, 2)
    with pytest.raises(ServiceUnavailableError, match="has 1 vectors for 2 inputs"):
        _vectors({"data": [{"index": 1, "embedding": [1.0, 0.0]}]}, 2, 2)


def test_lone_surrogates_in_embedding_inputs_are_400():
    with TestClient(create_app(TinyScorer(), embedder=HashingEmbedder()), raise_server_exceptions=False) as client:
        for raw in (b'{"input": "caf\\ud800"}', b'{"input": [{"content": [{"type": "text", "text": "\\udfff"}]}]}'):
            response = client.post("/v1/embeddings", content=raw, headers=JSON)
            assert response.status_code == 400, response.text
            assert "surrogate" in response.json()["error"]["message"]
        assert client.post("/v1/embeddings", content=b'{"input": "\\ud83d\\ude00"}', headers=JSON).status_code == 200


# --- bench serve --token -----------------------------------------------------------------------------------------


def test_bench_serve_sends_the_token_to_a_secured_server():
    import uvicorn

    from newsrec.bench import serve as bench_serve

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(TinyScorer(), api_token="s3cret"), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        import argparse

        commands = argparse.ArgumentParser().add_subparsers()
        bench_serve.add_parser(commands)
        args = commands.choices["serve"].parse_args(["--token", "s3cret", "--url", f"http://127.0.0.1:{port}"])
        assert args.token == "s3cret"
        bodies = [{"query": "q", "documents": ["a", "bb"], "return_documents": False}] * 4
        figures = bench_serve._phase(f"http://127.0.0.1:{port}", bodies, 2, 0, args.token)
        assert figures["errors"] == 0
        assert figures["server_pairs_scored"] > 0  # /metrics was read with the token too
        refused = bench_serve._phase(f"http://127.0.0.1:{port}", bodies, 2, 0, "wrong")
        assert refused["errors"] == 4
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- the pixel budget and byte limit on /v1/embeddings ------------------------------------------------------------


class CountingEmbedder(HashingEmbedder):
    """Counts the photos it was handed (the real embedders decode every one)."""

    name = "counting"

    def __init__(self):
        super().__init__()
        self.photos = 0

    def embed_documents(self, items):
        self.photos += sum(len(item.images) for item in items)
        return super().embed_documents(items)


def photo_input(*urls: str) -> dict:
    return {
        "content": [
            {"type": "text", "text": "a photo"},
            *({"type": "image_url", "image_url": {"url": u}} for u in urls),
        ]
    }


def test_embeddings_charge_the_request_pixel_budget_before_decoding():
    embedder = CountingEmbedder()
    limits = ServeLimits(max_request_pixels=4000 * 4000, max_image_bytes=200_000)
    with TestClient(create_app(TinyScorer(), limits, embedder=embedder)) as client:
        fine = client.post("/v1/embeddings", json={"input": [photo_input(png(3000, 3000))]})
        assert fine.status_code == 200, fine.text
        assert embedder.photos == 1
        # Two 9 M pixel photos of a few KB each: 18 M pixels, over the 16 M budget.
        body = {"input": [photo_input(png(3000, 3000)), photo_input(png(2999, 3000))]}
        refused = client.post("/v1/embeddings", json=body)
        assert refused.status_code == 400, refused.text
        assert "pixels" in refused.json()["error"]["message"]
        # One photo over the per-image byte limit.
        noisy = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)).save(noisy, "PNG")
        url = "data:image/png;base64," + base64.b64encode(noisy.getvalue()).decode()
        too_big = client.post("/v1/embeddings", json={"input": [photo_input(url)]})
        assert too_big.status_code == 400 and "MB" in too_big.json()["error"]["message"], too_big.text
    assert embedder.photos == 1  # the refused requests reached no embedder


# --- refusals are counted in /metrics --------------------------------------------------------------------------


def test_refused_requests_are_counted_in_metrics_with_bounded_labels():
    limits = ServeLimits(max_body_bytes=50_000, max_request_pixels=4000 * 4000)
    auth = {"Authorization": "Bearer t"}
    with TestClient(create_app(TinyScorer(), limits, api_token="t")) as client:
        # 413: a body over the limit, with and without Content-Length, on a route and on unknown paths
        assert client.post("/v1/rerank", content=b"x" * 60_000, headers={**JSON, **auth}).status_code == 413
        chunked = iter([b"x" * 30_000, b"x" * 30_000])
        assert client.post("/v1/rerank", content=chunked, headers={**JSON, **auth}).status_code == 413
        for n in range(50):
            assert client.post(f"/big/{n}", content=b"x" * 60_000, headers=JSON).status_code == 413
        # 400: a lone surrogate; the pixel budget
        raw = b'{"query": "caf\\ud800", "documents": ["a"]}'
        assert client.post("/v1/rerank", content=raw, headers={**JSON, **auth}).status_code == 400
        documents = [{"content": [{"type": "image_url", "image_url": {"url": png(3000, 3000 - n)}}]} for n in (0, 1)]
        body = {"query": "q", "documents": documents}
        assert client.post("/v1/rerank", json=body, headers=auth).status_code == 400
        # 401: no token, on a route and on unknown paths
        assert client.post("/v1/score", json={"queries": "q", "documents": ["a"]}).status_code == 401
        for n in range(50):
            assert client.get(f"/nothing/{n}").status_code == 401
        metrics = client.get("/metrics", headers=auth).text
    counted = {
        (route, status): float(value)
        for route, status, value in re.findall(
            r'newsrec_requests_total\{route="([^"]*)",status="(\d+)"\} (\S+)', metrics
        )
    }
    assert counted[("/v1/rerank", "413")] == 2
    assert counted[("unmatched", "413")] == 50
    assert counted[("/v1/rerank", "400")] == 2
    assert counted[("/v1/score", "401")] == 1
    assert counted[("unmatched", "401")] == 50
    assert {route for route, _ in counted} <= {"/v1/rerank", "/v1/score", "unmatched", "/metrics"}
