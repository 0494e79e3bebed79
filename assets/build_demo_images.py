"""Draw the demo corpus's images from assets/demo/art.jsonl (one image spec per line).

    python assets/build_demo_images.py [--art assets/demo/art.jsonl] [--out assets/demo/images] [--only ID ...]

Each spec becomes `<out>/<id>.png`, 480x300 (news-card ratio). The pictures are drawn with Pillow primitives
instead of a plotting library because the demo must build offline from this repo alone, byte for byte the
same on every run (no timestamps, no fonts from the system: Pillow's embedded font only), and small (flat
colours, a 64-colour palette). Every spec is checked before anything is drawn; a bad one stops the build
with a message naming its id and field, never a blank picture.

Spec: {"id", "kind", "title", "category", "data"}; the fields of `data` per kind are in `FIELDS` below.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import math
import random
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
W, H = 480, 300  # output size (16:10 news-card thumbnail)
S = 2  # drawn at S x size, then box-downsampled: ImageDraw does not antialias shapes
HEADER = 40  # height of the title band
COLORS = 64  # palette size of the saved PNG

CATEGORIES = ("tech", "sports", "finance", "autos", "health", "travel", "world", "entertainment", "science")
PRODUCTS = ("phone", "laptop", "watch", "headset", "car", "battery", "chip", "drone", "robot")
FRUITS = ("apple", "orange", "pear")
MARKERS = ("quake", "storm", "flood", "fire", "pin")
SYMBOLS = (
    "heart", "pill", "plane", "mountain", "beach", "film", "music", "atom", "rocket",
    "globe", "coin", "ball", "trophy", "house", "wave", "leaf", "chip", "robot",
)  # fmt: skip
FIELDS = {  # kind -> (required data fields, optional data fields)
    "bar": ({"labels", "values"}, {"unit"}),
    "line": ({"x", "y"}, {"unit"}),
    "pie": ({"labels", "values"}, set()),
    "scoreboard": ({"home", "away", "home_score", "away_score"}, {"note"}),
    "map": ({"place", "lat", "lon"}, {"marker"}),
    "product": ({"shape", "label"}, {"level"}),
    "fruit": ({"fruit", "count"}, {"label"}),
    "icon": ({"symbol", "label"}, set()),
}
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # the id is a file stem


# --- palettes --------------------------------------------------------------------------------------------

RGB = tuple[int, int, int]


def _hex(code: str) -> RGB:
    return int(code[1:3], 16), int(code[3:5], 16), int(code[5:7], 16)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    """a blended towards b by t (0 = a, 1 = b)."""
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


@dataclass(frozen=True)
class Palette:
    header: RGB
    bg: RGB
    ink: RGB
    accents: tuple[RGB, ...]

    @property
    def muted(self) -> RGB:
        return _mix(self.ink, self.bg, 0.45)

    @property
    def grid(self) -> RGB:
        return _mix(self.ink, self.bg, 0.85)

    def accent(self, i: int) -> RGB:
        """The i-th series colour; past the palette, lighter tints, so a 10-slice pie has 10 colours."""
        n = len(self.accents)
        return _mix(self.accents[i % n], WHITE, 0.45 * (i // n) / (1 + 0.45 * (i // n)))


def _palette(header: str, bg: str, ink: str, accents: str) -> Palette:
    return Palette(_hex(header), _hex(bg), _hex(ink), tuple(_hex(c) for c in accents.split()))


PALETTES = {  # one look per category, so a reader can tell a card's section at a glance
    "tech": _palette("#1e3a8a", "#f1f5fb", "#1e293b", "#2563eb #06b6d4 #7c3aed #0ea5e9 #6366f1 #14b8a6"),
    "sports": _palette("#166534", "#f0f7f1", "#1c2b20", "#16a34a #f97316 #0d9488 #eab308 #2563eb #dc2626"),
    "finance": _palette("#0f3d3e", "#f3f7f6", "#102a2b", "#0f766e #ca8a04 #2563eb #9333ea #dc2626 #65a30d"),
    "autos": _palette("#7f1d1d", "#f6f4f4", "#27272a", "#dc2626 #52525b #f59e0b #0284c7 #16a34a #a21caf"),
    "health": _palette("#9d174d", "#fdf4f7", "#3b0a1e", "#db2777 #0d9488 #f59e0b #6366f1 #16a34a #ef4444"),
    "travel": _palette("#0369a1", "#f2f8fc", "#0c2a3f", "#0284c7 #f59e0b #10b981 #f43f5e #8b5cf6 #eab308"),
    "world": _palette("#374151", "#f4f5f7", "#1f2937", "#b45309 #2563eb #059669 #dc2626 #7c3aed #0891b2"),
    "entertainment": _palette("#6b21a8", "#f8f4fc", "#2e1065", "#a21caf #f59e0b #7c3aed #ec4899 #0ea5e9 #22c55e"),
    "science": _palette("#134e4a", "#f1f8f7", "#042f2e", "#0d9488 #7c3aed #0284c7 #f59e0b #e11d48 #65a30d"),
}
WHITE, BLACK = (255, 255, 255), (17, 24, 39)


# --- spec checking ---------------------------------------------------------------------------------------


class SpecError(ValueError):
    """A spec that cannot be drawn; the message names the spec id and the field."""


@dataclass(frozen=True)
class Spec:
    id: str
    kind: str
    title: str
    category: str
    data: dict


def _ascii(value: str) -> bool:
    return all(32 <= ord(ch) < 127 for ch in value)


class _Check:
    """Field readers that raise SpecError('spec <id>: data.<field> ...') instead of drawing garbage."""

    def __init__(self, spec_id: str, data: dict, prefix: str = "data."):
        self.id, self.data, self.prefix = spec_id, data, prefix

    def fail(self, field: str, problem: str) -> SpecError:
        return SpecError(f"spec {self.id!r}: {field} {problem}")

    def _get(self, key: str, default=None):
        if key not in self.data:
            if default is None:
                raise self.fail(f"{self.prefix}{key}", "is missing")
            return default
        return self.data[key]

    def text(self, key: str, max_len: int = 60, optional: bool = False) -> str:
        """A short ASCII string; an optional one may be absent or "" (-> "")."""
        if optional and self.data.get(key, "") == "":
            return ""
        return self._text(self._get(key), f"{self.prefix}{key}", max_len)

    def _text(self, value, field: str, max_len: int) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"must be a non-empty string, got {value!r}")
        if not _ascii(value):
            raise self.fail(field, f"must be plain ASCII text (the picture font has no other glyphs), got {value!r}")
        if len(value) > max_len:
            raise self.fail(field, f"is {len(value)} characters long; the limit is {max_len}")
        return value.strip()

    def number(self, key: str, lo: float = -math.inf, hi: float = math.inf) -> float:
        return self._number(self._get(key), f"{self.prefix}{key}", lo, hi)

    def _number(self, value, field: str, lo: float, hi: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(field, f"must be a number, got {value!r}")
        if not lo <= value <= hi:
            raise self.fail(field, f"must be between {lo:g} and {hi:g}, got {value!r}")
        return value

    def integer(self, key: str, lo: int, hi: int) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{self.prefix}{key}", f"must be a whole number, got {value!r}")
        return int(self._number(value, f"{self.prefix}{key}", lo, hi))

    def choice(self, key: str, options: Iterable[str], default: str | None = None) -> str:
        value = self._get(key, default)
        if value not in options:
            raise self.fail(f"{self.prefix}{key}", f"must be one of {', '.join(options)}; got {value!r}")
        return value

    def _list(self, key: str, min_len: int, max_len: int) -> list:
        value = self._get(key)
        if not isinstance(value, list) or not min_len <= len(value) <= max_len:
            raise self.fail(f"{self.prefix}{key}", f"must be a list of {min_len} to {max_len} items, got {value!r}")
        return value

    def texts(self, key: str, min_len: int, max_len: int) -> list[str]:
        return [self._text(v, f"{self.prefix}{key}[{i}]", 40) for i, v in enumerate(self._list(key, min_len, max_len))]

    def numbers(self, key: str, min_len: int, max_len: int, lo: float = -math.inf) -> list[float]:
        items = self._list(key, min_len, max_len)
        return [self._number(v, f"{self.prefix}{key}[{i}]", lo, math.inf) for i, v in enumerate(items)]

    def same_length(self, a: str, b: str) -> None:
        if len(self.data[a]) != len(self.data[b]):
            raise self.fail(f"{self.prefix}{b}", f"has {len(self.data[b])} items but data.{a} has {len(self.data[a])}")


def _check_data(kind: str, c: _Check) -> dict:
    """Validated, normalised `data` for one kind (optional fields filled in)."""
    if kind in ("bar", "pie"):
        out = {"labels": c.texts("labels", 1, 16 if kind == "bar" else 10)}
        out["values"] = c.numbers("values", 1, 16 if kind == "bar" else 10, lo=-math.inf if kind == "bar" else 0)
        c.same_length("labels", "values")
        if kind == "pie" and sum(out["values"]) <= 0:
            raise c.fail("data.values", "must add up to more than 0 for a pie")
        if kind == "bar":
            out["unit"] = c.text("unit", 20, optional=True)
        return out
    if kind == "line":
        out = {"x": c.texts("x", 2, 60), "y": c.numbers("y", 2, 60)}
        c.same_length("x", "y")
        out["unit"] = c.text("unit", 20, optional=True)
        return out
    if kind == "scoreboard":
        return {
            "home": c.text("home", 12),
            "away": c.text("away", 12),
            "home_score": c.integer("home_score", 0, 999),
            "away_score": c.integer("away_score", 0, 999),
            "note": c.text("note", 30, optional=True),
        }
    if kind == "map":
        return {
            "place": c.text("place", 40),
            "lat": c.number("lat", -90, 90),
            "lon": c.number("lon", -180, 180),
            "marker": c.choice("marker", MARKERS, default="pin"),
        }
    if kind == "product":
        out = {"shape": c.choice("shape", PRODUCTS), "label": c.text("label", 48)}
        found = re.search(r"(\d{1,3})\s*%", out["label"])  # "Battery at 80%" -> charge level 80
        if "level" in c.data and out["shape"] != "battery":
            raise c.fail("data.level", "is only for shape 'battery'")
        if "level" in c.data:
            out["level"] = c.number("level", 0, 100)
        elif found and out["shape"] == "battery":
            out["level"] = min(float(found.group(1)), 100.0)
        else:  # drawn mostly full, with no number the spec did not give
            out["level"] = None
        return out
    if kind == "fruit":
        return {
            "fruit": c.choice("fruit", FRUITS),
            "count": c.integer("count", 1, 99),
            "label": c.text("label", 48, optional=True),
        }
    return {"symbol": c.choice("symbol", SYMBOLS), "label": c.text("label", 48)}


def parse_spec(raw: object) -> Spec:
    """Check one art.jsonl record; raise SpecError naming the id and the bad field."""
    if not isinstance(raw, dict):
        raise SpecError(f"spec must be a JSON object, got {type(raw).__name__}")
    spec_id = raw.get("id")
    if not isinstance(spec_id, str) or not ID_RE.match(spec_id):
        raise SpecError(f"spec id must be a file stem of letters, digits, '-' or '_' (e.g. n001-2), got {spec_id!r}")
    top = _Check(spec_id, raw, prefix="")
    kind = top.choice("kind", FIELDS)
    category = top.choice("category", CATEGORIES)
    title = top.text("title", 80)
    data = raw.get("data")
    if not isinstance(data, dict):
        raise top.fail("data", f"must be an object, got {data!r}")
    required, optional = FIELDS[kind]
    unknown = sorted(set(data) - required - optional)
    if unknown:
        fields = ", ".join(sorted(required | optional))
        raise top.fail(f"data.{unknown[0]}", f"is not a field of kind {kind!r}; its fields are {fields}")
    return Spec(spec_id, kind, title, category, _check_data(kind, _Check(spec_id, data)))


def load_specs(path: Path) -> tuple[list[Spec], list[str]]:
    """All specs of an art.jsonl file plus one error line per bad record (line number, id, field)."""
    specs, errors, seen = [], [], {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            spec = parse_spec(json.loads(line))
        except json.JSONDecodeError as exc:
            errors.append(f"{path.name} line {lineno}: invalid JSON ({exc.msg})")
            continue
        except SpecError as exc:
            errors.append(f"{path.name} line {lineno}: {exc}")
            continue
        if spec.id in seen:
            errors.append(f"{path.name} line {lineno}: spec {spec.id!r} repeats the id of line {seen[spec.id]}")
            continue
        seen[spec.id] = lineno
        specs.append(spec)
    return specs, errors


# --- canvas ----------------------------------------------------------------------------------------------

Point = tuple[float, float]


@functools.cache
def _font(size: float) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=round(size * S))  # Pillow's embedded font: same glyphs everywhere


def _fmt(value: float) -> str:
    """Numbers as a reader writes them: 1,250 / 12 / 3.75 / -0.4 / 0.0012."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if float(value).is_integer():
        return str(int(value))
    if abs(value) < 1:
        return f"{value:.3g}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _compact(value: float) -> str:
    """18,518 -> 18.5k: for value labels that must fit a narrow bar."""
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return _fmt(round(value / div, 1)) + suffix
    return _fmt(value)


