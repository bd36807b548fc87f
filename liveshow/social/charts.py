"""Inline SVG charts (no scripts, no CDN): a line over time with labelled axes."""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT, PAD = 480, 180, 36


def _fmt_time(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}:{minutes % 60:02d}" if minutes >= 60 else f"{minutes}m"


def line_chart(points: list[tuple[float, int]], label: str, money: bool = False, step: bool = False) -> str:
    """An SVG line (or step, for running totals) of ``points`` (seconds, value)."""
    title = f"<title>{escape(label)}</title>"
    if not points:
        return (
            f'<svg class="chart" role="img" aria-label="{escape(label)}: no data" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="{WIDTH}" height="{HEIGHT}">{title}<text x="{WIDTH / 2}" y="{HEIGHT / 2}" '
            f'text-anchor="middle" fill="#888">No data yet</text></svg>'
        )
    if step and points[0][0] > 0:
        points = [(0.0, 0), *points]  # a running total starts at nothing
    t_max = max(max(t for t, _ in points), 1.0)
    v_max = max(max(v for _, v in points), 1)

    def x(t: float) -> float:
        return PAD + (WIDTH - 2 * PAD) * max(0.0, t) / t_max

    def y(v: int) -> float:
        return HEIGHT - PAD + -(HEIGHT - 2 * PAD) * v / v_max

    coords: list[str] = []
    previous: int | None = None
    for t, v in points:
        if step and previous is not None:
            coords.append(f"{x(t):.1f},{y(previous):.1f}")
        coords.append(f"{x(t):.1f},{y(v):.1f}")
        previous = v
    top = f"${v_max / 100:,.0f}" if money else str(v_max)
    return (
        f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}">{title}'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#bbb"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#bbb"/>'
        f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end" font-size="11" fill="#666">{escape(top)}</text>'
        f'<text x="{PAD - 4}" y="{HEIGHT - PAD}" text-anchor="end" font-size="11" fill="#666">0</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 16}" text-anchor="end" font-size="11" fill="#666">'
        f"{_fmt_time(t_max)}</text>"
        f'<text x="{PAD}" y="{HEIGHT - PAD + 16}" font-size="11" fill="#666">0m</text>'
        f'<polyline fill="none" stroke="#e0245e" stroke-width="2" points="{" ".join(coords)}"/>'
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="12" fill="#333">{escape(label)}</text>'
        "</svg>"
    )
