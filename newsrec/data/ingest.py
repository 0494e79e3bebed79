"""Import news, users and impressions from other formats into a corpus (see corpus.py), with a report.

    report = ingest("data/nemig-en", settings, fmt="mind")   # -> IngestReport; corpus written under NEWSREC_HOME

Re-ingesting upserts: items, users and impressions with an existing id are replaced (last wins), new
ones appended, so running the same import twice writes the same files. Nothing is written unless the
source parsed into at least one news item, and each file is replaced atomically.

Dataset layouts handled here (generic tables are in readers.py):
- MIND / NeMig: `news.tsv` (news_id, category, subcategory, title, abstract, url, title_entities,
  abstract_entities), `behaviors.tsv` with 5 columns (impression_id, user_id, time, history, impressions)
  or 4 without the time, optional `news_meta.tsv` (publisher, date_published dd.mm.yyyy). A user's history
  is the union of their impressions' histories in order of appearance; each entry is stamped with the time
  of the first impression that shows it (it was read no later than that), when the file has times.
- MediaEval NewsImages: `articles.csv` + `images/<image_id>.jpg`. The tags become the body
  ("Tags: a, b, c"): they are the only text besides the headline, and models and BM25 read the body,
  whereas category filters expect one label per item. The publication day comes from the URL when it has one.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from newsrec.config import DEMO_CORPUS, Settings
from newsrec.data import limits, store
from newsrec.data.corpus import Corpus, check_corpus_name, corpus_exists, read_corpus, write_generation
from newsrec.data.media import MEDIA
from newsrec.data.readers import (
    IMAGE_SUFFIXES,
    Batch,
    ImageResolver,
    Problem,
    ReadOptions,
    date_from_url,
    decode_file,
    guess_language,
    host_of,
    parse_date,
    read_csv,
    read_table,
    text,
)
from newsrec.errors import InputError
from newsrec.types import HistoryEntry, Impression, NewsItem, User

__all__ = ["FORMATS", "IngestReport", "Problem", "detect_format", "ingest"]

log = logging.getLogger(__name__)

FORMATS = ("auto", "jsonl", "csv", "parquet", "mind", "newsimages")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class IngestReport:
    corpus: str
    path: str
    format: str
    rows_read: int = 0  # data rows (or lines) of the news file, good or bad
    items_written: int = 0  # news items from this source now in the corpus
    users: int = 0
    impressions: int = 0
    new: int = 0  # items not in the corpus before
    changed: int = 0  # items whose content changed (they get re-embedded)
    with_images: int = 0
    corpus_items: int = 0  # total news items in the corpus after the upsert
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)


def detect_format(path: Path) -> str:
    """Format from the extension, or from the files a folder holds."""
    if path.is_dir():
        if (path / "articles.csv").is_file():
            return "newsimages"
        if (path / "news.tsv").is_file():
            return "mind"
        for name in ("news.jsonl", "news.csv", "news.parquet"):
            if (path / name).is_file():
                return detect_format(path / name)
        found = ", ".join(sorted(p.name for p in path.iterdir())[:20]) or "nothing"
        raise InputError(
            f"{path}: cannot tell the format: expected articles.csv (NewsImages), news.tsv (MIND) or "
            f"news.jsonl / news.csv / news.parquet; found {found}. Pass --format."
        )
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        return "mind"
    if suffix == ".csv" and path.name == "articles.csv":
        return "newsimages"
    if suffix in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffix]
    raise InputError(f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; pass --format")


def default_corpus_name(path: Path) -> str:
    """The file's stem, or its folder's name for the generic file names of dataset layouts."""
    generic = {"news", "articles", "behaviors", "news_meta"}
    stem = path.name if path.is_dir() else path.stem
    if stem in generic and not path.is_dir():
        stem = path.resolve().parent.name
    return _NAME.sub("-", stem).strip("-.") or "corpus"


def ingest(
    path: str | Path,
    settings: Settings,
    fmt: str = "auto",
    corpus: str | None = None,
    images_dir: str | Path | None = None,
    max_images: int | None = None,
    mapping: dict[str, str] | None = None,
    lock_timeout: float | None = None,
) -> IngestReport:
    """Read `path` in format `fmt`, upsert it into corpus `corpus` and return what happened.

    Another ingest into the same corpus is waited for (indefinitely, or `lock_timeout` seconds)."""
    started = time.perf_counter()
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    name = corpus or default_corpus_name(path)
    if name == DEMO_CORPUS:
        raise InputError("invalid corpus name 'demo': the demo corpus is read-only; choose another --corpus")
    check_corpus_name(name)
    if images_dir is not None and not Path(images_dir).is_dir():
        raise InputError(f"--images {images_dir}: no such folder")
    options = ReadOptions(
        images_dir=Path(images_dir).expanduser().resolve() if images_dir else None,
        max_images=settings.max_images if max_images is None else max_images,
        mapping=dict(mapping or {}),
        allow_remote_images=settings.allow_remote_images,
        media_dir=settings.corpus_dir(name) / MEDIA,
    )
    if options.mapping and fmt not in ("jsonl", "csv", "parquet"):
        raise InputError(f"--map applies to jsonl, csv and parquet files, not to the {fmt} layout")

    batch = Batch()
    try:
        path = _read(path, fmt, options, batch)
    except OSError as error:  # unreadable file or folder: permissions, a vanished mount, ...
        raise InputError(f"cannot read {error.filename or path}: {error.strerror or error}") from None
    _cap_histories(batch, settings.max_history)
    if not batch.news:
        first = "; ".join(f"{p.file}:{p.line}: {p.reason}" for p in batch.problems[:3])
        raise InputError(f"{path}: no usable news items ({batch.rows_read} rows read){'; ' + first if first else ''}")
    report = IngestReport(corpus=name, path=str(path), format=fmt, rows_read=batch.rows_read)
    try:
        _upsert(settings, name, batch, report, lock_timeout)
    except OSError as error:
        from newsrec.storage_errors import storage_hint

        hint = storage_hint(error, settings.home)  # a full disk or a read-only home: the fix, not the errno
        raise InputError(hint or f"cannot write corpus {name!r} under {settings.corpus_dir(name)}: {error}") from None
    report.problems = batch.problems
    report.seconds = round(time.perf_counter() - started, 3)
    log.info("ingested %s into %s: %d items, %d problems", path, name, report.items_written, len(report.problems))
    return report


def _read(path: Path, fmt: str, options: ReadOptions, batch: Batch) -> Path:
    """Fill `batch` from `path`; returns the file actually read for table formats given a folder."""
    if fmt == "mind":
        read_mind(path, options, batch)
    elif fmt == "newsimages":
        read_newsimages(path, options, batch)
    else:
        if path.is_dir():
            path = path / f"news.{fmt}"
            if not path.is_file():
                raise InputError(f"{path.parent}: no {path.name} in this folder")
        read_table(path, fmt, options, batch)
    return path


def _upsert(settings: Settings, name: str, batch: Batch, report: IngestReport, lock_timeout: float | None) -> Corpus:
    """Merge the batch into the corpus: the read, the merge and the write all happen under the corpus's lock,
    so a concurrent ingest waits and then merges into this one's result instead of overwriting it."""
    root = settings.corpus_dir(name)
    with store.corpus_lock(root, lock_timeout):
        existing = read_corpus(root, name) if corpus_exists(root) else Corpus(name=name, root=root)
        before = {news_id: item.content_hash() for news_id, item in existing.news.items()}
        existing.news.update(batch.news)
        _drop_unknown_ids(existing.news, batch)
        existing.users.update(batch.users)
        impressions = {impression.id: impression for impression in existing.impressions}
        impressions.update(batch.impressions)
        existing.impressions = list(impressions.values())
        write_generation(existing, root)

    report.items_written = len(batch.news)
    report.users, report.impressions = len(batch.users), len(batch.impressions)
    report.new = sum(1 for news_id in batch.news if news_id not in before)
    report.changed = sum(
        1 for news_id, item in batch.news.items() if news_id in before and before[news_id] != item.content_hash()
    )
    report.with_images = sum(1 for item in batch.news.values() if item.images)
    report.corpus_items = len(existing.news)
    return existing


