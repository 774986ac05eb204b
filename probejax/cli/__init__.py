"""Command line: ``probejax reproduce`` (the README's main job), ``demo``, ``theory point``,
``theory layer``, ``estimators`` and ``datasets`` (what ``--estimators`` and ``--data``
take), ``probe`` (a sweep on an activation file), ``multiclass`` (multi-class probes on
one) and ``llm ...``."""

from __future__ import annotations

import time

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="probejax command line.")


def _add_llm() -> None:
    from ._llm import llm_app

    app.add_typer(llm_app, name="llm")


_add_llm()


def _add_probe() -> None:
    from ._multiclass import multiclass
    from ._probe import probe

    app.command("probe")(probe)
    app.command("multiclass")(multiclass)


_add_probe()


@app.callback()
def _main(
    compile_cache: bool = typer.Option(
        True,
        "--compile-cache/--no-compile-cache",
        help="keep compiled programs on disk (<cache>/xla) and reuse them in later runs; "
        "PROBEJAX_COMPILE_CACHE=off also turns it off, =DIR picks the folder",
    ),
) -> None:
    """probejax: ridge-logistic probes (RAPTOR) in JAX."""
    if compile_cache:
        from ..io import enable_compile_cache

        enable_compile_cache()


@app.command()
def demo(
    n: int = typer.Option(1000, help="examples"),
    d: int = typer.Option(256, help="activation dimension"),
    rho: float = typer.Option(25.0, help="teacher signal strength |w*|^2/d"),
    seed: int = typer.Option(0, help="PRNG seed (data, splits, stability runs)"),
    runs: int = typer.Option(20, help="stability runs (each drops 20% of the pool)"),
) -> None:
    """RAPTOR end to end on synthetic teacher-student activations: the chosen ridge,
    test accuracy and AUROC, and directional stability."""
    import jax
    import numpy as np

    from .. import GaussianTeacherStudent, StabilitySpec, evaluate, stability
    from ..estimators import raptor

    k_data, k_fit, k_stab = jax.random.split(jax.random.key(seed), 3)
    X, y, w_star = GaussianTeacherStudent(rho=rho).sample(k_data, n, d)
    t0 = time.perf_counter()
    res = evaluate(raptor(), X, y, k_fit)
    jax.block_until_ready(res)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    stab = stability(raptor(), X, y, k_stab, spec=StabilitySpec(runs=runs))
    jax.block_until_ready(stab)
    t_stab = time.perf_counter() - t0
    cos_teacher = float(np.dot(res.probe.concept_vector(), w_star) / np.linalg.norm(w_star))
    info = res.info
    typer.echo(f"data: synthetic logistic teacher-student, n={n}, d={d}, rho={rho}, seed={seed}")
    typer.echo(
        f"chosen C = {float(info['C']):.4g}  (lam = 1/C = {float(info['lam']):.4g}, "
        f"grid index {int(info['index'])} of {info['val_accuracy'].size})"
    )
    typer.echo(f"validation accuracy at C: {float(info['val_accuracy'][info['index']]):.4f}")
    typer.echo(
        f"test accuracy: {float(res.test_accuracy):.4f}   test AUROC: {float(res.test_auroc):.4f}"
    )
    typer.echo(f"cos(concept vector, teacher): {cos_teacher:.4f}")
    typer.echo(
        f"stability over {runs} runs (20% dropped): mean |cos| = "
        f"{float(stab.mean_abs_cos):.4f}, signed mean = {float(stab.mean_signed_cos):.4f}"
    )
    typer.echo(f"time: protocol {t_fit:.2f} s, stability {t_stab:.2f} s (both include compilation)")


theory_app = typer.Typer(no_args_is_help=True, help="Replica/CGMT theory of ridge-logistic probes.")
app.add_typer(theory_app, name="theory")


