"""`newsrec serve`: the vLLM wire contract, limits and errors, auth, metrics, and cross-request batching.

A fake scorer stands in for the model here (its score is a function of the text and the decoded
images, so wrong routing or a wrong merge changes the numbers); the real engine behind the server is
tested in test_remote_reranker.py against the in-process reranker.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from newsrec.errors import InputError  # noqa: E402
from newsrec.images import smart_resize  # noqa: E402
from newsrec.qwen3_vl.prompt import ScoreResult  # noqa: E402
from newsrec.serving import ServeLimits, create_app  # noqa: E402
from newsrec.serving.batcher import Batcher  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "vllm"


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


class FakeScorer:
    """score = f(instruction, query, document, image sizes): deterministic, different for every input.

    Its token count of a pair is the words of instruction, query and document plus 10 per image."""

    name = "fake-vl"
    default_instruction = "default instruction"
    max_pixels = 64 * 32 * 32

    def __init__(self, delay: float = 0.0):
        self.calls: list[list[tuple[str, str, int]]] = []  # per score_many call: (instruction, query, documents)
        self.delay = delay
        self.lock = threading.Lock()
        self.fail = False

    def value(self, instruction, query_text, query_sizes, document_text, document_sizes) -> float:
        digest = hash((instruction, query_text, tuple(query_sizes), document_text, tuple(document_sizes)))
        return (digest % 10_000) / 10_000

    @staticmethod
    def tokens(instruction, query_text, n_query_images, document_text, n_document_images) -> int:
        words = len(f"{instruction} {query_text} {document_text}".split())
        return words + 10 * (n_query_images + n_document_images)

    def score_many(self, requests):
        with self.lock:
            self.calls.append([(r.instruction, r.query.text, len(r.documents)) for r in requests])
        if self.fail:
            raise RuntimeError("CUDA error")
        if any(r.query.text == "poison" for r in requests):
            raise InputError("a poisoned query")
        time.sleep(self.delay)
        results = []
        for r in requests:
            sizes = [image.size for image in r.query.images]
            docs = r.documents
            scores = [self.value(r.instruction, r.query.text, sizes, d.text, [i.size for i in d.images]) for d in docs]
            counts = [self.tokens(r.instruction, r.query.text, len(sizes), d.text, len(d.images)) for d in docs]
            results.append(ScoreResult(scores, counts))
        return results


def data_url(width: int = 64, height: int = 48, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 150)).save(buffer, fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def image_doc(url: str) -> dict:
    return {"content": [{"type": "image_url", "image_url": {"url": url}}]}


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture
def client(scorer):
    with TestClient(create_app(scorer, ServeLimits(max_documents=20, max_text_chars=500))) as test_client:
        yield test_client


def shape(value):
    """The JSON structure without the values: keys and types, lists by their first element."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__


# --- the vLLM contract ------------------------------------------------------------------------------------


