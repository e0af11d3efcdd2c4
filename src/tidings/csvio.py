"""CSV in and out: one set of rules for every export (reports, the conversations export,
contacts, campaign recipients, `tidings campaign export`) and every upload (contacts import,
campaign audiences).

Out: every data cell goes through `cell`, the CSV-injection rule (OWASP "CSV Injection"): a
text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return, which a spreadsheet
would run as a formula, gets a leading `'` so it shows as text. Two kinds of value are left as
they are: numbers we computed (an int, float or Decimal is never a formula) and an E.164 phone
number (`+` and digits only). The header row is our column names (and contact attribute
names, which cannot start with those characters) and is written as given.

In: UTF-8 (a leading BOM, as spreadsheets write it, is fine); column names stripped and
lower-cased, cells stripped; row numbers count the header as row 1, as a spreadsheet shows
them; a malformed file is a 4xx naming the line, never a 500.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from decimal import Decimal
from typing import Any

from fastapi.responses import Response, StreamingResponse

from tidings.domain.errors import InvalidInput

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPE = "text/csv; charset=utf-8"

Rows = Iterable[Iterable[Any]]


def cell(value: Any) -> str:
    """`value` as a cell a spreadsheet will not run as a formula (see the module docstring)."""
    text = "" if value is None else str(value)
    if isinstance(value, int | float | Decimal) or (text[:1] == "+" and text[1:].isdigit()):
        return text
    return "'" + text if text[:1] in FORMULA_START else text


def text(header: Sequence[str] | None, rows: Rows) -> str:
    """CSV text: `header` (if given) as it is, then `rows` with each value made `cell`-safe."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    if header is not None:
        writer.writerow(header)
    writer.writerows([cell(v) for v in row] for row in rows)
    return buf.getvalue()


async def stream(header: Sequence[str], pages: AsyncIterable[Rows]) -> AsyncIterator[str]:
    """A streamed export's chunks: the header line, then one chunk per page of rows."""
    yield text(header, [])
    async for rows in pages:
        yield text(None, rows)


def download(name: str, header: Sequence[str], rows: Rows | AsyncIterable[Rows]) -> Response:
    """`name`.csv as a download: `header`, then `rows` (or, streamed, pages of rows)."""
    headers = {"content-disposition": f'attachment; filename="{name}.csv"'}
    if isinstance(rows, AsyncIterable):
        return StreamingResponse(stream(header, rows), media_type=MEDIA_TYPE, headers=headers)
    return Response(text(header, rows), media_type=MEDIA_TYPE, headers=headers)


def read(
    raw: bytes, field: str, *, sniff: bool = False
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(column names, [(row number, {column: cell})]) of an uploaded CSV. Cells missing from a
    short row are left out, extra cells past the header dropped. `sniff`: the delimiter may be
    `;` or a tab (as spreadsheets in many locales export), else `,`. Errors name `field`."""
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{field}: not UTF-8 text") from None
    dialect: type[csv.Dialect] = csv.excel
    if sniff:
        with contextlib.suppress(csv.Error):  # not sniffable: a plain comma file
            dialect = csv.Sniffer().sniff(decoded[:4096], delimiters=",;\t")
    reader = csv.DictReader(io.StringIO(decoded), dialect=dialect)
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        rows = [
            (n, {k.strip().lower(): v.strip() for k, v in row.items() if isinstance(v, str)})
            for n, row in enumerate(reader, start=2)
        ]
    except csv.Error as exc:
        raise InvalidInput(f"{field}: line {reader.line_num}: {exc}") from None
    return header, rows
