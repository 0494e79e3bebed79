"""Judged relevance: graded editor judgments of searches and For-you feeds, and how well the recommender meets them.

A judgments file holds one JSON object per line:

    {"user": "u01", "query": "fast charge", "labels": {"n004": 2, "n011": 1}, "kind": "paraphrase", "lang": "en"}

`query` "" is the reader's For-you feed. Grades: 2 = exactly what was asked for, 1 = related, 0 or absent =
not relevant. A query whose labels hold no grade above 0 is *uncovered*: the right answer is "nothing matches".
`kind`, `lang` and `note` are free text; `kind` groups the scores.

What is measured, on the top `k` (10) of the reranked list:
- nDCG@10 (gain 2^grade - 1, as metrics.ndcg; ranx's `ndcg_burges`) and P@5 (grade >= 1 counts) of covered
  queries, overall and per kind; For-you lines apart, with nDCG@10, P@5 and P@10 (see `for_you_precision`).
- For uncovered queries, the share the pipeline answered "nothing matches"; for covered ones, the share it
  wrongly did. The signal is `RecommendResult.query_matched` (False: the pipeline says nothing matched and
  shows the For-you feed instead, see pipeline.Recommender.recommend); an empty list counts as saying so
  too. A list shown after "nothing matches" is the For-you feed, not an answer, so it scores as empty.
- Language copies of one story (dedupe.py) count once: judgments and results are both mapped onto the
  story's group, judgments keeping the group's best grade, results its first slot.
- The For-you feed never shows read stories, so a For-you line's judgments of stories the reader has read
  (in any language copy) are left out, and a re-shown one earns nothing.

The scoring half (`score_lines`) takes plain ranked lists, so tests can check it on synthetic runs.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from newsrec.errors import InputError

log = logging.getLogger(__name__)

K = 10
FOR_YOU = "for-you"  # the kind every For-you line is reported under, whatever its own `kind` says
NO_KIND = "(no kind)"
MAX_GRADE = 3


@dataclass(frozen=True)
class JudgedLine:
    """One (reader, query) with its graded labels; `line` is its 1-based line number in the file."""

    line: int
    user: str
    query: str
    labels: dict[str, int]
    kind: str = NO_KIND
    lang: str = ""
    note: str = ""

    @property
    def for_you(self) -> bool:
        return self.query == ""

    @property
    def covered(self) -> bool:
        return any(grade > 0 for grade in self.labels.values())

    @property
    def group(self) -> str:
        """The row this line is reported under."""
        return FOR_YOU if self.for_you else self.kind


# --- reading ---------------------------------------------------------------------------------------------


def parse_judgments(lines: Iterable[str], source: str = "judgments") -> list[JudgedLine]:
    """Judged lines from JSONL text; an InputError names the line and what is wrong with it."""
    judged: list[JudgedLine] = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        where = f"{source}, line {number}"
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
        judged.append(_judged_line(record, number, where))
    if not judged:
        raise InputError(f"{source}: no judgments (expected one JSON object per line)")
    return judged


def check_known(
    judged: Sequence[JudgedLine], news_ids: Iterable[str], users: Iterable[str], source: str = "judgments"
) -> None:
    """An InputError for the first line that names a reader or a story the corpus lacks."""
    known_news, known_users = set(news_ids), set(users)
    for line in judged:
        where = f"{source}, line {line.line}"
        if line.user not in known_users:
            raise InputError(f"{where}: unknown user {line.user!r} (this corpus has {_sample(known_users)})")
        unknown = sorted(set(line.labels) - known_news)
        if unknown:
            raise InputError(
                f"{where}: unknown news id {unknown[0]!r}"
                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            )


def _judged_line(record, number: int, where: str) -> JudgedLine:
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in ("user", "query", "labels"):
        if name not in record:
            raise InputError(f"{where}: missing field {name!r} (each line needs user, query and labels)")
    user, query, labels = record["user"], record["query"], record["labels"]
    if not isinstance(user, str) or not user.strip():
        raise InputError(f"{where}: 'user' must be a non-empty string, got {user!r}")
    if not isinstance(query, str):
        raise InputError(f"{where}: 'query' must be a string (\"\" for the For-you feed), got {query!r}")
    if not isinstance(labels, dict):
        raise InputError(f"{where}: 'labels' must be an object of news id -> grade, got {type(labels).__name__}")
    grades: dict[str, int] = {}
    for news_id, grade in labels.items():
        if isinstance(grade, bool) or not isinstance(grade, int) or not 0 <= grade <= MAX_GRADE:
            raise InputError(f"{where}: grade of {news_id!r} must be an integer 0..{MAX_GRADE}, got {grade!r}")
        grades[news_id] = grade
    extra = {}
    for name in ("kind", "lang", "note"):
        value = record.get(name, "")
        if not isinstance(value, str):
            raise InputError(f"{where}: {name!r} must be a string, got {value!r}")
        extra[name] = value.strip()
    return JudgedLine(
        line=number,
        user=user,
        query=query.strip(),
        labels=grades,
        kind=extra["kind"] or NO_KIND,
        lang=extra["lang"],
        note=extra["note"],
    )


def _sample(values: set[str]) -> str:
    shown = sorted(values)
    return ", ".join(shown[:6]) + (", ..." if len(shown) > 6 else "")


def load_judgments(
    path: str | Path, news_ids: Iterable[str] | None = None, users: Iterable[str] = ()
) -> list[JudgedLine]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"judgments file {path} does not exist") from None
    except UnicodeDecodeError:
        raise InputError(f"judgments file {path} is not UTF-8 text") from None
    return parse_judgments(text.splitlines(), str(path))


# --- story groups ----------------------------------------------------------------------------------------


class StoryGroups:
    """news id -> the id that names its story group (the smallest id of the group); ids alone name themselves."""

    def __init__(self, groups: Iterable[Sequence[str]] = ()):
        self._parent: dict[str, str] = {}
        for group in groups:
            self.join(group)

    def key(self, news_id: str) -> str:
        root = news_id
        while self._parent.get(root, root) != root:
            root = self._parent[root]
        return root

    def join(self, ids: Sequence[str]) -> None:
        roots = sorted({self.key(news_id) for news_id in ids})
        for root in roots[1:]:
            self._parent[root] = roots[0]

    def joined(self, groups: Iterable[Sequence[str]]) -> StoryGroups:
        """A copy with `groups` merged in (e.g. what one result list merged)."""
        copy = StoryGroups()
        copy._parent = dict(self._parent)
        for group in groups:
            copy.join(group)
        return copy


# --- scoring ---------------------------------------------------------------------------------------------


@dataclass
class LineRun:
    """What the system answered for one judged line: news ids best first, as the page lists them.

    `slots` holds each slot's ids (the shown story first, then its merged language copies).
    """

    judged: JudgedLine
    slots: list[list[str]]
    nothing_matches: bool = False
    read_ids: frozenset[str] = frozenset()  # what the reader has read (For-you lines leave these out)


@dataclass
class LineScore:
    judged: JudgedLine
    ranked: list[str]  # group keys best first, as scored (empty after "nothing matches")
    qrels: dict[str, int]  # group key -> best grade
    nothing_matches: bool
    ndcg10: float = math.nan
    p5: float = math.nan
    p10: float = math.nan  # For-you only: see for_you_precision
    dropped_read: int = 0  # For-you judgments of read stories, left out

    def to_json(self) -> dict:
        judged = self.judged
        return {
            "line": judged.line,
            "user": judged.user,
            "query": judged.query,
            "kind": judged.group,
            "lang": judged.lang,
            "covered": judged.covered,
            "nothing_matches": self.nothing_matches,
            "ndcg@10": _num(self.ndcg10),
            "p@5": _num(self.p5),
            "p@10": _num(self.p10),
            "relevant_judged": sum(1 for grade in self.qrels.values() if grade > 0),
            "relevant_found": sum(1 for key in self.ranked[:K] if self.qrels.get(key, 0) > 0),
            "ranked": self.ranked[:K],
        }


def line_score(run: LineRun, groups: StoryGroups) -> LineScore:
    """Map one line's judgments and answer onto story groups (qrels and ranking, no metrics yet)."""
    judged = run.judged
    groups = groups.joined(slot for slot in run.slots if len(slot) > 1)
    read = {groups.key(news_id) for news_id in run.read_ids} if judged.for_you else set()
    qrels: dict[str, int] = {}
    dropped = 0
    for news_id, grade in sorted(judged.labels.items()):
        key = groups.key(news_id)
        if key in read:
            dropped += 1
            continue
        qrels[key] = max(qrels.get(key, 0), grade)
    ranked: list[str] = []
    if not run.nothing_matches:
        for slot in run.slots:
            key = groups.key(slot[0])
            if key not in ranked:  # a copy the page did not merge: its story was already counted
                ranked.append(key)
    return LineScore(judged, ranked, qrels, run.nothing_matches, dropped_read=dropped)


