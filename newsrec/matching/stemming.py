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


def _forms(word: str) -> list[str]:
    """A kept word and its plurals (weddings, businesses, authorities)."""
    forms = [word, word + "s", word + "es"]
    if word.endswith("y"):
        forms.append(word[:-1] + "ies")
    return forms


_KEPT_FORMS: dict[str, str] = {form: word for word in sorted(KEPT_WHOLE) for form in _forms(word)}


def stem(word: str) -> str:
    """The Snowball English stem of a lowercased word; other words (中文, café, mate60) pass unchanged, and the
    lexicalised words of `KEPT_WHOLE` and their plurals stem to themselves (weddings -> wedding, not wed)."""
    if not (word.isascii() and word.isalpha()):
        return word
    return _KEPT_FORMS.get(word) or _stemmer().stemWord(word)