def _rot(points: Iterable[Point], cx: float, cy: float, deg: float) -> list[Point]:
    """Points given relative to (cx, cy), rotated by deg (clockwise on screen) and moved there."""
    a = math.radians(deg)
    ca, sa = math.cos(a), math.sin(a)
    return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in points]


def _ellipse(rx: float, ry: float, n: int = 72) -> list[Point]:
    return [(rx * math.cos(2 * math.pi * k / n), ry * math.sin(2 * math.pi * k / n)) for k in range(n)]


class Pen:
    """ImageDraw in logical 480x300 coordinates on an S-times larger canvas."""

    def __init__(self, pal: Palette):
        self.pal = pal
        self.img = Image.new("RGB", (W * S, H * S), pal.bg)
        self.d = ImageDraw.Draw(self.img)

    @staticmethod
    def _xy(points: Iterable[Point]) -> list[Point]:
        return [(x * S, y * S) for x, y in points]

    @staticmethod
    def _box(box: tuple[float, float, float, float]) -> list[float]:
        return [v * S for v in box]

    def rect(self, box, fill=None, outline=None, width: float = 1, radius: float = 0) -> None:
        self.d.rounded_rectangle(self._box(box), radius * S, fill, outline, round(width * S))

    def circle(self, cx: float, cy: float, r: float, fill=None, outline=None, width: float = 1) -> None:
        self.d.ellipse(self._box((cx - r, cy - r, cx + r, cy + r)), fill, outline, round(width * S))

    def oval(self, box, fill=None, outline=None, width: float = 1) -> None:
        self.d.ellipse(self._box(box), fill, outline, round(width * S))

    def poly(self, points: Iterable[Point], fill=None, outline=None, width: float = 1) -> None:
        self.d.polygon(self._xy(points), fill, outline, round(width * S))

    def line(self, points: Iterable[Point], fill, width: float = 1) -> None:
        self.d.line(self._xy(points), fill, round(width * S), joint="curve")

    def pie(self, box, start: float, end: float, fill=None, outline=None, width: float = 1) -> None:
        self.d.pieslice(self._box(box), start, end, fill, outline, round(width * S))

    def arc(self, box, start: float, end: float, fill, width: float = 1) -> None:
        self.d.arc(self._box(box), start, end, fill, round(width * S))

    def width(self, text: str, size: float) -> float:
        return self.d.textlength(text, font=_font(size)) / S

    def fit(self, text: str, size: float, max_w: float) -> tuple[str, float]:
        """Shrink the font down to 75 %, then cut the text with '...' so it fits max_w."""
        min_size = size * 0.75
        while self.width(text, size) > max_w and size > min_size:
            size -= 0.5
        if self.width(text, size) > max_w:
            while text and self.width(text + "...", size) > max_w:
                text = text[:-1]
            text = text.rstrip() + "..."
        return text, size

    def text(self, x: float, y: float, text: str, size: float, fill, anchor: str = "la", max_w=None, stroke=None):
        if max_w is not None:
            text, size = self.fit(text, size, max_w)
        extra = {"stroke_width": round(1.5 * S), "stroke_fill": stroke} if stroke else {}
        self.d.text((x * S, y * S), text, fill=fill, font=_font(size), anchor=anchor, **extra)

    def finish(self) -> Image.Image:
        small = self.img.reduce(S)
        return small.quantize(COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def _header(pen: Pen, spec: Spec) -> None:
    pal = pen.pal
    pen.rect((0, 0, W, HEADER), fill=pal.header)
    tag = spec.category.upper()
    tag_w = pen.width(tag, 10) + 14
    pen.rect((W - 12 - tag_w, 12, W - 12, 28), fill=_mix(pal.header, WHITE, 0.22), radius=8)
    pen.text(W - 12 - tag_w / 2, 20.5, tag, 10, _mix(pal.header, WHITE, 0.9), anchor="mm")
    pen.text(14, 21, spec.title, 17, WHITE, anchor="lm", max_w=W - 40 - tag_w)


def _caption(pen: Pen, text: str, y: float = 276) -> None:
    pen.text(W / 2, y, text, 16, pen.pal.ink, anchor="mm", max_w=W - 40)


# --- charts ----------------------------------------------------------------------------------------------


def _nice_step(span: float, ticks: int = 4) -> float:
    """A 1/2/2.5/5 x 10^k step that cuts span into about `ticks` parts."""
    raw = span / ticks if span > 0 else 1.0
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def _unit_note(pen: Pen, unit: str) -> None:
    if unit:
        pen.text(16, 50, f"Unit: {unit}", 11, pen.pal.muted, max_w=300)


def _value_text(value: float, unit: str) -> str:
    return _fmt(value) + ("%" if unit == "%" else "")


def draw_bar(pen: Pen, d: dict) -> None:
    pal, labels, values, unit = pen.pal, d["labels"], d["values"], d["unit"]
    lo, hi = min(0.0, *values), max(0.0, *values)
    left, right, top, bottom = 24, W - 24, 86, 244 if lo == 0 else 230  # room under negative bars for their value
    if hi == lo:
        hi = 1.0
    scale = (bottom - top) / (hi - lo)
    zero = bottom - (0 - lo) * scale
    slot = (right - left) / len(values)
    bar_w = min(slot * 0.62, 70)
    label_size = 12 if slot >= 48 else 10
    _unit_note(pen, unit)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        cx = left + slot * (i + 0.5)
        y = zero - value * scale
        pen.rect((cx - bar_w / 2, min(y, zero), cx + bar_w / 2, max(y, zero)), fill=pal.accent(i))
        above = value >= 0
        text, size = _value_text(value, unit), 12.0
        while pen.width(text, size) > slot - 2 and size > 9:  # numbers shrink or shorten, never get cut
            size -= 0.5
        if pen.width(text, size) > slot - 2:
            text = _compact(value) + ("%" if unit == "%" else "")
        pen.text(cx, y - 4 if above else y + 4, text, size, pal.ink, "md" if above else "ma")
        pen.text(cx, 252, label, label_size, pal.ink, "ma", max_w=slot - 4)
    pen.line([(left - 6, zero), (right + 6, zero)], pal.muted, 1.5)


def draw_line(pen: Pen, d: dict) -> None:
    pal, xs, ys, unit = pen.pal, d["x"], d["y"], d["unit"]
    left, right, top, bottom = 62, W - 32, 74, 238
    lo, hi = min(ys), max(ys)
    pad = (hi - lo) * 0.12 or abs(hi) * 0.1 or 1.0
    step = _nice_step(hi - lo + 2 * pad)
    lo_t, hi_t = math.floor((lo - pad) / step) * step, math.ceil((hi + pad) / step) * step
    if lo >= 0 > lo_t:  # keep an all-positive series' axis at 0 or above
        lo_t = 0.0

    def y_of(v: float) -> float:
        return bottom - (v - lo_t) / (hi_t - lo_t) * (bottom - top)

    _unit_note(pen, unit)
    tick = lo_t
    while tick <= hi_t + step / 1000:
        pen.line([(left, y_of(tick)), (right, y_of(tick))], pal.grid, 1)
        pen.text(left - 8, y_of(tick), _fmt(round(tick, 10)), 11, pal.muted, "rm")
        tick += step
    n = len(ys)
    pts = [(left + (right - left) * i / (n - 1), y_of(v)) for i, v in enumerate(ys)]
    area = [(left, bottom), *pts, (right, bottom)]
    pen.poly(area, fill=_mix(pal.accent(0), pal.bg, 0.82))
    pen.line(pts, pal.accent(0), 3)
    every = math.ceil(n / 8)  # at most 8 x labels; the rest would overlap
    for i in range(0, n, every):
        pen.text(pts[i][0], bottom + 8, xs[i], 11, pal.ink, "ma", max_w=(right - left) / min(n, 8) + 6)
    # Value labels, most telling first (last, max, min, first), skipping any that would overlap one placed.
    extremes = [n - 1, ys.index(max(ys)), ys.index(min(ys)), 0]
    order = list(dict.fromkeys(extremes + list(range(n)) if n <= 12 else extremes))
    placed: list[tuple[float, float, float, float]] = []
    for i in order:
        x, y = pts[i]
        pen.circle(x, y, 4, fill=WHITE, outline=pal.accent(0), width=2)
        label = _value_text(ys[i], unit)
        w = pen.width(label, 11)
        x0 = x + 4 if i == 0 else x + 4 - w if i == n - 1 else x - w / 2  # end labels stay inside the plot
        box = (x0 - 2, y - 21, x0 + w + 2, y - 8)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
            continue
        placed.append(box)
        pen.text(x0, y - 8, label, 11, pal.ink, "ld", stroke=pal.bg)
    pen.line([(left, top - 6), (left, bottom), (right, bottom)], pal.muted, 1.5)


def draw_pie(pen: Pen, d: dict) -> None:
    pal, labels, values = pen.pal, d["labels"], d["values"]
    cx, cy, r = 140, 170, 104
    total = sum(values)
    start = -90.0
    for i, value in enumerate(values):
        sweep = 360 * value / total
        if sweep > 0:
            pen.pie((cx - r, cy - r, cx + r, cy + r), start, start + sweep, fill=pal.accent(i), outline=WHITE, width=2)
            share = value / total
            if share >= 0.07:
                mid = math.radians(start + sweep / 2)
                x, y = cx + 0.64 * r * math.cos(mid), cy + 0.64 * r * math.sin(mid)
                pen.text(x, y, f"{share * 100:.0f}%", 13, WHITE, "mm", stroke=_mix(pal.accent(i), BLACK, 0.3))
        start += sweep
    row = min(26, 220 / len(values))
    y0 = cy - row * len(values) / 2 + row / 2
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = y0 + i * row
        pen.rect((268, y - 6, 280, y + 6), fill=pal.accent(i), radius=2)
        right = f"{_fmt(value)} ({value / total * 100:.0f}%)"
        pen.text(W - 16, y, right, 12, pal.muted, "rm")
        pen.text(288, y, label, 13, pal.ink, "lm", max_w=W - 16 - 288 - pen.width(right, 12) - 8)


def draw_scoreboard(pen: Pen, d: dict) -> None:
    pal = pen.pal
    board = _mix(pal.header, BLACK, 0.55)
    pen.rect((22, 56, W - 22, 286), fill=board, radius=14)
    pen.line([(W / 2, 76), (W / 2, 228)], _mix(board, WHITE, 0.2), 2)
    win, lose, dim = (250, 204, 21), (229, 231, 235), _mix(board, WHITE, 0.55)
    home, away = d["home_score"], d["away_score"]
    for side, team, score, other in ((-1, d["home"], home, away), (1, d["away"], away, home)):
        cx = W / 2 + side * 108
        pen.text(cx, 80, "HOME" if side < 0 else "AWAY", 11, dim, "mm")
        pen.text(cx, 110, team, 28, WHITE, "mm", max_w=190)
        pen.text(cx, 178, str(score), 62, win if score > other else lose, "mm")
    if d["note"]:
        note_w = pen.width(d["note"], 14) + 28
        pen.rect((W / 2 - note_w / 2, 242, W / 2 + note_w / 2, 268), fill=pal.accent(0), radius=13)
        pen.text(W / 2, 255, d["note"], 14, WHITE, "mm")


# --- map -------------------------------------------------------------------------------------------------

SEA, LAND, COAST, GRATICULE = (214, 232, 245), (236, 226, 198), (176, 150, 104), (170, 196, 220)
PX_PER_DEG = 10  # equirectangular: the same scale along both axes; the view spans 48 x 26 degrees


def _lon_name(lon: float) -> str:
    lon = (lon + 180) % 360 - 180
    return f"{abs(lon):g}{'E' if 0 < lon < 180 else 'W' if -180 < lon < 0 else ''}"


def _lat_name(lat: float) -> str:
    return f"{abs(lat):g}{'N' if lat > 0 else 'S' if lat < 0 else ''}"


def _blob(rng: random.Random, cx: float, cy: float, radius: float) -> list[Point]:
    """A smooth random closed outline: a circle whose radius wobbles with a few low harmonics."""
    waves = [(k, rng.uniform(0.05, 0.16) / k**0.5, rng.uniform(0, 2 * math.pi)) for k in range(2, 7)]
    points = []
    for j in range(120):
        t = 2 * math.pi * j / 120
        r = radius * (1 + sum(a * math.sin(k * t + phase) for k, a, phase in waves))
        points.append((cx + r * math.cos(t), cy + r * math.sin(t) * 0.8))
    return points


def draw_marker(pen: Pen, x: float, y: float, marker: str) -> None:
    red = (220, 38, 38)
    if marker == "quake":
        for r, shade in ((34, 0.75), (24, 0.5), (14, 0.2)):
            pen.circle(x, y, r, outline=_mix(red, WHITE, shade), width=3)
        pen.line([(x - 9, y), (x - 5, y - 7), (x - 1, y + 7), (x + 3, y - 7), (x + 7, y + 4), (x + 9, y)], red, 2.5)
    elif marker == "storm":
        blue = (37, 99, 235)
        pen.circle(x, y, 30, fill=_mix(blue, WHITE, 0.75))
        for deg in (0, 180):  # two spiral arms of a cyclone symbol
            arm = [
                (math.cos(math.radians(t)) * (8 + t / 9), math.sin(math.radians(t)) * (8 + t / 9))
                for t in range(0, 190, 10)
            ]
            pen.line(_rot(arm, x, y, deg), blue, 5)
        pen.circle(x, y, 8, fill=blue)
        pen.circle(x, y, 3.5, fill=WHITE)
    elif marker == "flood":
        blue = (29, 78, 216)
        pen.poly([(x, y - 30), (x + 14, y - 8), (x, y + 4), (x - 14, y - 8)], fill=blue)
        pen.circle(x, y - 8, 14, fill=blue)
        for k in range(2):
            wave = [(x - 30 + i * 3, y + 14 + k * 9 + 3 * math.sin(i * 0.9)) for i in range(21)]
            pen.line(wave, _mix(blue, WHITE, 0.25 * k), 3)
    elif marker == "fire":
        flame = [(x, y - 34), (x + 10, y - 18), (x + 18, y - 6), (x + 16, y + 8), (x + 6, y + 16), (x - 6, y + 16),
                 (x - 16, y + 8), (x - 18, y - 6), (x - 10, y - 2), (x - 8, y - 16)]  # fmt: skip
        pen.poly(flame, fill=(234, 88, 12), outline=(154, 52, 18), width=2)
        pen.poly([(x, y - 10), (x + 8, y + 2), (x + 5, y + 13), (x - 5, y + 13), (x - 8, y + 2)], fill=(250, 204, 21))
    else:  # pin: the tip sits on the place
        pen.poly([(x, y), (x - 12, y - 22), (x + 12, y - 22)], fill=red)
        pen.circle(x, y - 28, 14, fill=red, outline=_mix(red, BLACK, 0.3), width=1.5)
        pen.circle(x, y - 28, 5.5, fill=WHITE)


def draw_map(pen: Pen, d: dict) -> None:
    """A schematic regional map: true graticule and marker position, a made-up coastline for context."""
    pal, lat, lon = pen.pal, d["lat"], d["lon"]
    top = HEADER
    # Centre the 48 x 26 degree view on the place; near a pole, shift it so the marker stays clear of the title.
    c_lat = min(max(lat, -80.0), 80.0)

    def xy(la: float, lo: float) -> Point:
        return W / 2 + (lo - lon) * PX_PER_DEG, (top + H) / 2 - (la - c_lat) * PX_PER_DEG

    pen.rect((0, top, W, H), fill=SEA)
    mx, my = xy(lat, lon)
    rng = random.Random(int.from_bytes(hashlib.sha256(d["place"].encode()).digest()[:8], "big"))
    land = _blob(rng, mx + rng.uniform(-60, 60), my + rng.uniform(-30, 30), rng.uniform(110, 150))
    pen.poly(land, fill=LAND, outline=COAST, width=2)
    for _ in range(2):
        pen.poly(
            _blob(rng, rng.uniform(30, W - 30), rng.uniform(top + 30, H - 30), rng.uniform(10, 22)), LAND, COAST, 1.5
        )
    for g in range(math.floor((lon - 30) / 10) * 10, math.ceil(lon + 30) + 1, 10):
        x, _ = xy(c_lat, g)
        if 4 < x < W - 4:
            pen.line([(x, top), (x, H)], GRATICULE, 1)
            pen.text(x + 3, H - 4, _lon_name(g), 10, pal.muted, "ld")
    for g in range(math.floor((c_lat - 20) / 10) * 10, math.ceil(c_lat + 20) + 1, 10):
        _, y = xy(g, lon)
        if top + 12 < y < H - 16 and -90 <= g <= 90:
            pen.line([(0, y), (W, y)], GRATICULE, 1)
            pen.text(4, y - 2, _lat_name(g), 10, pal.muted, "ld")
    # Locator inset: the whole world, with the place and the view box.
    ix, iy, iw, ih = W - 112, top + 10, 100, 50
    pen.rect((ix, iy, ix + iw, iy + ih), fill=WHITE, outline=pal.muted, width=1)
    for g in range(-150, 180, 30):
        pen.line([(ix + (g + 180) / 360 * iw, iy), (ix + (g + 180) / 360 * iw, iy + ih)], pal.grid, 1)
    for g in (-60, -30, 0, 30, 60):
        pen.line([(ix, iy + (90 - g) / 180 * ih), (ix + iw, iy + (90 - g) / 180 * ih)], pal.grid, 1)
    px, py = ix + (lon + 180) / 360 * iw, iy + (90 - lat) / 180 * ih
    pen.rect(
        (px - 48 / 360 * iw / 2, py - 26 / 180 * ih / 2, px + 48 / 360 * iw / 2, py + 26 / 180 * ih / 2),
        outline=pal.header,
    )
    pen.circle(px, py, 2.5, fill=(220, 38, 38))
    pen.text(ix + iw, iy + ih + 3, "schematic map", 9, pal.muted, "ra")
    draw_marker(pen, mx, my, d["marker"])
    # Callout with the name and the coordinates: the first spot beside the marker that stays on the picture and
    # clear of the marker and the inset.
    ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
    coords = f"{abs(lat):.2f} {ns}, {abs(lon):.2f} {ew}"
    box_w, box_h = min(max(pen.width(d["place"], 16), pen.width(coords, 11)) + 20, 220), 44
    keep_out = [(mx - 38, my - 46, mx + 38, my + 38), (ix - 6, iy - 6, W, iy + ih + 16)]
    spots = [(mx + 42, my - 22), (mx - 42 - box_w, my - 22), (mx - box_w / 2, my + 42), (mx - box_w / 2, my - 96)]
    placed = []
    for x, y in spots:
        x, y = min(max(x, 8), W - 8 - box_w), min(max(y, top + 8), H - 8 - box_h)
        box = (x, y, x + box_w, y + box_h)
        if not any(box[0] < k[2] and k[0] < box[2] and box[1] < k[3] and k[1] < box[3] for k in keep_out):
            placed.append((x, y))
    bx, by = placed[0] if placed else (min(max(spots[0][0], 8), W - 8 - box_w), top + 8)
    pen.rect((bx, by, bx + box_w, by + 44), fill=WHITE, outline=pal.header, width=1.5, radius=6)
    pen.text(bx + 10, by + 14, d["place"], 16, pal.ink, "lm", max_w=box_w - 16)
    pen.text(bx + 10, by + 33, coords, 11, pal.muted, "lm")


# --- products (line-art sketches; u scales them so the icons can reuse chip and robot) ---------------------

DARK, STEEL, GLASS = (31, 41, 55), (148, 163, 184), (226, 232, 240)


def _phone(pen: Pen, cx: float, cy: float, u: float, level: float | None) -> None:
    pal = pen.pal
    pen.rect((cx - 48 * u, cy - 90 * u, cx + 48 * u, cy + 90 * u), fill=DARK, radius=14 * u)
    pen.rect((cx - 41 * u, cy - 82 * u, cx + 41 * u, cy + 82 * u), fill=_mix(pal.accent(0), WHITE, 0.78), radius=9 * u)
    pen.rect((cx - 14 * u, cy - 78 * u, cx + 14 * u, cy - 70 * u), fill=DARK, radius=4 * u)
    for row in range(3):  # app tiles
        for col in range(3):
            x, y = cx - 30 * u + col * 22 * u, cy - 52 * u + row * 24 * u
            pen.rect((x - 8 * u, y - 8 * u, x + 8 * u, y + 8 * u), fill=pal.accent(row * 3 + col), radius=4 * u)
    pen.rect((cx - 32 * u, cy + 30 * u, cx + 32 * u, cy + 58 * u), fill=WHITE, radius=6 * u)
    pen.line([(cx - 18 * u, cy + 74 * u), (cx + 18 * u, cy + 74 * u)], DARK, 3 * u)
    pen.line([(cx + 49 * u, cy - 50 * u), (cx + 49 * u, cy - 24 * u)], STEEL, 3 * u)


def _laptop(pen: Pen, cx: float, cy: float, u: float, level: float | None) -> None:
    pal = pen.pal
    pen.rect((cx - 105 * u, cy - 88 * u, cx + 105 * u, cy + 44 * u), fill=DARK, radius=9 * u)
    pen.rect((cx - 96 * u, cy - 79 * u, cx + 96 * u, cy + 36 * u), fill=_mix(pal.accent(0), WHITE, 0.8))
    pen.rect((cx - 86 * u, cy - 70 * u, cx + 86 * u, cy - 58 * u), fill=pal.accent(0))
    for i, h in enumerate((30, 52, 40, 68, 58)):  # a little chart on the screen
        x = cx - 76 * u + i * 22 * u
        pen.rect((x, cy + 26 * u - h * u, x + 14 * u, cy + 26 * u), fill=pal.accent(i + 1))
    pen.rect((cx + 38 * u, cy - 46 * u, cx + 86 * u, cy + 26 * u), fill=WHITE, radius=4 * u)
    base = [
        (cx - 128 * u, cy + 48 * u),
        (cx + 128 * u, cy + 48 * u),
        (cx + 116 * u, cy + 62 * u),
        (cx - 116 * u, cy + 62 * u),
    ]
    pen.poly(base, fill=STEEL, outline=_mix(STEEL, BLACK, 0.35), width=1.5 * u)
    pen.rect((cx - 24 * u, cy + 48 * u, cx + 24 * u, cy + 53 * u), fill=_mix(STEEL, BLACK, 0.3), radius=2 * u)


def _watch(pen: Pen, cx: float, cy: float, u: float, level: float | None) -> None:
    pal = pen.pal
    strap = _mix(pal.accent(0), BLACK, 0.25)
    pen.rect((cx - 30 * u, cy - 96 * u, cx + 30 * u, cy - 40 * u), fill=strap, radius=8 * u)
    pen.rect((cx - 30 * u, cy + 40 * u, cx + 30 * u, cy + 96 * u), fill=strap, radius=8 * u)
    pen.rect((cx - 52 * u, cy - 60 * u, cx + 52 * u, cy + 60 * u), fill=STEEL, radius=20 * u)
    pen.rect((cx - 44 * u, cy - 52 * u, cx + 44 * u, cy + 52 * u), fill=DARK, radius=14 * u)
    pen.rect((cx + 52 * u, cy - 20 * u, cx + 58 * u, cy + 4 * u), fill=STEEL, radius=2 * u)
    for i, (r, sweep) in enumerate(((32, 280), (24, 210), (16, 150))):  # activity rings
        box = (cx - r * u, cy - 8 * u - r * u, cx + r * u, cy - 8 * u + r * u)
        pen.arc(box, 0, 360, _mix(pal.accent(i), DARK, 0.65), 6 * u)
        pen.arc(box, -90, -90 + sweep, pal.accent(i), 6 * u)
    pen.text(cx, cy + 38 * u, "10:09", 13 * u, WHITE, "mm")


def _headset(pen: Pen, cx: float, cy: float, u: float, level: float | None) -> None:
    pal = pen.pal
    pen.arc((cx - 122 * u, cy - 74 * u, cx + 122 * u, cy + 40 * u), 180, 360, STEEL, 10 * u)
    pen.rect((cx - 104 * u, cy - 48 * u, cx + 104 * u, cy + 44 * u), fill=DARK, radius=32 * u)
    pen.rect((cx - 94 * u, cy - 40 * u, cx + 94 * u, cy + 8 * u), fill=_mix(DARK, WHITE, 0.15), radius=24 * u)
    for side in (-1, 1):
        pen.circle(
            cx + side * 46 * u,
            cy - 2 * u,
            25 * u,
            fill=pal.accent(0),
            outline=_mix(pal.accent(0), WHITE, 0.5),
            width=3 * u,
        )
        pen.circle(cx + side * 46 * u - 8 * u, cy - 10 * u, 6 * u, fill=_mix(pal.accent(0), WHITE, 0.6))
    pen.pie((cx - 20 * u, cy + 22 * u, cx + 20 * u, cy + 66 * u), 180, 360, fill=pal.bg)


def _car(pen: Pen, cx: float, cy: float, u: float, level: float | None) -> None:
    pal = pen.pal
    body = [(-126, 22), (-124, -6), (-98, -14), (-62, -18), (-36, -50), (28, -52), (62, -20), (112, -12),
            (128, 0), (128, 22)]  # fmt: skip
    pen.poly(
        [(cx + x * u, cy + y * u) for x, y in body],
        fill=pal.accent(0),
        outline=_mix(pal.accent(0), BLACK, 0.4),
        width=2 * u,
    )
    for win in ([(-30, -44), (-4, -46), (-4, -20), (-52, -20)], [(2, -46), (25, -46), (50, -20), (2, -20)]):
        pen.poly([(cx + x * u, cy + y * u) for x, y in win], fill=GLASS, outline=_mix(GLASS, BLACK, 0.4), width=1 * u)
    pen.line([(cx - 2 * u, cy - 18 * u), (cx - 2 * u, cy + 16 * u)], _mix(pal.accent(0), BLACK, 0.4), 1.5 * u)
    pen.rect((cx + 112 * u, cy - 8 * u, cx + 126 * u, cy - 2 * u), fill=(253, 224, 71), radius=2 * u)
    pen.rect((cx - 126 * u, cy - 4 * u, cx - 118 * u, cy + 4 * u), fill=(220, 38, 38), radius=2 * u)
    for wx in (-76, 80):
        pen.circle(cx + wx * u, cy + 22 * u, 27 * u, fill=pal.bg)
        pen.circle(cx + wx * u, cy + 22 * u, 22 * u, fill=DARK)
        pen.circle(cx + wx * u, cy + 22 * u, 10 * u, fill=STEEL)
    pen.line([(cx - 150 * u, cy + 46 * u), (cx + 150 * u, cy + 46 * u)], pal.muted, 2 * u)


def _battery(pen: Pen, cx: float, cy: float, u: float, level: float | None) -> None:
    ink = pen.pal.ink
    pen.rect(
        (cx - 112 * u, cy - 52 * u, cx + 100 * u, cy + 52 * u), fill=WHITE, outline=ink, width=5 * u, radius=12 * u
    )
    pen.rect((cx + 100 * u, cy - 20 * u, cx + 116 * u, cy + 20 * u), fill=ink, radius=4 * u)
    shown = 75.0 if level is None else level
    colour = (22, 163, 74) if shown >= 50 else (234, 179, 8) if shown >= 20 else (220, 38, 38)
    if shown > 0:
        pen.rect(
            (cx - 102 * u, cy - 42 * u, cx - 102 * u + 192 * u * shown / 100, cy + 42 * u), fill=colour, radius=6 * u
        )
    bolt = [(6, -36), (-22, 6), (-2, 6), (-10, 36), (22, -8), (2, -8)]
    bx = cx - 40 * u if level is not None else cx - 6 * u
    pen.poly([(bx + x * u, cy + y * u) for x, y in bolt], fill=WHITE, outline=ink, width=2 * u)
    if level is not None:
        pen.text(cx + 30 * u, cy, f"{level:.0f}%", 30 * u, ink, "mm", stroke=WHITE)


def _chip(pen: Pen, cx: float, cy: float, u: float, level: float | None) -> None:
    pal = pen.pal
    for k in range(7):  # pins on all four sides
        t = (k - 3) * 17 * u
        pen.line([(cx + t, cy - 92 * u), (cx + t, cy + 92 * u)], STEEL, 6 * u)
        pen.line([(cx - 92 * u, cy + t), (cx + 92 * u, cy + t)], STEEL, 6 * u)
    pen.rect((cx - 72 * u, cy - 72 * u, cx + 72 * u, cy + 72 * u), fill=DARK, radius=8 * u)
    pen.rect((cx - 44 * u, cy - 44 * u, cx + 44 * u, cy + 44 * u), fill=pal.accent(0), radius=4 * u)
    for k in range(1, 4):
        t = (k * 22 - 44) * u
        pen.line([(cx + t, cy - 44 * u), (cx + t, cy + 44 * u)], _mix(pal.accent(0), WHITE, 0.35), 1.5 * u)
        pen.line([(cx - 44 * u, cy + t), (cx + 44 * u, cy + t)], _mix(pal.accent(0), WHITE, 0.35), 1.5 * u)
    pen.circle(cx - 58 * u, cy - 58 * u, 5 * u, fill=STEEL)


def _drone(pen: Pen, cx: float, cy: float, u: float, level: float | None) -> None:
    pal = pen.pal
    for sx, sy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
        ex, ey = cx + sx * 92 * u, cy + sy * 52 * u
        pen.line([(cx, cy), (ex, ey)], DARK, 9 * u)
        pen.oval(
            (ex - 42 * u, ey - 11 * u, ex + 42 * u, ey + 11 * u),
            fill=_mix(pal.accent(0), WHITE, 0.6),
            outline=pal.accent(0),
            width=2 * u,
        )
        pen.circle(ex, ey, 7 * u, fill=DARK)
    pen.line([(cx - 30 * u, cy + 20 * u), (cx - 40 * u, cy + 58 * u)], DARK, 4 * u)
    pen.line([(cx + 30 * u, cy + 20 * u), (cx + 40 * u, cy + 58 * u)], DARK, 4 * u)
    pen.rect(
        (cx - 38 * u, cy - 24 * u, cx + 38 * u, cy + 24 * u),
        fill=pal.accent(0),
        outline=DARK,
        width=3 * u,
        radius=12 * u,
    )
    pen.circle(cx, cy + 30 * u, 12 * u, fill=DARK)
    pen.circle(cx, cy + 30 * u, 5 * u, fill=GLASS)


def _robot(pen: Pen, cx: float, cy: float, u: float, level: float | None) -> None:
    pal = pen.pal
    grey, dark = _mix(STEEL, WHITE, 0.35), _mix(STEEL, BLACK, 0.45)
    pen.line([(cx, cy - 96 * u), (cx, cy - 80 * u)], dark, 4 * u)
    pen.circle(cx, cy - 98 * u, 7 * u, fill=pal.accent(1))
    for side in (-1, 1):
        pen.rect(
            (cx + side * 58 * u - 6 * u, cy - 62 * u, cx + side * 58 * u + 6 * u, cy - 40 * u), fill=dark, radius=3 * u
        )
        pen.rect(
            (cx + side * 82 * u - 11 * u, cy - 12 * u, cx + side * 82 * u + 11 * u, cy + 48 * u),
            fill=grey,
            outline=dark,
            width=2 * u,
            radius=8 * u,
        )
        pen.rect(
            (cx + side * 24 * u - 13 * u, cy + 68 * u, cx + side * 24 * u + 13 * u, cy + 96 * u),
            fill=dark,
            radius=4 * u,
        )
    pen.rect((cx - 52 * u, cy - 80 * u, cx + 52 * u, cy - 24 * u), fill=grey, outline=dark, width=3 * u, radius=14 * u)
    for side in (-1, 1):
        pen.circle(cx + side * 22 * u, cy - 56 * u, 11 * u, fill=pal.accent(0))
        pen.circle(cx + side * 22 * u - 3 * u, cy - 59 * u, 3.5 * u, fill=WHITE)
    pen.rect((cx - 20 * u, cy - 38 * u, cx + 20 * u, cy - 30 * u), fill=dark, radius=2 * u)
    pen.rect((cx - 64 * u, cy - 18 * u, cx + 64 * u, cy + 70 * u), fill=grey, outline=dark, width=3 * u, radius=14 * u)
    pen.rect((cx - 36 * u, cy + 2 * u, cx + 36 * u, cy + 44 * u), fill=WHITE, outline=dark, width=2 * u, radius=6 * u)
    for k in range(3):
        pen.circle(cx - 18 * u + k * 18 * u, cy + 23 * u, 6 * u, fill=pal.accent(k + 1))


PRODUCT_DRAWERS: dict[str, Callable[[Pen, float, float, float, float | None], None]] = {
    "phone": _phone, "laptop": _laptop, "watch": _watch, "headset": _headset, "car": _car,
    "battery": _battery, "chip": _chip, "drone": _drone, "robot": _robot,
}  # fmt: skip


def draw_product(pen: Pen, d: dict) -> None:
    scale = 1.3 if d["shape"] == "car" else 1.0  # a side view is flat: give it the width the others have in height
    PRODUCT_DRAWERS[d["shape"]](pen, W / 2, 150, scale, d["level"])
    _caption(pen, d["label"])


# --- fruit -----------------------------------------------------------------------------------------------


def _hull(points: list[Point]) -> list[Point]:
    """Convex hull (monotone chain): the outline of a pear drawn as two overlapping circles."""
    pts = sorted(set(points))

    def half(seq: list[Point]) -> list[Point]:
        out: list[Point] = []
        for p in seq:
            while (
                len(out) >= 2
                and (out[-1][0] - out[-2][0]) * (p[1] - out[-2][1]) - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])
                <= 0
            ):
                out.pop()
            out.append(p)
        return out[:-1]

    return half(pts) + half(pts[::-1])


