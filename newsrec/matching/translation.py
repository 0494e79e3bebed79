"""Query terms into the corpus's other language, learned from the corpus's own words and the multilingual encoder.

A query word is embedded alone and compared with every word of the corpus's vocabulary in the other
script (English words vs jieba's Chinese words); the closest ones at TRANSLATION_COSINE or more are its
translations. On the demo corpus USE-Multilingual puts 医疗 at 0.86 from "medical", 黄金 at 0.86 from
"gold", 滑雪 at 0.79 from "ski", while loose neighbours ("robots" for 人工智能, "report" for 财报) sit at
0.53-0.67: the synonym table (synonyms.py) covers what the encoder does not. A wrong translation costs
little: it is one alternative of one query term, and an item needs most of the query to be admitted.

Why the encoder and not the corpus's zh/en story pairs: the demo corpus has four pairs (newsrec/dedupe.py),
too few to align words; the encoder's word vectors come from its bilingual training. Only used for a
corpus with both scripts and an embedder that states `term_translation` (the lite encoder); the vocabulary
is embedded once, lazily (~2-3 s for 4,000 words on two cores).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

__all__ = ["TermTranslator", "TRANSLATION_COSINE", "MAX_TRANSLATIONS"]

log = logging.getLogger(__name__)

TRANSLATION_COSINE = 0.76  # 医疗->medical 0.86, doctors 0.77; 快充->charging 0.67 and 财报->report 0.64 stay out
MAX_TRANSLATIONS = 3


class TermTranslator:
    """Translations of single words between the two scripts of a corpus's vocabulary.

    `latin` maps each index term (a stem) to the surface word embedded for it; `han` lists the Chinese
    words (jieba's, not character bigrams). Both come from the corpus (LexicalIndex.build).
    """

    def __init__(self, embedder: object, latin: dict[str, str], han: Sequence[str]):
        self.embedder = embedder
        self._latin_terms = sorted(latin)
        self._latin_words = [latin[term] for term in self._latin_terms]
        self._han = sorted(han)
        self._vectors: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()
        self._cache: dict[str, list[str]] = {}

    def prepare(self) -> None:
        """Embed the vocabulary now (otherwise the first query does)."""
        self._vocabulary()

    def _vocabulary(self) -> tuple[np.ndarray, np.ndarray]:
        if self._vectors is None:
            with self._lock:
                if self._vectors is None:
                    latin = self.embedder.embed_queries(self._latin_words)
                    han = self.embedder.embed_queries(self._han)
                    self._vectors = (np.asarray(latin, dtype=np.float32), np.asarray(han, dtype=np.float32))
                    log.info("term translation: %d English and %d Chinese words", len(self._latin_terms), len(han))
        return self._vectors

    def translate(self, words: Sequence[tuple[str, bool]]) -> list[list[str]]:
        """For each (word, is_han) pair, the index terms of its translations, closest first (maybe none)."""
        missing = sorted({word for word, _ in words if word not in self._cache})
        if missing:
            latin, han = self._vocabulary()
            vectors = np.asarray(self.embedder.embed_queries(missing), dtype=np.float32)
            is_han = dict(words)
            for word, vector in zip(missing, vectors, strict=True):
                target, terms = (latin, self._latin_terms) if is_han[word] else (han, self._han)
                if not len(terms):
                    self._cache[word] = []
                    continue
                cosines = target @ vector
                order = np.argsort(-cosines, kind="stable")[: MAX_TRANSLATIONS * 2]
                found: list[str] = []
                for i in order:
                    if cosines[i] < TRANSLATION_COSINE or len(found) == MAX_TRANSLATIONS:
                        break
                    if terms[i] not in found:
                        found.append(terms[i])
                self._cache[word] = found
        return [list(self._cache[word]) for word, _ in words]
