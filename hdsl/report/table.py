"""The rich result table of ``hdsl check``: one row per property."""

from __future__ import annotations

from rich.table import Table

from hdsl.report.results import PropertySummary

_STYLE = {"proved": "green", "falsified": "bold red", "undecided": "yellow", "empty": "dim"}


def _margin(m: float | None) -> str:
    return "-" if m is None else f"{m:.4g}"


def results_table(summaries: list[PropertySummary], title: str = "hdsl check") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("property")
    table.add_column("status")
    table.add_column("items", justify="right")
    table.add_column("verdicts")
    table.add_column("worst margin", justify="right")
    table.add_column("time", justify="right")
    for s in summaries:
        style = _STYLE.get(s.status, "")
        verdicts = ", ".join(f"{n} {k}" for k, n in s.counts.items())
        table.add_row(s.name, f"[{style}]{s.status}[/]", str(len(s.results)), verdicts, _margin(s.worst_margin),
                      f"{s.time_s:.2f}s")
    return table