def for_you_precision(ranked: Sequence[str], qrels: Mapping[str, int], k: int = K) -> float:
    """Relevant stories in the top k over min(k, relevant judged stories).

    By hand: ranx's precision@k divides by k and its r-precision cuts the list at R, and a reader with
    fewer than k judged relevant unread stories should be able to score 1.
    """
    relevant = {key for key, grade in qrels.items() if grade > 0}
    if not relevant:
        return math.nan
    hits = sum(1 for key in ranked[:k] if key in relevant)
    return hits / min(k, len(relevant))


def score_lines(runs: Sequence[LineRun], groups: StoryGroups) -> list[LineScore]:
    """Per-line scores: ranx nDCG@10 and P@5 for every covered line, and P@10 for For-you lines."""
    scores = [line_score(run, groups) for run in runs]
    covered = [i for i, score in enumerate(scores) if any(g > 0 for g in score.qrels.values())]
    if covered:
        from ranx import Qrels, Run
        from ranx import evaluate as ranx_evaluate

        # zero-padded ids: ranx returns per-query values in sorted id order
        qrels = {f"q{i:06d}": dict(scores[i].qrels) for i in covered}
        run = {}
        for i in covered:
            ranked = scores[i].ranked[:K]
            # ranx wants every query in the run; a slot no judgment names stands in for an empty answer
            run[f"q{i:06d}"] = {key: float(K - r) for r, key in enumerate(ranked)} or {"(nothing)": 0.0}
        with warnings.catch_warnings():  # numba's notes on ranx's integer casts, not about our data
            warnings.simplefilter("ignore")
            values = ranx_evaluate(Qrels(qrels), Run(run), ["ndcg_burges@10", "precision@5"], return_mean=False)
        ids = sorted(qrels)
        for metric, attr in (("ndcg_burges@10", "ndcg10"), ("precision@5", "p5")):
            for qid, value in zip(ids, np.atleast_1d(values[metric]), strict=True):
                setattr(scores[int(qid[1:])], attr, float(value))
    for score in scores:
        if score.judged.for_you:
            score.p10 = for_you_precision(score.ranked, score.qrels)
    return scores


