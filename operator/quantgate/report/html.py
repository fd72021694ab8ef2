"""A self-contained HTML page for `quantgate report -o html`: the matrix and a per-task
drop chart as inline SVG. No scripts, fonts or images are fetched from anywhere."""

from __future__ import annotations

from html import escape

from quantgate.decision.decision_matrix import Matrix
from quantgate.report.text import matrix_rows, unresolved_lines

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
VERDICT_COLOURS = {"Ship": "#2ca02c", "Monitor": "#1f77b4", "ABTest": "#ff7f0e", "Block": "#d62728"}

CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: .3rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.verdict { color: #fff; font-weight: 600; border-radius: 3px; padding: 0 .4rem; }
figure { margin: 1rem 0; }
li { margin: .2rem 0; }
"""


def drop_chart(m: Matrix, width: int = 760, height: int = 320) -> str:
    """Grouped bars: one group per task (plus the average), one bar per candidate."""
    candidates = m.rows[1:]
    groups = [*m.tasks, "average"]
    values = [[(r.drops[t] if t != "average" else r.average_drop) for t in groups] for r in candidates]
    t = m.policy.thresholds
    limits = {tc.task: tc.limit for tc in candidates[0].comparison.tasks if tc.limit is not None}
    flat = [v for row in values for v in row] + [0.0, t.ab_test, *limits.values()]
    top, bottom = max(flat) * 1.1 or 1.0, min(flat) * 1.1
    left, right, upper, lower = 50, 90, 20, 70  # bound labels sit in the right margin
    plot_w, plot_h = width - left - right, height - upper - lower

    def y(v: float) -> float:
        return upper + (top - v) / (top - bottom) * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="drop-chart" width="{width}" height="{height}" '
             f'role="img" aria-label="per-task drop by variant">']
    unit = "%" if m.policy.drop_mode == "relative" else " pp"
    for label, v, colour in (("ship", t.ship, "#2ca02c"), ("monitor", t.monitor, "#1f77b4"),
                             ("abTest", t.ab_test, "#ff7f0e")):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                     f'stroke="{colour}" stroke-dasharray="4 3"/><text x="{width - right + 4}" y="{y(v) + 3:.1f}" '
                     f'font-size="10" fill="{colour}">{label} {v:g}{unit}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#444"/>')
    group_w = plot_w / len(groups)
    bar_w = group_w * 0.8 / max(1, len(candidates))
    for gi, g in enumerate(groups):
        x0 = left + gi * group_w + group_w * 0.1
        for ci, row in enumerate(values):
            v = row[gi]
            y1, y2 = sorted((y(0), y(v)))
            parts.append(f'<rect class="bar" x="{x0 + ci * bar_w:.1f}" y="{y1:.1f}" width="{bar_w - 1:.1f}" '
                         f'height="{max(y2 - y1, 0.5):.1f}" fill="{PALETTE[ci % len(PALETTE)]}">'
                         f'<title>{escape(candidates[ci].name)} {escape(g)}: {v:.2f}{unit}</title></rect>')
        if g in limits:  # a task limit (profile or explicit) across the task's bars
            ly = y(limits[g])
            parts.append(f'<line class="limit" x1="{x0:.1f}" x2="{x0 + group_w * 0.8:.1f}" y1="{ly:.1f}" '
                         f'y2="{ly:.1f}" stroke="#d62728" stroke-width="2"><title>{escape(g)} limit '
                         f'{limits[g]:g}{unit}</title></line><text x="{x0:.1f}" y="{ly - 3:.1f}" font-size="10" '
                         f'fill="#d62728">limit {limits[g]:g}{unit}</text>')
        parts.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{height - lower + 14}" font-size="11" '
                     f'text-anchor="middle">{escape(g)}</text>')
    for tick in (bottom, 0.0, top):
        parts.append(f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" font-size="10" text-anchor="end">{tick:.1f}</text>')
    for ci, r in enumerate(candidates):
        lx = left + ci * 150
        parts.append(f'<rect x="{lx}" y="{height - 30}" width="12" height="12" fill="{PALETTE[ci % len(PALETTE)]}"/>'
                     f'<text x="{lx + 16}" y="{height - 20}" font-size="12">{escape(r.name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def kld_chart(m: Matrix, width: int = 760, bar_h: int = 16) -> str:
    """Horizontal bars: mean choice KLD per multiple-choice task and candidate ('' without samples)."""
    bars = [(r.name, t.task, t.choice_kld, t.top1_agreement) for r in m.rows[1:] for t in r.comparison.tasks
            if t.choice_kld is not None]
    if not bars:
        return ""
    names = [r.name for r in m.rows[1:]]
    top = max(b[2] for b in bars) or 1.0
    left, right = 230, 160
    height = len(bars) * (bar_h + 4) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="kld-chart" width="{width}" height="{height}" '
             f'role="img" aria-label="choice KLD by task and variant">']
    for i, (name, task, kld, top1) in enumerate(bars):
        y = 5 + i * (bar_h + 4)
        w = max(0.5, kld / top * (width - left - right))
        colour = PALETTE[names.index(name) % len(PALETTE)]
        parts.append(f'<text x="{left - 6}" y="{y + bar_h - 4}" font-size="11" text-anchor="end">'
                     f'{escape(name)} {escape(task)}</text><rect class="kld" x="{left}" y="{y}" width="{w:.1f}" '
                     f'height="{bar_h}" fill="{colour}"><title>{escape(name)} {escape(task)}: KLD {kld:.4f}, '
                     f'top-1 {top1:.3f}</title></rect><text x="{left + w + 4:.1f}" y="{y + bar_h - 4}" '
                     f'font-size="11">{kld:.4f} (top-1 {top1:.3f})</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(m: Matrix, title: str = "quantgate decision matrix") -> str:
    head, rows = matrix_rows(m, decisive=True)
    verdict_col = head.index("Verdict")
    cells = []
    for r in rows:
        tds = []
        for i, c in enumerate(r):
            if i == verdict_col and c in VERDICT_COLOURS:
                tds.append(f'<td><span class="verdict" style="background:{VERDICT_COLOURS[c]}">{escape(c)}</span></td>')
            else:
                tds.append(f"<td>{escape(c)}</td>")
        cells.append("<tr>" + "".join(tds) + "</tr>")
    metrics = ", ".join(f"{escape(t)}: {escape(m.metrics[t])}" for t in m.tasks)
    reasons = "".join(
        f"<h3>{escape(r.name)}: {escape(r.verdict.value)}</h3><ul>"
        + "".join(f"<li>{escape(x)}</li>" for x in r.comparison.reasons) + "</ul>"
        for r in m.rows[1:]) + "".join(
        f"<h3>{escape(u.name)}: {escape(u.phase)}</h3><ul><li>{escape(line)}</li></ul>"
        for u, line in zip(m.unresolved, unresolved_lines(m)))
    p = m.policy
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p>Profile <b>{escape(p.profile)}</b>, average by <b>{escape(p.aggregate)}</b>, {escape(p.drop_mode)} drops.
Scores are each task's primary metric ({metrics}).</p>
<div style="overflow-x:auto"><table id="matrix"><thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in head)}</tr></thead>
<tbody>{"".join(cells)}</tbody></table></div>
<p id="selected">Selected: <b>{escape(m.selected.name or "none")}</b> ({escape(m.selected.reason)})</p>
<h2>Drop per task</h2>
<figure>{drop_chart(m)}<figcaption>Positive = the variant is worse than {escape(m.rows[0].name)};
dashed lines are the general bounds on the average drop, red lines task limits.</figcaption></figure>
{_fidelity_section(m)}<h2>Reasons</h2>
{reasons}
</body></html>
"""


def _fidelity_section(m: Matrix) -> str:
    chart = kld_chart(m)
    if not chart:
        return ""
    return (f"<h2>Fidelity to {escape(m.rows[0].name)}</h2><figure>{chart}<figcaption>Mean KL divergence of "
            "each question's choice distribution (softmax of the per-choice loglikelihoods), reference to "
            "variant, in nats; top-1: share of questions where both pick the same choice. These explain the "
            "verdict; they do not decide it.</figcaption></figure>\n")
