"""HTML for the dashboard's cards: news results, reading history, side by side, system panel.

Every string that comes from a corpus (titles, bodies, categories, sources, captions, explanations that
quote titles, user personas) goes through `esc`, so a title such as `<img src=x onerror=alert(1)>` shows as
text. Buttons carry `data-action` / `data-news-id` and no inline handlers: the results component listens
for clicks on itself (see app.py), which keeps the markup free of script.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from newsrec.types import ImageRef, NewsItem, Recommendation, RecommendResult, User
from newsrec.ui import reasons, scores
from newsrec.ui.i18n import t
from newsrec.ui.reasons import category_name, clip
from newsrec.ui.taxonomy import subcategory_name

ImageLinker = Callable[[ImageRef], "str | None"]  # image -> URL the browser can load, or None
ACTIONS = ("like", "dislike", "relevant", "not-relevant")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class Marks:
    """What the page knows about the cards beyond the ranking: verdicts, likes, why a card came in."""

    verdicts: Mapping[str, bool] = field(default_factory=dict)  # news id -> judged relevant?
    liked: set[str] = field(default_factory=set)
    brought_by: Mapping[str, str] = field(default_factory=dict)  # news id -> title of the liked story it resembles
    languages: Mapping[str, str] = field(default_factory=dict)  # news id -> language, for duplicate notes


def no_images(image: ImageRef) -> str | None:
    return None


def format_when(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if value else ""


def category_slug(category: str) -> str:
    """A CSS-safe class suffix for the category colour (unknown categories share a neutral colour)."""
    slug = "".join(ch for ch in category.lower() if ch.isascii() and ch.isalnum())
    return slug or "other"


def thumbnail(item: NewsItem, link: ImageLinker, css_class: str = "thumb", overlay: str = "") -> str:
    """The item's first linkable image, else a category-coloured initial; `overlay` is markup laid over it."""
    for image in item.images:
        url = link(image)
        if url:
            alt = image.caption or item.title
            return f'<div class="{css_class}"><img src="{esc(url)}" alt="{esc(alt)}" loading="lazy">{overlay}</div>'
    initial = esc((item.category or "·")[:1].upper())
    slug = category_slug(item.category)
    return f'<div class="{css_class} placeholder cat-{slug}"><span>{initial}</span>{overlay}</div>'


def localized_notice(result: RecommendResult, lang: str = "en") -> str:
    """The pipeline's notice in the page's language: its "nothing matches" sentence is translated, any
    other part (a reranker server's fallback) is kept as it is."""
    notice = result.notice or ""
    english = t("no_match_notice", "en", query=result.query)  # the sentence pipeline.py writes
    if not result.query_matched and english in notice:
        notice = notice.replace(english, t("no_match_notice", lang, query=result.query))
    return notice


def rank_move(rec: Recommendation, retrieval_k: int, lang: str = "en") -> str:
    """Badge for how far the reranker moved an item: ▲3 / ▼2 / = / new (from outside the retrieval top k)."""
    if rec.retrieval_rank > retrieval_k:
        label = f"{t('new', lang)} · #{rec.retrieval_rank}"
        return f'<span class="move new" title="retrieval rank {rec.retrieval_rank}">{esc(label)}</span>'
    delta = rec.retrieval_rank - rec.rank
    if delta > 0:
        return f'<span class="move up" title="retrieval rank {rec.retrieval_rank}">▲{delta}</span>'
    if delta < 0:
        return f'<span class="move down" title="retrieval rank {rec.retrieval_rank}">▼{-delta}</span>'
    return f'<span class="move same" title="{esc(t("stayed", lang))}">=</span>'


def _button(action: str, news_id: str, label: str, tooltip: str = "", chosen: bool = False) -> str:
    title = f' title="{esc(tooltip)}" aria-label="{esc(tooltip)}"' if tooltip else ""
    pressed = " chosen" if chosen else ""
    return (
        f'<button type="button" class="card-action {action}{pressed}" data-action="{action}" '
        f'data-news-id="{esc(news_id)}"{title}>{esc(label)}</button>'
    )


def _judge_buttons(news_id: str, lang: str, verdict: bool | None = None) -> str:
    relevant = _button("relevant", news_id, "✓", t("relevant", lang), chosen=verdict is True)
    not_relevant = _button("not-relevant", news_id, "✗", t("not_relevant", lang), chosen=verdict is False)
    return f'<span class="judge">{relevant}{not_relevant}</span>'


