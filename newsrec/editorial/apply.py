"""Rules applied to one reader's deep ranked list, and reach targets solved across many readers.

`apply_rules` takes the second stage's list (deeper than k, so blocks can be backfilled and quotas can swap
stories in) and returns the final top k. The order of operations, and what wins a conflict:

1. block: blocked stories leave the list (a block beats every other rule, pins included);
2. boost / bury / low priority: score points on the cards' 0-100 scale; the list is re-sorted by the
   pipeline's order made monotone (each card keeps the lowest score seen above it) plus the points, so cards
   without points keep their relative order (MMR, caps and dedup of the pipeline are not undone);
3. pins and reach placements take their slots (ties: lower slot first, then rule id; a taken slot moves the
   later rule to the next free slot); a story not among the candidates is fetched from the corpus;
4. must-see priority is a soft pin: the story stays where it ranks if that is slot 3 or higher, else it is
   moved up to slot 3 (several must-see stories take 3, 4, ... in rule-id order);
5. quotas fill the remaining slots greedily in ranked order: a story that would exceed an at-most quota is
   skipped (the next one is "swapped in"), and when the free slots left within a quota's top n equal what an
   at-least quota still needs, the best story of that quota is swapped in. Pins and must-see count toward
   quotas but are never removed by them.

Every card a rule touched carries `rules` (RuleEffect) saying what it did; the input list is never modified.
Without rules in scope the function returns the first k input objects unchanged, which keeps feeds without
rules byte-identical.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from newsrec.editorial.rules import MUST_SEE_SLOT, Reader, Rule, RuleSet
from newsrec.types import NewsItem, Reason, Recommendation, RuleEffect

EDITOR_PART = "editor"  # the name of the rules' part in a card's score breakdown


@dataclass
class EditedFeed:
    items: list[Recommendation]  # the final top k, ranks 1..len
    blocked: int = 0  # stories removed by blocks that would otherwise have been in the top k
    notices: list[str] = field(default_factory=list)  # sentences for the editor (a pin on a blocked story, ...)

    @property
    def notice(self) -> str:
        """The page notice: how many stories the rules blocked, then the other notices."""
        head = [f"{self.blocked} {'story' if self.blocked == 1 else 'stories'} blocked by editorial rules."]
        return " ".join((head if self.blocked else []) + self.notices)


@dataclass(frozen=True)
class ReachOutcome:
    rule_id: str
    story: str
    top: int
    target: float  # the share asked for, 0-1
    in_scope: int  # readers the rule applies to
    needed: int  # ceil(target x in_scope)
    organic: int  # in-scope readers who already had the story in their top `top`
    placed: int  # readers the plan places it for
    eligible: int  # in-scope readers it may be shown to (not blocked for them, not already read)
    why: str = ""  # "" when met; else why the target cannot be met

    @property
    def achieved(self) -> float:
        return (self.organic + self.placed) / self.in_scope if self.in_scope else 0.0

    @property
    def met(self) -> bool:
        return self.organic + self.placed >= self.needed

    def to_dict(self) -> dict:
        return {
            "rule": self.rule_id,
            "story": self.story,
            "top": self.top,
            "target": self.target,
            "in_scope": self.in_scope,
            "needed": self.needed,
            "organic": self.organic,
            "placed": self.placed,
            "eligible": self.eligible,
            "achieved": round(self.achieved, 4),
            "met": self.met,
            "why": self.why,
        }


@dataclass
class ReachPlan:
    """For each reach rule, the readers the story is placed for (beyond those who rank it in the top k anyway)."""

    placements: dict[str, list[str]] = field(default_factory=dict)  # rule id -> sorted reader ids
    outcomes: dict[str, ReachOutcome] = field(default_factory=dict)

    def for_reader(self, reader_id: str) -> list[str]:
        return sorted(rule_id for rule_id, readers in self.placements.items() if reader_id in readers)

    def to_dict(self) -> dict:
        return {
            "placements": {rule_id: list(ids) for rule_id, ids in sorted(self.placements.items())},
            "outcomes": {rule_id: o.to_dict() for rule_id, o in sorted(self.outcomes.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ReachPlan:
        outcomes = {}
        for rule_id, row in (data.get("outcomes") or {}).items():
            fields = {k: row[k] for k in ReachOutcome.__dataclass_fields__ if k != "rule_id" and k in row}
            outcomes[rule_id] = ReachOutcome(rule_id=rule_id, **fields)
        return cls(placements={k: list(v) for k, v in (data.get("placements") or {}).items()}, outcomes=outcomes)


# --- matching -------------------------------------------------------------------------------------


def _contains_word(text: str, word: str) -> bool:
    """Case-insensitive whole-word match for Latin words; substring for CJK and other scripts without spaces."""
    word = word.strip().lower()
    if not word:
        return False
    if word.isascii():
        return re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", text.lower()) is not None
    return word in text.lower()


def blocks(rule: Rule, item: NewsItem) -> bool:
    target, value = rule.params["target"], str(rule.params["value"])
    if target == "story":
        return item.id == value
    if target == "publisher":
        return item.source.casefold() == value.casefold()
    if target == "label":
        return value in item.labels
    return _contains_word(item.text, value)


def boost_points(rule: Rule, item: NewsItem, now: datetime) -> float:
    """Signed points of a boost/bury/low-priority rule on `item` (0 when it does not match)."""
    if rule.kind == "priority":
        return rule.points if item.id == rule.params["story"] else 0.0
    target, value = rule.params["target"], rule.params["value"]
    if target == "freshness":
        if item.published_at is None:
            return 0.0
        age_hours = max(0.0, (now - item.published_at).total_seconds() / 3600)
        return rule.points * 0.5 ** (age_hours / float(value))
    if target == "category":
        hit = item.category == value
    elif target == "publisher":
        hit = item.source.casefold() == str(value).casefold()
    elif target == "language":
        hit = item.language == value
    else:
        hit = _contains_word(item.text, str(value))
    return rule.points if hit else 0.0


def quota_member(rule: Rule) -> Callable[[NewsItem], bool]:
    if "stories" in rule.params:
        stories = set(rule.params["stories"])
        return lambda item: item.id in stories
    category = rule.params["category"]
    return lambda item: item.category == category


def _scale(ranked: Sequence[Recommendation]) -> float:
    """Score units per match point, as the cards compute it (newsrec/ui/scores.py): x100 for scores in [0, 1]."""
    largest = max((abs(rec.score) for rec in ranked), default=0.0)
    return 100.0 if largest <= 1.0 else 100.0 / largest


def _effect(rec: Recommendation, effect: RuleEffect) -> Recommendation:
    return replace(rec, rules=[*rec.rules, effect])


def _fetched(item: NewsItem, score: float) -> Recommendation:
    """A card for a story the rules bring in from the corpus (not among the candidates)."""
    return Recommendation(
        item=item,
        score=score,
        rank=0,
        retrieval_score=0.0,
        retrieval_rank=0,
        explanation="",
        contributions={EDITOR_PART: score},
        reasons=[Reason(kind=EDITOR_PART, share=1.0, detail="")],
    )


# --- one reader -----------------------------------------------------------------------------------


def apply_rules(
    ruleset: RuleSet | None,
    ranked: Sequence[Recommendation],
    *,
    reader: Reader,
    news: Mapping[str, NewsItem],
    k: int,
    now: datetime,
    reach_plan: ReachPlan | None = None,
    fresh_now: datetime | None = None,
) -> EditedFeed:
    """The final top k of `ranked` (a deep list, best first) under the rules of `ruleset` that apply to `reader`
    at `now` (validity windows); `fresh_now` (default `now`) is the time freshness boosts measure age from,
    the corpus's own "now" for an old corpus. See the module docstring for the order and conflicts."""
    fresh_now = fresh_now or now
    rules = [rule for rule in (ruleset.active(now) if ruleset else []) if rule.scope.matches(reader)]
    placed_for = [
        r for r in rules if r.kind == "reach" and reach_plan and reader.user_id in reach_plan.placements.get(r.id, [])
    ]
    acting = [r for r in rules if r.kind != "reach"] + placed_for
    if not acting:
        return EditedFeed(items=list(ranked[:k]))
    notices: list[str] = []
    block_rules = [r for r in acting if r.kind == "block"]

    def blocked_by(item: NewsItem, duplicates: Sequence[str] = ()) -> Rule | None:
        # the corpus's copy first: it carries the editors' labels overlay (feed.py)
        items = [news.get(item.id, item), *(news[i] for i in duplicates if i in news)]
        return next((r for r in block_rules for it in items if blocks(r, it)), None)

    # 1. blocks, counting those that were in the top k
    pool: list[Recommendation] = []
    blocked = 0
    for position, rec in enumerate(ranked):
        if blocked_by(rec.item, rec.duplicate_ids):
            blocked += position < k
        else:
            pool.append(rec)

    # 2. points
    scale = _scale(ranked)
    point_rules = [
        r for r in acting if r.kind in ("boost", "bury") or (r.kind == "priority" and r.params["level"] == "low")
    ]
    if point_rules:
        keyed = []
        envelope = math.inf
        for position, rec in enumerate(pool):
            envelope = min(envelope, rec.score)
            effects = []
            for rule in point_rules:
                points = round(boost_points(rule, rec.item, fresh_now), 1)
                if points:
                    effects.append(RuleEffect(rule.id, rule.kind, f"{points:+g} points", points, action="points"))
            delta = sum(e.points for e in effects) / scale
            if effects:
                contributions = dict(rec.contributions)
                contributions[EDITOR_PART] = contributions.get(EDITOR_PART, 0.0) + delta
                rec = replace(rec, score=rec.score + delta, contributions=contributions, rules=[*rec.rules, *effects])
            keyed.append((-(envelope + delta), position, rec))
        pool = [rec for _, _, rec in sorted(keyed, key=lambda row: (row[0], row[1]))]

    def take(story: str, rule: Rule) -> Recommendation | None:
        """The story's card, out of the pool, or fetched from the corpus; None (with a notice) when it cannot be."""
        for i, rec in enumerate(pool):
            if rec.item.id == story or story in rec.duplicate_ids:
                return pool.pop(i)
        if story not in news:
            notices.append(f"Rule {rule.id}: story {story} is not in this corpus.")
            return None
        if blocked_by(news[story]):
            notices.append(f"Rule {rule.id}: story {story} is blocked for this reader; a block wins.")
            return None
        anchor = pool[min(len(pool), k) - 1].score if pool else 0.0
        return _fetched(news[story], anchor)

    # 3. hard slots: pins, then reach placements at the last slot of their top k
    fixed: dict[int, Recommendation] = {}
    hard = sorted(
        [(r.params["slot"], r.id, r, "pinned") for r in acting if r.kind == "pin"]
        + [(min(r.params["top"], k), r.id, r, "placed") for r in placed_for],
        key=lambda row: (row[0], row[1]),
    )
    for slot, _, rule, action in hard:
        story = rule.params["story"]
        if any(rec.item.id == story for rec in fixed.values()):
            continue  # already fixed by an earlier rule
        if action == "placed":  # a reach placement only acts when the story is not in the top k already
            organic = [rec.item.id for rec in pool[:slot]]
            if story in organic:
                continue
        rec = take(story, rule)
        if rec is None:
            continue
        while slot in fixed:
            slot += 1
        detail = f"pinned at {slot}" if action == "pinned" else f"placed at {slot} for reach target {rule.id}"
        fixed[slot] = _effect(rec, RuleEffect(rule.id, rule.kind, detail, action=action, slot=slot))

    # 4. must-see: soft pins with deadlines 3, 4, ...
    must_see = sorted(
        (r for r in acting if r.kind == "priority" and r.params["level"] == "must-see"), key=lambda r: r.id
    )
    deadlines: dict[str, tuple[int, Rule]] = {}
    for offset, rule in enumerate(must_see):
        story = rule.params["story"]
        if story in deadlines or any(rec.item.id == story for rec in fixed.values()):
            continue
        if not any(rec.item.id == story or story in rec.duplicate_ids for rec in pool):
            rec = take(story, rule)  # not a candidate: fetched, and placed at its deadline
            if rec is None:
                continue
            pool.append(rec)
        deadlines[story] = (MUST_SEE_SLOT + offset, rule)

    # 5. fill the free slots in ranked order under the quotas
    quotas = sorted((r for r in acting if r.kind == "quota"), key=lambda r: r.id)
    members = {rule.id: quota_member(rule) for rule in quotas}
    tops = {rule.id: min(rule.params.get("top", k), k) for rule in quotas}
    for rule in quotas:
        if "stories" in rule.params:  # listed stories that are not candidates are fetched, at the end of the pool
            for story in rule.params["stories"]:
                present = any(rec.item.id == story for rec in [*pool, *fixed.values()])
                if story in news and not present and not blocked_by(news[story]) and story not in reader.read_ids:
                    pool.append(_fetched(news[story], pool[-1].score if pool else 0.0))
    final: list[Recommendation] = []

    def count(rule: Rule, upto: int, start: int) -> int:
        """Stories of the quota among the placed ones, plus fixed ones at slots start..upto."""
        member = members[rule.id]
        placed = sum(member(rec.item) for rec in final)
        return placed + sum(member(rec.item) for slot, rec in fixed.items() if start <= slot <= upto)

    def breaks_max(item: NewsItem, slot: int) -> Rule | None:
        for rule in quotas:
            capped = "max" in rule.params and slot <= tops[rule.id] and members[rule.id](item)
            if capped and count(rule, tops[rule.id], slot) >= rule.params["max"]:
                return rule
        return None

    short: set[str] = set()
    replaced: set[str] = set()  # capped stories whose place another story already took
    for slot in range(1, k + 1):
        if slot in fixed:
            final.append(fixed.pop(slot))
            continue
        choice: int | None = None
        effect: RuleEffect | None = None
        due = [(d, r, s) for s, (d, r) in deadlines.items() if d <= slot]
        if due:
            _, rule, story = min(due)
            choice = next(i for i, rec in enumerate(pool) if rec.item.id == story or story in rec.duplicate_ids)
            effect = RuleEffect(rule.id, "priority", f"must-see, raised to {slot}", action="must-see", slot=slot)
        if choice is None:
            for rule in quotas:
                if "min" not in rule.params or slot > tops[rule.id]:
                    continue
                free = sum(1 for s in range(slot, tops[rule.id] + 1) if s not in fixed)
                need = rule.params["min"] - count(rule, tops[rule.id], slot)
                if need > 0 and need >= free:
                    found = [
                        i for i, rec in enumerate(pool) if members[rule.id](rec.item) and not breaks_max(rec.item, slot)
                    ]
                    if found:
                        choice = found[0]
                        if choice > 0:
                            detail = f"swapped in for quota {rule.id}"
                            effect = RuleEffect(rule.id, "quota", detail, action="quota", slot=slot)
                        break
                    if rule.id not in short:
                        short.add(rule.id)
                        notices.append(
                            f"Quota {rule.id}: not enough stories to show {rule.params['min']} "
                            f"in the top {tops[rule.id]}."
                        )
        if choice is None:
            skipped: list[tuple[str, Rule]] = []
            for i, rec in enumerate(pool):
                capped = breaks_max(rec.item, slot)
                if capped is None:
                    choice = i
                    break
                skipped.append((rec.item.id, capped))
            pending = [(story, rule) for story, rule in skipped if story not in replaced]
            if choice is not None and pending:  # this story takes the place of the first capped one
                story, rule = pending[0]
                replaced.add(story)
                effect = RuleEffect(rule.id, "quota", f"swapped in for quota {rule.id}", action="quota", slot=slot)
        if choice is None:
            continue  # nothing left that the quotas allow; later pinned slots still come
        rec = pool.pop(choice)
        deadlines.pop(rec.item.id, None)
        final.append(_effect(rec, effect) if effect else rec)
    if len(final) < k and len(ranked) >= k:
        notices.append(f"Only {len(final)} stories are left under the rules (blocks and quotas) for {k} slots.")
    for rule in quotas:  # pins alone may break an at-most quota; say so rather than hide it
        if "max" in rule.params:
            shown = sum(members[rule.id](rec.item) for rec in final[: tops[rule.id]])
            if shown > rule.params["max"]:
                notices.append(f"Quota {rule.id}: pinned stories exceed it ({shown} > {rule.params['max']}).")
    items = [
        rec if rec.rank == rank and not rec.rules else _explained(replace(rec, rank=rank))
        for rank, rec in enumerate(final, 1)
    ]
    return EditedFeed(items=items, blocked=blocked, notices=notices)


