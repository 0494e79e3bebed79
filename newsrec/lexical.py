"""Lexical matching: a tokenizer for English and Chinese, and IDF-weighted BM25 coverage of a query.

Dense vectors blur exact names and confuse senses (Apple the company, apples the fruit); the literal
words of a query (people, places, products, 收购价) catch what they miss, in any language the tokenizer
splits. `newsrec/relevance.py` fuses the two. BM25 itself comes from `bm25s` (sparse-matrix scoring,
~1 s to index 10,000 items here).
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from newsrec.matching.stemming import stem as _stem
from newsrec.types import NewsItem

__all__ = ["tokenize", "LexicalIndex", "LexicalMatch", "Concept", "STOPWORDS", "is_cjk", "add_corpus_words"]

log = logging.getLogger(__name__)

# Han ideographs (basic, extension A, compatibility): these runs go to jieba; everything else that is a
# letter or digit forms words split on non-word characters. Kana and Hangul fall into the word branch.
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<word>[^\W_{_CJK}]+)")
_HAN_RE = re.compile(rf"^[{_CJK}]+$")
_JOINS_WORDS = re.compile(r"[\s\-]+")  # what may stand between two words of a phrase: spaces, hyphens

# Small, hand-picked lists: function words only, so topical words ("border", "政策") always survive; plus
# the words that ask for recency or news as such (latest, 最新, 消息): every story in a news corpus is
# news, and a small corpus makes them rare, so IDF alone would let 最新 pick the one story that says it.
_EN_STOPWORDS = """
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have having
he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
nor not now of off on once only or other our ours ourselves out over own same she should so some such than
that the their theirs them themselves then there these they this those through to too under until up very
was we were what when where which while who whom why will with would you your yours yourself yourselves
says said say new news via per vs amp s t ll re ve d m
latest newest recent recently
"""
_ZH_STOPWORDS = """
的 了 和 是 在 也 有 就 不 都 而 及 与 或 这 那 之 其 中 对 为 以 于 被 把 从 到 等 着 个 上 下 吗 呢 吧 啊
我 你 他 她 它 我们 你们 他们 她们 它们 自己 这个 那个 这些 那些 一个 没有 已经 可以 因为 所以 但是 如果
并 并且 而且 以及 还 又 很 更 最 将 会 能 要 让 向 据 称 表示 进行 通过 对于 关于 由于 日 月 年
最新 最近 近日 新闻 消息
"""
STOPWORDS: frozenset[str] = frozenset(_EN_STOPWORDS.split() + _ZH_STOPWORDS.split())

# Common news words: they say what kind of news, not which topic ("gold price", "ski holiday", "Apple launch
# event", 电池技术突破). They rank (coverage) but count GENERIC_WEIGHT of their weight towards admitting an item
# (LexicalMatch.held), so one of them alone never admits a story. IDF cannot tell: in a small corpus "event"
# is rarer than "apple". English words are listed as typed; they are stemmed when used.
_GENERIC_WORDS = """
price prices priced cost costs fee fees event events launch launches launched holiday holidays record records
report reports update updates plan plans deal deals week year day month time first top big high low rise rises
fall falls results
价格 价 费用 活动 发布 推出 假期 记录 纪录 报告 计划 技术 突破 首次 提升 创新
"""
GENERIC_WEIGHT = 0.25

_jieba_lock = threading.Lock()
_jieba = None


def _segmenter():
    """jieba, initialised once and quietly (its dictionary load logs to stderr and takes ~1 s)."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                # Domain words stay whole (人工智能, 固态电池) instead of splitting into pieces that mean less.
                for word in _table_han_words():
                    jieba.add_word(word)
                _jieba = jieba
    return _jieba


def _table_han_words() -> list[str]:
    from newsrec.matching.synonyms import synonym_groups

    return sorted({phrase for group in synonym_groups() for phrase in group if _HAN_RE.match(phrase)})


# A name in quotes or title marks (“双十一”, 《山海行》) is one word to the writer: keep it whole.
_QUOTED_HAN = re.compile(rf"[“\"《「]([{_CJK}]{{2,8}})[”\"》」]")


def add_corpus_words(texts: Iterable[str]) -> list[str]:
    """Teach jieba the quoted Chinese names of `texts` (a corpus's titles); returns the new words, sorted."""
    segmenter = _segmenter()
    words = sorted({m.group(1) for text in texts for m in _QUOTED_HAN.finditer(text)})
    new = [word for word in words if segmenter.dt.FREQ.get(word, 0) == 0]
    for word in new:
        segmenter.add_word(word)
    if new:  # jieba now segments some text differently: terms kept from earlier builds may be stale
        _forget_item_terms()
    return new


