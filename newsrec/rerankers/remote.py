"""A reranker on another machine: `newsrec serve` or `vllm serve` (Qwen3-VL-Reranker), via POST /v1/rerank.

The request carries exactly what the in-process Qwen3-VL reranker would feed its engine (the prompt
sides come from newsrec/qwen3_vl/prompt.py): the query side is the typed query plus "Reader interests:
..." with the profile's first photo; each document is up to `max_images` photos, then "title\nbody".
Photos travel as data URLs of their original bytes; the server decodes and resizes them as the
in-process reranker does, so a remote score equals the local one.

Failure handling: a timeout per request, retries with exponential backoff on transient errors
(connection, timeout, 429, 5xx), and a circuit breaker that stops calling a server that keeps failing.
While the server is unavailable, candidates are scored by the lite reranker and the result carries a
notice (and is not cached under this reranker's name).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from newsrec.config import Settings
from newsrec.errors import InputError
from newsrec.qwen3_vl.prompt import document_text, query_text
from newsrec.remote_client import TRANSIENT, image_data_url, post_with_retries
from newsrec.remote_client import base_url as _base_url
from newsrec.remote_client import error_message as _message
from newsrec.rerankers import register_reranker
from newsrec.rerankers.qwen3_vl import DEFAULT_PROFILE_IMAGES
from newsrec.types import Candidate, ImageRef, RerankRequest
from newsrec.wire import WireSide, to_wire

__all__ = ["RemoteReranker", "RemoteScores", "CircuitBreaker", "TRANSIENT"]

log = logging.getLogger(__name__)

MAX_DOCUMENTS = 500  # per HTTP request; a larger candidate list is sent in several requests
IMAGE_MEMO = 512


class RemoteScores(list):
    """Scores, plus `notice` (a sentence for the reader when they did not come from the server) and
    `cacheable` (False for fallback scores: they must not be cached as this reranker's)."""

    notice: str = ""
    cacheable: bool = True


class CircuitBreaker:
    """Closed: calls go through. After `threshold` failures in a row: open for `reset_seconds` (calls
    fail fast). Then half-open: one call is let through; its success closes the breaker again."""

    def __init__(self, threshold: int = 3, reset_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.threshold, self.reset_seconds, self.clock = threshold, reset_seconds, clock
        self.failures = 0
        self.opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.reset_seconds else "open"

    def allow(self) -> bool:
        with self._lock:
            if self.state == "open":
                return False
            if self.state == "half-open":
                self.opened_at = self.clock()  # one trial at a time; the others keep failing fast
            return True

    def success(self) -> None:
        with self._lock:
            self.failures, self.opened_at = 0, None

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = self.clock()


class _ServerError(Exception):
    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient


class RemoteReranker:
    def __init__(
        self,
        url: str,
        settings: Settings | None = None,
        embedder: Any = None,
        image_root: str | Path | None = None,
        model: str = "",
        api_token: str = "",
        retries: int = 2,
        backoff_seconds: float = 0.2,
        breaker: CircuitBreaker | None = None,
        transport: Any = None,  # an httpx transport, for tests
    ):
        import httpx

        from newsrec.rerankers.lite import LiteReranker

        self.url = _base_url(url)
        self.settings = settings or Settings()
        self.image_root = Path(image_root) if image_root else None
        self.retries, self.backoff_seconds = max(0, retries), backoff_seconds
        self.breaker = breaker or CircuitBreaker()
        self.fallback = LiteReranker(embedder)
        headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
        timeout = httpx.Timeout(self.settings.reranker_timeout, connect=min(5.0, self.settings.reranker_timeout))
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)
        self.model = model or self._discover_model()
        self._images: OrderedDict[str, str | None] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """Score-cache identity: the server and the model it serves (e.g. its pixel budget is in the model id)."""
        return f"remote-{self.model or '?'}@{self.url}"

    # --- Reranker protocol --------------------------------------------------------------------------

    def score(self, request: RerankRequest, candidates: Sequence[Candidate]) -> RemoteScores:
        scores = RemoteScores()
        if not candidates:
            return scores
        known_model = bool(self.model)
        try:
            if not self.breaker.allow():
                raise _ServerError("too many recent failures; retrying later", transient=True)
            if not self.model:
                self.model = self._discover_model(raise_errors=True)
            body = self.request_body(request, candidates)
            for start in range(0, len(candidates), MAX_DOCUMENTS):
                chunk = {**body, "documents": body["documents"][start : start + MAX_DOCUMENTS]}
                scores.extend(self._post_rerank(chunk))
        except _ServerError as error:
            return self._fall_back(request, candidates, str(error))
        self.breaker.success()
        scores.cacheable = known_model  # keys were computed under the name without the model
        return scores

    def request_body(self, request: RerankRequest, candidates: Sequence[Candidate]) -> dict[str, Any]:
        """The /v1/rerank body: the same prompt sides as the in-process Qwen3-VL reranker."""
        profile = request.profile
        query = to_wire(
            WireSide(
                query_text(request.query, profile.summary if profile else ""),
                self._image_urls(profile.images[:DEFAULT_PROFILE_IMAGES] if profile else []),
            )
        )
        documents = [
            to_wire(
                WireSide(
                    document_text(c.item.title, c.item.body),
                    self._image_urls(c.item.images[: self.settings.max_images]),
                )
            )
            for c in candidates
        ]
        return {
            "model": self.model,
            "query": query,
            "documents": documents,
            "top_n": len(documents),
            "return_documents": False,
            "instruction": request.instruction or self.settings.instruction,  # newsrec extension; vLLM ignores it
        }

    # --- HTTP -----------------------------------------------------------------------------------------

    def _post_rerank(self, body: dict[str, Any]) -> list[float]:
        response, last = post_with_retries(self.http, "/v1/rerank", body, self.retries, self.backoff_seconds)
        if response is None:
            self.breaker.failure()
            raise _ServerError(last, transient=True)
        if response.status_code != 200:
            self.breaker.failure()
            raise _ServerError(f"HTTP {response.status_code}: {_message(response)}", transient=False)
        return _parse_results(response, len(body["documents"]))

    def _discover_model(self, raise_errors: bool = False) -> str:
        """The served model id from GET /v1/models (vLLM and newsrec serve both list it)."""
        import httpx

        try:
            response = self.http.get("/v1/models", timeout=min(5.0, self.settings.reranker_timeout))
            response.raise_for_status()
            return str(response.json()["data"][0]["id"])
        except (httpx.HTTPError, KeyError, IndexError, ValueError, TypeError) as error:
            if raise_errors:
                self.breaker.failure()
                raise _ServerError(f"cannot list models: {error}", transient=True) from None
            log.warning("reranker server %s: cannot list its models yet (%s)", self.url, error)
            return ""

    def _fall_back(self, request: RerankRequest, candidates: Sequence[Candidate], reason: str) -> RemoteScores:
        log.warning("reranker server %s unavailable (%s): using the lite reranker", self.url, reason)
        scores = RemoteScores(self.fallback.score(request, candidates))
        scores.notice = (
            f"The reranker server ({self.url}) is unavailable ({reason}); this list is ranked by the lite reranker."
        )
        scores.cacheable = False
        return scores

    # --- images -------------------------------------------------------------------------------------------

    def _image_urls(self, refs: Sequence[ImageRef]) -> tuple[str, ...]:
        urls = []
        for ref in refs:
            with self._lock:
                known = ref.uri in self._images
                url = self._images.get(ref.uri)
            if not known:
                url = self._data_url(ref)
                with self._lock:
                    self._images[ref.uri] = url
                    while len(self._images) > IMAGE_MEMO:
                        self._images.popitem(last=False)
            if url:
                urls.append(url)
        return tuple(urls)

    def _data_url(self, ref: ImageRef) -> str | None:
        return image_data_url(ref, self.settings, self.image_root)


def _parse_results(response: Any, n: int) -> list[float]:
    """Scores by document index; an index outside 0..n-1, a repeated index, or a score that is not finite or
    beyond SCORE_LIMIT is a broken server: the caller falls back (and caches nothing)."""
    from newsrec.cache import plausible

    try:
        results = response.json()["results"]
        scores: list[float | None] = [None] * n
        for result in results:
            index, score = int(result["index"]), float(result["relevance_score"])
            if not 0 <= index < n or scores[index] is not None:
                raise _ServerError(f"rerank response has index {index} for {n} documents", transient=False)
            if not plausible(score):
                raise _ServerError(f"rerank response has an implausible score {score!r}", transient=False)
            scores[index] = score
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise _ServerError(f"malformed rerank response ({type(error).__name__}: {error})", transient=False) from None
    if any(score is None or not math.isfinite(score) for score in scores):
        raise _ServerError(f"rerank response scores {len(results)} of {n} documents", transient=False)
    return [float(score) for score in scores]  # type: ignore[arg-type]


@register_reranker("remote")
def remote_reranker(settings: Settings | None = None, embedder: Any = None, image_root: Any = None, **_options):
    import os

    settings = settings or Settings.from_env()
    if not settings.reranker_url:
        raise InputError("the remote reranker needs a server: --reranker-url URL or NEWSREC_RERANKER_URL")
    return RemoteReranker(
        settings.reranker_url,
        settings,
        embedder=embedder,
        image_root=image_root,
        model=settings.reranker_model,
        api_token=os.environ.get("NEWSREC_API_TOKEN", ""),
    )
