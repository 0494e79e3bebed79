"""HTML for the dashboard's cards: news results, reading history, side by side, system panel.

Every string that comes from a corpus (titles, bodies, categories, sources, captions, explanations that
quote titles, user personas) goes through `esc`, so a title such as `<img src=x onerror=alert(1)>` shows as
text. Buttons carry `data-action` / `data-news-id` and no inline handlers: the results component listens
for clicks on itself (see app.py), which keeps the markup free of script.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from newsrec.types import ImageRef, NewsItem, Recommendation, RecommendResult, User
from newsrec.ui.i18n import t

ImageLinker = Callable[[ImageRef], "str | None"]  # image -> URL the browser can load, or None
ACTIONS = ("like", "dislike", "relevant", "not-relevant")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def file_linker(corpus_root: Path, allowed: Sequence[Path] = (), allow_remote: bool = False) -> ImageLinker:
    """Map corpus images to Gradio's file route; only files under the corpus folder (or `allowed`) are linked.

    Gradio serves `gradio_api/file=<absolute path>` for paths passed to `launch(allowed_paths=...)`; the URL
    is relative so the page also works behind a proxy prefix (Spaces, root_path).
    """
    roots = [Path(corpus_root).resolve(), *(Path(p).resolve() for p in allowed)]

    def link(image: ImageRef) -> str | None:
        if "://" in image.uri:
            return image.uri if allow_remote and image.uri.startswith(("http://", "https://")) else None
        path = Path(image.uri) if Path(image.uri).is_absolute() else roots[0] / image.uri
        path = path.resolve()
        if not any(path.is_relative_to(root) for root in roots) or not path.is_file():
            return None
        return "gradio_api/file=" + str(path)

    return link


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


def _button(action: str, news_id: str, label: str, tooltip: str = "") -> str:
    title = f' title="{esc(tooltip)}"' if tooltip else ""
    return (
        f'<button type="button" class="card-action {action}" data-action="{action}" '
        f'data-news-id="{esc(news_id)}"{title}>{esc(label)}</button>'
    )


def _judge_buttons(news_id: str, lang: str) -> str:
    return (
        f'<span class="judge">{_button("relevant", news_id, "✓", t("relevant", lang))}'
        f"{_button('not-relevant', news_id, '✗', t('not_relevant', lang))}</span>"
    )


def news_card(
    rec: Recommendation,
    link: ImageLinker,
    retrieval_k: int,
    lang: str = "en",
    feedback: bool = True,
    judgments: bool = False,
) -> str:
    item = rec.item
    source = " · ".join(part for part in (item.source, format_when(item.published_at)) if part)
    category = " / ".join(part for part in (item.category, item.subcategory) if part)
    actions = ""
    if feedback:
        actions += _button("like", item.id, "👍 " + t("more_like_this", lang))
        actions += _button("dislike", item.id, "🚫 " + t("not_interested", lang))
    judge = ""
    if judgments:  # an editor's verdict, kept apart from the reader's feedback
        judge = _judge_buttons(item.id, lang)
    return (
        f'<article class="news-card" data-news-id="{esc(item.id)}" data-rank="{rec.rank}">'
        f"{thumbnail(item, link, overlay=judge)}"
        '<div class="card-body">'
        f'<div class="card-meta"><span class="rank">#{rec.rank}</span>{rank_move(rec, retrieval_k, lang)}'
        f'<span class="cat cat-{category_slug(item.category)}">{esc(category or "—")}</span>'
        f'<span class="lang">{esc(item.language)}</span></div>'
        f'<h3 class="card-title" title="{esc(item.body[:300])}">{esc(item.title)}</h3>'
        f'<div class="card-source">{esc(source)}</div>'
        '<div class="scores">'
        f'<span class="score rerank" data-score="{rec.score:.6f}">{esc(t("rerank_score", lang))} '
        f"<b>{rec.score:.3f}</b></span>"
        f'<span class="score retrieval" data-score="{rec.retrieval_score:.6f}">{esc(t("retrieval_score", lang))} '
        f"<b>{rec.retrieval_score:.3f}</b></span></div>"
        f'<p class="why">💡 {esc(rec.explanation)}</p>'
        f'<div class="card-actions">{actions}</div>'
        "</div></article>"
    )


def results_html(
    result: RecommendResult | None,
    link: ImageLinker,
    lang: str = "en",
    note: str = "",
    judgments: bool = False,
    run: int = 0,
) -> str:
    """The reranked list as cards; `run` numbers the session's runs so a repeated query still changes the page."""
    if result is None:
        return f'<div class="empty">{esc(t("pick_user", lang))}</div>'
    if not result.reranked:
        return f'<div class="empty">{esc(t("no_results", lang))}</div>'
    cards = "".join(news_card(rec, link, len(result.retrieval), lang, judgments=judgments) for rec in result.reranked)
    header = f'<div class="results-note">{esc(note)}</div>' if note else ""
    return f'{header}<div class="card-grid" data-query="{esc(result.query)}" data-run="{run}">{cards}</div>'


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
            f"{esc(item.category or '—')}</span> {esc(when)}</div></div></article>"
        )
    return f'{persona}<div class="history-list">{"".join(cards)}</div>'


