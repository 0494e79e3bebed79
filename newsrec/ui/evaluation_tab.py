"""The dashboard's Evaluation tab: offline metrics on a log, a simulated A/B test, editors' judgments.

    with gr.Tab("Evaluation"):
        build_evaluation_tab(get_recommender)

`get_recommender()` returns the dashboard's Recommender; logs of another corpus get a Recommender of
their own that reuses its embedder and reranker (the models are loaded once). Handlers and figures are
plain functions of plain values, so tests call them without a browser.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from newsrec.config import DEMO_CORPUS, Settings
from newsrec.errors import NewsrecError
from newsrec.evaluation import ab, offline
from newsrec.evaluation.demo_logs import demo_log
from newsrec.evaluation.judgments import JudgmentStore
from newsrec.evaluation.metrics import ACCURACY_METRICS
from newsrec.ui.charts import style
from newsrec.ui.i18n import lang_code, t

log = logging.getLogger(__name__)

DEMO_CHOICE = "demo logs (simulated readers)"
COLOURS = {"random": "#94a3b8", "popularity": "#f59e0b", "retrieval": "#64748b", "rerank": "#4f46e5"}

_recommenders: dict[tuple[str, str, str], object] = {}  # (corpus, embedder, reranker) -> Recommender
_lock = threading.Lock()


# --- data ------------------------------------------------------------------------------------------------


def dataset_choices(settings: Settings) -> list[str]:
    """The demo logs, then every ingested corpus that holds impressions."""
    root = settings.home / "corpora"
    corpora = sorted(p.name for p in root.glob("*") if (p / "impressions.jsonl").is_file()) if root.is_dir() else []
    return [DEMO_CHOICE, *corpora]


def open_dataset(get_recommender: Callable, choice: str):
    """(log, recommender) for a picked dataset; a corpus other than the dashboard's gets its own Recommender."""
    base = get_recommender()
    name = DEMO_CORPUS if choice == DEMO_CHOICE else choice
    settings = dataclasses.replace(base.settings, corpus=name)
    news_log = demo_log(settings) if name == DEMO_CORPUS else offline.corpus_log(settings, name)
    if base.corpus.name == name:
        return news_log, base
    key = (name, base.embedder.name, base.reranker.name)
    with _lock:
        if key not in _recommenders:
            from newsrec.pipeline import Recommender

            _recommenders[key] = Recommender.from_settings(settings, embedder=base.embedder, reranker=base.reranker)
        return news_log, _recommenders[key]


