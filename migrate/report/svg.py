"""Inline SVG charts for the HTML reports: drawn here, in Python, so that a report opens
offline with no charting library, and the same data always draws the same bytes.

SVG text is XML: every label and title goes through `escape`, which returns markup-safe text
(quotes too, so that a label is safe inside an attribute). The functions return `Markup` so
that Jinja inserts the drawing as it is, without escaping it a second time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Rough widths (in em) of sans-serif characters, taken from DejaVu Sans (the widest of the
# usual defaults) so that labels never clip: capitals, digits and symbols such as < = > are
# wider than lowercase letters, which matters for MPIDs, reason codes and hostile values.
NARROW = frozenset("iljtfrI.,:;'!|()[] -/")
SYMBOLS = frozenset("<>=+~^#&*")
WIDE = frozenset("MWmw@%")
FONT_SIZE = 12
ROW_HEIGHT = 24
BAR_HEIGHT = 15
TOP = 8
LEGEND_HEIGHT = 22
MAX_LABEL_WIDTH = 330
LEFT = 4  # margin left of the longest label


@dataclass(frozen=True)
class Series:
    """One colour of a (stacked) bar: its name for the legend and its CSS class."""

    name: str
    css_class: str


@dataclass(frozen=True)
class Bar:
    """One row of a bar chart: its label and one value per series (stacked left to right)."""

    label: str
    values: tuple[int, ...]
    note: str = ""


def _char_em(char: str) -> float:
    if char in NARROW:
        return 0.40
    if char in WIDE:
        return 1.0
    if char in SYMBOLS:
        return 0.86
    if char.isupper():
        return 0.78
    if char.isdigit():
        return 0.66
    return 0.64


def text_width(text: str) -> float:
    """An upper estimate of the drawn width of 12px text: there is no font metrics at render
    time, and an overestimate only costs white space where an underestimate clips."""
    return sum(_char_em(char) for char in text) * FONT_SIZE


def _fit(label: str, width: float) -> str:
    """The label, cut with an ellipsis to fit; the full text stays in the SVG <title>."""
    if text_width(label) <= width:
        return label
    room = width - text_width("…")
    used = 0.0
    for index, char in enumerate(label):
        used += _char_em(char) * FONT_SIZE
        if used > room:
            return label[:index].rstrip() + "…"
    return label


def _number(value: float) -> str:
    """Coordinates with at most one decimal, so that output does not depend on float noise."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _frame(chart_id: str, title: str, description: str, width: int, height: int) -> list[str]:
    """The opening of a chart for inline use in HTML (where <svg> needs no xmlns): a role,
    a title and a description for screen readers."""
    return [
        f'<svg class="chart" id="{escape(chart_id)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
    ]


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    parts = []
    for item in series:
        parts.append(
            f'<rect class="{escape(item.css_class)}" x="{_number(x)}" y="{_number(y)}" '
            f'width="12" height="12" rx="2"/>'
        )
        parts.append(
            f'<text class="legend" x="{_number(x + 17)}" y="{_number(y + 10)}">'
            f"{escape(item.name)}</text>"
        )
        x += 17 + text_width(item.name) + 22
    return parts


def bar_chart(
    chart_id: str,
    title: str,
    description: str,
    bars: Sequence[Bar],
    series: Sequence[Series],
    *,
    width: int = 560,
    show_parts: bool = True,
) -> Markup:
    """A horizontal (stacked) bar chart: a label on the left, the bar, its total and note on
    the right. Bars share one scale so that lengths compare across rows."""
    label_width = min(max((text_width(bar.label) for bar in bars), default=30), MAX_LABEL_WIDTH)
    label_width += LEFT
    value_texts = [_value_text(bar, show_parts) for bar in bars]
    value_width = max((text_width(text) for text in value_texts), default=10) + 12
    plot_left = label_width + 8
    plot_width = max(width - plot_left - value_width, 60)
    top = TOP + (LEGEND_HEIGHT if len(series) > 1 else 0)
    height = int(top + max(len(bars), 1) * ROW_HEIGHT + 8)
    largest = max((sum(bar.values) for bar in bars), default=0) or 1
    parts = _frame(chart_id, title, description, width, height)
    if len(series) > 1:
        parts += _legend(series, plot_left, TOP)
    if not bars:
        parts.append(f'<text class="empty" x="{_number(plot_left)}" y="{top + 16}">none</text>')
    for row, (bar, value_text) in enumerate(zip(bars, value_texts, strict=True)):
        y = top + row * ROW_HEIGHT
        middle = y + ROW_HEIGHT / 2
        parts.append(
            f'<g class="bar"><title>{escape(bar.label)}: {escape(_tooltip(bar, series))}</title>'
        )
        parts.append(
            f'<text class="label" x="{_number(label_width)}" y="{_number(middle + 4)}" '
            f'text-anchor="end">{escape(_fit(bar.label, label_width - LEFT))}</text>'
        )
        x = plot_left
        for value, item in zip(bar.values, series, strict=True):
            length = plot_width * value / largest
            if value:
                parts.append(
                    f'<rect class="{escape(item.css_class)}" x="{_number(x)}" '
                    f'y="{_number(middle - BAR_HEIGHT / 2)}" width="{_number(max(length, 1))}" '
                    f'height="{BAR_HEIGHT}"/>'
                )
            x += length
        parts.append(
            f'<text class="value" x="{_number(x + 6)}" y="{_number(middle + 4)}">'
            f"{escape(value_text)}</text>"
        )
        parts.append("</g>")
    parts.append(
        f'<line class="axis" x1="{_number(plot_left)}" y1="{top}" x2="{_number(plot_left)}" '
        f'y2="{height - 6}"/>'
    )
    parts.append("</svg>")
    return Markup("\n".join(parts))