@theory_app.command("point")
def theory_point(
    alpha: float = typer.Option(..., help="samples per dimension, n/d > 0"),
    lam: float = typer.Option(..., help="ridge strength >= 0 (scikit-learn C = 1/lam)"),
    teacher: str = typer.Option("logistic", help="logistic | sign | probit"),
    beta: float = typer.Option(1.0, help="logistic teacher inverse temperature"),
    delta: float = typer.Option(1.0, help="probit teacher noise variance"),
    rho: float = typer.Option(1.0, help="teacher power |w*|^2/d"),
    eps: float = typer.Option(0.0, help="label-flip probability"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Solve the fixed point at one point and print its predictions."""
    import json

    from ..theory._point import predict_point

    try:
        out = predict_point(alpha, lam, teacher, beta=beta, delta=delta, rho=rho, eps=eps)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    if json_out:
        typer.echo(json.dumps(out))
    else:
        for k, v in out.items():
            typer.echo(f"{k:>14}: {v}")


@theory_app.command("layer")
def theory_layer(
    activations: str = typer.Option(..., help="(n_pool, d) activation matrix, .npy"),
    labels: str = typer.Option(..., help="(n_pool,) 0/1 labels, .npy"),
    n_train: int = typer.Option(..., help="class-balanced training examples drawn from the pool"),
    C: str = typer.Option(..., "--C", help="comma-separated scikit-learn C values"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object (last line)"),
) -> None:
    """Predict an L2-logistic probe's test accuracy and stability along a C grid from
    the pool's class means and within-class covariance (Gaussian-mixture theory)."""
    import json

    import jax
    import numpy as np

    from ..theory._layer import predict_layer

    try:
        Cs = [float(c) for c in C.split(",") if c.strip()]
        X = np.load(activations)
        y = np.load(labels)
        if not np.all(np.isin(y, (0, 1))):
            raise ValueError(f"{labels}: labels must be 0/1, got values {np.unique(y)[:5]}.")
        with jax.enable_x64(True):
            out = predict_layer(X, y, n_train, Cs)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    if json_out:
        typer.echo(json.dumps(out))
    else:
        typer.echo(f"pool {out['n_pool']} x {out['d']}, n_train {out['n_train']}")
        typer.echo(f"{'C':>10} {'accuracy':>9} {'stability':>9} {'converged':>9}")
        for row in zip(out["C"], out["accuracy"], out["stability"], out["converged"], strict=True):
            typer.echo(f"{row[0]:>10.4g} {row[1]:>9.4f} {row[2]:>9.4f} {row[3]!s:>9}")


@app.command()
def estimators() -> None:
    """List the registered estimators: the names ``--methods`` takes, their labels, and
    whether their stability is measured by default."""
    from rich.console import Console
    from rich.table import Table

    from ..estimators import registered

    table = Table(title="registered estimators (or give 'file.py:Name' / 'pkg.mod:Name')")
    for column in ("name", "label", "stability by default"):
        table.add_column(column)
    for name, entry in registered().items():
        table.add_row(name, entry.label, "yes" if entry.stability else "no")
    Console(width=100).print(table)


@app.command()
def datasets(
    specs: list[str] = typer.Argument(
        None,
        metavar="[SPEC]...",
        help="datasets to resolve exactly as --data does (a registered name, a CSV/JSONL "
        "path, or a loader 'file.py:name' / 'package.module:name'); none: list the registry",
    ),
    max_examples: int = typer.Option(None, help="with SPECS: the stratified subsample"),
    seed: int = typer.Option(0, help="with SPECS: seed of the loader and the subsample"),
) -> None:
    """List the registered datasets: the names ``--data`` takes, their number of examples
    and what their classes are. Given SPECS, load each as ``--data`` would and show what
    it resolved to (size, classes, groups, source, hash), without running a model."""
    from rich.console import Console
    from rich.table import Table

    from ..llm import load_dataset, registered_datasets

    console = Console(width=120)
    if not specs:
        table = Table(
            title="registered datasets (or give a CSV/JSONL file, 'file.py:name' or 'pkg.mod:name')"
        )
        for column in ("name", "examples", "description"):
            table.add_column(column, justify="right" if column == "examples" else "left")
        for name, entry in registered_datasets().items():
            try:
                size = str(len(load_dataset(name)))
            except ValueError as err:  # e.g. the package holding its data files is missing
                size, description = "-", f"{entry.description} [unavailable: {err}]"
            else:
                description = entry.description
            table.add_row(name, size, description)
        console.print(table)
        return
    for spec in specs:
        try:
            data = load_dataset(spec, max_examples=max_examples, seed=seed)
        except (ValueError, FileNotFoundError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None
        table = Table(title=f"--data {spec}", show_header=False)
        table.add_column("field")
        table.add_column("value")
        counts = ", ".join(f"{k}: {v}" for k, v in data.counts().items())
        rows = {
            "name": data.name,
            "examples": f"{len(data)} ({counts})",
            "groups": ", ".join(data.groups) or "none",
            "source": data.source,
            "licence": data.licence,
            "description": data.description,
            "hash": data.hash,
        }
        for field, value in rows.items():
            table.add_row(field, value)
        console.print(table)


@app.command()
def reproduce(
    targets: list[str] = typer.Argument(
        None, help="targets to run (default: the headline, headline-llm and headline-theory)"
    ),
    all_targets: bool = typer.Option(
        False, "--all", help="the full reproduction: every target but the headline ones"
    ),
    quick: bool = typer.Option(False, "--quick", help="the configs' small smoke-test variants"),
    force: bool = typer.Option(False, "--force", help="recompute even if results are current"),
    results_dir: str = typer.Option(
        None, help="results root (default: the config's, results/<target>); one folder per target"
    ),
    figures_dir: str = typer.Option(None, help="figures folder (default: the config's, figures/)"),
) -> None:
    """Run reproduction targets: config (experiments/) -> results file -> figures."""
    import importlib
    import json

    import jax

    from ..reproduce import HEADLINE, TARGETS, run_target

    if targets and all_targets:
        raise typer.BadParameter("give target names or --all, not both.")
    if all_targets:
        names = [t for t in TARGETS if t not in HEADLINE]
    else:
        names = list(targets) if targets else list(HEADLINE)
    unknown = [t for t in names if t not in TARGETS]
    if unknown:
        raise typer.BadParameter(f"unknown target(s) {unknown}; registered: {sorted(TARGETS)}.")
    summaries = []
    for name in names:
        typer.echo(f"[{name}] {TARGETS[name].description}")
        out_dir = None if results_dir is None else f"{results_dir}/{name}"
        try:
            with jax.enable_x64(TARGETS[name].x64):
                out = run_target(
                    name,
                    quick=quick,
                    force=force,
                    results_dir=out_dir,
                    figures_dir=figures_dir,
                    log=lambda s, n=name: typer.echo(f"[{n}] {s}"),
                )
        except FileNotFoundError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None
        typer.echo(
            f"[{name}] done in {out.seconds:.1f} s{' (results reused)' if out.reused else ''}: "
            f"results {out.results}, figures in {out.figures[0].parent}"
        )
        summaries.append((name, out))
    for name, out in summaries:
        runner = importlib.import_module(TARGETS[name].runner)
        if hasattr(runner, "headline"):
            typer.echo(f"\n[{name}] headline ({out.results}):")
            for line in runner.headline(json.loads(out.results.read_text())):
                typer.echo(f"  {line}")
            for figure in out.figures:
                typer.echo(f"  figure: {figure}")


if __name__ == "__main__":
    app()