# The terms of each item of the last corpus indexed (key: its id and the text fields the terms come from), so a
# rebuild after another writer's append (newsrec/follow.py) tokenizes only the new or changed items: tokenizing is
# ~2/3 of a rebuild's CPU, and the app does it under the GIL while serving. One corpus's worth, up to
# TERMS_CACHE_MAX_ITEMS items (bigger corpora are tokenized afresh, the memory being worth more than the time).
TERMS_CACHE_MAX_ITEMS = 50_000
_item_terms: dict[tuple[str, str, str, str, str, bool], tuple[list[str], list[str]]] = {}
_item_terms_lock = threading.Lock()


def _forget_item_terms() -> None:
    with _item_terms_lock:
        _item_terms.clear()


def _terms_key(item: NewsItem, bigrams: bool) -> tuple[str, str, str, str, str, bool]:
    return item.id, item.title, item.body, item.category, item.subcategory, bigrams


def _known_document_terms(item: NewsItem, bigrams: bool) -> list[str]:
    """The item's document terms, from the last build when it holds them (a card's matched words, per request)."""
    with _item_terms_lock:
        found = _item_terms.get(_terms_key(item, bigrams))
    return found[0] if found else _document_terms(item, bigrams=bigrams)


def _terms_of(items: list[NewsItem], bigrams: bool) -> tuple[list[list[str]], list[list[str]]]:
    """(document terms, head terms) of each item, reusing those of the last build for unchanged items."""
    keys = [_terms_key(item, bigrams) for item in items]
    with _item_terms_lock:
        known = dict(_item_terms)
    terms = [
        known.get(key) or (_document_terms(item, bigrams=bigrams), _head_terms(item, bigrams=bigrams))
        for key, item in zip(keys, items, strict=True)
    ]
    if len(items) <= TERMS_CACHE_MAX_ITEMS:
        with _item_terms_lock:
            _item_terms.clear()
            _item_terms.update(zip(keys, terms, strict=True))
    return [doc for doc, _ in terms], [head for _, head in terms]


def tokenize(text: str, *, bigrams: bool = False, stem: bool = False) -> list[str]:
    """Lowercased terms of `text`: Latin/other-script words and numbers, jieba words for Chinese runs.

    Stopwords, punctuation and one-letter Latin tokens are dropped; single Han characters are kept (many
    are words on their own, e.g. 车, 税). With `bigrams`, each Chinese run of 3+ characters also yields
    its character bigrams. Those match across jieba's segmentation choices (it keeps 汽车销量 as one word,
    so the query 汽车 would miss it); BM25 turns them on, while keyword display keeps them off.
    `bigrams` also adds word bigrams ("box office") for two kept words next to each other (only spaces
    or a hyphen between them): a phrase term, so a query's words side by side in an item ("box office")
    outweigh the same words scattered ("office suite ... a box"). Character bigrams already do this
    for Chinese. With `stem`, English words become their Snowball stems (charging -> charg), phrases too.
    """
    if not text:
        return []
    # NFKC folds full-width Latin letters and digits (common in Chinese text) into ASCII.
    text = unicodedata.normalize("NFKC", text).lower()
    terms: list[str] = []
    previous: re.Match | None = None  # the last kept word, for word bigrams
    previous_term = ""
    for match in _TOKEN_RE.finditer(text):
        run = match.group("cjk")
        if run is None:
            word = match.group("word")
            if (len(word) > 1 or word.isdigit()) and word not in STOPWORDS:
                term = _stem(word) if stem else word
                terms.append(term)
                if bigrams and previous is not None and _JOINS_WORDS.fullmatch(text, previous.end(), match.start()):
                    terms.append(f"{previous_term} {term}")
                previous, previous_term = match, term
            else:
                previous = None
            continue
        previous = None
        terms.extend(w for w in _segmenter().lcut(run) if _HAN_RE.match(w) and w not in STOPWORDS)
        if bigrams and len(run) > 2:
            terms.extend(pair for pair in (run[i : i + 2] for i in range(len(run) - 1)) if pair not in STOPWORDS)
    return terms


def is_cjk(term: str) -> bool:
    """Whether a term is a run of Han characters (a jieba word or a character bigram)."""
    return bool(_HAN_RE.match(term))


