"""A read-only NEWSREC_HOME: the dashboard still starts, for browsing, and writes nothing there.

Chroma 1.5's embedded store cannot open a database it may not write: its Rust bindings open SQLite read-write
(and run migrations) and fail with "attempt to write a readonly database"; PersistentClient has no read-only
mode. So the app opens a private copy of the store in a temporary folder (`Settings.scratch`), and the rerank
score cache lives there too. The copy cannot go stale: nobody else can write to a read-only home either. The
corpus is only read; judgments open read-only (newsrec/evaluation/judgments.py) and the page says that recording
them, ingesting and training are off. The CLI keeps exiting 2 with a hint instead: a command is asked to write.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from newsrec.config import Settings
from newsrec.storage_errors import READ_ONLY, storage_kind

__all__ = ["home_is_writable", "browse_settings"]

log = logging.getLogger(__name__)


def _probe(home: Path) -> None:
    """Create and remove one file in `home` (raises the OSError a read-only mount gives)."""
    handle, name = tempfile.mkstemp(prefix=".newsrec-write-probe-", dir=home)
    os.close(handle)
    os.unlink(name)


def home_is_writable(home: Path) -> bool:
    """Whether files can be created in `home`. A real write, not os.access: root passes access(2) on a folder
    whose mode says read-only, and an ACL or a mount option may say otherwise than the mode bits."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        _probe(home)
    except OSError as error:
        if storage_kind(error) != READ_ONLY:
            raise  # a full disk, a missing parent: not a reason to browse read-only
        return False
    return True


def browse_settings(settings: Settings) -> Settings:
    """`settings` unchanged on a writable home; else read-only settings with the store copied to a scratch folder."""
    if settings.read_only or home_is_writable(settings.home):
        return settings
    scratch = Path(tempfile.mkdtemp(prefix="newsrec-read-only-"))
    atexit.register(shutil.rmtree, scratch, True)
    store = settings.home / "chroma"
    if not settings.chroma_url and store.is_dir():
        shutil.copytree(store, scratch / "chroma")  # the vectors as committed; copies -wal files too
    log.warning(
        "NEWSREC_HOME=%s is read-only: browsing only (no judgments, ingest or training); the vector store is "
        "opened from a private copy in %s",
        settings.home,
        scratch,
    )
    return replace(settings, read_only=True, scratch=scratch)
