"""assets/build_demo_images.py: every kind draws a real, small, deterministic picture; bad specs fail by name."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "assets" / "build_demo_images.py"
DEMO = REPO / "assets" / "demo"


def _load_script():
    spec = importlib.util.spec_from_file_location("build_demo_images", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bdi = _load_script()


def _spec(spec_id: str, kind: str, data: dict, category: str = "tech", title: str = "A sample picture") -> dict:
    return {"id": spec_id, "kind": kind, "title": title, "category": category, "data": data}


SAMPLES = [
    _spec("bar", "bar", {"labels": ["Q1", "Q2", "Q3", "Q4"], "values": [120.5, 180, 240, 310], "unit": "units"}),
    _spec("bar-neg", "bar", {"labels": ["A", "B", "C"], "values": [12.5, -3.2, 40], "unit": "%"}, "finance"),
    _spec("line", "line", {"x": ["Mon", "Tue", "Wed", "Thu"], "y": [61200, 62850, 60100, 63400], "unit": "USD"}),
    _spec("line-long", "line", {"x": [str(y) for y in range(1990, 2025)], "y": [i % 7 * 0.1 for i in range(35)]}),
    _spec("pie", "pie", {"labels": ["Samsung", "Apple", "Others"], "values": [20, 18, 62]}),
    _spec("score", "scoreboard", {"home": "LAL", "away": "GSW", "home_score": 112, "away_score": 108, "note": "Final"}),
    *[
        _spec(f"map-{m}", "map", {"place": "Tokyo", "lat": 35.68, "lon": 139.69, "marker": m}, "world")
        for m in bdi.MARKERS
    ],
    _spec("map-pole", "map", {"place": "McMurdo Station", "lat": -77.85, "lon": 166.67}, "science"),
    *[_spec(f"product-{s}", "product", {"shape": s, "label": f"The new {s}"}, "autos") for s in bdi.PRODUCTS],
    *[_spec(f"fruit-{f}", "fruit", {"fruit": f, "count": 3, "label": "Fresh"}, "health") for f in bdi.FRUITS],
    _spec("fruit-many", "fruit", {"fruit": "apple", "count": 45}, "health"),
    *[_spec(f"icon-{s}", "icon", {"symbol": s, "label": f"About {s}"}, "travel") for s in bdi.SYMBOLS],
]


def _rgb(spec: dict) -> np.ndarray:
    return np.asarray(bdi.render(bdi.parse_spec(spec)).convert("RGB")).astype(int)  # (H, W, 3)


def _near(img: np.ndarray, colour, tol: int = 24) -> np.ndarray:
    return np.abs(img - np.array(colour)).sum(axis=2) <= tol  # (H, W) bool


def test_sample_specs_cover_every_kind_and_option():
    kinds = {s["kind"] for s in SAMPLES}
    assert kinds == set(bdi.FIELDS)
    assert {s["data"]["symbol"] for s in SAMPLES if s["kind"] == "icon"} == set(bdi.SYMBOLS)


@pytest.mark.parametrize("raw", SAMPLES, ids=[s["id"] for s in SAMPLES])
def test_each_spec_renders_a_small_real_png(raw):
    data = bdi.png_bytes(bdi.parse_spec(raw))
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) <= 25 * 1024
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size == (480, 300)
    rgb = np.asarray(img.convert("RGB")).astype(np.int32)
    packed = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]  # (H, W) one int per colour
    assert len(np.unique(packed)) >= 8, "a flat picture"
    _, body_counts = np.unique(packed[bdi.HEADER + 4 :], return_counts=True)  # below the title band
    assert body_counts.max() / body_counts.sum() < 0.93, "the area under the title is (almost) empty"
    assert data == bdi.png_bytes(bdi.parse_spec(raw)), "same spec, different bytes"


def test_bar_heights_follow_the_values():
    pal = bdi.PALETTES["tech"]
    img = _rgb(_spec("b", "bar", {"labels": ["small", "big"], "values": [10, 40]}))
    small, big = _near(img, pal.accent(0)).sum(), _near(img, pal.accent(1)).sum()
    assert big / small == pytest.approx(4, rel=0.1)


def test_pie_slices_follow_the_values():
    pal = bdi.PALETTES["sports"]
    img = _rgb(_spec("p", "pie", {"labels": ["a", "b"], "values": [75, 25]}, "sports"))
    a, b = _near(img, pal.accent(0)).sum(), _near(img, pal.accent(1)).sum()
    assert a / b == pytest.approx(3, rel=0.15)  # the % labels and legend swatches blur it a little
    assert a + b == pytest.approx(np.pi * 104**2, rel=0.1)  # together they fill the whole disc


@pytest.mark.parametrize("count", [1, 4, 7, 12])
def test_fruit_count_is_the_number_of_apples_drawn(count):
    img = _rgb(_spec("f", "fruit", {"fruit": "apple", "count": count}, "world"))
    body = _near(img, (220, 38, 38), tol=30) | _near(img, (248, 113, 113), tol=30)  # red skin and its highlight
    labels, n = ndimage.label(body)
    sizes = ndimage.sum(body, labels, range(1, n + 1))
    assert (sizes > 200).sum() == count


def test_map_locator_dot_moves_with_longitude():
    def red_x(lon: float) -> float:
        img = _rgb(_spec("m", "map", {"place": "Somewhere", "lat": 0, "lon": lon}, "world"))
        inset = _near(img[50:110, 368:468], (220, 38, 38), tol=60)  # the world locator box, top right
        return np.nonzero(inset)[1].mean()

    assert red_x(-170) < 20 < 80 < red_x(170)


def test_battery_level_sets_the_fill_colour():
    green, red = (22, 163, 74), (220, 38, 38)
    full = _rgb(_spec("b", "product", {"shape": "battery", "label": "Battery at 90%"}, "science"))
    low = _rgb(_spec("b", "product", {"shape": "battery", "label": "x", "level": 10}, "science"))
    assert _near(full, green).sum() > 5000 and _near(full, red).sum() < 200
    assert _near(low, red).sum() > 300 and _near(low, green).sum() < 200


def test_title_and_category_change_the_picture():
    base = SAMPLES[0]
    first = bdi.png_bytes(bdi.parse_spec(base))
    assert bdi.png_bytes(bdi.parse_spec({**base, "title": "Another title"})) != first
    assert bdi.png_bytes(bdi.parse_spec({**base, "category": "health"})) != first


def _broken(**changes) -> dict:
    raw = json.loads(json.dumps(SAMPLES[0]))
    raw["id"] = "n042"
    for key, value in changes.items():
        if key.startswith("data_"):
            raw["data"][key[5:]] = value
        else:
            raw[key] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (_broken(kind="histogram"), "kind"),
        (_broken(category="weather"), "category"),
        (_broken(title="Caf\u00e9 prices"), "title"),
        (_broken(title=""), "title"),
        (_broken(data=[1, 2]), "data"),
        (_broken(data_values=[1, 2, 3]), "data.values"),
        (_broken(data_values=[1, "two", 3, 4]), "data.values[1]"),
        (_broken(data_values=[1, True, 3, 4]), "data.values[1]"),
        (_broken(data_labels="Q1,Q2"), "data.labels"),
        (_broken(data_colour="red"), "data.colour"),
        (_broken(data_unit=5), "data.unit"),
        ({**_broken(), "kind": "product", "data": {"shape": "car", "label": "x", "level": 50}}, "data.level"),
        ({**_broken(), "kind": "pie", "data": {"labels": ["a"], "values": [0]}}, "data.values"),
        ({**_broken(), "kind": "map", "data": {"place": "X", "lat": 95, "lon": 0}}, "data.lat"),
        ({**_broken(), "kind": "map", "data": {"place": "X", "lat": 5, "lon": 0, "marker": "x"}}, "data.marker"),
        ({**_broken(), "kind": "fruit", "data": {"fruit": "apple", "count": 0}}, "data.count"),
        ({**_broken(), "kind": "fruit", "data": {"fruit": "apple", "count": 2.5}}, "data.count"),
        ({**_broken(), "kind": "icon", "data": {"symbol": "unicorn", "label": "x"}}, "data.symbol"),
        (
            {**_broken(), "kind": "scoreboard", "data": {"home": "LAL", "away": "GSW", "home_score": 1}},
            "data.away_score",
        ),
    ],
)
def test_bad_spec_names_its_id_and_field(raw, field):
    with pytest.raises(bdi.SpecError) as err:
        bdi.parse_spec(raw)
    assert "'n042'" in str(err.value) and f"{field} " in str(err.value)


@pytest.mark.parametrize("spec_id", ["", "../evil", "has space", None, 7])
def test_bad_id_is_refused(spec_id):
    with pytest.raises(bdi.SpecError, match="spec id"):
        bdi.parse_spec({**SAMPLES[0], "id": spec_id})


def _write_art(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def test_cli_renders_all_or_only_some(tmp_path, capsys):
    art = _write_art(tmp_path / "art.jsonl", SAMPLES[:5])
    out = tmp_path / "images"
    assert bdi.main(["--art", str(art), "--out", str(out), "--only", "pie", "line"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["line.png", "pie.png"]
    (out / "gone.png").write_bytes(b"old")
    assert bdi.main(["--art", str(art), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "rendered 5 images" in printed.out
    assert "1 PNG(s)" in printed.err and "gone.png" in printed.err  # a picture with no spec is pointed out
    (out / "gone.png").unlink()
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert len(first) == 5
    assert bdi.main(["--art", str(art), "--out", str(out)]) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_cli_reports_every_bad_line_and_writes_nothing(tmp_path):
    bad_values = {**SAMPLES[1], "id": "n007", "data": {**SAMPLES[1]["data"], "values": [1, 2]}}
    art = _write_art(tmp_path / "art.jsonl", [SAMPLES[0], bad_values, "{not json", SAMPLES[0]])
    out = tmp_path / "images"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--art", str(art), "--out", str(out)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 1
    assert "line 2: spec 'n007': data.values has 2 items but data.labels has 3" in run.stderr
    assert "line 3: invalid JSON" in run.stderr
    assert "line 4: spec 'bar' repeats the id of line 1" in run.stderr
    assert "Traceback" not in run.stderr
    assert not out.exists()


def test_cli_unknown_only_id_and_missing_art(tmp_path, capsys):
    art = _write_art(tmp_path / "art.jsonl", SAMPLES[:1])
    assert bdi.main(["--art", str(art), "--out", str(tmp_path / "o"), "--only", "n999"]) == 1
    assert "'n999'" in capsys.readouterr().err
    assert bdi.main(["--art", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")]) == 1
    assert "no art file" in capsys.readouterr().err


def test_committed_demo_images_match_art():
    """The shipped art.jsonl is valid and every spec has its picture; the folder stays small."""
    art = DEMO / "art.jsonl"
    if not art.exists():
        pytest.skip("assets/demo/art.jsonl is not there yet")
    specs, errors = bdi.load_specs(art)
    assert errors == []
    images = DEMO / "images"
    missing = [s.id for s in specs if not (images / f"{s.id}.png").is_file()]
    assert missing == [], "run: python assets/build_demo_images.py"
    assert sum(p.stat().st_size for p in images.glob("*.png")) < 8 * 1024 * 1024
    for spec in specs[:: max(1, len(specs) // 10)]:
        with Image.open(images / f"{spec.id}.png") as img:
            assert img.size == (480, 300)
