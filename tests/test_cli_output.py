"""What the command line prints: help text, tables that never cut a number, titles cut with an ellipsis."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from rich.table import Table

from newsrec.cli import build_parser
from newsrec.cli.common import print_table
from newsrec.config import Settings
from newsrec.explain import Reason, render
from newsrec.types import NewsItem


def test_evaluate_help_says_95_percent_once(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert "95% CIs" in " ".join(out.split()) and "%%" not in out


@pytest.mark.parametrize("columns", ["80", "60"])
def test_tables_keep_whole_numbers_when_piped_or_narrow(capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)  # a pipe gets 80 columns from rich; a narrow terminal fewer
    table = Table(title="scorers")
    table.add_column("scorer")
    metrics = [f"metric{i}" for i in range(9)]
    for metric in metrics:
        table.add_column(metric, justify="right")
    values = [f"0.{7512 + i} ± 0.{123 + i}" for i in range(9)]
    table.add_row("rerank-with-a-long-name", *values)
    print_table(table)
    out = capsys.readouterr().out
    assert "…" not in out
    for value in values:
        assert value in out, (value, out)
    for metric in metrics:
        assert metric in out


def test_the_why_column_cuts_long_titles_with_an_ellipsis():
    title = "Voltaris unveils 400 Wh/kg solid-state cell aimed at premium sedans next year"
    line = render([Reason("history", 0.5, title)], NewsItem(id="x", title="y"), None)
    quoted = re.search(r"“(.*?)”", line).group(1)
    assert quoted.endswith("…") and len(quoted) <= 50 and title.startswith(quoted[:-1])
    short = render([Reason("history", 0.5, "Short title")], NewsItem(id="x", title="y"), None)
    assert "“Short title”" in short


def test_cli_diversity_has_the_dashboard_direction(monkeypatch):
    """`--diversity 0` is pure relevance (MMR lambda 1), `--diversity 1` the most diverse (lambda 0): the
    dashboard slider's scale and meaning."""
    from newsrec.cli import recommend as recommend_cli

    asked: list[float | None] = []

    class Fake:  # what EditorialFeeds reads of a recommender, and the recommend call itself
        settings = Settings()
        corpus = SimpleNamespace(name="demo", news={})

        def recommend(self, user_id, **options):
            asked.append(options["mmr_lambda"])
            raise SystemExit(0)

    monkeypatch.setattr(recommend_cli.Recommender, "from_settings", classmethod(lambda cls, *a, **k: Fake()))
    for value in ("0", "0.25", "1"):
        args = build_parser().parse_args(["recommend", "--user", "u01", "--diversity", value, "--json"])
        with pytest.raises(SystemExit):
            args.func(args)
    args = build_parser().parse_args(["recommend", "--user", "u01", "--json"])
    with pytest.raises(SystemExit):
        args.func(args)
    assert asked == [1.0, 0.75, 0.0, None]
