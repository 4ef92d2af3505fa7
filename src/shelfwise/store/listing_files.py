"""Listing and schema files in: JSONL or CSV (UTF-8, a BOM allowed) read row by row, each row a ``Listing`` or
a ``RowError`` with its line, so one bad row never costs the others; schema files checked whole before use."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import InputError, RowError
from .catalog import MAX_FIELD_CHARS, AttributeSchema, Listing

__all__ = ["CSV_FIELD_LIMIT", "load_schemas", "read_listings", "validate_row"]


# csv's default limit (131,072) aborted the whole file on one long cell. Cells are cut to MAX_FIELD_CHARS anyway;
# the bound only keeps a runaway quoted field from holding the rest of the file in memory as one cell.
CSV_FIELD_LIMIT = 4_000_000
csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))


def read_listings(path: Path | str, text: str | None = None) -> Iterator[tuple[int, Listing | RowError]]:
    """Yield (line number, listing or the row's error) from a JSONL or CSV file; never stops on a bad row.
    A file that is not UTF-8 raises InputError before any row: guessing its encoding would store mojibake."""
    path = Path(path)
    source = path.name
    if text is None:
        try:
            text = _decode(path, path.read_bytes())
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}", fix="check the path") from exc
    text = text.removeprefix("\ufeff")  # Excel's byte-order mark would become part of the first column's name
    if path.suffix.lower() == ".csv":
        yield from _read_csv(source, text)
        return
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and friends, which splitlines breaks on
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield line, RowError(source, line, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(data, dict):
            yield line, RowError(source, line, f"expected a JSON object, got {type(data).__name__}")
            continue
        yield line, validate_row(source, line, data)


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{path.name} is not UTF-8 (byte 0x{data[exc.start]:02x} at line {line}); nothing was "
                         "ingested", fix="re-save the file as UTF-8 (in Excel: 'CSV UTF-8')") from None


def _read_csv(source: str, text: str) -> Iterator[tuple[int, Listing | RowError]]:
    """CSV rows by their first line. A quote left open would swallow every later row into one cell, so
    a record that trips strict parsing, or whose cell runs over lines that each read as a row, is
    rejected alone and parsing restarts on the line after it began: the rows it swallowed come back.
    (A swallowed row that closes the quote cleanly is told from a multi-line cell by ``_reads_as_rows``.)"""
    lines = io.StringIO(text, newline="").readlines()
    header: list[str] | None = None
    pos = 0  # index of the line the current reader started on
    broken_at, broken_to = 0, 0  # a rejected record's first and last line: rows inside it must fit the header
    while pos < len(lines):
        reader = csv.reader((lines[i] for i in range(pos, len(lines))), strict=True)
        done = 0  # lines this reader has consumed
        problem = None
        try:
            for record in reader:
                start, end, done = pos + done + 1, pos + reader.line_num, reader.line_num
                if not record:
                    continue
                if header is None:
                    header = record
                elif end > start and _reads_as_rows(lines[start:end], len(header)):
                    problem = f"a quoted field opened on this line is not closed properly (it runs on to line {end})"
                    break
                elif broken_at < start <= broken_to and len(record) != len(header):
                    yield start, RowError(source, start, f"{len(record)} columns where the header has "
                                          f"{len(header)} (the quote opened on line {broken_at} runs over it?)")
                else:
                    clean = {k: v for k, v in zip(header, record) if k and v != ""}
                    yield start, validate_row(source, start, clean)
            if problem is None:
                return
        except csv.Error as exc:
            start, end = pos + done + 1, pos + reader.line_num
            problem = _csv_problem(str(exc), start, end)
        if header is None:
            raise InputError(f"{source}:{start}: the header row cannot be read: {problem}",
                             fix="correct the first line (the column names)")
        if end > start:
            problem += "; the lines after it were read as rows of their own"
        yield start, RowError(source, start, problem)
        broken_at, broken_to = start, max(broken_to, end)
        pos = start  # the index of the line after the rejected record's first line


def _reads_as_rows(lines: list[str], width: int) -> bool:
    """Whether every line a quoted cell ran over parses, alone, as a row of the header's width: then those
    lines are swallowed rows (a stray quote closed by a later inch mark, say), not prose with line breaks."""
    try:
        widths = [len(next(csv.reader([line]), [])) for line in lines if line.strip()]
    except csv.Error:  # a NUL byte or an oversized cell: not a row either way
        return False
    return bool(widths) and all(w == width for w in widths)


def _csv_problem(error: str, start: int, end: int) -> str:
    if "field larger than field limit" in error:
        return (f"a field is longer than {CSV_FIELD_LIMIT:,} characters (fields are cut to {MAX_FIELD_CHARS:,} "
                "anyway: shorten it, or close the quote that runs on)")
    if "unexpected end of data" in error:
        return f"a quoted field opened on this line is never closed (it runs to the end of the file, line {end})"
    if end > start:
        return f"a quoted field opened on this line is not closed properly ({error} on line {end})"
    return f"malformed quoting ({error}): quote the whole field and double any quote inside it"


def load_schemas(path: Path | str) -> list[AttributeSchema]:
    """Attribute schemas from a JSON list, all checked before any is stored (InputError naming the item)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", fix="check the --schemas path") from exc
    except UnicodeDecodeError:
        raise InputError(f"{path.name} is not UTF-8", fix="re-save the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path.name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                         fix="correct the file; nothing was ingested") from None
    if not isinstance(data, list):
        raise InputError(f"{path.name} holds a JSON {type(data).__name__}, expected a JSON list of schemas",
                         fix='write [{"category_path": "...", "attributes": [{"name": "..."}]}, ...]')
    schemas = []
    for n, item in enumerate(data, start=1):
        try:
            schemas.append(AttributeSchema.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(map(str, err["loc"])) or "item"
            raise InputError(f"{path.name}: item {n}: {where}: {err['msg']}",
                             fix="correct that schema (fields: category_path, description, attributes with name, "
                                 "description, type, allowed_values, examples, unit); nothing was ingested") from None
    return schemas


def validate_row(source: str, line: int, data: dict[str, Any]) -> Listing | RowError:
    """One row of input as a listing, or the row's error (never raises)."""
    try:
        return Listing.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(map(str, err["loc"])) or "row"
        return RowError(source, line, f"{where}: {err['msg']}")
