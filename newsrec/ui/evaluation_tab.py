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
from newsrec.evaluation.demo_logs import ABOUT as DEMO_ABOUT
from newsrec.evaluation.demo_logs import demo_log
from newsrec.evaluation.judgments import JudgmentStore
from newsrec.evaluation.metrics import ACCURACY_METRICS
from newsrec.ui.charts import style

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


def metrics_table(report: offline.EvaluationReport) -> pd.DataFrame:
    columns = [*ACCURACY_METRICS, "diversity", "novelty", "calibration", "coverage"]
    table = report.summary[["scorer", "impressions", *columns, "seconds"]].copy()
    for column in columns:
        table[column] = table[column].round(4)
    return table.rename(columns={c: f"{c}@{report.k}" for c in ("diversity", "novelty", "calibration", "coverage")})


def judgments_table(settings: Settings) -> pd.DataFrame:
    scores = JudgmentStore(settings).ndcg_by_config()
    rows = [{"config": config, **values} for config, values in scores.items()]
    return pd.DataFrame(rows, columns=["config", "ndcg", "lists", "judgments"]).round(4)


# --- figures -----------------------------------------------------------------------------------------------


def metric_bars(report: offline.EvaluationReport) -> go.Figure:
    """Accuracy metrics per scorer, with the 95% bootstrap CI as error bars."""
    fig = go.Figure()
    for row in report.summary.to_dict(orient="records"):
        means = [row[m] for m in ACCURACY_METRICS]
        fig.add_bar(
            name=row["scorer"],
            x=list(ACCURACY_METRICS),
            y=means,
            marker_color=COLOURS.get(row["scorer"]),
            error_y=dict(
                type="data",
                symmetric=False,
                array=[row[f"{m}_high"] - row[m] for m in ACCURACY_METRICS],
                arrayminus=[row[m] - row[f"{m}_low"] for m in ACCURACY_METRICS],
            ),
        )
    fig.update_layout(barmode="group", yaxis=dict(range=[0, 1]))
    return style(fig, "Accuracy with 95% CI (users resampled)")


def per_user_distribution(report: offline.EvaluationReport, metric: str = "ndcg@10") -> go.Figure:
    """Each user's mean metric, per scorer: who gains, who loses, not only the average."""
    per_user = report.rows.groupby(["scorer", "user_id"], sort=False)[metric].mean().reset_index()
    fig = go.Figure()
    for scorer, group in per_user.groupby("scorer", sort=False):
        fig.add_trace(
            go.Violin(
                y=group[metric],
                name=scorer,
                box_visible=True,
                meanline_visible=True,
                points=False,
                line_color=COLOURS.get(scorer),
            )
        )
    return style(fig, f"Per-user {metric} ({per_user['user_id'].nunique()} users)")