def _cap_histories(batch: Batch, cap: int) -> None:
    """Keep each reader's last `cap` reads (config.MAX_HISTORY): longer histories cost time and memory per
    profile and add little; the cut is noted once."""
    cap = max(1, cap)
    long = [user for user in batch.users.values() if len(user.history) > cap]
    for user in long:
        user.history = user.history[-cap:]
    for impression in batch.impressions.values():
        impression.history = impression.history[-cap:]
    if long:
        note = f"{len(long)} reader histories longer than {cap} reads: kept the last {cap} of each"
        batch.problem("(users)", 0, f"{note} (newsrec/config.py MAX_HISTORY)")


def _drop_unknown_ids(news: dict[str, NewsItem], batch: Batch) -> None:
    """Histories and impressions may only name items the corpus has; the rest are dropped and counted."""
    dropped_history = dropped_candidates = dropped_impressions = 0
    for user in batch.users.values():
        kept = [entry for entry in user.history if entry.news_id in news]
        dropped_history += len(user.history) - len(kept)
        user.history = kept
    for impression_id, impression in list(batch.impressions.items()):
        pairs = [(c, label) for c, label in zip(impression.candidates, impression.labels, strict=False) if c in news]
        dropped_candidates += len(impression.candidates) - len(pairs)
        if not pairs:
            del batch.impressions[impression_id]
            dropped_impressions += 1
            continue
        impression.candidates, impression.labels = [c for c, _ in pairs], [label for _, label in pairs]
        impression.history = [news_id for news_id in impression.history if news_id in news]
    if dropped_history or dropped_candidates:
        batch.problem(
            "(users and impressions)",
            0,
            f"unknown news ids dropped: {dropped_history} history entries, {dropped_candidates} impression "
            f"candidates, {dropped_impressions} impressions left without candidates",
        )