def _leaf(pen: Pen, x: float, y: float, length: float, deg: float) -> None:
    shape = [(t * length, math.sin(math.pi * t) * length * 0.32) for t in (i / 12 for i in range(13))]
    shape += [(t * length, -math.sin(math.pi * t) * length * 0.32) for t in (i / 12 for i in range(12, 0, -1))]
    pen.poly(_rot(shape, x, y, deg), fill=(22, 163, 74), outline=(21, 128, 61), width=1)


def draw_fruit_one(pen: Pen, kind: str, cx: float, cy: float, r: float) -> None:
    stem = (120, 72, 36)
    if kind == "apple":
        outline = []
        for j in range(96):  # a circle with a dimple at the top and a flatter bottom
            t = 2 * math.pi * j / 96 - math.pi
            rr = r * (1 - 0.2 * math.exp(-((t / 0.42) ** 2)) - 0.06 * math.exp(-(((abs(t) - math.pi) / 0.4) ** 2)))
            outline.append((cx + 1.06 * rr * math.sin(t), cy - rr * math.cos(t)))
        pen.line([(cx, cy - 0.7 * r), (cx + 0.12 * r, cy - 1.18 * r)], stem, max(1.5, 0.12 * r))
        pen.poly(outline, fill=(220, 38, 38), outline=(153, 27, 27), width=max(1, 0.06 * r))
        pen.oval((cx - 0.62 * r, cy - 0.5 * r, cx - 0.3 * r, cy - 0.05 * r), fill=(248, 113, 113))
        _leaf(pen, cx + 0.1 * r, cy - 1.0 * r, 0.62 * r, -25)
    elif kind == "orange":
        pen.circle(cx, cy, r, fill=(249, 115, 22), outline=(194, 65, 12), width=max(1, 0.06 * r))
        for ox, oy in ((-0.4, -0.2), (0.3, 0.35), (0.1, -0.45), (-0.2, 0.45), (0.5, -0.05), (-0.55, 0.2)):
            pen.circle(cx + ox * r, cy + oy * r, max(0.8, 0.05 * r), fill=(251, 146, 60))
        pen.oval((cx - 0.6 * r, cy - 0.6 * r, cx - 0.25 * r, cy - 0.2 * r), fill=(253, 186, 116))
        pen.circle(cx, cy - 0.92 * r, max(1, 0.1 * r), fill=(101, 163, 13))
        _leaf(pen, cx, cy - 0.92 * r, 0.55 * r, -35)
    else:  # pear
        top, bottom = (cx, cy - 0.45 * r, 0.45 * r), (cx, cy + 0.28 * r, 0.78 * r)
        pts = [
            (x + rr * math.cos(t), y + rr * math.sin(t))
            for x, y, rr in (top, bottom)
            for t in (k * math.pi / 36 for k in range(72))
        ]
        pen.line([(cx, cy - 0.8 * r), (cx + 0.1 * r, cy - 1.15 * r)], stem, max(1.5, 0.1 * r))
        pen.poly(_hull(pts), fill=(163, 201, 64), outline=(101, 132, 28), width=max(1, 0.06 * r))
        pen.oval((cx - 0.55 * r, cy + 0.0 * r, cx - 0.25 * r, cy + 0.45 * r), fill=(205, 228, 140))
        _leaf(pen, cx + 0.08 * r, cy - 1.0 * r, 0.5 * r, -20)


