"""Benchmarks that print figures (not tests): `newsrec bench rerank` lives in rerank.py."""
