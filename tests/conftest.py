"""Shared fixtures: an isolated NEWSREC_HOME per test, the ../shared data (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NEWSREC_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(autouse=True)
def newsrec_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own empty data dir, so no test sees another's index or caches."""
    home = tmp_path_factory.mktemp("newsrec_home")
    monkeypatch.setenv("NEWSREC_HOME", str(home))
    return home


def _shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: this test reads the real data in ../shared (see ../shared/README.md)")
    return path


@pytest.fixture
def nemig_dir() -> Path:
    return _shared_path("data", "nemig-en")


@pytest.fixture
def newsimages_dir() -> Path:
    return _shared_path("data", "newsimages-dev")


@pytest.fixture
def qwen_files_dir() -> Path:
    """Real Qwen3-VL tokenizer/processor files and the 2B config (no weights)."""
    return _shared_path("models", "qwen3-vl-2b")


class HashingEmbedder:
    """Deterministic bag-of-words embedder: texts sharing words get similar vectors. No model, instant."""

    name = "fake-hashing"
    dim = 64

    def __init__(self):
        self.calls = 0  # documents embedded so far, to check what gets re-embedded

    def _vector(self, text: str):
        import hashlib

        import numpy as np

        from newsrec.lexical import tokenize

        vector = np.zeros(self.dim, dtype=np.float32)
        for term in tokenize(text):
            vector[int(hashlib.md5(term.encode()).hexdigest(), 16) % self.dim] += 1.0
        if not vector.any():
            vector[0] = 1.0
        return vector / np.linalg.norm(vector)

    def embed_documents(self, items):
        import numpy as np

        self.calls += len(items)
        return np.stack([self._vector(item.text) for item in items]) if items else np.zeros((0, self.dim), np.float32)

    def embed_queries(self, texts):
        import numpy as np

        return np.stack([self._vector(text) for text in texts])


@pytest.fixture
def fake_embedder() -> HashingEmbedder:
    return HashingEmbedder()
