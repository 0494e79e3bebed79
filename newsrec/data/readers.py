"""Readers for the formats `ingest` understands; each turns one source into a `Batch` of news, users and
impressions plus a per-row list of problems (file, line, reason) instead of stopping at the first bad row.

Formats:
- tables (jsonl / csv / parquet): one NewsItem per row with the columns of the corpus format
  (id, title, body, category, subcategory, language, published_at, source, url, images) plus optional
  `image` / `image_caption`; `--map field=column` renames columns. In CSV, `images` is `|`-separated.
- mind: MIND `news.tsv` (+ `behaviors.tsv` with or without the time column, + NeMig's `news_meta.tsv`).
- newsimages: MediaEval NewsImages `articles.csv` + `images/<image_id>.jpg`; tags go into the body.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from newsrec.data import limits
from newsrec.data.corpus import impression_from_dict, parse_time, user_from_dict
from newsrec.data.media import publish_image
from newsrec.data.source import text_lines, too_large
from newsrec.errors import InputError
from newsrec.images import check_image
from newsrec.types import ImageRef, Impression, NewsItem, User

REQUIRED_FIELDS = ("id", "title")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
_URL_DATE = re.compile(r"/(20\d\d|19\d\d)[/-](\d{1,2})[/-](\d{1,2})(?:/|$)")
_DATE_FORMATS = ("%d.%m.%Y", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y", "%Y-%m-%d %H:%M:%S")
csv.field_size_limit(16 * 1024 * 1024)  # article bodies can exceed the csv module's 128 KiB default


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based line (or row) in `file`; 0 = the file as a whole
    reason: str


@dataclass
class ReadOptions:
    images_dir: Path | None = None  # where relative image paths (and NewsImages' image files) are looked up
    max_images: int = 3
    mapping: dict[str, str] = field(default_factory=dict)  # corpus field -> source column
    allow_remote_images: bool = False
    media_dir: Path | None = None  # the corpus's media folder: checked pictures are copied there (media.py)


@dataclass
class Batch:
    """What one ingest read: later rows win over earlier ones with the same id."""

    news: dict[str, NewsItem] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    impressions: dict[str, Impression] = field(default_factory=dict)
    rows_read: int = 0
    problems: list[Problem] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)  # news id -> line it was first read from

    def problem(self, file: str | Path, line: int, reason: str) -> None:
        self.problems.append(Problem(str(file), line, reason))

    def add_news(self, item: NewsItem, file: str | Path, line: int) -> None:
        """Add a row's item after the limits (limits.py): bad ids skip the row, long or dirty text is repaired."""
        cleaned, notes = limits.clean_item(item)
        for note in notes:
            self.problem(file, line, note)
        if cleaned is None:
            return
        item = cleaned
        if item.id in self.news:
            self.problem(file, line, f"duplicate id {item.id!r} (first on line {self._seen[item.id]}); last one kept")
        else:
            self._seen[item.id] = line
        self.news[item.id] = item


# --- small value helpers -----------------------------------------------------------------------


def text(value) -> str:
    """A cell as stripped text; None, NaN and pandas' NA become ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if type(value).__name__ in ("NAType", "NaTType"):
        return ""
    return str(value).strip()


def guess_language(title: str) -> str:
    return "zh" if _CJK.search(title) else "en"


def parse_date(value) -> datetime | None:
    """ISO 8601, epoch seconds, dd.mm.yyyy (NeMig) or MIND's 11/15/2019 8:55:22 AM; naive = UTC."""
    if not text(value):  # None, NaN, NA and NaT (which claims to be a datetime)
        return None
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return parse_time(value)
    raw = text(value)
    if re.fullmatch(r"\d{9,11}(\.\d+)?", raw):
        return parse_time(float(raw))
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return parse_time(raw)


