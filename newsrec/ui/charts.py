"""Plotly figures for the dashboard: what each stage scored, how the reranker moved items, and whether the
recommendations keep the reader's category mix.

Hover texts quote corpus titles; they are HTML-escaped because Plotly renders a subset of HTML in labels.
"""

from __future__ import annotations

import html
import unicodedata
from collections import Counter
from collections.abc import Mapping

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from newsrec.types import RecommendResult
from newsrec.ui.i18n import t
from newsrec.ui.reasons import category_name

UP, DOWN, SAME, NEW = "#15803d", "#b91c1c", "#94a3b8", "#2563eb"
RETRIEVAL_COLOUR, RERANK_COLOUR, HISTORY_COLOUR = "#64748b", "#4f46e5", "#f59e0b"
FONT = dict(family="Inter, 'Noto Sans CJK SC', 'PingFang SC', system-ui, sans-serif", size=13)
# The dashboard's template as the process default: Plotly applies the default to each new figure without
# validating it again, while `template=` on a figure validates and deep-copies the whole template (~20 ms a
# figure, most of a dashboard run's CPU before this; the figures' JSON is the same).
pio.templates.default = "plotly_white"


def _short(title: str, width: int = 48) -> str:
    """Escaped title cut to `width` columns; CJK characters take two, as they do on screen."""
    used, kept = 0, []
    for char in title:
        used += 2 if unicodedata.east_asian_width(char) in "WF" else 1
        if used > width:
            kept.append("…")
            break
        kept.append(char)
    return html.escape("".join(kept))


