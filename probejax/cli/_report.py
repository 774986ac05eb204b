"""What the sweep commands print: per-layer tables, the detection table, the figures."""

from __future__ import annotations

import typer


def print_sweep(res, out: str) -> None:
    """The per-layer tables of a sweep's results, then its figures under ``out``."""
    from rich.console import Console
    from rich.table import Table

    from ..llm._plots import plot_sweep
    from ..llm._sweep import detection_table, layer_table

    results = res.results
    console = Console(width=max(100, 12 * (len(results["estimators"]) + 1)))
    where = f"{results['model']['id']} on {results['dataset']['name']}"
    tables = [
        (f"{field.replace('_', ' ')}: {where}", *layer_table(results, field, suffix))
        for field, suffix in (("test_accuracy", "acc"), ("stability", "stab"))
    ]
    tables.append(
        (
            f"detection at each estimator's best layer (95% bootstrap): {where}",
            *detection_table(results),
        )
    )
    for title, header, rows in tables:
        if not rows:
            continue
        table = Table(title=title)
        for name in header:
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for p in plot_sweep(res.results_path, out, prefix="sweep"):
        typer.echo(f"wrote {p}")
