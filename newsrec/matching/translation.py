"""Query terms into the corpus's other language, learned from the corpus's own words and the multilingual encoder.

A query word is embedded alone and compared with every word of the corpus's vocabulary in the other
script (English words vs jieba's Chinese words); the closest ones at TRANSLATION_COSINE or more are its
translations. On the demo corpus USE-Multilingual puts 医疗 at 0.86 from "medical", 黄金 at 0.86 from
"gold", 滑雪 at 0.79 from "ski", while loose neighbours ("robots" for 人工智能, "report" for 财报) sit at
0.53-0.67: the synonym table (synonyms.py) covers what the encoder does not. A wrong translation costs
little: it is one alternative of one query term, and an item needs most of the query to be admitted.

Why the encoder and not the corpus's zh/en story pairs: the demo corpus has four pairs (newsrec/dedupe.py),
too few to align words; the encoder's word vectors come from its bilingual training. Only used for a
corpus with both scripts and an embedder that states `term_translation` (the lite encoder); the vocabulary
is embedded once, lazily (~2-3 s for 4,000 words on two cores).
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Collection, Sequence

import numpy as np

from newsrec.matching.stemming import stem
from newsrec.types import NewsItem

__all__ = ["TermTranslator", "TRANSLATION_COSINE", "MAX_TRANSLATIONS"]

log = logging.getLogger(__name__)

TRANSLATION_COSINE = 0.71  # 演唱会->concert 0.73, recycling->回收 0.72; gold->金黄 0.70, 快充->charging 0.67 stay out
TRANSLATION_MARGIN = 0.08  # and within this of the closest word: 医疗 -> medical (0.86), not doctors (0.77)
MAX_TRANSLATIONS = 3
# A word no story holds can reach the corpus only through its translation. For such a word a looser closest
# word counts, when it is clearly the closest (the runner-up TRANSLATION_MARGIN or more behind): 流媒体 ->
# streaming 0.60 (next 0.50), 感恩节 -> Thanksgiving 0.68 (next 0.51); loose neighbours come in bunches
# (牙齿 -> denser 0.53, denver 0.51; Bundesliga -> 联赛 0.59, 中超联赛 0.57) and stay out. The other way round
# too, the word must be within the margin of the closest word's own closest in the word's language: streaming is
# 0.63 from 直播 and 0.60 from 流媒体; 服化 is 0.75 from "clothing" and only 0.61 from "dresses", which stays out.
ABSENT_COSINE = 0.55
# Names: the encoder barely knows that 库里 is Curry (0.39) or 卡拉尼 Kalani (0.47). Stories of one topic told
# in both languages do: in a pair of such titles, a word and its translation are each other's closest words.
PAIR_COSINE = 0.6  # two items in different languages this close tell one topic (RELATED_SCALE.full)
PAIR_WORD_COSINE = 0.35  # mutual closest title words at this cosine or more are translations ...
PAIR_SUPPORT = 2  # ... in at least this many pairs
# ... or in one pair of stories at LOOSE_PAIR_COSINE or more when the two words are also each other's closest across
# the whole vocabularies (mutual nearest neighbours, as in bilingual lexicon induction): Kyoto / 京都 (word cosine
# 0.62) title the two Kyoto stories (0.59 apart). Either signal alone lets in loose neighbours: gold / 金黄 and
# sensitivity / 流感 are mutual closest words, but no pair of like stories titles them side by side.
LOOSE_PAIR_COSINE = 0.5


class TermTranslator:
    """Translations of single words between the two scripts of a corpus's vocabulary.

    `latin` maps each index term (a stem) to the surface word embedded for it; `han` lists the Chinese
    words (jieba's, not character bigrams). Both come from the corpus (LexicalIndex.build).
    """

    def __init__(self, embedder: object, latin: dict[str, str], han: Sequence[str]):
        self.embedder = embedder
        self._latin_terms = sorted(latin)
        self._latin_words = [latin[term] for term in self._latin_terms]
        self._han = sorted(han)
        self._vectors: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()
        self._cache: dict[str, list[str]] = {}
        self._pairs: dict[str, set[str]] = {}  # word -> translations learned from story pairs (index terms)

    def prepare(self) -> None:
        """Embed the vocabulary now (otherwise the first query does)."""
        self._vocabulary()

    def _vocabulary(self) -> tuple[np.ndarray, np.ndarray]:
        if self._vectors is None:
            with self._lock:
                if self._vectors is None:
                    latin = self.embedder.embed_queries(self._latin_words)
                    han = self.embedder.embed_queries(self._han)
                    self._vectors = (np.asarray(latin, dtype=np.float32), np.asarray(han, dtype=np.float32))
                    log.info("term translation: %d English and %d Chinese words", len(self._latin_terms), len(han))
        return self._vectors

    def learn_from_pairs(self, pairs: Sequence[tuple]) -> int:
        """Learn word translations from story pairs: ([Chinese title words], [English title terms][, cosine]) each.

        In each pair, a Chinese word and an English term (a stem) that are each other's closest (by the
        encoder's word vectors, at PAIR_WORD_COSINE or more) translate each other. Returns how many links.
        """
        latin, han = self._vocabulary()
        latin_row = {term: i for i, term in enumerate(self._latin_terms)}
        han_row = {word: i for i, word in enumerate(self._han)}
        learned = 0
        support: dict[tuple[str, str], int] = {}
        mutual: set[tuple[str, str]] = set()  # links whose words are mutual closest across the vocabularies
        for pair in pairs:
            han_words, latin_terms = pair[0], pair[1]
            loose = len(pair) > 2 and pair[2] < PAIR_COSINE  # a looser pair links mutual closest words only
            zh = sorted({w for w in han_words if w in han_row})
            en = sorted({t for t in latin_terms if t in latin_row})
            if not zh or not en:
                continue
            cosines = han[[han_row[w] for w in zh]] @ latin[[latin_row[t] for t in en]].T  # (Z, E)
            best_en, best_zh = cosines.argmax(axis=1), cosines.argmax(axis=0)
            for z, e in enumerate(best_en):
                if best_zh[e] == z and cosines[z, e] >= PAIR_WORD_COSINE:
                    if loose and not self._mutual(zh[z], en[e]):
                        continue
                    support[(zh[z], en[e])] = support.get((zh[z], en[e]), 0) + 1
                    if self._mutual(zh[z], en[e]):
                        mutual.add((zh[z], en[e]))
        # A link holds when PAIR_SUPPORT pairs show it (or one, for mutual closest words: LOOSE_PAIR_COSINE) and it
        # is each word's best-supported link: one pair of titles aligns 林夏 with Lind (two singers, one topic);
        # several pairs agree only on true translations.
        best: dict[str, int] = {}
        for (z, e), count in support.items():
            best[z] = max(best.get(z, 0), count)
            best[e] = max(best.get(e, 0), count)
        for (z, e), count in sorted(support.items()):
            if count == best[z] == best[e] and (count >= PAIR_SUPPORT or (z, e) in mutual):
                self._pairs.setdefault(z, set()).add(e)
                self._pairs.setdefault(e, set()).add(z)
                learned += 1
        self._cache.clear()
        return learned

    def _mutual(self, han_word: str, latin_term: str) -> bool:
        """Whether a Chinese word and an English term are each other's closest words across the two vocabularies."""
        latin, han = self._vocabulary()
        z, e = _row(self._han, han_word), _row(self._latin_terms, latin_term)
        if z < 0 or e < 0:
            return False
        return int(np.argmax(han @ latin[e])) == z and int(np.argmax(latin @ han[z])) == e

    def translate(self, words: Sequence[tuple[str, bool]], absent: Collection[str] = ()) -> list[list[str]]:
        """For each (word, is_han) pair, the index terms of its translations, closest first (maybe none).

        Words in `absent` are ones no item holds: they take a clearly closest word from ABSENT_COSINE on.
        """
        missing = sorted({word for word, _ in words if (word, word in absent) not in self._cache})
        if missing:
            latin, han = self._vocabulary()
            vectors = np.asarray(self.embedder.embed_queries(missing), dtype=np.float32)
            is_han = dict(words)
            for word, vector in zip(missing, vectors, strict=True):
                target, terms = (latin, self._latin_terms) if is_han[word] else (han, self._han)
                key = (word, word in absent)
                if not len(terms):
                    self._cache[key] = []
                    continue
                cosines = target @ vector
                order = np.argsort(-cosines, kind="stable")[: MAX_TRANSLATIONS * 2]
                found: list[str] = sorted(self._pairs.get(word if is_han[word] else stem(word.lower()), ()))
                closest = float(cosines[order[0]])
                bar = max(TRANSLATION_COSINE, closest - TRANSLATION_MARGIN)
                runner_up = float(cosines[order[1]]) if len(order) > 1 else -1.0
                if key[1] and closest >= ABSENT_COSINE and runner_up <= closest - TRANSLATION_MARGIN:
                    # ... and the word is as near the closest word's own closest ones (within the margin)
                    source = han if is_han[word] else latin
                    back = float((source @ target[order[0]]).max())
                    if closest >= back - TRANSLATION_MARGIN:
                        bar = min(bar, closest)  # the clear closest word only
                for i in order:
                    if cosines[i] < bar or len(found) >= MAX_TRANSLATIONS:
                        break
                    if terms[i] not in found:
                        found.append(terms[i])
                self._cache[key] = found
        return [list(self._cache[(word, word in absent)]) for word, _ in words]


def _row(terms: Sequence[str], term: str) -> int:
    """`term`'s row in the sorted `terms`, or -1."""
    at = bisect.bisect_left(terms, term)
    return at if at < len(terms) and terms[at] == term else -1


def story_pairs(
    items: Sequence[NewsItem], index: object, tokenize: Callable[[str], list[str]], is_cjk: Callable[[str], bool]
) -> list[tuple[list[str], list[str], float]]:
    """(Chinese title words, English title stems, cosine) of every zh/en item pair at LOOSE_PAIR_COSINE or more.

    `index` gives the items' stored vectors (NewsIndex.has / .embeddings); items it lacks are left out.
    `tokenize` and `is_cjk` are the lexical side's (newsrec/lexical.py), passed in so matching stays below it.
    """
    han = [item for item in items if item.language == "zh" and index.has(item.id)]
    latin = [item for item in items if item.language == "en" and index.has(item.id)]
    if not han or not latin:
        return []
    cosines = index.embeddings([item.id for item in han]) @ index.embeddings([item.id for item in latin]).T
    pairs = []
    for z, e in zip(*np.nonzero(cosines >= LOOSE_PAIR_COSINE), strict=True):
        zh = [word for word in tokenize(han[z].title) if is_cjk(word) and len(word) > 1]
        en = [stem(word) for word in tokenize(latin[e].title) if word.isascii() and word.isalpha() and len(word) > 2]
        pairs.append((zh, en, float(cosines[z, e])))
    return pairs