def _document_terms(item: NewsItem, *, bigrams: bool) -> list[str]:
    # The title counts twice: it is the most specific text a news item has, and bodies are often
    # boilerplate (publisher blurbs) that would otherwise dilute it. The desk's category and subcategory
    # count once: an editor filed the story under "earnings" even when its words say "revenue".
    title = tokenize(item.title, bigrams=bigrams, stem=True)
    return title + title + tokenize(item.body, bigrams=bigrams, stem=True) + _label_terms(item, bigrams=bigrams)


def _label_terms(item: NewsItem, *, bigrams: bool) -> list[str]:
    return tokenize(f"{item.category}. {item.subcategory}".replace("-", " "), bigrams=bigrams, stem=True)


def _head_terms(item: NewsItem, *, bigrams: bool) -> list[str]:
    """What a story is about, as opposed to what it mentions: its title and its desk labels."""
    return tokenize(item.title, bigrams=bigrams, stem=True) + _label_terms(item, bigrams=bigrams)


# How a query admits an item (newsrec/relevance.py): the item holds a query concept when the concept's score
# reaches HOLD (a body mention scores ~0.6 of the best title), and covers the query when it holds concepts
# worth COVER_SHARE of the query's IDF weight. So "gold price" admits gold stories (gold is 0.68 of its weight),
# not every "price" story; and two terms of like weight (人工智能 医疗: 0.52 and 0.48) are both needed.
HOLD = 0.25
COVER_SHARE = 0.6
MIN_TRANSLATION_DF, TRANSLATION_DF_RATIO = 5, 3  # a translation is in at most max(5, 3 x) the word's items
MIN_COVER_SHARE = 0.5
# A query word no item has counts as missed unless the query means about this much the same without it (cosine of
# the two query vectors): see LexicalIndex._adds_little. Checked on typed examples, not on the judged sets.
ABSENT_MEANING = 0.85
FULL_SHARE = 0.5


@dataclass(frozen=True)
class Concept:
    """One thing the query asks for, and the index terms that say it (any one alternative will do).

    An alternative is a tuple of terms, scored as their IDF-weighted mean: "electric vehicle" is
    (electr, vehicl, "electr vehicl"); a Chinese word not in the corpus is its character bigrams.
    """

    label: str
    alternatives: tuple[tuple[str, ...], ...]
    kind: str = "word"  # "word" | "phrase" (two words side by side: ranks, never admits) | "number"


@dataclass(frozen=True)
class LexicalMatch:
    """The whole corpus scored against one query, aligned with `LexicalIndex.ids`."""

    coverage: np.ndarray  # (N,) IDF-weighted share of the query matched, in [0, 1]
    held: np.ndarray  # (N,) IDF-weighted share of the query's word concepts the item holds, in [0, 1]
    concepts: tuple[Concept, ...] = ()
    literal: np.ndarray | None = None  # (N,) coverage with common words at full weight (`full`)
    headline: np.ndarray | None = None  # (N,) bool: the title or the desk labels hold one of the query's words
    # (N,) bool: the query has a word no item holds, and the item holds all of its other words (one of them not a
    # common news word). Words can't tell whether such an item says the missing word too (NBA最新战况: no story
    # says 战况); its meaning can (relevance.admitted checks the cosine). None or all False otherwise.
    known: np.ndarray | None = None

    @property
    def covers(self) -> np.ndarray:
        """(N,) bool: the item holds the query's distinctive terms.

        That is COVER_SHARE of the query's weight, or as much as the best item holds if that is less, but
        never under MIN_COVER_SHARE: "ski holiday" has one ski story that does not say holiday (ski is 0.52
        of the weight), while "cricket world cup" has only world cups of other sports (0.38).
        """
        best = float(self.held.max()) if len(self.held) else 0.0
        return self.held >= max(min(COVER_SHARE, best), MIN_COVER_SHARE) - 1e-9

    @property
    def full(self) -> np.ndarray:
        """(N,) bool: full matches, which tell the query's sense: covering items that say FULL_SHARE of the query,
        its common words included ("Apple launch event" is fully the MacBook launch, only partly an apple price
        story); all covering items when none does."""
        covers = self.covers
        literal = self.coverage if self.literal is None else self.literal
        full = covers & (literal >= FULL_SHARE)
        return full if full.any() else covers


