"""Where a sync's document vectors are computed: in this process, in worker processes, or on Ray workers.

Engines only turn items into vectors. The index (newsrec/index.py) stays the one writer: it looks vectors
up in the vector cache, hands the rest to the engine, puts what comes back into the cache and upserts it
with the content hashes, on its own thread under the store's write lock. An engine can therefore fail at
any point (a worker killed, out of memory, a model that does not load) and lose nothing: what was upserted
stays, vectors that came back are cached, and the next sync encodes only the rest.

- `InProcess`: the embedder given to the index, with its own threads (the default).
- `ProcessPool`: N worker processes on this machine, started with `spawn` (a fork would copy Chroma's and
  the tokenizers' threads mid-flight). Each builds its embedder once, from a picklable recipe, and limits
  its BLAS/OpenMP/torch threads to its share of the cores, so N workers on N cores do not oversubscribe.
- `RayActors`: the same on Ray actors (`ray.init(address=...)` joins a cluster; none starts a local Ray).

Work goes out in slices of `slice_size` items, one index batch ahead of the upserts, so the workers encode
the next batch while the index writes the current one.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from newsrec.embedders import Embedder, EmbedderRecipe
from newsrec.errors import EncodingError, InputError
from newsrec.types import NewsItem

__all__ = [
    "ENGINES",
    "EncodeEngine",
    "InProcess",
    "ProcessPool",
    "RayActors",
    "make_engine",
    "EmbedderRecipe",
    "usable_cores",
]

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
SLICE_SIZE = 256  # most items per task handed to a worker (~1 s of USE encoding); a batch is cut into >= workers
_DIED = (
    "the stories upserted before it are kept and every vector that came back is in the vector cache: "
    "run the command again to encode the rest"
)


EmbedderFactory = Callable[[], Embedder]


class Pending(Protocol):
    """Vectors on their way: `result()` waits for all of them; `finished()` gives the parts already back."""

    def result(self) -> np.ndarray: ...

    def finished(self) -> list[tuple[list[NewsItem], np.ndarray]]: ...


class EncodeEngine(Protocol):
    name: str
    lookahead: int  # index batches submitted before the oldest one is awaited (0 = encode when awaited)

    def start(self, embedder: Embedder) -> None:
        """Start the workers; raise InputError when they build another embedder than the index's."""
        ...

    def submit(self, items: list[NewsItem]) -> Pending: ...

    def close(self) -> None: ...


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# --- in this process -------------------------------------------------------------------------------------------


class _Now:
    """Encodes when awaited, on the caller's thread: exactly what the index did before engines existed."""

    def __init__(self, embedder: Embedder, items: list[NewsItem]):
        self._embedder, self._items = embedder, items
        self._vectors: np.ndarray | None = None

    def result(self) -> np.ndarray:
        if self._vectors is None:
            self._vectors = np.asarray(self._embedder.embed_documents(self._items), dtype=np.float32)
        return self._vectors

    def finished(self) -> list[tuple[list[NewsItem], np.ndarray]]:
        return [] if self._vectors is None else [(self._items, self._vectors)]


class InProcess:
    name = "in-process"
    lookahead = 0

    def __init__(self) -> None:
        self._embedder: Embedder | None = None

    def start(self, embedder: Embedder) -> None:
        self._embedder = embedder

    def submit(self, items: list[NewsItem]) -> Pending:
        assert self._embedder is not None, "start() first"
        return _Now(self._embedder, items)

    def close(self) -> None:
        self._embedder = None


# --- worker side (runs in the worker processes and Ray actors) --------------------------------------------------

_worker: Embedder | None = None  # this worker process's embedder, built once by _start_worker
_thread_limits: Any = None  # kept alive: threadpoolctl's limits last as long as the object


def _limit_threads(threads: int) -> None:
    """At most `threads` threads per pool in this process: BLAS and OpenMP (loaded now or later) and torch."""
    global _thread_limits
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[name] = str(threads)  # libraries loaded after this point read it
    try:
        from threadpoolctl import threadpool_limits

        _thread_limits = threadpool_limits(limits=threads)  # libraries already loaded (numpy's BLAS)
    except ImportError:
        pass
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _build(factory: EmbedderFactory, threads: int) -> Embedder:
    _limit_threads(threads)
    embedder = factory()
    set_threads = getattr(embedder, "set_threads", None)
    if callable(set_threads):  # the lite embedders run their own thread pools: one per core by default
        set_threads(threads)
    return embedder


