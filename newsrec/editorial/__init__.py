"""The newsroom: editorial rules between the second stage and presentation (issue 17).

rules.py (what a rule is, scopes, rule sets as JSON), store.py (draft/live/versions per corpus), apply.py
(rules on one reader's ranked list; reach targets across readers), feed.py (a feed with rules for callers);
panel.py (panels of readers and their feeds in one batch), audit.py (A vs B across a panel: overlap, reach,
exposure, diversity, calibration, popularity), report.py (CSV, plotly charts, a self-contained HTML report;
imported on demand, as they pull in pandas and plotly).
This package may import the pipeline, types and data; it never imports newsrec.ui or newsrec.cli.
"""

from __future__ import annotations

from newsrec.editorial.apply import EditedFeed, ReachOutcome, ReachPlan, apply_rules, plan_reach
from newsrec.editorial.rules import Reader, Rule, RuleEffect, RuleSet, Scope, reader_from
from newsrec.editorial.store import RuleStore, TokenError, VersionConflict, load_rules

__all__ = [
    "EditedFeed",
    "ReachOutcome",
    "ReachPlan",
    "Reader",
    "Rule",
    "RuleEffect",
    "RuleSet",
    "RuleStore",
    "Scope",
    "TokenError",
    "VersionConflict",
    "apply_rules",
    "load_rules",
    "plan_reach",
    "reader_from",
]
