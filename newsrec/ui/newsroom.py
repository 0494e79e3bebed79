"""The Newsroom tab's handlers: the rule editor, draft/live badges, publish and rollback, labels, the panel preview.

Nothing here imports Gradio: each handler takes plain values (the form's fields, the session's `Desk`) and
returns plain values (rows, HTML, figures, file paths), so tests drive them directly. `newsroom_tab.py` lays out
the components and wires them; app.py turns `NewsrecError` into `gr.Error`.

The rules model, the versioned store and the audit come from `newsrec.editorial` (the contract in
EDITORIAL_CONTRACT.md); this module only turns form controls into rules and results into page parts.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsrec.editorial.rules import MAX_POINTS, Rule, RuleSet, Scope
from newsrec.errors import InputError
from newsrec.ui.i18n import t

if TYPE_CHECKING:
    import pandas as pd

    from newsrec.pipeline import Recommender

log = logging.getLogger(__name__)

KINDS = ("pin", "block", "boost", "bury", "priority", "quota", "reach")
BLOCK_TARGETS = ("story", "publisher", "keyword", "label")
BOOST_ON = ("category", "publisher", "language", "keyword", "freshness")
LEVELS = ("must-see", "normal", "low")
QUOTA_MODES = ("at_most", "at_least", "stories")
SCOPES = ("all", "segment", "readers")
PANELS = ("personas", "sample", "segment")
COMPARES = ("draft:live", "reranked:retrieval")
FEED_RULES = ("live", "draft", "none")
COMMON_LABELS = ("commercial", "graphic", "legal", "political", "under-16")  # offered in the pickers; any label works
READER_LANGUAGES = ("en", "zh")

# Which form fields each choice shows (the rest are hidden, so the form only asks what the kind needs).
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "pin": ("story", "slot"),
    "block": ("target",),
    "boost": ("on", "weight"),
    "bury": ("on", "weight"),
    "priority": ("story", "level"),
    "quota": ("quota_mode",),
    "reach": ("story", "reach_p", "reach_k"),
}
BLOCK_FIELDS = {"story": "story", "publisher": "publisher", "keyword": "keyword", "label": "label"}
BOOST_FIELDS = {"category": "category", "publisher": "publisher", "language": "language", "keyword": "keyword",
                "freshness": "half_life_h"}  # fmt: skip
QUOTA_FIELDS = {"at_most": ("category", "quota_k", "quota_n"), "at_least": ("category", "quota_m"),
                "stories": ("stories", "quota_m")}  # fmt: skip
SCOPE_FIELDS = {"all": (), "segment": ("seg_tag", "seg_reads", "seg_lang"), "readers": ("readers",)}
FORM_FIELDS = (
    "story", "slot", "target", "on", "publisher", "keyword", "label", "category", "language", "half_life_h", "weight",
    "level",
    "quota_mode", "quota_k", "quota_n", "quota_m", "stories", "reach_p", "reach_k", "seg_tag", "seg_reads",
    "seg_lang", "readers",
)  # fmt: skip


@dataclass
class RuleForm:
    """The editor's form, one field per control (values as the widgets hold them)."""

    kind: str = "pin"
    rule_id: str = ""
    story: str = ""
    slot: int = 1
    target: str = "story"
    on: str = "category"
    publisher: str = ""
    keyword: str = ""
    label: str = ""
    category: str = ""
    language: str = ""
    half_life_h: float = 24.0
    weight: float = 5.0  # score points, 1..MAX_POINTS (the rule stores weight = points / MAX_POINTS)
    level: str = "must-see"
    quota_mode: str = "at_most"
    quota_k: int = 2
    quota_n: int = 10
    quota_m: int = 1
    stories: list[str] = field(default_factory=list)
    reach_p: float = 60.0
    reach_k: int = 10
    scope: str = "all"
    seg_tag: str = ""
    seg_reads: str = ""
    seg_lang: str = ""
    readers: list[str] = field(default_factory=list)
    valid_from: str = ""
    valid_until: str = ""
    author: str = ""
    note: str = ""


def visible_fields(kind: str, target: str = "story", on: str = "category", quota_mode: str = "at_most",
                   scope: str = "all") -> set[str]:  # fmt: skip
    """The form fields the choices ask for: the kind's own, then what its sub-choice needs, then the scope's."""
    if kind not in KIND_FIELDS:
        raise InputError(f"unknown rule kind {kind!r}; expected one of {', '.join(KINDS)}")
    shown = set(KIND_FIELDS[kind])
    if kind == "block":
        shown.add(BLOCK_FIELDS.get(target, "story"))
    elif kind in ("boost", "bury") and on in BOOST_FIELDS:
        shown.add(BOOST_FIELDS[on])
    elif kind == "quota":
        shown.update(QUOTA_FIELDS.get(quota_mode, ()))
    shown.update(SCOPE_FIELDS.get(scope, ()))
    return shown


