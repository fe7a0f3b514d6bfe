"""docs/benchmarks.md holds one section per benchmark script; each rewrites only its own."""

from __future__ import annotations

from pathlib import Path

#: Hand-written findings go below this line; no script touches them.
NOTES = "<!-- Findings: written by hand, kept when the script rewrites this file. -->"
TITLE = "# Benchmarks\n"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- begin {name}: written by bench/, replaced on each run -->", f"<!-- end {name} -->"


def write_section(path: Path, name: str, text: str) -> None:
    """Put `text` in the file's section `name`, leaving the other sections and the notes as they are."""
    begin, end = _markers(name)
    block = f"{begin}\n{text.strip()}\n{end}\n"
    current = path.read_text() if path.exists() else TITLE
    if begin in current and end in current:
        head, _, rest = current.partition(begin)
        _, _, tail = rest.partition(end)
        tail = tail.lstrip("\n")
        path.write_text(head + block + ("\n" + tail if tail else ""))
        return
    head, notes_marker, notes = current.partition(NOTES)
    path.write_text(head.rstrip("\n") + "\n\n" + block + ("\n" + notes_marker + notes if notes_marker else ""))
