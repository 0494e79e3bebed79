"""English stemming (Snowball, through PyStemmer's C implementation: ~1 µs a word, so index builds stay fast).

Snowball's English algorithm (Porter2) strips suffixes by rule, so a word that is a lexicalised noun, not a
form of the shorter word, lands on another word's stem: wedding -> wed, training -> train, boxing -> box,
united -> unit, customer -> custom, authorities -> author, business -> busi (busy). The algorithm keeps a list
of such exceptional forms itself (inning, outing, canning, herring, earring, news, ...); `KEPT_WHOLE` extends
it with common news words of the same kind, checked on a word list (tests/test_matching.py). Each entry is a
word whose Snowball stem is also the stem of a different, common word; regular forms (charging, earnings,
stopped, cities) still join their stems. A lemmatiser would avoid the list, but none is installed here and
Snowball's rules are what the index, the synonym table and term translation share.
"""

from __future__ import annotations

import threading

__all__ = ["stem", "KEPT_WHOLE"]

_local = threading.local()  # a PyStemmer object is not safe to share between threads

# word -> the different word whose stem Snowball would give it (kept for the tests and for the reader)
_OVERSTEMMED = {
    "wedding": "wed",
    "boxing": "box",
    "parking": "park",
    "bedding": "bed",
    "clothing": "cloth",
    "dating": "date",
    "training": "train",
    "united": "unit",
    "customer": "custom",
    "authority": "author",
    "edition": "edit",
    "animated": "animal",
    "animation": "animal",
    "business": "busy",
    "experiment": "experience",
    "several": "sever",
    "careful": "care",
}
KEPT_WHOLE: frozenset[str] = frozenset(_OVERSTEMMED)


def _stemmer():
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def _kept(word: str) -> str:
    """The `KEPT_WHOLE` word that `word` is, or its plural (weddings, authorities, businesses); else ""."""
    for singular in (word, word[:-1] if word.endswith("s") else "", word[:-2] if word.endswith("es") else ""):
        if singular in KEPT_WHOLE:
            return singular
    if word.endswith("ies") and word[:-3] + "y" in KEPT_WHOLE:
        return word[:-3] + "y"
    return ""


def stem(word: str) -> str:
    """The Snowball English stem of a lowercased word; other words (中文, café, mate60) pass unchanged, and the
    lexicalised words of `KEPT_WHOLE` and their plurals stem to themselves (weddings -> wedding, not wed)."""
    if not (word.isascii() and word.isalpha()):
        return word
    return _kept(word) or _stemmer().stemWord(word)