def date_from_url(url: str) -> datetime | None:
    """Many news URLs carry their publication day (/2023/07/19/); better than no date for freshness."""
    match = _URL_DATE.search(url)
    if not match:
        return None
    try:
        return datetime(*map(int, match.groups()), tzinfo=timezone.utc)
    except ValueError:
        return None


def decode_file(path: Path, batch: Batch) -> Iterator[tuple[int, str]]:
    """The file's lines, streamed (source.py): (1-based number, text with its line ending). UTF-8 (with or
    without BOM), UTF-16 with BOM, else GB18030 (common for Chinese exports); a UTF-8 file with a few broken
    lines keeps its lines, with the bad bytes replaced and reported. The byte cap is enforced as it streams."""
    return text_lines(path, batch)


# --- images ------------------------------------------------------------------------------------


class ImageResolver:
    """Turns image cells into checked ImageRefs: local files are decoded once (cached by path) and dropped
    with a reported reason when unusable; http(s) URLs are kept only when remote images are allowed.

    Local paths must stay inside the source folder (the folder of the file read, or --images): absolute
    paths, `..` and symlinks are resolved first. A path that leaves the folder, does not exist or is not a
    file gets one and the same message, so ingest cannot be used to probe which files exist elsewhere.
    Usable pictures are copied into the corpus's media folder and referenced from there.
    """

    def __init__(self, options: ReadOptions, batch: Batch):
        self.options, self.batch = options, batch
        self._checked: dict[Path, str | None] = {}
        self._published: dict[Path, str] = {}
        self.remote_dropped = 0

    def check(self, path: Path) -> str | None:
        if path not in self._checked:
            self._checked[path] = check_image(path)
        return self._checked[path]

    def resolve(self, raw: list[tuple[str, str]], base: Path, file: Path, line: int) -> list[ImageRef]:
        images: list[ImageRef] = []
        for uri, caption in raw:
            if len(images) >= self.options.max_images:
                break
            if "://" in uri or uri.startswith("data:"):
                scheme = uri.split(":", 1)[0].lower()
                if scheme not in ("http", "https"):
                    self.batch.problem(file, line, f"image {uri[:80]!r}: only http(s) URLs are allowed (dropped)")
                elif self.options.allow_remote_images:
                    images.append(ImageRef(uri, caption))
                else:
                    self.remote_dropped += 1
                continue
            path = self.locate(uri, base)
            if path is None:
                self.batch.problem(file, line, f"image {uri[:200]}: no such file inside the source folder (dropped)")
                continue
            reason = self.check(path)
            if reason:
                self.batch.problem(file, line, f"image {uri[:200]}: {reason} (dropped)")
            else:
                images.append(ImageRef(self.publish(path), caption))
        return images

    def roots(self, base: Path) -> list[Path]:
        return [root.resolve() for root in (self.options.images_dir, base) if root is not None]

    def locate(self, uri: str, base: Path) -> Path | None:
        """The real path of a file inside the source folder(s) that `uri` names, or None."""
        roots = self.roots(base)
        path = Path(uri)
        for candidate in [path] if path.is_absolute() else [root / path for root in roots]:
            try:
                real = candidate.resolve()  # follows every symlink, so a link cannot lead outside
            except (OSError, RuntimeError):  # a symlink loop, an unreadable folder
                continue
            if any(real.is_relative_to(root) for root in roots) and real.is_file():
                return real
        return None

    def publish(self, path: Path) -> str:
        if self.options.media_dir is None:  # reading without a corpus to write (tests, tools)
            return str(path)
        if path not in self._published:
            self._published[path] = publish_image(path, self.options.media_dir)
        return self._published[path]

    def by_id(self, news_id: str) -> list[tuple[str, str]]:
        """<images_dir>/<id>.<ext> for rows that name no image (used by MIND and tables with --images)."""
        if self.options.images_dir is None:
            return []
        for suffix in IMAGE_SUFFIXES:
            candidate = self.options.images_dir / f"{news_id}{suffix}"
            if candidate.is_file():
                return [(str(candidate.resolve()), "")]
        return []

    def report_remote(self, file: Path) -> None:
        if self.remote_dropped:
            self.batch.problem(
                file,
                0,
                f"{self.remote_dropped} remote image URLs dropped: remote images are off (--allow-remote-images)",
            )
            self.remote_dropped = 0


