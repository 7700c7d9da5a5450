"""Writing a benchmark's section into bench/RESULTS.md: replaced in place when it is there,
appended otherwise."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, heading: str, section: str) -> None:
    """``section`` (starting with ``heading``) replaces the text from ``heading`` to the next
    ``## `` heading of ``path``, or is appended."""
    text = path.read_text()
    if heading in text:
        start_at = text.index(heading)
        end_at = text.find("\n## ", start_at + len(heading))
        text = text[:start_at] + section + (text[end_at + 1:] if end_at >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
