"""An Embedder that calls `newsrec serve --serve-embedder` (POST /v1/embeddings), for NEWSREC_EMBEDDER_URL.

App replicas, the index build and the nightly job then share one loaded embedding model. Documents go as
their text plus each photo's original bytes (data URLs, images first, as the rerank API carries them)
with `input_type: "document"`; queries as text with `input_type: "query"`; the server runs the very
embed_documents / embed_queries of its embedder, so vectors equal in-process ones. The embedder's name
is the served model's id, so an index built in-process and one built through the server are the same
Chroma collection. There is no fallback: vectors of another model must never enter that collection, so
a server that stays down is a ServiceUnavailableError after the retries.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from newsrec.config import Settings
from newsrec.embedders import register_embedder
from newsrec.errors import InputError, ServiceUnavailableError
from newsrec.remote_client import base_url as _base_url
from newsrec.remote_client import error_message as _message
from newsrec.remote_client import image_data_url, post_with_retries
from newsrec.types import NewsItem
from newsrec.wire import WireSide, to_wire

__all__ = ["RemoteEmbedder"]

log = logging.getLogger(__name__)

CHUNK = 64  # inputs per request: a page of a long index build, well under the server's 1,000


class RemoteEmbedder:
    def __init__(
        self,
        url: str,
        settings: Settings | None = None,
        image_root: str | Path | None = None,
        api_token: str = "",
        retries: int = 2,
        backoff_seconds: float = 0.5,
        client: Any = None,  # an httpx.Client (tests: FastAPI's TestClient)
    ):
        import httpx

        self.url = _base_url(url)
        self.settings = settings or Settings()
        self.image_root = Path(image_root) if image_root else None
        self.retries, self.backoff_seconds = max(0, retries), backoff_seconds
        headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
        timeout = httpx.Timeout(self.settings.reranker_timeout, connect=min(5.0, self.settings.reranker_timeout))
        self.http = client or httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        # One probe gives the served model's id (the name) and the vector size.
        probe = self._post({"input": [""], "input_type": "query", "encoding_format": "float"})
        self.model = str(probe["model"])
        self.name = self.model
        self.dim = len(probe["data"][0]["embedding"])

    def embed_documents(self, items: Sequence[NewsItem]) -> np.ndarray:
        inputs = [
            to_wire(WireSide(item.text, tuple(u for ref in item.images if (u := self._data_url(ref)))))
            for item in items
        ]
        return self._embed(inputs, "document")

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(list(texts), "query")

    # --- HTTP ------------------------------------------------------------------------------------------

    def _embed(self, inputs: list[Any], input_type: str) -> np.ndarray:
        if not inputs:
            return np.zeros((0, self.dim), np.float32)
        blocks = []
        for begin in range(0, len(inputs), CHUNK):
            chunk = inputs[begin : begin + CHUNK]
            body = {"model": self.model, "input": chunk, "input_type": input_type, "encoding_format": "base64"}
            blocks.append(_vectors(self._post(body), len(chunk), self.dim))
        return np.concatenate(blocks)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        response, last = post_with_retries(self.http, "/v1/embeddings", body, self.retries, self.backoff_seconds)
        if response is None:
            raise ServiceUnavailableError(f"the embedding server at {self.url} is unavailable ({last})")
        if response.status_code in (400, 413):
            raise InputError(f"the embedding server refused the input: {_message(response)}")
        if response.status_code != 200:
            raise ServiceUnavailableError(
                f"the embedding server at {self.url} answered HTTP {response.status_code}: {_message(response)}"
            )
        try:
            return response.json()
        except ValueError:
            raise ServiceUnavailableError(f"the embedding server at {self.url} sent a non-JSON answer") from None

    def _data_url(self, ref) -> str | None:
        return image_data_url(ref, self.settings, self.image_root)


def _vectors(payload: dict[str, Any], n: int, dim: int) -> np.ndarray:
    """(n, dim) float32 from an embeddings response, rows by `index`; float lists or base64 float32."""
    out = np.full((n, dim), np.nan, np.float32)
    seen = np.zeros(n, dtype=bool)
    try:
        for row in payload["data"]:
            value = row["embedding"]
            if isinstance(value, str):
                vector = np.frombuffer(base64.b64decode(value), dtype="<f4")
            else:
                vector = np.asarray(value, dtype=np.float32)
            index = int(row["index"])
            if not 0 <= index < n:  # numpy would take -1 as the last row
                raise ValueError(f"index {index} for {n} inputs")
            out[index] = vector
            seen[index] = True
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ServiceUnavailableError(f"malformed embeddings response ({type(error).__name__}: {error})") from None
    if not seen.all():
        raise ServiceUnavailableError(f"the embeddings response has {int(seen.sum())} vectors for {n} inputs")
    if not np.isfinite(out).all():  # NaN or inf from the server itself: never stored in the index
        bad = int((~np.isfinite(out)).any(axis=1).sum())
        raise ServiceUnavailableError(f"the embeddings response has {bad} vectors with NaN or infinite values")
    return out


@register_embedder("remote")
def remote_embedder(settings: Settings | None = None, image_root: Any = None, **_options) -> RemoteEmbedder:
    import os

    settings = settings or Settings.from_env()
    if not settings.embedder_url:
        raise InputError("the remote embedder needs a server: NEWSREC_EMBEDDER_URL")
    return RemoteEmbedder(
        settings.embedder_url, settings, image_root=image_root, api_token=os.environ.get("NEWSREC_API_TOKEN", "")
    )