def run_offline(
    get_recommender: Callable,
    choice: str,
    scorers: list[str],
    sample_size: int,
    top_k: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> offline.EvaluationReport:
    news_log, recommender = open_dataset(get_recommender, choice)
    counted, measured, how = offline.split_log(news_log.impressions, seed=int(seed))  # learn on training users
    impressions = offline.sample(measured, int(sample_size), int(seed))
    made = offline.make_scorers(scorers or list(offline.SCORER_NAMES), counted, recommender, int(seed), how)
    context = offline.ItemContext.from_recommender(recommender, news_log.impressions)
    return offline.evaluate(impressions, made, context, k=int(top_k), progress=progress)


def run_ab(
    get_recommender: Callable,
    choice: str,
    variants: str,
    mode: str,
    k: int,
    sample_size: int,
    experiment: str = "dashboard",
    seed: int = 0,
) -> ab.ABResult:
    parsed = [ab.Variant.parse(spec) for spec in variants.split()]
    news_log, recommender = open_dataset(get_recommender, choice)
    impressions = offline.sample(news_log.impressions, int(sample_size), int(seed))
    names = [variant.scorer for variant in parsed]
    scorers = {s.name: s for s in offline.make_scorers(names, news_log.impressions, recommender, int(seed))}
    context = offline.ItemContext.from_recommender(recommender, news_log.impressions)
    return ab.run_experiment(
        impressions,
        parsed,
        ab.make_rank_fn(scorers, context.embed),
        experiment=experiment or "dashboard",
        mode=mode,
        k=int(k),
        seed=int(seed),
        read_seconds=ab.reading_seconds(news_log.news),
        embed=context.embed,
    )


AB_COLUMNS = ["variant", "config", "users", "impressions", *ab.COMPARED, "coverage"]  # empty and filled alike


def localized(frame: pd.DataFrame, lang: str = "en") -> pd.DataFrame:
    """Column headers in the page's language ("ndcg@10" -> "nDCG@10", "coverage@10" -> "覆盖率@10")."""

    def name(column: str) -> str:
        base, _, k = column.partition("@")
        label = t(f"col_{column}", lang)
        if label != f"col_{column}":
            return label
        label = t(f"col_{base}", lang)
        return (base if label == f"col_{base}" else label) + (f"@{k}" if k else "")

    return frame.rename(columns={column: name(str(column)) for column in frame.columns})


def ab_table(rows: list[dict], lang: str = "en") -> pd.DataFrame:
    return localized(pd.DataFrame(rows, columns=AB_COLUMNS).round(4), lang)


def metrics_table(report: offline.EvaluationReport) -> pd.DataFrame:
    columns = [*ACCURACY_METRICS, "diversity", "novelty", "calibration", "coverage"]
    table = report.summary[["scorer", "impressions", *columns, "seconds"]].copy()
    for column in columns:
        table[column] = table[column].round(4)
    return table.rename(columns={c: f"{c}@{report.k}" for c in ("diversity", "novelty", "calibration", "coverage")})


def metrics_view(report: offline.EvaluationReport, lang: str = "en") -> pd.DataFrame:
    """The metrics table as the page shows it: scorer names and headers in the page's language."""
    table = metrics_table(report)
    table["scorer"] = [scorer_name(name, lang) for name in table["scorer"]]
    return localized(table, lang)


def scorer_name(name: str, lang: str = "en") -> str:
    label = t(f"scorer_{name}", lang)
    return name if label == f"scorer_{name}" else label


def verdict_lines(result: ab.ABResult, lang: str = "en") -> str:
    """The A/B comparisons as Markdown bullets in the page's language, metrics by their display names."""
    lines = []
    for c in result.comparisons:
        metric = localized(pd.DataFrame(columns=[c.metric]), lang).columns[0]
        values = dict(difference=c.difference, low=c.ci_low, high=c.ci_high, p=c.p_value, mde=c.mde, metric=metric)
        if c.significant:
            better = c.treatment if c.difference > 0 else c.control
            text = t("ev_verdict_better", lang, better=better, treatment=c.treatment, control=c.control, **values)
            lines.append(f"**{text}**")
        else:
            lines.append(t("ev_verdict_none", lang, **values))
    lines += [f"_{t('ev_note', lang)}: {note}_" for note in result.notes]
    return "\n\n".join(f"- {x}" for x in lines)


def judgments_table(settings: Settings) -> pd.DataFrame:
    scores = JudgmentStore(settings).ndcg_by_config()
    rows = [{"config": config, **values} for config, values in scores.items()]
    return pd.DataFrame(rows, columns=["config", "ndcg", "lists", "judgments"]).round(4)


# --- figures -----------------------------------------------------------------------------------------------


def metric_bars(report: offline.EvaluationReport, lang: str = "en") -> go.Figure:
    """Accuracy metrics per scorer, with the 95% bootstrap CI as error bars."""
    fig = go.Figure()
    for row in report.summary.to_dict(orient="records"):
        means = [row[m] for m in ACCURACY_METRICS]
        fig.add_bar(
            name=t(f"scorer_{row['scorer']}", lang),
            x=[t(f"col_{m}", lang) for m in ACCURACY_METRICS],
            y=means,
            marker_color=COLOURS.get(row["scorer"]),
            error_y=dict(
                type="data",
                symmetric=False,
                array=[row[f"{m}_high"] - row[m] for m in ACCURACY_METRICS],
                arrayminus=[row[m] - row[f"{m}_low"] for m in ACCURACY_METRICS],
            ),
        )
    fig.update_layout(
        barmode="group",
        yaxis=dict(range=[0, 1], title_text=t("ev_axis_value", lang)),
        xaxis_title=t("ev_axis_metric", lang),
    )
    return style(fig, t("ev_chart_accuracy", lang))


def per_user_distribution(report: offline.EvaluationReport, metric: str = "ndcg@10", lang: str = "en") -> go.Figure:
    """Each user's mean metric, per scorer: who gains, who loses, not only the average."""
    per_user = report.rows.groupby(["scorer", "user_id"], sort=False)[metric].mean().reset_index()
    fig = go.Figure()
    for scorer, group in per_user.groupby("scorer", sort=False):
        fig.add_trace(
            go.Violin(
                y=group[metric],
                name=t(f"scorer_{scorer}", lang),
                box_visible=True,
                meanline_visible=True,
                points=False,
                line_color=COLOURS.get(scorer),
            )
        )
    fig.update_layout(
        yaxis=dict(range=[0, 1], title_text=t(f"col_{metric}", lang)), xaxis_title=t("ev_axis_scorer", lang)
    )
    users = per_user["user_id"].nunique()
    return style(fig, t("ev_chart_per_user", lang, metric=t(f"col_{metric}", lang), users=users))


def diversity_vs_accuracy(report: offline.EvaluationReport, metric: str = "ndcg@10", lang: str = "en") -> go.Figure:
    """Each scorer as a point: intra-list diversity of its top-k against its accuracy, both with CIs."""
    fig = go.Figure()
    for row in report.summary.to_dict(orient="records"):
        if math.isnan(row["diversity"]):
            continue
        fig.add_scatter(
            x=[row["diversity"]],
            y=[row[metric]],
            mode="markers+text",
            text=[t(f"scorer_{row['scorer']}", lang)],
            textposition="top center",
            name=t(f"scorer_{row['scorer']}", lang),
            marker=dict(size=14, color=COLOURS.get(row["scorer"])),
            error_x=dict(
                type="data",
                symmetric=False,
                array=[row["diversity_high"] - row["diversity"]],
                arrayminus=[row["diversity"] - row["diversity_low"]],
            ),
            error_y=dict(
                type="data",
                symmetric=False,
                array=[row[f"{metric}_high"] - row[metric]],
                arrayminus=[row[metric] - row[f"{metric}_low"]],
            ),
        )
    fig.update_layout(
        xaxis_title=t("ev_axis_diversity", lang, k=report.k), yaxis_title=t(f"col_{metric}", lang), showlegend=False
    )
    return style(fig, t("ev_chart_tradeoff", lang))


def ab_figure(result: ab.ABResult, lang: str = "en") -> go.Figure:
    """Treatment - control per metric, relative to the control mean, with the 95% CI; significant in colour."""
    fig = go.Figure()
    for comparison in result.comparisons:
        scale = abs(comparison.control_mean) or 1.0
        colour = (
            "#15803d"
            if comparison.significant and comparison.difference > 0
            else ("#b91c1c" if comparison.significant else "#64748b")
        )
        fig.add_scatter(
            x=[100 * comparison.difference / scale],
            y=[f"{t(f'col_{comparison.metric}', lang)} ({comparison.treatment} vs {comparison.control})"],
            mode="markers",
            marker=dict(size=12, color=colour),
            error_x=dict(
                type="data",
                symmetric=False,
                array=[100 * (comparison.ci_high - comparison.difference) / scale],
                arrayminus=[100 * (comparison.difference - comparison.ci_low) / scale],
            ),
            hovertext=comparison.verdict,
            showlegend=False,
        )
    fig.add_vline(x=0, line_dash="dot", line_color="#94a3b8")
    fig.update_layout(xaxis_title=t("ev_axis_difference", lang))
    title = t(
        "ev_chart_ab", lang, experiment=repr(result.experiment), mode=t(f"outcome_{result.mode}", lang), k=result.k
    )
    return style(fig, title, height=160 + 40 * len(result.comparisons))


# --- the block --------------------------------------------------------------------------------------------


def build_evaluation_tab(get_recommender: Callable, language: gr.components.Component | None = None):
    """The tab's components and wiring; call inside `gr.Blocks` (and a `gr.Tab`).

    Returns `(components, relabel)`: `relabel(lang)` gives one update per component, so the page's language
    toggle can switch every label of the tab (app.py adds them to its outputs).
    """

    def settings_now() -> Settings:
        return get_recommender().settings

    def lang_of(choice) -> str:
        return lang_code(choice)

    def choices(choice=None) -> gr.Dropdown:
        return gr.Dropdown(choices=_dataset_choices(settings_now(), lang_of(choice)), value=DEMO_CHOICE)

    def offline_view(report: offline.EvaluationReport, lang: str) -> tuple:
        impressions = report.rows["impression_id"].nunique()
        status = t("ev_status", lang, impressions=impressions, seconds=report.seconds, k=report.k)
        return (
            metrics_view(report, lang),
            metric_bars(report, lang),
            per_user_distribution(report, lang=lang),
            diversity_vs_accuracy(report, lang=lang),
            status,
        )

    def on_evaluate(choice, scorers, sample_size, top_k, seed, last=None, lang_choice=None, progress=gr.Progress()):
        lang = lang_of(lang_choice)
        try:
            report = run_offline(
                get_recommender,
                choice,
                scorers,
                sample_size,
                top_k,
                seed,
                progress=lambda done, total: progress((done, total), desc=t("ev_evaluating", lang), unit="impressions"),
            )
        except NewsrecError as error:
            raise gr.Error(str(error)) from None
        return (*offline_view(report, lang), {**(last or {}), "report": report})

    def on_ab(
        choice, variants, mode, k, sample_size, experiment, seed, last=None, lang_choice=None, progress=gr.Progress()
    ):
        lang = lang_of(lang_choice)
        progress(None, desc=t("ev_running_ab", lang))
        try:
            result = run_ab(get_recommender, choice, variants, mode, k, sample_size, experiment, seed)
        except NewsrecError as error:
            raise gr.Error(str(error)) from None
        last = {**(last or {}), "ab": result}
        return ab_table(result.variants, lang), ab_figure(result, lang), verdict_lines(result, lang), last

    def on_language(lang_choice, last):
        """The latest results again, in the new language (the toggle relabels; the results stay)."""
        lang, last = lang_of(lang_choice), last or {}
        report, result = last.get("report"), last.get("ab")
        empty = localized(pd.DataFrame(columns=["scorer", "impressions", *ACCURACY_METRICS]), lang)
        offline_part = offline_view(report, lang) if report is not None else (empty, *(gr.update(),) * 4)
        ab_part = (
            (ab_table(result.variants, lang), ab_figure(result, lang), verdict_lines(result, lang))
            if result is not None
            else (ab_table([], lang), gr.update(), gr.update())
        )
        return (*offline_part, *ab_part)

    def on_judgments(lang_choice=None):
        return localized(judgments_table(settings_now()), lang_of(lang_choice))

    intro = gr.Markdown(t("ev_intro") + " " + t("ev_demo_about"))
    with gr.Row():
        # the app reads its settings from the environment too; the list is refreshable once corpora change
        dataset = gr.Dropdown(
            label=t("ev_dataset"), choices=_dataset_choices(Settings.from_env()), value=DEMO_CHOICE, scale=2
        )
        refresh = gr.Button(t("ev_refresh"), scale=0)
        scorer_pick = gr.CheckboxGroup(
            label=t("ev_scorers"), choices=_scorer_choices("en"), value=list(offline.SCORER_NAMES), scale=3
        )
    with gr.Row():
        sample_size = gr.Slider(50, 5000, value=500, step=50, label=t("ev_sample"))
        top_k = gr.Slider(1, 20, value=10, step=1, label=t("ev_topk"))
        seed = gr.Number(value=0, precision=0, label=t("ev_seed"))
    run_button = gr.Button(t("ev_run"), variant="primary")
    status = gr.Markdown()
    table = gr.Dataframe(
        value=localized(pd.DataFrame(columns=["scorer", "impressions", *ACCURACY_METRICS])),
        label=t("ev_metrics"),
        interactive=False,
    )
    with gr.Row():
        bars = gr.Plot(label=t("ev_bars"))
        tradeoff = gr.Plot(label=t("ev_tradeoff"))
    users = gr.Plot(label=t("ev_users"))

    ab_title = gr.Markdown("### " + t("ev_ab_title"))
    with gr.Row():
        variants = gr.Textbox(value="A=retrieval B=rerank", label=t("ev_variants"))
        mode = gr.Radio(_outcome_choices("en"), value="simulate", label=t("ev_outcomes"))
        slots = gr.Slider(1, 10, value=3, step=1, label=t("ev_slots"))
        experiment = gr.Textbox(value="dashboard", label=t("ev_experiment"))
    ab_button = gr.Button(t("ev_ab_run"))
    ab_frame = gr.Dataframe(value=ab_table([]), label=t("ev_per_variant"), interactive=False)
    ab_plot = gr.Plot(label=t("ev_difference"))
    ab_verdict = gr.Markdown()

    judged_title = gr.Markdown("### " + t("ev_judgments_title"))
    judged = gr.Dataframe(
        value=lambda: localized(judgments_table(Settings.from_env())),  # evaluated on each page load
        label=t("ev_judged"),
        interactive=False,
    )
    judged_refresh = gr.Button(t("ev_judged_refresh"))

    last = gr.State(None)  # this tab's latest report and A/B result, to show again in another language
    lang_input = [language] if language is not None else []
    refresh.click(choices, lang_input, dataset)
    run_button.click(
        on_evaluate,
        [dataset, scorer_pick, sample_size, top_k, seed, last, *lang_input],
        [table, bars, users, tradeoff, status, last],
    )
    ab_button.click(
        on_ab,
        [dataset, variants, mode, slots, sample_size, experiment, seed, last, *lang_input],
        [ab_frame, ab_plot, ab_verdict, last],
    )
    if language is not None:
        language.change(
            on_language, [language, last], [table, bars, users, tradeoff, status, ab_frame, ab_plot, ab_verdict]
        )
    judged_refresh.click(on_judgments, lang_input, judged)

    components = [
        intro, dataset, refresh, scorer_pick, sample_size, top_k, seed, run_button, table, bars, tradeoff, users,
        ab_title, variants, mode, slots, experiment, ab_button, ab_frame, ab_plot, judged_title, judged, judged_refresh,
    ]  # fmt: skip

    def relabel(lang: str) -> list:
        return [
            gr.update(value=t("ev_intro", lang) + " " + t("ev_demo_about", lang)),
            gr.update(label=t("ev_dataset", lang), choices=_dataset_choices(Settings.from_env(), lang)),
            gr.update(value=t("ev_refresh", lang)),
            gr.update(label=t("ev_scorers", lang), choices=_scorer_choices(lang)),
            gr.update(label=t("ev_sample", lang)),
            gr.update(label=t("ev_topk", lang)),
            gr.update(label=t("ev_seed", lang)),
            gr.update(value=t("ev_run", lang)),
            gr.update(label=t("ev_metrics", lang)),  # its rows stay: on_language shows them in the new language
            gr.update(label=t("ev_bars", lang)),
            gr.update(label=t("ev_tradeoff", lang)),
            gr.update(label=t("ev_users", lang)),
            gr.update(value="### " + t("ev_ab_title", lang)),
            gr.update(label=t("ev_variants", lang)),
            gr.update(label=t("ev_outcomes", lang), choices=_outcome_choices(lang)),
            gr.update(label=t("ev_slots", lang)),
            gr.update(label=t("ev_experiment", lang)),
            gr.update(value=t("ev_ab_run", lang)),
            gr.update(label=t("ev_per_variant", lang)),
            gr.update(label=t("ev_difference", lang)),
            gr.update(value="### " + t("ev_judgments_title", lang)),
            gr.update(label=t("ev_judged", lang), value=localized(judgments_table(Settings.from_env()), lang)),
            gr.update(value=t("ev_judged_refresh", lang)),
        ]

    return components, relabel


def _dataset_choices(settings: Settings, lang: str = "en") -> list[tuple[str, str]]:
    """(label, value) pairs: the demo logs' label follows the language, the value stays the same."""
    return [(t("ev_demo_logs", lang) if c == DEMO_CHOICE else c, c) for c in dataset_choices(settings)]


def _scorer_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(f"scorer_{name}", lang), name) for name in offline.SCORER_NAMES]


def _outcome_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(f"outcome_{name}", lang), name) for name in ab.MODES]