def _value_text(bar: Bar, show_parts: bool) -> str:
    """The bar's total, or its parts (e.g. "12 + 3") when the series are to be read apart."""
    total = f"{sum(bar.values):,}"
    if show_parts and len(bar.values) > 1:
        total = " + ".join(f"{value:,}" for value in bar.values)
    return f"{total}  {bar.note}" if bar.note else total


def _tooltip(bar: Bar, series: Sequence[Series]) -> str:
    text = ", ".join(
        f"{value:,} {item.name}" for value, item in zip(bar.values, series, strict=True)
    )
    return f"{text}; {bar.note}" if bar.note else text


@dataclass(frozen=True)
class Span:
    """One row of a timeline: a label and the days it takes from the start (0: none)."""

    label: str
    days: int
    note: str = ""


def timeline_chart(
    chart_id: str,
    title: str,
    description: str,
    start: dt.date,
    spans: Sequence[Span],
    *,
    window_end: dt.date | None = None,
    width: int = 560,
) -> Markup:
    """Days from the start per row, on a calendar axis (first and last day labelled); the
    window's end is marked when it falls on the axis, so an overrun shows as bars past it."""
    label_width = min(max((text_width(s.label) for s in spans), default=30), MAX_LABEL_WIDTH)
    label_width += LEFT
    note_width = max((text_width(span.note) for span in spans), default=10) + 12
    plot_left = label_width + 8
    plot_width = max(width - plot_left - note_width, 60)
    last_day = max((span.days for span in spans), default=0)
    axis_days = max(last_day, 1)
    top = TOP
    rows_height = max(len(spans), 1) * ROW_HEIGHT
    height = int(top + rows_height + 34)
    parts = _frame(chart_id, title, description, width, height)
    axis_y = top + rows_height + 4
    if window_end is not None:
        # Drawn first, under the bars and their notes, so that it never hides a figure.
        window_day = (window_end - start).days + 1
        if 0 < window_day < axis_days:
            x = plot_left + plot_width * window_day / axis_days
            parts.append(
                f'<line class="window" x1="{_number(x)}" y1="{top}" x2="{_number(x)}" '
                f'y2="{axis_y}"><title>window ends {escape(window_end.isoformat())}</title>'
                "</line>"
            )
    for row, span in enumerate(spans):
        y = top + row * ROW_HEIGHT
        middle = y + ROW_HEIGHT / 2
        finish = start + dt.timedelta(days=max(span.days - 1, 0))
        when = (
            f"{span.days:,} day{'' if span.days == 1 else 's'}, {start.isoformat()} to "
            f"{finish.isoformat()}"
            if span.days
            else "nothing to schedule"
        )
        parts.append(
            f'<g class="bar"><title>{escape(span.label)}: {escape(when)}'
            f"{'; ' + escape(span.note) if span.note else ''}</title>"
        )
        parts.append(
            f'<text class="label" x="{_number(label_width)}" y="{_number(middle + 4)}" '
            f'text-anchor="end">{escape(_fit(span.label, label_width - LEFT))}</text>'
        )
        length = plot_width * span.days / axis_days
        if span.days:
            parts.append(
                f'<rect class="s-days" x="{_number(plot_left)}" '
                f'y="{_number(middle - BAR_HEIGHT / 2)}" width="{_number(max(length, 2))}" '
                f'height="{BAR_HEIGHT}"/>'
            )
        parts.append(
            f'<text class="value" x="{_number(plot_left + length + 6)}" '
            f'y="{_number(middle + 4)}">{escape(span.note)}</text>'
        )
        parts.append("</g>")
    end = start + dt.timedelta(days=axis_days - 1)
    parts += [
        f'<line class="axis" x1="{_number(plot_left)}" y1="{top}" x2="{_number(plot_left)}" '
        f'y2="{axis_y}"/>',
        f'<line class="axis" x1="{_number(plot_left)}" y1="{axis_y}" '
        f'x2="{_number(plot_left + plot_width)}" y2="{axis_y}"/>',
        f'<text class="tick" x="{_number(plot_left)}" y="{axis_y + 16}">'
        f"{escape(start.isoformat())}</text>",
    ]
    if axis_days > 1:
        parts.append(
            f'<text class="tick" x="{_number(plot_left + plot_width)}" y="{axis_y + 16}" '
            f'text-anchor="end">{escape(end.isoformat())}</text>'
        )
    parts.append("</svg>")
    return Markup("\n".join(parts))