def _side_row(rec: Recommendation, link: ImageLinker, badge: str, lang: str, judgments: bool) -> str:
    item = rec.item
    judge = ""
    if judgments:
        judge = _judge_buttons(item.id, lang)
    return (
        f'<li class="side-row" data-news-id="{esc(item.id)}">'
        f'<span class="rank">{rec.rank}</span>{thumbnail(item, link, "tiny-thumb")}'
        f'<span class="side-title">{esc(item.title)}'
        f'<small><span class="cat cat-{category_slug(item.category)}">{esc(item.category or "—")}</span> '
        f"{rec.score:.3f}</small></span>{badge}{judge}</li>"
    )


def side_by_side_html(
    result: RecommendResult | None, link: ImageLinker, lang: str = "en", judgments: bool = False
) -> str:
    """Retrieval-only and reranked lists in two columns; badges say where each item went or came from."""
    if result is None or not result.reranked:
        return f'<div class="empty">{esc(t("pick_user" if result is None else "no_results", lang))}</div>'
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
        left.append(_side_row(rec, link, badge, lang, judgments))
    right = [
        _side_row(rec, link, rank_move(rec, len(result.retrieval), lang), lang, judgments) for rec in result.reranked
    ]
    column = '<div class="side-col {cls}"><h4>{title}</h4><ol>{rows}</ol></div>'
    return (
        f'<div class="side-by-side" data-query="{esc(result.query)}">'
        + column.format(
            cls="retrieval", title=esc(t("retrieval_list", lang)) + f" · {esc(result.embedder)}", rows="".join(left)
        )
        + column.format(
            cls="reranked", title=esc(t("reranked_list", lang)) + f" · {esc(result.reranker)}", rows="".join(right)
        )
        + "</div>"
    )


def system_html(
    facts: Mapping[str, str], result: RecommendResult | None, lang: str = "en", cache_totals: tuple[int, int] = (0, 0)
) -> str:
    """Mode, device, models, corpus size (`facts`, already labelled), per-stage timings and cache hit rate."""
    rows = dict(facts)
    hits, total = cache_totals
    if total:
        rows[t("cache", lang)] = t("cache_rate", lang, hits=hits, total=total, rate=hits / total)
    if result is not None:
        rows[t("scored", lang)] = str(result.candidates)
        rows[t("timings", lang)] = " · ".join(f"{stage} {ms:.0f}" for stage, ms in result.timings_ms.items())
    cells = "".join(f"<tr><th>{esc(name)}</th><td>{esc(value)}</td></tr>" for name, value in rows.items())
    return f'<table class="system-table">{cells}</table>'
