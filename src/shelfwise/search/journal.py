"""The index's change journal: single-product changes since the last full save, appended, never rewritten.

A full save writes every file of the index, which grows with the catalog (0.4 s at 7 k products, a minute
at a million); one product's change should cost what the change costs. So between full saves a writer
appends the change (the document, its vector, or a deletion) to ``journal.log`` and fsyncs, and other
worker processes apply just the new records. The journal's header names the generation of the full save it
extends: a save writes its manifest first and then starts a fresh journal, so a crash between the two leaves
a journal whose header no longer matches, which loaders ignore (its changes are in the save).

Layout: ``MAGIC``, the 12-byte generation, then records of ``>II`` (payload length, CRC-32) + a pickled
payload. A record cut short by a crash fails its length or CRC check and ends the readable journal there;
the next append truncates it away. Pickle is the index's own format (its row table is pickled too): the
index directory is trusted, like a database's data directory.
"""

from __future__ import annotations

import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

__all__ = ["JOURNAL_FILE", "append_records", "fsync_directory", "read_records", "start_journal"]

JOURNAL_FILE = "journal.log"
MAGIC = b"SWJ1"
_GEN_BYTES = 12
_HEADER = len(MAGIC) + _GEN_BYTES
_FRAME = struct.Struct(">II")


def _header(generation: str) -> bytes:
    gen = generation.encode("ascii")
    if len(gen) != _GEN_BYTES:
        raise ValueError(f"generation id {generation!r} must be {_GEN_BYTES} ASCII characters")
    return MAGIC + gen


def start_journal(directory: Path, generation: str) -> int:
    """An empty journal for ``generation`` (atomically replacing any older one); returns its end offset."""
    path = directory / JOURNAL_FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(_header(generation))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_directory(directory)
    return _HEADER


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_records(directory: Path, generation: str, offset: int = 0) -> tuple[list[Any], int] | None:
    """The records after byte ``offset`` (0: all) and the offset where the readable journal ends; None when
    there is no journal for ``generation`` (missing, another generation's, or shorter than ``offset``: it was
    replaced, so the caller must reload the full save)."""
    try:
        with open(directory / JOURNAL_FILE, "rb") as f:
            header = f.read(_HEADER)
            size = os.fstat(f.fileno()).st_size
            if header != _header(generation) or size < offset:
                return None
            start = max(offset, _HEADER)
            f.seek(start)
            data = f.read()  # only what was appended since ``offset``
    except FileNotFoundError:
        return None
    pos = 0
    records = []
    while pos + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, pos)
        payload = data[pos + _FRAME.size : pos + _FRAME.size + length]
        # A torn append (or the zeros a crash can leave when a file grew but its data never reached the disk:
        # length 0 and CRC 0 agree): everything before it is whole, nothing after it was acknowledged.
        if not length or len(payload) != length or zlib.crc32(payload) != crc:
            break
        try:
            records.append(pickle.loads(payload))
        except Exception:  # noqa: BLE001 - a frame that checks but does not read: stop, as for a torn one
            break
        pos += _FRAME.size + length
    return records, start + pos


def append_records(directory: Path, offset: int, records: list[Any]) -> int:
    """Append ``records`` at ``offset`` (the end of the readable journal, which drops a torn tail) and fsync;
    returns the new end. The caller holds the index's exclusive lock."""
    frames = []
    for record in records:
        payload = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        frames.append(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
    blob = b"".join(frames)
    with open(directory / JOURNAL_FILE, "r+b") as f:
        f.truncate(offset)
        f.seek(offset)
        try:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        except OSError:  # a full disk, an I/O error: leave no half of this append for a reader to apply
            f.truncate(offset)
            raise
    return offset + len(blob)