def image_cells(row: dict) -> list[tuple[str, str]]:
    """(uri, caption) pairs from `images` (a list, JSON text or `|`-separated paths) and `image`/`image_caption`."""
    pairs: list[tuple[str, str]] = []
    value = row.get("images")
    if hasattr(value, "tolist"):  # numpy array from parquet
        value = value.tolist()
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith(("[", "{")):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as error:
                raise ValueError(f"images: not valid JSON ({error.msg})") from None
        else:
            value = stripped.split("|")
    if value is None or isinstance(value, float):  # absent, or NaN from a pandas column
        value = []
    if isinstance(value, dict):
        value = [value]
    for entry in value:
        if isinstance(entry, dict):
            uri = text(entry.get("uri") or entry.get("url") or entry.get("path"))
            caption = text(entry.get("caption"))
        else:
            uri, caption = text(entry), ""
        if uri:
            pairs.append((uri, caption))
    if text(row.get("image")):
        pairs.insert(0, (text(row["image"]), text(row.get("image_caption"))))
    return pairs


# --- tables: jsonl, csv, parquet ----------------------------------------------------------------


def apply_mapping(columns: list[str], mapping: dict[str, str], file: Path) -> dict[str, str]:
    """source column -> corpus field, after checking that every mapped column exists."""
    missing = [f"{target}={source}" for target, source in mapping.items() if source not in columns]
    if missing:
        raise InputError(f"{file}: --map names columns that are not there: {', '.join(missing)}; found: {columns}")
    renames = {source: target for target, source in mapping.items()}
    renamed = [renames.get(column, column) for column in columns]
    absent = [name for name in REQUIRED_FIELDS if name not in renamed]
    if absent:
        raise InputError(
            f"{file}: missing required column(s) {', '.join(absent)}; found: {', '.join(columns) or 'none'}. "
            "Rename them with --map, e.g. --map title=headline"
        )
    return renames


def iter_jsonl(path: Path, batch: Batch, count: bool = True) -> Iterator[tuple[int, dict]]:
    """JSON objects with their line number; `count` adds every non-empty line to batch.rows_read."""
    for number, line in decode_file(path, batch):
        if not line.strip():
            continue
        batch.rows_read += count
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            batch.problem(path, number, f"not valid JSON ({error.msg}); row skipped")
            continue
        except RecursionError:
            batch.problem(path, number, f"nested deeper than {limits.MAX_JSON_DEPTH} levels; row skipped")
            continue
        deep = limits.json_depth_problem(row)
        if deep:
            batch.problem(path, number, f"{deep}; row skipped")
            continue
        if not isinstance(row, dict):
            batch.problem(path, number, f"expected a JSON object, found {type(row).__name__}; row skipped")
            continue
        yield number, row


def read_csv(path: Path, batch: Batch, delimiter: str = ",") -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """(header, rows with the line each starts on), the rows streamed. The csv module rather than pandas, so that
    every bad row is reported with its line and skipped instead of failing or vanishing. Strict mode: a stray or
    unclosed quote is an error, never a title that silently swallows the rows after it. Recovery resumes at the
    line after the broken row's first line (a fresh parser, so the quote state is reset): the well-formed rows
    after it are kept. A row that spans lines and has the wrong number of columns counts as broken too.
    Hand-written: neither the csv module nor pandas resumes after an unclosed quote."""
    records = _csv_rows(path, batch, delimiter)
    header: list[str] = next(records)  # the generator yields the header first, then (line, row) pairs
    return header, records


