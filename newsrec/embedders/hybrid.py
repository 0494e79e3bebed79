"""Dense + term vectors in one embedding, so lite mode reads Chinese as well as English.

all-MiniLM-L6-v2 is English-only: it maps almost any two Chinese texts close together (cosine 0.7-0.9
whatever their topic), so Chinese interests and neighbours computed from it alone are noise. We append
a hashed bag of words (the same tokens BM25 uses: jieba words for Chinese) and weight the two parts by
the text's script, so that the cosine of two vectors is

    sqrt(w_a * w_b) * cos(dense_a, dense_b) + sqrt((1 - w_a) * (1 - w_b)) * cos(terms_a, terms_b)

with w = DENSE_WEIGHT for Latin text and CJK_DENSE_WEIGHT for mostly-CJK text. Everything downstream
(Chroma, profiles, MMR, explanations) uses these vectors unchanged. Feature hashing is written here
because it is a few lines over our own tokenizer, and sklearn's HashingVectorizer would only wrap them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from newsrec.embedders import Embedder
from newsrec.lexical import tokenize
from newsrec.types import NewsItem

N_FEATURES = 2048  # hashed term slots; collisions are rare among the few dozen terms of one article
DENSE_WEIGHT = 0.5  # share of the dense model in the cosine, for Latin-script text
CJK_DENSE_WEIGHT = 0.1  # ... and for mostly-CJK text, which the English model cannot tell apart
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


class HybridEmbedder:
    def __init__(self, dense: Embedder, n_features: int = N_FEATURES):
        self.dense = dense
        self.n_features = n_features
        self.name = f"{dense.name}+terms{n_features}"
        self.dim = dense.dim + n_features

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
        """(N, n_features) unit rows of sublinear term counts; a text without terms gets a zero row."""
        counts = np.zeros((len(texts), self.n_features), dtype=np.float32)
        for row, text in enumerate(texts):
            for term in tokenize(text):
                counts[row, _slot(term, self.n_features)] += 1.0
        counts = np.sqrt(counts)  # a word said five times is not five times the topic
        norms = np.linalg.norm(counts, axis=1, keepdims=True)
        return counts / np.maximum(norms, 1e-12)


def dense_weight(text: str) -> float:
    letters = [char for char in text if not char.isspace()]
    cjk = sum(1 for char in letters if CJK.match(char))
    return CJK_DENSE_WEIGHT if letters and cjk > 0.3 * len(letters) else DENSE_WEIGHT


def _slot(term: str, n_features: int) -> int:
    # blake2b, not hash(): Python salts str hashes per process, and the index outlives the process.
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little") % n_features