# --- MIND / NeMig -------------------------------------------------------------------------------


def _mind_files(path: Path) -> tuple[Path, Path]:
    folder = path if path.is_dir() else path.parent
    news = folder / "news.tsv" if path.is_dir() or path.name == "behaviors.tsv" else path
    if not news.is_file():
        found = ", ".join(sorted(p.name for p in folder.iterdir())[:20]) or "nothing"
        raise InputError(f"{folder}: no MIND news.tsv here (found: {found})")
    return folder, news


def read_mind(path: Path, options: ReadOptions, batch: Batch) -> None:
    folder, news_path = _mind_files(path)
    resolver = ImageResolver(options, batch)
    for number, line in decode_file(news_path, batch):
        if not line.strip():
            continue
        cells = line.rstrip("\r\n").split("\t")
        if number == 1 and cells[0].strip().lower() in ("id", "news_id", "newsid", "nid"):
            continue  # a header, which MIND itself does not have
        batch.rows_read += 1
        if not 4 <= len(cells) <= 8:
            batch.problem(news_path, number, f"expected 8 tab-separated columns, found {len(cells)}; row skipped")
            continue
        cells += [""] * (8 - len(cells))
        news_id, category, subcategory, title, abstract, url = (cell.strip() for cell in cells[:6])
        if not news_id or not title:
            what = "empty id" if not news_id else f"empty title for id {news_id!r}"
            batch.problem(news_path, number, f"{what}; row skipped")
            continue
        item = NewsItem(
            id=news_id,
            title=title,
            body=abstract,
            category=category,
            subcategory=subcategory,
            language=guess_language(title),
            url=url,
            source=host_of(url),
            images=resolver.resolve(resolver.by_id(news_id), folder, news_path, number),
        )
        batch.add_news(item, news_path, number)
    if (folder / "news_meta.tsv").is_file():
        _read_news_meta(folder / "news_meta.tsv", batch)
    if (folder / "behaviors.tsv").is_file():
        read_behaviors(folder / "behaviors.tsv", batch)


def _read_news_meta(path: Path, batch: Batch) -> None:
    """NeMig's news_meta.tsv: a header row, then news_id, publisher, date_published, ... per line."""
    lines = decode_file(path, batch)
    first = next(lines, None)
    header = [cell.strip().lower() for cell in first[1].rstrip("\r\n").split("\t")] if first else []
    publisher = next((i for i, name in enumerate(header) if name.startswith("publisher")), None)
    published = header.index("date_published") if "date_published" in header else None
    if not header or header[0] not in ("news_id", "id") or (publisher is None and published is None):
        batch.problem(path, 1, f"expected a header with news_id, publisher, date_published; found {header}; skipped")
        return
    for number, line in lines:
        if not line.strip():
            continue
        cells = line.rstrip("\r\n").split("\t")
        if len(cells) != len(header):
            batch.problem(path, number, f"expected {len(header)} columns, found {len(cells)}; row skipped")
            continue
        item = batch.news.get(cells[0].strip())
        if item is None:
            continue  # metadata of an item we do not have
        if publisher is not None and text(cells[publisher]):
            item.source = text(cells[publisher])
        if published is not None and text(cells[published]):
            try:
                item.published_at = parse_date(cells[published])
            except InputError:
                batch.problem(path, number, f"unreadable date {cells[published]!r}; kept without a date")