def style(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    """The dashboard's one chart style (the Evaluation tab uses it too)."""
    fig.update_layout(
        title=dict(text=html.escape(title), x=0.01, font=dict(size=15)),
        height=height,
        margin=dict(l=64, r=24, t=64, b=56),
        font=FONT,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
    )
    return fig


def empty_figure(message: str = "") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=html.escape(message), showarrow=False, font=dict(size=14, color="#64748b"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return style(fig, "", height=240)


def score_distributions(result: RecommendResult, lang: str = "en") -> go.Figure:
    """Each stage's scores on its own axis (they are on different scales): box plus every point."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.06, shared_yaxes=True)
    for col, recs, colour, model in (
        (1, result.retrieval, RETRIEVAL_COLOUR, result.embedder),
        (2, result.reranked, RERANK_COLOUR, result.reranker),
    ):
        stage = t("retrieval_list" if col == 1 else "reranked_list", lang)
        fig.add_trace(
            go.Box(
                y=[rec.score for rec in recs],
                name=html.escape(stage),
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker=dict(color=colour, size=8, opacity=0.8),
                line=dict(color=colour),
                text=[f"#{rec.rank} {_short(rec.item.title)}" for rec in recs],
                hovertemplate=f"%{{text}}<br>%{{y:.3f}} · {html.escape(model)}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    # One y-scale for both stages, from 0, so a glance compares them honestly (the legend says they differ).
    fig.update_yaxes(rangemode="tozero", title_text=t("axis_score", lang), row=1, col=1)
    return style(fig, t("chart_scores", lang))


def rank_shift(result: RecommendResult, lang: str = "en") -> go.Figure:
    """Slope chart: one line per item from its retrieval rank (left) to its reranked rank (right).

    Items outside either top k sit on an extra "k+1" row, so entries and exits show as lines to the bottom.
    Short titles label each end, so the chart reads without hovering.
    """
    k = max(len(result.retrieval), len(result.reranked))
    beyond = k + 1
    # one line per story, from its retrieval slot (the cards' retrieval_rank) to its reranked rank, so the
    # chart agrees with the badges even where the two lists show another language of a merged pair
    kept = {rec.retrieval_rank for rec in result.reranked}
    lines = [(min(rec.retrieval_rank, beyond), rec.rank, rec.item.title) for rec in result.reranked]
    lines += [(rec.rank, beyond, rec.item.title) for rec in result.retrieval if rec.rank not in kept]
    fig = go.Figure()
    for a, b, title in lines:
        colour = NEW if a == beyond else SAME if a == b else UP if b < a else DOWN
        label = _short(title, 15)  # short enough for both ends to fit a phone; hover shows the whole title
        fig.add_trace(
            go.Scatter(
                x=[0, 1],
                y=[a, b],
                mode="lines+markers+text",
                line=dict(color=colour, width=3 if a != b else 1.5),
                marker=dict(size=9, color=colour),
                text=[label if a != beyond else "", label if b != beyond else ""],
                textposition=["middle left", "middle right"],
                textfont=dict(size=10, color="#334155"),
                cliponaxis=False,
                customdata=[_short(title, 80)] * 2,
                hovertemplate="%{customdata}<br>#%{y}<extra></extra>",
                showlegend=False,
            )
        )
    for colour, key in ((UP, "shift_up"), (DOWN, "shift_down"), (SAME, "shift_same"), (NEW, "shift_new")):
        fig.add_trace(  # legend entries only: what the line colours mean
            go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=colour, width=3), name=t(key, lang))
        )
    fig.update_xaxes(
        tickvals=[-1.0, 2.0],  # under each column of labels, so the two names never meet on a phone
        ticktext=[t("retrieval_list", lang), t("reranked_list", lang)],
        range=[-2.0, 3.0],  # room for the labels on both sides, inside the plot
        tickangle=0,
        title_text=t("axis_stage", lang),
    )
    fig.update_yaxes(
        autorange="reversed",
        tickvals=[*range(1, k + 1), beyond],
        ticktext=[*(str(i) for i in range(1, k + 1)), f">{k}"],
        showgrid=False,
        title_text=t("axis_rank", lang),
    )
    style(fig, t("chart_shift", lang), height=max(400, 30 * k + 170))
    # the legend goes under the chart: above it, four entries run into the title on a phone
    fig.update_layout(
        legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0),
        margin=dict(l=56, r=12, t=56, b=150),
    )
    return fig


def category_mix(history_shares: Mapping[str, float], result: RecommendResult, lang: str = "en") -> go.Figure:
    """Grouped bars: share of each category in the reader's history vs in the reranked list."""
    counts = Counter(rec.item.category or "—" for rec in result.reranked)
    total = sum(counts.values()) or 1
    recommended = {name: count / total for name, count in counts.items()}
    categories = sorted(
        set(history_shares) | set(recommended),
        key=lambda c: (-(history_shares.get(c, 0) + recommended.get(c, 0)), c),  # ties by name, not set order
    )
    labels = [html.escape(category_name(c, lang)) for c in categories]
    fig = go.Figure(
        [
            go.Bar(
                x=labels,
                y=[history_shares.get(c, 0.0) for c in categories],
                name=t("history_short", lang),
                marker_color=HISTORY_COLOUR,
            ),
            go.Bar(
                x=labels,
                y=[recommended.get(c, 0.0) for c in categories],
                name=t("recommended_short", lang),
                marker_color=RERANK_COLOUR,
            ),
        ]
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", title_text=t("axis_share", lang))
    fig.update_xaxes(title_text=t("axis_category", lang))
    style(fig, t("chart_mix", lang), height=400)
    fig.update_layout(  # legend under the chart, as in rank_shift: at the top it runs into the title on a phone
        legend=dict(orientation="h", yanchor="top", y=-0.3, xanchor="left", x=0), margin=dict(b=120)
    )
    return fig


def history_category_shares(categories: Mapping[str, float] | None, history_categories: list[str]) -> dict[str, float]:
    """The profile's recency-weighted shares when it has them, else plain counts of the history."""
    if categories:
        return dict(categories)
    counts = Counter(c or "—" for c in history_categories)
    total = sum(counts.values()) or 1
    return {name: count / total for name, count in counts.items()}
