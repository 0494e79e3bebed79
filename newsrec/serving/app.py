"""`newsrec serve`: the reranker over HTTP, speaking vLLM's score/rerank APIs (FastAPI + uvicorn).

Routes: POST /v1/score, /v1/rerank, /rerank, /v2/rerank (and /v1/embeddings with --serve-embedder);
GET /v1/models, /health, /metrics (Prometheus).
Errors are 4xx with {"error": {"message", "type", "code"}}; with a token configured every route but
/health needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from newsrec.errors import InputError
from newsrec.serving.batcher import Batcher
from newsrec.serving.embeddings import EmbeddingBody, EmbeddingService
from newsrec.serving.protocol import RerankBody, ScoreBody, WireSide, to_side, to_wire
from newsrec.serving.scorers import ImageDecoder, PairScorer, PixelBudget, sides

__all__ = ["ServeLimits", "create_app"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 64 * 2**20  # whole request, images included
    max_documents: int = 1000  # per request
    max_text_chars: int = 20_000  # per query or document
    max_images: int = 8  # per query or document
    max_image_bytes: int = 10 * 2**20
    max_request_pixels: int = 256 * 2**20  # source pixels decoded per request (~ 130 photos of 2 MP)
    max_batch_pairs: int = 512  # pairs per worker turn across concurrent requests
    max_batch_requests: int = 64  # requests per worker turn (each distinct query's prefix KV stays in memory)
    max_wait_ms: float = 2.0  # how long the worker waits for companions before a turn


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> JSONResponse:
    kind = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError", 413: "RequestTooLarge"}
    return JSONResponse(
        {"error": {"message": message, "type": kind.get(status, "ServerError"), "code": status}}, status_code=status
    )


class BodyLimit:
    """ASGI middleware: the body limit enforced while the body streams (chunked bodies have no Content-Length).

    The body is read here, chunk by chunk, up to the limit; one byte more and the caller gets 413 without the
    rest being read. The app then gets the buffered body (it parses JSON whole anyway). Hand-written because
    Starlette and uvicorn have no request-size limit of their own.
    """

    def __init__(self, app: Any, max_body_bytes: int, on_refused: Callable[[str], None] | None = None):
        self.app, self.max_body_bytes, self.on_refused = app, max_body_bytes, on_refused

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await self._refuse(scope, receive, send, f"request body is {int(length):,} bytes")
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._refuse(scope, receive, send, f"request body is over {self.max_body_bytes:,} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as Starlette expects

        await self.app(scope, replay, send)

    async def _refuse(self, scope: dict, receive: Any, send: Any, what: str) -> None:
        if self.on_refused is not None:  # counted in /metrics: this answer never reaches the app's own middleware
            self.on_refused(scope.get("path", ""))
        response = _error(413, f"{what}; the limit is {self.max_body_bytes:,}")
        response.headers["connection"] = "close"  # the unread rest of the body is not ours to drain
        await response(scope, receive, send)


class _Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "newsrec_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram("newsrec_request_seconds", "Request latency", ["route"], registry=self.registry)
        self.pairs = Counter("newsrec_pairs", "Pairs requested by callers", registry=self.registry)
        self.scored = Counter("newsrec_pairs_scored", "Pairs run through the model", registry=self.registry)
        self.batch_pairs = Histogram(
            "newsrec_batch_pairs",
            "Pairs per worker turn",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=self.registry,
        )
        self.batch_seconds = Histogram("newsrec_batch_seconds", "Model time per worker turn", registry=self.registry)
        self.queue = Gauge("newsrec_queue_depth", "Requests waiting for the worker", registry=self.registry)

    def on_batch(self, requested: int, scored: int, seconds: float) -> None:
        self.pairs.inc(requested)
        self.scored.inc(scored)
        self.batch_pairs.observe(requested)
        self.batch_seconds.observe(seconds)


def create_app(
    scorer: PairScorer,
    limits: ServeLimits | None = None,
    api_token: str = "",
    embedder: Any = None,
    served_names: Sequence[str] = (),
) -> FastAPI:
    """The server; with `embedder`, also POST /v1/embeddings (newsrec/serving/embeddings.py).

    `served_names` are the model names requests may carry and /v1/models lists (the first answers);
    without them, the scorer's own name is served."""
    limits = limits or ServeLimits()
    served = list(served_names) or [scorer.name]
    metrics = _Metrics()
    batcher = Batcher(
        scorer.score_many, limits.max_batch_pairs, limits.max_wait_ms, metrics.on_batch, limits.max_batch_requests
    )
    decoder = ImageDecoder(scorer.max_pixels, limits.max_image_bytes) if scorer.max_pixels else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="newsrec reranker", lifespan=lifespan)
    app.state.batcher, app.state.scorer, app.state.metrics = batcher, scorer, metrics
    templates: set[str] = set()

    def route_label(path: str) -> str:
        """The route's template; every unknown path shares one label, so /metrics cannot grow without bound."""
        if not templates:
            templates.update(getattr(route, "path", "") for route in app.routes)
        return path if path in templates else "unmatched"

    @app.middleware("http")
    async def guard(request: Request, call_next):
        route, started = route_label(request.url.path), time.perf_counter()
        if api_token and route != "/health":
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_token}".encode()):
                response = _error(401, "missing or wrong bearer token (Authorization: Bearer <NEWSREC_API_TOKEN>)")
                metrics.requests.labels(route, "401").inc()
                return response
        response = await call_next(request)
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError):
        details = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in error.errors()[:5])
        return _error(400, f"invalid request: {details}")

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError):
        return _error(error.status, str(error))

    async def score_pairs(body: Any, queries: list[Any], documents: list[Any]) -> tuple[list[float], int]:
        """Validate, decode images, group by query, and wait for the batcher.

        Returns the scores in document order and the prompt tokens of all pairs (vLLM's usage count)."""
        if body.model and body.model not in served:
            names = ", ".join(repr(name) for name in served)
            raise ApiError(404, f"model {body.model!r} is not served here; this server serves {names}")
        if not documents:
            raise ApiError(400, "`documents` is empty: send a list of at least one document")
        if len(documents) > limits.max_documents:
            raise ApiError(400, f"{len(documents)} documents; the limit is {limits.max_documents} per request")
        try:
            wire_queries = [to_side(q) for q in queries]
            wire_docs = [to_side(d) for d in documents]
        except ValueError as error:
            raise ApiError(400, str(error)) from None
        for side in (*wire_queries, *wire_docs):
            _check(side, limits)
        instruction = body.instruction or scorer.default_instruction
        _check_unicode(instruction, *(side.text for side in (*wire_queries, *wire_docs)))
        has_images = decoder is not None and any(side.image_urls for side in (*wire_queries, *wire_docs))
        try:
            # Decoding photos is CPU work for a thread; text-only requests skip the thread hop.
            if has_images:
                budget = PixelBudget(limits.max_request_pixels)
                decoded = await asyncio.to_thread(_decode_all, wire_queries, wire_docs, decoder, budget)
            else:
                decoded = _decode_all(wire_queries, wire_docs, None)
        except InputError as error:
            raise ApiError(400, str(error)) from None
        by_query: dict[str, list[int]] = {}
        for index, side in enumerate(wire_queries):
            by_query.setdefault(side.key, []).append(index)
        query_sides, doc_sides = decoded
        scores = [0.0] * len(documents)
        metrics.queue.set(batcher.depth)
        waits = [
            batcher.submit(
                instruction,
                key,
                query_sides[rows[0]],
                [wire_docs[i].key for i in rows],
                [doc_sides[i] for i in rows],
            )
            for key, rows in by_query.items()
        ]
        try:
            results = await asyncio.gather(*waits)
        except Exception as error:  # noqa: BLE001 - the engine failed (e.g. out of memory): 500, server lives on
            log.exception("scoring failed")
            raise ApiError(500, f"scoring failed: {type(error).__name__}: {error}") from None
        for rows, result in zip(by_query.values(), results, strict=True):
            for index, value in zip(rows, result.scores, strict=True):
                scores[index] = value
        return scores, sum(sum(result.tokens) for result in results)

    @app.post("/v1/score")
    @app.post("/score")
    async def score(body: ScoreBody):
        try:
            queries, documents = body.pairs()
        except ValueError as error:
            raise ApiError(400, str(error)) from None
        values, tokens = await score_pairs(body, queries, documents)
        return {
            "id": f"score-{uuid.uuid4().hex}",
            "object": "list",
            "created": int(time.time()),
            "model": body.model or served[0],
            "data": [{"index": i, "object": "score", "score": value} for i, value in enumerate(values)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @app.post("/v1/rerank")
    @app.post("/rerank")
    @app.post("/v2/rerank")
    async def rerank(body: RerankBody):
        documents = body.document_list()
        values, tokens = await score_pairs(body, [body.query] * len(documents), documents)
        order = sorted(range(len(values)), key=lambda i: -values[i])
        if body.top_n:
            order = order[: body.top_n]
        results = []
        for i in order:
            result: dict[str, Any] = {"index": i, "relevance_score": values[i]}
            if body.return_documents:
                side = to_side(documents[i])
                result["document"] = {"text": side.text} if not side.image_urls else {"multi_modal": to_wire(side)}
            results.append(result)
        return {
            "id": f"rerank-{uuid.uuid4().hex}",
            "model": body.model or served[0],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "results": results,
        }

    embeddings = None
    if embedder is not None:
        embeddings = EmbeddingService(
            embedder,
            limits.max_documents,
            limits.max_text_chars,
            limits.max_images,
            limits.max_image_bytes,
            limits.max_request_pixels,
        )

        @app.post("/v1/embeddings")
        async def embed(body: EmbeddingBody):
            if body.model and body.model != embeddings.name:
                raise ApiError(
                    404, f"model {body.model!r} is not served here; embeddings come from {embeddings.name!r}"
                )
            try:
                sides = embeddings.validate(body)
                _check_unicode(*(side.text for side in sides))
                return await asyncio.to_thread(embeddings.embed, body, sides)
            except InputError as error:
                raise ApiError(400, str(error)) from None

    @app.get("/v1/models")
    async def models():
        listed = [{"id": name, "object": "model", "owned_by": "newsrec"} for name in served]
        if embeddings is not None:  # the reranker stays first: remote rerankers take data[0]
            listed.append({"id": embeddings.name, "object": "model", "owned_by": "newsrec"})
        return {"object": "list", "data": listed}

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": served[0]}

    @app.get("/metrics")
    async def prometheus():
        metrics.queue.set(batcher.depth)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def count_refused(path: str) -> None:
        metrics.requests.labels(route_label(path), "413").inc()

    # outermost: before auth and routing
    app.add_middleware(BodyLimit, max_body_bytes=limits.max_body_bytes, on_refused=count_refused)
    return app


def _check_unicode(*texts: str) -> None:
    """A lone UTF-16 surrogate (JSON "\\ud800") is valid JSON but no text: refuse it before hashing or tokenising."""
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            where = f"{error.object[max(0, error.start - 20) : error.start]!r}"
            message = f"a query, document or instruction holds an unpaired UTF-16 surrogate after {where}"
            raise ApiError(400, f"{message}: send valid Unicode (UTF-8 text, surrogates only in pairs)") from None


def _check(side: WireSide, limits: ServeLimits) -> None:
    if len(side.text) > limits.max_text_chars:
        raise ApiError(
            400, f"a query or document has {len(side.text):,} characters; the limit is {limits.max_text_chars:,}"
        )
    if len(side.image_urls) > limits.max_images:
        raise ApiError(400, f"a query or document has {len(side.image_urls)} images; the limit is {limits.max_images}")


def _decode_all(
    queries: list[WireSide], documents: list[WireSide], decoder: ImageDecoder | None, budget: PixelBudget | None = None
):
    return [sides(q, decoder, budget) for q in queries], [sides(d, decoder, budget) for d in documents]