def diversity_vs_accuracy(report: offline.EvaluationReport, metric: str = "ndcg@10") -> go.Figure:
    """Each scorer as a point: intra-list diversity of its top-k against its accuracy, both with CIs."""
    fig = go.Figure()
    for row in report.summary.to_dict(orient="records"):
        if math.isnan(row["diversity"]):
            continue
        fig.add_scatter(
            x=[row["diversity"]],
            y=[row[metric]],
            mode="markers+text",
            text=[row["scorer"]],
            textposition="top center",
            name=row["scorer"],
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
    fig.update_layout(xaxis_title=f"intra-list diversity @{report.k}", yaxis_title=metric, showlegend=False)
    return style(fig, "Diversity vs accuracy")


def ab_figure(result: ab.ABResult) -> go.Figure:
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
            y=[f"{comparison.metric} ({comparison.treatment} vs {comparison.control})"],
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
    fig.update_layout(xaxis_title="difference, % of control (95% CI)")
    return style(
        fig, f"A/B {result.experiment!r} · {result.mode}, top-{result.k}", height=120 + 40 * len(result.comparisons)
    )


# --- the block --------------------------------------------------------------------------------------------


def build_evaluation_tab(get_recommender: Callable) -> None:
    """The tab's components and wiring; call inside `gr.Blocks` (and a `gr.Tab`)."""

    def settings_now() -> Settings:
        return get_recommender().settings

    def choices() -> gr.Dropdown:
        return gr.Dropdown(choices=dataset_choices(settings_now()), value=DEMO_CHOICE)

    def on_evaluate(choice, scorers, sample_size, top_k, seed, progress=gr.Progress()):
        try:
            report = run_offline(
                get_recommender,
                choice,
                scorers,
                sample_size,
                top_k,
                seed,
                progress=lambda done, total: progress((done, total), desc="evaluating", unit="impressions"),
            )
        except NewsrecError as error:
            raise gr.Error(str(error)) from None
        status = (
            f"{report.rows['impression_id'].nunique()} impressions in {report.seconds:.1f} s; accuracy averaged over "
            f"impressions with a click and a non-click; beyond-accuracy on the top-{report.k}."
        )
        return (
            metrics_table(report),
            metric_bars(report),
            per_user_distribution(report),
            diversity_vs_accuracy(report),
            status,
        )

    def on_ab(choice, variants, mode, k, sample_size, experiment, seed, progress=gr.Progress()):
        progress(None, desc="running the A/B test")
        try:
            result = run_ab(get_recommender, choice, variants, mode, k, sample_size, experiment, seed)
        except NewsrecError as error:
            raise gr.Error(str(error)) from None
        lines = [("**" + c.verdict + "**") if c.significant else c.verdict for c in result.comparisons]
        lines += [f"_note: {note}_" for note in result.notes]
        return pd.DataFrame(result.variants).round(4), ab_figure(result), "\n\n".join(f"- {x}" for x in lines)

    def on_judgments():
        return judgments_table(settings_now())

    gr.Markdown(
        "Offline evaluation replays logged impressions: each scorer ranks the candidates the reader was shown, "
        "and the metrics compare that ranking with the reader's clicks. " + DEMO_ABOUT
    )
    with gr.Row():
        # the app reads its settings from the environment too; the list is refreshable once corpora change
        dataset = gr.Dropdown(label="Dataset", choices=dataset_choices(Settings.from_env()), value=DEMO_CHOICE, scale=2)
        refresh = gr.Button("↻ datasets", scale=0)
        scorer_pick = gr.CheckboxGroup(
            label="Scorers", choices=list(offline.SCORER_NAMES), value=list(offline.SCORER_NAMES), scale=3
        )
    with gr.Row():
        sample_size = gr.Slider(50, 5000, value=500, step=50, label="Sample size (fixed random sample)")
        top_k = gr.Slider(1, 20, value=10, step=1, label="Top-k for diversity, novelty, calibration, coverage")
        seed = gr.Number(value=0, precision=0, label="Seed")
    run_button = gr.Button("Evaluate", variant="primary")
    status = gr.Markdown()
    table = gr.Dataframe(
        value=pd.DataFrame(columns=["scorer", "impressions", *ACCURACY_METRICS]),
        label="Metrics (mean; CIs in the charts)",
        interactive=False,
    )
    with gr.Row():
        bars = gr.Plot(label="Metric bars")
        tradeoff = gr.Plot(label="Diversity vs accuracy")
    users = gr.Plot(label="Per-user distribution")

    gr.Markdown("### A/B test (simulated on the same log)")
    with gr.Row():
        variants = gr.Textbox(value="A=retrieval B=rerank", label="Variants (first = control; e.g. C=rerank,mmr=0.7)")
        mode = gr.Radio(list(ab.MODES), value="simulate", label="Outcomes")
        slots = gr.Slider(1, 10, value=3, step=1, label="Slots shown (k)")
        experiment = gr.Textbox(value="dashboard", label="Experiment name (assignment hash)")
    ab_button = gr.Button("Run A/B test")
    ab_table = gr.Dataframe(
        value=pd.DataFrame(columns=["variant", "config", "users", "impressions", *ab.COMPARED, "coverage"]),
        label="Per variant",
        interactive=False,
    )
    ab_plot = gr.Plot(label="Difference with 95% CI")
    ab_verdict = gr.Markdown()

    gr.Markdown("### Editors' judgments")
    judged = gr.Dataframe(
        value=lambda: judgments_table(Settings.from_env()),  # evaluated on each page load
        label="nDCG@10 from judgments, per configuration (judged items only, in shown order)",
        interactive=False,
    )
    judged_refresh = gr.Button("↻ judgments")

    refresh.click(choices, None, dataset)
    run_button.click(
        on_evaluate, [dataset, scorer_pick, sample_size, top_k, seed], [table, bars, users, tradeoff, status]
    )
    ab_button.click(
        on_ab, [dataset, variants, mode, slots, sample_size, experiment, seed], [ab_table, ab_plot, ab_verdict]
    )
    judged_refresh.click(on_judgments, None, judged)
