"""``probejax probe``: the whole sweep on a user's activation file."""

from __future__ import annotations

import typer

from ..protocol._specs import ControlsSpec


def probe(
    activations: str = typer.Argument(
        ...,
        help="activation file: .npy/.npz (layers, n, d) or (n, d); .safetensors or .h5 with "
        "one (n, d) entry per layer (names ending in the layer index, e.g. model.layers.7) or "
        "one 3-D entry; .pt (a tensor, list or dict of tensors)",
    ),
    labels: str = typer.Option(
        None,
        help="labels: a CSV with a 'label' column (optional 'group'), or a .npy vector "
        "(default: the labels the file carries, as 'probejax llm extract' writes them)",
    ),
    out: str = typer.Option(..., help="output folder: results.json, probes.npz, figures"),
    key: str = typer.Option(
        None, help="the file's entry (or per-layer prefix) holding the activations, if several"
    ),
    estimators: str = typer.Option(
        None,
        help="comma-separated estimators, the first one primary (default: RAPTOR and its "
        "baselines; 'probejax estimators' lists them; import paths 'file.py:name' too)",
    ),
    runs: int = typer.Option(20, help="stability runs (each drops a share of train+val)"),
    drop: float = typer.Option(0.2, help="share of train+val each stability run drops"),
    stability: bool = typer.Option(True, help="measure directional stability (--no-stability)"),
    stability_estimators: str = typer.Option(
        None,
        help="comma-separated estimators whose stability is measured (default: the cheap ones)",
    ),
    stability_layers: str = typer.Option(
        None, help="layers whose stability is measured: 'all', '3,5,7' or '10-14' (default: 8)"
    ),
    sklearn: str = typer.Option(
        None, help="time the authors' scikit-learn loop on these layers: 'all' or '5,15'"
    ),
    split: str = typer.Option(
        "auto",
        help="'auto' (grouped when the labels have a 'group' column, else random), 'random' "
        "(stratified, the RAPTOR authors' protocol) or 'grouped' (groups kept whole)",
    ),
    controls: bool = typer.Option(
        False, help="validity controls: permutation test, control task, k-direction curve"
    ),
    permutations: int = typer.Option(
        ControlsSpec().permutations, help="label permutations per layer for --controls"
    ),
    seed: int = typer.Option(0, help="seed of the splits, stability runs and controls"),
) -> None:
    """Probe every layer of an activation file: RAPTOR and the baselines, stability,
    optional controls; a per-layer table, OUT/results.json (the schema of 'llm sweep'),
    OUT/probes.npz and figures."""
    from ..estimators import DEFAULT_ESTIMATORS
    from ..llm._sweep import GroupedSplit, probe_activations
    from ..protocol import SplitSpec, StabilitySpec
    from ._llm import _names, _sklearn_layers, _stability_layers
    from ._report import print_sweep

    try:
        splits = {"auto": None, "random": SplitSpec(), "grouped": GroupedSplit()}
        if split not in splits:
            raise ValueError(f"--split must be one of {', '.join(splits)}, got {split!r}.")
        spec = None
        if stability:
            spec = StabilitySpec(
                runs=runs,
                drop=drop,
                estimators=_names(stability_estimators),
                layers=_stability_layers(stability_layers),
            )
        res = probe_activations(
            activations,
            labels,
            out,
            key=key,
            estimators=estimators or DEFAULT_ESTIMATORS,
            split=splits[split],
            stability=spec,
            controls=ControlsSpec(permutations=permutations) if controls else None,
            sklearn=_sklearn_layers(sklearn),
            seed=seed,
            log=typer.echo,
        )
    except (ValueError, FileNotFoundError, ImportError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    print_sweep(res, out)
