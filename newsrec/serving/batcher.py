"""Server-side batching: requests from concurrent callers become one engine call per worker turn.

One worker owns the engine (it is not thread-safe, and one GPU runs one batch at a time). While it
scores, new requests queue; when it is free it takes everything queued, up to a pair budget and a
request budget, and:
- merges requests with the same (instruction, query side) into one request, so their documents share
  one prefix KV cache (app replicas asking for the same feed, the same search, or a guest page), and
  scores a document once when several of them send it;
- hands all of the turn's requests, whatever their queries, to one `score_many` call: the engine runs
  their prefixes together and fills its length-bucketed decoder batches with documents of different
  queries, so twenty readers' feeds cost a few large decoder calls instead of twenty rounds of small ones;
- if that call fails, scores each request on its own, so one bad request fails only its caller.
Written by hand because this is the whole scheduler (a queue, a budget, a group-by); a serving
framework's dynamic batcher would batch tensors, not prompt groups with a shared prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from newsrec.qwen3_vl.prompt import ScoreRequest, ScoreResult

__all__ = ["Batcher", "Job", "BatchStats"]

log = logging.getLogger(__name__)


@dataclass
class Job:
    instruction: str
    query_key: str
    query: Any  # the scorer's Side
    doc_keys: list[str]
    documents: list[Any]
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def group(self) -> tuple[str, str]:
        return self.instruction, self.query_key


@dataclass
class BatchStats:
    batches: int = 0  # worker turns
    engine_calls: int = 0
    pairs_requested: int = 0
    pairs_scored: int = 0  # after merging duplicates


class Batcher:
    def __init__(
        self,
        score_many: Callable[[list[ScoreRequest]], list[ScoreResult]],
        max_batch_pairs: int = 512,
        max_wait_ms: float = 2.0,
        on_batch: Callable[[int, int, float], None] | None = None,
        max_batch_requests: int = 64,
    ):
        self._score_many = score_many
        self.max_batch_pairs = max(1, int(max_batch_pairs))
        # Requests per turn: each distinct query keeps its prefix keys/values in memory for the whole call.
        self.max_batch_requests = max(1, int(max_batch_requests))
        self.max_wait = max(0.0, max_wait_ms) / 1000
        self.on_batch = on_batch  # (pairs requested, pairs scored, seconds) per worker turn, for metrics
        self.stats = BatchStats()
        self._queue: asyncio.Queue[Job] | None = None
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    @property
    def depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(
        self, instruction: str, query_key: str, query: Any, doc_keys: list[str], documents: list[Any]
    ) -> ScoreResult:
        """Scores and prompt tokens of `documents` for `query`, in order, once a worker turn has run them."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not called")
        job = Job(instruction, query_key, query, doc_keys, documents)
        await self._queue.put(job)
        return await job.future

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            jobs = [await self._queue.get()]
            if self.max_wait:
                await asyncio.sleep(self.max_wait)  # let callers that arrived together join this turn
            pairs = len(jobs[0].documents)
            while not self._queue.empty() and pairs < self.max_batch_pairs and len(jobs) < self.max_batch_requests:
                job = self._queue.get_nowait()
                jobs.append(job)
                pairs += len(job.documents)
            live = [job for job in jobs if not job.future.cancelled()]
            if live:
                await asyncio.to_thread(self._turn, live)

    def _turn(self, jobs: list[Job]) -> None:
        """Score one worker turn (runs in a thread; results are handed back to the event loop)."""
        started = time.perf_counter()
        groups: dict[tuple[str, str], list[Job]] = {}
        for job in jobs:
            groups.setdefault(job.group, []).append(job)
        requests, uniques = [], []
        for members in groups.values():
            unique: dict[str, int] = {}  # document key -> its index in the group's request
            documents = []
            for job in members:
                for key, document in zip(job.doc_keys, job.documents, strict=True):
                    if key not in unique:
                        unique[key] = len(documents)
                        documents.append(document)
            requests.append(ScoreRequest(members[0].instruction, members[0].query, documents))
            uniques.append(unique)
        requested = sum(len(job.documents) for job in jobs)
        scored = sum(len(request.documents) for request in requests)
        outcomes = self._score(requests)
        for members, unique, outcome in zip(groups.values(), uniques, outcomes, strict=True):
            for job in members:
                if isinstance(outcome, BaseException):
                    _resolve(job, error=outcome)
                else:
                    rows = [unique[key] for key in job.doc_keys]
                    result = ScoreResult([float(outcome.scores[i]) for i in rows], [outcome.tokens[i] for i in rows])
                    _resolve(job, result=result)
        log.debug(
            "turn: %d requests in %d groups, %d of %d pairs scored in %.3f s",
            len(jobs),
            len(groups),
            scored,
            requested,
            time.perf_counter() - started,
        )
        self.stats.batches += 1
        self.stats.pairs_requested += requested
        self.stats.pairs_scored += scored
        if self.on_batch:
            self.on_batch(requested, scored, time.perf_counter() - started)

    def _score(self, requests: list[ScoreRequest]) -> list[ScoreResult | BaseException]:
        """One engine call for the whole turn; if it fails, one per request, so a bad request fails alone."""
        try:
            self.stats.engine_calls += 1
            return list(self._score_many(requests))
        except Exception as error:  # noqa: BLE001 - the callers get the error, the worker lives on
            if len(requests) == 1:
                log.exception("scoring a request of %d pairs failed", len(requests[0].documents))
                return [error]
            log.warning("scoring %d requests together failed (%s); scoring them one by one", len(requests), error)
        outcomes: list[ScoreResult | BaseException] = []
        for request in requests:
            try:
                self.stats.engine_calls += 1
                outcomes.append(self._score_many([request])[0])
            except Exception as error:  # noqa: BLE001 - see above
                log.exception("scoring a request of %d pairs failed", len(request.documents))
                outcomes.append(error)
        return outcomes


def _resolve(job: Job, result: ScoreResult | None = None, error: BaseException | None = None) -> None:
    loop = job.future.get_loop()

    def settle() -> None:
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    loop.call_soon_threadsafe(settle)
