"""A full disk or a read-only data folder, recognised in whatever shape it arrives, as one sentence with the fix.

The same condition reaches us as an OSError (ENOSPC, EROFS, EACCES), as SQLite's OperationalError
("database or disk is full", "attempt to write a readonly database"), or wrapped by Chroma (InternalError) and by
our own StoreError; the CLI (exit 2) and the app use `storage_hint` to say the one thing that helps.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

__all__ = ["storage_hint", "FULL", "READ_ONLY"]

FULL = "full"
READ_ONLY = "read-only"
_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
_FULL_WORDS = ("disk is full", "no space left", "disk quota exceeded")
_READ_ONLY_WORDS = ("readonly database", "read-only file system", "read-only database", "permission denied")


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def storage_kind(error: BaseException) -> str | None:
    """FULL, READ_ONLY or None, looking through the exception's causes."""
    for item in _chain(error):
        if isinstance(item, OSError) and item.errno in _FULL_ERRNOS:
            return FULL
        if isinstance(item, OSError) and item.errno in _READ_ONLY_ERRNOS:
            return READ_ONLY
        text = str(item).lower()
        if any(words in text for words in _FULL_WORDS):
            return FULL
        if any(words in text for words in _READ_ONLY_WORDS):
            return READ_ONLY
    return None


def storage_hint(error: BaseException, home: Path | str | None = None) -> str | None:
    """One line naming the folder and the fix, or None when `error` is not about the disk."""
    kind = storage_kind(error)
    if kind is None:
        return None
    if home is None:
        from newsrec.config import default_home

        home = default_home()
    where = getattr(next((e for e in _chain(error) if getattr(e, "filename", None)), None), "filename", None)
    place = f"{where} (under NEWSREC_HOME={home})" if where else f"NEWSREC_HOME={home}"
    if kind == FULL:
        return (
            f"the disk holding {place} is full: free some space or set NEWSREC_HOME to a folder on a disk with room, "
            "then run the command again (what was written before is intact)"
        )
    return f"{place} is read-only: set NEWSREC_HOME to a folder you can write, or make it writable"
