"""A corpus is three JSON-lines files plus images:

    news.jsonl         one NewsItem per line (schema in README "Corpus format")
    users.jsonl        one User per line, history oldest first
    impressions.jsonl  optional logged impressions for offline evaluation
    images/, media/    optional; relative image paths resolve against the corpus folder

The demo corpus lives in assets/demo; ingested corpora under NEWSREC_HOME/corpora/<name>, where the
three files sit in a generation folder switched atomically as a whole (see store.py): a crash never
leaves half a corpus, and a reader always gets the files of one generation.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from newsrec.config import ASSETS_DIR, DEMO_CORPUS, Settings
from newsrec.data import store
from newsrec.errors import InputError
from newsrec.types import HistoryEntry, ImageRef, Impression, NewsItem, User

NEWS_FILE, USERS_FILE, IMPRESSIONS_FILE = "news.jsonl", "users.jsonl", "impressions.jsonl"


@dataclass
class Corpus:
    name: str
    root: Path
    news: dict[str, NewsItem] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    impressions: list[Impression] = field(default_factory=list)
    generation: str = ""  # the generation folder it was read from or written to ("" = in memory, demo)

    def image_path(self, image: ImageRef) -> str:
        """Absolute path (or URL) of an image; relative paths are relative to the corpus folder."""
        if "://" in image.uri or Path(image.uri).is_absolute():
            return image.uri
        return str(self.root / image.uri)

    def user(self, user_id: str) -> User:
        try:
            return self.users[user_id]
        except KeyError:
            known = ", ".join(sorted(self.users)[:10]) or "none"
            raise InputError(
                f"unknown user {user_id!r} in corpus {self.name!r}; known users include: {known} "
                "(the user 'guest', with no history, works in every corpus)"
            ) from None

    @property
    def latest(self) -> datetime | None:
        """Publication time of the newest item: the corpus's "now" for freshness."""
        dates = [item.published_at for item in self.news.values() if item.published_at]
        return max(dates) if dates else None


# --- (de)serialisation ------------------------------------------------------------------------


def parse_time(value) -> datetime | None:
    """ISO-8601 string, epoch seconds or None -> aware UTC datetime (naive times are taken as UTC)."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, (int, float)):
        parsed = datetime.fromtimestamp(float(value), tz=timezone.utc)
    else:
        text = str(value).strip().replace("Z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InputError(f"unreadable date {value!r}; use ISO 8601 such as 2026-11-02T08:30:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_time(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def news_to_dict(item: NewsItem) -> dict:
    return {
        "id": item.id,
        "title": item.title,
        "body": item.body,
        "category": item.category,
        "subcategory": item.subcategory,
        "language": item.language,
        "published_at": format_time(item.published_at),
        "source": item.source,
        "url": item.url,
        "images": [{"uri": image.uri, "caption": image.caption} for image in item.images],
        **({"labels": list(item.labels)} if item.labels else {}),  # omitted when empty: older files stay as they were
    }


def news_from_dict(row: dict) -> NewsItem:
    images = []
    for image in row.get("images") or []:
        images.append(ImageRef(uri=image, caption="") if isinstance(image, str) else ImageRef(**image))
    return NewsItem(
        id=str(row["id"]),
        title=str(row.get("title") or ""),
        body=str(row.get("body") or ""),
        category=str(row.get("category") or ""),
        subcategory=str(row.get("subcategory") or ""),
        language=str(row.get("language") or ""),
        published_at=parse_time(row.get("published_at")),
        source=str(row.get("source") or ""),
        url=str(row.get("url") or ""),
        images=images,
        labels=_strings(row.get("labels"), "labels", row),
    )


def _strings(value, name: str, row: dict) -> list[str]:
    """An optional list of short strings (sensitivity labels, persona tags): trimmed, deduplicated, sorted."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise InputError(f"row {row.get('id')!r}: {name!r} must be a list of strings, got {type(value).__name__}")
    return sorted({str(x).strip() for x in value if str(x).strip()})


def user_to_dict(user: User) -> dict:
    return {
        "id": user.id,
        "name": user.name,
        "persona": user.persona,
        "history": [{"news_id": entry.news_id, "timestamp": format_time(entry.timestamp)} for entry in user.history],
        **({"tags": list(user.tags)} if user.tags else {}),
    }


def user_from_dict(row: dict) -> User:
    history = [
        HistoryEntry(news_id=str(entry["news_id"]), timestamp=parse_time(entry.get("timestamp")))
        if isinstance(entry, dict)
        else HistoryEntry(news_id=str(entry))
        for entry in row.get("history") or []
    ]
    return User(
        id=str(row["id"]),
        name=str(row.get("name") or row["id"]),
        persona=str(row.get("persona") or ""),
        history=history,
        tags=_strings(row.get("tags"), "tags", row),
    )


