"""Corpus writes as transactions: one writer at a time, every file of a corpus switched at once.

An ingested corpus folder holds generations, each a complete set of files, and a pointer to the live one:

    corpora/<name>/CURRENT            "gen-000007": the only generation readers use
    corpora/<name>/gen-000007/        news.jsonl, users.jsonl, impressions.jsonl
    corpora/<name>/gen-000006/        the previous one, kept so a reader that just resolved it can finish
    corpora/<name>/media/             checked pictures, named by content (shared by all generations)
    corpora/<name>/.lock              held by the writer (filelock) for the whole read-merge-write

A write builds the next generation beside the live one, fsyncs its files and folder, then replaces
CURRENT atomically (write, fsync, rename, fsync the folder). A kill -9 at any point leaves CURRENT on
either the old or the new generation, never between; leftovers (a half-written generation, temp files)
are removed by the next writer when it takes the lock. Older folders from before generations (the three
files directly in the corpus folder) are read as they are and replaced by a generation on the next write.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from newsrec.errors import InputError

log = logging.getLogger(__name__)

POINTER = "CURRENT"
LOCK = ".lock"
DATA_FILES = ("news.jsonl", "users.jsonl", "impressions.jsonl")
_GENERATION = re.compile(r"gen-(\d{6,})")


def generation_dir(root: Path) -> Path:
    """The folder holding the live files: the generation CURRENT names, or `root` itself (demo, older layout)."""
    pointer = root / POINTER
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return root
    except UnicodeDecodeError:
        name = "<not UTF-8 text>"
    if not _GENERATION.fullmatch(name) or not (root / name).is_dir():
        newest = max((p.name for p in root.glob("gen-*") if _GENERATION.fullmatch(p.name)), default="")
        fix = f"write {newest!r} (the newest generation) into it" if newest else "ingest the corpus again"
        raise InputError(
            f"corpus {root.name!r}: {pointer} names {name[:80]!r}, which is not a generation folder; {fix}"
        )
    return root / name


def _number(path: Path) -> int:
    match = _GENERATION.fullmatch(path.name)
    return int(match.group(1)) if match else -1


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable (POSIX; Windows cannot open folders and needs no call)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def corpus_lock(root: Path, timeout: float | None = None) -> Iterator[None]:
    """Exclusive write lock on a corpus; waits (saying so) for another writer, or gives up after `timeout` s.

    filelock's FileLock is an OS lock (fcntl/msvcrt), released by the kernel when its holder dies, so a
    killed writer never leaves the corpus locked.
    """
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        wait = "" if timeout is None or timeout < 0 else f" (up to {timeout:g} s; --lock-timeout)"
        log.warning("corpus %r is being written by another process; waiting for it to finish%s", root.name, wait)
        try:
            lock.acquire(timeout=-1 if timeout is None else timeout)
        except Timeout:
            raise InputError(
                f"corpus {root.name!r} is locked by another writer; gave up after {timeout:g} s. "
                "Retry when the other ingest has finished, or raise --lock-timeout."
            ) from None
    try:
        clean_orphans(root)
        yield
    finally:
        lock.release()


def clean_if_idle(root: Path) -> None:
    """Remove a killed writer's leftovers now if no writer is active (commands and the app call this when they
    load a corpus); skipped silently when the corpus is being written or its folder is read-only."""
    if not (root / POINTER).is_file():
        return
    lock = FileLock(root / LOCK)
    try:
        lock.acquire(timeout=0)
    except (Timeout, OSError):
        return
    try:
        clean_orphans(root)
    except OSError as error:
        log.debug("corpus %r: leftovers not cleaned (%s)", root.name, error)
    finally:
        lock.release()


def clean_orphans(root: Path) -> None:
    """Remove what a killed writer left: generations other than the live one and its predecessor, temp files.
    Call only with the lock held (a writer in progress owns its new generation)."""
    live = generation_dir(root)
    keep = {live.name}
    older = sorted((p for p in root.glob("gen-*") if p.is_dir() and _number(p) < _number(live)), key=_number)
    if older:
        keep.add(older[-1].name)  # the previous generation: a reader may have resolved it a moment ago
    for path in root.iterdir():
        if path.is_dir() and path.name.startswith("gen-") and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
            log.info("corpus %r: removed stale %s", root.name, path.name)
        elif path.is_file() and path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)
            log.info("corpus %r: removed leftover %s", root.name, path.name)


def new_generation(root: Path) -> Path:
    """An empty folder for the next generation (call with the lock held)."""
    numbers = [_number(p) for p in root.glob("gen-*")]
    path = root / f"gen-{max(numbers, default=0) + 1:06d}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def commit_generation(root: Path, generation: Path) -> None:
    """Point CURRENT at `generation` in one atomic rename, after its files are durable (call with the lock held)."""
    fsync_dir(generation)
    pointer_tmp = root / f"{POINTER}.tmp"
    with open(pointer_tmp, "w", encoding="utf-8") as handle:
        handle.write(generation.name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(pointer_tmp, root / POINTER)
    fsync_dir(root)
    for name in DATA_FILES:  # files of the layout before generations, now shadowed by CURRENT
        (root / name).unlink(missing_ok=True)
    clean_orphans(root)


def read_retrying(root: Path, read, attempts: int = 3):
    """`read(folder)` on the live generation; if a writer removed that generation mid-read, resolve again."""
    for attempt in range(attempts):
        folder = generation_dir(root)
        try:
            result = read(folder)
        except FileNotFoundError:
            if attempt == attempts - 1 or folder == root:
                raise
        else:
            if folder == root or folder.is_dir():  # still there: every optional file it lacked, it really lacks
                return result
        time.sleep(0.05)
    raise AssertionError("unreachable")
