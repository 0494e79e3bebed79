"""Source files read by ingest as a stream of decoded lines, never whole.

- The byte cap (`config.INGEST_MAX_FILE_BYTES`) is enforced while the bytes stream: a regular file over it is
  refused from its size before any byte is read; a device or a pipe (`/dev/zero`, a runaway export piped in)
  is refused the moment it passes the cap. Either way one message names the file and the cap.
- Lines are bounded too (`config.INGEST_MAX_LINE_CHARS`): a longer line is reported and skipped, read through
  piece by piece, so a stream without a single newline costs one piece of memory, not the whole stream.
- The encoding is decided as before (UTF-8 with or without BOM, UTF-16 with BOM, a mostly-UTF-8 file with a few
  damaged lines, else GB18030), but from a first streaming pass over a regular file's bytes instead of from
  the whole file in memory. A device or pipe cannot be read twice: it is UTF-8 (or UTF-16 by its BOM), and
  lines with bytes that are not UTF-8 are kept with those bytes replaced and reported.

Lines come with their endings and their 1-based numbers. Line endings are `\\n`, `\\r\\n` or a lone `\\r`
(`newline=""`, what the csv module needs for quoted fields that span lines).
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from newsrec.errors import InputError

__all__ = ["too_large", "text_lines", "CappedReader"]

CHUNK = 2**20  # bytes per read


class ProblemSink(Protocol):
    def problem(self, file: str | Path, line: int, reason: str) -> None: ...


def too_large(path: Path, cap: int) -> InputError:
    return InputError(
        f"{path}: more than {cap:,} bytes (the per-file ingest cap, config.INGEST_MAX_FILE_BYTES); split the file "
        "into parts under that size and ingest each (they merge into the same --corpus)"
    )


class CappedReader(io.RawIOBase):
    """A raw binary stream that raises the cap's InputError once more than `cap` bytes came through it."""

    def __init__(self, raw: io.RawIOBase, path: Path, cap: int):
        super().__init__()
        self.raw, self.path, self.cap, self.size = raw, path, cap, 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.raw.close()
        super().close()

    def readinto(self, buffer) -> int:  # type: ignore[override]
        count = self.raw.readinto(buffer) or 0
        self.size += count
        if self.size > self.cap:
            raise too_large(self.path, self.cap)
        return count


def _byte_stream(path: Path, cap: int) -> io.BufferedReader:
    """The file's bytes through the cap. Unbuffered underneath, so the cap counts what was really read."""
    return io.BufferedReader(CappedReader(open(path, "rb", buffering=0), path, cap), CHUNK)  # noqa: SIM115


def _is_utf8(path: Path, cap: int) -> bool:
    """One pass over the bytes with an incremental decoder (C speed, one chunk in memory)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with _byte_stream(path, cap) as stream:
        try:
            while chunk := stream.read(CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _bad_utf8_lines(path: Path, cap: int, limit: int) -> tuple[list[int], int]:
    """(numbers of the lines that are not UTF-8, lines holding any non-ASCII byte), line by line."""
    bad, non_ascii, number = [], 0, 0
    with _byte_stream(path, cap) as stream:
        while line := stream.readline(limit):
            number += 1
            if line.isascii():
                continue
            non_ascii += 1
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                bad.append(number)
    return bad, non_ascii


def _encoding(path: Path, batch: ProblemSink, cap: int, limit: int) -> tuple[str, str]:
    """(codec, errors) for the second pass; notes about the encoding go to `batch` first, as before."""
    with _byte_stream(path, cap) as stream:
        start = stream.peek(4)[:4]
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "strict"
    if not path.is_file():  # a device or a pipe cannot be read twice: UTF-8, damaged lines flagged on the way
        return "utf-8-sig", "replace"
    if _is_utf8(path, cap):
        return "utf-8-sig", "strict"
    bad, non_ascii = _bad_utf8_lines(path, cap, limit)
    if len(bad) * 2 < non_ascii:  # mostly UTF-8: keep it, flag the damaged lines
        for number in bad:
            batch.problem(path, number, "invalid UTF-8 bytes (replaced with �)")
        return "utf-8-sig", "replace"
    batch.problem(path, 0, "not UTF-8; decoded as GB18030")
    return "gb18030", "strict"


def text_lines(path: Path, batch: ProblemSink) -> Iterator[tuple[int, str]]:
    """(line number, line with its ending) of a source file, streamed; see the module docstring."""
    from newsrec import config

    cap, limit = config.INGEST_MAX_FILE_BYTES, config.INGEST_MAX_LINE_CHARS
    if path.is_file() and path.stat().st_size > cap:  # a regular file: refused before any byte is read
        raise too_large(path, cap)
    stream = path.is_file()
    if not stream:
        # A device or a pipe is opened once: the BOM is peeked from the same stream the lines come from.
        binary = _byte_stream(path, cap)
        start = binary.peek(4)[:4]
        utf16 = start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        encoding, errors = ("utf-16", "strict") if utf16 else ("utf-8-sig", "replace")
    else:
        encoding, errors = _encoding(path, batch, cap, limit)
        binary = _byte_stream(path, cap)
    flag_replaced = not stream and errors == "replace"
    with io.TextIOWrapper(binary, encoding=encoding, errors=errors, newline="") as text:
        number = 0
        while True:
            try:
                line = text.readline(limit)
            except UnicodeDecodeError:
                raise InputError(_undecodable(path, encoding)) from None
            if not line:
                return
            number += 1
            if len(line) >= limit and not line.endswith(("\n", "\r")):
                try:
                    while (rest := text.readline(limit)) and not rest.endswith(("\n", "\r")):
                        pass  # the rest of an over-long line is read through and dropped, piece by piece
                except UnicodeDecodeError:
                    raise InputError(_undecodable(path, encoding)) from None
                batch.problem(path, number, f"line longer than {limit:,} characters; skipped")
                continue
            if flag_replaced and "\ufffd" in line:
                batch.problem(path, number, "invalid UTF-8 bytes (replaced with �)")
            yield number, line


def _undecodable(path: Path, encoding: str) -> str:
    if encoding == "utf-16":
        return f"{path}: starts with a UTF-16 byte-order mark but is not valid UTF-16"
    return f"{path}: unknown text encoding (tried UTF-8, UTF-8 with BOM, UTF-16 and GB18030); re-save it as UTF-8"