def _judgment_attr(verdict: bool | None) -> str:
    return "" if verdict is None else f' data-judgment="{"relevant" if verdict else "not-relevant"}"'


def match_html(rec: Recommendation, scale: float, lang: str = "en") -> str:
    """The 0–100 match, expandable into the parts that add up to it (hover shows the same as a tooltip)."""
    total, split = scores.match(rec, scale)
    rows = "".join(
        f'<li data-part="{esc(name)}"><span>{esc(scores.part_label(name, lang))}</span><b>{value:+d}</b></li>'
        for name, value in split.items()
    )
    tip = " + ".join(f"{scores.part_label(n, lang)} {v}" for n, v in split.items()) + f" = {total}"
    return (
        f'<details class="match" data-match="{total}"><summary title="{esc(tip)}">'
        f'<b class="match-value">{total}</b><span class="match-unit">/100 {esc(t("match", lang))}</span></summary>'
        f'<ul class="breakdown">{rows}<li class="sum"><span>{esc(t("match_sum", lang))}</span><b>{total}</b></li></ul>'
        "</details>"
    )


def legend_html(lang: str = "en") -> str:
    items = "".join(f"<li>{esc(t(key, lang))}</li>" for key in ("legend_match", "legend_rerank", "legend_retrieval"))
    title = esc(t("legend_title", lang))
    return f'<details class="score-legend"><summary>ⓘ {title}</summary><ul>{items}</ul></details>'


def news_card(
    rec: Recommendation,
    link: ImageLinker,
    retrieval_k: int,
    lang: str = "en",
    feedback: bool = True,
    judgments: bool = False,
    scale: float = 100.0,
    marks: Marks | None = None,
) -> str:
    item = rec.item
    marks = marks or Marks()
    verdict = marks.verdicts.get(item.id)
    liked = item.id in marks.liked
    source = " · ".join(part for part in (item.source, format_when(item.published_at)) if part)
    sub = subcategory_name(item.subcategory, lang) if item.subcategory else ""
    category = " / ".join(part for part in (category_name(item.category, lang), sub) if part)
    actions = ""
    if feedback:
        if liked:
            actions += f'<span class="liked-mark">👍 {esc(t("liked_mark", lang))}</span>'
        else:
            actions += _button("like", item.id, "👍 " + t("more_like_this", lang))
        actions += _button("dislike", item.id, "🚫 " + t("not_interested", lang))
    judge = _judge_buttons(item.id, lang, verdict) if judgments else ""  # an editor's verdict, not the reader's
    mark = ""
    if verdict is not None:
        mark = (
            f'<span class="verdict {"yes" if verdict else "no"}">{"✓" if verdict else "✗"} '
            f"{esc(t('judged_relevant' if verdict else 'judged_not_relevant', lang))}</span>"
        )
    notes = ""
    if item.id in marks.brought_by:
        similar = t("similar_to", lang, title=clip(marks.brought_by[item.id], 40))
        notes += f'<p class="card-note brought">＋ {esc(similar)}</p>'
    if rec.duplicate_ids:  # the same story in another language, merged into this card by the pipeline
        others = sorted({marks.languages.get(i, "") for i in rec.duplicate_ids} - {"", item.language})
        joined = ("、" if lang == "zh" else ", ").join(language_name(code, lang) for code in others) or "—"
        notes += f'<p class="card-note duplicate">🌐 {esc(t("duplicate_note", lang, languages=joined))}</p>'
    why = "".join(f"<li>{esc(line)}</li>" for line in reasons.why(rec, lang))
    state = (" liked" if liked else "") + ("" if verdict is None else " judged")
    return (
        f'<article class="news-card{state}" data-news-id="{esc(item.id)}" data-rank="{rec.rank}"'
        f"{_judgment_attr(verdict)}>"
        f"{thumbnail(item, link)}"  # nothing laid over the picture: the ✓/✗ sit with the other actions
        '<div class="card-body">'
        f'<div class="card-meta"><span class="rank">#{rec.rank}</span>{rank_move(rec, retrieval_k, lang)}'
        f'<span class="cat cat-{category_slug(item.category)}">{esc(category or "—")}</span>'
        f'<span class="lang">{esc(item.language)}</span>{mark}</div>'
        f'<h3 class="card-title" title="{esc(clip(item.body, 300))}">{esc(item.title)}</h3>'
        f'<div class="card-source">{esc(source)}</div>'
        '<div class="scores">'
        f"{match_html(rec, scale, lang)}"
        f'<span class="score rerank" data-score="{rec.score:.6f}" title="{esc(t("legend_rerank", lang))}">'
        f"{esc(t('rerank_score', lang))} <b>{rec.score:.3f}</b></span>"
        f'<span class="score retrieval" data-score="{rec.retrieval_score:.6f}" '
        f'title="{esc(t("legend_retrieval", lang))}">{esc(t("retrieval_score", lang))} '
        f"<b>{rec.retrieval_score:.3f}</b></span></div>"
        f"{notes}"
        f'<ul class="why">{why}</ul>'
        f'<div class="card-actions">{actions}{judge}</div>'
        "</div></article>"
    )