def _csv_rows(path: Path, batch: Batch, delimiter: str) -> Iterator:
    """The header, then the rows. Only the lines of the record being parsed are held (`taken`): a broken
    record's lines after its first are fed again (`replay`) to a fresh parser."""
    source = decode_file(path, batch)
    replay: deque[tuple[int, str]] = deque()
    taken: list[tuple[int, str]] = []

    def feed() -> Iterator[str]:
        while True:
            if replay:
                item = replay.popleft()
            else:
                item = next(source, None)
                if item is None:
                    return
            taken.append(item)
            yield item[1]

    header: list[str] | None = None
    while True:
        reader = csv.reader(feed(), delimiter=delimiter, strict=True)
        while True:
            taken.clear()
            try:
                cells = next(reader)
            except StopIteration:
                if header is None:
                    yield []
                return
            except csv.Error as error:
                start = taken[0][0] if taken else 0
                batch.rows_read += header is not None
                batch.problem(path, start, f"malformed CSV ({error}; a stray or unclosed quote?): {_skipped(start)}")
                replay.extendleft(reversed(taken[1:]))
                break  # a fresh parser on the line after the broken row's first
            start, end = taken[0][0], taken[-1][0]
            if header is None:
                header = [cell.strip().lstrip("\ufeff") for cell in cells]
                yield header
                continue
            if not any(cell.strip() for cell in cells):
                continue
            batch.rows_read += 1
            if len(cells) != len(header) and end > start:  # an unclosed quote that closed somewhere later
                batch.problem(
                    path,
                    start,
                    f"expected {len(header)} columns across lines {start}-{end} "
                    f"(an unclosed quote?): {_skipped(start)}",
                )
                replay.extendleft(reversed(taken[1:]))
                break
            if len(cells) != len(header):
                batch.problem(path, start, f"expected {len(header)} columns, found {len(cells)}; row skipped")
                continue
            yield start, dict(zip(header, cells, strict=True))


def _skipped(line: int) -> str:
    return f"line {line} skipped, reading resumed at line {line + 1}"


def read_table(path: Path, fmt: str, options: ReadOptions, batch: Batch) -> None:
    """jsonl / csv / parquet news rows, then users.jsonl and impressions.jsonl next to the file."""
    if fmt == "parquet":
        columns, rows = _parquet_rows(path, batch)
    elif fmt == "csv":
        columns, rows = read_csv(path, batch, "\t" if path.suffix.lower() == ".tsv" else ",")
    else:
        columns, rows = _jsonl_rows(path, options, batch)
    renames = apply_mapping(columns, options.mapping, path)
    resolver = ImageResolver(options, batch)
    for line, raw in rows:
        row = {renames.get(key, key): value for key, value in raw.items()}
        try:
            item = news_from_row(row, path, line, resolver, batch)
        except (ValueError, TypeError, InputError) as error:
            batch.problem(path, line, f"{error}; row skipped")
            continue
        if item is not None:
            batch.add_news(item, path, line)
    resolver.report_remote(path)
    read_side_files(path.parent, batch)


def _jsonl_rows(path: Path, options: ReadOptions, batch: Batch) -> tuple[list[str], list[tuple[int, dict]]]:
    """Every key seen (the mapping is checked against them before any row is used), and the rows cut down to the
    fields a news item is made of: a JSONL file's columns are only known at its end, and what it carries beside
    them (raw HTML, entity lists, ...) is not held while the rest streams."""
    wanted = {*NEWS_FIELDS, *options.mapping.values()}
    columns: dict[str, None] = {}
    rows = []
    for number, row in iter_jsonl(path, batch):
        columns.update(dict.fromkeys(row))
        rows.append((number, {key: value for key, value in row.items() if key in wanted}))
    return list(columns), rows