# --- summary ---------------------------------------------------------------------------------------------


@dataclass
class GroupSummary:
    """Scores of one row of the report: all queries, one kind, or the For-you lines."""

    name: str
    lines: int = 0
    covered: int = 0
    ndcg10: float = math.nan
    p5: float = math.nan
    p10: float = math.nan
    uncovered: int = 0
    said_nothing: int = 0  # uncovered lines answered "nothing matches" (right)
    wrongly_nothing: int = 0  # covered lines answered "nothing matches" (wrong)

    @property
    def nothing_share(self) -> float:
        return self.said_nothing / self.uncovered if self.uncovered else math.nan

    @property
    def wrong_share(self) -> float:
        return self.wrongly_nothing / self.covered if self.covered else math.nan

    def to_json(self) -> dict:
        return {
            "lines": self.lines,
            "covered": self.covered,
            "ndcg@10": _num(self.ndcg10),
            "p@5": _num(self.p5),
            "p@10": _num(self.p10),
            "uncovered": self.uncovered,
            "said_nothing_matches": self.said_nothing,
            "nothing_matches_share": _num(self.nothing_share),
            "wrongly_nothing_matches": self.wrongly_nothing,
            "wrongly_nothing_share": _num(self.wrong_share),
        }


def summarize(name: str, scores: Sequence[LineScore]) -> GroupSummary:
    covered = [s for s in scores if s.judged.covered]
    uncovered = [s for s in scores if not s.judged.covered]
    return GroupSummary(
        name=name,
        lines=len(scores),
        covered=len(covered),
        ndcg10=_mean([s.ndcg10 for s in covered]),
        p5=_mean([s.p5 for s in covered]),
        p10=_mean([s.p10 for s in covered]),
        uncovered=len(uncovered),
        said_nothing=sum(s.nothing_matches for s in uncovered),
        wrongly_nothing=sum(s.nothing_matches for s in covered),
    )