def language_name(code: str, lang: str) -> str:
    """ "zh" -> "Chinese" / "中文"; codes without a label show as themselves."""
    label = t(f"lang_{code}", lang)
    return code if label == f"lang_{code}" else label


def results_html(
    result: RecommendResult | None,
    link: ImageLinker,
    lang: str = "en",
    note: str = "",
    judgments: bool = False,
    run: int = 0,
    marks: Marks | None = None,
    deep_link: str = "",
) -> str:
    """The reranked list as cards; `run` numbers the session's runs so a repeated query still changes the page.

    `note` lines go above the cards; the pipeline's `notice` (e.g. nothing matched the query) goes in
    `#notice`, hidden when empty; `deep_link` is the view's URL query, which the page copies to the address bar.
    """
    linked = f' data-link="{esc(deep_link)}"' if deep_link else ""
    if result is None:
        return f'<div class="empty"{linked}>{esc(t("pick_user", lang))}</div>'
    blocked = t("rules_blocked", lang, n=result.blocked) if result.blocked else ""
    notice = esc(" ".join(x for x in (_notice(result, lang), blocked) if x))
    notice_html = f'<div id="notice" role="status"{"" if notice else " hidden"}>{notice}</div>'
    if not result.reranked:
        return f'{notice_html}<div class="empty"{linked}>{esc(t("no_results", lang))}</div>'
    scale = scores.scale_for([rec.score for rec in result.reranked])
    cards = "".join(
        news_card(rec, link, len(result.retrieval), lang, judgments=judgments, scale=scale, marks=marks)
        for rec in result.reranked
    )
    header = "".join(f'<div class="results-note">{esc(line)}</div>' for line in note.split("\n") if line)
    return (
        f"{notice_html}{header}{legend_html(lang)}"
        f'<div class="card-grid" data-query="{esc(result.query)}" data-run="{run}"{linked}>{cards}</div>'
    )


def _notice(result: RecommendResult, lang: str) -> str:
    """The pipeline's notice, in the page's language where the page knows its kind (no exact match: the nearest)."""
    if result.nearest:
        titles = {rec.item.id: rec.item.title for rec in (*result.reranked, *result.retrieval)}
        title = titles.get(result.nearest[0])
        if title:
            return t("nearest_notice", lang, query=result.query, title=title)
    return localized_notice(result, lang)


def history_html(user: User | None, news: Mapping[str, NewsItem], link: ImageLinker, lang: str = "en") -> str:
    """The user's persona and reads as small cards, newest first (unknown ids are skipped)."""
    if user is None:
        return f'<div class="empty">{esc(t("pick_user", lang))}</div>'
    persona = f'<p class="persona"><b>{esc(t("persona", lang))}:</b> {esc(user.persona)}</p>' if user.persona else ""
    entries = [entry for entry in reversed(user.history) if entry.news_id in news]
    if not entries:
        return persona + f'<div class="empty">{esc(t("no_history", lang))}</div>'
    cards = []
    for entry in entries:
        item = news[entry.news_id]
        when = format_when(entry.timestamp or item.published_at)
        cards.append(
            f'<article class="history-card" data-news-id="{esc(item.id)}">'
            f"{thumbnail(item, link, 'mini-thumb')}"
            '<div class="history-body">'
            f'<div class="history-title">{esc(item.title)}</div>'
            f'<div class="history-meta"><span class="cat cat-{category_slug(item.category)}">'
            f"{esc(category_name(item.category, lang) or '—')}</span> {esc(when)}</div></div></article>"
        )
    summary = f"<summary>{esc(t('history', lang))} · {len(cards)}</summary>"
    listing = f'<div class="history-list">{"".join(cards)}</div>'
    return f'{persona}<details class="history-box" open>{summary}{listing}</details>'