def parse_when(text: str | None, what: str) -> datetime | None:
    """'2026-11-20 08:00' (UTC unless it says otherwise) -> an aware datetime; empty -> None."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a date; write it like 2026-11-20 or 2026-11-20 08:00") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def segment_expression(tag: str = "", reads: str = "", lang: str = "") -> str:
    """The segment builder's choices as the rules' segment expression: `tag=…,reads=…,lang=…` (AND)."""
    parts = [f"{key}={value.strip()}" for key, value in (("tag", tag), ("reads", reads), ("lang", lang)) if value]
    if not parts:
        raise InputError("a segment needs at least one condition: a persona tag, a category read, or a language")
    return ",".join(parts)


def segment_fields(expression: str) -> dict[str, str]:
    """`tag=x,reads=y` -> {"seg_tag": "x", "seg_reads": "y"} (the builder's fields), for loading a rule."""
    out = {}
    for part in (expression or "").split(","):
        key, _, value = part.partition("=")
        if key.strip() in ("tag", "reads", "lang"):
            out[f"seg_{key.strip()}"] = value.strip()
    return out


def story_label(item: Any) -> str:
    title = item.title if len(item.title) <= 70 else item.title[:69] + "…"
    return f"{title} ({item.id})"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def export_folder() -> Path:
    """Where exports are written: the temp folder Gradio may serve files from."""
    folder = Path(tempfile.gettempdir()) / "newsrec-exports" / "newsroom"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def public_space() -> bool:
    """On a public Hugging Face Space visitors edit a draft in their own session and cannot publish."""
    return bool(os.environ.get("SPACE_ID"))


def token_required() -> bool:
    return bool(os.environ.get("NEWSREC_EDITOR_TOKEN"))


RULESET_NONE = RuleSet()  # an empty set: what there is before anything is saved or published

# --- form <-> rule --------------------------------------------------------------------------------


def rule_from_form(form: RuleForm, draft: RuleSet) -> Rule:
    """The rule the form describes; a blank id takes the next free `<kind>-<n>` of the draft."""
    kind = form.kind
    visible_fields(kind)  # unknown kinds fail here with the list of valid ones
    story = _story_id(form.story)
    if kind == "pin":
        params = {"story": _required(story, "pick a story to pin"), "slot": int(form.slot)}
    elif kind == "block":
        value = {"story": story, "publisher": form.publisher, "keyword": form.keyword, "label": form.label}
        target = form.target if form.target in value else "story"
        params = {"target": target, "value": _required((value[target] or "").strip(), f"pick the {target} to block")}
    elif kind in ("boost", "bury"):
        target = form.on
        if target == "freshness":
            value: Any = float(form.half_life_h or 0)
        else:
            value = {"category": form.category, "publisher": form.publisher, "language": form.language,
                     "keyword": form.keyword}.get(target, "")  # fmt: skip
            value = _required((value or "").strip(), f"pick the {target} to {kind}")
        points = float(form.weight or 0)
        if not 0 < points <= MAX_POINTS:
            raise InputError(f"the weight must be between 1 and {MAX_POINTS:g} points, got {points:g}")
        params = {"target": target, "value": value, "weight": round(points / MAX_POINTS, 4)}
    elif kind == "priority":
        params = {"story": _required(story, "pick a story"), "level": form.level}
    elif kind == "quota":
        if form.quota_mode == "at_most":
            params = {"category": _required(form.category, "pick the category to cap"), "max": int(form.quota_k),
                      "top": int(form.quota_n)}  # fmt: skip
        elif form.quota_mode == "at_least":
            params = {"category": _required(form.category, "pick the category"), "min": int(form.quota_m)}
        else:
            stories = sorted({_story_id(s) for s in form.stories or [] if s})
            if not stories:
                raise InputError("pick at least one story for the quota")
            params = {"stories": stories, "min": int(form.quota_m)}
    else:  # reach
        params = {"story": _required(story, "pick a story to reach readers with"), "top": int(form.reach_k),
                  "share": round(float(form.reach_p) / 100.0, 4)}  # fmt: skip
    return Rule(
        id=(form.rule_id or "").strip() or next_rule_id(draft, kind),
        kind=kind,
        scope=Scope.parse(scope_text(form)),
        params=params,
        valid_from=parse_when(form.valid_from, "valid from"),
        valid_until=parse_when(form.valid_until, "valid until"),
        author=(form.author or "").strip(),
        note=(form.note or "").strip(),
    )


def scope_text(form: RuleForm) -> str:
    if form.scope == "segment":
        return "segment:" + segment_expression(form.seg_tag, form.seg_reads, form.seg_lang)
    if form.scope == "readers":
        readers = sorted({r for r in form.readers or [] if r})
        if not readers:
            raise InputError("pick at least one reader, or choose all readers or a segment")
        return "readers:" + ",".join(readers)
    return "all"


def form_from_rule(rule: Rule) -> RuleForm:
    """The form filled from a stored rule, so an editor changes it with the same controls."""
    p = dict(rule.params)
    form = RuleForm(kind=rule.kind, rule_id=rule.id, author=rule.author, note=rule.note,
                    valid_from=_when_text(rule.valid_from), valid_until=_when_text(rule.valid_until))  # fmt: skip
    if "story" in p:
        form.story = str(p["story"])
    if rule.kind == "pin":
        form.slot = int(p["slot"])
    elif rule.kind == "block":
        form.target = p["target"]
        if p["target"] == "story":
            form.story = p["value"]
        else:
            setattr(form, p["target"], p["value"])
    elif rule.kind in ("boost", "bury"):
        form.on = p["target"]
        if p["target"] == "freshness":
            form.half_life_h = float(p["value"])
        else:
            setattr(form, p["target"], p["value"])
        form.weight = round(float(p["weight"]) * MAX_POINTS, 2)
    elif rule.kind == "priority":
        form.level = p["level"]
    elif rule.kind == "quota":
        if "stories" in p:
            form.quota_mode, form.stories, form.quota_m = "stories", list(p["stories"]), int(p["min"])
        elif "max" in p:
            form.quota_mode, form.category, form.quota_k = "at_most", p["category"], int(p["max"])
            form.quota_n = int(p.get("top") or form.quota_n)
        else:
            form.quota_mode, form.category, form.quota_m = "at_least", p["category"], int(p["min"])
    elif rule.kind == "reach":
        form.reach_k, form.reach_p = int(p["top"]), round(float(p["share"]) * 100, 2)
    scope = rule.scope
    form.scope = scope.kind
    if scope.kind == "segment":
        for key, value in scope.conditions:
            setattr(form, f"seg_{key}", value)
    elif scope.kind == "readers":
        form.readers = list(scope.readers)
    return form


def next_rule_id(ruleset: RuleSet, kind: str) -> str:
    taken = {rule.id for rule in ruleset.rules}
    n = 1
    while f"{kind}-{n}" in taken:
        n += 1
    return f"{kind}-{n}"


def _story_id(choice: str | None) -> str:
    """A story picker's value is the news id; a typed "title (id)" label works too."""
    choice = (choice or "").strip()
    if choice.endswith(")") and "(" in choice:
        return choice[choice.rindex("(") + 1 : -1]
    return choice


def _required(value: str, message: str) -> str:
    if not value:
        raise InputError(message)
    return value


def _when_text(when: datetime | None) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if when else ""


# --- rules in words ---------------------------------------------------------------------------------


def describe(rule: Rule, news: Mapping[str, Any], lang: str = "en") -> str:
    """One line saying what the rule does: "pin “Title” at slot 2", "block label: legal"."""
    p = rule.params

    def title(news_id: str) -> str:
        item = news.get(news_id)
        name = item.title if item is not None else news_id
        name = name if len(name) <= 48 else name[:47] + "…"
        return f"《{name}》" if lang == "zh" else f"“{name}”"

    kind = t(f"kind_{rule.kind}", lang)
    if rule.kind == "pin":
        return f"{kind}: {title(p['story'])} → #{p['slot']}"
    if rule.kind == "block":
        value = title(p["value"]) if p["target"] == "story" else str(p["value"])
        return f"{kind} {t('on_' + p['target'], lang)}: {value}"
    if rule.kind in ("boost", "bury"):
        points = rule.points
        value = f"{p['value']:g} h" if p["target"] == "freshness" else str(p["value"])
        return f"{kind} {t('on_' + p['target'], lang)}: {value} ({points:+g})"
    if rule.kind == "priority":
        return f"{kind}: {title(p['story'])} = {t('level_' + p['level'], lang)}"
    if rule.kind == "quota":
        target = str(p.get("category") or "") or ", ".join(title(s) for s in p.get("stories", []))
        top = p.get("top")
        if "max" in p:
            return f"{kind}: ≤ {p['max']} × {target}" + (f" / top {top}" if top else "")
        return f"{kind}: ≥ {p['min']} × {target}" + (f" / top {top}" if top else "")
    return f"{kind}: {title(p['story'])} → {p['share'] * 100:g}% · top {p['top']}"


def scope_words(rule: Rule, lang: str = "en") -> str:
    scope = rule.scope
    if scope.kind == "all":
        return t("scope_all", lang)
    if scope.kind == "readers":
        return ", ".join(scope.readers)
    names = {"tag": t("nr_seg_tag", lang), "reads": t("nr_seg_reads", lang), "lang": t("nr_seg_lang", lang)}
    return " & ".join(f"{names[key]}={value}" for key, value in scope.conditions)


def validity_words(rule: Rule, lang: str = "en") -> str:
    if not rule.valid_from and not rule.valid_until:
        return t("nr_always", lang)
    return f"{_when_text(rule.valid_from) or '…'} → {_when_text(rule.valid_until) or '…'}"


RULE_COLUMNS = ("id", "kind", "what", "scope", "valid", "author", "note")


def rule_rows(ruleset: RuleSet | None, news: Mapping[str, Any], lang: str = "en",
              compare_to: RuleSet | None = None) -> pd.DataFrame:  # fmt: skip
    """The rules as a table; with `compare_to`, a column saying new / edited / same against it."""
    import pandas as pd

    columns = [t(f"nr_col_{c}", lang) for c in RULE_COLUMNS]
    if compare_to is not None:
        columns.append(t("nr_col_change", lang))
    before = {rule.id: rule for rule in compare_to.rules} if compare_to is not None else {}
    rows = []
    for rule in ruleset.rules if ruleset is not None else ():
        row = [rule.id, t(f"kind_{rule.kind}", lang), describe(rule, news, lang), scope_words(rule, lang),
               validity_words(rule, lang), rule.author, rule.note]  # fmt: skip
        if compare_to is not None:
            old = before.get(rule.id)
            change = "new" if old is None else ("same" if old.to_dict() == rule.to_dict() else "edited")
            row.append(t(f"nr_change_{change}", lang))
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def same_rules(a: RuleSet | None, b: RuleSet | None) -> bool:
    return [r.to_dict() for r in (a.rules if a else ())] == [r.to_dict() for r in (b.rules if b else ())]


def badges_html(draft: RuleSet, live: RuleSet | None, lang: str = "en", link: str = "") -> str:
    """Draft and live badges with their versions: what is live, and whether the draft differs from it."""
    live_version = live.version if live is not None else 0
    if live is None or not live_version:
        live_text = t("nr_badge_none", lang)
    else:
        when = live.published_at.strftime("%Y-%m-%d %H:%M") if live.published_at else ""
        by = t("nr_badge_by", lang, author=live.author or "—", when=when) if live.author or when else ""
        live_text = " · ".join(x for x in (t("nr_badge_rules", lang, count=len(live.rules)), by) if x)
    changed = not same_rules(draft, live)
    draft_text = " · ".join(
        (
            t("nr_badge_rules", lang, count=len(draft.rules)),
            t("nr_badge_based", lang, version=draft.based_on) if draft.based_on else "",
            t("nr_badge_changed" if changed else "nr_badge_same", lang),
        )
    ).replace(" ·  · ", " · ")
    anchor = f'<a class="nr-link" href="{esc(link)}">{esc(t("nr_link", lang))}</a>' if link else ""
    return (
        f'<div class="nr-badges" data-live-version="{live_version}" data-draft-rules="{len(draft.rules)}"'
        f' data-changed="{int(changed)}">'
        f'<span class="nr-badge live"><b>{esc(t("nr_badge_live", lang))} v{live_version}</b> {esc(live_text)}</span>'
        f'<span class="nr-badge draft{" changed" if changed else ""}"><b>{esc(t("nr_badge_draft", lang))}</b> '
        f"{esc(draft_text)}</span>{anchor}</div>"
    )


# --- session state, deep links, panels ----------------------------------------------------------------------


@dataclass
class DeskState:
    """What one browser tab remembers (gr.State): its own draft on a public Space, and the live version it saw.

    `draft` stays None where drafts are shared through the store (a newsroom's own server); on a public Space
    (SPACE_ID set) each visitor's draft lives here only, and nothing they do reaches the store.
    """

    draft: RuleSet | None = None
    seen_live: int = 0  # the live version this tab last showed: publishing checks it (a version conflict otherwise)
    link: str = ""  # the tab's deep link (set from the page's link, then by the preview), shown on the badges
    report: Any = None  # the latest preview's AuditReport, redrawn on a language switch


@dataclass
class NewsroomLink:
    """What a newsroom deep link restores: `?tab=newsroom&rules=v3&panel=personas&compare=draft:live`."""

    tab: str = ""
    rules: str = "live"  # the main feed's rules: live | draft | none
    version: int | None = None  # a published version to show (rules=v3)
    panel: str = "personas"
    compare: str = "draft:live"


def parse_link(params: Mapping[str, str] | None) -> NewsroomLink:
    """Read a link's newsroom parameters; what cannot be used falls back to the default (a link never breaks)."""
    params = params or {}
    wanted = NewsroomLink()
    if str(params.get("tab") or "") == "newsroom":
        wanted.tab = "newsroom"
    rules = str(params.get("rules") or "").strip().lower()
    if rules in FEED_RULES:
        wanted.rules = rules
    elif rules[:1] == "v" and rules[1:].isdigit() and int(rules[1:]) > 0:
        wanted.version = int(rules[1:])
    panel = str(params.get("panel") or "").strip()
    try:
        kind, n, conditions = panel_parts(panel)
        wanted.panel = panel_spec(kind, n, conditions.get("tag"), conditions.get("reads"), conditions.get("lang"))
    except InputError:
        pass
    compare = str(params.get("compare") or "").strip()
    if compare in COMPARES:
        wanted.compare = compare
    return wanted


def link_query(wanted: NewsroomLink) -> str:
    """The newsroom's link parameters (defaults left out, as deeplink.to_query does)."""
    from urllib.parse import urlencode

    pairs = [("tab", "newsroom")]
    if wanted.version:
        pairs.append(("rules", f"v{wanted.version}"))
    elif wanted.rules != "live":
        pairs.append(("rules", wanted.rules))
    if wanted.panel != "personas":
        pairs.append(("panel", wanted.panel))
    if wanted.compare != "draft:live":
        pairs.append(("compare", wanted.compare))
    return "?" + urlencode(pairs)


def panel_spec(kind: str, n: float | None = None, tag: str | None = "", reads: str | None = "",
               lang: str | None = "") -> str:  # fmt: skip
    """The panel controls as the audit's spec: `personas`, `sample:N` or `segment:<expr>`."""
    if kind == "personas":
        return "personas"
    if kind == "sample":
        count = int(n or 0)
        if count < 1:
            raise InputError("the sample needs at least 1 reader")
        return f"sample:{count}"
    if kind == "segment":
        return "segment:" + segment_expression(tag or "", reads or "", lang or "")
    raise InputError(f"unknown panel {kind!r}; expected one of {', '.join(PANELS)}")


def panel_parts(spec: str) -> tuple[str, int, dict[str, str]]:
    """`sample:200` -> ("sample", 200, {}); `segment:reads=sports` -> ("segment", 100, {"reads": "sports"})."""
    spec = (spec or "personas").strip()
    head, _, rest = spec.partition(":")
    if head == "personas" and not rest:
        return "personas", 100, {}
    if head == "sample" and rest.isdigit() and int(rest) > 0:
        return "sample", int(rest), {}
    if head == "segment":
        found = {key[4:]: value for key, value in segment_fields(rest).items() if value}
        if found:
            return "segment", 100, found
    raise InputError(f"unknown panel {spec!r}; use personas, sample:N or segment:<expr>")


def max_points() -> float:
    return float(MAX_POINTS)


# --- the desk: the store, the session's draft and the page parts ------------------------------------------


@dataclass
class Overview:
    badges: str
    draft_rows: pd.DataFrame
    live_rows: pd.DataFrame
    rule_ids: list[str]
    versions: list[tuple[str, str]]  # (label, "v3") for the rollback picker, newest first
    version: str | None  # the picked version ("v3"), None when nothing is published


@dataclass
class Preview:
    summary: str
    figures: list
    per_reader: pd.DataFrame
    per_story: pd.DataFrame
    csv_files: list[str]
    html_file: str


class Desk:
    """The Newsroom's handlers around one recommender and its corpus's rule store."""

    def __init__(self, rec: Recommender, store=None):
        from newsrec.editorial.store import RuleStore

        self.rec = rec
        self.store = store if store is not None else RuleStore(rec.settings.home, rec.corpus.name)
        self.session_only = public_space()

    # --- the sets ------------------------------------------------------------------------------------

    def draft(self, state: DeskState) -> RuleSet:
        if self.session_only:
            if state.draft is not None:
                return state.draft
            live = self.live()
            return dataclasses.replace(live, version=0, based_on=live.version) if live is not None else _empty()
        return self.store.draft()

    def live(self) -> RuleSet | None:
        return self.store.live()

    def _keep(self, state: DeskState, ruleset: RuleSet) -> DeskState:
        if self.session_only:
            return dataclasses.replace(state, draft=ruleset)
        self.store.save_draft(ruleset)
        return state

    # --- editing -------------------------------------------------------------------------------------

    def save(self, state: DeskState, form: RuleForm, lang: str = "en") -> tuple[DeskState, str]:
        """Add the form's rule to the draft (or replace the rule of the same id)."""
        draft = self.draft(state)
        rule = rule_from_form(form, draft)
        for news_id in _stories_of(rule):
            if news_id not in self.rec.corpus.news:
                raise InputError(f"no story {news_id!r} in corpus {self.rec.corpus.name!r}")
        state = self._keep(state, draft.with_rule(rule))
        return state, t("nr_saved", lang, rule=rule.id)

    def remove(self, state: DeskState, rule_id: str | None, lang: str = "en") -> tuple[DeskState, str]:
        if not rule_id:
            raise InputError(t("nr_pick_rule", lang))
        state = self._keep(state, self.draft(state).without(rule_id))
        return state, t("nr_removed", lang, rule=rule_id)

    def form_for(self, state: DeskState, rule_id: str | None) -> RuleForm:
        if not rule_id:
            return RuleForm()
        return form_from_rule(self.draft(state).rule(rule_id))

    # --- publish and roll back ---------------------------------------------------------------------------

    def _may_publish(self) -> None:
        if self.session_only:
            raise InputError("publishing is off on a public demo: your draft stays in your browser tab")

    def publish(self, state: DeskState, author: str, token: str = "", lang: str = "en") -> tuple[DeskState, str]:
        self._may_publish()
        published = self.store.publish((author or "").strip(), state.seen_live, token=token or None)
        state = dataclasses.replace(state, seen_live=published.version)
        return state, t("nr_published", lang, version=published.version)

    def rollback(self, state: DeskState, version: str | None, author: str, token: str = "",
                 lang: str = "en") -> tuple[DeskState, str]:  # fmt: skip
        self._may_publish()
        number = _version_number(version)
        live = self.store.rollback(number, (author or "").strip(), expected_version=state.seen_live,
                                   token=token or None)  # fmt: skip
        state = dataclasses.replace(state, seen_live=live.version)
        return state, t("nr_rolled_back", lang, version=live.version, source=number)

    def diff_html(self, state: DeskState, version: str | None, lang: str = "en") -> str:
        """What would change from the live set to `version`, rule by rule."""
        if not version:
            return f'<div class="nr-diff empty">{esc(t("nr_no_versions", lang))}</div>'
        number = _version_number(version)
        live = self.live()
        target = self.store.version(number)
        changes = self.store.diff(live.version if live is not None else 0, number)
        title = esc(t("nr_diff_title", lang, version=number))
        news = self.rec.corpus.news
        before = {rule.id: rule for rule in live.rules} if live is not None else {}
        after = {rule.id: rule for rule in target.rules}
        lines = [("added", rule_id, describe(after[rule_id], news, lang)) for rule_id in changes["added"]]
        lines += [("removed", rule_id, describe(before[rule_id], news, lang)) for rule_id in changes["removed"]]
        lines += [
            (
                "changed",
                row["id"],
                f"{describe(before[row['id']], news, lang)} → {describe(after[row['id']], news, lang)}",
            )
            for row in changes["changed"]
        ]
        if not lines:
            body = f"<p>{esc(t('nr_diff_none', lang))}</p>"
        else:
            body = (
                "<ul>"
                + "".join(
                    f'<li class="{change}" data-rule="{esc(rule_id)}"><span class="nr-change">'
                    f"{esc(t('nr_diff_' + change, lang))}</span> <code>{esc(rule_id)}</code> {esc(text)}</li>"
                    for change, rule_id, text in sorted(lines, key=lambda line: line[1])
                )
                + "</ul>"
            )
        return f'<div class="nr-diff" data-version="{number}"><b>{title}</b>{body}</div>'

    # --- labels ----------------------------------------------------------------------------------------

    def labels_of(self, news_id: str | None) -> list[str]:
        if not news_id:
            return []
        item = self.rec.corpus.news.get(news_id)
        if item is None:
            return []
        return sorted(set(item.labels) | set(self.store.labels().get(news_id, [])))

    def set_labels(self, state: DeskState, news_id: str | None, labels: Sequence[str] | None,
                   lang: str = "en") -> tuple[DeskState, str]:  # fmt: skip
        if not news_id or news_id not in self.rec.corpus.news:
            raise InputError("pick a story to label")
        chosen = sorted({str(label).strip() for label in labels or [] if str(label).strip()})
        self._may_publish()
        self.store.set_labels(news_id, chosen)
        title = self.rec.corpus.news[news_id].title
        shown = ", ".join(chosen) or t("nr_labels_none", lang)
        return state, t("nr_labels_saved", lang, title=title if len(title) < 60 else title[:59] + "…", labels=shown)

    def label_choices(self, state: DeskState | None = None) -> list[str]:
        found = {label for item in self.rec.corpus.news.values() for label in item.labels}
        found |= {label for labels in self.store.labels().values() for label in labels}
        return sorted(found | set(COMMON_LABELS))

    # --- page parts ------------------------------------------------------------------------------------

    def choices(self, state: DeskState | None = None) -> dict[str, list]:
        """The pickers' choices: stories (title + id), publishers, labels, categories, languages, tags, readers."""
        news = self.rec.corpus.news
        users = self.rec.corpus.users
        items = sorted(news.values(), key=lambda item: (item.published_at is None, item.published_at, item.id),
                       reverse=True)  # fmt: skip
        return {
            "stories": [(story_label(item), item.id) for item in items],
            "publishers": sorted({item.source for item in news.values() if item.source}),
            "labels": self.label_choices(state),
            "categories": sorted({item.category for item in news.values() if item.category}),
            "languages": sorted({item.language for item in news.values() if item.language} | set(READER_LANGUAGES)),
            "tags": sorted({tag for user in users.values() for tag in getattr(user, "tags", []) or []}),
            "readers": [(f"{user.name} ({user.id})" if user.name else user.id, user.id) for user in users.values()],
        }

    def overview(self, state: DeskState, lang: str = "en", link: str = "", version: int | None = None) -> Overview:
        """Badges, both rule tables, the editable rule ids and the versions; notes the live version shown."""
        draft, live = self.draft(state), self.live()
        state.seen_live = live.version if live is not None else 0  # what a publish from this view expects
        news = self.rec.corpus.news
        rows = sorted(self.store.versions(), key=lambda row: -row["version"])
        versions = [(self._version_label(row, lang), f"v{row['version']}") for row in rows]
        picked = f"v{version}" if version and any(v == f"v{version}" for _, v in versions) else None
        return Overview(
            badges=badges_html(draft, live, lang, link or state.link),
            draft_rows=rule_rows(draft, news, lang, compare_to=live or _empty()),
            live_rows=rule_rows(live, news, lang),
            rule_ids=[rule.id for rule in draft.rules],
            versions=versions,
            version=picked or (versions[0][1] if versions else None),
        )

    def _version_label(self, row: Mapping[str, Any], lang: str) -> str:
        when = str(row.get("published_at") or "").replace("T", " ")[:16]
        parts = [f"v{row['version']}", t("nr_badge_rules", lang, count=row["rules"]), row.get("author", ""), when]
        return " · ".join(str(part) for part in parts if part)

    # --- the what-if preview ------------------------------------------------------------------------------

    def preview(
        self, state: DeskState, spec: str, compare: str, k: int = 10, lang: str = "en"
    ) -> tuple[DeskState, Preview]:
        """Feeds of the panel under both sides of `compare`, compared: charts, two tables and the exports.

        On a public Space the draft side is the visitor's own draft (a RuleSet), not the store's. The report stays
        in the session so a language switch redraws it without recomputing.
        """
        import time

        from newsrec.editorial.audit import parse_compare
        from newsrec.editorial.audit import preview as audit_preview
        from newsrec.editorial.panel import build_panel

        # The tab reads "draft:live" as "the draft against live": what changes from live (the audit's A, the
        # baseline) to the draft (its B), so "entered" are the stories the draft brings in.
        shown_first, baseline = parse_compare(compare)
        a, b = baseline, shown_first
        if not 1 <= int(k) <= 100:
            raise InputError(f"k must be 1..100, got {k}")
        panel = build_panel(spec, self.rec)
        sides = [self.draft(state) if side == "draft" and self.session_only else side for side in (a, b)]
        started = time.perf_counter()
        report = audit_preview(self.rec, panel, *sides, k=int(k), labels=(a, b))
        report.meta["seconds"] = time.perf_counter() - started
        state = dataclasses.replace(
            state, report=report, link=link_query(NewsroomLink(panel=panel.spec, compare=f"{b}:{a}"))
        )
        return state, self.render(report, lang)

    def render(self, report: Any, lang: str = "en") -> Preview:
        """A preview's page parts in `lang`: summary line, charts, tables, and freshly written exports."""
        from newsrec.editorial import report as reports

        a, b = str(report.meta.get("a", "A")), str(report.meta.get("b", "B"))
        # the charts and the HTML page name the sides as the report's header does: in the page's language
        named = dataclasses.replace(report, meta={**report.meta, "a": side_name(a, lang), "b": side_name(b, lang)})
        readers = report.readers
        changed = int(((readers["n_entered"] > 0) | (readers["n_left"] > 0)).sum())
        folder = Path(tempfile.mkdtemp(prefix="audit-", dir=export_folder()))
        csv_files = [str(path) for path in reports.to_csv(report, folder / "csv") if path.suffix == ".csv"]
        page = folder / f"newsroom-audit-{a}-vs-{b}.html"
        page.write_text(reports.to_html(named, lang), encoding="utf-8")
        summary = t("nr_preview_summary", lang, readers=len(readers), changed=changed,
                    seconds=float(report.meta.get("seconds", 0.0)))  # fmt: skip
        line = f"**{esc(report.meta.get('panel', ''))}** · {esc(side_name(a, lang))} → {esc(side_name(b, lang))} · "
        return Preview(
            summary=line + summary,
            figures=reports.charts(named, lang),
            per_reader=self.reader_table(report, lang),
            per_story=self.story_table(report, lang),
            csv_files=csv_files,
            html_file=str(page),
        )

    def reader_table(self, report: Any, lang: str = "en") -> pd.DataFrame:
        """Per reader: who they are, the stories that entered and left, and the overlap of the two feeds."""
        users, news = self.rec.corpus.users, self.rec.corpus.news

        def titles(ids) -> str:
            ids = ids.split() if isinstance(ids, str) else list(ids or [])  # the audit joins ids with spaces
            return "; ".join(_clip(news[i].title if i in news else i, 40) for i in ids)

        frame = report.readers
        table = {
            t("nr_col_reader", lang): [users[u].name or u if u in users else u for u in frame["user_id"]],
            t("nr_col_entered", lang): [titles(ids) for ids in frame["entered"]],
            t("nr_col_left", lang): [titles(ids) for ids in frame["left"]],
            t("nr_col_n_entered", lang): frame["n_entered"].astype(int),
            t("nr_col_n_left", lang): frame["n_left"].astype(int),
            t("nr_col_jaccard", lang): frame["jaccard"].round(3),
            t("nr_col_rbo", lang): frame["rbo"].round(3),
        }
        import pandas as pd

        return pd.DataFrame(table)

    def story_table(self, report: Any, lang: str = "en") -> pd.DataFrame:
        """Per story: its reach under each side (share of the panel with it in their top k), largest change first."""
        import pandas as pd

        a, b = str(report.meta.get("a", "A")), str(report.meta.get("b", "B"))
        frame = report.stories.copy()
        frame["_order"] = -frame["reach_delta"].abs()
        frame = frame.sort_values(["_order", "news_id"], kind="stable")
        return pd.DataFrame(
            {
                t("nr_col_story", lang): [_clip(title, 60) for title in frame["title"]],
                t("nr_col_category", lang): frame["category"],
                t("nr_col_reach", lang, side=side_name(a, lang)): (100 * frame["reach_a"]).round(1),
                t("nr_col_reach", lang, side=side_name(b, lang)): (100 * frame["reach_b"]).round(1),
                t("nr_col_reach_delta", lang): (100 * frame["reach_delta"]).round(1),
                t("nr_col_readers", lang, side=side_name(a, lang)): frame["readers_a"].astype(int),
                t("nr_col_readers", lang, side=side_name(b, lang)): frame["readers_b"].astype(int),
            }
        )


def side_name(side: str, lang: str = "en") -> str:
    """A compared side in words: draft, live, none, reranked, retrieval only."""
    label = t(f"feed_rules_{side}", lang)
    return side if label == f"feed_rules_{side}" else label


def empty_reader_table(lang: str = "en") -> pd.DataFrame:
    import pandas as pd

    keys = ("reader", "entered", "left", "n_entered", "n_left", "jaccard", "rbo")
    return pd.DataFrame(columns=[t(f"nr_col_{key}", lang) for key in keys])


def empty_story_table(lang: str = "en") -> pd.DataFrame:
    import pandas as pd

    columns = [t("nr_col_story", lang), t("nr_col_category", lang), t("nr_col_reach", lang, side="A"),
               t("nr_col_reach", lang, side="B"), t("nr_col_reach_delta", lang)]  # fmt: skip
    return pd.DataFrame(columns=columns)


def _clip(text: str, width: int) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _stories_of(rule: Rule) -> list[str]:
    p = rule.params
    if rule.kind in ("pin", "priority", "reach"):
        return [p["story"]]
    if rule.kind == "block" and p["target"] == "story":
        return [p["value"]]
    if rule.kind == "quota" and "stories" in p:
        return list(p["stories"])
    return []


def _empty() -> RuleSet:
    return RULESET_NONE


def _version_number(version: str | int | None) -> int:
    text = str(version or "").strip().lower().removeprefix("v")
    if not text.isdigit():
        raise InputError(f"pick a published version (v1, v2, ...), got {version!r}")
    return int(text)
