"""newsrec: a two-stage multimodal news recommender (Chroma recall + Qwen3-VL-Reranker, or lite on CPU)."""

from newsrec import config as _config  # noqa: F401  (sets offline/telemetry env vars before heavy imports)

__version__ = "0.1.0"
__all__ = ["__version__"]