def draw_fruit(pen: Pen, d: dict) -> None:
    count, kind = d["count"], d["fruit"]
    shown = min(count, 30)  # more would be specks; the caption carries the exact count
    top, width, height = 60, W - 48, 178
    rows = max(range(1, 6), key=lambda n: min(width / math.ceil(shown / n), height / n))
    cols = math.ceil(shown / rows)
    cell = min(width / cols, height / rows)
    r = min(cell / 2.5, 52)
    for i in range(shown):
        row, col = divmod(i, cols)
        in_row = min(cols, shown - row * cols)
        x = W / 2 + (col - (in_row - 1) / 2) * cell
        y = top + height / 2 + (row - (rows - 1) / 2) * cell + 0.1 * r
        draw_fruit_one(pen, kind, x, y, r)
    noun = kind + ("s" if count != 1 else "")
    counted = f"{count} {noun}" + (f" ({shown} shown)" if shown < count else "")
    if d["label"]:
        _caption(pen, d["label"], 258)
        pen.text(W / 2, 283, counted, 12, pen.pal.muted, "mm")
    else:
        _caption(pen, counted, 268)


# --- icons (s: half the symbol's size) --------------------------------------------------------------------

GOLD, GOLD_DARK, SKY, SAND = (234, 179, 8), (161, 98, 7), (125, 211, 252), (253, 224, 150)


