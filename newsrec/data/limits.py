"""Limits and cleaning for everything ingest accepts: ids, text fields, nesting and value types.

Every reader hands its rows through here (via `Batch`), so the rules hold for all formats:
- ids: printable, at most MAX_ID characters, no path separators, control or bidirectional-override characters;
  a row with a bad id is skipped with the reason.
- text: NUL and other control characters (tabs and line breaks excepted in bodies) and bidirectional
  overrides are removed and reported; fields longer than their cap are cut at the cap and reported.
- types: a text field holding a dict, list or bytes is an error for that row, not a stringified dict.
- JSON: rows nested deeper than MAX_JSON_DEPTH are rejected one by one.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import replace
from datetime import date, datetime

from newsrec.types import ImageRef, NewsItem

MAX_ID = 200
MAX_TITLE = 1_000
MAX_BODY = 100_000
MAX_SHORT = 200  # category, subcategory, language, source, user names
MAX_CAPTION = 1_000
MAX_PERSONA = 2_000
MAX_URL = 2_048
MAX_JSON_DEPTH = 32

CAPS = {
    "title": MAX_TITLE,
    "body": MAX_BODY,
    "category": MAX_SHORT,
    "subcategory": MAX_SHORT,
    "language": MAX_SHORT,
    "source": MAX_SHORT,
    "url": MAX_URL,
}
# C0/C1 controls except tab, LF, CR; plus the bidi embedding/override/isolate marks that reorder shown text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"[\t\n\r]+")


def id_problem(value: str) -> str | None:
    """Why `value` cannot be an id (of a news item, user or impression), or None."""
    if not value:
        return "empty id"
    if len(value) > MAX_ID:
        return f"id of {len(value):,} characters (limit {MAX_ID})"
    if "/" in value or "\\" in value or value in (".", ".."):
        return f"id {value[:40]!r} contains a path separator"
    if _CONTROL.search(value) or any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        return f"id {value[:40]!r} contains control or formatting characters"
    if not value.isprintable():
        return f"id {value[:40]!r} is not printable"
    return None


def clean_text(value: str, field: str, cap: int, multiline: bool) -> tuple[str, list[str]]:
    """(cleaned value, notes): control characters removed, line breaks folded for one-line fields, length capped."""
    notes = []
    cleaned = _CONTROL.sub("", value)
    if cleaned != value:
        notes.append(f"{field}: {len(value) - len(cleaned)} control or bidi-override character(s) removed")
    if not multiline:
        cleaned = _LINE_BREAKS.sub(" ", cleaned)
    if len(cleaned) > cap:
        notes.append(f"{field}: {len(cleaned):,} characters cut to {cap:,}")
        cleaned = cleaned[:cap]
    return cleaned, notes


def clean_item(item: NewsItem) -> tuple[NewsItem | None, list[str]]:
    """(the item with clean, capped fields, or None when its id is unusable; notes on what changed)."""
    reason = id_problem(item.id)
    if reason:
        return None, [f"{reason}; row skipped"]
    notes: list[str] = []
    fields = {}
    for name, cap in CAPS.items():
        fields[name], changed = clean_text(getattr(item, name), name, cap, multiline=name == "body")
        notes += changed
    images = []
    for image in item.images:
        caption, changed = clean_text(image.caption, "image caption", MAX_CAPTION, multiline=False)
        notes += changed
        images.append(ImageRef(image.uri, caption))
    if not fields["title"].strip():
        return None, [*notes, f"empty title for id {item.id!r} after cleaning; row skipped"]
    return replace(item, images=images, **fields), notes


def check_scalar(value, field: str):
    """`value` when a text-like cell may hold it (text, number, date, missing); TypeError for dicts, lists,
    bytes and the like, which would otherwise be stored as their Python repr."""
    if value is None or isinstance(value, (str, int, float, datetime, date)):
        if isinstance(value, float) and math.isinf(value):
            raise TypeError(f"{field}: infinite number")
        return value
    if type(value).__name__ in ("NAType", "NaTType", "Timestamp") or hasattr(value, "dtype") and not value.shape:
        return value  # pandas missing values and timestamps, numpy scalars
    raise TypeError(f"{field}: expected text, found {type(value).__name__}")


def json_depth_problem(value, limit: int = MAX_JSON_DEPTH) -> str | None:
    """None, or why a parsed JSON value is nested too deeply (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return f"nested deeper than {limit} levels"
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    return None
