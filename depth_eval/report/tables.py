"""One table renderer for every table the tool prints: plain text aligned with spaces, or
GitHub Markdown."""

from __future__ import annotations

from typing import Sequence


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool],
           markdown: bool = False, *, min_widths: Sequence[int] | None = None,
           gap: str = " ", underline: bool = False) -> str:
    """A table of text cells; ``numeric`` columns are right-aligned.

    Parameters
    ----------
    headers, rows
        Cell texts.
    numeric : sequence of bool
        Per column: right-align (and ``---:`` in Markdown).
    markdown : bool
        A GitHub Markdown table (``|`` in cells escaped) instead of plain text.
    min_widths : sequence of int, optional
        Plain text: the narrowest each column may be (keeps columns steady across tables).
    gap : str
        Plain text: between columns.
    underline : bool
        Plain text: a line of dashes under the header.

    Returns
    -------
    str
        No trailing newline.
    """
    if markdown:
        def line(cells):
            return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

        separator = "| " + " | ".join("---:" if right else "---" for right in numeric) + " |"
        return "\n".join([line(headers), separator] + [line(row) for row in rows])
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    if min_widths is not None:
        widths = [max(w, m) for w, m in zip(widths, min_widths)]

    def text_line(cells):
        return gap.join(str(c).rjust(w) if right else str(c).ljust(w)
                        for c, w, right in zip(cells, widths, numeric)).rstrip()

    lines = [text_line(headers)]
    if underline:
        lines.append(gap.join("-" * w for w in widths))
    return "\n".join(lines + [text_line(row) for row in rows])
