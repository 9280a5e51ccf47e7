"""Charts for the dashboard as inline SVG, drawn on the server (no JavaScript, nothing from a CDN)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

PALETTE = ("#0b6e4f", "#13876a", "#2a9d8f", "#57b894", "#8fd0b0")


def column_chart(points: Sequence[tuple[str, int]], *, label: str, height: int = 200) -> Markup:
    """Vertical bars (e.g. messages per day) with values on top and day labels below.

    Horizontal positions are percentages and the height is fixed, so the bars stretch to the card's
    width while the text keeps its size on a phone and on a desktop alike.
    """
    top, bottom = 22, 26
    plot_h = height - top - bottom
    peak = max((v for _, v in points), default=0) or 1
    slot = 100 / max(1, len(points))
    bar_w = slot * 0.6
    every = 1 if len(points) <= 8 else 2
    parts = [
        f'<svg class="chart columns" width="100%" height="{height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>',
        f'<line x1="0" y1="{top + plot_h}" x2="100%" y2="{top + plot_h}" class="axis"/>',
    ]
    for i, (name, value) in enumerate(points):
        h = plot_h * value / peak
        x = i * slot + (slot - bar_w) / 2
        middle = i * slot + slot / 2
        y = top + plot_h - h
        parts.append(
            f'<rect x="{x:.2f}%" y="{y:.1f}" width="{bar_w:.2f}%" height="{h:.1f}" rx="3" class="bar">'
            f"<title>{escape(name)}: {value}</title></rect>"
        )
        if value:
            parts.append(f'<text x="{middle:.2f}%" y="{y - 5:.1f}" class="value">{value}</text>')
        if (len(points) - 1 - i) % every == 0:
            parts.append(f'<text x="{middle:.2f}%" y="{height - 8}" class="tick">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value above is escaped or numeric


def bar_chart(rows: Sequence[tuple[str, int]], *, label: str, row_height: int = 30) -> Markup:
    """Horizontal bars with the name on the left and the count on the right (e.g. top intents).

    Like :func:`column_chart`, widths are percentages so the text keeps its size at any width.
    """
    name_end, plot = 40.0, 48.0
    height = max(row_height, row_height * len(rows)) + 4
    peak = max((v for _, v in rows), default=0) or 1
    parts = [
        f'<svg class="chart bars" width="100%" height="{height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>'
    ]
    for i, (name, value) in enumerate(rows):
        y = i * row_height + 2
        w = max(0.4, plot * value / peak)
        color = PALETTE[min(i, len(PALETTE) - 1)]
        baseline = y + row_height * 0.62
        parts.append(
            f'<text x="{name_end - 2:.1f}%" y="{baseline:.1f}" class="name">{escape(name)}</text>'
            f'<rect x="{name_end:.1f}%" y="{y + 5}" width="{w:.2f}%" height="{row_height - 12}" rx="3" '
            f'fill="{color}"><title>{escape(name)}: {value}</title></rect>'
            f'<text x="{name_end + w + 1.5:.2f}%" y="{baseline:.1f}" class="count">{value}</text>'
        )
    if not rows:
        parts.append(f'<text x="50%" y="{row_height * 0.62}" class="empty">—</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value above is escaped or numeric
