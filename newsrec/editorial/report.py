"""An audit's exports: CSV tables (a folder or a zip), plotly charts in en or 中文, and a self-contained HTML page.

The HTML report embeds plotly.js inline (once, with the first chart) and a few lines of table-sorting
script, so it opens offline: no script or stylesheet is fetched from anywhere.

Labels live here, not in newsrec/ui/i18n.py: the editorial package never imports the UI. The dashboard
passes its language code (`en` | `zh`) and gets figures titled in that language.
"""

from __future__ import annotations

import html
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from newsrec.editorial.audit import AuditReport
from newsrec.errors import InputError

LANGS = ("en", "zh")
TOP_STORIES = 20  # stories in the reach chart: the largest changes

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "report_title": "Newsroom audit",
        "panel": "Panel",
        "corpus": "Corpus",
        "readers": "Readers",
        "compare": "Compared",
        "k": "Top k",
        "exposure_title": "Exposure by category: {a} vs {b}",
        "category": "Category",
        "share": "Share of slots",
        "reach_title": "Reach per story (largest changes): {a} vs {b}",
        "story": "Story",
        "reach": "Share of readers with it in their top k",
        "summary_title": "Panel summary: {a} vs {b}",
        "overlap_title": "Per-reader overlap of {a} and {b}",
        "overlap": "Overlap",
        "count": "Readers",
        "gini_exposure": "Gini of exposure",
        "coverage": "Catalogue coverage",
        "ild": "Intra-list diversity",
        "calibration_kl": "Calibration (KL)",
        "popularity": "Popularity shown",
        "jaccard": "Jaccard@k",
        "rbo": "RBO (p=0.9)",
        "summary": "Summary",
        "readers_table": "Readers",
        "stories": "Stories",
        "exposure": "Exposure",
        "charts": "Charts",
        "sort_hint": "Click a column header to sort.",
    },
    "zh": {
        "report_title": "编辑台审计",
        "panel": "读者样本",
        "corpus": "语料库",
        "readers": "读者数",
        "compare": "对比",
        "k": "前 k 条",
        "exposure_title": "各类别曝光：{a} 对比 {b}",
        "category": "类别",
        "share": "推荐位占比",
        "reach_title": "单篇报道的触达率（变化最大的）：{a} 对比 {b}",
        "story": "报道",
        "reach": "前 k 条中包含该报道的读者比例",
        "summary_title": "样本总览：{a} 对比 {b}",
        "overlap_title": "每位读者的 {a} 与 {b} 重合度",
        "overlap": "重合度",
        "count": "读者数",
        "gini_exposure": "曝光基尼系数",
        "coverage": "目录覆盖率",
        "ild": "列表内多样性",
        "calibration_kl": "校准度（KL）",
        "popularity": "展示内容的热度",
        "jaccard": "Jaccard@k",
        "rbo": "RBO（p=0.9）",
        "summary": "总览",
        "readers_table": "读者",
        "stories": "报道",
        "exposure": "曝光",
        "charts": "图表",
        "sort_hint": "点击列标题即可排序。",
    },
}

SUMMARY_METRICS = ("gini_exposure", "coverage", "ild", "calibration_kl", "popularity")


def labels(lang: str) -> dict[str, str]:
    if lang not in LABELS:
        raise InputError(f"unknown language {lang!r}; choose one of: {', '.join(LANGS)}")
    return LABELS[lang]


# --- CSV ----------------------------------------------------------------------------------------------------------


def to_csv(report: AuditReport, target: str | Path) -> list[Path]:
    """One CSV per table (summary, readers, stories, exposure) plus meta.json, into a folder or a `.zip` file.

    Returns the written paths (for a zip: the zip alone).
    """
    target = Path(target)
    files = {f"{name}.csv": frame.to_csv(index=False) for name, frame in report.tables.items()}
    files["meta.json"] = json.dumps(report.meta, ensure_ascii=False, indent=2, default=str) + "\n"
    if target.suffix.lower() == ".zip":
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(files):
                archive.writestr(name, files[name])
        _write_atomic(target, buffer.getvalue())
        return [target]
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} exists and is not a folder; give a folder or a .zip path")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(files):
        path = target / name
        _write_atomic(path, files[name].encode("utf-8"))
        written.append(path)
    return written


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


# --- charts -------------------------------------------------------------------------------------------------------


def charts(report: AuditReport, lang: str = "en") -> list[Any]:
    """Plotly figures: exposure by category, reach per story, the summary metrics, the overlap distribution."""
    return [
        exposure_chart(report, lang),
        reach_chart(report, lang),
        summary_chart(report, lang),
        overlap_chart(report, lang),
    ]


def _names(report: AuditReport) -> tuple[str, str]:
    return str(report.meta.get("a", "A")), str(report.meta.get("b", "B"))


def exposure_chart(report: AuditReport, lang: str = "en") -> Any:
    import plotly.graph_objects as go

    text, (a, b) = labels(lang), _names(report)
    frame = report.exposure[report.exposure["dimension"] == "category"]
    frame = frame.sort_values(["share_b", "value"], ascending=[False, True])
    figure = go.Figure(
        [
            go.Bar(name=a, x=frame["value"], y=frame["share_a"]),
            go.Bar(name=b, x=frame["value"], y=frame["share_b"]),
        ]
    )
    figure.update_layout(
        title=text["exposure_title"].format(a=a, b=b),
        barmode="group",
        xaxis_title=text["category"],
        yaxis_title=text["share"],
        yaxis_tickformat=".0%",
    )
    return figure


