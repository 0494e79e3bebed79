"""The reranker as a service: `python -m newsrec serve`, speaking vLLM's score/rerank APIs.

protocol.py holds the wire format, scorers.py what is served (the Qwen3-VL engine or lite), batcher.py
the cross-request batching, embeddings.py the optional /v1/embeddings, app.py the FastAPI routes. The
client sides are newsrec/rerankers/remote.py and newsrec/embedders/remote.py.
"""

from __future__ import annotations

__all__ = ["create_app", "ServeLimits", "build_scorer"]


def __getattr__(name: str):  # FastAPI and prometheus-client load only when serving
    if name in {"create_app", "ServeLimits"}:
        from newsrec.serving import app

        return getattr(app, name)
    if name == "build_scorer":
        from newsrec.serving.scorers import build_scorer

        return build_scorer
    raise AttributeError(name)