def test_recorded_vllm_rerank_request_gets_a_vllm_shaped_answer(client, scorer):
    body = {**recorded("rerank_request.json"), "model": scorer.name}
    response = client.post("/v1/rerank", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    want = recorded("rerank_response.json")
    assert set(payload) >= set(want) and set(payload["results"][0]) == set(want["results"][0])
    assert len(payload["results"]) == body["top_n"]
    scores = [r["relevance_score"] for r in payload["results"]]
    assert scores == sorted(scores, reverse=True)
    # Each result's score is the scorer's for that document: text parts joined, images decoded.
    query = body["query"]
    height, width = smart_resize(48, 64, factor=32, min_pixels=4 * 32 * 32, max_pixels=scorer.max_pixels)
    expected = [
        scorer.value("default instruction", query, [], body["documents"][0], []),
        scorer.value("default instruction", query, [], body["documents"][0], []),
        scorer.value("default instruction", query, [], "", [(width, height)]),  # 64x48 resized to the 32-px grid
        scorer.value("default instruction", query, [], body["documents"][0], [(width, height)]),
    ]
    for result in payload["results"]:
        assert result["relevance_score"] == pytest.approx(expected[result["index"]])


def test_rerank_aliases_and_top_n(client):
    for route in ("/rerank", "/v2/rerank"):
        payload = client.post(route, json={"query": "q", "documents": ["a", "b", "c"], "top_n": 1}).json()
        assert len(payload["results"]) == 1
    payload = client.post("/v1/rerank", json={"query": "q", "documents": ["a"], "return_documents": False}).json()
    assert "document" not in payload["results"][0]


@pytest.mark.parametrize("name", ["score_request.json", "score_request_legacy.json"])
def test_recorded_vllm_score_requests(client, scorer, name):
    body = {**recorded(name), "model": scorer.name}
    response = client.post("/v1/score", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    want = recorded("score_response.json")
    assert shape(payload)["data"] == shape(want)["data"]
    assert set(payload) == set(want) and payload["object"] == "list"
    assert [item["index"] for item in payload["data"]] == list(range(len(payload["data"])))


def test_score_pairs_n_to_n_and_extension_instruction(client, scorer):
    body = {"queries": ["q1", "q2"], "documents": ["d1", "d2"], "instruction": "news only"}
    data = client.post("/v1/score", json=body).json()["data"]
    assert [d["score"] for d in data] == pytest.approx(
        [scorer.value("news only", "q1", [], "d1", []), scorer.value("news only", "q2", [], "d2", [])]
    )


def test_models_health_and_metrics(client, scorer):
    assert client.get("/v1/models").json()["data"][0]["id"] == scorer.name
    assert client.get("/health").json()["status"] == "ok"
    client.post("/v1/rerank", json={"query": "q", "documents": ["a", "b"]})
    metrics = client.get("/metrics").text
    assert 'newsrec_requests_total{route="/v1/rerank",status="200"} 1.0' in metrics
    assert "newsrec_pairs_total 2.0" in metrics


def test_served_model_names_as_in_vllm(scorer):
    """`serve --reranker qwen3-vl-reranker-2b --reranker-model DIR` accepts the name it was started with and the
    checkpoint; `--served-model-name` (repeatable) replaces them; the score-cache key is never a served name."""
    from newsrec.cli import build_parser
    from newsrec.config import Settings
    from newsrec.serving.scorers import served_model_names

    settings = Settings(reranker="qwen3-vl-reranker-2b", reranker_model="/models/rr")
    served = served_model_names(settings)
    assert served == ["qwen3-vl-reranker-2b", "/models/rr"]
    assert served_model_names(Settings(reranker="qwen3-vl-reranker-8b")) == [
        "qwen3-vl-reranker-8b",
        "Qwen/Qwen3-VL-Reranker-8B",
    ]
    args = build_parser().parse_args(["serve", "--served-model-name", "news-rr", "--served-model-name", "rr"])
    assert served_model_names(settings, args.served_model_name) == ["news-rr", "rr"]
    with TestClient(create_app(scorer, served_names=served)) as client:
        for name in served:
            response = client.post("/v1/rerank", json={"model": name, "query": "q", "documents": ["d"]})
            assert response.status_code == 200 and response.json()["model"] == name
        refused = client.post("/v1/rerank", json={"model": scorer.name, "query": "q", "documents": ["d"]})
        assert refused.status_code == 404 and "qwen3-vl-reranker-2b" in refused.json()["error"]["message"]
        listed = [entry["id"] for entry in client.get("/v1/models").json()["data"]]
        assert listed == served and scorer.name not in listed
        assert client.post("/v1/score", json={"text_1": "q", "text_2": "d"}).json()["model"] == served[0]


# --- errors and limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"query": "q", "documents": []}, 400, "empty"),
        ({"query": "q", "documents": ["d"] * 21}, 400, "limit is 20"),
        ({"query": "q" * 501, "documents": ["d"]}, 400, "characters"),
        ({"query": "q", "documents": [image_doc("http://x/a.jpg")]}, 400, "data:image"),
        ({"query": "q", "documents": [image_doc("data:image/png;base64,@@")]}, 400, "base64"),
        ({"query": "q", "documents": [image_doc("data:image/png;base64,aGVsbG8=")]}, 400, "not an image"),
        ({"query": "q", "documents": [{"content": [{"type": "video_url"}]}]}, 400, "invalid request"),
        ({"documents": ["d"]}, 400, "query"),
        ({"model": "other", "query": "q", "documents": ["d"]}, 404, "not served"),
    ],
)  # fmt: skip
def test_bad_requests_get_clear_4xx(client, body, status, words):
    response = client.post("/v1/rerank", json=body)
    assert response.status_code == status
    assert words in response.json()["error"]["message"]


def test_oversized_body_is_refused_before_parsing(scorer):
    with TestClient(create_app(scorer, ServeLimits(max_body_bytes=1000))) as small:
        response = small.post("/v1/rerank", json={"query": "q", "documents": ["x" * 2000]})
    assert response.status_code == 413