def _star(cx: float, cy: float, r: float) -> list[Point]:
    return [(cx + (r if k % 2 == 0 else r * 0.45) * math.sin(k * math.pi / 5),
             cy - (r if k % 2 == 0 else r * 0.45) * math.cos(k * math.pi / 5)) for k in range(10)]  # fmt: skip


def _icon(pen: Pen, symbol: str, cx: float, cy: float, s: float) -> None:
    pal, ink, a0, a1 = pen.pal, pen.pal.ink, pen.pal.accent(0), pen.pal.accent(1)

    def at(points: Iterable[Point], deg: float = 0) -> list[Point]:
        return _rot([(x * s, y * s) for x, y in points], cx, cy, deg)

    if symbol == "heart":
        t = [2 * math.pi * k / 96 for k in range(96)]
        pts = [
            (
                16 * math.sin(v) ** 3 / 17,
                -(13 * math.cos(v) - 5 * math.cos(2 * v) - 2 * math.cos(3 * v) - math.cos(4 * v)) / 17,
            )
            for v in t
        ]
        pen.poly(at(pts), fill=(225, 29, 72), outline=(159, 18, 57), width=3)
        pen.line(at([(-0.45, -0.35), (-0.25, -0.12), (-0.05, -0.35), (0.1, 0.05), (0.3, -0.2), (0.55, -0.2)]), WHITE, 4)
    elif symbol == "pill":
        end = [(0.5 + 0.32 * math.sin(math.radians(d)), -0.32 * math.cos(math.radians(d))) for d in range(0, 181, 10)]
        for sign, colour in ((-1, a0), (1, WHITE)):  # the two halves of a capsule
            pen.poly(
                at([(0, -0.32), *[(sign * x, y) for x, y in end], (0, 0.32)], -40), fill=colour, outline=ink, width=3
            )
        pen.line(at([(-0.6, -0.16), (-0.2, -0.16)], -40), _mix(a0, WHITE, 0.5), 4)
    elif symbol == "plane":
        half = [
            (0, -1),
            (0.09, -0.9),
            (0.11, -0.3),
            (0.95, 0.12),
            (0.95, 0.28),
            (0.11, 0.1),
            (0.09, 0.62),
            (0.36, 0.84),
            (0.36, 0.96),
            (0, 0.88),
        ]
        pen.poly(at(half + [(-x, y) for x, y in reversed(half)], 45), fill=a0, outline=ink, width=2.5)
    elif symbol == "mountain":
        pen.circle(cx + 0.5 * s, cy - 0.55 * s, 0.2 * s, fill=GOLD)
        for peak, base, colour in (((0.35, -0.3), (-0.15, 0.85), a1), ((-0.25, -0.75), (-1.0, 0.5), a0)):
            px, py = peak
            left, right = (base[0], 0.7), (2 * px - base[0], 0.7)
            pen.poly(at([left, peak, right]), fill=colour, outline=ink, width=2.5)
            k = 0.32  # snow cap: the top third of the peak, with a zigzag edge
            l_pt, r_pt = (px + (left[0] - px) * k, py + (0.7 - py) * k), (px + (right[0] - px) * k, py + (0.7 - py) * k)
            pen.poly(
                at([l_pt, peak, r_pt, (px + 0.06, r_pt[1] - 0.05), (px - 0.04, r_pt[1] + 0.04)]),
                fill=WHITE,
                outline=ink,
                width=1.5,
            )
        pen.line(at([(-0.95, 0.7), (0.95, 0.7)]), ink, 3)
    elif symbol == "beach":
        pen.rect((cx - 0.95 * s, cy - 0.95 * s, cx + 0.95 * s, cy + 0.2 * s), fill=SKY, radius=8)
        pen.circle(cx + 0.55 * s, cy - 0.55 * s, 0.2 * s, fill=GOLD)
        pen.rect((cx - 0.95 * s, cy + 0.2 * s, cx + 0.95 * s, cy + 0.55 * s), fill=(37, 99, 235))
        pen.rect((cx - 0.95 * s, cy + 0.5 * s, cx + 0.95 * s, cy + 0.95 * s), fill=SAND, radius=8)
        pen.line(at([(-0.1, -0.3), (0.15, 0.75)]), ink, 3)
        box = (cx - 0.75 * s, cy - 0.7 * s, cx + 0.55 * s, cy + 0.1 * s)
        for k in range(5):  # striped umbrella
            pen.pie(box, 180 + k * 36, 216 + k * 36, fill=(220, 38, 38) if k % 2 == 0 else WHITE, outline=ink, width=2)
        pen.line(at([(-0.9, 0.35), (-0.6, 0.3), (-0.3, 0.35)]), WHITE, 2)
    elif symbol == "film":
        pen.rect((cx - 0.95 * s, cy - 0.6 * s, cx + 0.95 * s, cy + 0.6 * s), fill=DARK, radius=6)
        for k in range(8):
            x = cx + (-0.8 + k * 0.23) * s
            for y in (-0.5, 0.38):
                pen.rect((x - 0.06 * s, cy + y * s, x + 0.06 * s, cy + (y + 0.12) * s), fill=WHITE, radius=2)
        for k in range(3):
            x = cx + (-0.62 + k * 0.62) * s
            pen.rect((x - 0.27 * s, cy - 0.3 * s, x + 0.27 * s, cy + 0.3 * s), fill=_mix(pal.accent(k), WHITE, 0.3))
        pen.poly(at([(-0.1, -0.16), (0.16, 0), (-0.1, 0.16)]), fill=WHITE)
    elif symbol == "music":
        for hx, hy in ((-0.45, 0.55), (0.5, 0.4)):
            pen.poly(at([(hx + x, hy + y) for x, y in _ellipse(0.24, 0.17)], 0), fill=ink)
            pen.line(at([(hx + 0.2, hy), (hx + 0.2, hy - 1.05)]), ink, 5)
        pen.poly(at([(-0.25 - 0.02, -0.55), (0.7 + 0.02, -0.7), (0.72, -0.48), (-0.27, -0.33)]), fill=ink)
    elif symbol == "atom":
        for deg in (0, 60, 120):
            orbit = at(_ellipse(0.95, 0.34), deg)
            pen.line([*orbit, orbit[0]], a0, 4)
            ex, ey = at([(0.95, 0)], deg)[0]
            pen.circle(ex, ey, 0.08 * s, fill=a1)
        pen.circle(cx, cy, 0.16 * s, fill=(225, 29, 72))
    elif symbol == "rocket":
        deg = 40
        pen.poly(at([(0, 0.55), (0.16, 0.95), (-0.16, 0.95)], deg), fill=GOLD)
        pen.poly(at([(0, 0.6), (0.08, 0.85), (-0.08, 0.85)], deg), fill=(234, 88, 12))
        for side in (-1, 1):
            pen.poly(
                at([(side * 0.2, 0.15), (side * 0.45, 0.62), (side * 0.2, 0.55)], deg), fill=a1, outline=ink, width=2
            )
        nose = [
            (0.24 * math.sin(math.radians(d)), -0.98 + 0.7 * (1 - math.cos(math.radians(d)))) for d in range(0, 91, 10)
        ]
        body = [*nose, (0.24, 0.55), (-0.24, 0.55), *[(-x, y) for x, y in reversed(nose)]]
        pen.poly(at(body, deg), fill=WHITE, outline=ink, width=2.5)
        wx, wy = at([(0, -0.2)], deg)[0]
        pen.circle(wx, wy, 0.12 * s, fill=a0, outline=ink, width=2)
    elif symbol == "globe":
        r = 0.88 * s
        pen.circle(cx, cy, r, fill=_mix(SKY, WHITE, 0.3), outline=ink, width=3)
        for k in (0.35, 0.72):
            pen.oval((cx - k * r, cy - r, cx + k * r, cy + r), outline=ink, width=2)
        pen.line([(cx, cy - r), (cx, cy + r)], ink, 2)
        for y in (-0.5, 0, 0.5):
            half = math.sqrt(1 - y * y) * r
            pen.line([(cx - half, cy + y * r), (cx + half, cy + y * r)], ink, 2)
    elif symbol == "coin":
        for k in range(3):
            y = cy + (0.75 - k * 0.16) * s
            pen.oval((cx - 0.85 * s, y - 0.16 * s, cx - 0.05 * s, y + 0.16 * s), fill=GOLD, outline=GOLD_DARK, width=2)
        pen.circle(cx + 0.22 * s, cy - 0.12 * s, 0.66 * s, fill=GOLD, outline=GOLD_DARK, width=3)
        pen.circle(cx + 0.22 * s, cy - 0.12 * s, 0.5 * s, outline=GOLD_DARK, width=2)
        pen.text(cx + 0.22 * s, cy - 0.12 * s, "$", 0.8 * s, GOLD_DARK, "mm")
    elif symbol == "ball":  # a basketball: its seams stay inside the ball
        r = 0.85 * s
        pen.circle(cx, cy, r, fill=(234, 88, 12), outline=ink, width=3)
        pen.line([(cx, cy - r), (cx, cy + r)], ink, 3)
        pen.line([(cx - r, cy), (cx + r, cy)], ink, 3)
        for side in (-1, 1):
            seam = [
                (
                    cx + side * (1.25 * r - 0.95 * r * math.cos(math.radians(d))),
                    cy + 0.95 * r * math.sin(math.radians(d)),
                )
                for d in range(-48, 49, 6)
            ]
            pen.line(seam, ink, 3)
    elif symbol == "trophy":
        for side in (-1, 1):
            pen.arc(
                (cx + side * 0.55 * s - 0.25 * s, cy - 0.7 * s, cx + side * 0.55 * s + 0.25 * s, cy - 0.1 * s),
                -90 if side > 0 else 90,
                90 if side > 0 else 270,
                GOLD_DARK,
                5,
            )
        pen.rect((cx - 0.6 * s, cy - 0.85 * s, cx + 0.6 * s, cy - 0.55 * s), fill=GOLD, outline=GOLD_DARK, width=2)
        pen.pie((cx - 0.6 * s, cy - 1.0 * s, cx + 0.6 * s, cy + 0.2 * s), 0, 180, fill=GOLD, outline=GOLD_DARK, width=2)
        pen.rect((cx - 0.09 * s, cy + 0.18 * s, cx + 0.09 * s, cy + 0.5 * s), fill=GOLD_DARK)
        pen.rect(
            (cx - 0.38 * s, cy + 0.48 * s, cx + 0.38 * s, cy + 0.64 * s),
            fill=GOLD,
            outline=GOLD_DARK,
            width=2,
            radius=3,
        )
        pen.rect((cx - 0.5 * s, cy + 0.62 * s, cx + 0.5 * s, cy + 0.82 * s), fill=DARK, radius=3)
        pen.poly(_star(cx, cy - 0.45 * s, 0.22 * s), fill=WHITE)
    elif symbol == "house":
        pen.rect((cx + 0.32 * s, cy - 0.78 * s, cx + 0.52 * s, cy - 0.3 * s), fill=_mix(a1, BLACK, 0.2))
        pen.rect((cx - 0.62 * s, cy - 0.12 * s, cx + 0.62 * s, cy + 0.8 * s), fill=WHITE, outline=ink, width=3)
        pen.poly(at([(-0.82, -0.05), (0, -0.85), (0.82, -0.05)]), fill=a0, outline=ink, width=3)
        pen.rect((cx - 0.15 * s, cy + 0.3 * s, cx + 0.15 * s, cy + 0.8 * s), fill=a1, outline=ink, width=2)
        for wx in (-0.4, 0.4):
            pen.rect(
                (cx + (wx - 0.14) * s, cy + 0.08 * s, cx + (wx + 0.14) * s, cy + 0.36 * s),
                fill=SKY,
                outline=ink,
                width=2,
            )
    elif symbol == "wave":
        for k in range(4):
            y0 = -0.55 + k * 0.36
            pts = [(x / 20 - 0.95, y0 + 0.13 * math.sin((x / 20) * 2 * math.pi * 1.1 + k)) for x in range(39)]
            pen.line(at(pts), _mix(pal.accent(2) if pal.accent(2) != a0 else a0, WHITE, k * 0.18), 7)
    elif symbol == "leaf":
        blade = [(t - 0.9, math.sin(math.pi * t / 1.8) * 0.42) for t in (k * 1.8 / 24 for k in range(25))]
        blade += [(x, -y) for x, y in reversed(blade[1:-1])]
        pen.line(at([(-1.05, 0), (-0.9, 0)], -35), (21, 128, 61), 4)
        pen.poly(at(blade, -35), fill=(34, 197, 94), outline=(21, 128, 61), width=3)
        pen.line(at([(-0.9, 0), (0.85, 0)], -35), (187, 247, 208), 3)
        for x in (-0.5, -0.15, 0.2, 0.5):
            for side in (-1, 1):
                pen.line(at([(x, 0), (x + 0.18, side * 0.24)], -35), (187, 247, 208), 2)
    elif symbol == "chip":
        _chip(pen, cx, cy, s / 95, 0)
    else:  # robot
        _robot(pen, cx, cy + 0.05 * s, s / 105, 0)