def impression_to_dict(impression: Impression) -> dict:
    return {
        "id": impression.id,
        "user_id": impression.user_id,
        "history": impression.history,
        "candidates": impression.candidates,
        "labels": impression.labels,
        "timestamp": format_time(impression.timestamp),
    }


def impression_from_dict(row: dict) -> Impression:
    return Impression(
        id=str(row["id"]),
        user_id=str(row["user_id"]),
        history=[str(x) for x in row.get("history") or []],
        candidates=[str(x) for x in row["candidates"]],
        labels=[int(x) for x in row["labels"]],
        timestamp=parse_time(row.get("timestamp")),
    )


# --- files -------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> Iterator[dict]:
    # Bytes, decoded line by line: a non-UTF-8 byte becomes one message naming the file, line and fix.
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise InputError(
                    f"{path}:{line_no}: not UTF-8 text (byte 0x{raw[error.start]:02x} at column {error.start + 1}); "
                    "newsrec writes UTF-8 only, so the file was changed by hand or damaged: restore it, or ingest "
                    f"the source again into a new corpus (`python -m newsrec ingest PATH --corpus NAME`)"
                ) from None
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as error:
                    raise InputError(f"{path}:{line_no}: not valid JSON ({error.msg})") from None


def write_jsonl_durable(path: Path, rows: Iterable[dict]) -> None:
    """Write rows to a new file in a generation folder and fsync it (the folder is switched in afterwards)."""
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def write_generation(corpus: Corpus, root: Path) -> Path:
    """Write the whole corpus as a new generation and switch to it; the caller holds `store.corpus_lock`."""
    generation = store.new_generation(root)
    write_jsonl_durable(generation / NEWS_FILE, (news_to_dict(item) for item in corpus.news.values()))
    write_jsonl_durable(generation / USERS_FILE, (user_to_dict(user) for user in corpus.users.values()))
    if corpus.impressions:
        write_jsonl_durable(generation / IMPRESSIONS_FILE, (impression_to_dict(imp) for imp in corpus.impressions))
    store.commit_generation(root, generation)
    corpus.generation = generation.name
    return generation


def save_corpus(corpus: Corpus, root: Path | None = None, lock_timeout: float | None = None) -> Path:
    """Replace a corpus's files with `corpus`, under the corpus's write lock. Merging writers (ingest) take
    the lock themselves around their read-merge-write and call `write_generation`."""
    root = Path(root or corpus.root)
    with store.corpus_lock(root, lock_timeout):
        write_generation(corpus, root)
    return root


def corpus_exists(root: Path) -> bool:
    return (root / store.POINTER).is_file() or (root / NEWS_FILE).is_file()


def read_corpus(root: Path, name: str | None = None) -> Corpus:
    """The corpus in folder `root`, all files from one generation."""
    root = Path(root)
    if not corpus_exists(root):
        raise InputError(f"no corpus at {root} (missing {NEWS_FILE}); run `python -m newsrec ingest` first")

    def read(folder: Path) -> Corpus:
        corpus = Corpus(name=name or root.name, root=root)
        corpus.generation = folder.name if folder != root else ""
        corpus.news = {item.id: item for item in map(news_from_dict, read_jsonl(folder / NEWS_FILE))}
        if (folder / USERS_FILE).exists():
            corpus.users = {user.id: user for user in map(user_from_dict, read_jsonl(folder / USERS_FILE))}
        if (folder / IMPRESSIONS_FILE).exists():
            corpus.impressions = [impression_from_dict(row) for row in read_jsonl(folder / IMPRESSIONS_FILE)]
        return corpus

    return store.read_retrying(root, read)


_CORPUS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_corpus_name(name: str) -> str:
    """`name` if it can name a folder under NEWSREC_HOME/corpora (no separators, no '..'), else InputError."""
    if not _CORPUS_NAME.fullmatch(name or "") or ".." in name:
        raise InputError(
            f"invalid corpus name {name[:100]!r}: use up to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def corpus_root(settings: Settings, name: str | None = None) -> Path:
    """The demo corpus is read from assets/demo; any other name from NEWSREC_HOME/corpora/<name>."""
    name = check_corpus_name(name or settings.corpus)
    return ASSETS_DIR / "demo" if name == DEMO_CORPUS else settings.corpus_dir(name)


def load_corpus(settings: Settings, name: str | None = None) -> Corpus:
    name = check_corpus_name(name or settings.corpus)
    root = corpus_root(settings, name)
    if not corpus_exists(root) and name != DEMO_CORPUS:
        available = sorted(p.name for p in (settings.home / "corpora").glob("*") if corpus_exists(p))
        raise InputError(
            f"unknown corpus {name!r}; available: {', '.join([DEMO_CORPUS, *available])}. "
            f"Create it with `python -m newsrec ingest PATH --corpus {name}`."
        )
    if name != DEMO_CORPUS:
        store.clean_if_idle(root)  # leftovers of a killed ingest go at the next start, not only the next write
    return read_corpus(root, name)