def read_side_files(folder: Path, batch: Batch) -> None:
    """users.jsonl / impressions.jsonl next to a news table, in the corpus format (see corpus.py)."""
    for name, convert in (("users.jsonl", user_from_dict), ("impressions.jsonl", impression_from_dict)):
        path = folder / name
        if not path.is_file():
            continue
        target = batch.users if name == "users.jsonl" else batch.impressions
        for line, row in iter_jsonl(path, batch, count=False):
            try:
                record = convert(row)
            except (KeyError, ValueError, TypeError, InputError) as error:
                reason = f"missing field {error}" if isinstance(error, KeyError) else str(error)
                batch.problem(path, line, f"{reason}; row skipped")
                continue
            bad_id = limits.id_problem(record.id) or (
                limits.id_problem(record.user_id) if isinstance(record, Impression) else None
            )
            if bad_id:
                batch.problem(path, line, f"{bad_id}; row skipped")
                continue
            if isinstance(record, User):
                record.name, _ = limits.clean_text(record.name, "name", limits.MAX_SHORT, multiline=False)
                record.persona, notes = limits.clean_text(record.persona, "persona", limits.MAX_PERSONA, False)
                for note in notes:
                    batch.problem(path, line, note)
            if isinstance(record, Impression) and len(record.candidates) != len(record.labels):
                found = f"{len(record.candidates)} candidates but {len(record.labels)} labels"
                batch.problem(path, line, f"{found}; row skipped")
                continue
            if record.id in target:
                batch.problem(path, line, f"duplicate id {record.id!r}; last one kept")
            target[record.id] = record


def _parquet_rows(path: Path, batch: Batch) -> tuple[list[str], list[tuple[int, dict]]]:
    import pandas as pd

    from newsrec import config

    if path.stat().st_size > config.INGEST_MAX_FILE_BYTES:
        raise too_large(path, config.INGEST_MAX_FILE_BYTES)
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # noqa: BLE001 - pyarrow raises many types for a bad file; all mean the same
        raise InputError(f"{path}: not a readable Parquet file ({error})") from None
    batch.rows_read += len(frame)
    return [str(column) for column in frame.columns], list(enumerate(frame.to_dict("records"), 1))


TEXT_FIELDS = ("id", "title", "body", "category", "subcategory", "language", "source", "url", "published_at")
NEWS_FIELDS = (*TEXT_FIELDS, "images", "image", "image_caption", "labels")  # every column news_from_row reads


def news_from_row(row: dict, file: Path, line: int, resolver: ImageResolver, batch: Batch) -> NewsItem | None:
    for name in TEXT_FIELDS:
        limits.check_scalar(row.get(name), name)  # TypeError: the row is skipped with the reason
    news_id, title = text(row.get("id")), text(row.get("title"))
    if not news_id:
        batch.problem(file, line, "empty id; row skipped")
        return None
    if not title:
        batch.problem(file, line, f"empty title for id {news_id!r}; row skipped")
        return None
    published = None
    try:
        published = parse_date(row.get("published_at"))
    except InputError:
        batch.problem(file, line, f"unreadable published_at {text(row.get('published_at'))!r}; kept without a date")
    cells = image_cells(row) or resolver.by_id(news_id)
    return NewsItem(
        id=news_id,
        title=title,
        body=text(row.get("body")),
        category=text(row.get("category")),
        subcategory=text(row.get("subcategory")),
        language=text(row.get("language")) or guess_language(title),
        published_at=published,
        source=text(row.get("source")) or host_of(text(row.get("url"))),
        url=text(row.get("url")),
        images=resolver.resolve(cells, file.parent, file, line),
        labels=_labels(row.get("labels")),
    )


def _labels(value) -> list[str]:
    """Sensitivity labels: a JSON list, or in CSV one cell with labels separated by "|" or ","."""
    if value in (None, ""):
        return []
    parts = value if isinstance(value, list) else re.split(r"[|,]", str(value))
    return sorted({str(part).strip() for part in parts if str(part).strip()})


def host_of(url: str) -> str:
    """The site of a URL without "www.", a readable default for `source`."""
    try:
        host = urlsplit(url).hostname if "://" in url else None
    except ValueError:
        return ""
    return (host or "").removeprefix("www.")
