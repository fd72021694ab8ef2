"""Plain-text tables and markdown for `quantgate compare` and `quantgate report`."""

from __future__ import annotations

import json

from quantgate.decision.decision_matrix import Matrix
from quantgate.decision.model import Comparison, TaskComparison

FORMATS = ("table", "json", "markdown")


def _unit(drop_mode: str) -> str:
    return "%" if drop_mode == "relative" else "pp"


def _flips(t: TaskComparison) -> str:
    if t.flips is None:
        return "-"
    f = t.flips
    p = f" p={f.mcnemar_p:.2g}" if f.mcnemar_p is not None else ""
    return f"{f.correct_to_incorrect}/{f.incorrect_to_correct} ({f.rate * 100:.1f}%){p}"


def _n(t: TaskComparison) -> str:
    """Documents compared; "used/total" when a progressive run stopped before the full task."""
    if t.n is None:
        return "-"
    return f"{t.n}/{t.items_total}" if t.items_total is not None and t.items_total != t.n else str(t.n)


def _ci(t: TaskComparison) -> str:
    return f"[{t.ci95[0]:.2f}, {t.ci95[1]:.2f}]" if t.ci95 else "-"


def comparison_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    u = _unit(c.drop_mode)
    head = ["task", "metric", "baseline", "candidate", f"drop {u}", f"limit {u}", "95% CI",
            "flips c>i/i>c McNemar", f"MDD {u}", "n", "pass"]
    rows = [[t.task, t.metric, f"{t.baseline:.4f}", f"{t.candidate:.4f}", f"{t.drop:.2f}",
             f"{t.limit:g}" if t.limit is not None else "-", _ci(t), _flips(t),
             f"{t.min_detectable_drop:.2f}" if t.min_detectable_drop is not None else "-",
             _n(t), "pass" if t.passed else "FAIL"]
            for t in c.tasks]
    if any(t.choice_kld is not None for t in c.tasks):  # fidelity: multiple-choice tasks with logged samples
        head[-1:-1] = ["choice KLD", "top-1"]
        for t, r in zip(c.tasks, rows):
            r[-1:-1] = ["-" if t.choice_kld is None else f"{t.choice_kld:.4f}",
                        "-" if t.top1_agreement is None else f"{t.top1_agreement:.3f}"]
    return head, rows


def fidelity_lines(m: Matrix) -> list[str]:
    """Per candidate: choice KLD and top-1 agreement of each multiple-choice task (empty without samples)."""
    out = []
    for r in m.rows[1:]:
        parts = [f"{t.task} KLD {t.choice_kld:.4f} top-1 {t.top1_agreement:.3f}" for t in r.comparison.tasks
                 if t.choice_kld is not None and t.top1_agreement is not None]
        if parts:
            out.append(f"{r.name}: " + ", ".join(parts))
    return out


def _grid(head: list[str], rows: list[list[str]]) -> str:
    """Left-align text columns, right-align numbers."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def numeric(i: int) -> bool:
        return all(r[i].replace(".", "").replace("-", "").replace("%", "").isdigit() or r[i] == "-" for r in rows)

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if numeric(i) else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def _summary(c: Comparison) -> list[str]:
    u = "%" if c.drop_mode == "relative" else " pp"
    return [
        f"average drop: {c.average_drop:.2f}{u} ({c.aggregate}, {c.drop_mode} drops, profile {c.profile})",
        f"verdict: {c.verdict.value} ({'promotable' if c.promotable else 'not promotable'}"
        f"{'' if c.decisive else ', NOT decisive'})",
    ]


def render_comparison(c: Comparison, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(c.dump(), indent=2)
    head, rows = comparison_rows(c)
    if fmt == "markdown":
        out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out += ["", *(f"**{s}**" if s.startswith("verdict") else s for s in _summary(c)), "", "Reasons:", ""]
        out += [f"- {r}" for r in c.reasons]
        return "\n".join(out)
    return "\n".join([_grid(head, rows), "", *_summary(c), "reasons:", *(f"  - {r}" for r in c.reasons)])


def matrix_rows(m: Matrix, decisive: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and cells: Variant, Size, one score per task, Avg Drop, Verdict, Promotable
    (the last two columns), then Decisive when asked for."""
    u = "%" if m.policy.drop_mode == "relative" else "pp"
    head = ["Variant", "Size", *m.tasks, f"Avg Drop {u}", "Verdict", "Promotable"]
    if decisive:
        head.append("Decisive")
    rows = []
    for r in m.rows:
        cells = [
            r.name, r.size or "-", *(f"{r.scores[t]:.4f}" for t in m.tasks),
            "-" if r.average_drop is None else f"{r.average_drop:.2f}",
            "-" if r.verdict is None else r.verdict.value,
            "-" if r.promotable is None else ("yes" if r.promotable else "no"),
        ]
        if decisive:
            cells.append("-" if r.comparison is None else ("yes" if r.comparison.decisive else "no"))
        rows.append(cells)
    for u in m.unresolved:  # no verdict: never promotable
        rows.append([u.name, u.size or "-", *("-" for _ in m.tasks), "-", u.phase, "no", *(["-"] if decisive else [])])
    return head, rows


def unresolved_lines(m: Matrix) -> list[str]:
    """Why each row without a verdict has none."""
    return [f"{u.name}: {u.phase}" + (f" ({u.reason})" if u.reason else "") + (f": {u.message}" if u.message else "")
            for u in m.unresolved]


def render_matrix(m: Matrix, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(m.dump(), indent=2)
    head, rows = matrix_rows(m, decisive=True)
    policy = f"profile {m.policy.profile}, {m.policy.aggregate}, {m.policy.drop_mode} drops"
    if fmt == "markdown":
        out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out += ["", f"Scores are each task's primary metric; {policy}."]
        out += ["", f"**Selected**: {m.selected.name or 'none'} ({m.selected.reason})"]
        if fidelity := fidelity_lines(m):
            out += ["", "Fidelity to the reference (mean choice KLD in nats, top-1 agreement):", "",
                    *(f"- {x}" for x in fidelity)]
        for r in m.rows[1:]:
            out += ["", f"**{r.name}**: {r.verdict.value}", *(f"- {x}" for x in r.comparison.reasons)]
        out += [x for line in unresolved_lines(m) for x in ("", f"**{line}**")]
        return "\n".join(out)
    out = [_grid(head, rows), "", policy, f"selected: {m.selected.name or 'none'} ({m.selected.reason})"]
    if fidelity := fidelity_lines(m):
        out += ["fidelity to the reference (mean choice KLD in nats, top-1 agreement):", *(f"  {x}" for x in fidelity)]
    for r in m.rows[1:]:
        out += [f"{r.name}: {r.verdict.value}", *(f"  - {x}" for x in r.comparison.reasons)]
    return "\n".join(out + unresolved_lines(m))