def _side_row(rec: Recommendation, link: ImageLinker, badge: str, lang: str, judgments: bool, marks: Marks) -> str:
    item = rec.item
    verdict = marks.verdicts.get(item.id)
    judge = _judge_buttons(item.id, lang, verdict) if judgments else ""
    category = esc(category_name(item.category, lang) or "—")
    return (
        f'<li class="side-row" data-news-id="{esc(item.id)}"{_judgment_attr(verdict)}>'
        f'<span class="rank">{rec.rank}</span>{thumbnail(item, link, "tiny-thumb")}'
        f'<span class="side-title">{esc(item.title)}'
        f'<small><span class="cat cat-{category_slug(item.category)}">{category}</span> '
        f"{rec.score:.3f}</small></span>{badge}{judge}</li>"
    )


def side_by_side_html(
    result: RecommendResult | None,
    link: ImageLinker,
    lang: str = "en",
    judgments: bool = False,
    marks: Marks | None = None,
) -> str:
    """Retrieval-only and reranked lists in two columns; badges say where each item went or came from.

    On a narrow screen the columns become one, and a two-way switch (radio inputs, no script) picks which.
    """
    if result is None or not result.reranked:
        return f'<div class="empty">{esc(t("pick_user" if result is None else "no_results", lang))}</div>'
    marks = marks or Marks()
    reranked_rank = {rec.item.id: rec.rank for rec in result.reranked}
    left = []
    for rec in result.retrieval:
        target = reranked_rank.get(rec.item.id)
        if target is None:
            badge = '<span class="move out">→ ✕</span>'
        elif target < rec.rank:
            badge = f'<span class="move up">→ #{target}</span>'
        elif target > rec.rank:
            badge = f'<span class="move down">→ #{target}</span>'
        else:
            badge = '<span class="move same">=</span>'
        left.append(_side_row(rec, link, badge, lang, judgments, marks))
    right = [
        _side_row(rec, link, rank_move(rec, len(result.retrieval), lang), lang, judgments, marks)
        for rec in result.reranked
    ]
    column = '<div class="side-col {cls}"><h4>{title} <code class="model-id">{model}</code></h4><ol>{rows}</ol></div>'
    switch = (
        '<div class="side-switch" role="radiogroup">'
        f'<input type="radio" name="side-view" id="side-show-reranked" value="reranked" checked>'
        f'<label for="side-show-reranked">{esc(t("reranked_list", lang))}</label>'
        f'<input type="radio" name="side-view" id="side-show-retrieval" value="retrieval">'
        f'<label for="side-show-retrieval">{esc(t("retrieval_list", lang))}</label></div>'
    )
    return (
        f'<div class="side-wrap">{switch}<div class="side-by-side" data-query="{esc(result.query)}">'
        + column.format(
            cls="retrieval", title=esc(t("retrieval_list", lang)), model=esc(result.embedder), rows="".join(left)
        )
        + column.format(
            cls="reranked", title=esc(t("reranked_list", lang)), model=esc(result.reranker), rows="".join(right)
        )
        + "</div></div>"
    )


def system_html(
    facts: Mapping[str, str], result: RecommendResult | None, lang: str = "en", cache_totals: tuple[int, int] = (0, 0)
) -> str:
    """Mode (and why), device, models, corpus size (`facts`, already labelled), stage timings, cache hit rate.

    Each fact is a row of `.system-table`; other engineers' rows (e.g. the visual-token budget) are just
    more entries in `facts`.
    """
    rows = dict(facts)
    hits, total = cache_totals
    if total:
        rows[t("cache", lang)] = t("cache_rate", lang, hits=hits, total=total, rate=hits / total)
    if result is not None:
        rows[t("scored", lang)] = str(result.candidates)
        rows[t("timings", lang)] = " · ".join(
            f"{stage_name(stage, lang)} {ms:.0f}" for stage, ms in result.timings_ms.items()
        )
    cells = "".join(f"<tr><th>{esc(name)}</th><td>{esc(value)}</td></tr>" for name, value in rows.items())
    return f'<table class="system-table">{cells}</table>'


def stage_name(stage: str, lang: str) -> str:
    label = t(f"stage_{stage}", lang)
    return stage if label == f"stage_{stage}" else label