def _start_worker(factory: EmbedderFactory, threads: int) -> None:
    global _worker
    _worker = _build(factory, threads)


def _identity() -> tuple[str, int]:
    assert _worker is not None
    return _worker.name, int(_worker.dim)


def _encode(items: list[NewsItem]) -> np.ndarray:
    assert _worker is not None
    return np.asarray(_worker.embed_documents(items), dtype=np.float32)


def _slices(items: list[NewsItem], size: int, workers: int) -> list[list[NewsItem]]:
    """`items` in order, cut into at least `workers` slices of at most about `size`, all of nearly equal length."""
    parts = max(1, min(len(items), max(workers, -(-len(items) // size))))
    bounds = [round(part * len(items) / parts) for part in range(parts + 1)]
    return [items[begin:end] for begin, end in zip(bounds, bounds[1:], strict=False) if end > begin]


def _check_identity(found: tuple[str, int], embedder: Embedder, where: str) -> None:
    expected = (embedder.name, int(embedder.dim))
    if tuple(found) != expected:
        raise InputError(
            f"the {where} build embedder {found[0]} ({found[1]}-d), but the index holds {expected[0]} "
            f"({expected[1]}-d) vectors: give them the same embedder"
        )


# --- worker processes on this machine ---------------------------------------------------------------------------


class _Futures:
    """Slices out to a pool; the parts come back in order."""

    def __init__(self, parts: list[tuple[list[NewsItem], Any]], wait: Callable[[Any], np.ndarray]):
        self._parts, self._wait = parts, wait

    def result(self) -> np.ndarray:
        return np.concatenate([self._wait(future) for _, future in self._parts])

    def finished(self) -> list[tuple[list[NewsItem], np.ndarray]]:
        done = []
        for items, future in self._parts:
            try:
                if future.done() and future.exception() is None:
                    done.append((items, np.asarray(future.result(), dtype=np.float32)))
            except BaseException:  # noqa: BLE001 - a cancelled or broken future simply has nothing to give
                continue
        return done


class ProcessPool:
    """`workers` processes, each with its own embedder built once by `factory` and `threads` threads."""

    name = "processes"
    lookahead = 2

    def __init__(
        self, factory: EmbedderFactory, workers: int, threads: int | None = None, slice_size: int = SLICE_SIZE
    ):
        if workers < 1:
            raise InputError(f"worker processes must be 1 or more, not {workers}")
        self.factory, self.workers = factory, int(workers)
        self.threads = int(threads) if threads else max(1, usable_cores() // self.workers)
        self.slice_size = max(1, int(slice_size))
        self._pool: Any = None

    def start(self, embedder: Embedder) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.factory, self.threads),
        )
        log.info("encoding in %d worker processes, %d threads each", self.workers, self.threads)
        _check_identity(self._wait(self._pool.submit(_identity)), embedder, "worker processes")

    def submit(self, items: list[NewsItem]) -> Pending:
        try:
            chunks = _slices(items, self.slice_size, self.workers)
            parts = [(chunk, self._pool.submit(_encode, chunk)) for chunk in chunks]
        except RuntimeError as error:  # BrokenProcessPool: a worker died before this submit
            raise self._died(error) from None
        return _Futures(parts, self._wait)

    def _wait(self, future: Any) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return future.result()
        except BrokenProcessPool as error:
            raise self._died(error) from None

    def _died(self, error: BaseException) -> EncodingError:
        return EncodingError(
            f"an encoding worker process died ({error}; killed, out of memory, or its embedder failed to load: "
            f"the worker's log above says which); {_DIED}"
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# --- Ray actors ------------------------------------------------------------------------------------------------


class _RayEncoder:
    """One Ray actor: an embedder built once, with `threads` threads (the CPUs Ray gives the actor)."""

    def __init__(self, factory: EmbedderFactory, threads: int):
        self.embedder = _build(factory, threads)

    def identity(self) -> tuple[str, int]:
        return self.embedder.name, int(self.embedder.dim)

    def encode(self, items: list[NewsItem]) -> np.ndarray:
        return np.asarray(self.embedder.embed_documents(items), dtype=np.float32)


class _RayFuture:
    def __init__(self, ray: Any, ref: Any):
        self.ray, self.ref = ray, ref

    def done(self) -> bool:
        ready, _ = self.ray.wait([self.ref], timeout=0)
        return bool(ready)

    def exception(self) -> BaseException | None:
        try:
            self.ray.get(self.ref, timeout=0)
        except Exception as error:  # noqa: BLE001 - any Ray failure means no vectors here
            return error
        return None

    def result(self) -> np.ndarray:
        return self.ray.get(self.ref)


class RayActors:
    """`workers` Ray actors of `cpus` CPUs each, slices handed out in turn."""

    name = "ray"
    lookahead = 2

    def __init__(
        self,
        factory: EmbedderFactory,
        workers: int,
        address: str | None = None,
        cpus: int = 1,
        slice_size: int = SLICE_SIZE,
    ):
        if workers < 1:
            raise InputError(f"Ray encoding workers must be 1 or more, not {workers}")
        self.factory, self.workers, self.address, self.cpus = factory, int(workers), address, max(1, int(cpus))
        self.slice_size = max(1, int(slice_size))
        self._ray: Any = None
        self._actors: list[Any] = []
        self._turn = 0

    def start(self, embedder: Embedder) -> None:
        from newsrec.ray_cluster import ensure_ray

        ray = self._ray = ensure_ray(self.address, "--engine ray needs Ray: pip install 'ray[data]'")
        actor = ray.remote(num_cpus=self.cpus)(_RayEncoder)
        self._actors = [actor.remote(self.factory, self.cpus) for _ in range(self.workers)]
        log.info("encoding on %d Ray actors, %d CPUs each", self.workers, self.cpus)
        for found in self._get([handle.identity.remote() for handle in self._actors]):
            _check_identity(found, embedder, "Ray workers")

    def submit(self, items: list[NewsItem]) -> Pending:
        parts = []
        for chunk in _slices(items, self.slice_size, self.workers):
            handle = self._actors[self._turn % len(self._actors)]
            self._turn += 1
            parts.append((chunk, _RayFuture(self._ray, handle.encode.remote(chunk))))
        return _Futures(parts, lambda future: self._get(future.ref))

    def _get(self, refs: Any) -> Any:
        try:
            return self._ray.get(refs)
        except self._ray.exceptions.RayActorError as error:
            raise EncodingError(f"a Ray encoding worker died ({type(error).__name__}); {_DIED}") from None

    def close(self) -> None:
        for handle in self._actors:
            try:
                self._ray.kill(handle)
            except Exception as error:  # noqa: BLE001 - already gone with its node
                log.debug("Ray actor not killed: %s", error)
        self._actors = []


# --- choosing one ------------------------------------------------------------------------------------------------


def make_engine(
    engine: str,
    workers: int,
    factory: EmbedderFactory | None,
    ray_address: str | None = None,
) -> EncodeEngine:
    """The engine for `engine` ("local" or "ray") and `workers` (local: 0 = in this process, N = N worker
    processes; ray: N actors). Processes and Ray need `factory`, a picklable way to build the embedder."""
    if engine not in ENGINES:
        raise InputError(f"unknown encoding engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if workers < 0:
        raise InputError(f"encoding workers must be 0 or more, not {workers}")
    if engine == "local" and workers == 0:
        return InProcess()
    if factory is None:
        raise InputError(
            "this embedder cannot be rebuilt in other processes (it was not made by get_embedder): "
            "encode in this process (--workers 0, --engine local)"
        )
    try:
        pickle.dumps(factory)
    except Exception as error:  # noqa: BLE001 - pickling raises many types
        raise InputError(f"the embedder cannot be rebuilt in other processes ({error}): use --workers 0") from None
    if engine == "ray":
        return RayActors(factory, max(1, workers), ray_address)
    return ProcessPool(factory, workers)