def _explained(rec: Recommendation) -> Recommendation:
    """The reason line and reasons name what the rules did (the page phrases `rules` in its own language)."""
    if not rec.rules:
        return rec
    said = "; ".join(effect.detail for effect in rec.rules)
    explanation = f"Editors: {said}" + (f" · {rec.explanation}" if rec.explanation else "")
    reasons = [r for r in rec.reasons if r.kind != EDITOR_PART]
    return replace(rec, explanation=explanation, reasons=[Reason(kind=EDITOR_PART, share=1.0, detail=said), *reasons])


# --- many readers ---------------------------------------------------------------------------------


def plan_reach(
    ruleset: RuleSet | None,
    ranked_by_reader: Mapping[str, Sequence[Recommendation]],
    readers: Mapping[str, Reader],
    *,
    k: int,
    now: datetime,
) -> ReachPlan:
    """Who gets each reach story: readers who rank it in the rule's top k anyway count first; then the story is
    placed for the eligible readers who rank it highest (missing from a list ranks last, ties by reader id)
    until `share` of the in-scope readers have it. Blocked-for-them and already-read readers are not eligible.
    """
    plan = ReachPlan()
    if ruleset is None:
        return plan
    active = ruleset.active(now)
    for rule in (r for r in active if r.kind == "reach"):
        story, top, share = rule.params["story"], min(rule.params["top"], k), float(rule.params["share"])
        in_scope = sorted(rid for rid, reader in readers.items() if rule.scope.matches(reader))
        needed = math.ceil(share * len(in_scope) - 1e-9)
        organic, candidates, blocked, read = 0, [], 0, 0
        item = next((rec.item for ranked in ranked_by_reader.values() for rec in ranked if rec.item.id == story), None)
        if item is None:  # no reader's list holds it: a story block is all that can be checked
            item = NewsItem(id=story, title="")
        for reader_id in in_scope:
            reader = readers[reader_id]
            blockers = [r for r in active if r.kind == "block" and r.scope.matches(reader)]
            ranked = ranked_by_reader.get(reader_id, ())
            position = next((i for i, rec in enumerate(ranked) if rec.item.id == story), None)
            if item is not None and any(blocks(b, item) for b in blockers):
                blocked += 1
            elif story in reader.read_ids:
                read += 1
            elif position is not None and position < top:
                organic += 1
            else:
                candidates.append((position if position is not None else math.inf, reader_id))
        candidates.sort()
        chosen = sorted(reader_id for _, reader_id in candidates[: max(0, needed - organic)])
        eligible = organic + len(candidates)
        why = ""
        if organic + len(chosen) < needed:
            parts = [f"{len(in_scope)} readers in scope, {needed} needed"]
            if blocked:
                parts.append(f"blocked for {blocked}")
            if read:
                parts.append(f"already read by {read}")
            if not in_scope:
                parts = ["no reader is in scope"]
            why = "; ".join(parts) + f"; only {eligible} can be shown it"
        plan.placements[rule.id] = chosen
        plan.outcomes[rule.id] = ReachOutcome(
            rule_id=rule.id,
            story=story,
            top=top,
            target=share,
            in_scope=len(in_scope),
            needed=needed,
            organic=organic,
            placed=len(chosen),
            eligible=eligible,
            why=why,
        )
    return plan