def draw_icon(pen: Pen, d: dict) -> None:
    pen.rect((W / 2 - 95, 56, W / 2 + 95, 246), fill=_mix(pen.pal.accent(0), WHITE, 0.86), radius=28)
    _icon(pen, d["symbol"], W / 2, 151, 78)
    _caption(pen, d["label"])


# --- build -----------------------------------------------------------------------------------------------

DRAWERS: dict[str, Callable[[Pen, dict], None]] = {
    "bar": draw_bar, "line": draw_line, "pie": draw_pie, "scoreboard": draw_scoreboard,
    "map": draw_map, "product": draw_product, "fruit": draw_fruit, "icon": draw_icon,
}  # fmt: skip


def render(spec: Spec) -> Image.Image:
    """The spec's picture: 480x300, palette mode."""
    pen = Pen(PALETTES[spec.category])
    DRAWERS[spec.kind](pen, spec.data)
    _header(pen, spec)  # last, so nothing drawn near the top edge (the map) covers the title
    return pen.finish()


def png_bytes(spec: Spec) -> bytes:
    buf = io.BytesIO()
    render(spec).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def build(art: Path, out: Path, only: list[str] | None = None) -> dict[str, int]:
    """Render the specs of `art` (or just `only`) into `out`; -> {id: bytes written}. Checks everything first."""
    if not art.is_file():
        raise SpecError(f"no art file at {art}")
    specs, errors = load_specs(art)
    if only:
        known = {spec.id for spec in specs}
        errors += [
            f"--only {spec_id!r}: no spec with this id in {art.name}" for spec_id in only if spec_id not in known
        ]
        specs = [spec for spec in specs if spec.id in set(only)]
    if errors:
        raise SpecError("\n".join(errors))
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for spec in specs:
        data = png_bytes(spec)
        (out / f"{spec.id}.png").write_bytes(data)
        written[spec.id] = len(data)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--art", type=Path, default=HERE / "demo" / "art.jsonl", help="image specs, one JSON per line")
    parser.add_argument("--out", type=Path, default=HERE / "demo" / "images", help="folder for <id>.png")
    parser.add_argument("--only", nargs="+", metavar="ID", help="render just these spec ids")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        written = build(args.art, args.out, args.only)
    except SpecError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    size = f"{sum(written.values()) / 1024:.0f} KiB, largest {max(written.values(), default=0) / 1024:.1f} KiB"
    print(f"rendered {len(written)} images into {args.out} ({size}) in {seconds:.1f} s")
    stale = sorted(p.name for p in args.out.glob("*.png") if p.stem not in written) if not args.only else []
    if stale:  # left for a person to delete: the folder may hold pictures from elsewhere
        print(f"note: {len(stale)} PNG(s) in {args.out} have no spec: {', '.join(stale[:10])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
