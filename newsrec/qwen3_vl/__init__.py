"""Qwen3-VL models for newsrec: loading (loading.py), random-weight test models (random_model.py), the
reranker's input format (prompt.py) and its fast exact scorer (engine.py, vision_cache.py).

Nothing heavy is imported here; torch and transformers load only when a Qwen3-VL model is used.
"""
