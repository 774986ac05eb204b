"""``probejax multiclass``: multi-class probes on every layer of an activation file."""

from __future__ import annotations

import typer


def multiclass(
    activations: str = typer.Argument(
        ..., help="activation file, as for 'probejax probe' (.npy/.npz/.safetensors/.h5/.pt)"
    ),
    labels: str = typer.Option(
        ..., help="a CSV with a 'label' column of K >= 2 classes, or a .npy vector"
    ),
    out: str = typer.Option(..., help="output folder: results.json, multiclass.png"),
    key: str = typer.Option(None, help="the file's entry holding the activations, if several"),
    estimators: str = typer.Option(
        None,
        help="comma-separated: 'multinomial' (RAPTOR's protocol with the multinomial loss) and "
        "'ovr:NAME' (one-vs-rest of a registered binary estimator); default "
        "multinomial,ovr:raptor,ovr:mass_mean,ovr:lda",
    ),
    seed: int = typer.Option(0, help="seed of the stratified split"),
) -> None:
    """Multinomial RAPTOR and one-vs-rest probes on every layer: test accuracy, macro-F1
    and per-class AUROC per layer, OUT/results.json and OUT/multiclass.png."""
    from rich.console import Console
    from rich.table import Table

    from ..multiclass._sweep import DEFAULT, probe_multiclass
    from ._llm import _names

    try:
        res = probe_multiclass(
            activations,
            labels,
            out,
            key=key,
            estimators=_names(estimators) or DEFAULT,
            seed=seed,
            log=typer.echo,
        )
    except (ValueError, FileNotFoundError, ImportError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    names = list(res["estimators"])
    table = Table(title=f"test accuracy / macro-F1, {res['n_classes']} classes")
    for col in ("layer", *names):
        table.add_column(col, justify="right")
    for i, layer in enumerate(res["layers"]):
        cells = [
            f"{res['estimators'][m]['test_accuracy'][i]:.3f} / {res['estimators'][m]['macro_f1'][i]:.3f}"
            for m in names
        ]
        table.add_row(str(layer), *cells)
    Console(width=max(100, 20 * (len(names) + 1))).print(table)