class LexicalIndex:
    """BM25 (Lucene variant, k1=1.5, b=0.75) over title + body of news items; build with `LexicalIndex.build`.

    Chinese character bigrams are indexed next to jieba words by default: on a hand-made check of 24
    headlines and 18 paraphrased queries, MRR went 0.83 (words) -> 0.97 (words + bigrams), against 0.94
    for jieba's search mode; English text is unaffected. English words are indexed as Snowball stems.
    """

    def __init__(
        self,
        ids: list[str],
        bm25,
        *,
        bigrams: bool = True,
        df: Counter[str] | None = None,
        latin_words: dict[str, str] | None = None,
        han_words: list[str] | None = None,
        heads: dict[str, np.ndarray] | None = None,
    ):
        self.ids = ids
        self._bm25 = bm25  # bm25s.BM25, or None when the corpus has no terms at all
        self.bigrams = bigrams
        self._df = df or Counter()  # documents per term, for the IDF weights of `match`
        self._latin_words = latin_words or {}  # stem -> a surface word, in bilingual corpora (for translation)
        self._han_words = han_words or []  # jieba words (not bigrams), in bilingual corpora
        self._heads = heads or {}  # term -> indices of the items whose title or desk labels hold it
        self.translator = None  # a matching.translation.TermTranslator, set by `enable_translation`
        self._synonyms = _synonym_index()
        # news id -> its position in `ids` and in every `LexicalMatch` array: built here, never per request
        self.rows: dict[str, int] = {news_id: i for i, news_id in enumerate(ids)}
        self._scope = threading.local()  # per-thread memo of `score` while a request scope is open

    @contextmanager
    def request_scope(self) -> Iterator[None]:
        """Within this block (one request, one thread) `score` of the same text is computed once.

        A query request scores the whole corpus for retrieval, again in the lite reranker and again in a
        learned stage's query part: each pass is O(corpus), so they share one. Outside a scope nothing is
        kept, so a later change (a translator learning pairs) is never answered from a stale result.
        """
        outer = getattr(self._scope, "memo", None)
        if outer is None:
            self._scope.memo = {}
        try:
            yield
        finally:
            if outer is None:
                self._scope.memo = None

    @classmethod
    def build(
        cls, items: Iterable[NewsItem], *, bigrams: bool = True, k1: float = 1.5, b: float = 0.75
    ) -> LexicalIndex:
        import bm25s

        # bm25s sets its own logger to DEBUG on import, which floods the CLI's stderr; follow ours instead.
        logging.getLogger("bm25s").setLevel(logging.NOTSET)
        items = list(items)
        ids = [item.id for item in items]
        han_titles = sum(1 for item in items if _HAN_SEARCH.search(item.title))
        if han_titles:
            add_corpus_words(item.title for item in items)
        corpus, head_terms = _terms_of(items, bigrams)
        if not any(corpus):
            return cls(ids, None, bigrams=bigrams)
        postings: dict[str, list[int]] = {}
        for i, terms in enumerate(head_terms):
            for term in sorted(set(terms)):
                postings.setdefault(term, []).append(i)
        heads = {term: np.array(rows, dtype=np.int64) for term, rows in postings.items()}
        bm25 = bm25s.BM25(k1=k1, b=b)
        bm25.index(corpus, show_progress=False)
        df: Counter[str] = Counter()
        for terms in corpus:
            df.update(set(terms))
        latin_words: dict[str, str] = {}
        han_words: list[str] = []
        if 0 < han_titles < len(items):  # two scripts: keep the vocabulary that term translation reads
            latin_words, han_words = _vocabulary(items)
        return cls(ids, bm25, bigrams=bigrams, df=df, latin_words=latin_words, han_words=han_words, heads=heads)

    def enable_translation(self, embedder: object, items: Sequence[NewsItem] = (), index: object = None) -> bool:
        """Translate query words into the corpus's other script with `embedder`'s word vectors; False if unused.

        With `index` (the items' stored vectors), names are also learnt from same-topic zh/en story pairs.
        """
        if not (self._latin_words and self._han_words and getattr(embedder, "term_translation", False)):
            return False
        from newsrec.matching.translation import TermTranslator, story_pairs

        self.translator = TermTranslator(embedder, self._latin_words, self._han_words)
        if index is not None:
            self.translator.learn_from_pairs(story_pairs(items, index, tokenize, is_cjk))
        return True

    def __len__(self) -> int:
        return len(self.ids)

    def idf(self, term: str) -> float:
        """Lucene's BM25 IDF, log(1 + (N - df + 0.5) / (df + 0.5)); a term no item has gets the largest value."""
        return self._idf_of(self._df.get(term, 0))

    def _idf_of(self, df: int) -> float:
        n = len(self.ids)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def query_terms(self, text: str) -> dict[str, float]:
        """The query's index terms (every alternative of every concept) with their IDF weights.

        A CJK term that no item has is dropped rather than counted as missed: jieba keeps compounds whole
        (收购价格) while the bigrams that do occur (收购, 购价) already carry the meaning, which is how
        收购价格 matches an item that says 收购价. So is a word pair no item has: a phrase adds weight where
        the words stand together, and costs nothing where no item has them so. An unknown Latin word
        counts, with the largest weight: `zxqv apple` must match `apple` only partly.
        """
        alternatives = [alternative for concept in self.concepts(text) for alternative in concept.alternatives]
        terms = dict.fromkeys(term for alternative in alternatives for term in alternative)
        return {term: self.idf(term) for term in terms}

    def concepts(self, text: str) -> list[Concept]:
        """What the query asks for: its words (stemmed), synonym-table phrases, word pairs, translations."""
        words = self._query_words(text)
        concepts: list[Concept] = []
        translate: list[tuple[int, str, bool]] = []  # (concept index, surface word, is_han)
        absent: set[str] = set()  # surface words whose own term no item holds: only a translation can match them
        i = 0
        while i < len(words):
            span, group = self._synonym_span(words, i)
            if group is not None:
                alternatives = [alt for phrase in group for alt in self._phrase_alternatives(phrase)]
                label = " ".join(word.surface for word in words[i : i + span])
                concepts.append(Concept(label, _unique(alternatives)))
                if span == 1:
                    translate.append((len(concepts) - 1, words[i].cased or words[i].surface, words[i].han))
                i += span
                continue
            word = words[i]
            if word.term.isdigit():
                concepts.append(Concept(word.surface, ((word.term,),), kind="number"))
            elif word.han:
                alternatives = [(word.term,)]
                pieces = tuple(_char_bigrams(word.term)) if len(word.term) > 2 else ()
                if any(piece in self._df for piece in pieces):
                    alternatives.append(pieces)
                concepts.append(Concept(word.surface, tuple(alternatives)))
                translate.append((len(concepts) - 1, word.surface, True))
                if word.term not in self._df:
                    absent.add(word.surface)
            else:
                concepts.append(Concept(word.surface, ((word.term,),)))
                translate.append((len(concepts) - 1, word.cased or word.surface, False))
                if word.term not in self._df:
                    absent.add(word.cased or word.surface)
            i += 1
        for left, right in zip(words, words[1:], strict=False):  # word pairs side by side: phrase terms
            phrase = f"{left.term} {right.term}"
            if right.joined and not left.han and not right.han and phrase in self._df:
                concepts.append(Concept(f"{left.surface} {right.surface}", ((phrase,),), kind="phrase"))
        if self.translator is not None and translate:
            found = self.translator.translate([(surface, han) for _, surface, han in translate], sorted(absent))
            # One word of the query says a thing once: a term that another word of the query already says (its
            # own word or synonym) is no translation, or one story word would hold two query words. 人民币汇率:
            # 汇率 says "currency"; 人民币 -> currency would let any story that says currency cover both.
            said = {
                term: index
                for index, concept in enumerate(concepts)
                for alternative in concept.alternatives
                for term in alternative
            }
            for (index, _, _), terms in zip(translate, found, strict=True):
                terms = [term for term in terms if said.setdefault(term, index) == index]
                # a translation may not make the concept much commoner than the word: 收购价格 is not "price"
                own = [self._df.get(t, 0) for alt in concepts[index].alternatives for t in alt if t in self._df]
                most = max(MIN_TRANSLATION_DF, TRANSLATION_DF_RATIO * min(own, default=0))
                extra = tuple((term,) for term in terms if 0 < self._df.get(term, 0) <= most)
                if extra:
                    concept = concepts[index]
                    concepts[index] = Concept(concept.label, _unique([*concept.alternatives, *extra]), concept.kind)
        return concepts

    def _query_words(self, text: str) -> list[_QueryWord]:
        """The query's kept words in order; an unknown run-together compound (fastcharging) split in two."""
        words: list[_QueryWord] = []
        if not text:
            return words
        typed = unicodedata.normalize("NFKC", text)
        text = typed.lower()
        if len(text) != len(typed):  # a rare letter whose lower case is longer: no cased forms
            typed = text
        previous_end = -1
        for match in _TOKEN_RE.finditer(text):
            joined = previous_end >= 0 and bool(_JOINS_WORDS.fullmatch(text, previous_end, match.start()))
            run = match.group("cjk")
            if run is not None:
                for piece in _segmenter().lcut(run):
                    if _HAN_RE.match(piece) and piece not in STOPWORDS:
                        for part in self._split_han(piece):
                            words.append(_QueryWord(part, part, True, False))
                previous_end = -1
                continue
            word = match.group("word")
            if not ((len(word) > 1 or word.isdigit()) and word not in STOPWORDS):
                previous_end = -1
                continue
            term = _stem(word)
            split = self._split_compound(word) if term not in self._df else None
            if split:
                words.append(_QueryWord(split[0], _stem(split[0]), False, joined))
                words.append(_QueryWord(split[1], _stem(split[1]), False, True))
            else:
                words.append(_QueryWord(word, term, False, joined, typed[match.start("word") : match.end("word")]))
            previous_end = match.end()
        return words

    def _split_han(self, word: str) -> list[str]:
        """A Chinese query word that no item has, split into the dictionary words it is made of (黄金价格 ->
        黄金, 价格), longest first from the left, so each part can match, translate and count on its own."""
        if len(word) < 3 or word in self._df or (word,) in self._synonyms[0]:
            return [word]
        known = {part for part in _segmenter().lcut_for_search(word) if len(part) > 1 and part != word}
        parts, i = [], 0
        while i < len(word):
            part = next((word[i:j] for j in range(len(word), i + 1, -1) if word[i:j] in known), "")
            if part:
                parts.append(part)
                i += len(part)
            else:
                i += 1
        return parts if len(parts) > 1 else [word]

    def _split_compound(self, word: str) -> tuple[str, str] | None:
        """`fastcharging` -> (fast, charging) when both halves are corpus terms; the most even split first."""
        if len(word) < 6 or not word.isascii() or not word.isalpha():
            return None
        middle = len(word) / 2
        for cut in sorted(range(3, len(word) - 2), key=lambda c: (abs(c - middle), c)):
            head, tail = word[:cut], word[cut:]
            if _stem(head) in self._df and _stem(tail) in self._df and f"{_stem(head)} {_stem(tail)}" in self._df:
                return head, tail
        return None

    def _synonym_span(self, words: list[_QueryWord], start: int) -> tuple[int, list[str] | None]:
        """The longest synonym-table phrase starting at words[start]: (its length in words, its group)."""
        keys, longest = self._synonyms
        for span in range(min(longest, len(words) - start), 0, -1):
            group = keys.get(tuple(word.term for word in words[start : start + span]))
            if group is not None:
                return span, group
        return 0, None

    def _phrase_alternatives(self, phrase: str) -> list[tuple[str, ...]]:
        """Index terms of one synonym-table phrase: its words and word pairs, or a Chinese word (or its bigrams)."""
        if _HAN_RE.match(phrase):
            alternatives = [(phrase,)] if phrase in self._df else []
            pieces = tuple(_char_bigrams(phrase))
            if len(phrase) > 2 and all(piece in self._df for piece in pieces):  # every piece present, else too loose
                alternatives.append(pieces)
            return alternatives
        terms = tuple(t for t in tokenize(phrase, bigrams=True, stem=True) if t in self._df)
        words = [t for t in tokenize(phrase, stem=True)]
        if not terms or any(word not in self._df for word in words):
            return []
        return [terms]

    def score(self, text: str) -> LexicalMatch:
        """Every item against the query: coverage (ranking) and the share of the query it holds (admission).

        Each term's BM25 score is divided by its best score over the corpus (1 = as strongly as any item
        has it, usually in the title; BM25 saturates repeats and discounts long texts). A concept scores
        its best alternative; concepts are averaged with IDF weights, the IDF of the items that hold the
        concept (any of its alternatives). So a concept most items share (prices, 技术, 突破) moves an item
        little, and only an item with the query's rare, specific concepts (harvest, 收购价) scores near 1.
        Pure numbers never match on their own: a year or a count alone is not a topic.
        """
        memo = getattr(self._scope, "memo", None)
        if memo is not None and text in memo:
            return memo[text]
        scored = self._score(text)
        if memo is not None:
            memo[text] = scored
        return scored

    def _score(self, text: str) -> LexicalMatch:
        n = len(self.ids)
        empty = LexicalMatch(np.zeros(n), np.zeros(n))
        concepts = self.concepts(text)
        if self._bm25 is None or not concepts:
            return empty
        cache: dict[str, np.ndarray] = {}

        def normalised(term: str) -> np.ndarray:
            if term not in cache:
                scores = self._bm25.get_scores([term]) if term in self._df else np.zeros(n)
                best = scores.max() if len(scores) else 0.0
                cache[term] = scores / best if best > 0 else np.zeros(n)
            return cache[term]

        weighted = np.zeros(n)
        literal = np.zeros(n)  # like `weighted`, common words at full weight: how fully the item says the query
        literal_total = 0.0
        held = np.zeros(n)
        total = admitting = 0.0
        topical = np.zeros(n, dtype=bool)
        headline = np.zeros(n, dtype=bool)
        holds_known = np.ones(n, dtype=bool)  # holds every word concept some item has
        absent_words: list[str] = []
        distinct_word = False
        for concept in concepts:
            best = np.zeros(n)
            hold = np.zeros(n)  # like `best`, but an English phrase counts only where all its words are
            for alternative in concept.alternatives:
                weights = np.array([self.idf(term) for term in alternative])
                scores = sum(w * normalised(t) for w, t in zip(weights, alternative, strict=True)) / weights.sum()
                if not (len(alternative) > 1 and _HAN_RE.match(alternative[0])):
                    best = np.maximum(best, scores)
                words = [term for term in alternative if " " not in term and not _HAN_RE.match(term)]
                if len(words) > 1:
                    scores = np.where(np.logical_and.reduce([normalised(w) > 0 for w in words]), scores, 0.0)
                    hold = np.maximum(hold, scores)
                elif len(alternative) > 1 and _HAN_RE.match(alternative[0]):  # a Chinese word's bigrams: most
                    present = sum((normalised(piece) > 0).astype(int) for piece in alternative)
                    scores = np.where(2 * present > len(alternative), scores, 0.0)
                    best = np.maximum(best, scores)  # the headset's 价格 is not 收购价格
                    hold = np.maximum(hold, scores)
                else:
                    hold = np.maximum(hold, scores)
            holders = int((hold >= HOLD).sum())
            known = any(term in self._df for alternative in concept.alternatives for term in alternative)
            if not known and concept.kind != "word":
                continue  # a phrase or a number no item has: it adds weight where items have it, costs nothing
            if concept.kind == "word":
                if known:
                    holds_known &= hold >= HOLD
                    distinct_word |= not self._generic(concept)
                elif _HAN_RE.match(concept.label):  # English words a corpus lacks are names and topics (bitcoin)
                    absent_words.append(concept.label)
                else:
                    absent_words.append("")  # ... and always count as missed
            weight = self._idf_of(holders)
            literal += weight * best
            literal_total += weight
            weight *= GENERIC_WEIGHT if concept.kind == "word" and self._generic(concept) else 1.0
            weighted += weight * best
            total += weight
            if concept.kind == "word":
                held += weight * (hold >= HOLD)
                admitting += weight
                headline |= self._in_heads(concept)
                topical |= best > 0
        if not total:
            return empty
        coverage = np.where(topical, weighted / total, 0.0)
        held = held / admitting if admitting else np.zeros(n)
        literal = np.where(topical, literal / literal_total, 0.0)
        light = bool(absent_words) and all(absent_words) and distinct_word and self._adds_little(text, absent_words)
        known = holds_known & topical if light else np.zeros(n, dtype=bool)
        return LexicalMatch(coverage, np.where(topical, held, 0.0), tuple(concepts), literal, headline, known)

    def _adds_little(self, text: str, absent: list[str]) -> bool:
        """Whether the query means about the same without its Chinese words that no item has (ABSENT_MEANING).

        jieba keeps words whole that a small corpus never uses (战况, 动态): read off the translator's multilingual
        encoder (whole query vs query without those words), 战况 in "NBA最新战况" (0.89) or 动态 in 台风最新动态
        (0.93) say what kind of news, while 新冠 in 新冠疫苗 (0.81) or 伤亡 in 地震最新伤亡 (0.80) name what the
        stories must be about. Only Chinese words: in English the measure is unsteady ("covid vaccine" 0.88,
        "COVID vaccine" 0.81), and an English word no story has is mostly a name or a topic (bitcoin, cricket).
        Without a translator (one-script corpora, embedders without word vectors) a missing word always counts.
        """
        if self.translator is None:
            return False
        full = " ".join(unicodedata.normalize("NFKC", text).split())  # as typed: the encoder reads case ("COVID")
        rest = full
        for word in absent:
            rest = re.sub(re.escape(word), " ", rest, flags=re.IGNORECASE)
        rest = " ".join(rest.split())
        if not rest or rest == full:
            return False
        vectors = np.asarray(self.translator.embedder.embed_queries([full, rest]), dtype=np.float64)
        return float(vectors[0] @ vectors[1]) >= ABSENT_MEANING

    def _in_heads(self, concept: Concept) -> np.ndarray:
        """(N,) bool: items whose title or desk labels hold one of the concept's alternatives (all its terms;
        most bigrams of a Chinese word)."""
        found = np.zeros(len(self.ids), dtype=bool)
        for alternative in concept.alternatives:
            alternative = tuple(term for term in alternative if " " not in term) or alternative  # words, not pairs
            counts = np.zeros(len(self.ids), dtype=np.int64)
            for term in alternative:
                rows = self._heads.get(term)
                if rows is not None:
                    counts[rows] += 1
            need = (
                len(alternative) // 2 + 1
                if len(alternative) > 1 and _HAN_RE.match(alternative[0])
                else len(alternative)
            )
            found |= counts >= need
        return found

    def _generic(self, concept: Concept) -> bool:
        """Whether a concept is a common news word (_GENERIC_WORDS), by its own first alternative."""
        first = concept.alternatives[0] if concept.alternatives else ()  # a synonym no story uses has none
        return len(first) == 1 and first[0] in _generic_terms()

    def matched_words(self, text: str, item: NewsItem) -> list[str]:
        """The query's words that `item` says, as a card quotes them; a word the item says only in the other
        language (or by a synonym) shows what it says: "苹果 → apples", "fast charge → 快充"."""
        terms = set(_known_document_terms(item, self.bigrams))
        words = []
        for concept in self.concepts(text):
            if concept.kind == "phrase":
                continue
            held = next((alt for alt in concept.alternatives if alt and all(t in terms for t in alt)), None)
            if held is None:
                continue
            said = [term for term in held if " " not in term]  # words, not word pairs
            own = set(tokenize(concept.label, stem=True)) | {concept.label}
            if set(said) <= own or (len(said) > 1 and all(_HAN_RE.match(term) for term in said)):
                words.append(concept.label)  # its own words (or a Chinese word's character bigrams)
            else:
                surface = " ".join(self._latin_words.get(term, term) for term in said)
                words.append(f"{concept.label} → {surface}")
        return words

    def match(self, text: str, n: int | None = None) -> list[tuple[str, float]]:
        """Up to `n` (news_id, coverage) pairs, best first: the IDF-weighted share of the query matched, in [0, 1]."""
        coverage = self.score(text).coverage
        hits = np.flatnonzero(coverage > 0)
        order = hits[np.lexsort((hits, -coverage[hits]))][:n]
        return [(self.ids[i], float(coverage[i])) for i in order]


