"""Dense + term vectors in one embedding, so the MiniLM embedder (`lite-minilm`) reads Chinese as well as English.

all-MiniLM-L6-v2 is English-only: it maps almost any two Chinese texts close together (cosine 0.7-0.9
whatever their topic), so Chinese interests and neighbours computed from it alone are noise. We append
a hashed bag of words (the same tokens BM25 uses: jieba words for Chinese) and weight the two parts by
the text's script, so that the cosine of two vectors is

    sqrt(w_a * w_b) * cos(dense_a, dense_b) + sqrt((1 - w_a) * (1 - w_b)) * cos(terms_a, terms_b)

with w = DENSE_WEIGHT for Latin text and CJK_DENSE_WEIGHT for mostly-CJK text. Everything downstream
(Chroma, profiles, MMR, explanations) uses these vectors unchanged. Feature hashing is written here
because it is a few lines over our own tokenizer, and sklearn's HashingVectorizer would only wrap them.
Each term adds +1 or -1 to its slot (the sign is another bit of its hash), so two terms that share a
slot cancel out as often as they add up instead of always faking a match: on NeMig, top-10 neighbours
agree with collision-free term vectors 90% of the time with 1,536 signed slots, 89% with 2,048
unsigned ones.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence

import numpy as np

from newsrec.embedders import Embedder
from newsrec.lexical import is_cjk, tokenize
from newsrec.types import NewsItem

N_FEATURES = 1536  # hashed term slots: signed, as faithful as 2048 unsigned ones, and a smaller index
DENSE_WEIGHT = 0.5  # share of the dense model in the cosine, for Latin-script text
CJK_DENSE_WEIGHT = 0.1  # ... and for mostly-CJK text, which the English model cannot tell apart
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


class HybridEmbedder:
    def __init__(self, dense: Embedder, n_features: int = N_FEATURES):
        self.dense = dense
        self.n_features = n_features
        self.name = f"{dense.name}+signed-terms{n_features}"
        self.dim = dense.dim + n_features
        self.parallel_processes = bool(getattr(dense, "parallel_processes", False))

    def set_threads(self, threads: int) -> None:
        set_threads = getattr(self.dense, "set_threads", None)
        if callable(set_threads):
            set_threads(threads)

    def embed_documents(self, items: Sequence[NewsItem]) -> np.ndarray:
        texts = [item.text for item in items]
        return self._combine(self.dense.embed_documents(items), texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(text) for text in texts]
        return self._combine(self.dense.embed_queries(texts), texts)

    def _combine(self, dense: np.ndarray, texts: list[str]) -> np.ndarray:
        """(N, dense.dim + n_features) unit rows."""
        weights = np.array([dense_weight(text) for text in texts], dtype=np.float32)[:, None]  # (N, 1)
        terms = self.term_vectors(texts)
        weights[~terms.any(axis=1)] = 1.0  # no terms (an empty query, say): all weight on the dense part
        return np.hstack([np.sqrt(weights) * dense, np.sqrt(1 - weights) * terms]).astype(np.float32)

    def term_vectors(self, texts: list[str]) -> np.ndarray:
        """(N, n_features) unit rows of signed, sublinear term counts; a text without terms gets a zero row."""
        n = self.n_features
        rows, hashed = [], []
        for row, text in enumerate(texts):
            terms = [_slot(term, n) for term in _terms(text)]
            rows += [row] * len(terms)
            hashed += terms
        # Sum per (row, slot) on the few hundred thousand hits, not on the mostly-zero (N, n_features) matrix.
        slots, signs = np.array(hashed, dtype=np.int64).reshape(-1, 2).T
        cells, where = np.unique(np.array(rows, dtype=np.int64) * n + slots, return_inverse=True)
        sums = np.bincount(where, weights=signs)
        values = np.sign(sums) * np.sqrt(np.abs(sums))  # a word said five times is not five times the topic
        cell_rows = cells // n
        norms = np.sqrt(np.bincount(cell_rows, weights=values**2, minlength=len(texts)))
        vectors = np.zeros((len(texts), n), dtype=np.float32)
        vectors[cell_rows, cells % n] = values / np.maximum(norms[cell_rows], 1e-12)
        return vectors


def dense_weight(text: str) -> float:
    letters = len(text) - sum(map(str.isspace, text))
    return CJK_DENSE_WEIGHT if letters and len(CJK.findall(text)) > 0.3 * letters else DENSE_WEIGHT


@functools.lru_cache(maxsize=200_000)  # a corpus repeats the same few ten thousand words
def _slot(term: str, n_features: int) -> tuple[int, int]:
    """The term's slot and sign. blake2b, not hash(): Python salts str hashes per process, and the index
    outlives the process."""
    digest = int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little")
    return digest % n_features, (1 if digest >> 63 else -1)


def _terms(text: str) -> list[str]:
    """The lexical words, plus the character bigrams of longer Chinese words: jieba keeps domain words whole
    (固态电池), and two texts that share only its parts (固态, 电池) still share terms here."""
    words = tokenize(text)
    return words + [word[i : i + 2] for word in words if len(word) > 2 and is_cjk(word) for i in range(len(word) - 1)]