def read_behaviors(path: Path, batch: Batch) -> None:
    histories: dict[str, dict[str, datetime | None]] = {}  # user -> news id -> first time seen
    unlabeled = 0
    for number, line in decode_file(path, batch):
        if not line.strip():
            continue
        cells = line.rstrip("\r\n").split("\t")
        if len(cells) == 4:
            impression_id, user_id, history, shown = cells
            when = None
        elif len(cells) == 5:
            impression_id, user_id, raw_time, history, shown = cells
            try:
                when = parse_date(raw_time)
            except InputError:
                batch.problem(path, number, f"unreadable time {raw_time!r}; kept without a time")
                when = None
        else:
            batch.problem(path, number, f"expected 4 or 5 tab-separated columns, found {len(cells)}; row skipped")
            continue
        impression_id, user_id = impression_id.strip(), user_id.strip()
        bad_id = limits.id_problem(impression_id) or limits.id_problem(user_id)
        if bad_id:
            batch.problem(path, number, f"impression or user: {bad_id}; row skipped")
            continue
        seen = histories.setdefault(user_id, {})
        for news_id in history.split():
            seen.setdefault(news_id, when)
        candidates, labels, bad = [], [], []
        for token in shown.split():
            news_id, _, label = token.rpartition("-")
            if label in ("0", "1") and news_id:
                candidates.append(news_id)
                labels.append(int(label))
            else:
                bad.append(token)
        if bad or not candidates:
            unlabeled += 1  # e.g. MIND's test split: shown items without click labels
            continue
        if impression_id in batch.impressions:
            batch.problem(path, number, f"duplicate impression id {impression_id!r}; last one kept")
        batch.impressions[impression_id] = Impression(
            id=impression_id,
            user_id=user_id,
            history=history.split(),
            candidates=candidates,
            labels=labels,
            timestamp=when,
        )
    if unlabeled:
        batch.problem(path, 0, f"{unlabeled} impressions without id-0/id-1 click labels skipped (histories kept)")
    for user_id, seen in histories.items():
        history = [HistoryEntry(news_id=news_id, timestamp=when) for news_id, when in seen.items()]
        batch.users[user_id] = User(id=user_id, name=user_id, history=history)


# --- MediaEval NewsImages -----------------------------------------------------------------------


def read_newsimages(path: Path, options: ReadOptions, batch: Batch) -> None:
    csv_path = path / "articles.csv" if path.is_dir() else path
    if not csv_path.is_file():
        raise InputError(f"{path}: no articles.csv (MediaEval NewsImages layout)")
    # absolute, so the file cells below are not joined a second time onto the (resolved) source folder
    images_dir = options.images_dir or (csv_path.parent / "images").absolute()
    header, rows = read_csv(csv_path, batch)
    missing = [name for name in ("article_id", "article_title", "image_id") if name not in header]
    if missing:
        raise InputError(f"{csv_path}: missing required column(s) {', '.join(missing)}; found: {', '.join(header)}")
    resolver = ImageResolver(options, batch)
    for number, row in rows:
        news_id, title, url = text(row["article_id"]), text(row["article_title"]), text(row.get("article_url"))
        if not news_id or not title:
            what = "empty article_id" if not news_id else f"empty title for id {news_id!r}"
            batch.problem(csv_path, number, f"{what}; row skipped")
            continue
        tags = [tag.strip() for tag in re.split(r"[;|]", text(row.get("article_tags"))) if tag.strip()]
        tags = list(dict.fromkeys(tags))  # people|organisations groups, deduplicated
        image_id = text(row["image_id"])
        local = images_dir / f"{image_id}.jpg"  # the layout's name; other extensions are accepted too
        if not local.is_file():
            local = next((p for p in map(local.with_suffix, IMAGE_SUFFIXES) if p.is_file()), local)
        cells = [(str(local), "")] if image_id else []
        if image_id and not local.is_file() and text(row.get("image_url")) and options.allow_remote_images:
            cells = [(text(row["image_url"]), "")]  # no local copy: use the original when remote images are on
        batch.add_news(
            NewsItem(
                id=news_id,
                title=title,
                body=f"Tags: {', '.join(tags)}" if tags else "",
                language=guess_language(title),
                published_at=date_from_url(url),
                source=host_of(url),
                url=url,
                images=resolver.resolve(cells, images_dir, csv_path, number),
            ),
            csv_path,
            number,
        )
    resolver.report_remote(csv_path)
