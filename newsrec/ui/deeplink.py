"""Deep links: the dashboard's view as a URL query string, so an editor can share exactly what they see.

    /?user=u07&q=apple+harvest&lang=zh&k=10&candidates=100&diversity=0.2&freshness=7&cat=world&cat=tech&rules=draft
    /?tab=newsroom&rules=v3&panel=personas&compare=draft:live   (the Newsroom tab: newsrec/ui/newsroom.py)

`parse` reads the page's query parameters (Gradio hands them over as `gr.Request.query_params`) into a
`LinkState`, ignoring what it cannot use (a link must never break the page); `to_query` writes the state
back, leaving out what equals the defaults so links stay short. The page keeps the address bar in step
by reading `data-link` from the results block (see app.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from newsrec.ui.controls import Controls

LANGS = ("en", "zh")
RULE_SETS = ("live", "draft", "none")  # the feed's editorial rules; `rules=v3` is the Newsroom's (ui/newsroom.py)
MAX_QUERY = 500  # longer queries are cut (the pipeline itself rejects overlong ones with a message)


@dataclass
class LinkState:
    """What a link restores: reader, query, language and the controls."""

    user: str = ""
    query: str = ""
    lang: str = "en"
    controls: Controls = field(default_factory=Controls)


def _number(params: Mapping[str, str], key: str, default: float, low: float, high: float) -> float:
    try:
        value = float(params.get(key, default))
    except (TypeError, ValueError):
        return default
    return value if low <= value <= high else default  # out of range or NaN -> the default, as the README says


def parse(params: Mapping[str, str] | None, defaults: Controls, users: Sequence[str] = (), categories=()) -> LinkState:
    """The state a link asks for; unknown readers and categories and out-of-range numbers fall back to defaults."""
    params = params or {}
    getall = getattr(params, "getlist", None)  # Starlette's QueryParams repeat keys; a plain dict holds one
    cats = getall("cat") if getall else [params["cat"]] if params.get("cat") else []
    user = str(params.get("user") or "")
    lang = str(params.get("lang") or "en")
    controls = Controls(
        k=int(_number(params, "k", defaults.k, 1, 30)),
        candidates=int(_number(params, "candidates", defaults.candidates, 10, 300)),
        diversity=round(_number(params, "diversity", defaults.diversity, 0.0, 1.0), 2),
        half_life_days=_number(params, "freshness", defaults.half_life_days, 0.0, 30.0),
        categories=[c for c in cats if not categories or c in categories],
        instruction=defaults.instruction,
        rules=rules if (rules := str(params.get("rules") or "")) in RULE_SETS else defaults.rules,
    )
    return LinkState(
        user=user if not users or user in users else "",
        query=str(params.get("q") or "")[:MAX_QUERY],
        lang=lang if lang in LANGS else "en",
        controls=controls,
    )


def to_query(state: LinkState, defaults: Controls) -> str:
    """`?user=…&q=…` for the state; parameters equal to the defaults are left out."""
    pairs: list[tuple[str, str]] = []
    if state.user:
        pairs.append(("user", state.user))
    if state.query:
        pairs.append(("q", state.query))
    if state.lang != "en":
        pairs.append(("lang", state.lang))
    knobs, base = state.controls, defaults
    for key, value, default in (
        ("k", int(knobs.k), int(base.k)),
        ("candidates", int(knobs.candidates), int(base.candidates)),
        ("diversity", round(float(knobs.diversity), 2), round(float(base.diversity), 2)),
        ("freshness", float(knobs.half_life_days), float(base.half_life_days)),
    ):
        if value != default:
            pairs.append((key, f"{value:g}"))
    pairs += [("cat", category) for category in knobs.categories]
    if knobs.rules != base.rules:
        pairs.append(("rules", knobs.rules))
    return "?" + urlencode(pairs) if pairs else "?"
