"""English stemming (Snowball, through PyStemmer's C implementation: ~1 µs a word, so index builds stay fast)."""

from __future__ import annotations

import threading

__all__ = ["stem"]

_local = threading.local()  # a PyStemmer object is not safe to share between threads


def _stemmer():
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def stem(word: str) -> str:
    """The Snowball English stem of a lowercased word; other words (中文, café, mate60) pass unchanged."""
    if not (word.isascii() and word.isalpha()):
        return word
    return _stemmer().stemWord(word)