def test_bearer_token(scorer):
    with TestClient(create_app(scorer, api_token="s3cret")) as guarded:
        body = {"query": "q", "documents": ["d"]}
        assert guarded.post("/v1/rerank", json=body).status_code == 401
        assert guarded.post("/v1/rerank", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert guarded.post("/v1/rerank", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert guarded.get("/health").status_code == 200  # load balancers probe without a token


# --- batching across callers ----------------------------------------------------------------------------


def run_callers(batcher: Batcher, calls: list[tuple[str, list[str]]]) -> list:
    """Submit (query, documents) from concurrent callers; their results or exceptions, in order."""

    async def main():
        batcher.start()
        jobs = [batcher.submit("ins", query, _Side(query), docs, [_Side(d) for d in docs]) for query, docs in calls]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        await batcher.stop()
        return results

    return asyncio.run(main())


def test_concurrent_callers_share_engine_calls_and_get_their_own_scores():
    scorer = FakeScorer(delay=0.05)
    batcher = Batcher(scorer.score_many, max_batch_pairs=100, max_wait_ms=5)
    calls = [(f"q{i % 3}", [f"d{i}", "shared"]) for i in range(12)]  # three distinct queries among twelve callers
    results = run_callers(batcher, calls)
    for (query, docs), result in zip(calls, results, strict=True):
        assert result.scores == pytest.approx([scorer.value("ins", query, [], d, []) for d in docs])
        assert result.tokens == [scorer.tokens("ins", query, 0, d, 0) for d in docs]
    assert len(scorer.calls) < 12  # merged: the first caller runs alone, the rest join one call
    assert max(len(call) for call in scorer.calls) == 3  # ... as one request per query
    assert batcher.stats.pairs_scored < batcher.stats.pairs_requested  # "shared" scored once per query group


def test_callers_with_distinct_queries_share_one_engine_call():
    scorer = FakeScorer(delay=0.05)
    batcher = Batcher(scorer.score_many, max_batch_pairs=100, max_wait_ms=5)
    calls = [(f"query {i}", [f"d{i}", f"e{i}"]) for i in range(10)]
    results = run_callers(batcher, calls)
    for (query, docs), result in zip(calls, results, strict=True):
        assert result.scores == pytest.approx([scorer.value("ins", query, [], d, []) for d in docs])
    assert len(scorer.calls) <= 3 and batcher.stats.engine_calls == len(scorer.calls)
    assert max(len(call) for call in scorer.calls) >= 5  # one call scored many callers' distinct queries


def test_a_bad_request_fails_alone_when_merged():
    scorer = FakeScorer(delay=0.05)
    batcher = Batcher(scorer.score_many, max_batch_pairs=100, max_wait_ms=5)
    calls = [("first", ["a"]), ("q1", ["b"]), ("poison", ["c"]), ("q2", ["d"])]
    results = run_callers(batcher, calls)
    assert isinstance(results[2], InputError)
    for (query, docs), result in zip(calls[:2] + calls[3:], results[:2] + results[3:], strict=True):
        assert result.scores == pytest.approx([scorer.value("ins", query, [], d, []) for d in docs])
    assert any(len(call) > 1 for call in scorer.calls)  # the merged call was tried, then one by one


def test_pair_budget_splits_turns():
    scorer = FakeScorer(delay=0.02)
    batcher = Batcher(scorer.score_many, max_batch_pairs=4, max_wait_ms=5)
    run_callers(batcher, [(f"q{i}", [f"d{i}", f"e{i}"]) for i in range(6)])
    assert max(sum(n for _, _, n in call) for call in scorer.calls) <= 4
    assert batcher.stats.batches >= 3


def test_request_budget_splits_turns():
    scorer = FakeScorer(delay=0.02)
    batcher = Batcher(scorer.score_many, max_batch_pairs=100, max_wait_ms=5, max_batch_requests=2)
    run_callers(batcher, [(f"q{i}", [f"d{i}"]) for i in range(7)])
    assert max(len(call) for call in scorer.calls) == 2 and len(scorer.calls) >= 4


def test_usage_counts_the_prompt_tokens(client, scorer):
    url = data_url()
    body = {"query": "solar power record", "documents": ["grid operators", image_doc(url), "grid operators"]}
    payload = client.post("/v1/rerank", json=body).json()
    q = "default instruction", "solar power record"
    want = 2 * scorer.tokens(*q, 0, "grid operators", 0) + scorer.tokens(*q, 0, "", 1)  # a repeat still counts
    assert payload["usage"] == {"prompt_tokens": want, "total_tokens": want} and want > 0
    body = {"queries": ["q one", "q two three"], "documents": ["d1", "d2 d3"], "instruction": "news"}
    usage = client.post("/v1/score", json=body).json()["usage"]
    want = scorer.tokens("news", "q one", 0, "d1", 0) + scorer.tokens("news", "q two three", 0, "d2 d3", 0)
    assert usage["prompt_tokens"] == usage["total_tokens"] == want


def test_a_failing_batch_fails_its_callers_not_the_server(client, scorer):
    scorer.fail = True
    response = client.post("/v1/rerank", json={"query": "q", "documents": ["d"]})
    assert response.status_code == 500 and "CUDA error" in response.json()["error"]["message"]
    scorer.fail = False
    assert client.post("/v1/rerank", json={"query": "q", "documents": ["d"]}).status_code == 200


class _Side:
    def __init__(self, text: str):
        self.text, self.images = text, []
