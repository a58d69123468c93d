"""Plain-text and static-HTML rendering shared by the widget views and their fallbacks.

The same HTML goes into a widget's HTML trait (the live view) and into its `text/html`
display data (what nbconvert or GitHub shows when no widget state is saved), so a notebook
reads the same with or without a kernel. Every value from a run or a function is escaped:
outputs and logs are user data.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from typing import Any

# Outputs and logs can be megabytes: a browser view (and a saved notebook) shows this much.
MAX_TEXT = 20_000

STATUS_COLORS = {
    "QUEUED": "#6c757d",
    "RUNNING": "#0d6efd",
    "SUCCEEDED": "#198754",
    "FAILED": "#dc3545",
    "CANCELLED": "#6c757d",
    "INITIALIZED": "#6c757d",
    "CREATING": "#0d6efd",
    "UPDATING": "#0d6efd",
    "DEPLOYING": "#0d6efd",
    "READY": "#198754",
    "ERROR": "#dc3545",
    "DELETING": "#6c757d",
    "DELETED": "#6c757d",
}


def escape(value: Any) -> str:
    """`value` as text, safe inside HTML."""
    return html.escape(str(value), quote=True)


def badge(status: Any) -> str:
    """A status as a small coloured label (the colour is a hint; the word carries the meaning)."""
    text = str(status)
    color = STATUS_COLORS.get(text, "#6c757d")
    return (f'<span style="color:#fff;background:{color};border-radius:3px;padding:0 4px;'
            f'font-size:0.85em">{escape(text)}</span>')


def clock(timestamp: float | None) -> str:
    """A local wall-clock time: HH:MM:SS.mmm today, with the date on other days."""
    if timestamp is None:
        return ""
    moment = time.localtime(timestamp)
    millis = int((timestamp % 1) * 1000)
    if time.strftime("%Y-%m-%d", moment) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M:%S", moment) + f".{millis:03d}"
    return time.strftime("%Y-%m-%d %H:%M:%S", moment)


def seconds(value: float | None) -> str:
    """A duration for people: 850 ms, 1.24 s, 2 min 5 s."""
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.2f} s"
    minutes, rest = divmod(int(round(value)), 60)
    return f"{minutes} min {rest} s"


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """`text` cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit:,} more characters not shown)"


def as_json(value: Any) -> str:
    """Pretty JSON of a run's input or output; values JSON cannot carry are described."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):  # e.g. circular structures: still show something
        return repr(value)


def pre(text: str, empty: str = "(empty)") -> str:
    """Preformatted, escaped, clipped text; `empty` in grey when there is none."""
    if not text:
        return f'<span style="color:#6c757d">{escape(empty)}</span>'
    return ('<pre style="margin:0;white-space:pre-wrap;max-height:24em;overflow:auto">'
            f"{escape(clip(text))}</pre>")


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, raw: bool = False) -> str:
    """A compact HTML table; cells are escaped unless `raw` (already HTML)."""
    cell = (lambda v: v) if raw else escape
    head = "".join(f'<th style="text-align:left;padding:1px 8px">{escape(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td style="text-align:left;padding:1px 8px">{cell(v)}</td>' for v in row) + "</tr>"
        for row in rows
    )
    return (f'<table style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A fixed-width text table, for text/plain."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(str(v))) for w, v in zip(widths, row)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip()
             for line in [list(headers), *rows]]
    return "\n".join(lines)


def fields_html(pairs: Sequence[tuple[str, str]]) -> str:
    """Label/value pairs as a two-column table; values are already HTML."""
    rows = "".join(
        f'<tr><th style="text-align:left;padding:1px 8px;vertical-align:top">{escape(k)}</th>'
        f'<td style="text-align:left;padding:1px 8px">{v}</td></tr>'
        for k, v in pairs
    )
    return f'<table style="border-collapse:collapse">{rows}</table>'
