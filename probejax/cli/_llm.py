"""``probejax llm ...``: extraction, layer sweeps and steering on language models."""

from __future__ import annotations

import typer

llm_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Probe and steer language models."
)


def parse_layers(spec: str | None) -> list[int] | None:
    """``None``/"all" -> all layers; "3,5,7" and ranges "10-14" (inclusive) -> a list."""
    if spec is None or spec.strip().lower() == "all":
        return None
    layers: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                layers.extend(range(lo, hi + 1))
            else:
                layers.append(int(part))
        except ValueError:
            raise typer.BadParameter(
                f"cannot read layer spec {part!r} in {spec!r}: use e.g. 'all', '3,5,7' or '10-14'."
            ) from None
    return layers


@llm_app.command()
def sweep(
    model: str = typer.Option("default", help="local model folder, hub id, or 'default'"),
    data: str = typer.Option("cities", help="bundled dataset name or a CSV/JSONL path"),
    out: str = typer.Option(..., help="output folder: results.json, probes.npz, figures"),
    pooling: str = typer.Option("last", help="last | mean | max"),
    layers: str = typer.Option(None, help="'all' (default), '3,5,7' or '10-14'"),
    point: str = typer.Option("block_output", help="hook point: block_output | block_input"),
    batch_size: int = typer.Option(16, help="texts per forward pass"),
    max_examples: int = typer.Option(None, help="stratified subsample of the dataset"),
    runs: int = typer.Option(20, help="stability runs (each drops 20% of train+val)"),
    stability_of: str = typer.Option(
        None,
        help="comma-separated methods whose stability is measured (default: all but the "
        "costly ones, GCS and RFM)",
    ),
    stability_layers: str = typer.Option(
        None,
        help="layers whose stability is measured: 'all', '3,5,7' or '10-14' (default: 8 "
        "layers spread over the depth; stability costs 20 refits per layer and method)",
    ),
    methods: str = typer.Option(
        None,
        help="comma-separated estimators (default: RAPTOR and its five baselines): "
        "registered names ('probejax estimators' lists them) or import paths "
        "'package.module:name' / 'file.py:name' of an Estimator or a function returning one",
    ),
    sklearn: bool = typer.Option(
        False, help="time the authors' scikit-learn loop on every layer (10-100 s each)"
    ),
    sklearn_layers: str = typer.Option(
        None, help="time the authors' scikit-learn loop on these layers only, e.g. '5,15,25'"
    ),
    seed: int = typer.Option(0, help="seed of the subsample, splits and stability runs"),
    cache: str = typer.Option(None, help="activation cache root (default ~/.cache/probejax)"),
) -> None:
    """Extract (cached) every layer, run RAPTOR and the baselines, print a per-layer
    table, write OUT/results.json, OUT/probes.npz and figures OUT/*.png."""
    from rich.console import Console
    from rich.table import Table

    from ..llm._plots import plot_sweep
    from ..llm._sweep import DEFAULT_METHODS, layer_table, llm_sweep

    try:
        res = llm_sweep(
            model,
            data,
            out,
            pooling=pooling,
            point=point,
            layers=parse_layers(layers),
            batch_size=batch_size,
            max_examples=max_examples,
            seed=seed,
            methods=methods or DEFAULT_METHODS,
            stability_runs=runs,
            stability_layers=(
                "all"
                if stability_layers is not None and stability_layers.strip().lower() == "all"
                else parse_layers(stability_layers)
            ),
            stability_of=None
            if stability_of is None
            else [m.strip() for m in stability_of.split(",") if m.strip()],
            sklearn_reference=True if sklearn else (parse_layers(sklearn_layers) or False),
            cache_root=cache,
            log=typer.echo,
        )
    except (ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    results = res.results
    console = Console(width=max(100, 12 * (len(results["methods"]) + 1)))
    where = f"{results['model']['id']} on {results['dataset']['name']}"
    for field, suffix in (("test_accuracy", "acc"), ("stability", "stab")):
        header, rows = layer_table(results, field, suffix)
        if not rows:
            continue
        table = Table(title=f"{field.replace('_', ' ')}: {where}")
        for name in header:
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for p in plot_sweep(res.results_path, out, prefix="sweep"):
        typer.echo(f"wrote {p}")