@dataclass
class JudgedReport:
    lines: list[LineScore]
    queries: GroupSummary  # every line with a query
    by_kind: dict[str, GroupSummary]  # the query lines per kind
    for_you: GroupSummary
    seconds: float = 0.0
    about: dict = field(default_factory=dict)  # mode, models, file

    @classmethod
    def build(cls, scores: Sequence[LineScore], seconds: float = 0.0, about: dict | None = None) -> JudgedReport:
        queries = [s for s in scores if not s.judged.for_you]
        kinds: dict[str, list[LineScore]] = defaultdict(list)
        for score in queries:
            kinds[score.judged.kind].append(score)
        return cls(
            lines=list(scores),
            queries=summarize("all queries", queries),
            by_kind={kind: summarize(kind, kinds[kind]) for kind in sorted(kinds)},
            for_you=summarize(FOR_YOU, [s for s in scores if s.judged.for_you]),
            seconds=seconds,
            about=dict(about or {}),
        )

    def to_json(self) -> dict:
        return {
            **self.about,
            "seconds": round(self.seconds, 2),
            "queries": self.queries.to_json(),
            "by_kind": {kind: summary.to_json() for kind, summary in self.by_kind.items()},
            "for_you": self.for_you.to_json(),
            "lines": [score.to_json() for score in self.lines],
        }


def _mean(values: Iterable[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


# --- running the recommender -----------------------------------------------------------------------------


def corpus_groups(recommender) -> StoryGroups:
    """The corpus's language copies of one story, as the pipeline's dedupe (with its embedder) merges them."""
    from newsrec.dedupe import same_story_groups

    ids = sorted(news_id for news_id in recommender.corpus.news if recommender.index.has(news_id))
    if not ids:
        return StoryGroups()
    items = [recommender.corpus.news[news_id] for news_id in ids]
    vectors = recommender.index.embeddings(ids)
    return StoryGroups([[ids[i] for i in group] for group in same_story_groups(items, vectors, recommender.embedder)])


def said_nothing_matches(result) -> bool:
    """The pipeline's "nothing matches" answer: `query_matched` False (it then shows the For-you feed), or no list."""
    return not result.query_matched or not result.reranked


def run_line(recommender, judged: JudgedLine, k: int = K) -> LineRun:
    result = recommender.recommend(judged.user, judged.query, k=k)
    slots = [[rec.item.id, *rec.duplicate_ids] for rec in result.reranked]
    nothing = said_nothing_matches(result) if judged.query else False
    read = frozenset(recommender.profile(judged.user).read_ids)
    return LineRun(judged, slots, nothing_matches=nothing, read_ids=read)


def evaluate_judgments(recommender, judged: Sequence[JudgedLine], progress=None) -> JudgedReport:
    """Run the recommender on every judged line and score its answers."""
    started = time.perf_counter()
    groups = corpus_groups(recommender)
    runs = []
    for done, line in enumerate(judged, 1):
        runs.append(run_line(recommender, line))
        if progress is not None:
            progress(done, len(judged))
    scores = score_lines(runs, groups)
    about = {"mode": recommender.mode, "reranker": recommender.stage.name, "embedder": recommender.embedder.name}
    return JudgedReport.build(scores, time.perf_counter() - started, about)