def reach_chart(report: AuditReport, lang: str = "en", top: int = TOP_STORIES) -> Any:
    import plotly.graph_objects as go

    text, (a, b) = labels(lang), _names(report)
    frame = report.stories.copy()
    if len(frame):
        frame["change"] = frame["reach_delta"].abs()
        frame = frame.sort_values(["change", "reach_b", "news_id"], ascending=[False, False, True]).head(top)
    names = [
        f"{title[:40]} ({news_id})"
        for title, news_id in zip(frame.get("title", []), frame.get("news_id", []), strict=True)
    ]
    figure = go.Figure(
        [
            go.Bar(name=a, y=names, x=frame.get("reach_a", []), orientation="h"),
            go.Bar(name=b, y=names, x=frame.get("reach_b", []), orientation="h"),
        ]
    )
    figure.update_layout(
        title=text["reach_title"].format(a=a, b=b),
        barmode="group",
        xaxis_title=text["reach"],
        yaxis_title=text["story"],
        xaxis_tickformat=".0%",
        yaxis_autorange="reversed",
        height=max(400, 28 * len(names) + 150),
    )
    return figure


def summary_chart(report: AuditReport, lang: str = "en") -> Any:
    """One small panel per metric (their scales differ), A and B side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    text, (a, b) = labels(lang), _names(report)
    summary = report.summary.set_index("metric")
    figure = make_subplots(rows=1, cols=len(SUMMARY_METRICS), subplot_titles=[text[m] for m in SUMMARY_METRICS])
    for column, metric in enumerate(SUMMARY_METRICS, 1):
        values = [summary.loc[metric, "a"], summary.loc[metric, "b"]] if metric in summary.index else [None, None]
        figure.add_trace(
            go.Bar(x=[a, b], y=values, marker_color=["#636efa", "#ef553b"], showlegend=False), row=1, col=column
        )
    figure.update_layout(title=text["summary_title"].format(a=a, b=b))
    return figure


def overlap_chart(report: AuditReport, lang: str = "en") -> Any:
    import plotly.graph_objects as go

    text, (a, b) = labels(lang), _names(report)
    figure = go.Figure(
        [
            go.Histogram(
                name=text["jaccard"], x=report.readers["jaccard"], xbins={"start": 0, "end": 1.0001, "size": 0.1}
            ),
            go.Histogram(name=text["rbo"], x=report.readers["rbo"], xbins={"start": 0, "end": 1.0001, "size": 0.1}),
        ]
    )
    figure.update_layout(
        title=text["overlap_title"].format(a=a, b=b),
        barmode="group",
        xaxis_title=text["overlap"],
        yaxis_title=text["count"],
    )
    return figure


# --- HTML ---------------------------------------------------------------------------------------------------------

_SORT_SCRIPT = """
document.querySelectorAll("table.audit").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var up = th.dataset.order !== "asc"; th.dataset.order = up ? "asc" : "desc";
      rows.sort(function (r, s) {
        var x = r.cells[column].textContent, y = s.cells[column].textContent;
        var a = parseFloat(x), b = parseFloat(y);
        var c = (isNaN(a) || isNaN(b)) ? x.localeCompare(y) : a - b;
        return up ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem; max-width: 1200px; }
table.audit { border-collapse: collapse; font-size: 0.85rem; display: block; overflow-x: auto; }
table.audit th { cursor: pointer; background: #f0f0f0; position: sticky; top: 0; }
table.audit th, table.audit td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; }
"""


def to_html(report: AuditReport, lang: str = "en") -> str:
    """The whole report as one HTML page that needs no network: header, charts, sortable tables."""
    text = labels(lang)
    meta = report.meta
    header = [
        (text["panel"], f"{meta.get('panel', '')} — {meta.get('panel_description', '')}"),
        (text["corpus"], meta.get("corpus", "")),
        (text["readers"], meta.get("readers", "")),
        (text["compare"], f"{meta.get('a', 'A')} → {meta.get('b', 'B')}"),
        (text["k"], meta.get("k", "")),
    ]
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(text['report_title'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(text['report_title'])}</h1>",
        '<dl class="meta">'
        + "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in header)
        + "</dl>",
        f"<h2>{html.escape(text['charts'])}</h2>",
    ]
    for number, figure in enumerate(charts(report, lang)):
        parts.append(figure.to_html(full_html=False, include_plotlyjs=number == 0, config={"responsive": True}))
    parts.append(f"<p>{html.escape(text['sort_hint'])}</p>")
    titles = {"summary": "summary", "readers": "readers_table", "stories": "stories", "exposure": "exposure"}
    for name, frame in report.tables.items():
        parts.append(f'<h2 id="{name}">{html.escape(text[titles[name]])}</h2>')
        parts.append(frame.to_html(index=False, classes="audit", border=0, na_rep="", float_format=_number))
    parts.append(f"<script>{_SORT_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _number(value: float) -> str:
    return f"{value:.4g}"
