"""The attempts as CSV, safe to open in a spreadsheet.

A spreadsheet runs a cell as a formula when it starts with `=`, `+`, `-` or
`@` (and, in some, `|` for DDE), and it skips what looks blank first: spaces,
a no-break space, a zero-width space; some read a full-width `＝` as `=`. And
one set to another separator (`;` or a tab, as in many locales) splits a
cell where that separator appears, or a line break, and the piece after it
is a cell of its own. The numbers and raw inputs in the log are typed by
anyone, so a `'` is put before:

- a cell whose first visible character, after Unicode compatibility
  normalisation (NFKC: `＝` is `=`), is one of `= + - @ |`, or that starts
  with a tab, CR or LF;
- likewise, the piece after each `,` `;` tab, CR or LF inside a cell.

Nothing else changes, so the file stays readable: `+31612345678` reads
`'+31612345678`, and a typed `;=1+1` reads `;'=1+1`.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp import reports
from webapp.models import Attempt
from webapp.reports import AttemptFilter

COLUMNS = (
    "time_utc",
    "kind",
    "number",
    "raw_input",
    "region",
    "ip",
    "channel",
    "outcome",
    "verification_id",
    "provider_ref",
    "provider_latency_ms",
    "client_id",
    "reason",
    "count",
    "provider",
    "via",
)
#: What makes a spreadsheet read a cell as a formula, once blanks are skipped.
TRIGGERS = frozenset("=+-@|")
#: Control characters a spreadsheet acts on even at the very start of a cell.
CONTROL_TRIGGERS = frozenset("\t\r\n")
#: Where a spreadsheet with another separator may start a new cell (or row) inside one of ours.
_SEPARATOR = re.compile(r"([,;\t\r\n])")
#: Invisible characters a spreadsheet may skip before a formula: controls and format marks (ZWSP, BOM, bidi).
_INVISIBLE = frozenset({"Cc", "Cf"})
#: Rows between two writes to the response, so a big export streams.
FLUSH_EVERY = 500


def cell(value: object) -> str:
    """A CSV cell no spreadsheet will run (see the module's docstring)."""
    if value is None:
        return ""
    text = str(value)
    first, *rest = _SEPARATOR.split(text)  # text, separator, text, separator, …
    pieces = ["'" + first if _runs(first) or text[:1] in CONTROL_TRIGGERS else first]
    for index, piece in enumerate(rest):
        pieces.append("'" + piece if index % 2 and _runs(piece) else piece)
    return "".join(pieces)


def _runs(piece: str) -> bool:
    """Whether a spreadsheet would read `piece`, at the start of a cell, as a formula."""
    for char in unicodedata.normalize("NFKC", piece):
        if char.isspace() or unicodedata.category(char) in _INVISIBLE:
            continue
        return char in TRIGGERS
    return False


def csv_row(row: Attempt) -> list[str]:
    """One attempt's cells, in COLUMNS order."""
    return [
        cell(value)
        for value in (
            row.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            row.kind,
            row.number,
            row.raw_input,
            row.region,
            row.ip,
            row.channel,
            row.outcome,
            row.verification_id,
            row.provider_ref,
            row.provider_latency_ms,
            row.client_id,
            row.reason,
            row.count,
            row.provider,
            row.via,
        )
    ]


async def rows(sessions: async_sessionmaker[AsyncSession], where: AttemptFilter) -> AsyncIterator[str]:
    """The header and every matching attempt, newest first, as CSV text in chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    async with sessions() as session:
        count = 0
        async for attempt in reports.stream(session, where):
            writer.writerow(csv_row(attempt))
            count += 1
            if count % FLUSH_EVERY == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()
