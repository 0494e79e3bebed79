"""`newsrec serve --serve-embedder` (/v1/embeddings, OpenAI/vLLM shape) and the remote embedder behind it.

An image-aware fake embedder (text hash + the decoded photo's pixels) shows that documents, photos and
queries travel so that remote vectors equal in-process ones; the real lite embedder through a real
`newsrec serve` is compared in test_remote_reranker.py.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from conftest import HashingEmbedder
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from test_serving import FakeScorer, data_url, image_doc  # noqa: E402

from newsrec.config import Settings  # noqa: E402
from newsrec.embedders.remote import RemoteEmbedder  # noqa: E402
from newsrec.errors import InputError  # noqa: E402
from newsrec.serving import create_app  # noqa: E402
from newsrec.types import ImageRef, NewsItem  # noqa: E402


class PhotoEmbedder(HashingEmbedder):
    """Text hash vector plus the mean colour of each photo, read as the Qwen3-VL embedder reads photos."""

    name = "photo-hash"

    def __init__(self, root: Path | None = None):
        super().__init__()
        self.root = root

    def embed_documents(self, items):
        from newsrec.images import load_image_uri

        vectors = np.asarray(super().embed_documents(items), dtype=np.float32)
        for row, item in enumerate(items):
            for ref in item.images:
                try:  # an unreadable photo is skipped, as the Qwen3-VL embedder does
                    pixels = np.asarray(load_image_uri(ref.uri, Settings(), base=self.root), dtype=np.float32)
                except (InputError, OSError):
                    continue
                vectors[row, :3] += pixels.mean(axis=(0, 1)) / 255
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def photos(tmp_path) -> Path:
    for i, size in enumerate([(64, 48), (120, 90)]):
        pixels = np.random.default_rng(i).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"p{i}.jpg", quality=90)
    return tmp_path


def test_embeddings_endpoint_has_the_openai_shape(photos):
    embedder = PhotoEmbedder()
    with TestClient(create_app(FakeScorer(), embedder=embedder)) as client:
        payload = client.post("/v1/embeddings", json={"input": "solar power record", "model": "photo-hash"}).json()
        assert payload["object"] == "list" and payload["model"] == "photo-hash"
        assert payload["data"][0]["object"] == "embedding" and payload["data"][0]["index"] == 0
        want = embedder.embed_documents([NewsItem("x", "solar power record")])[0]
        np.testing.assert_allclose(payload["data"][0]["embedding"], want, atol=1e-6)
        assert payload["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
        body = {"input": ["a query", "another"], "input_type": "query", "encoding_format": "base64"}
        data = client.post("/v1/embeddings", json=body).json()["data"]
        decoded = [np.frombuffer(base64.b64decode(row["embedding"]), dtype="<f4") for row in data]
        np.testing.assert_allclose(decoded, embedder.embed_queries(["a query", "another"]), atol=1e-6)
        ids = [model["id"] for model in client.get("/v1/models").json()["data"]]
        assert ids == ["fake-vl", "photo-hash"]  # the reranker stays first (remote rerankers read data[0])


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"input": []}, 400, "empty"),
        ({"input": [image_doc(data_url())], "input_type": "query"}, 400, "text only"),
        ({"input": [image_doc("data:image/png;base64,@@")]}, 400, "base64"),
        ({"input": ["x"], "model": "other"}, 404, "not served"),
        ({"input": ["x"], "input_type": "passage"}, 400, "invalid request"),
    ],
)
def test_bad_embedding_requests_get_clear_4xx(body, status, words):
    with TestClient(create_app(FakeScorer(), embedder=PhotoEmbedder())) as client:
        response = client.post("/v1/embeddings", json=body)
    assert response.status_code == status and words in response.json()["error"]["message"]


def test_no_embeddings_route_unless_asked():
    with TestClient(create_app(FakeScorer())) as client:
        assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 404


def test_remote_embedder_equals_in_process(photos):
    local = PhotoEmbedder(root=photos)
    with TestClient(create_app(FakeScorer(), embedder=PhotoEmbedder())) as client:
        remote = RemoteEmbedder("http://testserver", Settings(), image_root=photos, client=client)
        assert (remote.name, remote.dim) == (local.name, local.dim)
        items = [
            NewsItem(
                "a", "Flooding in the valley", "Rescue teams evacuated two villages.", images=[ImageRef("p0.jpg")]
            ),
            NewsItem("b", "Two photos", images=[ImageRef("p0.jpg"), ImageRef("p1.jpg")]),
            NewsItem("c", "Missing photo is skipped", images=[ImageRef("gone.jpg")]),
            NewsItem("d", "Text only"),
        ] * 20  # more than one request's chunk
        got = remote.embed_documents(items)
        assert got.shape == (80, local.dim)
        np.testing.assert_allclose(got, local.embed_documents(items), atol=1e-6)
        assert not np.allclose(got[0], local.embed_documents([NewsItem("a", items[0].title, items[0].body)])[0])
        queries = ["flood", "", "选举"]
        np.testing.assert_allclose(remote.embed_queries(queries), local.embed_queries(queries), atol=1e-6)
        assert remote.embed_queries([]).shape == (0, local.dim)


def test_remote_embedder_errors_are_clear(photos):
    with TestClient(create_app(FakeScorer(), embedder=PhotoEmbedder())) as client:
        remote = RemoteEmbedder("http://testserver", Settings(), client=client, retries=0)
        with pytest.raises(InputError, match="refused"):
            remote.embed_queries(["x" * 30_000])  # over the server's 20,000 characters
    from newsrec.errors import ServiceUnavailableError

    with pytest.raises(ServiceUnavailableError, match="unavailable"):
        RemoteEmbedder("http://127.0.0.1:9", Settings(), retries=0)  # nothing listens on the discard port