@dataclass(frozen=True)
class _QueryWord:
    surface: str  # as typed (lowercased)
    term: str  # its index term: the stem, or the jieba word
    han: bool
    joined: bool  # only a space or hyphen since the previous kept word (a phrase may span them)
    cased: str = ""  # as typed, case kept: the encoder knows "Harbin" (哈尔滨 0.72), not "harbin" (no translation)


_HAN_SEARCH = re.compile(rf"[{_CJK}]")


def _char_bigrams(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)]


def _unique(alternatives: Iterable[tuple[str, ...]]) -> tuple[tuple[str, ...], ...]:
    return tuple(dict.fromkeys(alternative for alternative in alternatives if alternative))


@functools.cache
def _generic_terms() -> frozenset[str]:
    return frozenset(_stem(word) for word in _GENERIC_WORDS.split())


_synonym_cache: tuple[dict[tuple[str, ...], list[str]], int] | None = None


def _synonym_index() -> tuple[dict[tuple[str, ...], list[str]], int]:
    """The synonym table keyed by each phrase's query terms (stems, jieba words); and the longest key."""
    global _synonym_cache
    if _synonym_cache is None:
        from newsrec.matching.synonyms import synonym_groups

        keys: dict[tuple[str, ...], list[str]] = {}
        for group in synonym_groups():
            for phrase in group:
                key = tuple(tokenize(phrase, stem=True))
                if key:
                    keys.setdefault(key, group)
        _synonym_cache = keys, max((len(key) for key in keys), default=0)
    return _synonym_cache


def _vocabulary(items: list[NewsItem]) -> tuple[dict[str, str], list[str]]:
    """The words term translation compares: stem -> its most frequent English form; Chinese jieba words of 2+ chars."""
    latin: dict[str, Counter[str]] = {}
    han: set[str] = set()
    for item in items:
        for word in tokenize(item.text):
            if _HAN_RE.match(word):
                if len(word) > 1:
                    han.add(word)
            elif word.isascii() and word.isalpha() and len(word) > 2:
                latin.setdefault(_stem(word), Counter())[word] += 1
    surfaces = {term: min(forms.items(), key=lambda kv: (-kv[1], kv[0]))[0] for term, forms in latin.items()}
    return surfaces, sorted(han)
